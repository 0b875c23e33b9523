"""Forecast a run's final loss (and the rest of its curve) from the first part of its learning curve.

The curve law is the schedule-aware law of Tissue et al. 2024 ("Scaling Law with Learning Rate Annealing"):

    L(s) = L0 + A · S1(s)^(−α) − C · S2(s)

with S1(s) = Σ_{i≤s} η_i the area under the LR schedule up to step s (the forward area) and
S2(s) = Σ_{i≤s} m_i the annealing area, m_i = λ·m_{i−1} + (η_{i−1} − η_i), λ = 0.999 (the paper's momentum form).
Our one choice beyond the paper: the LR increments of the warm-up (η rising) are clipped to 0, so only decreases
anneal. LRs enter in units of `LR_UNIT` so that parameters of runs with different peaks are comparable.

Methods, chosen by what is known (`method="auto"`):

- `family`: finished runs of other sizes exist. α and κ = C/A are fitted jointly on their full curves (each run its own
  L0 and A, solved linearly for each (α, κ)); the target run's L0 and A are then fitted to its partial curve. The
  annealing drop, which an early part of a cosine run barely shows, is learnt from the finished runs.
- `schedule`: the LR schedule is known but no family: all four parameters from the run's own partial curve
  (L0, A, C ≥ 0 by non-negative least squares for each α, α by `scipy.optimize.least_squares`).
- `power`: no LR schedule known (a CSV without `lr`): the same fit with a constant LR, i.e. L0 + A·s^(−α).

Intervals (95%): a moving-block bootstrap of the target's residuals (curve points are correlated in time) and, for
`family`, a resample of the family's runs; each draw's final loss gets a normal scatter of the residual RMS (a
single measurement's noise). The half-widths are then multiplied by `widen`, whose default (per method) comes from the
measured calibration (scripts/forecast_calibration.py, docs/benchmarks/forecast.md): the bootstrap alone cannot
see how wrong the law's extrapolation is, so the widening is set by measurement, never assumed.

Input: a frame of curves, one row per point, columns `run`, `step`, `L`, and optionally `lr` (the LR at that step;
interpolated between points, so give it over the whole schedule, with L empty past what was seen), `total_steps`
(default: the run's last step), `N` (sizes, for `family`), `warmup` (steps; for the transient cut of
laws/curves.py) and `done` (finished runs usable by `family`). `curves_from_store` builds it for a results store,
with the LR of every step from the run's config (train/schedule.py), reading a run still in flight from its run
folder's metrics.jsonl.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import least_squares, nnls
from scipy.signal import lfilter

from scalinglab.errors import UserError
from scalinglab.laws.framework.curves import FIRST_DECADE, transient_mask

LR_UNIT = 1e-3
LAMBDA = 0.999
METHODS = ("auto", "family", "schedule", "power")
MIN_POINTS = {"schedule": 6, "power": 5, "family": 3}  # points past the transient the target's fit needs
# Default widening of the bootstrap half-widths per method, set by measurement (docs/benchmarks/forecast.md): the 95th
# percentile of |final − forecast| / raw half-width over finished runs cut at 10-50% (two stores trained here and the
# misfitting checkpoints), rounded up to 0.5; chosen on any two of the data sets, the factor covered 91-97% on the
# third. `power` has not been measured and takes the value of `schedule`.
WIDEN = {"family": 3.5, "schedule": 4.0, "power": 4.0}
ALPHA_BOUNDS = (0.02, 3.0)


@dataclass
class Curve:
    """One run: its eval steps and losses (NaN: not seen), the LR of every step 1..T (None: unknown), size N."""

    run: str
    step: np.ndarray
    L: np.ndarray
    lr: np.ndarray | None
    total_steps: int
    N: float | None = None
    warmup: float = 0.0
    done: bool = False
    S1: np.ndarray = field(init=False, repr=False)
    S2: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        eta = np.full(self.total_steps, LR_UNIT) if self.lr is None else np.asarray(self.lr, float)
        self.S1, self.S2 = lr_areas(eta / LR_UNIT)


def lr_areas(eta: np.ndarray, lam: float = LAMBDA) -> tuple[np.ndarray, np.ndarray]:
    """S1 and S2 after each step 1..T of the LR sequence `eta` (see module doc); returned with a leading 0 for step 0."""
    eta = np.asarray(eta, float)
    drop = np.maximum(np.diff(eta, prepend=eta[:1]) * -1.0, 0.0)
    m = lfilter([1.0], [1.0, -lam], drop)  # m_i = λ m_{i−1} + (η_{i−1} − η_i)
    return np.concatenate([[0.0], np.cumsum(eta)]), np.concatenate([[0.0], np.cumsum(m)])


def schedule_from_points(step: np.ndarray, lr: np.ndarray, total_steps: int) -> np.ndarray:
    """The LR of every step 1..T, interpolated linearly between the points that carry one (held flat outside)."""
    ok = np.isfinite(lr)
    if not ok.any():
        raise UserError("the lr column has no values")
    s, v = np.asarray(step, float)[ok], np.asarray(lr, float)[ok]
    o = np.argsort(s)
    return np.interp(np.arange(1, total_steps + 1), s[o], v[o])


# --------------------------------------------------------------------------------------------------
# the fits


def _design(S1: np.ndarray, S2: np.ndarray, alpha: float, kappa: float | None) -> np.ndarray:
    """Columns of the linear part: [1, S1^−α, −S2] (own fit) or [1, S1^−α − κ·S2] (family shape)."""
    p = S1 ** (-alpha)
    if kappa is None:
        return np.column_stack([np.ones_like(S1), p, -S2])
    return np.column_stack([np.ones_like(S1), p - kappa * S2])


def _linear(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    return nnls(X, y)[0]


def fit_own(S1: np.ndarray, S2: np.ndarray, y: np.ndarray, use_s2: bool = True) -> dict[str, float]:
    """L0, A, α, C of one curve: variable projection, α by least_squares, the linear part by NNLS."""
    if not use_s2:
        S2 = np.zeros_like(S2)

    def resid(a: np.ndarray) -> np.ndarray:
        X = _design(S1, S2, a[0], None)
        return X @ _linear(X, y) - y

    best = min((least_squares(resid, [a0], bounds=ALPHA_BOUNDS, x_scale=0.3) for a0 in (0.3, 1.0)),
               key=lambda r: r.cost)
    alpha = float(best.x[0])
    L0, A, C = _linear(_design(S1, S2, alpha, None), y)
    return {"L0": float(L0), "A": float(A), "alpha": alpha, "C": float(C)}


def fit_shape(curves: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[float, float]:
    """(α, κ) shared by several full curves, each with its own L0 and A (solved linearly)."""

    def resid(th: np.ndarray) -> np.ndarray:
        out = []
        for S1, S2, y in curves:
            X = _design(S1, S2, th[0], th[1])
            out.append((X @ _linear(X, y) - y) / np.sqrt(len(y)))  # each run weighs the same
        return np.concatenate(out)

    starts = ((0.3, 0.01), (1.0, 0.001))
    best = min((least_squares(resid, s, bounds=([ALPHA_BOUNDS[0], 0.0], [ALPHA_BOUNDS[1], np.inf]),
                              x_scale=[0.3, 0.01]) for s in starts), key=lambda r: r.cost)
    return float(best.x[0]), float(best.x[1])


def predict(params: dict[str, float], S1: np.ndarray, S2: np.ndarray) -> np.ndarray:
    """L at the steps whose areas are S1, S2."""
    return params["L0"] + params["A"] * S1 ** (-params["alpha"]) - params["C"] * S2


def _with_shape(alpha: float, kappa: float, S1: np.ndarray, S2: np.ndarray, y: np.ndarray) -> dict[str, float]:
    L0, A = _linear(_design(S1, S2, alpha, kappa), y)
    return {"L0": float(L0), "A": float(A), "alpha": alpha, "C": float(kappa * A)}


def block_resample(resid: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A moving-block bootstrap draw of a residual series (blocks of ~n^(1/3) consecutive points)."""
    n = len(resid)
    b = max(1, int(round(n ** (1 / 3))))
    starts = rng.integers(0, n - b + 1, size=-(-n // b))
    return np.concatenate([resid[s:s + b] for s in starts])[:n]


# --------------------------------------------------------------------------------------------------
# one forecast


@dataclass
class Forecaster:
    """Settings of a forecast (constructor values, stored unchanged): method, bootstrap draws, widening, seed."""

    method: str = "auto"
    bootstrap: int = 200
    widen: float | None = None  # None: the measured default of the method (WIDEN)
    seed: int = 0
    _shapes: dict = field(default_factory=dict, init=False, repr=False)  # family -> (α, κ) and its resampled draws

    def forecast(self, target: Curve, fraction: float | None = None, family: list[Curve] | None = None,
                 curve_points: int = 20) -> dict[str, Any]:
        """Forecast `target` from its points up to `fraction` of its steps (None: every point with a loss)."""
        if fraction is not None and not 0.0 < fraction < 1.0:
            raise UserError(f"--fraction must be in (0, 1), got {fraction}")
        if self.method not in METHODS:
            raise UserError(f"--method must be one of {', '.join(METHODS)}, got {self.method!r}")
        step, y, seen = _seen(target, fraction)
        others = [c for c in (family or []) if c.done and c.run != target.run and c.lr is not None
                  and (target.N is None or c.N is None or c.N != target.N)]
        method = self._method(target, others)
        need = MIN_POINTS[method]
        if len(y) < need:
            raise UserError(f"run {target.run}: {len(y)} points past the transient up to step {int(seen)}; the "
                            f"{method} forecast needs at least {need}")
        rng = np.random.default_rng(self.seed)
        S1, S2 = target.S1[step], target.S2[step]
        out_steps = _out_steps(seen, target.total_steps, curve_points)
        F1, F2 = target.S1[out_steps], target.S2[out_steps]
        params, draws = self._fit_and_draws(method, S1, S2, y, others, F1, F2, rng)
        point = predict(params, F1, F2)
        rms = float(np.sqrt(np.mean((predict(params, S1, S2) - y) ** 2)))
        draws = draws + rms * rng.standard_normal(draws.shape)
        lo, hi = np.percentile(draws, [2.5, 97.5], axis=0)
        widen = WIDEN[method] if self.widen is None else self.widen
        lo, hi = point - widen * (point - lo), point + widen * (hi - point)
        return {
            "run": target.run, "method": method, "fraction_seen": float(seen / target.total_steps),
            "seen_step": int(seen), "total_steps": int(target.total_steps), "points_used": int(len(y)),
            "steps_used": [int(step[0]), int(step[-1])], "family_runs": len(others) if method == "family" else 0,
            "L_final": float(point[-1]), "L_final_lo": float(lo[-1]), "L_final_hi": float(hi[-1]),
            "params": params, "residual_rms": rms, "bootstrap": self.bootstrap, "widen": widen,
            "curve": [{"step": int(s), "L": float(p), "L_lo": float(a), "L_hi": float(b)}
                      for s, p, a, b in zip(out_steps, point, lo, hi, strict=True)],
        }

    def _method(self, target: Curve, others: list[Curve]) -> str:
        if self.method != "auto":
            if self.method in ("family", "schedule") and target.lr is None:
                raise UserError(f"run {target.run}: the {self.method} forecast needs the LR schedule (an lr column)")
            if self.method == "family" and len(others) < 2:
                raise UserError(f"run {target.run}: the family forecast needs at least 2 finished runs of other "
                                f"sizes with an LR schedule; found {len(others)}")
            return self.method
        if target.lr is None:
            return "power"
        return "family" if len(others) >= 2 else "schedule"

    def _fit_and_draws(self, method: str, S1, S2, y, others: list[Curve], F1, F2, rng) -> tuple[dict, np.ndarray]:
        if method == "family":
            (alpha, kappa), shape_draws = self._family_shape(others)
            params = _with_shape(alpha, kappa, S1, S2, y)
        else:
            params = fit_own(S1, S2, y, use_s2=method == "schedule")
        fitted = predict(params, S1, S2)
        resid = y - fitted
        draws = []
        for b in range(self.bootstrap):
            yb = fitted + block_resample(resid, rng)
            if method == "family":
                p = _with_shape(*shape_draws[b], S1, S2, yb)
            else:
                p = fit_own(S1, S2, yb, use_s2=method == "schedule")
            draws.append(predict(p, F1, F2))
        return params, np.array(draws).reshape(self.bootstrap, len(F1))


    def _family_shape(self, others: list[Curve]) -> tuple[tuple[float, float], list[tuple[float, float]]]:
        """(α, κ) of a family of finished runs and `bootstrap` refits on resamples of its runs (kept per family:
        the targets of one size share them)."""
        key = tuple(sorted(c.run for c in others))
        if key not in self._shapes:
            full = [_full(c) for c in others]
            rng = np.random.default_rng([self.seed, len(key)])
            draws = [fit_shape([full[i] for i in rng.integers(0, len(full), size=len(full))])
                     for _ in range(self.bootstrap)]
            self._shapes[key] = (fit_shape(full), draws)
        return self._shapes[key]


def _seen(c: Curve, fraction: float | None) -> tuple[np.ndarray, np.ndarray, float]:
    """Steps and losses the forecast may use: seen, finite, past the transient; and the last step seen."""
    ok = np.isfinite(c.L) & (c.step >= 1) & (c.step <= c.total_steps)
    if fraction is not None:
        ok &= c.step <= fraction * c.total_steps
    seen = float(c.step[ok].max()) if ok.any() else 0.0
    if fraction is not None:
        seen = fraction * c.total_steps
    keep, _ = transient_mask({"step": c.step}, min_step=transient_step(c))
    ok &= keep
    return c.step[ok].astype(int), c.L[ok].astype(float), seen


def transient_step(c: Curve) -> float:
    """First step a forecast uses: past the warm-up and the first decade of steps (the law describes the LR's effect
    after warm-up; laws/curves.py's default 2× warm-up cut would leave no point at 10% of a run warmed up for 5%)."""
    return max(c.warmup + 1.0, FIRST_DECADE)


def _full(c: Curve) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    step, y, _ = _seen(c, None)
    return c.S1[step], c.S2[step], y


def _out_steps(seen: float, total: int, n: int) -> np.ndarray:
    """Where the forecast curve is given: n steps from just after the last seen step to the end (the last is T)."""
    start = min(int(seen) + 1, total)
    return np.unique(np.linspace(start, total, max(n, 2)).round().astype(int))


# --------------------------------------------------------------------------------------------------
# frames in, records out


def curves_from_frame(df: Any) -> list[Curve]:
    """Curves from a frame of points (module doc: run, step, L, optional lr, total_steps, N, warmup, done)."""
    import pandas as pd

    df = _canonical(pd.DataFrame(df))
    out = []
    for run, g in df.groupby("run", sort=True):
        g = g.sort_values("step")
        step = g["step"].to_numpy(float)
        total = int(g["total_steps"].max()) if "total_steps" in g and g["total_steps"].notna().any() \
            else int(step.max())
        lr = None
        if "lr" in g and g["lr"].notna().any():
            lr = schedule_from_points(step, g["lr"].to_numpy(float), total)
        N = float(g["N"].iloc[0]) if "N" in g and pd.notna(g["N"].iloc[0]) else None
        warm = float(g["warmup"].iloc[0]) if "warmup" in g and pd.notna(g["warmup"].iloc[0]) else 0.0
        seen = step[np.isfinite(g["L"].to_numpy(float))]
        done = bool(g["done"].iloc[0]) if "done" in g else bool(len(seen) and seen.max() >= total)
        out.append(Curve(str(run), step, g["L"].to_numpy(float), lr, total, N, warm, done))
    return out


LOSS_NAMES = ("L", "loss", "val_loss")
STEP_NAMES = ("step", "S", "tokens", "D")


def _canonical(df: Any) -> Any:
    """run/step/L columns under their canonical names; a CSV without step (or tokens) or loss is a UserError."""
    import pandas as pd

    step = next((c for c in STEP_NAMES if c in df.columns), None)
    loss = next((c for c in LOSS_NAMES if c in df.columns), None)
    if step is None or loss is None:
        raise UserError("curves need a step (or tokens) column and a loss column (L, loss or val_loss); "
                        f"got {', '.join(map(str, df.columns))}")
    df = df.rename(columns={step: "step", loss: "L"})
    if "run" not in df.columns:
        df["run"] = "run"
    df["step"] = pd.to_numeric(df["step"], errors="coerce")
    df["L"] = pd.to_numeric(df["L"], errors="coerce")
    if df["step"].isna().any() or (df["step"] < 0).any():
        raise UserError("the step column must hold non-negative numbers")
    if step in ("tokens", "D"):  # tokens as the step axis: the LR areas are sums over 1,000 equal slices of the run
        scale = df.groupby("run")["step"].transform("max") / 1000.0
        df["step"] = (df["step"] / scale).round()
        if "total_steps" in df:
            df = df.drop(columns="total_steps")
    return df[df["step"] >= 1]


def curves_from_store(db: Any) -> Any:
    """A frame of curves (run, step, L, lr, total_steps, N, warmup, done) of a store: for runs trained here the LR of
    every step from the config (train/schedule.py); for imported runs (or configs this version cannot read) the
    `lr` their points carry, if any."""
    import pandas as pd

    from scalinglab.store.db import get_run, load_evals, load_runs

    runs = load_runs(db)
    ev = load_evals(db)
    parts = []
    for r in runs.itertuples():
        pts = ev[ev["run_id"] == r.run_id]
        if pts.empty:
            pts = live_points(db, r.run_id)
        if pts.empty:
            continue
        stored = get_run(db, r.run_id)
        frame = _trained_here(r, stored, pts["step"]) if "import" not in (stored.get("result") or {}) else None
        if frame is None:
            planned = r.steps if isinstance(r.steps, int | float) and r.steps == r.steps else 0
            frame = pts[["step", "lr"]].assign(total_steps=int(max(pts["step"].max(), planned)), warmup=0.0,
                                               N=r.n_params)
        meta = frame[["total_steps", "N", "warmup"]].iloc[0].to_dict()
        frame = frame[["step", "lr"]].merge(pts[["step", "val_loss"]].rename(columns={"val_loss": "L"}),
                                            on="step", how="outer")
        parts.append(frame.assign(run=r.run_id, done=r.status == "done", family=r.family, **meta))
    if not parts:
        raise UserError(f"store {db} has no learning-curve points")
    return pd.concat(parts, ignore_index=True)


def _trained_here(r: Any, stored: dict, eval_steps: Any) -> Any:
    """step, lr of the eval steps and about 200 other steps of the run from its config, total_steps, warmup and N;
    None when the config is not a TrainConfig."""
    import pandas as pd
    from pydantic import ValidationError

    from scalinglab.config import TrainConfig
    from scalinglab.model.counting import n_params_closed_form

    try:
        cfg = TrainConfig.model_validate(stored["config"])
    except ValidationError:
        return None
    total = int(cfg.total_steps)
    n = r.n_params if r.n_params == r.n_params and r.n_params else n_params_closed_form(cfg.model())
    peak = float(r.lr) if isinstance(r.lr, int | float) and r.lr == r.lr else None
    sched, warm = run_schedule(cfg, int(n), peak)
    steps = np.arange(1, total + 1)
    keep = (steps % max(1, total // 200) == 0) | (steps == total) | np.isin(steps, np.asarray(eval_steps))
    frame = pd.DataFrame({"step": steps[keep], "lr": sched[keep]})
    return frame.assign(total_steps=total, N=n, warmup=warm)


def run_schedule(cfg: Any, n_params: int, peak: float | None = None) -> tuple[np.ndarray, int]:
    """The LR of every step 1..T of a run trained here (its TrainConfig; `peak` None: the configured LR, "auto"
    resolved at `n_params`) and its warm-up steps, as train/schedule.py sets them."""
    from scalinglab.train.schedule import lr_at, resolve_lr, warmup_steps

    total = int(cfg.total_steps)
    warm = warmup_steps(cfg.warmup, total)
    peak = resolve_lr(cfg.lr, int(n_params)) if peak is None else float(peak)
    sched = np.array([lr_at(int(s), peak=peak, total_steps=total, warmup=warm, schedule=cfg.schedule,
                            min_lr_ratio=cfg.min_lr_ratio, decay_fraction=cfg.decay_fraction)
                      for s in range(1, total + 1)])
    return sched, warm


def live_points(db: Any, run_id: str) -> Any:
    """The points a run still in flight has written to its run folder's metrics.jsonl (the store gets them when it
    finishes); none when the folder or the file is missing or cannot be read yet."""
    import pandas as pd

    from scalinglab.io import jsonl_objects
    from scalinglab.sweep.runner import run_folder
    from scalinglab.train.rundir import METRICS

    path = run_folder(db, run_id) / METRICS
    try:
        recs = [rec for _, rec in jsonl_objects(path)] if path.is_file() else []
    except UserError:  # a line cut off mid-write: read it on the next call
        recs = []
    return pd.DataFrame([{"step": r["step"], "val_loss": r["val_loss"]} for r in recs
                         if "step" in r and "val_loss" in r], columns=["step", "val_loss"])


def forecast_curves(df: Any, run: str | None = None, fraction: float | None = None, method: str = "auto",
                    bootstrap: int = 200, widen: float | None = None, seed: int = 0) -> dict[str, Any]:
    """Forecast every run of a frame of curves (or one): {"forecasts": [...], "skipped": [{"run", "reason"}]}.

    A run that cannot be forecast (too few points, no family) is listed under `skipped` with the reason; asked for
    by name, it is a UserError."""
    if fraction is not None and not 0.0 < fraction < 1.0:
        raise UserError(f"--fraction must be in (0, 1), got {fraction}")
    if method not in METHODS:
        raise UserError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    curves = curves_from_frame(df)
    if run is not None:
        chosen = [c for c in curves if c.run == run or c.run.startswith(run)]
        if len(chosen) != 1:
            raise UserError(f"run {run!r} matches {len(chosen)} runs of the curves")
    else:
        chosen = curves
    fc = Forecaster(method=method, bootstrap=bootstrap, widen=widen, seed=seed)
    out, skipped = [], []
    for c in chosen:
        if fraction is None and c.done and run is None:
            continue  # a finished run has nothing left to forecast unless asked for by fraction
        try:
            out.append(fc.forecast(c, fraction, family=curves))
        except UserError as e:
            if run is not None:
                raise
            skipped.append({"run": c.run, "reason": str(e)})
    return {"fraction": fraction, "method": method, "forecasts": out, "skipped": skipped}
