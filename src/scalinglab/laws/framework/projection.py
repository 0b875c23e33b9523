"""Variable projection for the Chinchilla form L = E + A/N^alpha + B/D^beta (and its tied variant alpha = beta).

For fixed exponents the prediction is linear and non-negative in (E, A, B), so only the exponents need a search
(the idea of the vpnls project: Open-Athena/scaling-law-analysis). Our objective is Huber on log residuals, which
is not linear in (E, A, B); so the projection is used to find the basin and the full objective finishes the job:

1. on a grid of exponents, (E, A, B) >= 0 solve the weighted linear problem min sum_i (pred_i/L_i - 1)^2 (the
   relative error, i.e. the log residual to first order) exactly: for three unknowns the non-negative least
   squares solution is the best feasible unconstrained solution over the 7 supports, all solved batched;
2. the quarter of the grid with the smallest relative error is scored with the true Huber-on-log objective at
   its projected (E, A, B);
3. the best of them is polished with scipy's L-BFGS-B on the full objective in the law's internal coordinates,
   so the optimum is the one the grid-of-starts fit reaches (tests compare the two on every published set; a
   polish that does not converge falls back to the grid of starts).

`varpro_optimise(law, X, y, delta)` returns (theta, objective, converged) like `laws.fit.optimise`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

EXP_GRID = np.linspace(0.02, 1.6, 28)  # exponents searched on the projection (alpha, beta)
_SUPPORTS = [s for r in (1, 2, 3) for s in itertools.combinations(range(3), r)]


def projected_coefficients(gram: np.ndarray, rhs: np.ndarray, tss: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact NNLS for every grid point from its normal equations: gram (G, 3, 3), rhs (G, 3), total sum of squares
    of the target -> coefficients (G, 3) >= 0 and residual sum of squares (G,).

    For three unknowns the NNLS solution is the unconstrained least-squares solution on one of the 7 supports (or
    zero) that is feasible and has the smallest residual, so trying all supports at once is exact."""
    G = gram.shape[0]
    best = np.full(G, tss)  # the empty support: every coefficient zero
    coef = np.zeros((G, 3))
    for sup in _SUPPORTS:
        idx = np.array(sup)
        sub = gram[:, idx[:, None], idx[None, :]]
        b = rhs[:, idx]
        ok = np.abs(np.linalg.det(sub)) > 1e-300
        c = np.zeros((G, len(idx)))
        if ok.any():
            c[ok] = np.linalg.solve(sub[ok], b[ok][..., None])[..., 0]
        feasible = ok & (c >= 0).all(axis=1)
        rss = tss - np.einsum("gi,gi->g", c, b)  # at a least-squares solution, RSS = TSS - c.b
        better = feasible & (rss < best)
        best[better] = rss[better]
        full = np.zeros((G, 3))
        full[:, idx] = c
        coef[better] = full[better]
    return coef, best


