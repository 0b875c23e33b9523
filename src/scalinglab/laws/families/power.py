"""One-variable laws: the power laws L(N), L(D), L(C), L(C_min) (Kaplan eqs 1.1-1.3, 3.3), each with an
irreducible-loss variant (`-e`: L = E + (X_c/X)^alpha), and the logarithmic alternatives log-n/-d/-c/-s
(L = a - b·ln X, Fig. 23) so a power law and a logarithm can be compared on the same points.

kaplan-c and kaplan-cmin hold C_c in PF-days; the data are FLOPs unless c_unit="pf-days".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scalinglab.errors import UserError
from scalinglab.laws.framework.base import Law, log_of_linear, softmax_lse
from scalinglab.laws.framework.constants import PF_DAY
from scalinglab.laws.framework.curves import curve_matrix, envelope, run_counts
from scalinglab.laws.framework.optimiser import bootstrap_fits


def _anchor_scale(x: np.ndarray, y: np.ndarray, alphas: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """For log y = alpha·(xc − x): the xc each alpha implies at the data median, plus offsets -> (A·O, 2)."""
    xc = np.median(x) + np.median(y) / alphas
    a = np.repeat(alphas, len(offsets))
    c = (xc[:, None] + offsets[None, :]).ravel()
    return np.column_stack([a, c])


class PowerLaw(Law):
    """L = (X_c/X)^alpha (eq 1.1–1.3, 3.3); with irreducible=True, L = E + (X_c/X)^alpha."""

    column = "N"
    exponent = "alpha_N"
    scale = "N_c"
    base_name = "kaplan-n"

    def __init__(self, irreducible: bool = False, **kw: Any) -> None:
        self.irreducible = bool(irreducible)
        x, e, s = self.column, self.exponent, self.scale
        self.inputs = (x,)
        if self.irreducible:
            self.param_names = ("E", e, s)
            self.log_params = (True, False, True)
        else:
            self.param_names = (e, s)
            self.log_params = (False, True)
        super().__init__(**kw)

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.base_name + ("-e" if self.irreducible else "")

    @property
    def formula(self) -> str:  # type: ignore[override]
        core = f"({self.scale}/{self.column})^{self.exponent}"
        return f"L = E + {core}" if self.irreducible else f"L = {core}"

    def get_options(self) -> dict[str, Any]:
        return {"irreducible": self.irreducible}

    def _logpred(self, theta, X, grad=True):
        x = X[None, :, 0]
        if not self.irreducible:
            a, c = theta[:, 0:1], theta[:, 1:2]
            cx = c - x
            f = a * cx
            return (f, [cx, a]) if grad else (f, None)  # d/da, d/dc (a: (P, 1), broadcast by the caller)
        e, a, c = theta[:, 0:1], theta[:, 1:2], theta[:, 2:3]
        cx = c - x
        u = a * cx
        f, (pe, pu) = softmax_lse(e, u)  # e (P, 1) broadcasts against u inside
        if not grad:
            return f, None
        J = [pe, pu * cx, pu * a]
        return f, J

    def _grid(self, X, y):
        x = X[:, 0]
        alphas = np.array([0.01, 0.03, 0.06, 0.1, 0.2, 0.4, 0.8, 1.5])
        offsets = np.array([-3.0, -1.0, 0.0, 1.0, 3.0])
        if not self.irreducible:
            return _anchor_scale(x, y, alphas, offsets)
        rows = []
        lmin = float(np.exp(y.min()))
        for frac in (0.05, 0.3, 0.6, 0.8, 0.9, 0.97):
            E = frac * lmin
            resid = np.log(np.maximum(np.exp(y) - E, 1e-12))
            ac = _anchor_scale(x, resid, alphas, offsets)
            rows.append(np.column_stack([np.full(len(ac), math.log(E)), ac]))
        return np.vstack(rows)


class KaplanN(PowerLaw, register={"kaplan-n": {}, "kaplan-n-e": {"irreducible": True}}):
    """Eq 1.1: L(N) = (N_c/N)^alpha_N (paper: alpha_N = 0.076, N_c = 8.8e13)."""

    column, exponent, scale, base_name = "N", "alpha_N", "N_c", "kaplan-n"


class KaplanD(PowerLaw, register={"kaplan-d": {}, "kaplan-d-e": {"irreducible": True}}):
    """Eq 1.2: L(D) = (D_c/D)^alpha_D (paper: alpha_D = 0.095, D_c = 5.4e13 tokens)."""

    column, exponent, scale, base_name = "D", "alpha_D", "D_c", "kaplan-d"
    provides = frozenset({"loss", "loss(D)"})


class KaplanC(PowerLaw, register={"kaplan-c": {}, "kaplan-c-e": {"irreducible": True}}):
    """Eq 3.3: L(C) = (C_c/C)^alpha_C at fixed batch; C_c in PF-days (paper: 0.057, 1.6e7).

    On learning curves (rows with a repeated run column) it is fitted on their compute-efficient frontier
    (paper §6), recomputed from the drawn runs inside every bootstrap resample."""

    column, exponent, scale, base_name = "C", "alpha_C", "C_c", "kaplan-c"
    curve_law = True
    reads = "curves"
    provides = frozenset({"loss", "loss(C)"})
    plan_rank = 1  # L(C) at a fixed batch: after L(C_min)
    frontier_points = 60  # log-spaced compute grid of the frontier

    def __init__(self, irreducible: bool = False, c_unit: str = "flops", **kw: Any) -> None:
        if c_unit not in ("flops", "pf-days"):
            raise UserError(f"unknown compute unit {c_unit!r}; use flops or pf-days")
        self.c_unit = c_unit
        super().__init__(irreducible=irreducible, **kw)

    def get_options(self) -> dict[str, Any]:
        return {"irreducible": self.irreducible, "c_unit": self.c_unit}

    def features(self, cols):
        c = np.asarray(cols["C"], dtype=float)
        return np.log(c / PF_DAY if self.c_unit == "flops" else c)[:, None]

    def _derive(self, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The frontier: at each compute of a log grid, the lowest loss any curve reaches (and which run)."""
        C, L = np.asarray(cols["C"], float), np.asarray(cols["L"], float)
        grid = np.geomspace(C.min(), C.max(), self.frontier_points)
        V, keys = curve_matrix(C, L, cols["run"], grid)
        env, who = envelope(V)
        ok = who >= 0
        self._frontier_V = V[:, ok]
        return {"C": grid[ok], "L": np.exp(env[ok]), "run": np.asarray(keys)[who[ok]]}

    def _bootstrap_runs(self, cols, rows, theta, k, seed):
        """Each resample's own frontier of its drawn runs on the common grid (weight 0 where none reaches)."""
        counts, _ = run_counts(cols["run"], k, seed)
        env, _ = envelope(self._frontier_V, counts)
        W = np.isfinite(env).astype(float)
        return bootstrap_fits(self, self._X, self._y, theta, k, seed, weights=W, targets=np.where(W > 0, env, 0.0))


