"""bcrit-scan: B_crit(L) from batch-size scans of learning curves (`batch_scan_levels`), then eq 1.4 on them."""

from __future__ import annotations

from typing import Any

import numpy as np

from scalinglab.errors import UserError
from scalinglab.laws.families.batch import Bcrit, bcrit_at
from scalinglab.laws.framework.curves import run_counts
from scalinglab.laws.framework.transforms import batch_scan_levels


class BcritScan(Bcrit, register={"bcrit-scan": {}}):
    """bcrit-scan: B_crit(L) from batch-size scans of learning curves, then eq 1.4 (see module doc)."""

    name = "bcrit-scan"
    reads = "curves"
    families = ("batch-scan",)
    min_runs = 1  # batch_scan_levels asks for curves at three or more batch sizes itself
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
        """Levels from the (cut) curves, eq 1.4 on them; the bootstrap redraws whole curves and redoes both."""
        if "run" not in cols:  # a CSV of one curve per batch size
            cols = {**cols, "run": np.asarray(cols["B"]).astype(str)}
        cols = self._curve_rows(cols)
        levels, stage2 = self._stages(cols)
        stage2._fit_columns(self._level_rows(levels), 0, holdout, seed)
        for attr in ("params_", "ci95_", "residual_rms_", "converged_", "objective_", "n_points_", "holdout_",
                     "derived_", "derived_ci95_"):
            setattr(self, attr, getattr(stage2, attr))
        self.levels_ = levels
        self.n_curve_points_ = int(len(cols["L"]))
        self.transient_ = self._transient_info
        self.resample_ = "run"
        self._n_units = len(np.unique(cols["run"]))
        if bootstrap:
            self._attach_bootstrap(*self._bootstrap_curves(cols, bootstrap, seed), seed)

    def _stages(self, cols: dict[str, np.ndarray]) -> tuple[list[dict], Bcrit]:
        levels = batch_scan_levels(cols, self.n_levels)
        good = [lv for lv in levels if lv["identified"]]
        if len(good) < 3:
            raise UserError(f"bcrit-scan: only {len(good)} loss levels with an identifiable B_crit; need 3 "
                            "(run batch sizes on both sides of the critical batch)")
        return levels, Bcrit(huber_delta=self.huber_delta, seed=self.seed)

    @staticmethod
    def _level_rows(levels: list[dict]) -> dict[str, np.ndarray]:
        good = [lv for lv in levels if lv["identified"]]
        return {"L": np.array([lv["L"] for lv in good]), "B": np.array([lv["B_crit"] for lv in good])}

    def _bootstrap_curves(self, cols: dict[str, np.ndarray], k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """K resamples of whole curves (a curve drawn twice enters twice); levels and eq 1.4 refitted in each.
        A resample with fewer than 3 identifiable levels counts as not converged."""
        counts, inverse = run_counts(cols["run"], k, seed)
        samples = np.full((k, self.n_params), np.nan)
        conv = np.zeros(k, dtype=bool)
        for i, row in enumerate(counts):
            picks = [r for r, c in enumerate(row) for _ in range(int(c))]
            parts = [np.flatnonzero(inverse == r) for r in picks]
            take = np.concatenate(parts)
            copy = np.repeat(np.arange(len(picks)), [len(p) for p in parts])  # a curve drawn twice: two curves
            sub = {c: v[take] for c, v in cols.items()}
            sub["run"] = copy.astype(str)
            try:
                levels, stage2 = self._stages(sub)
                stage2._fit_arrays(self._level_rows(levels))
            except UserError:
                continue
            samples[i] = [stage2.params_[p] for p in self.param_names]
            conv[i] = bool(stage2.converged_)
        return samples, conv

    def _extra_dict(self) -> dict[str, Any]:
        return {"levels": self.levels_, "n_curve_points": getattr(self, "n_curve_points_", None),
                "inputs_note": "curves of (B tokens, S steps, L) at several batch sizes; params fit B_crit(L)"}

    def _load_extra(self, d: dict[str, Any]) -> None:
        self.levels_ = list(d.get("levels") or [])
