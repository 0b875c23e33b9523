"""`scalinglab runs --db DB`: list the runs of a results store (table, JSON or CSV for pandas)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from scalinglab.cli.core import emit_json, new_app
from scalinglab.io import json_safe

# What `runs --json` reports per run (besides `config` and, with --curves, `curve`).
JSON_FIELDS = ("run_id", "name", "plan", "family", "status", "reason", "val_loss", "best_val_loss", "train_loss", "n_params",
               "n_params_with_embeddings", "n_embedding", "steps", "tokens", "examples", "flops", "flops_convention",
               "flops_no_context",
               "pf_days", "noise_scale", "lr", "wall_s", "threads", "host", "started_at", "finished_at", "attempts")


# What each FLOP convention a run can carry means (sweep.plan and sweep.command name them)
FLOPS_WORDS = {"exact": "6N + 6·n_layer·n_ctx·d_attn per token, scalinglab's trainer",
               "6N": "6·N·tokens, a command run whose trainer logged no FLOPs",
               "reported": "logged by the run's own trainer"}

app = new_app()


@app.command()
def runs(
    db: Annotated[str, typer.Option("--db", help="Results store written by `sweep` or `train --db`.")],
    json_: Annotated[bool, typer.Option("--json", help="Print a JSON list of runs (with their config) on stdout.")] = False,
    csv: Annotated[str | None, typer.Option("--csv", help="Write a CSV (one row per run) to FILE ('-' = stdout).")] = None,
    curves: Annotated[bool, typer.Option("--curves", help="Every learning-curve point: one CSV row each, or a `curve` list per run in JSON.")] = False,
    plan: Annotated[str | None, typer.Option("--plan", help="Only the runs of this plan.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="Only runs with this status (queued, running, done, diverged, failed).")] = None,
) -> None:
    """List runs with their status and final metrics; never creates or changes the store."""
    from scalinglab.errors import UserError
    from scalinglab.store import db as store

    if json_ and csv:
        raise UserError("give --json or --csv, not both")
    if status is not None and status not in store.STATUSES:
        raise UserError(f"unknown --status {status!r}; choose one of: {', '.join(store.STATUSES)}")
    conn = store.connect(db, create=False)
    try:
        df = store.load_runs(conn, plan=plan)
        if status is not None:
            df = df[df["status"] == status]
        evals = store.load_evals(conn, plan=plan) if curves else None
    finally:
        conn.close()
    if evals is not None:
        evals = evals[evals["run_id"].isin(set(df["run_id"]))]
    if json_:
        emit_json(_as_json(df, evals))
    elif csv is not None:
        table = df if evals is None else _curves_table(df, evals)
        _write_csv(table, csv)
    else:
        _print_table(df, db)


def _as_json(df, evals) -> list[dict]:
    out = []
    by_run = {} if evals is None else {k: g for k, g in evals.groupby("run_id", sort=False)}
    for rec in df.to_dict("records"):
        row = {k: json_safe(rec.get(k)) for k in JSON_FIELDS}
        row["eval_losses"] = json.loads(rec["eval_losses"]) if isinstance(rec.get("eval_losses"), str) else {}
        row["config"] = json.loads(rec["config"])
        if evals is not None:
            g = by_run.get(rec["run_id"])
            pts = [] if g is None else g.drop(columns=["run_id"]).to_dict("records")
            row["curve"] = [{k: (json.loads(v) if k == "eval_losses" and isinstance(v, str) else json_safe(v))
                             for k, v in p.items() if not k.startswith("eval_") or k == "eval_losses"} for p in pts]
        out.append(row)
    return out


def _curves_table(df, evals):
    """Eval points joined with each run's shape, size and status (one row per point)."""
    run_cols = [c for c in df.columns if c not in evals.columns or c == "run_id"]
    run_cols = [c for c in run_cols if c not in ("config", "val_loss_per_position", "eval_losses", "reason")]
    return evals.merge(df[run_cols], on="run_id", how="left")


def _write_csv(table, dest: str) -> None:
    if dest == "-":
        table.to_csv(sys.stdout, index=False)
        return
    from scalinglab.io import atomic_write_with

    atomic_write_with(dest, lambda f: table.to_csv(f, index=False))


def _print_table(df, db: str) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{db}: {len(df)} runs")
    named = "name" in df and df["name"].notna().any()  # imported runs keep the names they had in their source
    for col in ("run_id", *(("name",) if named else ()), "plan", "status", "n_layer", "d_model", "N", "steps",
                "tokens", "FLOPs", "val_loss", "wall"):
        t.add_column(col)
    for r in df.to_dict("records"):
        vl = json_safe(r["val_loss"])
        n = json_safe(r["n_params"])
        tok = json_safe(r["tokens"])
        fl = json_safe(r["flops"])
        wall = json_safe(r["wall_s"])
        t.add_row(r["run_id"], *((_cell(r["name"]),) if named else ()), _cell(r["plan"]), r["status"],
                  _cell(r["n_layer"]), _cell(r["d_model"]),
                  f"{int(n):,}" if n is not None else "-", str(json_safe(r["steps"]) or "-"),
                  f"{int(tok):,}" if tok is not None else "-", f"{fl:.3g}" if fl is not None else "-",
                  f"{vl:.4f}" if vl is not None else "-", f"{wall:.1f} s" if wall is not None else "-")
    con = Console() if sys.stdout.isatty() else Console(width=160, no_color=True)
    con.print(t)
    conventions = sorted(set(df["flops_convention"].dropna())) if "flops_convention" in df else []
    if conventions:
        con.print("FLOPs counted as: " + "; ".join(f"{c} ({FLOPS_WORDS.get(c, 'as the import recorded')})"
                                                   for c in conventions))


def _cell(x) -> str:
    """A config value as the table shows it: '-' when the run's source did not give it."""
    x = json_safe(x)
    return "-" if x is None else str(x)
