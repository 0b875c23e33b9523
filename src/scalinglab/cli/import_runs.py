"""`scalinglab import SOURCE --db DB`: runs and full learning curves from other tools into the store."""

from __future__ import annotations

from typing import Annotated

import typer

from scalinglab.cli.core import emit_json, new_app

app = new_app()


@app.command("import")
def import_(
    source: Annotated[str, typer.Argument(help="CSV/JSONL file, TensorBoard folder, MLflow folder/SQLite file/URI, "
                                          "W&B offline run folder or export, trainer_state.json or its folder, a text log.")],
    db: Annotated[str, typer.Option("--db", help="Results store to write (created if missing).")],
    fmt: Annotated[str | None, typer.Option("--format", help="csv | jsonl | tensorboard | mlflow | wandb | "
                                            "hf-trainer | log (default: from SOURCE).")] = None,
    pattern: Annotated[list[str] | None, typer.Option(
        "--pattern", help="--format log: a regex with named groups step and loss (and optionally tokens, train_loss, "
        "lr, flops) matched on each line; repeat it for lines of other shapes.")] = None,
    run_config: Annotated[list[str] | None, typer.Option(
        "--run-config", help="Map a canonical key onto the source's name: loss=eval/loss, N=num_params, "
        "n_layer=layers (repeatable).")] = None,
    config: Annotated[str | None, typer.Option("--config", help="Per-run settings table (CSV/JSON/JSONL with a "
                                               "`run` column; a JSON object applies to every run).")] = None,
    plan: Annotated[str, typer.Option("--plan", help="Plan name the imported runs are filed under.")] = "imported",
    json_: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
) -> None:
    """Import runs idempotently: a run's id comes from its source identity, so re-importing updates it."""
    from scalinglab.importers import import_runs

    s = import_runs(source, db, fmt=fmt, run_config=run_config, config_table=config, plan=plan,
                   patterns=pattern)
    if json_:
        emit_json({"format": s.format, "db": s.db, "points": s.n_points, "runs": s.runs})
        return
    for r in s.runs:
        typer.echo(f"{r['run_id']}  {r['status']:<7} {r['points']:>5} points  N={r['N']:.4g}  {r['name']}")
    typer.echo(f"imported {len(s.runs)} runs ({s.n_points} points, format {s.format}) into {db}")
