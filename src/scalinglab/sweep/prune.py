"""Pruning in sweeps: stop the LR candidates that their forecasts say cannot win (plan key `prune_at`).

Under `lr = "sweep"` the runs of one size compete for one slot: only the best LR joins the family. With
`prune_at = [0.33]` every candidate first trains to the last evaluation at or before 33% of its steps and pauses
there with a checkpoint (`run_training(pause_at=...)`). Once every candidate of the group has reached that check
(or ended: done, diverged, failed, pruned), each one's final loss is forecast from its own curve up to the check
(laws/analyses/forecast.py, method `schedule`, whose 95% intervals are calibrated in docs/benchmarks/forecast.md),
and a candidate whose interval lies entirely above the best candidate's interval is stopped: stored as
'pruned' with its forecast and the evidence, never dropped. The others resume from their checkpoints, bit-exact,
to the next check or to the end. A candidate whose forecast cannot be made (too few points, or an interval that
reaches below zero loss: the partial curve does not pin the law down) is never pruned and is no one's yardstick.

The decision reads only the curves up to the check step, so it is the same whatever order the runs finish in,
however many workers there are, and after a kill and resume of the sweep (a run already past a check pauses at
once and is judged on the same points).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from scalinglab.errors import UserError
from scalinglab.sweep.lr_sweep import lr_groups
from scalinglab.sweep.plan import RunSpec

METHOD = "schedule"  # needs no other run, so the decision depends on the group's curves alone
BOOTSTRAP = 200


def check_step(spec: RunSpec, fraction: float) -> int:
    """The step a candidate pauses at for the check at `fraction`: the last evaluation at or before it."""
    from scalinglab.train.schedule import eval_steps

    total = spec.config.total_steps
    steps = [s for s in eval_steps(total, spec.config.eval_every) if s <= fraction * total]
    return steps[-1] if steps else max(1, int(fraction * total))


def prunable(spec: RunSpec) -> bool:
    """Whether the sweep can pause this run: scalinglab's trainer on one process, in a group with checks."""
    return bool(spec.prune_at and spec.lr_group and spec.command is None and spec.config.nproc_per_node in (None, 1))


@dataclass
class Verdict:
    """One check of one group: the forecasts, the best, and who is pruned (run id -> reason)."""

    group: str
    stage: int
    fraction: float
    forecasts: dict[str, dict] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # run id -> why it could not be forecast (kept)
    best: str | None = None
    pruned: dict[str, str] = field(default_factory=dict)
    ceilings: dict[str, float] = field(default_factory=dict)  # run id -> upper end of its final loss (see below)

    def evidence(self, run_id: str, lrs: dict[str, float]) -> dict[str, Any]:
        """What a pruned run's stored result says about its stop."""
        keep = ("method", "fraction_seen", "seen_step", "points_used", "L_final", "L_final_lo", "L_final_hi",
                "residual_rms", "widen")
        return {"stage": self.stage, "fraction": self.fraction, "reason": self.pruned.get(run_id),
                "forecast": {k: self.forecasts[run_id].get(k) for k in keep},
                "best": {"run_id": self.best, "lr": lrs.get(self.best), "upper": self.ceilings.get(self.best),
                         **{k: self.forecasts.get(self.best, {}).get(k) for k in keep}},
                "candidates": {r: {"lr": lrs.get(r), "upper": u, **{k: self.forecasts.get(r, {}).get(k) for k in
                                                                    ("L_final", "L_final_lo", "L_final_hi")}}
                               for r, u in self.ceilings.items()},
                "not_forecast": self.skipped}


