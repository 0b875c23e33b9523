"""Shared fixtures (a small learnable synthetic corpus); shared functions live in tests/helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import markov_tokens


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
