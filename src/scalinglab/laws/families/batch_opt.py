"""batch-opt: the loss-optimal batch size as a power law of model size (or compute), from batch-size scans.

`batch-opt`:   B*(N) = B_0·(N/1e6)^beta_B   (B_0: the best batch of a model of 1e6 non-embedding parameters)
`batch-opt-c`: B*(C) = B_0·(C/1e15)^beta_B  (C in FLOPs; DeepSeek LLM 2024 fit B_opt = 0.292·C^0.3271 tokens,
               which is this law's derived `B_coef` and beta_B)

The rows are runs: N, B (batch in tokens from a store: batch_size·n_ctx; the CSV's unit otherwise), D (tokens
trained on), L (final val loss, early-stopped for D-subset runs) and, for batch-opt-c, C. A scan is the runs of one
size N on one token budget D (budgets within 5% of each other are one); scans with fewer than two batch sizes are
left out. In each scan B* is the vertex of a parabola of L in ln B over the `window` points nearest the lowest-loss
batch (its neighbours; `optimal.budget_minimum`, as the isoflop law finds N_opt). Where the lowest loss is at the
smallest or largest batch of the scan, or the parabola is not usable, B* is the scanned batch of lowest loss and the
scan says why (`method`); at a grid edge (`at_edge`, listed in `edge_sizes`) B* is only a bound, fitted as if
measured unless `drop_edges=True` leaves those scans out (`used`).

The power law is a least-squares line in (ln X, ln B*) over the scans (X = N or C), so two scans at distinct X fit
it exactly; its interval is the bootstrap's: runs redrawn with replacement within each scan, B* and the line
refitted in every resample (`resample` = "run").
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scalinglab.errors import UserError
from scalinglab.laws.families.allocation import budget_minimum
from scalinglab.laws.framework.base import LOG_BOUNDS, Law

REFERENCE = {"N": 1e6, "C": 1e15}  # where B_0 is B*: inside the range of laptop and small-GPU studies
TOKEN_TOLERANCE = 0.05  # token counts within 5% are one budget (steps rounded to whole batches)


class BatchOpt(Law, register={"batch-opt": {}, "batch-opt-c": {"over": "C"}}):
    """B* = B_0·(X/X_ref)^beta_B over the best batch of each scan, X = N or C (see module doc)."""

    target = "B"
    trained_tokens = True
    families = ("batch-scan",)
    provides = frozenset({"batch"})
    param_names = ("B_0", "beta_B")
    log_params = (True, False)

    def __init__(self, over: str = "N", window: int = 3, drop_edges: bool = False, **kw: Any) -> None:
        if over not in REFERENCE:
            raise UserError(f"batch-opt fits B* over N or C, not {over!r}")
        if window < 3:
            raise UserError(f"batch-opt window must be at least 3 points (the best batch and its neighbours), got {window}")
        self.over = over
        self.window = int(window)
        self.drop_edges = bool(drop_edges)
        self.inputs = (over,)
        super().__init__(**kw)
        self.scans_: list[dict] = []

    @property
    def name(self) -> str:  # type: ignore[override]
        return "batch-opt" if self.over == "N" else "batch-opt-c"

    @property
    def formula(self) -> str:  # type: ignore[override]
        x = self.over
        return (f"B* = B_0*({x}/{REFERENCE[x]:.0e})^beta_B, B* = the loss-optimal batch (tokens) of each "
                f"batch-size scan at one {'N' if x == 'N' else 'N and D'}")

    def get_options(self) -> dict[str, Any]:
        return {"over": self.over, "window": self.window, "drop_edges": self.drop_edges}

    def required_columns(self) -> tuple[str, ...]:
        return ("N", "B", "D", "L", "C") if self.over == "C" else ("N", "B", "D", "L")

    def bounds(self) -> np.ndarray:
        return np.array([LOG_BOUNDS, (-10.0, 10.0)])  # B* may fall with N at small scale: measure, don't assume

    def _logpred(self, theta, X, grad=True):
        u = X[None, :, 0] - math.log(REFERENCE[self.over])
        f = theta[:, 0:1] + theta[:, 1:2] * u
        if not grad:
            return f, None
        return f, [np.ones_like(f), u]  # u (1, n): the caller broadcasts it

    def _grid(self, X, y):
        u = X[:, 0] - math.log(REFERENCE[self.over])
        return np.array([[np.median(y - b * u) + o, b] for b in (-0.5, 0.0, 0.3, 0.6, 1.0) for o in (-1.0, 0.0, 1.0)])

    def derived(self, params: dict[str, float]) -> dict[str, float]:
        """B_coef of B* = B_coef·X^beta_B in raw units (X in parameters or FLOPs), DeepSeek's form."""
        return {"B_coef": params["B_0"] * REFERENCE[self.over] ** -params["beta_B"]}

    # ---- fitting -------------------------------------------------------------------------------------
    def _fit_columns(self, cols: dict[str, np.ndarray], bootstrap: int, holdout: int, seed: int) -> None:
        """B* of every scan, the line through them; the bootstrap redraws runs within each scan."""
        scans = scan_groups(cols["N"], cols["D"], cols["B"])
        if not scans:
            raise UserError(f"{self.law_name}: no batch-size scan among the {len(cols['N'])} runs (runs of one size "
                            "N on one token budget D at two or more batch sizes B); select the batch-scan runs")
        found = [self._scan_record(cols, idx) for idx in scans]
        for s in found:
            s["used"] = not (self.drop_edges and s["at_edge"])
        scans = [idx for idx, s in zip(scans, found, strict=True) if s["used"]]
        used = [s for s in found if s["used"]]
        if not used:
            raise UserError(f"{self.law_name}: every scan's best batch is at an edge of its grid (drop_edges)")
        points = {c: np.array([s[c] for s in used]) for c in ("N", "D", "C", "B") if c in used[0]}
        self._check_levels(points)
        self._fit_arrays(points)
        self.scans_ = found
        self.resample_ = "run"
        self._n_units = int(sum(len(idx) for idx in scans))
        if bootstrap:
            samples, parabola = self._bootstrap(cols, scans, bootstrap, seed)
            self._attach_bootstrap(samples, np.isfinite(samples).all(axis=1), seed)
            self.bootstrap_.update(strata="runs redrawn within each scan (one N, one token budget)",
                                   parabola_fraction=parabola)
        if holdout:
            self.holdout_ = self._holdout(points, holdout)

    def _check_levels(self, points: dict[str, np.ndarray]) -> None:
        """Two or more levels of X more than 5% apart (nearly equal C of two scans would pin no slope)."""
        x = np.sort(points[self.over])
        if np.log(x[-1] / x[0]) > math.log1p(TOKEN_TOLERANCE):
            return
        what = "model size" if self.over == "N" else "compute level"
        hint = "" if self.over == "N" else "; batch-opt fits B*(N) instead"
        raise UserError(f"{self.law_name}: {len(x)} batch-size scan(s) at 1 {what} ({self.over} = "
                        f"{x[0]:.4g}); need scans at 2 or more{hint}")

    def _scan_record(self, cols: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, Any]:
        lnb, how, edge, lmin = scan_optimum(np.log(cols["B"][idx]), cols["L"][idx], None, self.window)
        batches = sorted({float(b) for b in cols["B"][idx]})
        grid = min(batches, key=lambda b: abs(math.log(b) - lnb))  # a grid argmin is that batch, not exp(log(it))
        rec = {"N": float(cols["N"][idx[0]]), "D": float(np.median(cols["D"][idx])),
               "B": grid if how != "parabola" else math.exp(lnb), "L": lmin, "batches": batches,
               "n_runs": int(len(idx)), "at_edge": edge, "method": how}
        if "C" in cols and self.over == "C":
            rec["C"] = float(np.median(cols["C"][idx]))
        return rec

    def _fit_arrays(self, cols: dict[str, np.ndarray]) -> np.ndarray:
        """Least squares in (ln X, ln B*) on one B* per scan (closed form; two points fit it exactly)."""
        u = np.log(np.asarray(cols[self.over], float)) - math.log(REFERENCE[self.over])
        y = np.log(np.asarray(cols["B"], float))
        if np.unique(u).size < 2:
            raise UserError(f"{self.law_name} needs B* at 2 or more distinct {self.over}; got {np.unique(u).size}")
        beta, lb0 = np.polyfit(u, y, 1)
        theta = np.array([lb0, beta])
        resid = lb0 + beta * u - y
        self._reset()
        self.params_ = {"B_0": float(math.exp(lb0)), "beta_B": float(beta)}
        self.residual_rms_ = float(np.sqrt(np.mean(resid**2)))
        self.objective_ = float(np.sum(resid**2))  # least squares, not the Huber objective of the other laws
        self.converged_ = True
        self.n_points_ = int(len(y))
        self.derived_ = self.derived(self.params_)
        self._X, self._y, self._theta = u[:, None], y, theta
        return theta

    def _bootstrap(self, cols: dict[str, np.ndarray], scans: list[np.ndarray], k: int,
                   seed: int) -> tuple[np.ndarray, float]:
        """(K, 2) draws of (B_0, beta_B) and the share of scan optima that came from a parabola."""
        rng = np.random.default_rng(seed)
        x = np.array([np.log(cols[self.over][idx]).mean() for idx in scans]) - math.log(REFERENCE[self.over])
        lnb, loss = np.log(cols["B"]), cols["L"]
        samples = np.full((k, 2), np.nan)
        parabola = 0
        for i in range(k):
            y = np.empty(len(scans))
            for j, idx in enumerate(scans):
                w = rng.multinomial(len(idx), np.full(len(idx), 1.0 / len(idx))).astype(float)
                y[j], how, _, _ = scan_optimum(lnb[idx], loss[idx], w, self.window)
                parabola += how == "parabola"
            beta, lb0 = np.polyfit(x, y, 1)
            samples[i] = [math.exp(lb0), beta]
        return samples, parabola / (k * len(scans))

    # ---- serialisation ---------------------------------------------------------------------------------
    def _extra_dict(self) -> dict[str, Any]:
        return {"scans": self.scans_, "edge_sizes": sorted({s["N"] for s in self.scans_ if s["at_edge"]}),
                "n_runs": int(sum(s["n_runs"] for s in self.scans_ if s.get("used", True))),
                "inputs_note": "runs (N, B tokens, D tokens, L) of batch-size scans; params fit one B* per scan"}

    def _load_extra(self, d: dict[str, Any]) -> None:
        self.scans_ = list(d.get("scans") or [])


