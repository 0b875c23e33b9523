"""The compiled path (`--compile true`, inductor on CPU with the system's C++ compiler), end to end: it trains to the
eager run's curve, resumes after SIGKILL to the uninterrupted compiled run's final loss, its checkpoints load
whether or not the next run compiles (no `_orig_mod.` names), the noise scale and per-position loss work on the
compiled model, 2-rank DDP (gloo) with compile equals one process, and `bench train --compile` reports the
compile time apart from the steady state.

Compiling is slow here (a minute or more on the loaded 2-core machine for the first graph; inductor's on-disk
cache makes later processes faster), so the model is the tiniest and the runs share module fixtures.
Tolerances: compiled and eager kernels sum in different orders; on this machine their curves agreed to ~1e-7
(30 steps), 1e-4 is asserted. A compiled run and its compiled resumption run the same kernels: equal bits.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import run_cli, run_main, small_corpus

pytestmark = pytest.mark.slow

SHAPE = ["--n-layer", "1", "--d-model", "32", "--n-ctx", "16", "--batch-size", "8", "--threads", "1",
         "--eval-tokens", "512", "--eval-every", "10", "--steps", "30", "--checkpoint-every-steps", "10", "--json"]
TOL = 1e-4


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return small_corpus(tmp_path_factory.mktemp("compile_corpus"), 60_000)


def _last_json(text: str) -> dict:
    return json.loads([ln for ln in text.splitlines() if ln.startswith("{")][-1])


def _train(corpus: Path, out: Path, *extra: str) -> dict:
    return _last_json(run_main("train", "--corpus", corpus, "--out", out, *SHAPE, *extra, check=True).stdout)


@pytest.fixture(scope="module")
def runs(corpus, tmp_path_factory) -> dict:
    """The uninterrupted compiled run and the same run eager, in this process (which warms inductor's cache)."""
    base = tmp_path_factory.mktemp("compiled")
    return {"compiled": _train(corpus, base / "compiled", "--compile", "true"),
            "eager": _train(corpus, base / "eager", "--compile", "false"),
            "dir": base}


def test_compiled_run_matches_eager_with_noise_scale_and_per_position(runs):
    c, e = runs["compiled"], runs["eager"]
    assert c["compile"] is True and e["compile"] is False and c["precision"] == "fp32"
    assert c["status"] == "done" and c["steps"] == 30
    assert len(c["val_loss_per_position"]) == 16
    for a, b in zip(c["val_loss_per_position"], e["val_loss_per_position"], strict=True):
        assert abs(a - b) <= TOL
    assert abs(c["val_loss"] - e["val_loss"]) <= TOL and abs(c["train_loss"] - e["train_loss"]) <= TOL
    assert c["noise_scale"] > 0 and c["noise_scale"] == pytest.approx(e["noise_scale"], rel=1e-3)
    ck = torch.load(runs["dir"] / "compiled" / "checkpoint.pt", weights_only=True)
    assert not [k for k in ck["model"] if "_orig_mod" in k]
    assert set(ck["model"]) == set(torch.load(runs["dir"] / "eager" / "checkpoint.pt", weights_only=True)["model"])


def test_compiled_run_resumes_after_sigkill_compiled_or_not(corpus, runs, tmp_path):
    args = ["train", "--corpus", str(corpus), *SHAPE, "--compile", "true"]
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "scalinglab", *args, "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        t0 = time.monotonic()
        while not (out / "checkpoint.pt").exists():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() - t0 < 600, "no checkpoint appeared"
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL and not (out / "result.json").exists()
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    at = ck["run"]["step"]
    assert 0 < at < 30 and not [k for k in ck["model"] if "_orig_mod" in k]
    eager_out = tmp_path / "killed-then-eager"
    shutil.copytree(out, eager_out)

    resumed = _last_json(run_main(*args, "--out", out, check=True).stdout)
    whole = runs["compiled"]
    assert resumed["resumed_from"] == [at] and resumed["steps"] == 30
    assert resumed["val_loss"] == whole["val_loss"] and resumed["train_loss"] == whole["train_loss"]
    assert resumed["noise_scale"] == whole["noise_scale"]

    # the same checkpoint continues without compiling (compile is not part of what a resume must match)
    eager = _last_json(run_main(*args[:-2], "--compile", "false", "--out", eager_out, check=True).stdout)
    assert eager["resumed_from"] == [at] and eager["compile"] is False
    assert abs(eager["val_loss"] - whole["val_loss"]) <= TOL


class _Stop(Exception):
    pass


def test_eager_checkpoint_resumes_compiled(corpus, runs, tmp_path):
    """An eager run interrupted after its step-10 checkpoint (an eval hook raises at step 20) continues compiled."""
    from scalinglab.cli.train import train_config
    from scalinglab.train.loop import run_training

    cfg = train_config({"corpus": str(corpus)}, sets=[f"{k.lstrip('-').replace('-', '_')}={v}" for k, v in
                                                      zip(SHAPE[0:-1:2], SHAPE[1:-1:2], strict=True)])

    def stop(rec: dict) -> None:
        if rec["step"] == 20:
            raise _Stop

    out = tmp_path / "run"
    with pytest.raises(_Stop):
        run_training(cfg.model_copy(update={"compile": False}), out, progress=False, on_eval=stop)
    assert torch.load(out / "checkpoint.pt", weights_only=True)["run"]["step"] == 10
    r = run_training(cfg.model_copy(update={"compile": True}), out, progress=False)
    assert r["resumed_from"] == [10] and r["compile"] is True
    assert abs(r["val_loss"] - runs["eager"]["val_loss"]) <= TOL


def test_two_ranks_compiled_equal_one_process(corpus, runs, tmp_path):
    two = _last_json(run_cli("train", "--corpus", corpus, "--out", tmp_path / "two", *SHAPE, "--compile", "true",
                             "--nproc-per-node", "2", check=True).stdout)
    one = runs["compiled"]
    assert two["world_size"] == 2 and two["compile"] is True
    assert two["steps"] == one["steps"] and two["tokens"] == one["tokens"]
    a = json.loads((tmp_path / "two" / "result.json").read_text())["curve"]
    b = json.loads((runs["dir"] / "compiled" / "result.json").read_text())["curve"]
    assert [x["step"] for x in a] == [x["step"] for x in b]
    for x, y in zip(a, b, strict=True):
        assert abs(x["val_loss"] - y["val_loss"]) <= TOL and abs(x["train_loss"] - y["train_loss"]) <= TOL
    assert 0.5 <= two["noise_scale"] / one["noise_scale"] <= 2.0


def test_bench_train_compile_reports_compile_time_apart(runs):
    from scalinglab.bench import bench_train
    from scalinglab.config import ModelConfig

    torch._dynamo.reset()  # the runs above compiled this model class in this process: compile it afresh
    cfg = ModelConfig(n_layer=1, d_model=32, n_ctx=16, vocab_size=128)
    r = bench_train(cfg, batch_size=8, steps=4, warmup_steps=2, threads=1, compile=True, device="cpu",
                    peak_sizes=(64,), peak_repeats=1)
    assert r["compile"] is True and r["precision"] == "fp32"
    assert r["compile_s"] > 0 and r["first_step_s"] > r["step_ms"]["median"] / 1000.0
    assert r["tokens_per_s_from"] == "median step time" and len(r["step_ms_each"]) == 4
    eager = bench_train(cfg, batch_size=8, steps=2, warmup_steps=1, threads=1, compile=False, device="cpu",
                        peak_sizes=(64,), peak_repeats=1)
    assert eager["compile"] is False and eager["compile_s"] == 0.0
