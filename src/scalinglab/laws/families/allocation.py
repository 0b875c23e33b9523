"""Compute-optimal allocation measured directly: Chinchilla's approach 2 (`IsoFLOP`) and approach 1 (`Frontier`).

Both estimate N_opt(C) = N_coef·C^a and D_opt(C) = D_coef·C^b by least squares in logs (C in FLOPs), with
bootstrap CIs that resample the independent unit: points within each budget (approach 2), whole runs (approach 1).

Approach 2, per budget (`budget_minimum`): the sizes are sorted by ln N; the budget is dropped when it has fewer
than 3 sizes, or when its lowest loss lies at the smallest or largest sampled size (the minimum is not bracketed).
Otherwise a parabola in ln N is fitted to the `window` points nearest (in ln N) the lowest-loss point (default 5;
window=0 uses every point, the global parabola of `frontier.isoflop_optima`), and its vertex is N_opt (dropped
when the local parabola is not convex or its vertex leaves the sampled range). A global parabola over a wide,
asymmetric range moves the vertex (Open-Athena, "Problems with Chinchilla Approach 2"); near the minimum any
smooth curve is a parabola. D_opt = C/(6·N_opt). Budgets are the distinct values of C, or of `group` (default, when the
rows have one: the `budget` column a store's frame carries, laws/framework/data.py).

Approach 1 (`Frontier`): method "envelope" is Hoffmann et al.'s: the lowest loss over all runs at each compute
(`frontier.compute_frontier`), with the run (N) reaching it; method "hull" takes the vertices of the lower convex
hull of (ln C, ln L) over all checkpoints up to the lowest loss. D at a frontier point is the run's D interpolated
at that compute when the curves have a D column, else C/(6N).

With method "akima" (`IsoFLOP(method="akima")`, Porian et al. 2024) a budget's minimum is found over its whole
curve instead: the losses at each size (averaged over repeats, weighted by the bootstrap counts) are interpolated in
ln N with scipy's Akima1DInterpolator and the argmin is taken on a 1000-point grid; a budget whose lowest loss is
at the smallest or largest size is dropped, as for the parabola. The bootstrap is the same (points within budgets).

Both are registered laws (`sl.fit_law("isoflop", df)`, `sl.get_law("frontier", method="hull")`) with the estimator
contract of laws/framework/base.py: settings in the constructor (`bootstrap`, `seed`, `window`, `method`, `group`,
...), `fit(df)` returns the estimator, `params_`, `ci95_`, `predict(df, interval=...)` (a DataFrame of N_opt,
D_opt and their band), `summary()`, `to_dict()` / `from_dict()`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from scalinglab.errors import UserError
from scalinglab.laws.families.frontier import envelope
from scalinglab.laws.framework.base import Estimator, check_interval
from scalinglab.laws.framework.columns import data_range

PARAMS = ("a", "N_coef", "b", "D_coef")
FORMULA = "N_opt = N_coef * C^a, D_opt = D_coef * C^b (C in FLOPs)"


def _loglog(C: np.ndarray, Y: np.ndarray, w: np.ndarray | None = None) -> tuple[float, float]:
    """Y = k·C^a by (weighted) least squares in logs -> (a, k)."""
    a, lk = np.polyfit(np.log(C), np.log(Y), 1, w=None if w is None else np.sqrt(w))
    return float(a), float(math.exp(lk))


def _percentiles(samples: np.ndarray) -> dict[str, list[float]]:
    ok = np.isfinite(samples).all(axis=1)
    if ok.sum() < 10:
        return {}
    lo, hi = np.percentile(samples[ok], [2.5, 97.5], axis=0)
    return {p: [float(a), float(b)] for p, a, b in zip(PARAMS, lo, hi, strict=True)}


class _Allocation(Estimator):
    """Shared surface of the two approaches: parameters a, N_coef, b, D_coef and their bootstrap draws."""

    name: ClassVar[str] = ""
    resample: ClassVar[str] = ""
    provides: ClassVar[frozenset[str]] = frozenset({"allocation"})
    formula: ClassVar[str] = FORMULA
    inputs: ClassVar[tuple[str, ...]] = ("C",)
    param_names: ClassVar[tuple[str, ...]] = PARAMS
    target: ClassVar[str] = "N_opt"

    def __init__(self, seed: int = 0, bootstrap: int = 0) -> None:
        self.seed = seed
        self.bootstrap = bootstrap
        self.params_: dict[str, float] | None = None
        self.ci95_: dict[str, list[float]] = {}
        self.bootstrap_: dict | None = None
        self.bootstrap_samples_: np.ndarray | None = None
        self.n_points_: int | None = None

    param_names = PARAMS
    target = "N_opt"
    inputs = ("C",)

    def get_options(self) -> dict[str, Any]:
        return {}

    def _check_fitted(self) -> None:
        if self.params_ is None:
            raise UserError(f"{self.name} is not fitted yet; call fit() first")

    @staticmethod
    def allocate(params: dict[str, float], C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        C = np.asarray(C, float)
        return params["N_coef"] * C ** params["a"], params["D_coef"] * C ** params["b"]

    def predict(self, X: Any = None, interval: str | None = None, **columns: Any):
        """N_opt and D_opt at compute C (FLOPs): a DataFrame (or the columns of a DataFrame X with a C column);
        with interval="mean" or "measurement" also their 95% bootstrap band (N_opt_lo, N_opt_hi, ...: the
        allocation is not a measured quantity, so both bands are the band of the fitted allocation)."""
        import pandas as pd

        if check_interval(interval) is not None:
            from scalinglab.laws.analyses.prediction import predict_frame

            return predict_frame(self, X if X is not None else columns, interval)
        self._check_fitted()
        C = _compute_column(X, columns, self.name)
        N, D = self.allocate(self.params_ or {}, C)
        return pd.DataFrame({"C": C, "N_opt": N, "D_opt": D})

    def predict_interval(self, X: Any = None, **columns: Any):
        """95% percentile band of N_opt and D_opt over the bootstrap draws (UserError when there are none)."""
        import pandas as pd

        self._check_fitted()
        if self.bootstrap_samples_ is None:
            raise UserError(f"the {self.name} fit has no bootstrap draws; refit with --bootstrap K for intervals")
        C = _compute_column(X, columns, self.name)
        s = self.bootstrap_samples_[np.isfinite(self.bootstrap_samples_).all(axis=1)]
        N = s[:, 1:2] * C[None, :] ** s[:, 0:1]
        D = s[:, 3:4] * C[None, :] ** s[:, 2:3]
        (nl, nh), (dl, dh) = np.percentile(N, [2.5, 97.5], axis=0), np.percentile(D, [2.5, 97.5], axis=0)
        return pd.DataFrame({"C": C, "N_opt_lo": nl, "N_opt_hi": nh, "D_opt_lo": dl, "D_opt_hi": dh})

    def _attach_bootstrap(self, samples: np.ndarray, k: int, seed: int) -> None:
        ok = np.isfinite(samples).all(axis=1)
        self.bootstrap_samples_ = samples
        self.bootstrap_ = {"k": int(k), "seed": int(seed), "converged_fraction": float(ok.mean()) if k else 0.0,
                           "resample": self.resample, "ci": "95% percentile"}
        self.ci95_ = _percentiles(samples)

    def to_dict(self, include_samples: bool = True) -> dict[str, Any]:
        self._check_fitted()
        out: dict[str, Any] = {"law": self.name, "formula": self.formula, "inputs": list(self.inputs), "target": self.target,
                               "options": self.get_options(), "params": dict(self.params_ or {}),
                               "ci95": dict(self.ci95_), "n_points": self.n_points_,
                               "data_range": getattr(self, "data_range_", None)}
        return self._finish_dict(out, include_samples)

    def _bootstrap_k(self, bootstrap: int | None) -> int:
        k = self.bootstrap if bootstrap is None else bootstrap
        if not (isinstance(k, int | np.integer) and k >= 0):
            raise UserError(f"bootstrap must be a whole number >= 0, got {k!r}")
        return int(k)

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> _Allocation:
        """Rebuild a fitted approach-1/2 result from `to_dict()` output."""
        kind = cls
        try:
            obj = kind(**dict(d.get("options") or {}))
        except TypeError:
            raise UserError(f"fit of {kind.name} has unknown options {d.get('options')}") from None
        params = d.get("params") or {}
        try:
            obj.params_ = {p: float(params[p]) for p in PARAMS}
        except (KeyError, TypeError, ValueError):
            raise UserError(f"fit of {kind.name} must have numeric params {', '.join(PARAMS)}") from None
        obj.ci95_ = {k: list(v) for k, v in (d.get("ci95") or {}).items()}
        obj.n_points_ = d.get("n_points")
        obj.data_range_ = d.get("data_range")
        boot = d.get("bootstrap")
        if isinstance(boot, dict):
            obj.bootstrap_ = {k: v for k, v in boot.items() if k != "samples"}
            arr = np.asarray(boot.get("samples") or [], float)
            if arr.ndim == 2 and arr.shape[1] == len(PARAMS):
                obj.bootstrap_samples_ = arr
        return obj


def _compute_column(X: Any, columns: dict[str, Any], name: str) -> np.ndarray:
    if X is not None:
        columns = {c: X[c] for c in getattr(X, "columns", X)}
    if "C" not in columns:
        raise UserError(f"{name} predicts the allocation at a compute budget: give C (FLOPs)")
    C = np.atleast_1d(np.asarray(columns["C"], float))
    if not (np.isfinite(C).all() and (C > 0).all()):
        raise UserError("C must be positive and finite")
    return C


# ---- approach 2 ------------------------------------------------------------------------------------------
def budget_minimum(x: np.ndarray, L: np.ndarray, w: np.ndarray | None = None,
                   window: int = 5) -> tuple[float | None, float | None, str]:
    """Minimum of one IsoFLOP curve: (ln N_opt, L_min, reason); None and the reason when it is not usable.

    x = ln N, L = loss, w = point weights (bootstrap counts; zero-weight points are absent)."""
    if w is not None:
        keep = w > 0
        x, L, w = x[keep], L[keep], w[keep]
    sizes = np.unique(x)
    if sizes.size < 3:
        return None, None, f"fewer than 3 sizes ({sizes.size})"
    i = int(np.argmin(L))
    if x[i] <= sizes[0] or x[i] >= sizes[-1]:
        return None, None, "lowest loss at the edge of the sampled sizes"
    if window and window < len(x):
        order = np.argsort(np.abs(x - x[i]), kind="stable")
        k = max(window, int(np.searchsorted(np.cumsum(_first_seen(x[order])), 3)) + 1)  # >= 3 distinct sizes
        near = order[:k]
        x, L, w = x[near], L[near], None if w is None else w[near]
    p2, p1, p0 = np.polyfit(x, L, 2, w=None if w is None else np.sqrt(w))
    if not p2 > 0:
        return None, None, "parabola near the minimum is not convex"
    xv = -p1 / (2.0 * p2)
    if not sizes[0] <= xv <= sizes[-1]:
        return None, None, "parabola vertex outside the sampled sizes"
    return float(xv), float(p0 + p1 * xv + p2 * xv * xv), ""


def akima_minimum(x: np.ndarray, L: np.ndarray, w: np.ndarray | None = None,
                  window: int = 0) -> tuple[float | None, float | None, str]:
    """Minimum of one IsoFLOP curve by Akima interpolation of L over ln N across the whole curve (Porian et al.
    2024), its argmin on a grid of 1000 points: (ln N_opt, L_min, reason). Repeated sizes (bootstrap copies or
    seeds) are averaged, weighted by w; the budget is dropped when the lowest loss is at an end of the sizes.
    `window` is the parabola's setting and is not used here."""
    from scipy.interpolate import Akima1DInterpolator

    w = np.ones(len(x)) if w is None else np.asarray(w, float)
    keep = w > 0
    x, L, w = x[keep], L[keep], w[keep]
    sizes, inv = np.unique(x, return_inverse=True)
    if sizes.size < 3:
        return None, None, f"fewer than 3 sizes ({sizes.size})"
    mean = np.bincount(inv, weights=w * L) / np.bincount(inv, weights=w)
    i = int(np.argmin(mean))
    if i == 0 or i == sizes.size - 1:
        return None, None, "lowest loss at the edge of the sampled sizes"
    grid = np.linspace(sizes[0], sizes[-1], 1000)
    curve = Akima1DInterpolator(sizes, mean)(grid)
    j = int(np.argmin(curve))
    return float(grid[j]), float(curve[j]), ""


