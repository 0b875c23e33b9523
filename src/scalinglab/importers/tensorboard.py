"""TensorBoard event folders, read with tbparse: every folder holding event files is one run.

Scalar tags become curve columns by name (`loss` or `val_loss` or `eval/loss` ..., `tokens`, `flops`, `lr`;
see `schema.CURVE_ALIASES`, or map a tag with --run-config loss=TAG); the event step is the step.
Hyper-parameters written into the run's own folder (`SummaryWriter.add_hparams(..., run_name=".")`) are
read as its config. The run key is the folder's path relative to SOURCE (SOURCE's own name for itself).
"""

from __future__ import annotations

from pathlib import Path

from scalinglab.errors import UserError
from scalinglab.importers.schema import CONFIG_KEYS, CURVE_KEYS, ImportedRun, canonical_config, pick

EVENT_GLOB = "events.out.tfevents.*"


def run_dirs(root: Path) -> list[Path]:
    """Folders under (and including) `root` that contain event files, sorted."""
    return sorted({p.parent for p in root.rglob(EVENT_GLOB) if p.is_file()})


def _read_dir(d: Path):
    """(scalars pivoted by step, hparams dict) of the event files directly in `d`."""
    import pandas as pd
    from tbparse import SummaryReader

    scalars, hparams = [], {}
    for f in sorted(d.glob(EVENT_GLOB)):
        reader = SummaryReader(str(f))
        if len(reader.scalars):
            scalars.append(reader.scalars[["step", "tag", "value"]])
        hp = reader.hparams
        if len(hp):
            hparams.update(dict(zip(hp["tag"], hp["value"], strict=True)))
    if not scalars:
        return pd.DataFrame(), hparams
    long = pd.concat(scalars, ignore_index=True)
    wide = long.pivot_table(index="step", columns="tag", values="value", aggfunc="last")
    return wide.reset_index(), hparams


def read_tensorboard(root: Path, mapping: dict[str, str]) -> list[ImportedRun]:
    if not root.is_dir():
        raise UserError(f"tensorboard source must be a folder of event files: {root}")
    runs = []
    for d in run_dirs(root):
        wide, hparams = _read_dir(d)
        if wide.empty:
            continue
        tags = [str(c) for c in wide.columns]
        cols = {k: pick(tags, k, mapping) for k in CURVE_KEYS}
        cols["step"] = cols["step"] if "step" in mapping else "step"
        curve = wide[[c for c in cols.values() if c]].rename(columns={v: k for k, v in cols.items() if v})
        key = d.relative_to(root).as_posix()
        runs.append(ImportedRun(
            family="tensorboard", label=root.name, key=root.name if key == "." else key, curve=curve,
            config=canonical_config(hparams, {k: v for k, v in mapping.items() if k in CONFIG_KEYS}),
            source={"format": "tensorboard", "path": str(d.resolve()), "tags": tags[1:]},
        ))
    return runs
