"""Numerical machinery of every fit: Huber loss, batched L-BFGS, the multi-start optimiser, whitening, bootstrap.

This module imports no law: it works on any object with the Law interface (`_logpred`, `_grid`, `bounds`,
`huber_delta`, `params_from_theta`, `law_name`), so the law families and the framework build on it, never the
reverse.

The objective is sum_i w_i·huber_delta(log L_pred,i − log L_i) (δ = 1e-3 by default, Hoffmann et al.'s approach 3).
Every law evaluates a whole batch of parameter vectors at once with analytic gradients, so:

1. the grid of starts (4,500 for chinchilla, Epoch AI's grid) is scored in one numpy call;
2. the best `n_refine` starts are refined together by `lbfgs_batched` (numpy L-BFGS, one problem per row);
3. the best few distinct results are polished by scipy's L-BFGS-B with the analytic gradient and bounds;
4. the bootstrap is K resamples expressed as weight vectors, all optimised together by `lbfgs_batched`,
   warm-started from the full fit in whitened coordinates.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from scalinglab.cores import available_cores
from scalinglab.errors import UserError

try:  # the kernels np.clip and np.einsum run, called without their Python wrappers (same kernels, same bits)
    from numpy._core.multiarray import c_einsum as _einsum
    from numpy._core.umath import clip as _clip
except ImportError:  # another numpy layout (numpy < 2 or a later one): the public wrappers reach the same kernels
    _einsum, _clip = np.einsum, np.clip

# The fits evaluate a few rows of a few points thousands of times, so the cost is numpy's per-call overhead, not
# arithmetic: the code below avoids calls (fancy-index gathers, broadcast_to, Python wrappers) but never changes
# an operation or the order of a reduction, so every fit is bit-for-bit what it was (tests/test_laws_optimize.py).


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot product of two (p, k) arrays."""
    return _einsum("pk,pk->p", a, b)


def huber_loss(r: np.ndarray, delta: float) -> np.ndarray:
    """Huber loss elementwise: r²/2 inside |r| <= delta, linear outside."""
    a = np.abs(r)
    h = delta * (a - 0.5 * delta)
    np.multiply(0.5 * r, r, out=h, where=a <= delta)
    return h


