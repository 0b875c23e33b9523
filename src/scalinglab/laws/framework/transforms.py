"""Critical-batch transforms of learning-curve data (paper §5.1).

- `s_min(S, B, B_crit)` = S/(1 + B_crit/B): the fewest steps that would reach the same loss (huge batch).
- `c_min(C, B, B_crit)` = C/(1 + B/B_crit): the least compute that would reach it (tiny batch).
- `to_min(kind, values, B, L, policy)`: the one S -> S_min / C -> C_min conversion of fits and figures, with B_crit
  from a named policy (MIN_POLICIES: per-point noise scale, a fitted bcrit law, or none).
- `bcrit_at(L, B_star, alpha_B)` = B_star/L^(1/alpha_B) (eq 1.4).
- `batch_scan_levels(cols)`: learning curves (B in tokens, S steps, L) run at several batch sizes. For each loss
  level, the steps S each batch size needs (`steps_to_reach`) and a fit of S = S_min·(1 + B_crit/B) — the same as
  (S/S_min − 1)(E/E_min − 1) = 1 with E = B·S — so B_crit(L) = E_min/S_min (the bcrit-scan law fits eq 1.4 to
  those, laws/families/bcrit_scan.py). Curves are grouped by a `run` column when present, else by B.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scalinglab.errors import UserError
from scalinglab.laws.families.batch import BatchTradeoff, bcrit_at
from scalinglab.laws.framework.constants import PAPER_LAWS

__all__ = ["MIN_POLICIES", "batch_scan_levels", "bcrit_at", "c_min", "s_min", "steps_to_reach", "to_min"]


def s_min(S: Any, B: Any, B_crit: Any) -> np.ndarray:
    return np.asarray(S, float) / (1.0 + np.asarray(B_crit, float) / np.asarray(B, float))


def c_min(C: Any, B: Any, B_crit: Any) -> np.ndarray:
    return np.asarray(C, float) / (1.0 + np.asarray(B, float) / np.asarray(B_crit, float))


MIN_POLICIES = {
    "noise-scale": "B_crit = the gradient noise scale measured at each eval point (the run's final one where a point "
                   "has none; the paper's eq 1.4 at L where the run has none)",
    "bcrit-law": "B_crit = a fitted bcrit law B_star/L^(1/alpha_B) at each point's loss",
    "none": "no conversion (S and C as measured)",
}


def to_min(kind: str, values: Any, B: Any, L: Any, policy: str = "noise-scale", noise_scale: Any = None,
           bcrit: dict[str, float] | None = None) -> np.ndarray:
    """S -> S_min or C -> C_min (paper §5.1) under one named policy (MIN_POLICIES); the single conversion every fit
    and figure uses. `noise_scale` (tokens, per point) serves "noise-scale"; `bcrit` (B_star, alpha_B) "bcrit-law"."""
    if policy not in MIN_POLICIES:
        raise UserError(f"unknown S_min/C_min policy {policy!r}; use one of {', '.join(MIN_POLICIES)}")
    if kind not in ("S", "C"):
        raise UserError(f"to_min converts S or C, not {kind!r}")
    values = np.asarray(values, float)
    if policy == "none":
        return values
    L = np.asarray(L, float)
    if policy == "bcrit-law":
        if not bcrit:
            raise UserError("the bcrit-law S_min/C_min policy needs a fitted bcrit law (B_star, alpha_B)")
        b_crit = bcrit_at(L, bcrit["B_star"], bcrit["alpha_B"])
    else:
        paper = PAPER_LAWS["bcrit"]
        ns = np.full(L.shape, np.nan) if noise_scale is None else np.asarray(noise_scale, float)
        b_crit = np.where(np.isfinite(ns) & (ns > 0), ns, bcrit_at(L, paper["B_star"], paper["alpha_B"]))
    return s_min(values, B, b_crit) if kind == "S" else c_min(values, B, b_crit)


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
        tr._fit_arrays({"B": Bv, "S": Sv})
        p = tr.params_ or {}
        # identified only when the scanned batch sizes bracket B_crit or come within 3x of it (item 7 of #14):
        # further out the fit of S = S_min(1 + B_crit/B) only says B_crit is beyond the scan
        ok = Bv.min() / 3 <= p["B_crit"] <= Bv.max() * 3
        out.append({"L": float(lv), "S_min": p["S_min"], "B_crit": p["B_crit"], "E_min": p["S_min"] * p["B_crit"],
                    "n_batch_sizes": len(pts), "identified": bool(ok), "residual_rms": tr.residual_rms_})
    return out