class Pruner:
    """The checks of a sweep's prunable groups: at which step each run pauses, and when a group is judged."""

    def __init__(self, specs: list[RunSpec], enabled: bool = True, exempt: set[str] | None = None):
        self.groups: dict[str, list[RunSpec]] = lr_groups(s for s in specs if enabled and prunable(s))
        self.stage: dict[str, int] = {}  # run id -> index of its next check
        self.waiting: dict[str, set[str]] = defaultdict(set)  # group -> runs paused at the group's current check
        self.exempt = exempt or set()  # runs to train to the end (sweep --retry-pruned)
        self.resumed: dict[str, list[RunSpec]] = {}  # group -> the runs its last check let go on (the driver requeues)

    def pause_at(self, spec: RunSpec) -> int | None:
        """The step `spec` should pause at next, or None to train it to the end."""
        if spec.lr_group not in self.groups or spec.run_id in self.exempt:
            return None
        k = self.stage.setdefault(spec.run_id, 0)
        return check_step(spec, spec.prune_at[k]) if k < len(spec.prune_at) else None

    def paused(self, spec: RunSpec) -> None:
        self.waiting[spec.lr_group].add(spec.run_id)

    def ready(self, group: str, pending: set[str]) -> bool:
        """Whether every candidate of `group` has paused at its check or ended (`pending`: runs queued or running)."""
        members = {s.run_id for s in self.groups.get(group, [])}
        return bool(self.waiting[group]) and not (members & pending) - self.waiting[group]

    def judge(self, db: Any, group: str) -> tuple[Verdict, list[RunSpec]]:
        """Forecast the group's candidates at the check the paused ones wait at; returns the verdict and the paused
        runs that go on (the others, in `verdict.pruned`, are to be stored as pruned)."""
        specs = self.groups[group]
        paused = [s for s in specs if s.run_id in self.waiting[group]]
        k = self.stage[paused[0].run_id]
        fraction = paused[0].prune_at[k]
        verdict = forecast_group(db, specs, group, k, fraction)
        self.waiting[group].clear()
        go_on = [s for s in paused if s.run_id not in verdict.pruned]
        for s in go_on:
            self.stage[s.run_id] = k + 1
        return verdict, go_on


def forecast_group(db: Any, specs: list[RunSpec], group: str, stage: int, fraction: float) -> Verdict:
    """Each candidate whose curve reaches the check, forecast from its points up to the check; prune those whose
    interval lies above the best candidate's. Runs that ended before the check take no part.

    A candidate's final loss is at most its loss at the check (the curve falls under a non-increasing LR), so its
    interval's upper end is the lower of the forecast's and that measured loss; a candidate that cannot be forecast
    keeps the measured bound alone. The best candidate is the one with the lowest upper end."""
    from scalinglab.store.db import load_evals

    verdict = Verdict(group, stage, fraction)
    points = load_evals(db, run_ids=[s.run_id for s in specs])
    ceiling = verdict.ceilings
    for s in specs:
        step = check_step(s, fraction)
        pts = points[(points["run_id"] == s.run_id) & (points["step"] <= step)]
        if pts.empty or pts["step"].max() < step or not math.isfinite(pts["val_loss"].iloc[-1]):
            continue
        ceiling[s.run_id] = float(pts["val_loss"].iloc[-1])
        try:
            f = verdict.forecasts[s.run_id] = _forecast(s, pts, step)
            ceiling[s.run_id] = min(ceiling[s.run_id], f["L_final_hi"])
        except UserError as e:
            verdict.skipped[s.run_id] = str(e)
    if not ceiling:
        return verdict
    best = verdict.best = min(ceiling, key=ceiling.get)
    top = f"{ceiling[best]:.4f}"
    for run_id, f in verdict.forecasts.items():
        if run_id != best and f["L_final_lo"] > ceiling[best]:
            verdict.pruned[run_id] = (
                f"pruned at step {f['seen_step']} ({fraction:.0%} of its steps): forecast final loss "
                f"{f['L_final']:.4f} [{f['L_final_lo']:.4f}, {f['L_final_hi']:.4f}] lies above the best candidate's "
                f"interval, whose upper end is {top} (run {best})")
    return verdict


def _forecast(spec: RunSpec, pts: Any, step: int) -> dict:
    """The `schedule` forecast of one candidate from its points up to `step` (its LR schedule from its config)."""
    from scalinglab.laws.analyses.forecast import Curve, Forecaster, run_schedule
    from scalinglab.model.counting import n_params_closed_form

    cfg = spec.config
    n = n_params_closed_form(cfg.model())
    sched, warm = run_schedule(cfg, n)
    total = int(cfg.total_steps)
    curve = Curve(spec.run_id, pts["step"].to_numpy(float), pts["val_loss"].to_numpy(float), sched, total, float(n),
                  float(warm))
    # points up to `step` (half a step more, so that float rounding cannot drop the check's own point)
    out = Forecaster(method=METHOD, bootstrap=BOOTSTRAP).forecast(curve, fraction=(step + 0.5) / total)
    if not all(math.isfinite(out[k]) for k in ("L_final", "L_final_lo", "L_final_hi")):
        raise UserError(f"run {spec.run_id}: the forecast is not finite")
    if out["L_final_lo"] <= 0.0:  # a loss is positive: the partial curve does not pin the law down yet
        raise UserError(f"run {spec.run_id}: the forecast interval [{out['L_final_lo']:.4g}, {out['L_final_hi']:.4g}] "
                        "reaches below 0, so it cannot be trusted")
    out.pop("curve", None)
    out["params"] = {k: float(v) for k, v in out["params"].items()}
    out["seen_step"] = int(step)
    return out
