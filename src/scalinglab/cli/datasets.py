"""`scalinglab datasets list|show|export`: the published scaling-law tables shipped with the package."""

from __future__ import annotations

import dataclasses
import sys
from typing import Annotated

import typer

from scalinglab.cli.core import emit_json, new_app
from scalinglab.cli.options import JsonFlag

datasets_app = new_app(
    no_args_is_help=True,
    help="Published (N, D, C, L) tables shipped with scalinglab: list them, read their provenance, export one.",
)


@datasets_app.command("list")
def list_(json_: JsonFlag = False) -> None:
    """One line per table: name, rows, source; `fit --dataset NAME` fits one."""
    from scalinglab import datasets

    items = datasets.list_datasets()
    if json_:
        emit_json([dataclasses.asdict(d) for d in items])
        return
    width = max(len(d.name) for d in items)
    for d in items:
        typer.echo(f"{d.name:<{width}}  {d.rows:>5} rows  {d.title}")


@datasets_app.command()
def show(
    name: Annotated[str, typer.Argument(help="Table name (see `datasets list`).")],
    json_: JsonFlag = False,
) -> None:
    """The provenance of one table (source, columns, ranges, caveats) and its columns."""
    from scalinglab import datasets

    d = datasets.info(name)
    df = datasets.load(name)
    if json_:
        emit_json({**dataclasses.asdict(d), "columns": list(map(str, df.columns)),
                   "provenance": datasets.provenance(name)})
        return
    typer.echo(datasets.provenance(name).rstrip())
    typer.echo(f"\n{len(df)} rows; columns: {', '.join(map(str, df.columns))}")
    typer.echo(f"source: {d.source}, {d.path_in_source}; licence: {d.licence}")


@datasets_app.command()
def export(
    name: Annotated[str, typer.Argument(help="Table name (see `datasets list`).")],
    out: Annotated[str, typer.Option("--out", help="CSV file to write ('-': stdout); written atomically.")],
) -> None:
    """Write a table as the source's uncompressed CSV (the README's sha256 matches the file written)."""
    from scalinglab import datasets
    from scalinglab.io import atomic_write_bytes

    data = datasets.read_bytes(name)
    if out == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    atomic_write_bytes(out, data)
    typer.echo(f"wrote {out} ({datasets.info(name).rows} rows)")
