"""Shared fixtures: run the real `scalinglab` entry point, and a small learnable synthetic corpus."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def run_cli(*args: str, cwd: str | Path | None = None, env: dict | None = None, timeout: float = 600,
            check: bool | None = None) -> subprocess.CompletedProcess:
    """Run `python -m scalinglab ARGS` as a user would, capturing stdout/stderr as text."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "scalinglab", *map(str, args)],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"scalinglab {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def assert_clean_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit 2, one line on stderr, no traceback, and the line names the problem."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n.lower() in lines[0].lower(), (n, lines[0])


def markov_tokens(n: int, vocab: int, seed: int, chain: int = 0) -> np.ndarray:
    """A walk (seeded by `seed`) on a sparse random Markov chain (chosen by `chain`).

    Walks on the same chain share their distribution, so a model that learns one generalises to another.
    """
    succ = np.random.default_rng([chain, 7]).integers(0, vocab, size=(vocab, 4))
    rng = np.random.default_rng(seed)
    out = np.empty(n, dtype=np.int64)
    t = 0
    choices = rng.integers(0, 4, size=n)
    for i in range(n):
        out[i] = t
        t = succ[t, choices[i]]
    return out


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory) -> Path:
    """A prepared corpus (no tokenizer): 200k train / 20k val tokens of one chain, an eval set of another."""
    from scalinglab.data.corpus import write_corpus

    out = tmp_path_factory.mktemp("synthetic_corpus")
    vocab = 256
    write_corpus(
        out,
        markov_tokens(200_000, vocab, 1),
        markov_tokens(20_000, vocab, 2),
        vocab_size=vocab,
        eot_token=vocab - 1,
        source="synthetic:markov",
        documents={"train": 1, "val": 1},
        eval_sets={"shifted": (markov_tokens(10_000, vocab, 3, chain=1), "synthetic:markov-other")},
    )
    return out
