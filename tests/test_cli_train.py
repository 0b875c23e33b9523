"""`scalinglab train` through the real entry point: accounting, learning, resume after SIGKILL, errors."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import MainResult, assert_clean_error, freeze_at, markov_tokens, run_main

VOCAB = 256
SHAPE = ["--n-layer", "2", "--d-model", "32", "--n-ctx", "32", "--batch-size", "8", "--threads", "1",
         "--eval-tokens", "2048"]


@pytest.fixture(scope="module")
def learnable_corpus(tmp_path_factory) -> Path:
    """Train and val from the SAME Markov chain (one stream, split), plus an extra eval set from another."""
    from scalinglab.data.corpus import write_corpus

    out = tmp_path_factory.mktemp("learnable_corpus")
    stream = markov_tokens(110_000, VOCAB, 7)
    write_corpus(out, stream[:100_000], stream[100_000:], vocab_size=VOCAB, eot_token=VOCAB - 1,
                 source="synthetic:markov", documents={"train": 1, "val": 1},
                 eval_sets={"other": (markov_tokens(5_000, VOCAB, 8, chain=1), "synthetic:markov-other")})
    return out


def _json_line(proc: subprocess.CompletedProcess | MainResult) -> dict:
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_train_learns_and_accounts_exactly(learnable_corpus, tmp_path):
    from scalinglab.config import ModelConfig
    from scalinglab.model.counting import PF_DAY, count_model, flops_per_token_train
    from scalinglab.train.schedule import eval_steps

    out = tmp_path / "run"
    proc = run_main("train", "--corpus", learnable_corpus, "--out", out, *SHAPE, "--tokens", "30000",
                    "--lr", "1e-2", "--json", check=True)  # the SIGKILL test runs the entry point
    r = _json_line(proc)
    steps = math.ceil(30000 / (8 * 32))
    assert r["status"] == "done" and r["steps"] == steps == r["total_steps"]
    assert r["tokens"] == steps * 8 * 32 and r["examples"] == steps * 8
    mcfg = ModelConfig(n_layer=2, d_model=32, n_ctx=32, vocab_size=VOCAB)
    assert r["n_params"] == count_model(mcfg).n_params
    assert r["flops"] == pytest.approx(flops_per_token_train(mcfg) * r["tokens"], rel=1e-12)
    assert r["flops_no_context"] == pytest.approx(6 * r["n_params"] * r["tokens"], rel=1e-12)
    assert r["pf_days"] == pytest.approx(r["flops"] / PF_DAY)
    # it learns: the chain has 4 successors per token (entropy ≤ ln 4), uniform is ln 256
    assert r["val_loss"] < 0.6 * math.log(VOCAB)
    assert r["best_val_loss"] <= r["val_loss"] + 1e-12
    assert r["eval_losses"]["other"] > r["val_loss"] + 1.0  # another chain: not learnt
    # per-position loss (flat for a first-order chain: position 0 already sees its whole context)
    pos = r["val_loss_per_position"]
    assert len(pos) == 32 and all(math.isfinite(x) for x in pos)
    assert sum(pos) / 32 == pytest.approx(r["val_loss"], rel=1e-9)
    assert r["noise_scale"] is not None and math.isfinite(r["noise_scale"]) and r["noise_scale"] > 0
    assert r["noise_scale"] == pytest.approx(r["noise_scale_seqs"] * 32)
    assert r["lr"] == 1e-2 and r["threads"] == 1 and r["device"] == "cpu"
    assert "curve" not in r
    # files: config, log-spaced learning curve, result, weights-only checkpoint
    curve = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [c["step"] for c in curve] == eval_steps(steps, "log")
    assert [c["tokens"] for c in curve] == [c["step"] * 256 for c in curve]
    assert curve[0]["val_loss"] > curve[-1]["val_loss"] + 2.0
    assert all(c["flops"] < d["flops"] and c["wall_s"] <= d["wall_s"] for c, d in zip(curve, curve[1:], strict=False))
    stored = json.loads((out / "result.json").read_text())
    assert stored["curve"] == curve and stored["val_loss"] == r["val_loss"]
    assert json.loads((out / "config.json").read_text())["tokens"] == 30000
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ck["run"]["step"] == steps and set(ck["rng"]) >= {"torch", "numpy", "python"}


def _mid_run_step(out: Path, steps: int) -> int | None:
    """The step of the run's checkpoint while the run is not finished (no result.json), else None."""
    try:
        at = torch.load(out / "checkpoint.pt", weights_only=True)["run"]["step"]
    except FileNotFoundError:
        return None
    return at if 0 < at < steps and not (out / "result.json").exists() else None