class KaplanCmin(KaplanC, register={"kaplan-cmin": {}, "kaplan-cmin-e": {"irreducible": True}}):
    """Eq 1.3: L(C_min) = (C_c/C_min)^alpha_C with C_min = C/(1 + B/B_crit) (paper: 0.050, 3.1e8 PF-days)."""

    base_name = "kaplan-cmin"
    min_convert = "C"
    plan_rank = 0


class LogLaw(Law, register={f"log-{c.lower()}": {"column": c} for c in "NDCS"}):
    """Logarithmic alternative L = a − b·ln X (Kaplan Fig. 23 compares it with the power law)."""

    column = "N"

    def __init__(self, column: str = "N", **kw: Any) -> None:
        if column not in ("N", "D", "C", "S"):
            raise UserError(f"log law column must be N, D, C or S, not {column!r}")
        self.column = column
        self.inputs = (column,)
        self.param_names = ("a", "b")
        self.log_params = (False, False)
        super().__init__(**kw)

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"log-{self.column.lower()}"

    @property
    def formula(self) -> str:  # type: ignore[override]
        return f"L = a - b*ln({self.column})"

    def get_options(self) -> dict[str, Any]:
        return {"column": self.column}

    @property
    def reads(self) -> str:  # type: ignore[override]
        return "frontier-points" if self.column == "C" else "runs"

    def bounds(self):
        return np.array([[-1e4, 1e4], [-1e3, 1e3]])

    def _logpred(self, theta, X, grad=True):
        x = X[None, :, 0]
        f, inv = log_of_linear(theta[:, 0:1] - theta[:, 1:2] * x)
        return (f, [inv, -x * inv]) if grad else (f, None)

    def _grid(self, X, y):
        x = X[:, 0]
        slope, intercept = np.polyfit(x, np.exp(y), 1)
        b0, a0 = -slope, intercept
        rows = [[a0 * s, b0 * t] for s in (0.9, 1.0, 1.1) for t in (0.5, 1.0, 1.5)]
        return np.array(rows)
