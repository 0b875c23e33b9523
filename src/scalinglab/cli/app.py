"""The `scalinglab` app, assembled downward: each command module owns a typer app, and this module adds them.

A module with one command (fit.py: `scalinglab fit`) has its commands merged into the root; a module with a group
(corpus.py: `scalinglab corpus prepare|info`) is added under its name. Importing this module gives the whole app,
so `from scalinglab.cli import app` can be driven by typer's CliRunner; `main` adds the exit-status contract.
"""

from __future__ import annotations

import typer

from scalinglab import __version__
from scalinglab.cli import (
    bench,
    corpus,
    count,
    datasets,
    fit,
    forecast,
    import_runs,
    plan,
    predict,
    report,
    reproduce,
    runs,
    sweep,
    train,
)
from scalinglab.cli.core import new_app, run

app = new_app(
    name="scalinglab",
    help="Scaling laws for neural language models: train, fit, plan and report (Kaplan et al., 2020).",
    no_args_is_help=True,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"scalinglab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(
        False, "--debug", help="Show the full traceback of an internal error (also SCALINGLAB_DEBUG=1; accepted "
                               "after any command too)."
    ),
) -> None:
    """Scaling laws for neural language models: train, fit, plan and report."""


for _module in (count, fit, forecast, import_runs, plan, predict, report, reproduce, runs, sweep, train):
    app.add_typer(_module.app)
app.add_typer(bench.bench_app, name="bench")
app.add_typer(corpus.corpus_app, name="corpus")
app.add_typer(datasets.datasets_app, name="datasets")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `scalinglab` command: exit 0 on success, 2 with one stderr line on bad input."""
    run(app, argv)
