"""bcrit-scan: B_crit(L) from batch-size scans of learning curves (`batch_scan_levels`), then eq 1.4 on them."""

from __future__ import annotations

from typing import Any

import numpy as np

from scalinglab.errors import UserError
from scalinglab.laws.batch import Bcrit, bcrit_at
from scalinglab.laws.transforms import batch_scan_levels


class BcritScan(Bcrit, register={"bcrit-scan": {}}):
    """bcrit-scan: B_crit(L) from batch-size scans of learning curves, then eq 1.4 (see module doc)."""

    name = "bcrit-scan"
    formula = "B_crit = B_star / L^(1/alpha_B), B_crit(L) = E_min/S_min from S = S_min(1 + B_crit/B)"
    target = "L"
    inputs = ("B", "S")

    def __init__(self, n_levels: int = 10, **kw: Any) -> None:
        self.n_levels = int(n_levels)
        super().__init__(**kw)
        self.levels_: list[dict] = []

    def get_options(self) -> dict[str, Any]:
        return {"n_levels": self.n_levels}

    def required_columns(self) -> tuple[str, ...]:
        return ("B", "S", "L")

    def predict(self, **columns: Any) -> np.ndarray:
        """B_crit at loss L: predict(L=...)."""
        self._check_fitted()
        if "L" not in columns:
            raise UserError("bcrit-scan.predict needs L")
        p = self.params_ or {}
        return bcrit_at(columns["L"], p["B_star"], p["alpha_B"])

    def _fit_columns(self, cols: dict[str, np.ndarray], bootstrap: int, holdout: int, seed: int) -> None:
        levels = batch_scan_levels(cols, self.n_levels)
        good = [lv for lv in levels if lv["identified"]]
        if len(good) < 3:
            raise UserError(f"bcrit-scan: only {len(good)} loss levels with an identifiable B_crit; need 3 "
                            "(run batch sizes on both sides of the critical batch)")
        stage2 = Bcrit(huber_delta=self.huber_delta, seed=self.seed)
        stage2._fit_columns({"L": np.array([lv["L"] for lv in good]), "B": np.array([lv["B_crit"] for lv in good])},
                            bootstrap, holdout, seed)
        for attr in ("params_", "ci95_", "residual_rms_", "converged_", "objective_", "n_points_", "holdout_",
                     "derived_", "derived_ci95_", "bootstrap_", "bootstrap_samples_"):
            setattr(self, attr, getattr(stage2, attr))
        self.levels_ = levels
        self.n_curve_points_ = int(len(cols["L"]))

    def _extra_dict(self) -> dict[str, Any]:
        return {"levels": self.levels_, "n_curve_points": getattr(self, "n_curve_points_", None),
                "inputs_note": "curves of (B tokens, S steps, L) at several batch sizes; params fit B_crit(L)"}

    def _load_extra(self, d: dict[str, Any]) -> None:
        self.levels_ = list(d.get("levels") or [])
