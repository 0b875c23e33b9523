"""Text logs read with regular expressions: a trainer's stdout or log file (nanoGPT's "step 250: train loss 4.12,
val loss 4.23") becomes a learning curve.

Each pattern is a Python regex searched in every line; its named groups are curve columns: `step` (required in
every pattern), `loss` (the held-out loss; at least one pattern has it), and optionally `tokens`, `train_loss`,
`lr`, `flops`, `wall_s`. Several patterns may describe different lines (an eval line, a training line); the
values found for one step are merged, a later line winning for the same column. Only complete lines count: a
last line without its newline (a trainer mid-write) is ignored until it is finished. The run key is the file's
name; `import --format log` files it under the file's folder name.
"""

from __future__ import annotations

import re
from pathlib import Path

from scalinglab.errors import UserError
from scalinglab.importers.schema import CONFIG_KEYS, ImportedRun, canonical_config

GROUPS = ("step", "loss", "tokens", "train_loss", "lr", "flops", "wall_s")
REQUIRED = ("step", "loss")


def compile_patterns(patterns: str | list[str]) -> list[re.Pattern]:
    """The patterns compiled and checked: a UserError for bad syntax, an unknown group, a pattern without a
    `step` group, or no pattern with a `loss` group."""
    items = [patterns] if isinstance(patterns, str) else list(patterns)
    if not items or not all(isinstance(p, str) and p for p in items):
        raise UserError("a log pattern must be a non-empty regex string (or a list of them)")
    out = []
    for p in items:
        try:
            rx = re.compile(p)
        except re.error as e:
            raise UserError(f"pattern {p!r} is not a valid regex: {e}") from None
        unknown = sorted(set(rx.groupindex) - set(GROUPS))
        if unknown:
            raise UserError(f"pattern {p!r}: unknown group {unknown[0]!r} (groups: {', '.join(GROUPS)})")
        if "step" not in rx.groupindex:
            raise UserError(f"pattern {p!r} has no (?P<step>...) group")
        out.append(rx)
    if not any("loss" in rx.groupindex for rx in out):
        raise UserError(f"pattern {items[0]!r} has no (?P<loss>...) group (the held-out loss)"
                        if len(items) == 1 else "no pattern has a (?P<loss>...) group (the held-out loss)")
    return out


def complete_lines(path: Path) -> list[str]:
    """The lines of `path` that end with a newline (a half-written last line is left for the next read)."""
    data = path.read_bytes()
    data = data[:data.rfind(b"\n") + 1]
    return data.decode("utf-8", errors="replace").splitlines()


def parse_lines(lines: list[str], patterns: list[re.Pattern]):
    """The curve (a DataFrame with a column per group found) of the lines matched by any pattern."""
    import pandas as pd

    rows: dict[float, dict[str, float]] = {}
    for line in lines:
        for rx in patterns:
            m = rx.search(line)
            if m is None:
                continue
            vals = {k: _number(v) for k, v in m.groupdict().items() if v is not None}
            if vals.get("step") is None:
                continue
            rows.setdefault(vals["step"], {}).update({k: v for k, v in vals.items() if v is not None})
    return pd.DataFrame.from_records(list(rows.values()), columns=[g for g in GROUPS if any(
        g in rx.groupindex for rx in patterns)])


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").rstrip("%"))
    except ValueError:
        return None


def read_log(path: Path, patterns: str | list[str], mapping: dict[str, str] | None = None) -> list[ImportedRun]:
    """The run in one log file (its curve from the lines the patterns match)."""
    if not path.is_file():
        raise UserError(f"log file not found: {path}")
    compiled = compile_patterns(patterns)
    curve = parse_lines(complete_lines(path), compiled)
    return [ImportedRun(family="log", label=path.resolve().parent.name or "log", key=path.name, curve=curve,
                        config=canonical_config({}, {k: v for k, v in (mapping or {}).items() if k in CONFIG_KEYS}),
                        source={"format": "log", "path": str(path.resolve()),
                                "patterns": [rx.pattern for rx in compiled]})]
