"""The sweep driver: run every run of a plan that the store does not have yet, exactly once.

    plan → enqueue (INSERT OR IGNORE 'queued') → for each run not done: submit to the executor and mark
    'running' → the worker returns its result dict → record_result (one transaction) → next run

Only this process writes the store, and only one sweep at a time may write a given store (an flock on
`<db>.lock`, released by the kernel if the driver is killed). Each run trains in `<db_dir>/runs/<run_id>/`,
so a sweep killed at any moment resumes every half-done run from its checkpoint when started again:
'running' rows left by a killed driver are simply run again, and `run_training` continues from the
checkpoint (or returns the finished result.json if the worker had finished but the driver had not yet
recorded it). A WSD cooldown branch (`train/branches.py`) waits for its trunk and starts from the trunk's
checkpoint at its fork step. Runs that 'diverged' are final (they would diverge again); 'failed' runs (an exception, a
dead worker) are retried with `retry_failed`.

Threads: each run gets `threads` = cores // workers unless given; a run resumed from a checkpoint keeps
the thread count it started with (read from its run folder), so its result is bit-identical to an
uninterrupted run's.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalinglab.cores import available_cores
from scalinglab.errors import UserError
from scalinglab.progress import Progress
from scalinglab.store import db as store
from scalinglab.sweep.command import LIVE_POLL_S
from scalinglab.sweep.estimate import run_flops
from scalinglab.sweep.executors import make_executor
from scalinglab.sweep.plan import Plan, RunSpec
from scalinglab.sweep.prune import Pruner


@dataclass
class SweepSummary:
    plan: str
    db: str
    executor: str
    workers: int
    threads: int
    total: int = 0
    already_done: int = 0
    skipped_failed: int = 0
    skipped_pruned: int = 0
    ran: int = 0
    done: int = 0
    diverged: int = 0
    failed: int = 0
    pruned: int = 0
    resumed: int = 0
    pruned_flops_saved: float = 0.0  # FLOPs the pruned runs would have spent from their stop to their end
    wall_s: float = 0.0
    run_wall_s: float = 0.0
    runs: list[dict] = field(default_factory=list)
    lr_choices: list[dict] = field(default_factory=list)  # `lr = "sweep"`: the best LR of each size

    @property
    def overhead_per_run_s(self) -> float | None:
        """(sweep wall · workers − Σ run walls) / runs: time not spent training, per run."""
        if not self.ran:
            return None
        return (self.wall_s * min(self.workers, self.ran) - self.run_wall_s) / self.ran

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items()}
        d["overhead_per_run_s"] = self.overhead_per_run_s
        return d


def run_folder(db_path: str | Path, run_id: str) -> Path:
    """The run folder of `run_id` beside the store."""
    return Path(db_path).resolve().parent / "runs" / run_id


def _resume_threads(out_dir: Path) -> int | None:
    """Thread count a half-done run started with (from its run folder), if it has a checkpoint."""
    try:
        if (out_dir / "checkpoint.pt").exists() and not (out_dir / "result.json").exists():
            t = json.loads((out_dir / "config.json").read_text(encoding="utf-8")).get("threads")
            return int(t) if t else None
    except (OSError, ValueError):
        return None
    return None


class _Lock:
    """Exclusive, non-blocking flock on `<db>.lock`: one writing sweep per store."""

    def __init__(self, db_path: Path):
        self.path = db_path.with_name(db_path.name + ".lock")
        self.fd: int | None = None

    def __enter__(self) -> _Lock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise UserError(f"another sweep is writing {self.path.with_suffix('')}; wait for it or use another --db") from None
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _describe(spec: RunSpec) -> str:
    c = spec.config
    return f"n_layer={c.n_layer} d_model={c.d_model} bs={c.batch_size} steps={c.total_steps} seed={c.seed}"


def run_sweep(
    plan: Plan,
    db_path: str | Path,
    *,
    executor: str = "local",
    workers: int = 1,
    threads: int | None = None,
    address: str | None = None,
    retry_failed: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] = _stderr,
    tracker: str | None = None,
    prune: bool = True,
    retry_pruned: bool = False,
) -> SweepSummary:
    """Run every run of `plan` that is not finished in the store at `db_path`; returns a summary.

    prune: honour the plan's `prune_at` checks (`sweep/prune.py`); runs pruned earlier are kept as they are unless
    `retry_pruned`, which trains them on to the end."""
    from scalinglab.trackers import check_tracker

    check_tracker(tracker)  # an unknown or missing tracker fails before any run starts
    if workers < 1:
        raise UserError(f"--workers must be at least 1 (got {workers})")
    if threads is not None and threads < 1:
        raise UserError(f"--threads must be at least 1 (got {threads})")
    t_start = time.perf_counter()
    db_path = Path(db_path)
    cores = available_cores()
    threads = threads or max(1, cores // workers)
    summary = SweepSummary(plan.name, str(db_path), executor, workers, threads, total=len(plan.runs))
    conn = store.connect(db_path)
    try:
        with _Lock(db_path):
            store.enqueue(conn, [(s.run_id, s.config) for s in plan.runs], plan=plan.name, families=plan.families)
            status = store.run_statuses(conn)
            todo: list[RunSpec] = []
            for s in plan.runs:
                st = status.get(s.run_id)
                if st in store.FINISHED:
                    summary.already_done += 1
                elif st == "failed" and not retry_failed:
                    summary.skipped_failed += 1
                elif st == store.PRUNED and not retry_pruned:
                    summary.skipped_pruned += 1
                else:
                    todo.append(s)
            _log_skipped(plan, summary, log)
            retried = {s.run_id for s in todo if status.get(s.run_id) == store.PRUNED}
            pruner = Pruner(plan.runs, enabled=prune, exempt=retried)
            if todo:
                _drive(plan, todo, db_path, conn, summary, executor, workers, threads, address, progress, log,
                       tracker, pruner)
            summary.lr_choices = _choose_lrs(conn, plan, log)
    finally:
        conn.close()
    summary.wall_s = time.perf_counter() - t_start
    return summary


def _log_skipped(plan: Plan, summary: SweepSummary, log) -> None:
    if not (summary.already_done or summary.skipped_failed or summary.skipped_pruned):
        return
    log(f"{plan.name}: {summary.already_done} of {len(plan.runs)} runs already finished"
        + (f", {summary.skipped_failed} failed (rerun with --retry-failed)" if summary.skipped_failed else "")
        + (f", {summary.skipped_pruned} pruned (rerun with --retry-pruned)" if summary.skipped_pruned else ""))


def _drive(plan: Plan, todo: list[RunSpec], db_path: Path, conn, summary: SweepSummary, executor: str,
           workers: int, threads: int, address: str | None, progress: bool | None, log,
           tracker: str | None = None, pruner: Pruner | None = None) -> None:
    ex = make_executor(executor, workers, threads, address, runs_dir=run_folder(db_path, todo[0].run_id).parent,
                       corpora=sorted({s.config.corpus for s in todo}), preload=not all(s.command for s in todo))
    log(f"{plan.name}: running {len(todo)} runs on {executor} with {workers} worker(s) × {threads} thread(s)")
    bar = Progress("sweep", len(todo), enabled=progress if todo else False, transient=False, fallback=log)
    pruner = pruner or Pruner([], enabled=False)
    queue = sorted(todo, key=run_flops, reverse=True)  # costliest first (stable: ties keep the plan's order)
    waiting = {s.run_id for s in todo}  # a branch is not started while its trunk is here
    inflight: dict[Any, RunSpec] = {}
    paused: dict[str, dict] = {}  # run id -> its result at the pruning check it waits at
    t0 = time.perf_counter()
    finished = 0
    seen_live: dict[str, float] = {}
    try:
        while queue or inflight:
            while len(inflight) < workers:
                ready = [s for s in queue if s.parent not in waiting]
                if not ready:
                    break
                spec = ready[0]
                queue.remove(spec)
                out_dir = run_folder(db_path, spec.run_id)
                _prepare_branching(spec, db_path, out_dir)
                run_threads = _resume_threads(out_dir) or threads
                cfg = spec.config.model_copy(update={"threads": run_threads})
                task = {"run_id": spec.run_id, "config": cfg.model_dump(mode="json"), "out_dir": str(out_dir),
                        "resources": spec.resources}
                if tracker:
                    task["tracker"] = tracker
                if (pause := pruner.pause_at(spec)) is not None:
                    task["pause_at"] = pause
                if spec.command:  # a user's trainer, run in the plan's folder (sweep/command.py)
                    task.update(command=spec.command, cwd=str(plan.path.resolve().parent), **spec.command_options)
                store.mark_running(conn, spec.run_id, cfg, run_threads)
                inflight[ex.submit(task)] = spec
            live = [s for s in inflight.values() if s.command]
            done = ex.wait(list(inflight), timeout=LIVE_POLL_S if live else None)
            _copy_live(conn, db_path, live, seen_live, bar.log)
            for handle, result in done:
                spec = inflight.pop(handle)
                if result.get("status") == "paused":  # at a pruning check: wait for the rest of its group
                    store.record_points(conn, spec.run_id, result.get("curve") or [])
                    pruner.paused(spec)
                    paused[spec.run_id] = result
                    bar.log(f"  {spec.run_id} {_describe(spec)}: paused at step {result['steps']} for its pruning check")
                else:
                    waiting.discard(spec.run_id)
                    finished += 1
                    _record(conn, plan, spec, result, summary)
                    elapsed = time.perf_counter() - t0
                    eta = elapsed / finished * (len(todo) - finished)
                    bar.log(_line(spec, result, finished, len(todo), eta))
                    bar.advance()
                if spec.lr_group and pruner.ready(spec.lr_group, _pending(queue, inflight)):
                    for s in _judge(conn, plan, pruner, spec.lr_group, paused, summary, bar.log):
                        waiting.discard(s.run_id)
                        finished += 1
                        bar.advance()
                    queue = sorted([*queue, *(pruner.resumed.pop(spec.lr_group, []))], key=run_flops, reverse=True)
    except BaseException:
        bar.close()
        try:
            store.mark_queued(conn, [s.run_id for s in inflight.values()], "sweep interrupted")
        finally:
            ex.shutdown(cancel=True)
        raise
    bar.close()
    ex.shutdown()


def _pending(queue: list[RunSpec], inflight: dict[Any, RunSpec]) -> set[str]:
    return {s.run_id for s in queue} | {s.run_id for s in inflight.values()}


def _judge(conn, plan: Plan, pruner: Pruner, group: str, paused: dict[str, dict], summary: SweepSummary,
           log) -> list[RunSpec]:
    """A group's pruning check: store the pruned runs (with their forecasts and the evidence) and leave the others
    in `pruner.resumed` to go on; returns the pruned runs' specs."""
    verdict, go_on = pruner.judge(conn, group)
    lrs = {s.run_id: s.config.lr for s in pruner.groups[group]}
    pruned = []
    for s in pruner.groups[group]:
        if s.run_id not in verdict.pruned or s.run_id not in paused:
            continue
        result = {k: v for k, v in paused.pop(s.run_id).items() if k not in ("run_id", "worker_pid")}
        steps, total = int(result.get("steps") or 0), s.config.total_steps
        if steps:
            summary.pruned_flops_saved += float(result.get("flops") or 0.0) * (total - steps) / steps
        result.update(status=store.PRUNED, reason=verdict.pruned[s.run_id], prune=verdict.evidence(s.run_id, lrs))
        store.record_result(conn, result, plan=plan.name, run_id=s.run_id)
        summary.ran += 1
        summary.pruned += 1
        summary.run_wall_s += float(result.get("wall_s") or 0.0)
        log(f"{plan.name}: {s.run_id} lr {s.config.lr:g}: {verdict.pruned[s.run_id]}")
        pruned.append(s)
    for s in go_on:
        paused.pop(s.run_id, None)
    if verdict.forecasts and not verdict.pruned:
        log(f"{plan.name}: check at {verdict.fraction:.0%} of N={_n_of(pruner, group)}: no candidate pruned")
    pruner.resumed[group] = go_on
    return pruned