def _first_seen(v: np.ndarray) -> np.ndarray:
    """1 where a value appears for the first time in v, else 0."""
    _, first = np.unique(v, return_index=True)
    out = np.zeros(len(v), int)
    out[first] = 1
    return out


class IsoFLOP(_Allocation, register={"isoflop": {}}):
    """Approach 2: IsoFLOP minima per budget: method "parabola" (over the `window` sizes nearest the minimum) or
    "akima" (Akima interpolation of L over ln N across the whole curve, Porian et al. 2024)."""

    name = "isoflop"
    resample = "points within each budget"
    reads = "budgets"
    families = None  # an IsoFLOP plan's runs, whatever their family

    def __init__(self, window: int = 5, group: str | None = None, method: str = "parabola", seed: int = 0,
                 bootstrap: int = 0) -> None:
        if window != 0 and window < 3:
            raise UserError(f"isoflop window must be 0 (all points) or at least 3, got {window}")
        if method not in ("parabola", "akima"):
            raise UserError(f"isoflop method must be parabola or akima, got {method!r}")
        super().__init__(seed, bootstrap)
        self.window = window
        self.group = group
        self.method = method
        self.per_budget_: list[dict[str, Any]] = []

    def get_options(self) -> dict[str, Any]:
        return {"window": self.window, "group": self.group, "method": self.method}

    def _budgets(self, data: Any) -> list[tuple[float, np.ndarray, np.ndarray]]:
        """[(C, ln N, L)] per budget, validated."""
        import pandas as pd

        from scalinglab.laws.families.frontier import _numeric

        df = pd.DataFrame(data)
        have = set(map(str, df.columns))
        if not {"N", "L"} <= have or not ({"C"} <= have or {"D"} <= have):
            raise UserError("isoflop needs columns N, L and C (or D, with C = 6ND); columns present: "
                            f"{', '.join(map(str, df.columns))}")
        if self.group is not None and self.group not in have:
            raise UserError(f"--group {self.group}: no such column; columns present: {', '.join(sorted(have))}")
        df = _numeric(df, tuple(c for c in ("N", "D", "C", "L") if c in have))
        if "C" not in have:
            df["C"] = 6.0 * df["N"] * df["D"]
        for c in ("N", "C", "L"):
            bad = ~(np.isfinite(df[c]) & (df[c] > 0))
            if bad.any():
                raise UserError(f"column {c} must be positive and finite; row {int(np.flatnonzero(bad)[0]) + 1} is not")
        # a store's frame (laws/framework/data.py, reads = "budgets") names each run's planned budget
        key = self.group or ("budget" if "budget" in have else "C" if "C" in have else None)
        if key is None:  # C derived from 6ND: one budget per value to 3 significant digits
            df["_budget"] = [float(f"{c:.3g}") for c in df["C"]]
            key = "_budget"
        out = []
        for _, g in df.groupby(key, sort=True):
            C = float(np.exp(np.log(g["C"].to_numpy(float)).mean())) if key != "C" else float(g["C"].iloc[0])
            out.append((C, np.log(g["N"].to_numpy(float)), g["L"].to_numpy(float)))
        return sorted(out, key=lambda b: b[0])

    def _minima(self, budgets, weights=None) -> list[tuple[float, float | None, float | None, str]]:
        find = akima_minimum if self.method == "akima" else budget_minimum
        return [(C, *find(x, L, None if weights is None else weights[j], self.window))
                for j, (C, x, L) in enumerate(budgets)]

    @staticmethod
    def _scaling(minima) -> np.ndarray:
        used = [(C, xv) for C, xv, _, _ in minima if xv is not None]
        if len(used) < 2:
            return np.full(len(PARAMS), np.nan)
        C = np.array([u[0] for u in used])
        N = np.exp(np.array([u[1] for u in used]))
        a, kN = _loglog(C, N)
        b, kD = _loglog(C, C / (6.0 * N))
        return np.array([a, kN, b, kD])

    def fit(self, data: Any, bootstrap: int | None = None, seed: int | None = None) -> IsoFLOP:
        """Fit to a frame of runs (N, L and C or D); returns self. `bootstrap` overrides the setting for this fit."""
        bootstrap = self._bootstrap_k(bootstrap)
        seed = self.seed if seed is None else int(seed)
        budgets = self._budgets(data)
        minima = self._minima(budgets)
        self.per_budget_ = [{"C": C, "N_opt": None if xv is None else math.exp(xv),
                             "D_opt": None if xv is None else C / (6.0 * math.exp(xv)), "L_min": lm,
                             "n_points": int(len(b[1])), "n_sizes": int(np.unique(b[1]).size),
                             "inside": xv is not None, **({"dropped": why} if why else {})}
                            for (C, xv, lm, why), b in zip(minima, budgets, strict=True)]
        used = [r for r in self.per_budget_ if r["inside"]]
        if len(used) < 2:
            reasons = "; ".join(f"C={r['C']:.3g}: {r['dropped']}" for r in self.per_budget_ if not r["inside"])
            raise UserError(f"isoflop needs at least 2 budgets with a bracketed minimum, {len(used)} left"
                            + (f" ({reasons})" if reasons else ""))
        theta = self._scaling(minima)
        self.params_ = dict(zip(PARAMS, map(float, theta), strict=True))
        self.n_points_ = int(sum(len(b[1]) for b in budgets))
        self.data_range_ = data_range({"C": [r["C"] for r in used], "N": [r["N_opt"] for r in used],
                                       "D": [r["D_opt"] for r in used]})
        if bootstrap:
            rng = np.random.default_rng(seed)
            draws = [[rng.multinomial(len(x), np.full(len(x), 1.0 / len(x))) for _, x, _ in budgets]
                     for _ in range(bootstrap)]
            self._attach_bootstrap(np.array([self._scaling(self._minima(budgets, w)) for w in draws]),
                                   bootstrap, seed)
        return self

    def dropped(self) -> list[dict[str, Any]]:
        return [r for r in self.per_budget_ if not r["inside"]]

    def _extra_dict(self) -> dict[str, Any]:
        return {"per_budget": self.per_budget_, "n_budgets": sum(r["inside"] for r in self.per_budget_),
                "window_note": self._method_note()}

    def _method_note(self) -> str:
        if self.method == "akima":
            return "Akima interpolation of L over ln N across each budget's whole curve, minimum on a fine grid"
        return (f"parabola in ln N over the {self.window} points nearest each budget's lowest loss" if self.window
                else "one parabola in ln N over every point of each budget")


