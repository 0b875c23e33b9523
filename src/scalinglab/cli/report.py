"""`scalinglab report --db DB --out DIR`: a static HTML (or Markdown) report of the paper's figures from a store."""

from __future__ import annotations

from typing import Annotated

import typer

from scalinglab.cli.core import emit_json, new_app

app = new_app()


@app.command()
def report(
    db: Annotated[str, typer.Option("--db", help="Results store written by `sweep`, `train --db` or `reproduce`.")],
    out: Annotated[str, typer.Option("--out", help="Folder for index.html (or index.md), the figures and style.css.")],
    format_: Annotated[str, typer.Option("--format", help="html or md.")] = "html",
    fits: Annotated[list[str] | None, typer.Option(
        "--fits", help="Fitted laws: a `scalinglab fit --json` file or an object keyed by law name (reproduce's "
                       "fits.json); repeat it to combine files (a later file's law wins). Default: the latest fit "
                       "of each law saved in the store (`fit --db` and `reproduce` save theirs).")] = None,
    budget: Annotated[list[float] | None, typer.Option(
        "--budget", help="Compute budgets in PF-days for the planner table (repeatable; default: 10x, 100x and "
                         "1000x the study's largest run).")] = None,
    figures: Annotated[str | None, typer.Option(
        "--figures", help="Only these figures, comma-separated paper numbers (e.g. 1,2,23). Default: all.")] = None,
    title: Annotated[str, typer.Option("--title", help="Report title.")] = "Scaling-law study",
    json_: Annotated[bool, typer.Option("--json", help="Print what was written as JSON.")] = False,
) -> None:
    """Draw every figure of the paper the store has data for, with the fitted laws and the planner's answers."""
    from pathlib import Path

    from scalinglab.errors import UserError
    from scalinglab.report.html import build_report
    from scalinglab.report.study import Study, fits_from_store, load_fits_files, plan_budgets

    if format_ not in ("html", "md"):
        raise UserError(f"unknown --format {format_!r}; use html or md")
    db_path = Path(db)
    if not db_path.is_file():
        raise UserError(f"results DB not found: {db_path}")
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} exists and is not a folder")
    fit_dicts = load_fits_files(fits) if fits else fits_from_store(db_path)
    study = Study.from_db(db_path, fits=fit_dicts)
    study.plans = plan_budgets(study, budget)
    only = [f.strip() for f in figures.split(",") if f.strip()] if figures else None
    if only:
        from scalinglab.report.figures import select_figures

        select_figures(only)  # unknown numbers → exit 2 before anything is written
    rep = build_report(study, out_dir, format_, title=title, only=only)
    if json_:
        emit_json(rep.to_dict())
    else:
        drawn = len(rep.drawn)
        typer.echo(f"wrote {rep.path} ({drawn} figure{'s' if drawn != 1 else ''} drawn, "
                   f"{len(rep.figures) - drawn} not measured by this study)")
