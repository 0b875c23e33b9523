"""Learning-curve data for the curve laws: when rows are curve points, what is cut, resampled and derived.

Rows are points of learning curves when they carry a `run` column in which some run appears more than once (a store
read by `frame_from_store`, or a CSV with a run column). Then:

- `transient_cut`: points inside the warm-up transient are dropped before any fit. Default: keep step S ≥
  max(2 × warm-up steps, 10), i.e. at least twice the run's warm-up and past the first decade of steps (evals are
  log-spaced, so about half the points of a short run sit inside its warm-up otherwise). Steps are the `step`
  column when present (the store's; S may hold S_min by then), else S. The warm-up comes from a
  `warmup` column (steps; the store fills it from each run's config); a CSV without one gets the first-decade cut
  alone, and without an S column no step cut at all. `min_step` / `min_tokens` replace the default.
- `run_weights`: the bootstrap resamples whole runs (a run's points are not independent: one run-level offset moves
  them all), as multinomial counts over runs given to every point of the run.
- `curve_matrix` / `envelope`: each curve's running-minimum log L interpolated on a common log-C grid, so the
  compute-efficient frontier of any resample of runs is a masked minimum (`compute_frontier` and kaplan-c/-cmin).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scalinglab.errors import UserError

FIRST_DECADE = 10.0  # steps: the default cut keeps S >= max(2 * warm-up, FIRST_DECADE)
DEFAULT_CUT = "S >= max(2 * warmup_steps, 10)"


def is_curves(cols: dict[str, np.ndarray]) -> bool:
    """True when the rows are learning-curve points: a run column in which some run has several rows."""
    if "run" not in cols:
        return False
    runs = np.asarray(cols["run"])
    return len(np.unique(runs)) < len(runs)


def transient_cut(cols: dict[str, np.ndarray], min_step: float | None = None,
                  min_tokens: float | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Drop the early-transient points of every curve; returns the kept columns and what was done (for the JSON)."""
    keep, info = transient_mask(cols, min_step, min_tokens)
    return {c: np.asarray(v)[keep] for c, v in cols.items()}, info


def transient_mask(cols: dict[str, np.ndarray], min_step: float | None = None,
                   min_tokens: float | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Which points survive the transient cut (see module doc), and the record of the cut."""
    n = len(next(iter(cols.values())))
    keep = np.ones(n, dtype=bool)
    # the optimiser step of each point: `step` when the rows carry it (S may already be S_min), else S
    step = np.asarray(cols["step"] if "step" in cols else cols["S"], float) if ("step" in cols or "S" in cols) else None
    info: dict[str, Any] = {}
    if min_step is not None or min_tokens is not None:
        info["policy"] = "user"
        if min_step is not None:
            if step is None:
                raise UserError("--min-step needs a step column S in the curve rows")
            keep &= step >= min_step
            info["min_step"] = float(min_step)
        if min_tokens is not None:
            if "D" not in cols:
                raise UserError("--min-tokens needs a tokens column D in the curve rows")
            keep &= np.asarray(cols["D"], float) >= min_tokens
            info["min_tokens"] = float(min_tokens)
    elif step is not None:
        warm = np.asarray(cols["warmup"], float) if "warmup" in cols else np.zeros(n)
        warm = np.where(np.isfinite(warm), warm, 0.0)
        keep &= step >= np.maximum(2.0 * warm, FIRST_DECADE)
        info["policy"] = DEFAULT_CUT + ("" if "warmup" in cols else " (no warm-up column: warmup_steps = 0)")
    else:
        info["policy"] = "none (no step column S)"
    info.update(n_before=int(n), n_after=int(keep.sum()))
    return keep, info


def run_weights(runs: np.ndarray, k: int, seed: int) -> np.ndarray:
    """(K, n) bootstrap weights that resample whole runs: each point gets the count of its run in the resample."""
    counts, inverse = run_counts(runs, k, seed)
    return counts[:, inverse]


def run_counts(runs: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(K, R) multinomial counts over the R distinct runs, and each row's run index (n,)."""
    _, inverse = np.unique(np.asarray(runs).astype(str), return_inverse=True)
    R = int(inverse.max()) + 1
    rng = np.random.default_rng(seed)
    return rng.multinomial(R, np.full(R, 1.0 / R), size=k).astype(float), inverse


def curve_matrix(C: np.ndarray, L: np.ndarray, run: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, list]:
    """(R, G) running-minimum log L of each run interpolated in (log C, log L) on `grid`, +inf where the run does
    not reach that compute; and the run keys in row order (sorted)."""
    C, L = np.asarray(C, float), np.asarray(L, float)
    keys, inverse = np.unique(np.asarray(run), return_inverse=True)
    lg = np.log(grid)
    V = np.full((len(keys), len(grid)), np.inf)
    for i in range(len(keys)):
        m = inverse == i
        order = np.argsort(C[m], kind="stable")
        V[i] = on_grid(lg, np.log(C[m][order]), np.log(np.minimum.accumulate(L[m][order])))
    return V, list(keys)


def on_grid(lg: np.ndarray, lc: np.ndarray, ly: np.ndarray) -> np.ndarray:
    """ly(lc) interpolated linearly at the log-C grid points `lg` inside the curve's compute range, +inf outside."""
    if lc.size == 1:
        return np.where(np.isclose(lg, lc[0]), ly[0], np.inf)
    inside = (lg >= lc[0] - 1e-12) & (lg <= lc[-1] + 1e-12)
    return np.where(inside, np.interp(lg, lc, ly), np.inf)


def envelope(V: np.ndarray, counts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Lower envelope of the curves in V (R, G): log L (G,) and the row reaching it (-1: none). With counts (K, R)
    of a resample of runs, one envelope per resample: (K, G) log L (+inf where no drawn run reaches)."""
    if counts is None:
        who = np.where(np.isfinite(V).any(axis=0), np.argmin(V, axis=0), -1)
        return V.min(axis=0), who
    masked = np.where(counts[:, :, None] > 0, V[None, :, :], np.inf)
    return masked.min(axis=1), np.argmin(masked, axis=1)
