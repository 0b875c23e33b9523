"""Two-variable Kaplan laws: L(N, D) (eq 1.5, overfitting) and L(N, S_min) (eq 1.6, learning curves)."""

from __future__ import annotations

import math

import numpy as np

from scalinglab.laws.framework.base import Law, softmax_lse


class KaplanND(Law, register={"kaplan-nd": {}}):
    """Eq 1.5: L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D (Table 2: 0.076, 0.103, 6.4e13, 1.8e13)."""

    name = "kaplan-nd"
    provides = frozenset({"loss", "allocation"})
    plan_rank = 1  # a numerical allocation: after the closed forms and approaches 1 and 2
    formula = "L = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D"
    inputs = ("N", "D")
    param_names = ("alpha_N", "alpha_D", "N_c", "D_c")
    log_params = (False, False, True, True)

    def _logpred(self, theta, X, grad=True):
        xN, xD = X[None, :, 0], X[None, :, 1]
        aN, aD, nc, dc = (theta[:, i:i + 1] for i in range(4))
        r = aN / aD
        ncx = nc - xN
        u1 = r * ncx
        u2 = dc - xD
        s, (p1, p2) = softmax_lse(u1, u2)
        f = aD * s
        if not grad:
            return f, None
        J = [p1 * ncx, s - p1 * u1, p1 * aN, aD * p2]
        return f, J

    def _grid(self, X, y):
        mN, mD, my = np.median(X[:, 0]), np.median(X[:, 1]), np.median(y)
        rows = []
        for aN in (0.03, 0.07, 0.15, 0.3, 0.6):
            for aD in (0.03, 0.07, 0.15, 0.3, 0.6):
                for on in (-2.0, 0.0, 2.0):
                    for od in (-2.0, 0.0, 2.0):
                        rows.append([aN, aD, mN + my / aN + on, mD + my / aD + od])
        return np.array(rows)

    def derived(self, params):
        return {"data_exponent": params["alpha_N"] / params["alpha_D"]}


class KaplanNS(Law, register={"kaplan-ns": {}}):
    """Eq 1.6: L(N, S_min) = (N_c/N)^alpha_N + (S_c/S_min)^alpha_S (Table 3: 0.077, 0.76, 6.5e13, 2.1e3)."""

    name = "kaplan-ns"
    curve_law = True
    reads = "curves"
    min_convert = "S"
    formula = "L = (N_c/N)^alpha_N + (S_c/S)^alpha_S"
    inputs = ("N", "S")
    param_names = ("alpha_N", "alpha_S", "N_c", "S_c")
    log_params = (False, False, True, True)

    def _logpred(self, theta, X, grad=True):
        xN, xS = X[None, :, 0], X[None, :, 1]
        aN, aS, nc, sc = (theta[:, i:i + 1] for i in range(4))
        ncx, scx = nc - xN, sc - xS
        u1, u2 = aN * ncx, aS * scx
        f, (p1, p2) = softmax_lse(u1, u2)
        if not grad:
            return f, None
        J = [p1 * ncx, p2 * scx, p1 * aN, p2 * aS]
        return f, J

    def _grid(self, X, y):
        mN, mS = np.median(X[:, 0]), np.median(X[:, 1])
        yh = np.median(y) - math.log(2.0)
        rows = []
        for aN in (0.03, 0.07, 0.15, 0.3, 0.6):
            for aS in (0.1, 0.3, 0.7, 1.5):
                for on in (-3.0, 0.0, 3.0):
                    for os_ in (-3.0, 0.0, 3.0):
                        rows.append([aN, aS, mN + yh / aN + on, mS + yh / aS + os_])
        return np.array(rows)
