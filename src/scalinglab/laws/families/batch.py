"""Batch-size laws (paper §5.1): B_crit(L) (eq 1.4) and the step/batch trade-off S(B) = S_min·(1 + B_crit/B)."""

from __future__ import annotations

from typing import Any

import numpy as np

from scalinglab.laws.framework.base import Law


def bcrit_at(L: Any, B_star: float, alpha_B: float) -> np.ndarray:
    """Eq 1.4: B_crit = B_star/L^(1/alpha_B) (tokens)."""
    return B_star / np.asarray(L, float) ** (1.0 / alpha_B)


class Bcrit(Law, register={"bcrit": {}}):
    """Eq 1.4: B_crit(L) = B_star / L^(1/alpha_B), fitted on (L, B) points (paper: B* ≈ 2e8 tokens, 0.21)."""

    name = "bcrit"
    curve_law = True
    reads = "noise-scale"
    provides = frozenset({"bcrit"})  # (L, noise-scale B_crit) points along learning curves, from a store
    formula = "B = B_star / L^(1/alpha_B)"
    target = "B"
    inputs = ("L",)
    param_names = ("B_star", "alpha_B")
    log_params = (True, False)

    def bounds(self):
        b = super().bounds()
        b[1] = (1e-3, 10.0)
        return b

    def compute_key(self, cols):
        return 1.0 / np.asarray(cols["L"], float)  # lowest loss = most compute

    def _logpred(self, theta, X, grad=True):
        x = X[None, :, 0]
        bs, aB = theta[:, 0:1], theta[:, 1:2]
        f = bs - x / aB
        if not grad:
            return f, None
        J = [np.ones_like(f), x / aB**2]
        return f, J

    def _grid(self, X, y):
        x = X[:, 0]
        rows = []
        for aB in (0.05, 0.1, 0.2, 0.35, 0.6, 1.0, 2.0):
            base = np.median(y + x / aB)
            rows += [[base + o, aB] for o in (-2.0, 0.0, 2.0)]
        return np.array(rows)


class BatchTradeoff(Law, register={"batch-tradeoff": {}}):
    """§5.1: S(B) = S_min·(1 + B_crit/B), i.e. (S/S_min − 1)(E/E_min − 1) = 1 with E = B·S, E_min = S_min·B_crit."""

    name = "batch-tradeoff"
    formula = "S = S_min*(1 + B_crit/B)"
    target = "S"
    inputs = ("B",)
    param_names = ("S_min", "B_crit")
    log_params = (True, True)

    def _logpred(self, theta, X, grad=True):
        x = X[None, :, 0]
        sm, bc = theta[:, 0:1], theta[:, 1:2]
        z = bc - x
        f = sm + np.logaddexp(0.0, z)
        if not grad:
            return f, None
        sig = 0.5 * (1.0 + np.tanh(0.5 * z))
        J = [np.ones_like(f), sig]
        return f, J

    def _grid(self, X, y):
        x = X[:, 0]
        rows = []
        for bc in np.linspace(x.min() - 3, x.max() + 3, 13):
            sm = np.median(y - np.logaddexp(0.0, bc - x))
            rows += [[sm + o, bc] for o in (-1.0, 0.0, 1.0)]
        return np.array(rows)

    def derived(self, params):
        return {"E_min": params["S_min"] * params["B_crit"]}
