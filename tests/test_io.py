"""scalinglab.io (strict JSON of any result) and the shared progress bar."""

from __future__ import annotations

import io
import json
import math

import numpy as np

from scalinglab.io import json_safe
from scalinglab.progress import Progress


def test_json_safe_makes_strict_json_of_numpy_nan_and_tuples():
    obj = {"a": float("nan"), 3: (1, np.float64(2.5), np.int64(4)), "b": np.array([1.0, np.inf]),
           "c": [np.bool_(True), None, "x", -math.inf], "d": {"e": np.float32(0.5)}}
    out = json_safe(obj)
    assert out == {"a": None, "3": [1, 2.5, 4], "b": [1.0, None], "c": [True, None, "x", None], "d": {"e": 0.5}}
    assert type(out["3"][2]) is int and type(out["c"][0]) is bool
    json.dumps(out, allow_nan=False)  # raises on any NaN left


def test_progress_draws_on_its_stream_or_passes_lines_to_the_fallback():
    stream = io.StringIO()
    with Progress("work", 3, enabled=True, stream=stream) as p:
        p.advance()
        p.update(3, info="done")
        p.log("a line")
    assert "a line" in stream.getvalue()
    seen: list[str] = []
    quiet = io.StringIO()
    with Progress("work", 3, enabled=None, stream=quiet, fallback=seen.append) as p:  # not a terminal: no bar
        p.advance()
        p.log("plain")
    assert seen == ["plain"] and quiet.getvalue() == ""


def test_atomic_writes_get_the_permissions_open_would_give_and_keep_an_existing_files(tmp_path, monkeypatch):
    import os
    import stat

    import scalinglab.io as sio

    monkeypatch.setattr(sio, "_UMASK", 0o027)  # the module reads the process umask once, at import
    new = sio.atomic_write_text(tmp_path / "new.json", "{}\n")
    assert stat.S_IMODE(new.stat().st_mode) == 0o640  # 0o666 & ~umask, not mkstemp's 0o600
    old = tmp_path / "old.png"
    old.write_bytes(b"x")
    old.chmod(0o604)
    sio.atomic_write_bytes(old, b"y")
    assert stat.S_IMODE(old.stat().st_mode) == 0o604 and old.read_bytes() == b"y"
    monkeypatch.undo()
    mask = os.umask(0o022)
    os.umask(mask)
    sio.atomic_write_text(tmp_path / "plain.txt", "a")
    assert stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == 0o666 & ~mask
