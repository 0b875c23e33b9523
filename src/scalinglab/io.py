"""Atomic file writes (temp file in the same folder, fsync, rename: a crash never leaves half a file), strict JSON."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()  # read once: os.umask can only be read by setting it, which is not thread-safe


def _mode_for(path: Path) -> int:
    """The permissions the written file gets: an existing file's, else what open() would give (0o666 & ~umask);
    mkstemp alone makes every file 0o600, unreadable to a web server serving a report or to a group sharing a store."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        return 0o666 & ~_UMASK


def atomic_write_with(path: str | os.PathLike, write: Callable[[Any], None], binary: bool = False) -> Path:
    """Call `write(fileobj)` on a temp file beside `path`, then fsync and rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            os.fchmod(f.fileno(), _mode_for(path))
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_with(path, lambda f: f.write(text))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write_with(path, lambda f: f.write(data), binary=True)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Read JSON, turning a missing or malformed file into a one-line UserError."""
    from scalinglab.errors import UserError

    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what} not found: {p}")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{what} {p} is not valid JSON: {e}") from None


def json_safe(obj: Any) -> Any:
    """A copy of `obj` that strict JSON (and SQLite) accepts: NaN/inf become None (a diverged loss is 'no value'),
    numpy/torch scalars and arrays become plain numbers and lists, tuples become lists, keys become strings."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, bool | int | str) or obj is None:
        return obj
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    if hasattr(obj, "tolist"):  # numpy / torch arrays and scalars
        return json_safe(obj.tolist())
    if hasattr(obj, "item"):
        return json_safe(obj.item())
    return obj


def jsonl_objects(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a JSONL file (.gz too); a line that is not a JSON
    object, undecodable text or an unreadable file is a one-line UserError naming the file (and line)."""
    import gzip

    from scalinglab.errors import UserError

    p = Path(path)
    opener = gzip.open if p.name.lower().endswith(".gz") else open
    try:
        with opener(p, "rt", encoding="utf-8-sig") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise UserError(f"{p}: line {lineno} is not valid JSON ({e.msg})") from None
                if not isinstance(obj, dict):
                    raise UserError(f"{p}: line {lineno} is not a JSON object")
                yield lineno, obj
    except UnicodeDecodeError as e:
        raise UserError(f"{p} is not UTF-8 text: {e.reason}") from None
    except (OSError, EOFError) as e:  # unreadable or truncated gzip
        raise UserError(f"cannot read {p}: {e}") from None
