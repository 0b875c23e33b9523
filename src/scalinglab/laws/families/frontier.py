"""Compute-efficient frontier (Chinchilla approaches 1 and 2) and the derived quantities of Kaplan §4–5.

- `compute_frontier(curves)`: the lower envelope of all learning curves in (C, L) — at each compute on a log grid,
  the lowest loss any curve reaches and which run (model size N) reaches it (approach 1; Kaplan §6, Fig. 13/14).
- `fit_nopt(frontier)`: N_opt(C) = k·C^a by least squares in log–log over the frontier points.
- `isoflop_optima(df)`: for each compute budget C, a parabola of L in ln N → N_opt, D_opt = C/(6·N_opt), L_min
  (approach 2); `fit_isoflop_scaling(optima)` → the exponents a (N_opt ∝ C^a) and b (D_opt ∝ C^b).
- Kaplan eq 1.5 consequences: `overfit_penalty(N, D)` = δL = L(N,D)/L(N,∞) − 1, `data_requirement(N)` (the D that
  keeps δL below a penalty; ≈ 5e3·N^0.74 with Table 2 constants), `s_stop(N, D)` = S_c/[L(N,D) − L(N,∞)]^(1/α_S).
  The L(N, D) and L(N, S) constants default to the paper's (Table 2 and Table 3) and take fitted params instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scalinglab.errors import UserError
from scalinglab.laws.framework.constants import PF_DAY, TABLE2, TABLE3
from scalinglab.laws.framework.curves import envelope as curve_envelope
from scalinglab.laws.framework.curves import on_grid


def compute_frontier(curves: Any, n_points: int = 60, group: str | None = None):
    """Lower envelope of learning curves in (C, L): DataFrame C, L, run, N (when given) on a log-C grid.

    `curves` has one row per learning-curve point with columns C and L and a curve identifier (`run`, else `N`).
    Each curve is made monotone (running minimum of L over C) and interpolated linearly in (log C, log L); only
    curves that reach a compute take part there, so the envelope can step up where the best curve ends.
    """
    import pandas as pd

    t = envelope_tables(curves, n_points, group)
    C, L, who = envelope(t)
    return pd.DataFrame({"C": C, "L": L, "run": [t["keys"][j] for j in who], "N": t["N"][who]})


def envelope_tables(curves: Any, n_points: int = 60, group: str | None = None,
                    extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every curve on one log-C grid: `logL` (runs, grid) of the monotone curve, inf where a run does not reach
    that compute; the same for the log of each `extra` column (e.g. D); run keys and N. The envelope of any subset
    of runs is then a minimum over rows (`envelope`), which is what a run-level bootstrap needs."""
    import pandas as pd

    df = pd.DataFrame(curves)
    for c in ("C", "L"):
        if c not in df.columns:
            raise UserError(f"frontier needs columns C and L; columns present: {', '.join(map(str, df.columns))}")
    group = group or ("run" if "run" in df.columns else "N" if "N" in df.columns else None)
    if group is None:
        raise UserError("frontier needs a curve identifier column: run or N")
    df = _numeric(df, tuple(c for c in ("C", "L", "N", *extra) if c in df.columns))
    df = df[(df["C"] > 0) & (df["L"] > 0) & np.isfinite(df["C"]) & np.isfinite(df["L"])]
    if len(df) < 2:
        raise UserError("frontier needs at least two positive learning-curve points")
    grid = np.geomspace(df["C"].min(), df["C"].max(), n_points)
    lg = np.log(grid)
    keys, Ns, rows, more = [], [], [], {c: [] for c in extra}
    for key, g in df.groupby(group, sort=True):
        g = g.sort_values("C")
        lc = np.log(g["C"].to_numpy(float))
        keys.append(key)
        Ns.append(float(g["N"].iloc[0]) if "N" in g.columns else np.nan)
        rows.append(on_grid(lg, lc, np.log(np.minimum.accumulate(g["L"].to_numpy(float)))))
        for c in extra:
            more[c].append(on_grid(lg, lc, np.log(g[c].to_numpy(float))))
    return {"C": grid, "logL": np.array(rows), "keys": keys, "N": np.array(Ns),
            **{f"log{c}": np.array(v) for c, v in more.items()}}


