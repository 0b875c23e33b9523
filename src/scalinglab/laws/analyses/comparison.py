"""Compare law forms on the same rows (`fit --law A,B,...`): which one extrapolates best?

For every law: the full fit (residual RMS of log L, and AIC/BIC), and a refit without the K largest-compute rows
(the same rows for every law: compute C when the data has it, else 6·N·D, else the first input column) whose
predictions of those K rows give the hold-out error. The table is ordered by hold-out error.

AIC/BIC: a Huber fit on log residuals is the maximum-likelihood fit under the density p(r) ∝ exp(−ρ_δ(r)/s)
(ρ_δ the Huber loss; for δ → ∞ the Gaussian with variance s), for any scale s; so the log-likelihood is that
density's at the fitted residuals with s at its maximum, and the parameter count includes s. Laws fitted in
stages (bcrit-scan) have no such likelihood and get none.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scalinglab.errors import UserError


def huber_log_likelihood(r: np.ndarray, delta: float) -> float:
    """max over s of sum log p(r_i), p(r) = exp(−ρ_δ(r)/s)/Z(s), Z(s) = √(2πs)(2Φ(δ/√s) − 1) + 2(s/δ)e^(−δ²/2s)."""
    from scipy.optimize import minimize_scalar
    from scipy.special import erf

    a = np.abs(np.asarray(r, float))
    rho = float(np.where(a <= delta, 0.5 * a * a, delta * (a - 0.5 * delta)).sum())
    n = len(a)

    def nll(log_s: float) -> float:
        s = math.exp(log_s)
        z = math.sqrt(2 * math.pi * s) * erf(delta / math.sqrt(2 * s)) + 2 * s / delta * math.exp(-delta**2 / (2 * s))
        return rho / s + n * math.log(z)

    scale = max(rho / n, 1e-300)
    res = minimize_scalar(nll, bounds=(math.log(scale) - 20, math.log(scale) + 20), method="bounded",
                          options={"xatol": 1e-10})
    return -float(res.fun)


def compute_order(df: Any) -> np.ndarray:
    """Row order by compute: C, else 6·N·D, else the first of N, D, S, L present."""
    if "C" in df.columns:
        key = df["C"].to_numpy(float)
    elif {"N", "D"} <= set(df.columns):
        key = 6.0 * df["N"].to_numpy(float) * df["D"].to_numpy(float)
    else:
        col = next((c for c in ("N", "D", "S", "L") if c in df.columns), None)
        if col is None:
            raise UserError("cannot order rows by compute: no C, N, D, S or L column")
        key = df[col].to_numpy(float)
    return np.argsort(key, kind="stable")


def compare_laws(laws: list[Any], df: Any, holdout: int) -> dict[str, Any]:
    """Fit every (unfitted) law on df and on df without its `holdout` largest-compute rows; the comparison table."""
    import pandas as pd

    df = pd.DataFrame(df).reset_index(drop=True)
    if holdout < 1 or holdout >= len(df) - 1:
        raise UserError(f"the comparison holds out K largest-compute rows: K must be 1..{len(df) - 2}, got {holdout}")
    order = compute_order(df)
    test, train = order[len(df) - holdout:], order[: len(df) - holdout]
    rows, fits = [], {}
    for law in laws:
        full = _clone(law).fit(df)
        sub = _clone(law).fit(df.iloc[train])
        actual = df.iloc[test][law.target].to_numpy(float)
        pred = sub.predict(**{c: df.iloc[test][c].to_numpy(float) for c in law.inputs})
        rel = (pred - actual) / actual
        k = len(full.param_names)
        row = {"law": law.law_name, "n_params": k, "n_points": full.n_points_, "residual_rms": full.residual_rms_,
               "holdout_mean_abs_rel_error": float(np.mean(np.abs(rel))),
               "holdout_max_abs_rel_error": float(np.max(np.abs(rel))), "aic": None, "bic": None}
        resid = _log_residuals(full)
        if resid is not None:
            ll = huber_log_likelihood(resid, full.huber_delta)
            n = len(resid)
            row.update(log_likelihood=ll, aic=2 * (k + 1) - 2 * ll, bic=(k + 1) * math.log(n) - 2 * ll)
        rows.append(row)
        fits[law.law_name] = full
    rows.sort(key=lambda r: r["holdout_mean_abs_rel_error"])
    return {"comparison": rows, "holdout_k": int(holdout), "best_by_holdout": rows[0]["law"],
            "holdout_rows_by": "C" if "C" in df.columns else "6*N*D" if {"N", "D"} <= set(df.columns) else "input",
            "aic_note": "Huber-density likelihood on log residuals, scale fitted (one extra parameter)",
            "_fits": fits}


def _clone(law: Any) -> Any:
    return type(law)(**{**law.get_params(), "bootstrap": 0, "holdout": 0})  # the comparison does its own hold-out


def _log_residuals(law: Any) -> np.ndarray | None:
    """log(prediction) − log(observed) of the full fit, for laws fitted by the Huber objective on log L."""
    from scalinglab.laws.framework.base import Law

    X, y, theta = getattr(law, "_X", None), getattr(law, "_y", None), getattr(law, "_theta", None)
    if X is None or y is None or theta is None or type(law)._fit_columns is not Law._fit_columns:
        return None
    f, _ = law._logpred(np.asarray(theta)[None, :], X, grad=False)
    return f[0] - y
