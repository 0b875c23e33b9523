"""W&B offline run folders (`wandb/offline-run-*/run-*.wandb`), read locally with wandb's own protobufs.

wandb 0.31 cannot read a run without a server (its `sync` uploads, and the Python record reader
`wandb.sdk.internal.datastore` of older releases is gone). The `.wandb` file is a LevelDB-style log
(leveldb doc/log_format.md; the layout of that removed reader): a 7-byte header (":W&B", magic 0xBEE1,
version), then 32 KiB blocks of chunks (crc32 of type + data, length, type FULL/FIRST/MIDDLE/LAST). This
module splits the chunks, checks each checksum, and parses every record with `wandb.proto.wandb_internal_pb2.Record`:
`run` (id, project, name, config), `config` updates, `history` rows (step + key/value JSON) and `exit`
(exit code -> done or failed; no exit record: still running). W&B history exported as CSV/JSONL goes through
the table reader instead (`_step`, `_runtime` are understood).
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scalinglab.errors import UserError
from scalinglab.importers.schema import CONFIG_KEYS, CURVE_KEYS, ImportedRun, canonical_config, pick

BLOCK, HEADER = 32768, 7
IDENT, MAGIC = b":W&B", 0xBEE1
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _chunks_crc(kind: int, data: bytes) -> int:
    return zlib.crc32(data, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF


def raw_records(path: Path) -> Iterator[bytes]:
    """The serialized records of a .wandb file, in order (a torn tail of a running run is ignored)."""
    data = path.read_bytes()
    if len(data) < HEADER or data[:4] != IDENT or struct.unpack("<H", data[4:6])[0] != MAGIC:
        raise UserError(f"{path} is not a W&B run file (bad header)")
    pos, parts = HEADER, []
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # block trailer padding
            pos += left
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        chunk = data[pos + HEADER:pos + HEADER + length]
        if kind == 0 and length == 0:
            break
        if len(chunk) < length or _chunks_crc(kind, chunk) != crc:
            break  # the writer was interrupted here
        pos += HEADER + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            parts = [chunk]
        elif kind == MIDDLE:
            parts.append(chunk)
        elif kind == LAST:
            yield b"".join(parts + [chunk])
            parts = []


def _key(item) -> str:
    return item.key if item.key else "/".join(item.nested_key)


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_run(path: Path) -> dict[str, Any]:
    """run id, project, name, config, history rows and exit code of one .wandb file."""
    from wandb.proto import wandb_internal_pb2 as pb

    out: dict[str, Any] = {"config": {}, "history": [], "exit_code": None, "run_id": None}
    for raw in raw_records(path):
        rec = pb.Record()
        rec.ParseFromString(raw)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            out.update(run_id=r.run_id, project=r.project, entity=r.entity, name=r.display_name)
            out["config"].update({_key(i): _value(i.value_json) for i in r.config.update})
        elif kind == "config":
            out["config"].update({_key(i): _value(i.value_json) for i in rec.config.update})
        elif kind == "history":
            row = {_key(i): _value(i.value_json) for i in rec.history.item}
            row.setdefault("_step", rec.history.step.num)
            out["history"].append(row)
        elif kind == "exit":
            out["exit_code"] = rec.exit.exit_code
    return out


def run_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*.wandb") if p.is_file())


def read_wandb(root: Path, mapping: dict[str, str]) -> list[ImportedRun]:
    import pandas as pd

    if not root.exists():
        raise UserError(f"wandb source not found: {root}")
    runs = []
    for f in run_files(root):
        r = parse_run(f)
        hist = pd.DataFrame.from_records(r["history"])
        names = [str(c) for c in hist.columns]
        cols = {k: pick(names, k, mapping) for k in CURVE_KEYS}
        curve = hist[[c for c in cols.values() if c]].rename(columns={v: k for k, v in cols.items() if v})
        config = {k: v for k, v in r["config"].items() if k != "_wandb"}
        code = r["exit_code"]
        status = "running" if code is None else ("done" if code == 0 else "failed")
        project = r.get("project") or "uncategorized"
        runs.append(ImportedRun(
            family="wandb", label=f"wandb:{project}", key=f"{project}/{r['run_id'] or f.stem}", curve=curve,
            config=canonical_config(config, {k: v for k, v in mapping.items() if k in CONFIG_KEYS}),
            status=status, reason=None if code in (None, 0) else f"exit code {code}",
            source={"format": "wandb", "path": str(f.resolve()), "name": r.get("name") or None,
                    "entity": r.get("entity") or None},
        ))
    return runs
