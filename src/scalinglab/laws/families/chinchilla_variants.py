"""Variants of the Chinchilla form: exponents tied (alpha = beta), and repeated data (Muennighoff et al. 2023).

- `chinchilla-tied`: L = E + A/N^alpha + B/D^alpha (the constrained form Muennighoff et al. 2023 and Gadre et al.
  2024 fit; one exponent, so N_opt ∝ C^0.5 and D_opt ∝ C^0.5 exactly).
- `data-constrained`: "Scaling Data-Constrained Language Models" (NeurIPS 2023), eqs. 5-7. With U unique tokens
  seen D/U times, repeated tokens are worth less and parameters beyond what U tokens can use are worth less:

      L = E + A/N'^alpha + B/D'^beta
      D' = U_D + U_D·R_D*·(1 − exp(−R_D/R_D*)),  U_D = min(U, D),  R_D = D/U_D − 1   (repetitions beyond one epoch)
      N' = U_N + U_N·R_N*·(1 − exp(−R_N/R_N*)),  U_N = min(N_opt(U_D), N),  R_N = N/U_N − 1

  where N_opt(U_D) is the Chinchilla compute-optimal size for U_D tokens: G^(1+beta/alpha)·U_D^(beta/alpha),
  G = (alpha·A/(beta·B))^(1/(alpha+beta)). Fitted, as they fit it, by Huber (δ = 1e-3) on log L. Their published
  values: E = 1.87, A = 521, B = 1488, alpha = beta = 0.353, R_N* = 5.3, R_D* = 15.4. With R_D = R_N = 0 (no
  repeated token, N <= N_opt(U_D)) it is the Chinchilla form; note that a model larger than N_opt of its tokens is
  discounted even in one epoch. `--fix E=... --fix A=...` holds the Chinchilla part fixed (their two-stage fit).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scalinglab.laws.families.chinchilla import Chinchilla
from scalinglab.laws.framework.base import Law


class ChinchillaTied(Chinchilla, register={"chinchilla-tied": {}}):
    """L = E + A/N^alpha + B/D^alpha: the Chinchilla form with one exponent for N and D (the same solvers)."""

    name = "chinchilla-tied"
    formula = "L = E + A/N^alpha + B/D^alpha"
    inputs = ("N", "D")
    param_names = ("E", "A", "B", "alpha")
    log_params = (True, True, True, False)

    def bounds(self):
        b = Law.bounds(self)
        b[3] = (0.0, 10.0)
        return b

    def _logpred(self, theta, X, grad=True):
        xN, xD = X[None, :, 0], X[None, :, 1]
        e, a, b, al = (theta[:, i:i + 1] for i in range(4))
        T1 = np.exp(a - al * xN)
        T2 = np.exp(b - al * xD)
        E = np.exp(e)
        tot = T1 + T2 + E
        f = np.log(tot)
        if not grad:
            return f, None
        p0, p1, p2 = E / tot, T1 / tot, T2 / tot
        return f, [p0, p1, p2, -p1 * xN - p2 * xD]

    def _grid(self, X, y):
        """Epoch AI's grid with one exponent: alpha 0..2 by 0.5, log E −1..1 by 0.5, log A, log B 0..25 by 5."""
        E, A, B, al = np.meshgrid(np.arange(-1.0, 1.01, 0.5), np.arange(0.0, 25.01, 5.0), np.arange(0.0, 25.01, 5.0),
                                  np.arange(0.0, 2.01, 0.5), indexing="ij")
        return np.column_stack([E.ravel(), A.ravel(), B.ravel(), al.ravel()])

    def derived(self, params):
        al, A, B = params["alpha"], params["A"], params["B"]
        if al <= 0:
            return {"a": float("nan"), "b": float("nan"), "G": float("nan")}
        return {"a": 0.5, "b": 0.5, "G": (A / B) ** (1.0 / (2.0 * al))}


def effective(x_unique: np.ndarray, repeats: np.ndarray, star: np.ndarray) -> np.ndarray:
    """log of U + U·R*·(1 − exp(−R/R*)) given log U, R >= 0 and R* (eq. 5/6): effective data or parameters."""
    return x_unique + np.log1p(star * -np.expm1(-repeats / star))