def _n_of(pruner: Pruner, group: str) -> str:
    s = pruner.groups[group][0]
    return f"{s.config.n_layer}x{s.config.d_model}"


def _copy_live(conn, db_path: Path, specs: list[RunSpec], seen: dict[str, float], log) -> None:
    """The curves command runs have written so far (`curve.live.json`, sweep/command.py) into the store, with a
    line for each run that has a new point."""
    from scalinglab.sweep.command import LIVE

    for spec in specs:
        path = run_folder(db_path, spec.run_id) / LIVE
        try:
            mtime = path.stat().st_mtime_ns
            if seen.get(spec.run_id) == mtime:
                continue
            points = json.loads(path.read_text(encoding="utf-8"))["points"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        seen[spec.run_id] = mtime
        if points:
            store.record_points(conn, spec.run_id, points)
            last = points[-1]
            loss = f"{last['val_loss']:.4f}" if isinstance(last.get("val_loss"), float) else "-"
            log(f"  {spec.run_id} {_describe(spec)}: step {last['step']}, val_loss {loss} ({len(points)} points)")


def _choose_lrs(conn, plan: Plan, log) -> list[dict]:
    """`lr = "sweep"` groups: the best LR per size joins its family (`sweep/lr_sweep.py`); say which, and warn at
    a grid edge."""
    from scalinglab.sweep.lr_sweep import record_choices

    choices = record_choices(conn, plan)
    for c in choices:
        edge = " (at the edge of the grid: widen lr_grid)" if c["at_edge"] else ""
        log(f"{plan.name}: best LR for N={c['n_params']}: {c['best_lr']:.3g} (val_loss {c['best_val_loss']:.4f}), "
            f"family {c['family']}{edge}")
    return choices


def _prepare_branching(spec: RunSpec, db_path: Path, out_dir: Path) -> None:
    """A trunk is told its fork steps; a branch gets its trunk's fork checkpoint (`train/branches.py`)."""
    from scalinglab.train import branches

    if spec.forks:
        branches.request_forks(out_dir, spec.forks)
    if spec.parent is not None:
        branch = branches.Branch(spec.config, spec.fork_step, spec.config.total_steps * spec.config.tokens_per_step)
        branches.start_branch(run_folder(db_path, spec.parent), branch, out_dir, spec.parent)


def _record(conn, plan: Plan, spec: RunSpec, result: dict, summary: SweepSummary) -> None:
    status = result.get("status")
    summary.ran += 1
    if status in ("done", "diverged"):
        result = {k: v for k, v in result.items() if k not in ("run_id", "worker_pid")}
        store.record_result(conn, result, plan=plan.name, run_id=spec.run_id, replace_curve=bool(spec.command))
        summary.run_wall_s += float(result.get("wall_s") or 0.0)
        if result.get("resumed_from"):
            summary.resumed += 1
    else:
        store.mark_failed(conn, spec.run_id, str(result.get("reason") or "unknown failure"), result.get("host"))
        status = "failed"
    setattr(summary, status, getattr(summary, status) + 1)
    summary.runs.append({
        "run_id": spec.run_id, "status": status, "n_layer": spec.config.n_layer, "d_model": spec.config.d_model,
        "n_params": result.get("n_params"), "steps": result.get("steps"), "val_loss": result.get("val_loss"),
        "wall_s": result.get("wall_s"), "worker_s": result.get("worker_s"), "threads": result.get("threads"),
        "resumed_from": result.get("resumed_from") or [], "reason": result.get("reason"),
    })


def _line(spec: RunSpec, result: dict, k: int, n: int, eta: float) -> str:
    status = result.get("status")
    if status == "done":
        what = f"val_loss {result.get('val_loss'):.4f} in {result.get('wall_s', 0):.1f} s"
    else:
        what = str(result.get("reason"))
    resumed = f" (resumed from step {result['resumed_from'][-1]})" if result.get("resumed_from") else ""
    return f"[{k}/{n}] {status} {spec.run_id} {_describe(spec)}: {what}{resumed}; ETA {eta:.0f} s"
