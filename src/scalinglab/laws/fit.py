"""Robust fitting of a law: Huber loss on log residuals, a vectorised grid of starts, batched L-BFGS, bootstrap.

The objective is sum_i w_i·huber_delta(log L_pred,i − log L_i) (δ = 1e-3 by default, Hoffmann et al.'s approach 3).
Every law evaluates a whole batch of parameter vectors at once with analytic gradients, so:

1. the grid of starts (4,500 for chinchilla, Epoch AI's grid) is scored in one numpy call;
2. the best `n_refine` starts are refined together by `lbfgs_batched` (numpy L-BFGS, one problem per row);
3. the best few distinct results are polished by scipy's L-BFGS-B with the analytic gradient and bounds;
4. the bootstrap is K resamples expressed as multinomial weight vectors, all optimised together by
   `lbfgs_batched`, warm-started from the full fit; 95% percentile intervals on parameters and derived values;
5. hold-out: refit without the K largest-compute points and report the relative error of their predictions.

Published-data check (tests/test_laws.py): on the 240 Chinchilla Fig. 4 points Epoch AI fitted, the chinchilla fit
reproduces Epoch's grid fit (objective 0.00101827; E 1.8172, A 477.8, B 2143, alpha 0.3473, beta 0.3672) and 1000
bootstraps give alpha 0.317–0.372, beta 0.332–0.414 (Epoch: 0.317–0.373, 0.331–0.415). With all 245 points the five
high-loss, D < N points pull the fit to E ≈ 1.89, beta ≈ 0.45: robust loss or not, a handful of outliers move it.

Public API: `fit_law(name_or_law, df, bootstrap=0, holdout=0, huber_delta=1e-3, seed=0) -> Law`,
`lbfgs_batched(...)`, `huber(...)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from scalinglab.cores import available_cores
from scalinglab.errors import UserError
from scalinglab.laws.forms import Law, get_law


def huber(r: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Huber loss and its derivative (psi) elementwise."""
    a = np.abs(r)
    quad = a <= delta
    h = np.where(quad, 0.5 * r * r, delta * (a - 0.5 * delta))
    return h, np.clip(r, -delta, delta)


