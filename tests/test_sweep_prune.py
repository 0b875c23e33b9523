"""Pruning in sweeps (`prune_at`, sweep/prune.py): hopeless LR candidates stop at a check, are stored as 'pruned' with
their evidence, keep the LR choice unchanged, survive kill-and-resume, and train on with --retry-pruned."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from scalinglab.laws.families.lr_opt import best_lr_per_size
from scalinglab.store import db as store
from scalinglab.study import Study
from tests.helpers import assert_clean_error, freeze_at, group, run_main

ONE_THREAD = ("--workers", "1", "--threads", "1")
GRID = """
[train]
n_ctx = 32
batch_size = 8
n_layer = 1
eval_tokens = 2048
steps = 120
eval_every = 5
[[grid]]
d_model = [16, 32]
lr = "sweep"
lr_grid = [1e-4, 1e-2, 3e-2]
"""


def _plan(path, corpus, extra: str = "prune_at = [0.3]\n"):
    path.write_text(f'name = "prune"\ncorpus = "{corpus}"\n{GRID}{extra}')
    return path


def _rows(db) -> dict[str, tuple]:
    conn = sqlite3.connect(db)
    try:
        return {r[0]: r[1:] for r in conn.execute("SELECT run_id, status, steps, val_loss, family FROM runs")}
    finally:
        conn.close()


@pytest.fixture(scope="module")
def sweeps(synthetic_corpus, tmp_path_factory):
    """The same plan swept with pruning and with --no-prune (one worker, one thread each)."""
    tmp = tmp_path_factory.mktemp("prune")
    plan = _plan(tmp / "p.toml", synthetic_corpus)
    on, off = tmp / "on" / "r.db", tmp / "off" / "r.db"
    s_on = json.loads(run_main("sweep", plan, "--db", on, "--json", *ONE_THREAD, check=True).stdout)
    s_off = json.loads(run_main("sweep", plan, "--db", off, "--json", "--no-prune", *ONE_THREAD, check=True).stdout)
    return {"plan": plan, "on": on, "off": off, "s_on": s_on, "s_off": s_off}


def test_a_v2_store_migrates_keeping_its_runs_and_accepts_pruned(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    for script in store.MIGRATIONS[:2]:
        for stmt in store._split_sql(script):
            conn.execute(stmt)
    conn.execute("PRAGMA user_version = 2")
    conn.execute("INSERT INTO runs (run_id, status, created_at, config, family, val_loss) "
                 "VALUES ('a', 'done', 't', '{}', 'main', 3.5)")
    conn.execute("INSERT INTO evals (run_id, step, val_loss) VALUES ('a', 10, 4.0)")
    conn.execute("INSERT INTO events (run_id, at, status) VALUES ('a', 't', 'done')")
    conn.close()
    conn = store.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
    assert tuple(conn.execute("SELECT status, family, val_loss FROM runs").fetchone()) == ("done", "main", 3.5)
    assert conn.execute("SELECT count(*) FROM evals").fetchone()[0] == 1
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    conn.execute("UPDATE runs SET status = 'pruned'")
    with pytest.raises(sqlite3.IntegrityError):  # references are still enforced after the rebuild
        conn.execute("INSERT INTO evals (run_id, step) VALUES ('nobody', 1)")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE runs SET status = 'stopped'")
    conn.close()


@pytest.mark.parametrize("extra,needles", [
    ("prune_at = 0.3\n", ("prune_at", "list")),
    ("prune_at = [0.3, 1.5]\n", ("prune_at", "(0, 1)")),
    ("prune_at = [0.6, 0.3]\n", ("prune_at", "increasing")),
])
def test_bad_prune_at_exits_2_and_writes_nothing(synthetic_corpus, tmp_path, extra, needles):
    db = tmp_path / "out" / "r.db"
    assert_clean_error(run_main("sweep", _plan(tmp_path / "p.toml", synthetic_corpus, extra), "--db", db), *needles)
    assert not db.parent.exists()


def test_prune_at_needs_an_lr_sweep(synthetic_corpus, tmp_path):
    p = tmp_path / "p.toml"
    p.write_text(f'name = "x"\ncorpus = "{synthetic_corpus}"\n[[run]]\nn_layer = 1\nd_model = 16\nsteps = 10\n'
                 "prune_at = [0.5]\n")
    assert_clean_error(run_main("sweep", p, "--db", tmp_path / "r.db"), "prune_at", 'lr = "sweep"')


@pytest.mark.slow
def test_pruning_stops_hopeless_lrs_keeps_the_choice_and_says_why(sweeps):
    on, off = _rows(sweeps["on"]), _rows(sweeps["off"])
    pruned = {r for r, row in on.items() if row[0] == "pruned"}
    assert pruned and sweeps["s_on"]["pruned"] == len(pruned) and sweeps["s_off"]["pruned"] == 0
    assert all(off[r][0] == "done" for r in off)
    # the pruned runs stopped at the check (the last evaluation before 30% of 120 steps), and lost when trained on
    for r in pruned:
        assert on[r][1] == 35 and off[r][3] == "lr-sweep"
    # every run that went on is bit-identical to the uninterrupted sweep's (they paused and resumed)
    assert {r: row for r, row in on.items() if r not in pruned} == {r: off[r] for r in on if r not in pruned}
    pick = lambda s: sorted((c["n_params"], c["best_lr"], c["best_run_id"]) for c in s["lr_choices"])  # noqa: E731
    assert pick(sweeps["s_on"]) == pick(sweeps["s_off"])
    assert sweeps["s_on"]["pruned_flops_saved"] > 0
    # the evidence is stored with the run: its forecast, the best candidate, the check
    run = store.get_run(sweeps["on"], next(iter(pruned)))
    assert "forecast final loss" in run["reason"] and "lies above the best candidate" in run["reason"]
    ev = run["result"]["prune"]
    assert ev["forecast"]["method"] == "schedule" and ev["forecast"]["L_final_lo"] > ev["best"]["upper"]
    assert ev["best"]["run_id"] not in pruned and ev["fraction"] == 0.3
    # fits and figures never see them, except lr-opt, for which a pruned candidate is an LR that lost
    assert not set(Study.from_db(sweeps["on"]).select("lr-sweep").selection["runs"]) & pruned
    assert not set(Study.from_db(sweeps["on"]).select("lr-sweep").done["run_id"]) & pruned

    def best_lrs(db):
        frame = Study.from_db(db).select(["main", "lr-sweep"]).frame("lr-opt")
        return frame, best_lr_per_size(frame["N"].to_numpy(), frame["LR"].to_numpy(), frame["L"].to_numpy())

    frame, best_on = best_lrs(sweeps["on"])
    assert set(frame.loc[np.isinf(frame["L"]), "run"]) == pruned
    assert best_on == [{**b, "L": b["L"]} for b in best_lrs(sweeps["off"])[1]]


@pytest.mark.slow
def test_a_rerun_keeps_pruned_runs_and_retry_pruned_trains_them_on(sweeps, tmp_path):
    import shutil

    db = tmp_path / "r.db"
    shutil.copy(sweeps["on"], db)
    shutil.copytree(sweeps["on"].parent / "runs", tmp_path / "runs")
    again = json.loads(run_main("sweep", sweeps["plan"], "--db", db, "--json", *ONE_THREAD, check=True).stdout)
    assert again["ran"] == 0 and again["skipped_pruned"] == sweeps["s_on"]["pruned"]
    retried = json.loads(run_main("sweep", sweeps["plan"], "--db", db, "--json", "--retry-pruned", *ONE_THREAD,
                                  check=True).stdout)
    assert retried["ran"] == sweeps["s_on"]["pruned"] and retried["pruned"] == 0
    # trained on from where they stopped: the same final loss as if never pruned
    assert _rows(db) == _rows(sweeps["off"])


@pytest.mark.slow
def test_pruned_runs_survive_a_kill_and_resume_of_the_sweep(sweeps, tmp_path):
    db = tmp_path / "out" / "r.db"
    cmd = [sys.executable, "-m", "scalinglab", "sweep", str(sweeps["plan"]), "--db", str(db), *ONE_THREAD]
    runs_dir = db.parent / "runs"

    pruned: set[str] = set()

    def mid_way() -> list[str]:  # run folders with a checkpoint and no result, pruned ones left out (files only)
        return [p.name for p in runs_dir.glob("*") if (p / "checkpoint.pt").exists()
                and not (p / "result.json").exists() and p.name not in pruned] if runs_dir.exists() else []

    def after_a_prune() -> list[str] | None:  # a run pruned, and a survivor mid-way
        statuses = store.run_statuses(db) if db.exists() else {}
        pruned.clear()
        pruned.update(r for r, st in statuses.items() if st == "pruned")
        return mid_way() if pruned else None

    for _attempt in range(3):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        frozen = None
        try:
            frozen = freeze_at("a run pruned and another mid-way", after_a_prune, lambda q=proc: group(q.pid), proc,
                               mid_way)
        finally:
            if frozen is not None or proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if frozen is not None:
            break
    else:
        raise AssertionError("precondition not reached: the sweep ended before a prune could be caught, 3 times")
    before = {r: row for r, row in _rows(db).items() if row[0] == "pruned"}
    resumed = json.loads(run_main("sweep", sweeps["plan"], "--db", db, "--json", *ONE_THREAD, check=True).stdout)
    assert resumed["skipped_pruned"] == len(before)
    after = _rows(db)
    assert {r: after[r] for r in before} == before  # not retrained
    assert after == _rows(sweeps["on"])  # the same decisions and losses as the sweep that was never killed
    conn = sqlite3.connect(db)
    counts = conn.execute("SELECT count(*) FROM events WHERE status = 'pruned' GROUP BY run_id").fetchall()
    conn.close()
    assert sorted(n for (n,) in counts) == [1] * len([r for r in after.values() if r[0] == "pruned"])
