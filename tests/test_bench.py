"""`scalinglab bench train`: JSON shape and sanity, the baseline's shape, clean errors. Never asserts times."""

from __future__ import annotations

import json
import math

import pytest

from scalinglab.config import ModelConfig
from scalinglab.model import build_model
from scalinglab.model.counting import count_non_embedding, flops_per_token_train
from tests.helpers import assert_clean_error, run_cli, run_main

SMALL = ("--n-layer", "1", "--d-model", "32", "--n-ctx", "16", "--batch-size", "2", "--vocab", "64",
         "--steps", "3", "--warmup-steps", "1", "--peak-sizes", "128,256")


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.mark.slow
def test_bench_train_json_with_baseline():
    proc = run_cli("bench", "train", *SMALL, "--threads", "1", "--baseline", "--json", check=True)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("tokens_per_s", "model_flops_per_s", "model_flops_per_s_with_head", "peak_flops_per_s",
                "mfu", "mfu_with_head"):
        assert _positive(out[key]), key
        assert _positive(out["baseline"].get(key, 1.0)), key
    assert 0 < out["mfu"] < 1.5 and 0 < out["mfu_with_head"] < 1.5
    assert out["mfu_with_head"] > out["mfu"]
    assert out["device"] == "cpu" and out["dtype"] == "float32" and out["threads"] == 1
    assert out["compile"] is False  # the CPU default: compile does not pay for short runs
    assert out["tokens_per_step"] == 2 * 16
    cfg = ModelConfig(n_layer=1, d_model=32, n_ctx=16, vocab_size=64)
    assert out["flops_per_token_train"] == flops_per_token_train(cfg)
    assert out["model_flops_per_s"] == pytest.approx(out["flops_per_token_train"] * out["tokens_per_s"])
    assert out["mfu"] == pytest.approx(out["model_flops_per_s"] / out["peak_flops_per_s"])
    stats = out["step_ms"]
    assert stats["min"] <= stats["median"] <= stats["max"] and stats["min"] > 0
    assert _positive(out["speedup"]) and _positive(out["speedup_paired_median"])
    assert all(math.isfinite(out[k]) for k in ("loss_first", "loss_last"))
    assert abs(out["loss_first"] - math.log(64)) < 1.0  # random tokens start near ln(vocab)


@pytest.mark.slow
def test_bench_train_plain_output():
    import torch

    threads = torch.get_num_threads()
    proc = run_main("bench", "train", *SMALL, "--threads", "1", check=True)  # the JSON test has the entry point
    assert "tokens/s" in proc.stdout and "MFU" in proc.stdout
    assert torch.get_num_threads() == threads  # the bench's thread count ends with it


def test_bench_help_says_batch_is_sequences():
    proc = run_main("bench", "train", "--help", check=True)
    assert "batch_size·n_ctx" in " ".join(proc.stdout.split())


@pytest.mark.parametrize(
    "args, needle",
    [
        (("--steps", "0"), "--steps"),
        (("--batch-size", "0"), "--batch-size"),
        (("--warmup-steps", "-1"), "--warmup-steps"),
        (("--threads", "0"), "--threads"),
        (("--n-heads", "3"), "n_heads"),
        (("--d-model", "0"), "d_model"),
        (("--arch", "rnn"), "--arch"),
        (("--device", "cuda"), "cuda"),
        (("--device", "tpu"), "--device"),
        (("--peak-sizes", "0,128"), "--peak-sizes"),
        (("--arch", "lstm", "--baseline"), "--baseline"),
    ],
)
def test_bench_bad_input_exits_2(args, needle):
    assert_clean_error(run_main("bench", "train", *SMALL, *args), needle)


def test_plain_baseline_has_the_same_shape():
    from scalinglab.bench import PlainGPT

    for arch in ("transformer", "universal"):
        cfg = ModelConfig(arch=arch, n_layer=2, d_model=48, d_ff=96, d_attn=64, n_heads=4, n_ctx=8, vocab_size=50)
        assert count_non_embedding(PlainGPT(cfg)) == count_non_embedding(build_model(cfg))
        assert sum(p.numel() for p in PlainGPT(cfg).parameters()) == sum(p.numel() for p in build_model(cfg).parameters())


def test_matmul_peak_is_positive():
    from scalinglab.bench import matmul_peak

    r = matmul_peak("cpu", threads=1, sizes=(64, 128), repeats=2)
    assert set(r["by_size"]) == {"64", "128"}
    assert r["peak_flops_per_s"] == max(r["by_size"].values()) > 0
