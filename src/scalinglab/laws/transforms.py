"""Critical-batch transforms (paper §5.1) and the bcrit-scan law built on them.

- `s_min(S, B, B_crit)` = S/(1 + B_crit/B): the fewest steps that would reach the same loss (huge batch).
- `c_min(C, B, B_crit)` = C/(1 + B/B_crit): the least compute that would reach it (tiny batch).
- `bcrit_at(L, B_star, alpha_B)` = B_star/L^(1/alpha_B) (eq 1.4).
- `BcritScan` ("bcrit-scan"): learning curves (B in tokens, S steps, L) run at several batch sizes. For each loss
  level it finds the steps S each batch size needs, fits S = S_min·(1 + B_crit/B) — the same as
  (S/S_min − 1)(E/E_min − 1) = 1 with E = B·S — so B_crit(L) = E_min/S_min, then fits eq 1.4 to (L, B_crit).
  Curves are grouped by a `run` column when present, else by B.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scalinglab.errors import UserError
from scalinglab.laws.forms import BatchTradeoff, Bcrit


def s_min(S: Any, B: Any, B_crit: Any) -> np.ndarray:
    return np.asarray(S, float) / (1.0 + np.asarray(B_crit, float) / np.asarray(B, float))


def c_min(C: Any, B: Any, B_crit: Any) -> np.ndarray:
    return np.asarray(C, float) / (1.0 + np.asarray(B, float) / np.asarray(B_crit, float))


def bcrit_at(L: Any, B_star: float, alpha_B: float) -> np.ndarray:
    return B_star / np.asarray(L, float) ** (1.0 / alpha_B)


def steps_to_reach(S: np.ndarray, L: np.ndarray, level: float) -> float:
    """First step at which the (running-minimum) curve reaches `level`, interpolated in log S; NaN if never."""
    order = np.argsort(S)
    S, L = np.asarray(S, float)[order], np.minimum.accumulate(np.asarray(L, float)[order])
    if L[0] <= level:
        return float("nan") if L[0] < level else float(S[0])
    hit = np.flatnonzero(L <= level)
    if hit.size == 0:
        return float("nan")
    i = hit[0]
    l0, l1 = L[i - 1], L[i]
    t = (l0 - level) / (l0 - l1) if l0 > l1 else 1.0
    return float(np.exp(np.log(S[i - 1]) + t * (np.log(S[i]) - np.log(S[i - 1]))))


def batch_scan_levels(cols: dict[str, np.ndarray], n_levels: int = 10, min_batches: int = 3) -> list[dict]:
    """Per loss level: S needed at each batch size and the fitted S_min, E_min, B_crit."""
    groups = cols["run"] if "run" in cols else cols["B"]
    curves = []
    for g in np.unique(groups):
        m = groups == g
        Bs = np.unique(cols["B"][m])
        if len(Bs) != 1:
            raise UserError(f"bcrit-scan: curve {g!r} mixes batch sizes {Bs.tolist()}; one batch size per run")
        curves.append((float(Bs[0]), cols["S"][m], cols["L"][m]))
    if len({c[0] for c in curves}) < min_batches:
        raise UserError(f"bcrit-scan needs learning curves at {min_batches} or more batch sizes; "
                        f"got {len({c[0] for c in curves})}")
    lo = min(float(np.min(c[2])) for c in curves)
    hi = max(float(np.max(c[2])) for c in curves)
    cand = np.geomspace(lo, hi, 400)
    reach = np.array([sum(1 for B, S, L in curves if L.min() <= lv < L[np.argsort(S)][0]) for lv in cand])
    valid = cand[reach >= min_batches]
    if valid.size == 0:
        raise UserError(f"bcrit-scan: no loss level is reached by {min_batches} batch sizes")
    levels = np.unique(valid[np.linspace(0, valid.size - 1, min(n_levels, valid.size)).round().astype(int)])
    out = []
    for lv in levels:
        pts = [(B, steps_to_reach(S, L, lv)) for B, S, L in curves]
        pts = [(B, s) for B, s in pts if np.isfinite(s)]
        if len({B for B, _ in pts}) < min_batches:
            continue
        Bv = np.array([p[0] for p in pts])
        Sv = np.array([p[1] for p in pts])
        tr = BatchTradeoff()
        tr._fit_arrays({"B": Bv, "S": Sv})  # type: ignore[attr-defined]
        p = tr.params_ or {}
        ok = Bv.min() / 30 <= p["B_crit"] <= Bv.max() * 30
        out.append({"L": float(lv), "S_min": p["S_min"], "B_crit": p["B_crit"], "E_min": p["S_min"] * p["B_crit"],
                    "n_batch_sizes": len(pts), "identified": bool(ok), "residual_rms": tr.residual_rms_})
    return out


class BcritScan(Bcrit):
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

    def _fit_custom(self, cols: dict[str, np.ndarray], bootstrap: int = 0, holdout: int = 0, seed: int = 0):
        from scalinglab.laws.fit import fit_into

        levels = batch_scan_levels(cols, self.n_levels)
        good = [lv for lv in levels if lv["identified"]]
        if len(good) < 3:
            raise UserError(f"bcrit-scan: only {len(good)} loss levels with an identifiable B_crit; need 3 "
                            "(run batch sizes on both sides of the critical batch)")
        stage2 = Bcrit(huber_delta=self.huber_delta, seed=self.seed)
        fit_into(stage2, {"L": np.array([lv["L"] for lv in good]), "B": np.array([lv["B_crit"] for lv in good])},
                 bootstrap=bootstrap, holdout=holdout, seed=seed)
        for attr in ("params_", "ci95_", "residual_rms_", "converged_", "objective_", "n_points_", "holdout_",
                     "derived_", "derived_ci95_", "bootstrap_", "bootstrap_samples_"):
            setattr(self, attr, getattr(stage2, attr))
        self.levels_ = levels
        self.n_curve_points_ = int(len(cols["L"]))
        return self

    def _extra_dict(self) -> dict[str, Any]:
        return {"levels": self.levels_, "n_curve_points": getattr(self, "n_curve_points_", None),
                "inputs_note": "curves of (B tokens, S steps, L) at several batch sizes; params fit B_crit(L)"}

    def _load_extra(self, d: dict[str, Any]) -> None:
        self.levels_ = list(d.get("levels") or [])
