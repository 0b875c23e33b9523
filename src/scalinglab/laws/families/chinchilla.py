"""The Chinchilla form (Hoffmann et al. 2022, approach 3) with its compute-optimal allocation as derived values."""

from __future__ import annotations

from typing import Any

import numpy as np

from scalinglab.laws.framework.base import Law


class Chinchilla(Law, register={"chinchilla": {}}):
    """Hoffmann et al. 2022: L(N, D) = E + A/N^alpha + B/D^beta, fitted like their approach 3."""

    name = "chinchilla"
    provides = frozenset({"loss", "allocation"})
    formula = "L = E + A/N^alpha + B/D^beta"
    inputs = ("N", "D")
    param_names = ("E", "A", "B", "alpha", "beta")
    log_params = (True, True, True, False, False)

    def __init__(self, solver: str = "varpro", **kw: Any) -> None:
        from scalinglab.laws.framework.projection import check_solver

        self.solver = check_solver(solver)  # varpro (variable projection, laws/framework/projection.py) or grid (starts)
        super().__init__(**kw)

    def get_options(self) -> dict[str, Any]:
        return {"solver": self.solver}

    def _optimise(self, X: np.ndarray, y: np.ndarray):
        from scalinglab.laws.framework.projection import optimise_with

        return optimise_with(self, X, y)

    def bounds(self):
        b = super().bounds()
        b[3] = b[4] = (0.0, 10.0)
        return b

    def _logpred(self, theta, X, grad=True):
        xN, xD = X[None, :, 0], X[None, :, 1]
        e, a, b, al, be = (theta[:, i:i + 1] for i in range(5))
        # two exps and one log per point (the terms stay far from overflow inside the bounds)
        T1 = np.exp(a - al * xN)
        T2 = np.exp(b - be * xD)
        E = np.exp(e)
        tot = T1 + T2 + E
        f = np.log(tot)
        if not grad:
            return f, None
        inv = 1.0 / tot
        p0, p1, p2 = E * inv, T1 * inv, T2 * inv
        J = [p0, p1, p2, -p1 * xN, -p2 * xD]
        return f, J

    def _grid(self, X, y):
        """Epoch AI's replication grid: alpha, beta in 0..2 by 0.5, log E in −1..1 by 0.5, log A, log B in 0..25 by 5."""
        ab = np.arange(0.0, 2.01, 0.5)
        es = np.arange(-1.0, 1.01, 0.5)
        lg = np.arange(0.0, 25.01, 5.0)
        E, A, B, al, be = np.meshgrid(es, lg, lg, ab, ab, indexing="ij")
        return np.column_stack([E.ravel(), A.ravel(), B.ravel(), al.ravel(), be.ravel()])

    def derived(self, params):
        al, be, A, B = params["alpha"], params["beta"], params["A"], params["B"]
        s = al + be
        if s <= 0 or al <= 0 or be <= 0:
            return {"a": float("nan"), "b": float("nan"), "G": float("nan")}
        return {"a": be / s, "b": al / s, "G": (al * A / (be * B)) ** (1.0 / s)}