def envelope(tables: dict[str, Any], rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(C, L, index of the run reaching it) at every grid compute some selected run reaches (curves.envelope of
    the selected rows; the first run in key order wins a tie)."""
    best, pick = curve_envelope(tables["logL"] if rows is None else tables["logL"][rows])
    ok = pick >= 0
    who = pick[ok] if rows is None else np.asarray(rows)[pick[ok]]
    return tables["C"][ok], np.exp(best[ok]), who


def _numeric(df: Any, cols: tuple[str, ...]):
    """Columns as float (big integer FLOP counts arrive as Python ints); text is a UserError."""
    import pandas as pd

    df = df.copy()
    for c in cols:
        vals = pd.to_numeric(df[c], errors="coerce")
        if (vals.isna() & df[c].notna()).any():
            raise UserError(f"column {c} has non-numeric values")
        df[c] = vals.astype(float)
    return df


def _loglog_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """y = k·x^a by least squares in logs -> (k, a)."""
    a, lk = np.polyfit(np.log(x), np.log(y), 1)
    return float(np.exp(lk)), float(a)


def fit_nopt(frontier: Any, c_unit: str = "flops") -> dict[str, Any]:
    """N_opt(C) = coef·C^exponent from the frontier's (C, N) points (approach 1)."""
    import pandas as pd

    df = pd.DataFrame(frontier).dropna(subset=["N"])
    if df["N"].nunique() < 2:
        raise UserError("the frontier has fewer than two model sizes; N_opt(C) cannot be fitted")
    C = df["C"].to_numpy(float) / (PF_DAY if c_unit == "pf-days" else 1.0)
    k, a = _loglog_fit(C, df["N"].to_numpy(float))
    return {"coef": k, "exponent": a, "n_points": int(len(df)), "n_sizes": int(df["N"].nunique()),
            "C_unit": c_unit, "formula": "N_opt = coef * C^exponent"}


def isoflop_optima(df: Any, min_points: int = 3):
    """Approach 2 with one global parabola per budget: L = p2·x² + p1·x + p0 over every size, x = ln N.

    Kept for comparison (it is biased where IsoFLOP curves are asymmetric over a wide N range; `IsoFLOP` estimates
    each minimum over a window of sizes nearest it). Returns C, N_opt, D_opt, L_min, n_points, inside, convex.
    """
    import pandas as pd

    d = pd.DataFrame(df)
    for c in ("N", "C", "L"):
        if c not in d.columns:
            raise UserError(f"isoflop analysis needs columns N, C, L; columns present: {', '.join(map(str, d.columns))}")
    d = _numeric(d, ("N", "C", "L"))
    d = d[(d["N"] > 0) & np.isfinite(d["N"]) & np.isfinite(d["L"])]
    rows = []
    for C, g in d.groupby("C", sort=True):
        if len(g) < min_points:
            continue
        x = np.log(g["N"].to_numpy(float))
        p2, p1, p0 = np.polyfit(x, g["L"].to_numpy(float), 2)
        convex = bool(p2 > 0)
        xv = -p1 / (2 * p2) if convex else float(x[np.argmin(g["L"].to_numpy(float))])
        n_opt = float(np.exp(xv))
        rows.append({"C": float(C), "N_opt": n_opt, "D_opt": float(C) / (6.0 * n_opt),
                     "L_min": float(p0 + p1 * xv + p2 * xv * xv) if convex else float(g["L"].min()),
                     "n_points": int(len(g)), "inside": bool(x.min() <= xv <= x.max()), "convex": convex})
    if not rows:
        raise UserError(f"no compute budget has {min_points} or more points for an IsoFLOP parabola")
    return pd.DataFrame(rows)


def fit_isoflop_scaling(optima: Any) -> dict[str, Any]:
    """N_opt ∝ C^a and D_opt ∝ C^b from the usable (convex, inside) IsoFLOP optima."""
    import pandas as pd

    o = pd.DataFrame(optima)
    o = o[o["convex"] & o["inside"]]
    if len(o) < 2:
        raise UserError("fewer than two IsoFLOP budgets have a usable optimum")
    kN, a = _loglog_fit(o["C"].to_numpy(float), o["N_opt"].to_numpy(float))
    kD, b = _loglog_fit(o["C"].to_numpy(float), o["D_opt"].to_numpy(float))
    return {"a": a, "b": b, "N_coef": kN, "D_coef": kD, "n_budgets": int(len(o))}


def overfit_penalty(N: Any, D: Any, nd: dict[str, float] | None = None) -> np.ndarray:
    """δL(N, D) = L(N, D)/L(N, ∞) − 1 = [1 + (N/N_c)^(α_N/α_D)·D_c/D]^α_D − 1 (eq 4.2)."""
    p = nd or TABLE2
    N, D = np.asarray(N, float), np.asarray(D, float)
    return (1.0 + (N / p["N_c"]) ** (p["alpha_N"] / p["alpha_D"]) * p["D_c"] / D) ** p["alpha_D"] - 1.0


def data_requirement(N: Any, nd: dict[str, float] | None = None, penalty: float = 0.022) -> np.ndarray:
    """Tokens D at which the overfitting penalty δL equals `penalty` (paper: D ≳ 5e3·N^0.74 at about 2%)."""
    if not penalty > 0:
        raise UserError("penalty must be positive")
    p = nd or TABLE2
    x = (1.0 + penalty) ** (1.0 / p["alpha_D"]) - 1.0
    return (np.asarray(N, float) / p["N_c"]) ** (p["alpha_N"] / p["alpha_D"]) * p["D_c"] / x


def s_stop(N: Any, D: Any, nd: dict[str, float] | None = None, ns: dict[str, float] | None = None) -> np.ndarray:
    """Early-stopping bound S_stop(N, D) ≳ S_c/[L(N, D) − L(N, ∞)]^(1/α_S) (eq 5.7)."""
    p, q = nd or TABLE2, ns or TABLE3
    N, D = np.asarray(N, float), np.asarray(D, float)
    l_inf = (p["N_c"] / N) ** p["alpha_N"]
    l_nd = ((p["N_c"] / N) ** (p["alpha_N"] / p["alpha_D"]) + p["D_c"] / D) ** p["alpha_D"]
    return q["S_c"] / (l_nd - l_inf) ** (1.0 / q["alpha_S"])
