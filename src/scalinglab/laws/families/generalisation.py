"""Loss on another distribution against the training-distribution loss (paper §3.2.2, Figs. 8 and 24).

The paper finds that a model's loss on text it never trained on tracks its in-distribution loss with a roughly
constant offset, whatever the size or the point in training. Two laws test that on the user's runs:

- `ood-offset` (`OODOffset()`):                 L_ood = L + offset        the paper's claim, one parameter;
- `ood-linear` (`OODOffset(free_slope=True)`):  L_ood = intercept + slope·L   slope = 1 ⇔ a constant offset;
  slope < 1: the gap widens as models improve (they gain less on the other distribution), > 1: it narrows.

Columns: L (training-distribution validation loss) and L_ood (loss on the other set). From a results store,
`laws.data.runs_from_store` fills L_ood when the corpus has exactly one extra eval set (every set is also a
column `L:<name>`; choose one with `--col L_ood=L:<name>`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scalinglab.laws.framework.base import Law, log_of_linear


class OODOffset(Law, register={"ood-offset": {"free_slope": False}, "ood-linear": {"free_slope": True}}):
    """L_ood = L + offset, or with `free_slope` L_ood = intercept + slope·L (fitted on log residuals)."""

    needs_eval_sets = True
    target = "L_ood"
    inputs = ("L",)

    def __init__(self, free_slope: bool = False, **kw: Any) -> None:
        self.free_slope = bool(free_slope)
        self.param_names = ("intercept", "slope") if self.free_slope else ("offset",)
        self.log_params = (False,) * len(self.param_names)
        super().__init__(**kw)

    @property
    def name(self) -> str:  # type: ignore[override]
        return "ood-linear" if self.free_slope else "ood-offset"

    @property
    def formula(self) -> str:  # type: ignore[override]
        return "L_ood = intercept + slope*L" if self.free_slope else "L_ood = L + offset"

    def get_options(self) -> dict[str, Any]:
        return {"free_slope": self.free_slope}

    def features(self, cols: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(cols["L"], dtype=float)[:, None]  # the law is linear in L itself, not in log L

    def compute_key(self, cols: dict[str, np.ndarray]) -> np.ndarray:
        """--holdout leaves out the best models: lowest training-distribution loss first."""
        return 1.0 / np.asarray(cols["L"], float)

    def bounds(self) -> np.ndarray:
        return np.array([[-1e3, 1e3], [-1e2, 1e2]] if self.free_slope else [[-1e3, 1e3]])

    def _logpred(self, theta, X, grad=True):
        x = X[None, :, 0]
        f, inv = log_of_linear(theta[:, 0:1] + (theta[:, 1:2] * x if self.free_slope else x))
        if not grad:
            return f, None
        return f, ([inv, x * inv] if self.free_slope else [inv])

    def _grid(self, X, y):
        x, t = X[:, 0], np.exp(y)
        if not self.free_slope:
            off = float(np.median(t - x))
            return np.array([[off + d] for d in (-0.1, 0.0, 0.1)])
        slope, intercept = np.polyfit(x, t, 1) if len(x) > 1 else (1.0, float(t[0] - x[0]))
        return np.array([[intercept + d * x.mean(), slope - d] for d in (-0.2, 0.0, 0.2)] + [[float(np.median(t - x)), 1.0]])
