"""WSD schedule and cooldown branches: LR shape, plan expansion, bad input, branches equal to independent runs,
FLOPs counted once, resume after SIGKILL, and agreement with cosine runs of the same length."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from scalinglab.config import TrainConfig
from scalinglab.store.db import load_runs
from scalinglab.sweep.plan import load_plan
from scalinglab.train import run_training
from scalinglab.train.branches import fork_path
from scalinglab.train.schedule import decay_steps, lr_at, warmup_steps
from tests.helpers import assert_clean_error, freeze_at, group, run_main

BASE = """
[train]
n_ctx = 32
batch_size = 4
n_layer = 1
d_model = 32
eval_tokens = 2048
checkpoint_every_steps = 5
schedule = "wsd"
warmup = 5
threads = 1
"""


def _plan(tmp_path, corpus, body: str, base: str = BASE):
    p = tmp_path / "p.toml"
    p.write_text(f'name = "wsd"\ncorpus = "{corpus}"\n{base}{body}')
    return p


def test_wsd_schedule_shape():
    kw = {"peak": 1.0, "total_steps": 100, "warmup": 10, "schedule": "wsd", "min_lr_ratio": 0.1}
    lrs = [lr_at(s, decay_fraction=0.2, **kw) for s in range(1, 101)]
    assert lrs[:10] == pytest.approx([s / 10 for s in range(1, 11)])  # linear warm-up
    assert lrs[9:80] == [1.0] * 71  # constant up to the decay start, step 80
    assert lrs[80:] == pytest.approx([1.0 - 0.9 * k / 20 for k in range(1, 21)])  # linear to 0.1·peak
    assert lrs[-1] == pytest.approx(0.1)
    assert decay_steps(100, None) == 20 and decay_steps(3, 0.1) == 1  # default 0.2, at least one step
    # a shorter WSD run (a branch) has the trunk's LR up to its own decay start
    for length in (20, 37, 60):
        start = length - decay_steps(length, 0.2)
        short = [lr_at(s, decay_fraction=0.2, **{**kw, "total_steps": length}) for s in range(1, start + 1)]
        assert short == lrs[:start]


def test_plan_expands_cooldowns_into_branches(synthetic_corpus, tmp_path):
    p = _plan(tmp_path, synthetic_corpus, "[[run]]\nsteps = 100\ncooldowns = [0.5, 2560]\n")
    plan = load_plan(p)
    trunk, *branches = plan.runs
    assert [b.config.total_steps for b in branches] == [20, 50]  # 2560 tokens = 20 steps of 128; 0.5 of 100
    assert [b.fork_step for b in branches] == [16, 40] and trunk.forks == [16, 40]
    assert all(b.parent == trunk.run_id and b.run_id != trunk.run_id for b in branches)
    assert all(b.config.warmup == 5 and b.config.schedule == "wsd" for b in branches)
    rows = [s.summary(plan.vocab_size) for s in plan.runs]
    assert rows[0]["own_flops"] == rows[0]["flops"]
    assert rows[2]["own_flops"] == pytest.approx(rows[2]["flops"] * 10 / 50)  # its 10 decay steps only
    # a warm-up given as a fraction is fixed in the trunk's steps (0.05 of 100)
    plan = load_plan(_plan(tmp_path, synthetic_corpus, "[[run]]\nsteps = 100\nwarmup = 0.05\ncooldowns = [0.5]\n"))
    assert plan.runs[1].config.warmup == warmup_steps(0.05, 100) == 5
    # the trunk's id does not depend on its branches
    plain = load_plan(_plan(tmp_path, synthetic_corpus, "[[run]]\nsteps = 100\n"))
    assert plain.runs[0].run_id == load_plan(_plan(tmp_path, synthetic_corpus,
                                                   "[[run]]\nsteps = 100\ncooldowns = [0.5]\n")).runs[0].run_id


def test_example_plan_wsd_vs_cosine_expands_to_the_measured_design(synthetic_corpus, tmp_path):
    """examples/wsd_vs_cosine.toml (README's branch-vs-cosine measurement): 4 trunks with 3 branches each and 16
    cosine runs, the same 25 warm-up steps everywhere, so the comparison is about the end of the schedule."""
    text = (Path(__file__).parents[1] / "examples" / "wsd_vs_cosine.toml").read_text()
    assert 'corpus = "c512"' in text
    p = tmp_path / "wsd_vs_cosine.toml"
    p.write_text(text.replace('corpus = "c512"', f'corpus = "{synthetic_corpus}"'))
    runs = load_plan(p).runs
    fams = pd.Series([r.family for r in runs]).value_counts().to_dict()
    assert fams == {"wsd": 4, "wsd-branches": 12, "cosine": 16}
    branches = sorted((r.config.d_model, r.config.total_steps) for r in runs if r.family == "wsd-branches")
    cosine = sorted((r.config.d_model, r.config.total_steps) for r in runs if r.family == "cosine" and
                    r.config.total_steps < 1000)
    assert branches == cosine  # one cosine run of each branch's length and size
    assert {r.config.warmup for r in runs} == {25.0}


def test_decay_fraction_unset_keeps_old_run_ids(synthetic_corpus):
    from scalinglab.store.db import canonical_config

    cfg = TrainConfig(corpus=str(synthetic_corpus), n_layer=1, d_model=32, steps=10)
    assert "decay_fraction" not in canonical_config(cfg)
    assert "decay_fraction" in canonical_config(cfg.model_copy(update={"schedule": "wsd", "decay_fraction": 0.3}))


@pytest.mark.parametrize("body,needles", [
    ("steps = 100\ncooldowns = [12800]", ("cooldowns", "not below the trunk's 12,800 tokens")),
    ("steps = 100\ncooldowns = [1e9]", ("cooldowns", "not below")),
    ("steps = 100\ncooldowns = [0.02]", ("cooldowns", "inside the trunk's 5-step warm-up")),
    ("steps = 100\ncooldowns = [-3]", ("cooldowns", "not a positive number")),
    ("steps = 100\ncooldowns = []", ("cooldowns", "non-empty list")),
    ("steps = 100\nschedule = \"cosine\"\ncooldowns = [0.5]", ("cooldowns", "need schedule = 'wsd'")),
    ("steps = 100\ndecay_fraction = 0", ("decay_fraction", "greater than 0")),
    ("steps = 100\ndecay_fraction = 1", ("decay_fraction", "less than 1")),
    ("steps = 100\ndecay_fraction = 1.5", ("decay_fraction", "less than 1")),
])
def test_bad_cooldowns_exit_2_and_write_nothing(synthetic_corpus, tmp_path, body, needles):
    p = _plan(tmp_path, synthetic_corpus, f"[[run]]\n{body}\n")
    db = tmp_path / "out" / "r.db"
    assert_clean_error(run_main("sweep", p, "--db", db), *needles)
    assert not db.parent.exists()


def test_train_rejects_decay_fraction_outside_0_1(synthetic_corpus, tmp_path):
    out = tmp_path / "run"
    proc = run_main("train", "--corpus", synthetic_corpus, "--out", out, "--n-layer", "1", "--d-model", "32",
                    "--steps", "3", "--schedule", "wsd", "--decay-fraction", "1.2")
    assert_clean_error(proc, "--decay-fraction", "less than 1")
    assert not out.exists()


def _independent(branch_cfg: TrainConfig, out) -> dict:
    """The branch's config trained from step 0 in its own folder, like any run."""
    return run_training(branch_cfg, out, progress=False)


@pytest.mark.slow
def test_branches_equal_independent_runs_and_count_flops_once(synthetic_corpus, tmp_path):
    p = _plan(tmp_path, synthetic_corpus, "[[run]]\nsteps = 60\ncooldowns = [0.5, 0.75]\n")
    db = tmp_path / "out" / "r.db"
    summary = json.loads(run_main("sweep", p, "--db", db, "--threads", "1", "--json", check=True).stdout)
    assert summary["done"] == 3
    runs = load_runs(db).set_index("run_id")
    plan = load_plan(p)
    trunk, *branches = plan.runs
    t = runs.loc[trunk.run_id]
    assert pd.isna(t["parent_id"]) and t["own_flops"] == t["flops"] and t["inherited_flops"] == 0
    per_step = t["flops"] / 60
    for b in branches:
        r = runs.loc[b.run_id]
        assert r["parent_id"] == trunk.run_id and r["status"] == "done"
        assert r["inherited_flops"] == pytest.approx(per_step * b.fork_step)
        assert r["own_flops"] == pytest.approx(per_step * (b.config.total_steps - b.fork_step))
        assert r["flops"] == pytest.approx(r["own_flops"] + r["inherited_flops"])
        assert fork_path(db.parent / "runs" / trunk.run_id, b.fork_step).exists()
        result = json.loads((db.parent / "runs" / b.run_id / "result.json").read_text())
        assert result["resumed_from"] == [b.fork_step] and result["forked_at"] == b.fork_step
        # the same run trained from step 0 gives the same numbers, bit for bit
        alone = _independent(b.config.model_copy(update={"threads": 1}), tmp_path / f"alone-{b.run_id}")
        assert alone["val_loss"] == r["val_loss"] and alone["train_loss"] == r["train_loss"]
        assert [c["val_loss"] for c in alone["curve"]] == [c["val_loss"] for c in result["curve"]]
        assert alone["own_flops"] == alone["flops"] == r["flops"]
    # the study's compute: the trunk's 60 steps plus each branch's decay (6 and 9 steps), not 60 + 30 + 45
    assert runs["own_flops"].sum() == pytest.approx(per_step * (60 + 6 + 9))
    dry = json.loads(run_main("sweep", p, "--dry-run", "--no-estimate", "--json", check=True).stdout)
    assert dry["total_flops"] == pytest.approx(per_step * 75)
    from scalinglab.report.content import _counted_once

    done = runs.reset_index()
    assert _counted_once(done, "pf_days", "own_flops", "flops").sum() == pytest.approx(
        done["pf_days"].sum() * 75 / 135)


def _checkpoint_step(path) -> int | None:
    try:
        return torch.load(path, weights_only=True)["run"]["step"]
    except Exception:  # not there yet
        return None


@pytest.mark.slow
def test_branch_resumes_bit_exactly_after_sigkill(synthetic_corpus, tmp_path):
    body = "[[run]]\nsteps = 400\ncheckpoint_every_steps = 3\ncooldowns = [0.9]\n"
    p = _plan(tmp_path, synthetic_corpus, body)
    whole_db = tmp_path / "whole" / "r.db"
    run_main("sweep", p, "--db", whole_db, "--threads", "1", "--json", check=True)
    trunk, branch = load_plan(p).runs
    db = tmp_path / "killed" / "r.db"
    ck = db.parent / "runs" / branch.run_id / "checkpoint.pt"
    # the killed sweep finds the trunk finished in its run folder (collected, not trained again) and goes
    # straight to the branch, which starts from the trunk's fork checkpoint
    shutil.copytree(whole_db.parent / "runs" / trunk.run_id, db.parent / "runs" / trunk.run_id)
    # the kill lands mid-branch for sure: the sweep (its whole process group) is frozen once the branch has a
    # checkpoint past the fork, and killed only if the branch is still unfinished then; else it is run again
    cmd = [sys.executable, "-m", "scalinglab", "sweep", str(p), "--db", str(db), "--threads", "1"]
    for _attempt in range(3):
        shutil.rmtree(ck.parent, ignore_errors=True)
        for f in db.parent.glob(db.name + "*"):
            f.unlink()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        at = None
        try:
            at = freeze_at("a branch checkpoint past the fork", lambda: (_checkpoint_step(ck) or 0) > branch.fork_step,
                           lambda q=proc: group(q.pid), proc,
                           lambda: None if (ck.parent / "result.json").exists() else _checkpoint_step(ck))
        finally:
            if at is not None or proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if at is not None:
            break
    else:
        raise AssertionError("precondition not reached: the branch finished before it could be frozen, 3 times")
    assert not (ck.parent / "result.json").exists()
    again = json.loads(run_main("sweep", p, "--db", db, "--threads", "1", "--json", check=True).stdout)
    assert again["already_done"] == 1 and again["done"] == 1
    a, b = load_runs(db).set_index("run_id"), load_runs(whole_db).set_index("run_id")
    for col in ("val_loss", "train_loss", "own_flops", "inherited_flops", "noise_scale"):
        assert a.loc[branch.run_id, col] == b.loc[branch.run_id, col], col
    result = json.loads((ck.parent / "result.json").read_text())
    assert result["resumed_from"][0] == branch.fork_step and result["resumed_from"][-1] >= at


@pytest.mark.slow
def test_branch_loss_close_to_cosine_run_of_the_same_length(synthetic_corpus, tmp_path):
    """Measured on this machine (README, "WSD cooldown branches"); the bounds are the measured gaps with margin."""
    base = BASE.replace("batch_size = 4", "batch_size = 8").replace("eval_tokens = 2048", "eval_tokens = 8192")
    base = base.replace("checkpoint_every_steps = 5", "checkpoint_every_steps = 100\nlr = 3e-3")
    body = ("[[run]]\nsteps = 600\nwarmup = 20\ncooldowns = [0.5]\n"
            "[[grid]]\nsteps = [300, 600]\nwarmup = 20\nschedule = \"cosine\"\n")
    p = _plan(tmp_path, synthetic_corpus, body, base)
    db = tmp_path / "out" / "r.db"
    run_main("sweep", p, "--db", db, "--workers", "2", "--json", check=True)
    runs = load_runs(db)
    loss = {(r.schedule, r.steps): r.val_loss for r in runs.itertuples()}
    gaps = {s: loss[("wsd", s)] / loss[("cosine", s)] - 1 for s in (300, 600)}
    print("wsd/cosine - 1:", gaps, loss)
    assert abs(gaps[600]) < 0.05
    assert abs(gaps[300]) < 0.2
