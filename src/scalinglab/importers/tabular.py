"""CSV and JSONL long tables (one row per eval), W&B history exports, and per-run config tables.

A long table has a run column (`run`, `run_id`, `run_name` or `name`; none: the whole file is one run named
after the file), `step`, `loss` and optional curve columns (see `schema.CURVE_ALIASES`); columns that are
run settings (n_layer, d_model, batch_size, n_ctx, ...; see `schema.CONFIG_ALIASES`) are read as the run's
config from its first row. A config table (`--config FILE`: CSV, JSON list/object or JSONL) adds or
overrides settings per run, matched on its run column; a JSON object without one applies to every run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scalinglab.errors import UserError
from scalinglab.importers.schema import (
    CONFIG_KEYS,
    CURVE_KEYS,
    ImportedRun,
    canonical_config,
    pick,
    status_of,
)

RUN_ALIASES = {"run": ("run", "run_id", "run_name", "name")}


def read_jsonl(path: Path) -> list[dict]:
    """Objects of a JSONL file; a line that is not a JSON object is a UserError naming its line number."""
    from scalinglab.io import jsonl_objects

    return [obj for _, obj in jsonl_objects(path)]


def read_frame(path: Path, fmt: str):
    """A CSV or JSONL file as a DataFrame (bad files are one-line UserErrors)."""
    import pandas as pd

    from scalinglab.laws.framework.data import load_csv

    if not path.is_file():
        raise UserError(f"{fmt} file not found: {path}")
    if fmt == "csv":
        return load_csv(path)
    rows = read_jsonl(path)
    if not rows:
        raise UserError(f"no runs found in {path}: the file has no records")
    return pd.DataFrame.from_records(rows)


def read_table(path: Path, fmt: str, mapping: dict[str, str], family: str = "table") -> list[ImportedRun]:
    """Every run of a long CSV/JSONL table."""
    df = read_frame(path, fmt)
    cols = [str(c) for c in df.columns]
    run_col = pick(cols, "run", mapping, RUN_ALIASES)
    if "run" in mapping and run_col is None:
        raise UserError(f"--run-config run={mapping['run']}: {path.name} has no column {mapping['run']!r}")
    curve_cols = {k: pick(cols, k, mapping) for k in CURVE_KEYS}
    config_cols = [c for c in cols if c not in curve_cols.values() and c != run_col]
    groups = df.groupby(df[run_col].astype(str), sort=True) if run_col else [(path.stem, df)]
    runs = []
    for key, g in groups:
        curve = g[[c for c in curve_cols.values() if c]].rename(columns={v: k for k, v in curve_cols.items() if v})
        first = {c: g[c].dropna().iloc[0] for c in config_cols if g[c].notna().any()}
        cfg = canonical_config({k: _plain(v) for k, v in first.items()}, {k: v for k, v in mapping.items()
                                                                           if k in CONFIG_KEYS})
        runs.append(ImportedRun(family=family, label=path.stem, key=str(key), curve=curve.reset_index(drop=True),
                                config=cfg, status=status_of(first.get("status")),
                                source={"format": fmt, "path": str(path.resolve())}))
    return runs


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def read_config_table(path: str | Path) -> dict[str | None, dict[str, Any]]:
    """Run name -> settings from a CSV/JSON/JSONL table; the key None holds settings for every run."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config table not found: {p}")
    if p.suffix.lower() == ".json":
        from scalinglab.io import read_json

        data = read_json(p, "config table")
        rows = data if isinstance(data, list) else [data]
    elif p.suffix.lower() in (".jsonl", ".ndjson"):
        rows = read_jsonl(p)
    else:
        rows = [{k: _plain(v) for k, v in r.items() if v == v} for r in read_frame(p, "csv").to_dict("records")]
    out: dict[str | None, dict[str, Any]] = {}
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise UserError(f"config table {p}: entry {i} is not an object")
        name = next((row[a] for a in RUN_ALIASES["run"] if a in row), None)
        out[None if name is None else str(name)] = {k: v for k, v in row.items() if k not in RUN_ALIASES["run"]}
    return out


def apply_config_table(runs: list[ImportedRun], table: dict[str | None, dict[str, Any]],
                       mapping: dict[str, str]) -> None:
    """Merge a config table into the runs (table values win); every named row must match a run."""
    names = {r.key for r in runs} | {r.source.get("name") for r in runs if r.source.get("name")}
    unknown = sorted(k for k in table if k is not None and k not in names)
    if unknown:
        raise UserError(f"config table names runs the source does not have: {', '.join(unknown[:5])}")
    for r in runs:
        raw = {**table.get(None, {}), **table.get(r.source.get("name"), {}), **table.get(r.key, {})}
        extra = canonical_config(raw, {k: v for k, v in mapping.items() if k in CONFIG_KEYS})
        r.config.update(extra)
        if "status" in raw:
            r.status = status_of(raw["status"])