# ---- approach 1 ------------------------------------------------------------------------------------------
def lower_hull(lc: np.ndarray, ll: np.ndarray) -> np.ndarray:
    """Indices of the lower convex hull of (lc, ll) from the smallest lc up to the lowest ll, in lc order."""
    from scipy.spatial import ConvexHull, QhullError

    pts = np.column_stack([lc, ll])
    try:
        hull = ConvexHull(pts)
    except (QhullError, ValueError):
        raise UserError("the learning-curve points are degenerate (collinear); no convex hull") from None
    lower = hull.simplices[hull.equations[:, 1] < 0]  # facets whose outward normal points down
    idx = np.unique(lower.ravel())
    idx = idx[np.argsort(lc[idx], kind="stable")]
    stop = int(np.argmin(ll[idx]))
    return idx[: stop + 1]


class Frontier(_Allocation, register={"frontier": {}}):
    """Approach 1: N_opt(C), D_opt(C) along the compute-efficient frontier of learning curves."""

    name = "frontier"
    resample = "run"
    reads = "curves"

    def __init__(self, method: str = "envelope", n_points: int = 60, group: str | None = None, seed: int = 0,
                 bootstrap: int = 0) -> None:
        if method not in ("envelope", "hull"):
            raise UserError(f"frontier --method must be envelope or hull, got {method!r}")
        super().__init__(seed, bootstrap)
        self.method = method
        self.n_points = n_points
        self.group = group  # comma-separated columns naming a curve (default: run)
        self.points_: list[dict[str, Any]] = []

    def get_options(self) -> dict[str, Any]:
        return {"method": self.method, "n_points": self.n_points, "group": self.group}

    def _curves(self, data: Any):
        import pandas as pd

        from scalinglab.laws.families.frontier import _numeric

        df = pd.DataFrame(data)
        if self.group:
            cols = [c.strip() for c in self.group.split(",")]
            missing = [c for c in cols if c not in df.columns]
            if missing:
                raise UserError(f"--group {self.group}: no column {missing[0]!r}; columns: {', '.join(map(str, df.columns))}")
            df = df.assign(run=df[cols].astype(str).agg("_".join, axis=1))
        need = [c for c in ("run", "N", "C", "L") if c not in df.columns]
        if need:
            raise UserError(f"frontier needs learning curves with columns run (or --group COLS), N, C, L (optional D); "
                            f"missing {', '.join(need)}; columns present: {', '.join(map(str, df.columns))}")
        cols = ("N", "C", "L", "D") if "D" in df.columns else ("N", "C", "L")
        df = _numeric(df[["run", *cols]].assign(run=df["run"].astype(str)), cols)
        df = df[np.isfinite(df[list(cols)]).all(axis=1) & (df[list(cols)] > 0).all(axis=1)]
        if df["run"].nunique() < 2:
            raise UserError("frontier needs learning curves of at least 2 runs")
        return df.reset_index(drop=True)

    def _points(self, df, tables: dict | None, rows: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """(C, N, D) of the frontier points of the selected runs (envelope: rows of the tables; hull: df)."""
        if self.method == "hull":
            idx = lower_hull(np.log(df["C"].to_numpy(float)), np.log(df["L"].to_numpy(float)))
            sub = df.iloc[idx]
            C, N = sub["C"].to_numpy(float), sub["N"].to_numpy(float)
            D = sub["D"].to_numpy(float) if "D" in sub.columns else C / (6.0 * N)
            return C, N, D
        assert tables is not None
        C, _, who = envelope(tables, rows)
        N = tables["N"][who]
        if "logD" not in tables:
            return C, N, C / (6.0 * N)
        cols = np.searchsorted(tables["C"], C)
        return C, N, np.exp(tables["logD"][who, cols])

    @staticmethod
    def _scaling(C: np.ndarray, N: np.ndarray, D: np.ndarray) -> np.ndarray:
        if np.unique(N).size < 2:
            return np.full(len(PARAMS), np.nan)
        a, kN = _loglog(C, N)
        b, kD = _loglog(C, D)
        return np.array([a, kN, b, kD])

    def fit(self, data: Any, bootstrap: int | None = None, seed: int | None = None) -> Frontier:
        """Fit to learning curves (run, N, C, L; optional D); returns self."""
        from scalinglab.laws.families.frontier import envelope_tables

        bootstrap = self._bootstrap_k(bootstrap)
        seed = self.seed if seed is None else int(seed)
        df = self._curves(data)
        tables = (None if self.method == "hull" else
                  envelope_tables(df, self.n_points, "run", extra=("D",) if "D" in df.columns else ()))
        C, N, D = self._points(df, tables)
        theta = self._scaling(C, N, D)
        if not np.isfinite(theta).all():
            raise UserError(f"the {self.method} frontier has fewer than two model sizes; N_opt(C) cannot be fitted")
        self.params_ = dict(zip(PARAMS, map(float, theta), strict=True))
        self.points_ = [{"C": float(c), "N": float(n), "D": float(d)} for c, n, d in zip(C, N, D, strict=True)]
        self.n_points_ = int(len(df))
        self.data_range_ = data_range({"C": C, "N": N, "D": D})
        if bootstrap:
            self._attach_bootstrap(self._run_bootstrap(df, tables, bootstrap, seed), bootstrap, seed)
        return self

    def _run_bootstrap(self, df, tables: dict | None, k: int, seed: int) -> np.ndarray:
        """Resample whole runs (with replacement; a repeated curve adds nothing to a frontier) and refit."""
        runs = np.array(sorted(df["run"].unique()))  # the tables' row order
        codes = df["run"].map({r: i for i, r in enumerate(runs)}).to_numpy()
        rng = np.random.default_rng(seed)
        out = np.full((k, len(PARAMS)), np.nan)
        for i in range(k):
            rows = np.unique(rng.integers(0, len(runs), size=len(runs)))
            if rows.size < 2:
                continue
            sub = df[np.isin(codes, rows)] if self.method == "hull" else df
            out[i] = self._scaling(*self._points(sub, tables, rows))
        return out

    def _extra_dict(self) -> dict[str, Any]:
        return {"frontier_points": self.points_, "n_frontier_points": len(self.points_),
                "n_sizes_on_frontier": len({p["N"] for p in self.points_})}


def allocation_from_dict(d: dict[str, Any]) -> _Allocation:
    """A fitted isoflop/frontier estimator from its fit JSON."""
    law = Estimator.from_dict(d)
    if not isinstance(law, _Allocation):
        raise UserError(f"not an isoflop/frontier fit: law {d.get('law')!r}")
    return law