def projected_starts(X: np.ndarray, y: np.ndarray, tied: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Exponent grid with projected (E, A, B): (G, 5) natural E, A, B, alpha, beta and each point's RSS of
    pred/L - 1.

    The basis is [1/L, N^-alpha/L, D^-beta/L]; its Gram matrix separates (the N column depends on alpha only, the
    D column on beta only), so the whole grid costs one small matrix product instead of G passes over the data."""
    xN, xD = X[:, 0], X[:, 1]
    u0 = np.exp(-y)  # 1/L
    g = EXP_GRID
    U1 = np.exp(-g[:, None] * xN[None, :]) * u0  # (m, n)
    U2 = np.exp(-g[:, None] * xD[None, :]) * u0
    m = len(g)
    if tied:
        ia = ib = np.arange(m)
        cross = np.einsum("an,an->a", U1, U2)
    else:
        ia, ib = (a.ravel() for a in np.meshgrid(np.arange(m), np.arange(m), indexing="ij"))
        cross = (U1 @ U2.T)[ia, ib]
    s1, s2 = U1 @ u0, U2 @ u0
    q1, q2 = np.einsum("an,an->a", U1, U1), np.einsum("an,an->a", U2, U2)
    G = len(ia)
    gram = np.empty((G, 3, 3))
    gram[:, 0, 0] = u0 @ u0
    gram[:, 0, 1] = gram[:, 1, 0] = s1[ia]
    gram[:, 0, 2] = gram[:, 2, 0] = s2[ib]
    gram[:, 1, 1], gram[:, 2, 2] = q1[ia], q2[ib]
    gram[:, 1, 2] = gram[:, 2, 1] = cross
    rhs = np.column_stack([np.full(G, u0.sum()), U1.sum(axis=1)[ia], U2.sum(axis=1)[ib]])
    coef, rss = projected_coefficients(gram, rhs, float(len(y)))
    return np.column_stack([coef, g[ia], g[ib]]), rss, (u0, U1[ia], U2[ib])


def huber_scores(coef: np.ndarray, basis: tuple[np.ndarray, np.ndarray, np.ndarray], delta: float,
                 huber: Callable) -> np.ndarray:
    """Huber-on-log objective of every grid point at its projected coefficients (the basis gives pred/L)."""
    u0, U1, U2 = basis
    ratio = coef[:, 0:1] * u0[None, :] + coef[:, 1:2] * U1 + coef[:, 2:3] * U2
    with np.errstate(divide="ignore", invalid="ignore"):
        h, _ = huber(np.log(ratio), delta)
    out = h.sum(axis=1)
    return np.where(np.isfinite(out), out, np.inf)


def _to_theta(natural: np.ndarray, y: np.ndarray, tied: bool) -> np.ndarray:
    """Natural (G, 5) -> the law's internal coordinates (log E, log A, log B, alpha[, beta]); a coefficient the
    projection set to zero starts at a tiny positive value (the log coordinates cannot hold 0)."""
    floor = 1e-10 * float(np.exp(y).min())
    logs = np.log(np.maximum(natural[:, :3], floor))
    return np.column_stack([logs, natural[:, 3]] if tied else [logs, natural[:, 3:5]])


def varpro_optimise(law, X: np.ndarray, y: np.ndarray, delta: float,
                    n_polish: int = 1) -> tuple[np.ndarray, float, bool]:
    """Best internal parameter vector of a chinchilla(-tied) law: projection grid -> Huber score -> polish with
    the optimiser module's objective and L-BFGS-B (which knows no law; this module imports no law)."""
    from scalinglab.laws.framework.optimiser import huber, objective
    from scalinglab.laws.framework.optimiser import scipy_polish as polish

    tied = len(law.param_names) == 4
    natural, rss, basis = projected_starts(X, y, tied)
    bounds = law.bounds()
    keep = np.argsort(rss, kind="stable")[: max(16, len(rss) // 4)]  # score the best quarter by relative error
    natural, basis = natural[keep], tuple(b if b.ndim == 1 else b[keep] for b in basis)
    scores = huber_scores(natural[:, :3], basis, delta, huber)
    thetas = np.clip(_to_theta(natural, y, tied), bounds[:, 0], bounds[:, 1])
    scale = 1.0 / (delta * len(y))
    picked: list[np.ndarray] = []
    for i in np.argsort(scores, kind="stable"):
        if len(picked) >= n_polish or not np.isfinite(scores[i]):
            break
        if all(np.abs(thetas[i, -2:] - p[-2:]).max() > 0.1 for p in picked):  # distinct exponent basins
            picked.append(thetas[i])

    def fg1(x: np.ndarray) -> tuple[float, np.ndarray]:
        o, g = objective(law, x[None, :], X, y, None, delta)
        return float(o[0]) * scale, g[0] * scale

    best = None
    for p in picked:
        xb, fb, conv = polish(fg1, p, bounds)
        if best is None or fb < best[1]:
            best = (xb, fb, conv)
    if best is None:
        return np.full(len(law.param_names), np.nan), np.inf, False
    return best[0], best[1] / scale, best[2]


SOLVERS = ("varpro", "grid")


def check_solver(solver: str) -> str:
    if solver not in SOLVERS:
        from scalinglab.errors import UserError

        raise UserError(f"unknown solver {solver!r}; use {' or '.join(SOLVERS)}")
    return solver


def optimise_with(law, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float, bool]:
    """The law's point fit by its `solver`: variable projection (falling back to the grid of starts when the
    polish does not converge) or the grid of starts."""
    from scalinglab.laws.framework.optimiser import optimise

    if law.solver == "grid":
        return optimise(law, X, y)
    theta, obj, ok = varpro_optimise(law, X, y, law.huber_delta)
    if not (ok and np.isfinite(obj)):
        return optimise(law, X, y)
    return theta, obj, ok