def kill_mid_run(cmd: list[str], out: Path, steps: int) -> int:
    """SIGKILL a `train` at a checkpoint before its last step, known for sure: frozen once the checkpoint
    appears, killed only if the run has not finished by then (else started again, 3 times at most)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for _attempt in range(3):
        shutil.rmtree(out, ignore_errors=True)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        at = None
        try:
            at = freeze_at("a first checkpoint", (out / "checkpoint.pt").exists, lambda p=proc: [p.pid], proc,
                           lambda: _mid_run_step(out, steps))
        finally:
            if at is not None or proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            _, err = proc.communicate()
        if at is not None:
            assert proc.returncode == -signal.SIGKILL, err
            return at
        assert proc.returncode == 0, err
    raise AssertionError("precondition not reached: the run finished before it could be frozen mid-run, 3 times")


@pytest.mark.slow
def test_resume_after_sigkill_is_bit_exact(learnable_corpus, tmp_path):
    args = ["train", "--corpus", str(learnable_corpus), *SHAPE, "--steps", "120", "--dropout", "0.1",
            "--eval-every", "25", "--checkpoint-every-steps", "10", "--json"]
    # the reference and the resumed run in this process (the same code and thread count as the killed
    # subprocess, so the same bits); the kill needs the real entry point
    whole = _json_line(run_main(*args, "--out", tmp_path / "whole", check=True))

    out = tmp_path / "killed"
    at = kill_mid_run([sys.executable, "-m", "scalinglab", *args, "--out", str(out)], out, 120)
    assert not (out / "result.json").exists()
    assert torch.load(out / "checkpoint.pt", weights_only=True)["run"]["step"] == at

    resumed = _json_line(run_main(*args, "--out", out, check=True))
    assert resumed["resumed_from"] == [at]
    assert resumed["steps"] == whole["steps"] == 120
    assert resumed["val_loss"] == whole["val_loss"]  # bit for bit
    assert resumed["train_loss"] == whole["train_loss"]
    assert resumed["val_loss_per_position"] == whole["val_loss_per_position"]
    assert resumed["noise_scale"] == whole["noise_scale"]
    a = json.loads((out / "result.json").read_text())["curve"]
    b = json.loads((tmp_path / "whole" / "result.json").read_text())["curve"]
    assert [(c["step"], c["val_loss"], c["train_loss"]) for c in a] == [(c["step"], c["val_loss"], c["train_loss"]) for c in b]
    # a finished run is not trained again
    again = _json_line(run_main(*args, "--out", out, check=True))
    assert again["val_loss"] == whole["val_loss"] and again["wall_s"] == resumed["wall_s"]


@pytest.mark.slow
def test_other_config_in_same_folder_refused_unless_overwrite(learnable_corpus, tmp_path):
    out = tmp_path / "run"
    base = ["train", "--corpus", learnable_corpus, "--out", out, *SHAPE, "--steps", "3", "--json"]
    run_main(*base, check=True)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    proc = run_main(*base, "--seed", "1")
    assert_clean_error(proc, "different config", "seed", "--overwrite")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    db = tmp_path / "results.db"
    r = _json_line(run_main(*base, "--seed", "1", "--overwrite", "--db", db, check=True))
    assert r["status"] == "done" and r["steps"] == 3
    assert json.loads((out / "config.json").read_text())["seed"] == 1
    from scalinglab.store.db import load_evals, load_runs

    runs, evals = load_runs(db), load_evals(db)
    assert list(runs["status"]) == ["done"] and runs["val_loss"].iloc[0] == pytest.approx(r["val_loss"])
    assert sorted(evals["step"]) == [1, 2, 3]


@pytest.mark.slow
def test_diverged_run_exits_3_with_status(learnable_corpus, tmp_path):
    out = tmp_path / "run"
    proc = run_main("train", "--corpus", learnable_corpus, "--out", out, *SHAPE, "--steps", "30", "--lr", "30",
                   "--warmup", "0", "--grad-clip", "0", "--json")
    assert proc.returncode == 3, proc.stderr
    r = _json_line(proc)
    assert r["status"] == "diverged" and r["reason"] and r["steps"] < 30
    assert "Traceback" not in proc.stderr and "diverged" in proc.stderr.splitlines()[-1]
    assert json.loads((out / "result.json").read_text())["status"] == "diverged"


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--steps", "5", "--lr", "fast"], "--lr"),
        (["--steps", "5", "--eval-every", "0"], "eval_every"),
        (["--steps", "5", "--tokens", "100"], "exactly one of steps or tokens"),
        (["--steps", "5", "--schedule", "step"], "--schedule"),
        (["--steps", "5", "--warmup", "-1"], "warmup"),
        (["--steps", "5", "--data-tokens", "10000000"], "data_tokens"),
    ],
)
def test_bad_flags_exit_2(learnable_corpus, tmp_path, extra, needle):
    out = tmp_path / "run"
    assert_clean_error(run_main("train", "--corpus", learnable_corpus, "--out", out, *SHAPE, *extra), needle)
    assert not (out / "config.json").exists()


def test_missing_corpus_exit_2(tmp_path):
    proc = run_main("train", "--corpus", tmp_path / "nope", "--out", tmp_path / "run", *SHAPE, "--steps", "5")
    assert_clean_error(proc, "corpus", "not found")
