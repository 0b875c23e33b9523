"""Data-parallel `train` under torchrun with gloo and 2 processes: equals the single-process run, resumes after a
kill -9 of one rank, measures the noise scale from the ranks' gradients, refuses a batch it cannot split.

Tolerance: the 2-rank run sums each gradient in two halves and DDP averages them where one process sums it at
once, so float32 rounding differs. Measured on this machine (60 steps, batch 8, 2 layers): the curves agree to
3.0e-8 (val loss) and 2.6e-7 (train loss) absolute; TOL = 1e-5 is asserted. B_simple agreed to 2e-7 relative
(the ranks' halves are exactly the single process's two micro-batches); the test asks for a factor of 2.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import assert_clean_error, children, freeze_at, run_cli, run_main, small_corpus

TOL = 1e-5
SHAPE = ["--n-layer", "2", "--d-model", "32", "--n-ctx", "16", "--batch-size", "8", "--threads", "1",
         "--eval-tokens", "1024", "--eval-every", "10", "--steps", "60", "--checkpoint-every-steps", "10", "--json"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return small_corpus(tmp_path_factory.mktemp("ddp_corpus"), 60_000)


def _torchrun(*args, nproc: int = 2) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           "-m", "scalinglab", *map(str, args)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _result(out: str) -> dict:
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, out  # rank 0 alone reports
    return json.loads(lines[0])


@pytest.fixture(scope="module")
def two_ranks(corpus, tmp_path_factory) -> dict:
    """The uninterrupted 2-process run (dropout 0, comparable with one process), which `train` starts through
    torchrun itself (`--nproc-per-node 2`), as a sweep's executors do for a plan's `nproc_per_node = 2`."""
    out = tmp_path_factory.mktemp("ddp") / "two"
    r = json.loads(run_cli("train", "--corpus", corpus, "--out", out, *SHAPE, "--nproc-per-node", "2", check=True)
                   .stdout.strip().splitlines()[-1])
    return r | {"curve": json.loads((out / "result.json").read_text())["curve"]}


@pytest.mark.slow
def test_two_ranks_equal_one_process(corpus, tmp_path, two_ranks):
    one = json.loads(run_cli("train", "--corpus", corpus, "--out", tmp_path / "one", *SHAPE, check=True)
                     .stdout.strip().splitlines()[-1])
    one["curve"] = json.loads((tmp_path / "one" / "result.json").read_text())["curve"]
    two = two_ranks
    assert two["world_size"] == 2 and one["world_size"] == 1
    for key in ("steps", "tokens", "examples", "flops", "flops_no_context", "n_params"):
        assert two[key] == one[key], key  # accounting counts the global batch
    assert [c["step"] for c in two["curve"]] == [c["step"] for c in one["curve"]]
    for a, b in zip(one["curve"], two["curve"], strict=True):
        assert abs(a["val_loss"] - b["val_loss"]) <= TOL and abs(a["train_loss"] - b["train_loss"]) <= TOL
    # B_simple from the ranks' gradients (B/2 vs B) against one process's two micro-batches (B/2 vs B)
    assert math.isfinite(two["noise_scale"]) and two["noise_scale"] > 0
    assert 0.5 <= two["noise_scale"] / one["noise_scale"] <= 2.0


def _mid_run(out: Path) -> bool:
    """A checkpoint before the last step, and no result yet."""
    try:
        step = torch.load(out / "checkpoint.pt", weights_only=True)["run"]["step"]
    except FileNotFoundError:
        return False
    return 0 < step < 60 and not (out / "result.json").exists()


@pytest.mark.slow
def test_kill_one_rank_then_rerun_resumes_exactly(corpus, tmp_path):
    args = ["train", "--corpus", corpus, *SHAPE, "--dropout", "0.1"]  # dropout: every rank's RNG must resume
    rc, stdout, stderr = _finish(_torchrun(*args, "--out", tmp_path / "whole"))
    assert rc == 0, stderr
    whole = _result(stdout)

    # the kill lands mid-run for sure: both ranks are frozen once a checkpoint appears, and one is killed only
    # if the run is still unfinished then (else it is run again); the other is let go, and torchrun stops it
    out = tmp_path / "killed"
    for _attempt in range(3):
        shutil.rmtree(out, ignore_errors=True)
        proc = _torchrun(*args, "--out", out)
        try:
            ranks = freeze_at("a first checkpoint", (out / "checkpoint.pt").exists, lambda q=proc: children(q.pid),
                              proc, lambda q=proc: _mid_run(out) and children(q.pid))
        except BaseException:
            for pid in children(proc.pid):
                os.kill(pid, signal.SIGKILL)
            proc.kill()
            _finish(proc)
            raise
        if ranks:
            os.kill(ranks[-1], signal.SIGKILL)  # one rank dies; torchrun stops the other
            os.kill(ranks[0], signal.SIGCONT)
        rc, _, stderr = _finish(proc)
        if ranks:
            break
        assert rc == 0, stderr
    else:
        raise AssertionError("precondition not reached: the run finished before it could be frozen mid-run, 3 times")
    assert len(ranks) == 2 and rc != 0 and not (out / "result.json").exists()
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    at = ck["run"]["step"]
    assert 0 < at < 60 and ck["world_size"] == 2 and len(ck["rng_ranks"]) == 2

    # one process cannot continue the two ranks' RNG streams: refused, checkpoint kept
    assert_clean_error(run_main(*args, "--out", out), "written by a run on 2 process(es), not 1")
    rc, stdout, stderr = _finish(_torchrun(*args, "--out", out))
    assert rc == 0, stderr
    resumed = _result(stdout)
    assert resumed["resumed_from"] == [at] and resumed["steps"] == 60
    assert resumed["val_loss"] == whole["val_loss"] and resumed["train_loss"] == whole["train_loss"]
    assert resumed["noise_scale"] == whole["noise_scale"]


def test_batch_that_does_not_split_over_the_ranks_exits_2(corpus, tmp_path):
    proc = run_main("train", "--corpus", corpus, "--out", tmp_path / "run", *SHAPE[:6], "--batch-size", "7",
                   "--steps", "3", "--nproc-per-node", "2")
    assert_clean_error(proc, "batch_size 7 does not split evenly over nproc_per_node=2")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_sweep_runs_a_plan_key_nproc_per_node_through_torchrun(corpus, tmp_path, two_ranks):
    """`nproc_per_node = 2` in a plan: the executor's run_training starts torchrun; the store keeps world_size."""
    from scalinglab.store.db import load_runs, run_id_for
    from scalinglab.sweep.plan import load_plan

    plan = tmp_path / "p.toml"
    plan.write_text(f'name = "ddp"\ncorpus = "{corpus}"\n[train]\nn_layer = 2\nd_model = 32\nn_ctx = 16\n'
                    'batch_size = 8\neval_tokens = 1024\neval_every = 10\nsteps = 60\ncheckpoint_every_steps = 10\n'
                    'nproc_per_node = 2\n[[run]]\nseed = 0\n')
    db = tmp_path / "runs.db"
    proc = run_main("sweep", plan, "--db", db, "--threads", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    runs = load_runs(db)
    spec = load_plan(plan).runs[0]
    assert list(runs["run_id"]) == [spec.run_id] == [run_id_for(spec.config.model_copy(update={"nproc_per_node": 1}))]
    assert list(runs["status"]) == ["done"]
    conn = sqlite3.connect(db)
    try:
        (stored,) = conn.execute("SELECT result FROM runs").fetchone()
    finally:
        conn.close()
    assert json.loads(stored)["world_size"] == 2
    assert runs["val_loss"].iloc[0] == two_ranks["val_loss"]  # the same run as `train --nproc-per-node 2`
