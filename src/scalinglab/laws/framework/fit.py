"""`fit_law`: fit a law by registry name (or a Law instance) in one call; what `fit`, `reproduce` and tests use.

Published-data check (tests/test_laws.py): on the 240 Chinchilla Fig. 4 points Epoch AI fitted, the chinchilla fit
reproduces Epoch's grid fit (objective 0.00101827; E 1.8172, A 477.8, B 2143, alpha 0.3473, beta 0.3672) and 1000
bootstraps give alpha 0.317–0.372, beta 0.332–0.414 (Epoch: 0.317–0.373, 0.331–0.415). With all 245 points the five
high-loss, D < N points pull the fit to E ≈ 1.89, beta ≈ 0.45: robust loss or not, a handful of outliers move it.
"""

from __future__ import annotations

from typing import Any

from scalinglab.laws.framework.base import law_class
from scalinglab.laws.framework.registry import get_law


def fit_law(law: str | Any, data: Any, bootstrap: int | None = None, holdout: int | None = None,
            huber_delta: float | None = None, seed: int | None = None, min_step: float | None = None,
            min_tokens: float | None = None, **options: Any) -> Any:
    """Fit a law by registry name (or an unfitted or fitted law instance) to a DataFrame with canonical columns.

    A name makes a fresh law with `options` and the settings given (the rest at their defaults). An instance keeps
    its own settings: those given here (not None) apply to a copy of it (`sklearn.base.clone` semantics), which is
    fitted and returned; with none given the instance itself is fitted and returned.
    `min_step` / `min_tokens` replace the default transient cut of learning-curve rows (laws/framework/curves.py)."""
    settings = {k: v for k, v in (("bootstrap", bootstrap), ("holdout", holdout), ("huber_delta", huber_delta),
                                  ("seed", seed), ("min_step", min_step), ("min_tokens", min_tokens)) if v is not None}
    if isinstance(law, str):
        law = get_law(law, **options, **{k: v for k, v in settings.items() if k in law_class(law)._param_names()})
    elif settings or options:
        law = type(law)(**law.get_params()).set_params(**{**options, **settings})
    return law.fit(data)
