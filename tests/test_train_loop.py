"""The trainer's pieces in process: LR rule and schedule, evaluation steps, early stopping, callbacks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from scalinglab.train.schedule import eval_steps, lr_at, lr_auto, warmup_steps
from tests.helpers import markov_tokens


def test_lr_auto_is_the_papers_rule():
    assert lr_auto(1e5) == pytest.approx(0.003239 - 0.0001395 * math.log(1e5))
    assert lr_auto(1e5) == pytest.approx(0.00163, abs=1e-5)
    assert lr_auto(1e3) > lr_auto(1e5) > lr_auto(1e8) > 0  # larger models, smaller LR
    assert lr_auto(1e12) == pytest.approx(1e-5)  # the fit crosses zero near N = 1.2e10: floored


def test_schedule_warmup_then_cosine_to_floor():
    kw = {"peak": 1e-3, "total_steps": 100, "warmup": 10}
    assert lr_at(1, **kw) == pytest.approx(1e-4)
    assert lr_at(10, **kw) == pytest.approx(1e-3)
    assert lr_at(100, **kw) == pytest.approx(1e-4)  # min_lr_ratio 0.1
    assert lr_at(100, **kw, min_lr_ratio=0.0) == pytest.approx(0.0)
    assert lr_at(55, **kw) == pytest.approx(0.55e-3)  # cosine midpoint
    lrs = [lr_at(s, **kw) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))
    assert lr_at(70, **kw, schedule="constant") == 1e-3
    assert lr_at(55, **kw, schedule="linear") == pytest.approx(0.55e-3)
    assert warmup_steps(0.05, 1000) == 50 and warmup_steps(30, 1000) == 30 and warmup_steps(0, 10) == 0


def test_eval_steps_log_spaced_with_last():
    s = eval_steps(1000)
    assert s[:5] == [1, 2, 3, 5, 8] and s[-1] == 1000 and len(s) == len(set(s))
    ratios = [b / a for a, b in zip(s[4:-1], s[5:-1], strict=False)]
    assert all(1.3 < r < 1.7 for r in ratios)
    assert 15 <= len(s) <= 20
    assert eval_steps(10, 4) == [4, 8, 10]
    assert eval_steps(1) == [1]


def test_early_stop_on_val_loss_and_on_eval_records(tmp_path):
    """Val from another chain than train: val loss rises as the model learns, so patience runs out."""
    from scalinglab.config import TrainConfig
    from scalinglab.data.corpus import write_corpus
    from scalinglab.train import run_training

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_corpus(corpus, markov_tokens(50_000, 64, 1), markov_tokens(5_000, 64, 2), vocab_size=64, eot_token=63,
                 source="synthetic", documents={"train": 1, "val": 1})
    cfg = TrainConfig(corpus=str(corpus), n_layer=1, d_model=32, n_ctx=16, batch_size=8, steps=400, lr=1e-2,
                      warmup=0, eval_every=5, eval_tokens=1024, early_stop=True, patience=2, threads=1)
    seen: list[dict] = []
    r = run_training(cfg, tmp_path / "run", progress=False, on_eval=seen.append)
    assert r["status"] == "done" and r["early_stopped"] is True
    assert r["steps"] < 400 and r["steps"] == r["best_step"] + 2 * 5
    assert r["best_val_loss"] == min(c["val_loss"] for c in r["curve"]) < r["val_loss"]
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert seen == lines == r["curve"]
    assert [c["step"] for c in lines] == list(range(5, r["steps"] + 1, 5))
    assert np.all(np.diff([c["epochs"] for c in lines]) > 0)


def test_nan_run_is_marked_diverged_not_raised(tmp_path):
    """An absurd LR turns the weights to inf/NaN after one update: status "diverged" with a reason, no exception."""
    from scalinglab.config import TrainConfig
    from scalinglab.data.corpus import write_corpus
    from scalinglab.train import run_training

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_corpus(corpus, markov_tokens(20_000, 64, 1), markov_tokens(3_000, 64, 1), vocab_size=64, eot_token=63,
                 source="synthetic", documents={"train": 1, "val": 1})
    cfg = TrainConfig(corpus=str(corpus), n_layer=1, d_model=32, n_ctx=16, batch_size=8, steps=20, lr=1e30,
                      warmup=0, grad_clip=0, eval_tokens=512, threads=1)
    r = run_training(cfg, tmp_path / "run", progress=False)
    assert r["status"] == "diverged" and "nan" in r["reason"].lower() and r["steps"] < 20
    assert r["val_loss"] is None  # NaN is stored as null (JSON has no NaN)
    stored = json.loads((tmp_path / "run" / "result.json").read_text())
    assert stored["status"] == "diverged" and stored["reason"] == r["reason"]


def test_run_training_leaves_the_callers_process_settings_alone(tmp_path):
    """Threads, TF32 flags and RNG states of the calling process are the same after a run (also a resumed one)."""
    import random

    import torch

    from scalinglab.config import TrainConfig
    from scalinglab.data.corpus import write_corpus
    from scalinglab.train import run_training

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_corpus(corpus, markov_tokens(20_000, 64, 1), markov_tokens(3_000, 64, 1), vocab_size=64, eot_token=63,
                 source="synthetic", documents={"train": 1, "val": 1})
    before_threads = torch.get_num_threads()
    run_threads = 1 if before_threads != 1 else 2
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = not flags[0], not flags[1]
    try:
        torch.manual_seed(123)
        np.random.seed(5)
        random.seed(6)
        expected = (torch.rand(3), np.random.rand(), random.random())
        torch.manual_seed(123)
        np.random.seed(5)
        random.seed(6)
        cfg = TrainConfig(corpus=str(corpus), n_layer=1, d_model=16, n_ctx=8, batch_size=4, steps=6, eval_tokens=256,
                          threads=run_threads, checkpoint_every_steps=3, dropout=0.1)
        r = run_training(cfg, tmp_path / "run", progress=False)
        assert r["status"] == "done" and r["threads"] == run_threads and r["world_size"] == 1
        assert torch.get_num_threads() == before_threads
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (not flags[0], not flags[1])
        assert torch.equal(torch.rand(3), expected[0])
        assert (np.random.rand(), random.random()) == expected[1:]
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags


def test_gradient_accumulation_follows_the_same_curve(tmp_path):
    """micro_batch_size splits every step's batch (4 pieces here); the curve is the whole-batch one up to
    float32 summation order, and the run id and resume check ignore the setting."""
    from scalinglab.config import TrainConfig
    from scalinglab.data.corpus import write_corpus
    from scalinglab.store.db import run_id_for
    from scalinglab.train import run_training

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_corpus(corpus, markov_tokens(20_000, 64, 1), markov_tokens(3_000, 64, 1), vocab_size=64, eot_token=63,
                 source="synthetic", documents={"train": 1, "val": 1})
    kw = dict(corpus=str(corpus), n_layer=1, d_model=16, n_ctx=8, batch_size=8, steps=12, eval_every=4,
              eval_tokens=256, threads=1, lr=3e-3)
    whole = run_training(TrainConfig(**kw), tmp_path / "whole", progress=False)
    split_cfg = TrainConfig(**kw, micro_batch_size=2)
    split = run_training(split_cfg, tmp_path / "split", progress=False)
    assert run_id_for(split_cfg) == run_id_for(TrainConfig(**kw))
    for a, b in zip(whole["curve"], split["curve"], strict=True):
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-5)
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
