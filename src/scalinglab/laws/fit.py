"""`fit_law`: fit a law by registry name (or a Law instance) in one call; what `fit`, `reproduce` and tests use.

Published-data check (tests/test_laws.py): on the 240 Chinchilla Fig. 4 points Epoch AI fitted, the chinchilla fit
reproduces Epoch's grid fit (objective 0.00101827; E 1.8172, A 477.8, B 2143, alpha 0.3473, beta 0.3672) and 1000
bootstraps give alpha 0.317–0.372, beta 0.332–0.414 (Epoch: 0.317–0.373, 0.331–0.415). With all 245 points the five
high-loss, D < N points pull the fit to E ≈ 1.89, beta ≈ 0.45: robust loss or not, a handful of outliers move it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scalinglab.errors import UserError
from scalinglab.laws.base import Law
from scalinglab.laws.registry import get_law


def fit_law(law: str | Law, data: Any, bootstrap: int = 0, holdout: int = 0, huber_delta: float = 1e-3,
            seed: int = 0, min_step: float | None = None, min_tokens: float | None = None, **options: Any) -> Law:
    """Fit a law by registry name (or a Law instance) to a DataFrame with canonical columns; returns the law.

    `min_step` / `min_tokens` replace the default transient cut of learning-curve rows (laws/curves.py)."""
    if isinstance(law, str):
        law = get_law(law, **options)
    if not (huber_delta > 0 and np.isfinite(huber_delta)):
        raise UserError(f"huber delta must be a positive number, got {huber_delta}")
    for name, v in (("--min-step", min_step), ("--min-tokens", min_tokens)):
        if v is not None and not (np.isfinite(v) and v >= 0):
            raise UserError(f"{name} must be a number >= 0, got {v}")
    law.huber_delta = float(huber_delta)
    law.seed = int(seed)
    law.min_step, law.min_tokens = min_step, min_tokens
    return law.fit(data, bootstrap=bootstrap, holdout=holdout, seed=seed)