class DataConstrained(Law, register={"data-constrained": {}}):
    """Muennighoff et al. 2023 eqs. 5-7: the Chinchilla form on effective data D' and effective parameters N'."""

    name = "data-constrained"
    provides = frozenset({"loss", "allocation", "unique-tokens"})
    trained_tokens = True
    families = ("main", "d-subsets")
    formula = ("L = E + A/N'^alpha + B/D'^beta; D' = U_D(1 + R_D*(1 - exp(-R_D/R_D*))), "
               "N' = U_N(1 + R_N*(1 - exp(-R_N/R_N*)))")
    inputs = ("N", "D", "U")
    param_names = ("E", "A", "B", "alpha", "beta", "R_D_star", "R_N_star")
    log_params = (True, True, True, False, False, True, True)

    def bounds(self):
        b = super().bounds()
        b[3] = b[4] = (1e-3, 10.0)
        b[5] = b[6] = (np.log(1e-3), np.log(1e4))
        return b

    def compute_key(self, cols):
        return 6.0 * np.asarray(cols["N"], float) * np.asarray(cols["D"], float)

    def log_effective(self, theta: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(log N', log D') for parameter rows theta (P, 7) at points X (n, 3) of log N, log D, log U."""
        xN, xD, xU = X[None, :, 0], X[None, :, 1], X[None, :, 2]
        _, a, b, al, be, lrd, lrn = (theta[:, i:i + 1] for i in range(7))
        xUD = np.minimum(xU, xD)
        logG = (np.log(al) + a - np.log(be) - b) / (al + be)
        xUN = np.minimum((1.0 + be / al) * logG + (be / al) * xUD, xN)  # U_N = min(N_opt(U_D), N)
        with np.errstate(over="ignore", divide="ignore"):  # far-off grid starts: R = inf gives U·(1 + R*)
            logD = effective(xUD, np.expm1(xD - xUD), np.exp(lrd))
            logN = effective(xUN, np.expm1(xN - xUN), np.exp(lrn))
        return logN, logD

    def _logpred(self, theta, X, grad=True):
        if not grad:
            return self._value(theta, X), None
        # U_N's min() and the coupling through G make the analytic Jacobian long; a central difference in the
        # internal coordinates is accurate to ~1e-10 here and costs 14 evaluations, made in one call (_value is
        # row-wise, so every row is the same bits as evaluated alone)
        h = 1e-6
        P, k = theta.shape
        shifted = np.repeat(theta[None], 2 * k + 1, axis=0)  # theta, then theta ± h along each coordinate
        for j in range(k):
            shifted[1 + 2 * j, :, j] += h
            shifted[2 + 2 * j, :, j] -= h
        V = self._value(shifted.reshape(-1, k), X).reshape(2 * k + 1, P, -1)
        return V[0], [(V[1 + 2 * j] - V[2 + 2 * j]) / (2 * h) for j in range(k)]

    def _value(self, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
        e, a, b, al, be = (theta[:, i:i + 1] for i in range(5))
        logN, logD = self.log_effective(theta, X)
        t1, t2 = a - al * logN, b - be * logD
        m = np.maximum(np.maximum(e, t1), t2)
        return m + np.log(np.exp(e - m) + np.exp(t1 - m) + np.exp(t2 - m))

    def _grid(self, X, y):
        es, lg, ab = (-0.5, 0.0, 0.5, 1.0), (0.0, 5.0, 10.0, 15.0), (0.2, 0.4, 0.8)
        rs = np.log([3.0, 15.0, 60.0])
        mesh = np.meshgrid(es, lg, lg, ab, ab, rs, rs, indexing="ij")
        return np.column_stack([m.ravel() for m in mesh])

    def derived(self, params):
        al, be, A, B = params["alpha"], params["beta"], params["A"], params["B"]
        s = al + be
        return {"a": be / s, "b": al / s, "G": (al * A / (be * B)) ** (1.0 / s)}

    def predict_effective(self, N: Any, D: Any, U: Any) -> tuple[np.ndarray, np.ndarray]:
        """(N', D'): effective parameters and effective data at the fitted parameters."""
        self._check_fitted()
        N, D, U = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, float)) for v in (N, D, U)))
        X = np.column_stack([np.log(N), np.log(D), np.log(U)])
        logN, logD = self.log_effective(self.theta_from_params(self.params_ or {})[None, :], X)
        return np.exp(logN[0]), np.exp(logD[0])