def scan_groups(N: np.ndarray, D: np.ndarray, B: np.ndarray) -> list[np.ndarray]:
    """Row indices of each scan: one N, token counts within TOKEN_TOLERANCE, two or more distinct batch sizes."""
    out = []
    for size in np.unique(N):
        at = np.flatnonzero(N == size)
        order = at[np.argsort(D[at], kind="stable")]
        breaks = np.flatnonzero(np.diff(np.log(D[order])) > math.log1p(TOKEN_TOLERANCE)) + 1
        out += [np.sort(part) for part in np.split(order, breaks) if np.unique(B[part]).size >= 2]
    return out


def scan_optimum(lnb: np.ndarray, loss: np.ndarray, w: np.ndarray | None,
                 window: int) -> tuple[float, str, bool, float]:
    """(ln B*, how it was found, whether B* is at the scan's edge, L there) for one scan; `w` = bootstrap counts."""
    xv, lmin, why = budget_minimum(lnb, loss, w, window)
    if xv is not None:
        return xv, "parabola", False, float(lmin)
    if w is not None:
        lnb, loss = lnb[w > 0], loss[w > 0]
    i = int(np.argmin(loss))
    edge = bool(lnb[i] <= lnb.min() or lnb[i] >= lnb.max())
    return float(lnb[i]), f"grid argmin: {why.replace('sizes', 'batch sizes')}", edge, float(loss[i])
