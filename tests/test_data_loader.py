"""The window loader on a prepared corpus: exact resume, exact D-token subsets, honest epochs, eval windows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scalinglab.data.corpus import Corpus, write_corpus
from scalinglab.data.loader import SUBSET_CHUNK, WindowLoader, data_subset, fixed_windows, windows
from scalinglab.errors import UserError


def batches(loader: WindowLoader, k: int) -> list[np.ndarray]:
    out = []
    for _ in range(k):
        x, y = loader.next_batch()
        out.append(np.concatenate([x.numpy(), y.numpy()[:, -1:]], axis=1))
    return out


@pytest.mark.parametrize("data_tokens", [None, 50_000])
def test_save_restore_resumes_the_exact_batch_sequence(synthetic_corpus, data_tokens):
    train = Corpus.open(synthetic_corpus).tokens("train")
    a = WindowLoader(train, n_ctx=64, batch_size=8, seed=3, data_tokens=data_tokens)
    batches(a, 7)
    state = json.loads(json.dumps(a.state_dict()))  # checkpoints store it as JSON-able data
    rest = batches(a, 5)
    b = WindowLoader(train, n_ctx=64, batch_size=8, seed=3, data_tokens=data_tokens)
    b.load_state_dict(state)
    assert all(np.array_equal(p, q) for p, q in zip(rest, batches(b, 5), strict=True))
    assert b.batches_drawn == a.batches_drawn == 12
    # A fresh loader replays the whole sequence too; another seed does not.
    c = WindowLoader(train, n_ctx=64, batch_size=8, seed=3, data_tokens=data_tokens)
    assert np.array_equal(batches(c, 8)[7], rest[0])
    d = WindowLoader(train, n_ctx=64, batch_size=8, seed=4, data_tokens=data_tokens)
    assert not np.array_equal(batches(d, 1)[0], batches(WindowLoader(train, 64, 8, 3, data_tokens), 1)[0])
    other = WindowLoader(train, n_ctx=64, batch_size=8, seed=4, data_tokens=data_tokens)
    with pytest.raises(UserError):
        other.load_state_dict(state)


def test_windows_are_shifted_by_one_and_inside_the_split(synthetic_corpus):
    train = Corpus.open(synthetic_corpus).tokens("train")
    loader = WindowLoader(train, n_ctx=32, batch_size=16, seed=0)
    for _ in range(20):
        starts = loader.starts(loader.batches_drawn)
        x, y = loader.next_batch()
        assert x.shape == y.shape == (16, 32) and str(x.dtype) == "torch.int64"
        assert np.array_equal(x.numpy()[:, 1:], y.numpy()[:, :-1])
        assert starts.min() >= 0 and starts.max() + 33 <= len(train)
        assert np.array_equal(x.numpy()[0], np.asarray(train[starts[0] : starts[0] + 32], dtype=np.int64))


def test_data_subset_is_exactly_d_tokens_and_the_same_for_every_seed(synthetic_corpus):
    train = np.asarray(Corpus.open(synthetic_corpus).tokens("train"))
    d = 3 * SUBSET_CHUNK + 1000  # not a multiple of the chunk size
    subsets = [WindowLoader(train, n_ctx=64, batch_size=4, seed=s, data_tokens=d).tokens for s in (0, 1, 7)]
    assert all(len(s) == d for s in subsets)
    assert all(np.array_equal(subsets[0], s) for s in subsets[1:])
    # Made of whole chunks of the train split, and a smaller D is a prefix of a larger one (nested subsets).
    for i in range(3):
        piece = subsets[0][i * SUBSET_CHUNK : (i + 1) * SUBSET_CHUNK]
        starts = range(0, len(train), SUBSET_CHUNK)
        assert any(np.array_equal(piece, train[s : s + len(piece)]) for s in starts)
    assert np.array_equal(data_subset(train, 2 * d)[:d], subsets[0])
    # Not simply the first D tokens.
    assert not np.array_equal(subsets[0], train[:d])


def test_epochs_count_passes_over_the_available_tokens(synthetic_corpus):
    train = Corpus.open(synthetic_corpus).tokens("train")
    loader = WindowLoader(train, n_ctx=64, batch_size=8, seed=0, data_tokens=10_000)
    batches(loader, 40)
    assert loader.available_tokens == 10_000
    assert loader.epochs == pytest.approx(40 * 8 * 64 / 10_000)
    full = WindowLoader(train, n_ctx=64, batch_size=8, seed=0)
    batches(full, 40)
    assert full.epochs == pytest.approx(40 * 8 * 64 / len(train))


def test_loader_rejects_impossible_requests(synthetic_corpus):
    train = Corpus.open(synthetic_corpus).tokens("train")
    for kwargs in ({"data_tokens": len(train) + 1}, {"data_tokens": 0}, {"n_ctx": 0}, {"batch_size": 0},
                   {"data_tokens": 10}):
        args = {"n_ctx": 64, "batch_size": 4, "seed": 0, **kwargs}
        with pytest.raises(UserError):
            WindowLoader(train, **args)


def test_fixed_eval_windows_are_deterministic_and_in_bounds(synthetic_corpus):
    c = Corpus.open(synthetic_corpus)
    for split in ["val", *c.eval_set_names]:
        toks = c.tokens(split)
        s1 = fixed_windows(toks, 128, 4096)
        assert np.array_equal(s1, fixed_windows(toks, 128, 4096))
        assert len(s1) == 32 and s1.min() >= 0 and s1.max() + 129 <= len(toks)
        x, y = windows(toks, s1, 128)
        assert x.shape == (32, 128)


def test_uint32_tokens_round_trip(tmp_path):
    """Vocabularies over 65,536 ids are stored as uint32 and read back unchanged."""
    rng = np.random.default_rng(0)
    train, val = rng.integers(0, 70_000, 5000), rng.integers(0, 70_000, 500)
    out = tmp_path / "c"
    out.mkdir()
    write_corpus(out, train, val, vocab_size=70_000, eot_token=69_999, source="synthetic",
                 documents={"train": 1, "val": 1})
    c = Corpus.open(out)
    c.check(verify=True)
    assert c.manifest["dtype"] == "uint32"
    assert np.array_equal(c.tokens("train"), train) and np.array_equal(c.tokens("val"), val)
    x, _ = WindowLoader(c.tokens("train"), n_ctx=16, batch_size=2, seed=0).next_batch()
    assert int(x.max()) < 70_000
