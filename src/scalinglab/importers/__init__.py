"""Bring your own runs: learning curves from CSV/JSONL, TensorBoard, MLflow, W&B, the HF Trainer or a text log
(regex patterns, `logs.py`) -> the store.

Canonical schema (what every reader produces; names a source uses instead are in `schema.CURVE_ALIASES`
and `schema.CONFIG_ALIASES`, and --run-config KEY=NAME maps any other):

  curve, one row per evaluation   run, step, loss (held-out loss, nats/token) [, tokens, flops, lr,
                                  train_loss, wall_s, noise_scale, N]
  config, one per run             N (non-embedding parameters), n_layer, d_model, d_ff, d_attn, n_heads,
                                  n_ctx, vocab_size, arch, batch_size (sequences), batch_tokens, data_tokens,
                                  flops_per_token, lr, status

N, tokens and FLOPs are resolved as `schema.to_result` documents, and the rule used is stored with each
run (`result.import`). A run's id is a hash of its source identity (format family, source label, the
source's run key), so importing the same source again updates those runs in place and never duplicates
them. Every run is read and validated before anything is written; each run is then written in one
transaction (row + every curve point), so bad input leaves the store as it was.

`read_source` is the one reader per format: `import` uses it, and so does a sweep's command executor to read the
curve of a run it launched (`sweep/readers.py`), so both see the same points.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalinglab.errors import UserError
from scalinglab.importers.schema import CURVE_ALIASES, ImportedRun, parse_run_config, to_result

FORMATS = ("csv", "jsonl", "tensorboard", "mlflow", "wandb", "hf-trainer", "log")

__all__ = ["FORMATS", "ImportedRun", "ImportSummary", "detect_format", "read_source", "read_runs", "import_runs",
           "results"]


@dataclass
class ImportSummary:
    """What an import did: the format, the store, and per run its id, source key, status and points."""

    format: str
    db: str
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n_points(self) -> int:
        return sum(r["points"] for r in self.runs)


def detect_format(source: str) -> str:
    """The format of SOURCE from its name or contents; a UserError when it cannot tell."""
    if "://" in source:
        return "mlflow"
    p = Path(source)
    if not p.exists():
        raise UserError(f"import source not found: {p}")
    if p.is_file():
        name = p.name.lower()
        by_suffix = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".wandb": "wandb", ".db": "mlflow",
                     ".sqlite": "mlflow", ".log": "log"}
        if name == "trainer_state.json":
            return "hf-trainer"
        if "tfevents" in name:
            raise UserError(f"{p} is one event file; give its folder (a TensorBoard run)")
        if p.suffix.lower() in by_suffix:
            return by_suffix[p.suffix.lower()]
    else:
        for pattern, fmt in (("trainer_state.json", "hf-trainer"), ("*.wandb", "wandb"),
                             ("events.out.tfevents.*", "tensorboard"), ("meta.yaml", "mlflow")):
            if next(p.rglob(pattern), None) is not None:
                return fmt
    raise UserError(f"cannot tell the format of {p}; give --format ({', '.join(FORMATS)})")


def read_source(source: str | Path, fmt: str, mapping: dict[str, str],
                patterns: str | list[str] | None = None) -> list[ImportedRun]:
    """Every run of SOURCE in format `fmt`, with its raw curve (canonical columns) and config; `patterns` are the
    regexes of the `log` format."""
    source = str(source)
    p = Path(source)
    if fmt == "log":
        from scalinglab.importers.logs import read_log

        if not patterns:
            raise UserError("--format log needs --pattern REGEX (named groups step and loss)")
        return read_log(p, patterns, mapping)
    if fmt in ("csv", "jsonl") or (fmt == "wandb" and p.suffix.lower() in (".csv", ".jsonl", ".ndjson")):
        from scalinglab.importers.tabular import read_table

        kind = "csv" if (fmt == "csv" or p.suffix.lower() == ".csv") else "jsonl"
        return read_table(p, kind, mapping, family="table" if fmt != "wandb" else "wandb-export")
    if fmt == "tensorboard":
        from scalinglab.importers.tensorboard import read_tensorboard

        return read_tensorboard(p, mapping)
    if fmt == "mlflow":
        from scalinglab.importers.mlflow_runs import read_mlflow

        return read_mlflow(source, mapping)
    if fmt == "wandb":
        from scalinglab.importers.wandb_runs import read_wandb

        return read_wandb(p, mapping)
    from scalinglab.importers.hf_trainer import read_hf

    return read_hf(p, mapping)


def _need(fmt: str) -> None:
    """A one-line error when the library a format needs is not installed (the `track` extra)."""
    import importlib.util

    module = {"tensorboard": "tbparse", "mlflow": "mlflow", "wandb": "wandb"}.get(fmt)
    if module and importlib.util.find_spec(module) is None:
        raise UserError(f"--format {fmt} needs {module}: pip install 'scalinglab[track]'")


def need(fmt: str) -> None:
    """A one-line UserError when the library that reads `fmt` is not installed."""
    _need(fmt)


def read_runs(source: str | Path, fmt: str | None = None, run_config: list[str] | dict[str, str] | None = None,
              config_table: str | Path | None = None, patterns: list[str] | None = None) -> list[ImportedRun]:
    """Every run of SOURCE in canonical form (nothing written); UserError for unreadable input or no runs."""
    source = str(source)
    if fmt is not None and fmt not in FORMATS:
        raise UserError(f"unknown --format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    fmt = fmt or detect_format(source)
    _need(fmt)
    mapping = run_config if isinstance(run_config, dict) else parse_run_config(run_config)
    runs = read_source(source, fmt, mapping, patterns)
    if not runs:
        raise UserError(f"no runs found in {source} (format {fmt})")
    if config_table is not None:
        from scalinglab.importers.tabular import apply_config_table, read_config_table

        apply_config_table(runs, read_config_table(config_table), mapping)
    return runs


def results(runs: list[ImportedRun], mapping: dict[str, str] | None = None) -> list[tuple[str, dict]]:
    """(run id, store record) of every run; validates all of them before anything is written."""
    mapping = mapping or {}
    looked = mapping["loss"] if "loss" in mapping else ", ".join(CURVE_ALIASES["loss"])
    out = [(r.run_id, to_result(r, looked)) for r in runs]
    seen: dict[str, str] = {}
    for (rid, _), r in zip(out, runs, strict=True):
        if rid in seen:
            raise UserError(f"two runs of the source have the same identity {r.key!r}")
        seen[rid] = r.key
    return out


def import_runs(source: str | Path, db: str | Path, fmt: str | None = None,
                run_config: list[str] | dict[str, str] | None = None, config_table: str | Path | None = None,
                plan: str = "imported", patterns: list[str] | None = None) -> ImportSummary:
    """Read SOURCE and upsert its runs with their full learning curves into the store DB."""
    from scalinglab.store import db as store

    mapping = run_config if isinstance(run_config, dict) else parse_run_config(run_config)
    runs = read_runs(source, fmt, mapping, config_table, patterns)
    records = results(runs, mapping)
    summary = ImportSummary(format=fmt or detect_format(str(source)), db=str(db))
    conn = store.connect(db)
    try:
        for (rid, rec), run in zip(records, runs, strict=True):
            store.record_result(conn, rec, plan=plan, run_id=rid)
            summary.runs.append({"run_id": rid, "key": run.key, "name": run.source.get("name") or run.key,
                                 "status": rec["status"], "points": len(rec["curve"]),
                                 "N": rec["n_params"], "flop_convention": rec["import"]["flop_convention"]})
    finally:
        conn.close()
    return summary