def objective(law: Law, theta: np.ndarray, X: np.ndarray, y: np.ndarray, w: np.ndarray | None,
              delta: float, grad: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Sum of weighted Huber losses for each row of theta (P, k); w is (n,), (P, n) or None."""
    f, J = law._logpred(theta, X, grad=grad)
    r = f - y[None, :]
    h, psi = huber(r, delta)
    if w is not None:
        h = h * w
        psi = psi * w
    obj = h.sum(axis=1)
    bad = ~np.isfinite(obj)
    if bad.any():
        obj = np.where(bad, np.inf, obj)
    if not grad:
        return obj, None
    g = np.empty((len(theta), len(J)))
    for j, Jj in enumerate(J):
        g[:, j] = np.einsum("pn,pn->p", psi, np.broadcast_to(Jj, psi.shape))
    g[bad] = 0.0
    return obj, g


def lbfgs_batched(fg: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]], x0: np.ndarray,
                  lo: np.ndarray, hi: np.ndarray, maxiter: int = 400, m: int = 10, ftol: float = 1e-15,
                  gtol: float = 1e-10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimise P independent smooth problems at once with L-BFGS (projected onto box bounds).

    `fg(x, idx)` returns objective (p,) and gradient (p, k) of problems `idx` at x (p, k). Each problem keeps its
    own curvature history and its own backtracking (Armijo) step; a problem stops when its relative decrease or
    projected gradient falls below tolerance. Returns x (P, k), f (P,), converged (P,) bool.

    ftol is near machine precision on purpose: in a long narrow valley (a power law with a small exponent, where
    α and ln N_c move together) each step gains very little, and a looser relative-decrease test stopped the
    bootstrap refits next to their start, which gave 95% CIs 20× too narrow.
    """
    x = np.clip(np.array(x0, dtype=float), lo, hi)
    P, k = x.shape
    allidx = np.arange(P)
    f, g = fg(x, allidx)
    S = np.zeros((P, m, k))
    Y = np.zeros((P, m, k))
    rho = np.zeros((P, m))
    gnorm = np.abs(g).max(axis=1)
    gamma = np.where(gnorm > 0, 0.1 / np.maximum(gnorm, 1e-300), 1.0)
    active = np.isfinite(f)
    converged = np.zeros(P, dtype=bool)
    fresh = np.ones(P, dtype=bool)  # no curvature pairs yet (at the start, or after a restart)
    for it in range(maxiter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        gi = g[idx]
        # two-loop recursion, newest pair first; invalid pairs have rho = 0 and drop out
        q = gi.copy()
        order = [(it - 1 - j) % m for j in range(m)]
        alph = np.zeros((idx.size, m))
        for j in order:
            alph[:, j] = rho[idx, j] * np.einsum("pk,pk->p", S[idx, j], q)
            q -= alph[:, j, None] * Y[idx, j]
        r = gamma[idx, None] * q
        for j in reversed(order):
            beta = rho[idx, j] * np.einsum("pk,pk->p", Y[idx, j], r)
            r += S[idx, j] * (alph[:, j] - beta)[:, None]
        d = -r
        notdesc = np.einsum("pk,pk->p", gi, d) >= 0
        if notdesc.any():
            d[notdesc] = -gi[notdesc] * (0.1 / np.maximum(np.abs(gi[notdesc]).max(axis=1), 1e-300))[:, None]
        # backtracking line search, each problem its own step
        x_old, f_old = x[idx], f[idx]
        x_new, f_new, g_new = x_old.copy(), f_old.copy(), gi.copy()
        accepted = np.zeros(idx.size, dtype=bool)
        t = np.ones(idx.size)
        pend = np.arange(idx.size)
        for _ in range(40):
            xt = np.clip(x_old[pend] + t[pend, None] * d[pend], lo, hi)
            ft, gt = fg(xt, idx[pend])
            dec = np.einsum("pk,pk->p", gi[pend], xt - x_old[pend])
            ok = np.isfinite(ft) & (ft <= f_old[pend] + 1e-4 * dec)
            okp = pend[ok]
            x_new[okp], f_new[okp], g_new[okp] = xt[ok], ft[ok], gt[ok]
            accepted[okp] = True
            pend = pend[~ok]
            if pend.size == 0:
                break
            t[pend] *= 0.5
        s = x_new - x_old
        yv = g_new - gi
        sy = np.einsum("pk,pk->p", s, yv)
        yy = np.einsum("pk,pk->p", yv, yv)
        valid = accepted & (sy > 1e-12 * np.sqrt(np.einsum("pk,pk->p", s, s) * yy + 1e-300))
        j = it % m
        S[idx, j] = np.where(valid[:, None], s, 0.0)
        Y[idx, j] = np.where(valid[:, None], yv, 0.0)
        rho[idx, j] = np.where(valid, 1.0 / np.where(valid, sy, 1.0), 0.0)
        gamma[idx] = np.where(valid, sy / np.maximum(yy, 1e-300), gamma[idx])
        x[idx], f[idx], g[idx] = x_new, f_new, g_new
        pg = np.abs(x_new - np.clip(x_new - g_new, lo, hi)).max(axis=1)
        small_dec = (f_old - f_new) <= ftol * np.maximum(np.abs(f_old), 1e-300)
        # A failed line search (40 halvings) with curvature pairs in memory often means the quasi-Newton model
        # went stale at a kink of the Huber loss: restart from a scaled steepest-descent step. Only a failure
        # right after a restart means no descent is left (a numerical stationary point).
        restart = ~accepted & ~fresh[idx]
        if restart.any():
            r_idx = idx[restart]
            rho[r_idx] = 0.0
            gamma[r_idx] = 0.1 / np.maximum(np.abs(g[r_idx]).max(axis=1), 1e-300)
        fresh[idx] = restart
        done = (pg <= gtol) | (accepted & small_dec) | (~accepted & ~restart)
        converged[idx] = done
        active[idx[done]] = False
    return x, f, converged


def _one_blas_thread():
    """BLAS threads only slow L-BFGS-B's tiny vector ops (7x under load); pin to one when threadpoolctl is there."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it the fit is the same, only slower
        from contextlib import nullcontext

        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _scipy_polish(fg1: Callable, x0: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, float, bool]:
    from scipy.optimize import minimize

    with _one_blas_thread():
        res = minimize(fg1, x0, jac=True, method="L-BFGS-B", bounds=[tuple(b) for b in bounds],
                       options={"maxiter": 5000, "ftol": 1e-14, "gtol": 1e-11, "maxcor": 20})
    ok = bool(res.success) or "ABNORMAL" in str(res.message)  # ABNORMAL: line search at machine precision
    return np.asarray(res.x, float), float(res.fun), ok


def optimise(law: Law, X: np.ndarray, y: np.ndarray, w: np.ndarray | None = None, delta: float | None = None,
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

    xs, fs, _ = lbfgs_batched(fg, top, lo, hi, maxiter=300)
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
        xb, fb, ok = _scipy_polish(fg1, p, bounds)
        if best is None or fb < best[1]:
            best = (xb, fb, ok)
    assert best is not None
    return best[0], best[1] / scale, best[2]


def _percentile_ci(samples: np.ndarray) -> list[list[float]]:
    lo, hi = np.nanpercentile(samples, [2.5, 97.5], axis=0)
    return [[float(a), float(b)] for a, b in zip(np.atleast_1d(lo), np.atleast_1d(hi), strict=True)]


def _whitening(law: Law, X: np.ndarray, theta: np.ndarray) -> np.ndarray:
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


def bootstrap_fits(law: Law, X: np.ndarray, y: np.ndarray, theta: np.ndarray, k: int, seed: int,
                   threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """K resamples as multinomial weights, optimised together from `theta` (in whitened coordinates, see
    `_whitening`); returns natural params (K, p), converged.

    The resamples are split into one block per CPU thread (numpy releases the GIL inside its loops, so the
    blocks run in parallel); the weights are drawn up front so the result does not depend on the split.
    """
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(seed)
    n = len(y)
    delta = law.huber_delta
    scale = 1.0 / (delta * n)
    bounds = law.bounds()
    W_all = rng.multinomial(n, np.full(n, 1.0 / n), size=k).astype(float)
    threads = threads or min(4, available_cores())
    blocks = [b for b in np.array_split(np.arange(k), max(1, min(threads, k // 50 or 1))) if len(b)]

    lo, hi = bounds[:, 0], bounds[:, 1]
    T = _whitening(law, X, theta)
    free = np.full(len(theta), np.inf)

    def run(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        W = W_all[block]

        def fg(z: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            o, g = objective(law, np.clip(theta + z @ T.T, lo, hi), X, y, W[idx], delta)
            return o * scale, (g * scale) @ T

        zs, _, ok = lbfgs_batched(fg, np.zeros((len(block), len(theta))), -free, free, maxiter=500)
        return law.params_from_theta(np.clip(theta + zs @ T.T, lo, hi)), ok

    if len(blocks) == 1:
        results = [run(blocks[0])]
    else:
        with ThreadPoolExecutor(len(blocks)) as ex:
            results = list(ex.map(run, blocks))
    return np.vstack([r[0] for r in results]), np.concatenate([r[1] for r in results])


def _holdout(law: Law, cols: dict[str, np.ndarray], k: int) -> dict[str, Any]:
    n = len(next(iter(cols.values())))
    if k >= n - law.n_params:
        raise UserError(f"--holdout {k} leaves {n - k} points to fit {law.law_name} "
                        f"({law.n_params} parameters needs at least {law.n_params + 1})")
    key = law.compute_key(cols)
    order = np.argsort(key, kind="stable")
    test, train = order[n - k:], order[: n - k]
    sub = type(law)(**law.get_options(), huber_delta=law.huber_delta, seed=law.seed)
    sub._fit_arrays({c: v[train] for c, v in cols.items()})
    pred = sub.predict(**{c: cols[c][test] for c in law.inputs})
    actual = cols[law.target][test]
    rel = (pred - actual) / actual
    return {
        "k": int(k),
        "params": dict(sub.params_ or {}),
        "points": [{**{c: float(cols[c][i]) for c in law.inputs}, law.target: float(a), "predicted": float(p),
                    "rel_error": float(e)} for i, a, p, e in zip(test, actual, pred, rel, strict=True)],
        "mean_abs_rel_error": float(np.mean(np.abs(rel))),
        "max_abs_rel_error": float(np.max(np.abs(rel))),
    }


def _fit_arrays(law: Law, cols: dict[str, np.ndarray]) -> np.ndarray:
    """Fit the point estimate on validated raw columns; sets the fitted attributes, returns (X, y, theta)."""
    X = law.features(cols)
    y = law.log_target(cols)
    n = len(y)
    if n < law.n_params + 1:
        raise UserError(f"{law.law_name} has {law.n_params} parameters and needs at least {law.n_params + 1} "
                        f"points; got {n}")
    theta, obj, ok = optimise(law, X, y)
    law._reset()
    law.params_ = dict(zip(law.param_names, map(float, law.params_from_theta(theta)), strict=True))
    f, _ = law._logpred(theta[None, :], X, grad=False)
    resid = f[0] - y
    law.residual_rms_ = float(np.sqrt(np.mean(resid**2)))
    law.objective_ = float(obj)
    law.converged_ = bool(ok)
    law.n_points_ = int(n)
    law.derived_ = law.derived(law.params_)
    law._X, law._y, law._theta = X, y, theta  # type: ignore[attr-defined]
    return theta


Law._fit_arrays = _fit_arrays  # type: ignore[attr-defined]


def fit_into(law: Law, data: Any, bootstrap: int = 0, holdout: int = 0, seed: int = 0) -> Law:
    """Validate `data`, fit the point estimate, then bootstrap and hold-out if asked (used by Law.fit)."""
    from scalinglab.laws.data import law_columns

    if bootstrap < 0 or holdout < 0:
        raise UserError("bootstrap and holdout must be >= 0")
    cols = law_columns(law, data)
    custom = getattr(law, "_fit_custom", None)
    if custom is not None:
        return custom(cols, bootstrap=bootstrap, holdout=holdout, seed=seed)
    theta = law._fit_arrays(cols)  # type: ignore[attr-defined]
    if bootstrap:
        samples, conv = bootstrap_fits(law, law._X, law._y, theta, bootstrap, seed)  # type: ignore[attr-defined]
        attach_bootstrap(law, samples, conv, seed)
    if holdout:
        law.holdout_ = _holdout(law, cols, holdout)
    return law


def attach_bootstrap(law: Law, samples: np.ndarray, conv: np.ndarray, seed: int) -> None:
    """Percentile CIs of parameters and derived quantities from bootstrap parameter samples (K, p)."""
    law.bootstrap_samples_ = samples
    law.bootstrap_ = {"k": int(len(samples)), "seed": int(seed), "converged_fraction": float(np.mean(conv)),
                      "ci": "95% percentile"}
    law.ci95_ = dict(zip(law.param_names, _percentile_ci(samples), strict=True))
    if law.derived_:
        names = list(law.derived_)
        vals = np.array([[law.derived(dict(zip(law.param_names, row, strict=True)))[k] for k in names]
                         for row in samples])
        law.derived_ci95_ = dict(zip(names, _percentile_ci(vals), strict=True))


def fit_law(law: str | Law, data: Any, bootstrap: int = 0, holdout: int = 0, huber_delta: float = 1e-3,
            seed: int = 0, **options: Any) -> Law:
    """Fit a law by registry name (or a Law instance) to a DataFrame with canonical columns; returns the law."""
    if isinstance(law, str):
        law = get_law(law, **options)
    if not (huber_delta > 0 and np.isfinite(huber_delta)):
        raise UserError(f"huber delta must be a positive number, got {huber_delta}")
    law.huber_delta = float(huber_delta)
    law.seed = int(seed)
    return law.fit(data, bootstrap=bootstrap, holdout=holdout, seed=seed)
