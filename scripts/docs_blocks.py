"""Run the code blocks of a docs page as a reader would, in order, in one fresh folder.

The convention the pages follow (tests/test_docs.py runs every tutorial and how-to guide this way):

- a block with a `title="NAME"` attribute is a file: it is written to NAME in the folder, not run;
- a ```bash block runs with bash (`set -euo pipefail`), with the `scalinglab` entry point on PATH;
- a ```python block runs in a fresh Python process;
- any other block (```sh, ```py, ```toml, ```text, ...) is shown only: ```sh marks commands that are too long
  for the tests (a 45-minute preset, a cluster);
- a ```text block right after a runnable block is that block's output.

    python scripts/docs_blocks.py docs/tutorials/chinchilla-notebook.md            # run, print the outputs
    python scripts/docs_blocks.py docs/tutorials/chinchilla-notebook.md --update   # and paste them into the page
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^(?P<indent>[ ]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ ]*$", flags=re.M | re.S)
RUNNABLE = ("bash", "python")


@dataclass
class Block:
    lang: str
    title: str | None
    body: str
    start: int  # offsets of the whole fence in the page
    end: int
    output_of: int | None = None  # index of the runnable block this text block is the output of

    @property
    def runs(self) -> bool:
        return self.title is None and self.lang in RUNNABLE


def parse(text: str) -> list[Block]:
    """The fenced blocks of a page, with output blocks linked to the runnable block before them."""
    blocks: list[Block] = []
    for m in FENCE.finditer(text):
        info = m.group("info").strip()
        lang = info.split()[0] if info else ""
        title = re.search(r'title="([^"]+)"', info)
        blocks.append(Block(lang, title.group(1) if title else None, m.group("body"), m.start(), m.end()))
    for i in range(1, len(blocks)):
        prev, cur = blocks[i - 1], blocks[i]
        if cur.lang == "text" and prev.runs and not text[prev.end:cur.start].strip():
            cur.output_of = i - 1
    return blocks


def page_marks(text: str) -> dict[str, str]:
    """The page's front matter as flat `key: value` pairs (e.g. `test: slow`)."""
    m = re.match(r"^---\n(.*?)\n---\n", text, flags=re.S)
    if not m:
        return {}
    pairs = (line.split(":", 1) for line in m.group(1).splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def environment() -> dict[str, str]:
    """The reader's environment: the `scalinglab` entry point of this Python first on PATH, one thread each."""
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""), "PYTHONUNBUFFERED": "1",
           "MPLBACKEND": "Agg", "COLUMNS": "100", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return env


def run_block(block: Block, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    if block.lang == "bash":
        cmd = ["bash", "-c", "set -euo pipefail\n" + block.body]
    else:
        cmd = [sys.executable, "-c", block.body]
    return subprocess.run(cmd, cwd=cwd, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)  # one stream, in the order a terminal shows it


def run_page(path: Path, cwd: Path) -> list[tuple[Block, subprocess.CompletedProcess | None]]:
    """Write the page's files and run its runnable blocks in order; stop at the first failure."""
    done: list[tuple[Block, subprocess.CompletedProcess | None]] = []
    for block in parse(path.read_text(encoding="utf-8")):
        if block.title is not None:
            target = cwd / block.title
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.body, encoding="utf-8")
        elif block.runs:
            proc = run_block(block, cwd)
            done.append((block, proc))
            if proc.returncode != 0:
                break
    return done


def _shown(proc: subprocess.CompletedProcess, cwd: Path) -> str:
    out = proc.stdout.replace(str(cwd), ".")
    return out.rstrip() + "\n" if out.strip() else "(no output)\n"


def update(path: Path, cwd: Path) -> None:
    """Run the page and paste each runnable block's output into the ```text block that follows it."""
    text = path.read_text(encoding="utf-8")
    blocks = parse(text)
    results = {b.start: p for b, p in run_page(path, cwd)}
    failed = [p for p in results.values() if p is not None and p.returncode != 0]
    if failed:
        raise SystemExit(f"a block failed (exit {failed[0].returncode}):\n{failed[0].stdout[-3000:]}")
    for b in reversed(blocks):
        if b.output_of is None:
            continue
        proc = results.get(blocks[b.output_of].start)
        if proc is not None:
            text = text[:b.start] + "```text\n" + _shown(proc, cwd) + "```" + text[b.end:]
    path.write_text(text, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description="Run a docs page's code blocks (see the module docstring).")
    ap.add_argument("page", type=Path)
    ap.add_argument("--update", action="store_true", help="paste each block's real output into the page")
    ap.add_argument("--keep", type=Path, help="run in this folder (created) instead of a temporary one")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="docs-") as tmp:
        cwd = a.keep or Path(tmp)
        cwd.mkdir(parents=True, exist_ok=True)
        if a.update:
            update(a.page, cwd)
            print(f"updated {a.page}")
            return
        for block, proc in run_page(a.page, cwd):
            print(f"$ {block.lang}: {shlex.quote(block.body.splitlines()[0])} ... -> exit {proc.returncode}")
            print(_shown(proc, cwd))


if __name__ == "__main__":
    main()