def huber(r: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Huber loss and its derivative (psi) elementwise."""
    return huber_loss(r, delta), _clip(r, -delta, delta)


def objective(law: Any, theta: np.ndarray, X: np.ndarray, y: np.ndarray, w: np.ndarray | None,
              delta: float, grad: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Sum of weighted Huber losses for each row of theta (P, k); y is (n,) or one target row per problem (P, n);
    w is (n,), (P, n) or None."""
    f, J = law._logpred(theta, X, grad=grad)
    r = f - y
    h = huber_loss(r, delta)
    if w is not None:
        h = h * w
    obj = np.add.reduce(h, axis=1)
    finite = np.isfinite(obj)
    bad = None if finite.all() else ~finite
    if bad is not None:
        obj = np.where(bad, np.inf, obj)
    if not grad:
        return obj, None
    psi = _clip(r, -delta, delta)
    if w is not None:
        psi = psi * w
    g = np.empty((len(theta), len(J)))
    for j, Jj in enumerate(J):
        # a (P, 1) or (1, n) Jacobian column broadcasts inside einsum exactly as np.broadcast_to would (stride 0)
        g[:, j] = _einsum("pn,pn->p", psi, Jj if np.ndim(Jj) == 2 else np.broadcast_to(Jj, psi.shape))
    if bad is not None:
        g[bad] = 0.0
    return obj, g


def lbfgs_batched(fg: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]], x0: np.ndarray,
                  lo: np.ndarray, hi: np.ndarray, maxiter: int = 400, m: int = 10, ftol: float = 1e-15,
                  gtol: float = 1e-10, project: Callable[[np.ndarray], np.ndarray] | None = None,
                  rowwise: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimise P independent smooth problems at once with L-BFGS (projected onto box bounds).

    `project(x)` (default: clip to [lo, hi]) maps a trial point onto the feasible set; the objective is only ever
    evaluated at feasible points, so no flat region outside the bounds can pass for an optimum.

    `fg(x, idx)` returns objective (p,) and gradient (p, k) of problems `idx` at x (p, k). Each problem keeps its
    own curvature history and its own backtracking (Armijo) step; a problem stops when its relative decrease or
    projected gradient falls below tolerance. Returns x (P, k), f (P,), converged (P,) bool.

    ftol is near machine precision on purpose: in a long narrow valley (a power law with a small exponent, where
    α and ln N_c move together) each step gains very little, and a looser relative-decrease test stopped the
    bootstrap refits next to their start, which gave 95% CIs 20× too narrow.

    `rowwise=True` says that no operation of fg or project mixes rows (no matrix product: BLAS may round a row
    differently in a batch of another size), which lets the line search evaluate several halvings at once.
    """
    if project is None:
        def project(v: np.ndarray) -> np.ndarray:
            return _clip(v, lo, hi)
    x = project(np.array(x0, dtype=float))
    P, k = x.shape
    f, g = fg(x, np.arange(P))
    # curvature pairs slot-major, so the active rows of all slots gather in one call into contiguous (p, k) blocks
    S = np.zeros((m, P, k))
    Y = np.zeros((m, P, k))
    rho = np.zeros((m, P))
    gamma = np.ones(P)  # initial inverse-Hessian scale; set from the free gradient at each (re)start
    active = np.isfinite(f)
    converged = np.zeros(P, dtype=bool)
    fresh = np.ones(P, dtype=bool)  # no curvature pairs yet (at the start, or after a restart)
    for it in range(maxiter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        gi, x_old, f_old = g[idx], x[idx], f[idx]
        # variables held at a bound by a gradient pointing outwards take no part in the step (active set), or
        # the projection would cut every step to nothing when the quasi-Newton direction leans on that bound
        free = ~(((x_old <= lo) & (gi > 0)) | ((x_old >= hi) & (gi < 0)))
        q = gi * free
        gfree = np.abs(q).max(axis=1)
        first = fresh[idx] & (gfree > 0)  # first step after a (re)start: scaled steepest descent on the free part
        gamma[idx[first]] = 0.1 / gfree[first]
        order = [(it - 1 - j) % m for j in range(m)]  # newest pair first
        rho_i = rho[:, idx]
        if gfree.max() < 1e100:  # (False for inf/NaN) then a slot with rho = 0 for every row adds exactly ±0
            used = rho_i.any(axis=1)  # (empty before it is filled, or emptied by a restart): leave it out
            order = [j for j in order if used[j]]
        d = -_two_loop(q, S[:, idx], Y[:, idx], rho_i, gamma[idx], order) * free
        notdesc = _rowdot(gi, d) >= 0
        if notdesc.any():
            gf = gi[notdesc] * free[notdesc]
            d[notdesc] = -gf * (0.1 / np.maximum(np.abs(gf).max(axis=1), 1e-300))[:, None]
        x_new, f_new, g_new, accepted = _line_search(fg, project, idx, x_old, f_old, gi, d, rowwise)
        s = x_new - x_old
        yv = g_new - gi
        sy = _rowdot(s, yv)
        yy = _rowdot(yv, yv)
        valid = accepted & (sy > 1e-12 * np.sqrt(_rowdot(s, s) * yy + 1e-300))
        j = it % m
        if valid.all():  # the masked forms below, without their masks
            S[j, idx], Y[j, idx], rho[j, idx] = s, yv, 1.0 / sy
            gamma[idx] = sy / np.maximum(yy, 1e-300)
        else:
            S[j, idx] = np.where(valid[:, None], s, 0.0)
            Y[j, idx] = np.where(valid[:, None], yv, 0.0)
            rho[j, idx] = np.where(valid, 1.0 / np.where(valid, sy, 1.0), 0.0)
            gamma[idx] = np.where(valid, sy / np.maximum(yy, 1e-300), gamma[idx])
        x[idx], f[idx], g[idx] = x_new, f_new, g_new
        pg = np.abs(x_new - project(x_new - g_new)).max(axis=1)
        small_dec = (f_old - f_new) <= ftol * np.maximum(np.abs(f_old), 1e-300)
        # A failed line search (40 halvings) with curvature pairs in memory often means the quasi-Newton model
        # went stale at a kink of the Huber loss: restart from a scaled steepest-descent step. Only a failure
        # right after a restart means no descent is left (a numerical stationary point).
        restart = ~accepted & ~fresh[idx]
        if restart.any():
            rho[:, idx[restart]] = 0.0
        fresh[idx] = restart
        # a step that gains (almost) nothing ends the run, as scipy's factr test does: at the kink of a Huber
        # objective whose residuals all lie in the linear part the gradient never vanishes, so pg alone would
        # spin to maxiter (a flat plateau, where a term has not switched on, stops here too; see the tests)
        done = (pg <= gtol) | (accepted & small_dec) | (~accepted & ~restart)
        converged[idx] = done
        active[idx[done]] = False
    return x, f, converged


def _two_loop(q: np.ndarray, S: np.ndarray, Y: np.ndarray, rho: np.ndarray, gamma: np.ndarray,
              order: list[int]) -> np.ndarray:
    """L-BFGS two-loop recursion: the inverse-Hessian estimate times q (p, k), from the pairs S, Y (m, p, k) and
    rho (m, p) in `order`; invalid pairs have rho = 0 and drop out. q is overwritten.

    A pair with rho = 0 contributes 0·(s·q) to alpha and 0·(y·r) to beta, i.e. ±0 to q and r while the dot
    products are finite, so leaving it out changes at most the sign of an element that is zero (a variable
    held at a bound, whose step the caller zeroes anyway)."""
    alph = {}
    for j in order:
        alph[j] = a = rho[j] * _rowdot(S[j], q)
        q -= a[:, None] * Y[j]
    r = gamma[:, None] * q
    for j in reversed(order):
        beta = rho[j] * _rowdot(Y[j], r)
        r += S[j] * (alph[j] - beta)[:, None]
    return r


_HALVINGS = 40  # of the line search's step t = 1
_MAX_TRIAL_ROWS = 256  # rows of one call evaluating several halvings (see _line_search)


def _line_search(fg: Callable, project: Callable, idx: np.ndarray, x_old: np.ndarray, f_old: np.ndarray,
                 g_old: np.ndarray, d: np.ndarray, rowwise: bool = False,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Backtracking (Armijo) line search along d, each problem its own step: the first of t = 1, 1/2, ... (40
    halvings) with enough decrease; the problems still pending are evaluated together. Returns x, f, g after the
    step (the old ones where it failed) and which problems accepted a step.

    With `rowwise` (fg and project treat every row on its own, so a row's result does not depend on the rows
    beside it) each call after the first evaluates the next 2·done + 1 halvings of the pending problems at once:
    a search that fails all 40 (common at a kink of the Huber loss) costs 4 calls instead of 40, and each problem
    still takes its first acceptable halving, so the result is the same to the bit."""
    p = len(idx)
    x_new, f_new, g_new = x_old.copy(), f_old.copy(), g_old.copy()
    accepted = np.zeros(p, dtype=bool)
    pend = np.arange(p)
    xp, fp, gp, dp, ip = x_old, f_old, g_old, d, idx  # the pending problems' rows
    done = 0  # halvings tried; every pending problem is at t = 2^-done
    while done < _HALVINGS:
        n = len(pend)
        c = min(2 * done + 1, _HALVINGS - done, max(1, _MAX_TRIAL_ROWS // n)) if rowwise else 1
        if c == 1:
            xt = project(xp + math.ldexp(1.0, -done) * dp)
            ft, gt = fg(xt, ip)
            hit = sel = np.isfinite(ft) & (ft <= fp + 1e-4 * _rowdot(gp, xt - xp))
        else:  # trial-major rows: c halvings, the pending problems in order inside each
            ts = np.ldexp(1.0, -np.arange(done, done + c))
            xt = project((xp + ts[:, None, None] * dp).reshape(c * n, -1))
            ft, gt = fg(xt, np.concatenate((ip,) * c))
            dec = _rowdot(np.concatenate((gp,) * c), xt - np.concatenate((xp,) * c))
            ok = (np.isfinite(ft) & (ft <= np.concatenate((fp,) * c) + 1e-4 * dec)).reshape(c, n)
            hit = ok.any(axis=0)
            sel = ok.argmax(axis=0)[hit] * n + np.flatnonzero(hit)  # each problem's first acceptable halving
        done += c
        if hit.any():
            okp = pend[hit]
            x_new[okp], f_new[okp], g_new[okp] = xt[sel], ft[sel], gt[sel]
            accepted[okp] = True
            if hit.all():
                break
            keep = ~hit
            pend, xp, fp, gp, dp, ip = pend[keep], xp[keep], fp[keep], gp[keep], dp[keep], ip[keep]
    return x_new, f_new, g_new, accepted


@functools.cache
def _blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries, built once: building it scans the process's libraries
    (about 1-8 ms), more than a variable-projection fit's whole polish."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # optional: without it the fit is the same, only slower
        return None
    return ThreadpoolController()


def _one_blas_thread():
    """BLAS threads only slow L-BFGS-B's tiny vector ops (7x under load); pin to one when threadpoolctl is there."""
    ctl = _blas_controller()
    if ctl is None:
        from contextlib import nullcontext

        return nullcontext()
    return ctl.limit(limits=1, user_api="blas")


def scipy_polish(fg1: Callable, x0: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, float, bool]:
    from scipy.optimize import minimize

    with _one_blas_thread():
        res = minimize(fg1, x0, jac=True, method="L-BFGS-B", bounds=[tuple(b) for b in bounds],
                       options={"maxiter": 5000, "ftol": 1e-14, "gtol": 1e-11, "maxcor": 20})
    ok = bool(res.success) or "ABNORMAL" in str(res.message)  # ABNORMAL: line search at machine precision
    return np.asarray(res.x, float), float(res.fun), ok


def optimise(law: Any, X: np.ndarray, y: np.ndarray, w: np.ndarray | None = None, delta: float | None = None,
             n_refine: int = 32, n_polish: int = 3) -> tuple[np.ndarray, float, bool]:
    """Best internal parameter vector for one data set: grid -> batched L-BFGS -> scipy L-BFGS-B polish."""
    delta = law.huber_delta if delta is None else delta
    bounds = law.bounds()
    lo, hi = bounds[:, 0], bounds[:, 1]
    scale = 1.0 / (delta * len(y))  # objective ~ mean |log residual| / delta: well scaled for tolerances
    grid = np.clip(law._grid(X, y), lo, hi)
    scores = np.concatenate([objective(law, grid[i:i + 1024], X, y, w, delta, grad=False)[0]
                             for i in range(0, len(grid), 1024)])
    scores = np.where(np.isfinite(scores), scores, np.inf)
    top = grid[np.argsort(scores, kind="stable")[:n_refine]]

    def fg(x: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        o, g = objective(law, x, X, y, w, delta)
        return o * scale, g * scale

    xs, fs, _ = lbfgs_batched(fg, top, lo, hi, maxiter=300, rowwise=True)  # objective: elementwise + row sums
    order = np.argsort(np.where(np.isfinite(fs), fs, np.inf), kind="stable")
    picked: list[np.ndarray] = []
    for i in order:
        if len(picked) >= n_polish or not np.isfinite(fs[i]):
            break
        if all(np.abs(xs[i] - p).max() > 1e-6 for p in picked):
            picked.append(xs[i])
    if not picked:
        raise UserError(f"{law.law_name}: no start gave a finite objective; check the data")

    def fg1(x: np.ndarray) -> tuple[float, np.ndarray]:
        o, g = fg(x[None, :], np.arange(1))
        return float(o[0]), g[0]

    best = None
    for p in picked:
        xb, fb, ok = scipy_polish(fg1, p, bounds)
        if best is None or fb < best[1]:
            best = (xb, fb, ok)
    assert best is not None
    return best[0], best[1] / scale, best[2]


def percentile_ci(samples: np.ndarray) -> list[list[float]]:
    lo, hi = np.nanpercentile(samples, [2.5, 97.5], axis=0)
    return [[float(a), float(b)] for a, b in zip(np.atleast_1d(lo), np.atleast_1d(hi), strict=True)]


def whitening(law: Any, X: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """T such that θ = θ̂ + T·z makes the Gauss–Newton matrix JᵀJ of the log predictions at θ̂ the identity in z.

    Power-law parameters are strongly correlated (α and ln N_c move together along a long, narrow valley); in the
    whitened coordinates that valley is round, so refits started at θ̂ walk along it instead of stalling."""
    f, J = law._logpred(theta[None, :], X)
    Jm = np.column_stack([np.broadcast_to(j, f.shape)[0] for j in J])
    H = Jm.T @ Jm
    d = np.sqrt(np.diag(H))
    d = np.where(d > 0, d, 1.0)
    e, V = np.linalg.eigh(H / np.outer(d, d))
    return (V / np.sqrt(np.maximum(e, 1e-12))) / d[:, None]


def point_weights(n: int, k: int, seed: int) -> np.ndarray:
    """K bootstrap resamples of n independent points as multinomial counts (K, n)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=k).astype(float)


def bootstrap_fits(law: Any, X: np.ndarray, y: np.ndarray, theta: np.ndarray, k: int, seed: int,
                   threads: int | None = None, weights: np.ndarray | None = None,
                   targets: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """K resamples as weight vectors (`weights` (K, n), default `point_weights`), optimised together from
    `theta` (in whitened coordinates, see `whitening`); returns natural params (K, p), converged.

    `targets` (K, n), when given, is each resample's own log target (a frontier recomputed from resampled runs;
    weight 0 where a resample has no value). Bounds are kept by projection: a trial point z is mapped to
    T⁻¹(clip(θ̂ + T·z) − θ̂), so the objective never sees a clipped (flat) copy of a point outside the box.
    The resamples are split into one block per CPU thread (numpy releases the GIL inside its loops, so the
    blocks run in parallel); the weights are drawn up front so the result does not depend on the split.
    """
    from concurrent.futures import ThreadPoolExecutor

    n = len(y)
    delta = law.huber_delta
    scale = 1.0 / (delta * n)
    bounds = law.bounds()
    W_all = point_weights(n, k, seed) if weights is None else np.asarray(weights, float)
    k = len(W_all)
    threads = threads or min(4, available_cores())
    blocks = [b for b in np.array_split(np.arange(k), max(1, min(threads, k // 50 or 1))) if len(b)]

    lo, hi = bounds[:, 0], bounds[:, 1]
    T = whitening(law, X, theta)
    T_inv = np.linalg.inv(T)
    free = np.full(len(theta), np.inf)

    TT, T_invT = T.T, T_inv.T

    def project(z: np.ndarray) -> np.ndarray:
        return (_clip(theta + z @ TT, lo, hi) - theta) @ T_invT

    def run(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        W = W_all[block]
        Y = None if targets is None else targets[block]

        def fg(z: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            o, g = objective(law, theta + z @ TT, X, y if Y is None else Y[idx], W[idx], delta)
            return o * scale, (g * scale) @ T

        zs, _, ok = lbfgs_batched(fg, np.zeros((len(block), len(theta))), -free, free, maxiter=500, project=project)
        return law.params_from_theta(np.clip(theta + zs @ T.T, lo, hi)), ok

    if len(blocks) == 1:
        results = [run(blocks[0])]
    else:
        with ThreadPoolExecutor(len(blocks)) as ex:
            results = list(ex.map(run, blocks))
    return np.vstack([r[0] for r in results]), np.concatenate([r[1] for r in results])
