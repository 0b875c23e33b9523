"""A run's folder: config.json (the TrainConfig), metrics.jsonl (one evaluation per line), checkpoint.pt and
result.json, all written atomically. The same config in the same folder resumes; another one is refused
unless `overwrite`."""

from __future__ import annotations

import json
from pathlib import Path

from scalinglab.errors import UserError
from scalinglab.io import atomic_write_json, atomic_write_text, json_safe, read_json

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
METRICS = "metrics.jsonl"
RESULT = "result.json"
RESUME_IGNORES = ("threads", "micro_batch_size", "nproc_per_node", "compile")  # may differ between an interrupted run and its continuation


# Settings added after runs were first written: left out at their default, so those runs keep resuming.
RESUME_OMITTED_AT_DEFAULT = {"precision": "auto"}


def comparable(cfg: dict) -> dict:
    """The part of a config that a resumed run must share with the interrupted one."""
    return {k: v for k, v in cfg.items()
            if k not in RESUME_IGNORES and not (k in RESUME_OMITTED_AT_DEFAULT and RESUME_OMITTED_AT_DEFAULT[k] == v)}


def prepare_out(out: Path, cfg_dict: dict, overwrite: bool) -> dict | None:
    """Check `out` against the run's config; returns the stored result when the run is already finished."""
    if out.exists() and not out.is_dir():
        raise UserError(f"run folder {out} exists and is not a folder")
    cfg_path = out / CONFIG
    if cfg_path.exists():
        old = read_json(cfg_path, "run config")
        old_c, new_c = comparable(old if isinstance(old, dict) else {}), comparable(cfg_dict)
        if old_c != new_c and not overwrite:
            key = next((k for k in sorted(set(old_c) | set(new_c)) if old_c.get(k) != new_c.get(k)), "?")
            raise UserError(
                f"{out} holds a run with a different config ({key}: {old_c.get(key)!r} → {new_c.get(key)!r}); "
                "use --overwrite to replace it or choose another --out"
            )
        if overwrite:
            for name in (CHECKPOINT, METRICS, RESULT):
                (out / name).unlink(missing_ok=True)
        elif (out / RESULT).exists():
            return read_json(out / RESULT, "run result")
    atomic_write_json(cfg_path, cfg_dict)
    return None


def write_metrics(out: Path, curve: list[dict]) -> None:
    atomic_write_text(out / METRICS, "".join(json.dumps(json_safe(r), allow_nan=False) + "\n" for r in curve))


def write_result(out: Path, result: dict) -> dict:
    result = json_safe(result)
    atomic_write_json(out / RESULT, result)
    return result
