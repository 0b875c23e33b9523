"""`scalinglab forecast`: a run's final loss (and the rest of its curve) from the first part of its learning curve."""

from __future__ import annotations

from typing import Annotated

import typer

from scalinglab.cli.core import emit_json, new_app

app = new_app()


@app.command()
def forecast(
    db: Annotated[str | None, typer.Option("--db", help="Results store: forecast its runs.")] = None,
    csv: Annotated[str | None, typer.Option("--csv", help="CSV of partial curves: run, step (or tokens), L (or loss), "
                                            "optional lr, total_steps, N, warmup.")] = None,
    run: Annotated[str | None, typer.Option("--run", help="Only this run (id or id prefix).")] = None,
    fraction: Annotated[float | None, typer.Option(
        "--fraction", help="Use only the first F of each run's steps (0 < F < 1), e.g. to check a forecast "
        "against a finished run; default: every point there is, and only unfinished runs.")] = None,
    method: Annotated[str, typer.Option("--method", help="auto | family | schedule | power.")] = "auto",
    bootstrap: Annotated[int, typer.Option("--bootstrap", min=20, help="Bootstrap draws for the 95% interval.")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
    json_out: Annotated[str | None, typer.Option("--json", help="Write the forecasts as JSON to this file ('-': stdout).")] = None,
) -> None:
    """Predicted final loss of each run with a 95% interval, from its partial curve and the LR schedule."""
    from scalinglab.api import forecast as run_forecast
    from scalinglab.errors import UserError

    if (db is None) == (csv is None):
        raise UserError("give the curves either as --db STORE or as --csv FILE, not both or neither")
    if csv is not None:
        from scalinglab.laws.framework.data import load_csv

        source = load_csv(csv)
    else:
        source = db
    result = run_forecast(source, run=run, fraction=fraction, method=method, bootstrap=bootstrap, seed=seed)
    if json_out is not None:
        emit_json(result, json_out)
    if json_out != "-":
        typer.echo(summary(result))


def summary(r: dict) -> str:
    lines = [f"forecasts ({len(r['forecasts'])} runs; 95% intervals)"]
    for f in r["forecasts"]:
        lines.append(f"  {f['run'][:16]}: L_final = {f['L_final']:.4g}  95% [{f['L_final_lo']:.4g}, "
                     f"{f['L_final_hi']:.4g}]  ({f['method']}, {100 * f['fraction_seen']:.0f}% seen, "
                     f"{f['points_used']} points)")
    for s in r["skipped"]:
        lines.append(f"  {s['run'][:16]}: no forecast: {s['reason']}")
    if not r["forecasts"] and not r["skipped"]:
        lines.append("  nothing to forecast: every run is finished (give --fraction F to check forecasts on them)")
    return "\n".join(lines)
