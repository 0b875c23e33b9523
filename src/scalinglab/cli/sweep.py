"""`scalinglab sweep PLAN.toml --db DB`: run every run of a plan that the store does not have yet."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from scalinglab.cli.core import emit_json, new_app
from scalinglab.io import json_safe
from scalinglab.sweep.executors import EXECUTORS


def _console():
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=160, no_color=True)


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 90:
        return f"{s:.1f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


app = new_app()


@app.command()
def sweep(
    plan: Annotated[Path, typer.Argument(help="Plan file (TOML): [train] defaults, [[grid]] and [[run]] tables.")],
    db: Annotated[str | None, typer.Option("--db", help="Results store (SQLite); run folders go in DB_DIR/runs/.")] = None,
    executor: Annotated[Literal[EXECUTORS], typer.Option("--executor", help="local (worker processes) | ray.")] = "local",
    workers: Annotated[int, typer.Option("--workers", min=1, help="Runs in parallel.")] = 1,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="Torch threads per run (default cores // workers).")] = None,
    address: Annotated[str | None, typer.Option("--address", help=(
        "Join the Ray cluster at HOST:PORT (`ray start --head` prints it) instead of starting a local Ray; --db "
        "(its runs/ folder) and the corpus must be on a path every node sees (checked at start)."))] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Run failed runs again (diverged ones are final).")] = False,
    prune: Annotated[bool, typer.Option("--prune/--no-prune", help=(
        "Honour the plan's prune_at checks: stop LR candidates whose forecast cannot beat the best one's "
        "(stored as pruned).")) ] = True,
    retry_pruned: Annotated[bool, typer.Option("--retry-pruned", help="Train runs pruned earlier on to the end "
                                               "(from where they stopped).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the runs with N, tokens, FLOPs and estimated wall time; start nothing.")] = False,
    estimate: Annotated[bool, typer.Option("--estimate/--no-estimate", help="With --dry-run: time a few steps to estimate wall time.")] = True,
    peak_flops: Annotated[str | None, typer.Option("--peak-flops", help=(
        "With --dry-run: also print the plan's GPU-hours at this peak, in FLOP/s (989e12) or a GPU's name for its "
        "datasheet dense bf16 peak (H100, H200, A100, L4, ...)."))] = None,
    mfu: Annotated[float, typer.Option("--mfu", min=0.0, max=1.0, help="With --peak-flops: the model FLOPs "
                                       "utilisation to assume (a fraction).")] = 0.35,
    tracker: Annotated[str | None, typer.Option("--tracker", help="Also log every run's evals and config to mlflow | "
                                                "tensorboard | wandb (the `track` extra).")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout instead of tables.")] = False,
) -> None:
    """Run a sweep plan; rerunning finishes what is missing and duplicates nothing (exit 0 even if runs diverged)."""
    from scalinglab.cores import available_cores
    from scalinglab.errors import UserError
    from scalinglab.sweep.plan import load_plan

    if address and executor != "ray":
        raise UserError("--address is for --executor ray")
    if not dry_run and not db:
        raise UserError("missing --db DB (the results store); use --dry-run to only list the runs")
    p = load_plan(plan)
    if address and not dry_run:  # fail fast, before the store is touched (bounded: see sweep/cluster.py)
        from scalinglab.sweep.cluster import probe_address

        probe_address(address)
    peak = _peak_flops(peak_flops) if peak_flops is not None else None
    if peak_flops is not None and not dry_run:
        raise UserError("--peak-flops is for --dry-run")
    if dry_run:
        _dry_run(p, db, threads or max(1, available_cores() // workers), workers, estimate, json_,
                 None if peak is None else (peak, mfu))
        return
    from scalinglab.sweep.runner import run_sweep

    summary = run_sweep(p, db, executor=executor, workers=workers, threads=threads, address=address,
                        retry_failed=retry_failed, tracker=tracker, prune=prune, retry_pruned=retry_pruned)
    if json_:
        emit_json(json_safe(summary.to_dict()))
    else:
        _print_summary(summary)
    if summary.failed:
        typer.echo(f"error: {summary.failed} run(s) failed; see `scalinglab runs --db {db}`, "
                   "rerun with --retry-failed", err=True)
        raise SystemExit(1)


def _peak_flops(text: str) -> float:
    """A peak in FLOP/s, or a GPU name looked up in the datasheet table."""
    from scalinglab.errors import UserError

    try:
        value = float(text)
    except ValueError:
        from scalinglab.bench import DATASHEET_BF16_DENSE, datasheet_peak

        found = datasheet_peak(text)
        if found is None:
            names = ", ".join(k for k, _ in DATASHEET_BF16_DENSE)
            raise UserError(f"--peak-flops {text!r} is neither a number of FLOP/s nor a known GPU ({names})") from None
        return found
    if not value > 0:
        raise UserError(f"--peak-flops must be positive (got {text})")
    return value


def gpu_hours(plan, vocab: int, peak: float, mfu: float) -> dict:
    """The plan's training FLOPs with the output head (what the GPU executes), and the GPU-hours they take at
    `peak` FLOP/s and `mfu` (evaluations and compilation not included)."""
    from scalinglab.model.counting import flops_per_token_train

    flops = 0.0
    for s in plan.runs:
        if s.command:
            continue
        c = s.config
        own_steps = c.total_steps - (s.fork_step or 0)
        flops += flops_per_token_train(c.model(vocab), embedding=True) * own_steps * c.tokens_per_step
    return {"flops_with_head": flops, "peak_flops_per_s": peak, "mfu": mfu,
            "gpu_hours": flops / (peak * mfu) / 3600.0 if mfu > 0 else None}


def _dry_run(plan, db: str | None, threads: int, workers: int, estimate: bool, json_: bool,
             gpu: tuple[float, float] | None = None) -> None:
    from dataclasses import replace

    from scalinglab.store import db as store
    from scalinglab.sweep.estimate import estimate_walls

    vocab = plan.vocab_size
    rows = [s.summary(vocab) for s in plan.runs]
    statuses: dict[str, str] = {}
    if db and Path(db).is_file():
        statuses = store.run_statuses(db)
    native = [s for s in plan.runs if not s.command]  # a user's trainer (command) cannot be timed here
    walls = estimate_walls(replace(plan, runs=native), threads) if estimate and native else {}
    for r in rows:
        r["status"] = statuses.get(r["run_id"], "new")
        r["est_wall_s"] = walls.get(r["run_id"])
    todo = [r for r in rows if r["status"] not in (*store.FINISHED, store.PRUNED)]
    total_est = sum(r["est_wall_s"] or 0.0 for r in todo) / workers if walls else None
    out = {"plan": plan.name, "corpus": str(plan.corpus) if plan.corpus else None, "runs": rows,
           "n_runs": len(rows), "n_todo": len(todo), "duplicates": plan.duplicates, "workers": workers,
           "threads": threads, "total_flops": sum(r["own_flops"] for r in rows), "est_wall_s": total_est}
    if gpu is not None:
        out["gpu"] = gpu_hours(plan, vocab, *gpu)
    if json_:
        emit_json(json_safe(out))
        return
    from rich.table import Table

    t = Table(title=f"plan {plan.name}: {len(rows)} runs, {len(todo)} to run"
              + (f" ({plan.duplicates} duplicate grid points merged)" if plan.duplicates else ""))
    for col, just in (("run_id", "left"), ("from", "left"), ("n_layer", "right"), ("d_model", "right"),
                      ("N", "right"), ("batch", "right"), ("steps", "right"), ("tokens", "right"),
                      ("FLOPs", "right"), ("est. wall", "right"), ("status", "left")):
        t.add_column(col, justify=just)
    for r in rows:
        t.add_row(r["run_id"], r["origin"], str(r["n_layer"]), str(r["d_model"]), f"{r['n_params']:,}",
                  str(r["batch_size"]), f"{r['steps']:,}", f"{r['tokens']:,}", f"{r['flops']:.3g}",
                  _fmt_s(r["est_wall_s"]), r["status"])
    con = _console()
    con.print(t)
    con.print(_flops_note({r["flops_convention"] for r in rows}))
    con.print(f"total {out['total_flops']:.3g} FLOPs; estimated {_fmt_s(total_est)} with {workers} worker(s) × "
              f"{threads} thread(s) (from a few timed steps)" if total_est is not None else
              f"total {out['total_flops']:.3g} FLOPs")
    if gpu is not None:
        g = out["gpu"]
        hours = "n/a (mfu 0)" if g["gpu_hours"] is None else f"{g['gpu_hours']:.3g} GPU-hours"
        con.print(f"GPU time: {hours} for {g['flops_with_head']:.3g} training FLOPs (with the output head) at "
                  f"{g['peak_flops_per_s']:.3g} FLOP/s and {g['mfu']:.0%} MFU; evaluations and compilation not included")


def _flops_note(conventions: set[str]) -> str:
    """Which FLOP count the dry run shows: the one the stored results will hold."""
    from scalinglab.sweep.plan import FLOPS_6N, FLOPS_EXACT

    words = {FLOPS_EXACT: "scalinglab's runs: exact (6N + the context term 6·n_layer·n_ctx·d_attn per token), as they "
                          "are stored",
             FLOPS_6N: "command runs: 6·N·tokens with N counted from the planned shape, as they are stored unless "
                       "the trainer logs its own FLOPs or N"}
    return "FLOPs: " + "; ".join(words[c] for c in sorted(conventions))


def _print_summary(s) -> None:
    from rich.table import Table

    con = _console()
    if s.runs:
        t = Table(title=f"sweep {s.plan}: {s.ran} run(s) this time")
        for col in ("run_id", "status", "n_layer", "d_model", "N", "steps", "val_loss", "wall", "threads", "note"):
            t.add_column(col)
        for r in s.runs:
            note = r["reason"] or (f"resumed from step {r['resumed_from'][-1]}" if r["resumed_from"] else "")
            vl = r["val_loss"]
            t.add_row(r["run_id"], r["status"], str(r["n_layer"]), str(r["d_model"]),
                      f"{r['n_params']:,}" if r["n_params"] else "-", str(r["steps"] or "-"),
                      f"{vl:.4f}" if isinstance(vl, float) else "-", _fmt_s(r["wall_s"]), str(r["threads"] or "-"),
                      note or "")
        con.print(t)
    over = s.overhead_per_run_s
    con.print(
        f"{s.plan}: {s.total} runs in plan, {s.already_done} already finished, ran {s.ran} "
        f"({s.done} done, {s.diverged} diverged, {s.failed} failed, {s.pruned} pruned, {s.resumed} resumed) in "
        f"{_fmt_s(s.wall_s)}"
        + (f"; pruning saved {s.pruned_flops_saved:.3g} FLOPs" if s.pruned else "")
        + (f"; sweep overhead {over:.2f} s/run" if over is not None else "")
        + (f"; {s.skipped_failed} failed runs skipped (--retry-failed)" if s.skipped_failed else "")
        + (f"; {s.skipped_pruned} pruned runs kept (--retry-pruned)" if s.skipped_pruned else "")
    )
