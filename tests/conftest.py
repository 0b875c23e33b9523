"""Shared fixtures (a small learnable synthetic corpus) and how the suite spreads over xdist workers; shared
functions live in tests/helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import markov_tokens

# Module-scoped fixtures that cost a training run or a cluster start. Under `-n 2 --dist loadgroup` (pyproject's
# addopts) the tests that read one of them run on one worker, so it is built once instead of once per worker.
SHARED_FIXTURES = ("two_ranks", "local_sweep", "cluster", "sweeps", "runs", "site")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups off the items
def pytest_collection_modifyitems(config, items):
    for item in items:
        shared = sorted(set(SHARED_FIXTURES) & set(item.fixturenames))
        if shared:
            item.add_marker(pytest.mark.xdist_group(f"{item.module.__name__}:{shared[0]}"))
    if hasattr(config, "workerinput"):  # in an xdist worker: slow tests first, so both workers finish together
        items.sort(key=lambda it: it.get_closest_marker("slow") is None)


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
