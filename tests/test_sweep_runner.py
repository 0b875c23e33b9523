"""Sweeps end to end through the CLI: local and Ray executors, reruns, SIGKILL, divergence, failures."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys

import pandas as pd
import pytest

from scalinglab.store import db as store
from scalinglab.sweep.plan import load_plan
from scalinglab.sweep.runner import _Lock
from tests.helpers import assert_clean_error, freeze_at, group, run_cli, run_main

TINY = """
[train]
n_ctx = 32
batch_size = 4
steps = 20
eval_tokens = 2048
checkpoint_every_steps = 5
"""


def _write_plan(path, corpus, body, name="tiny"):
    path.write_text(f'name = "{name}"\ncorpus = "{corpus}"\n{TINY}{body}')
    return path


ONE_THREAD = ("--threads", "1")  # tests run two at a time on two cores: no oversubscription
FOUR = "[[grid]]\nn_layer = [1, 2]\nd_model = [32, 48]\n"


def _snapshot(db_path):
    """Everything a rerun must keep: run ids, (run_id, step) eval keys, event ids."""
    conn = sqlite3.connect(db_path)
    try:
        runs = {r[0]: r[1] for r in conn.execute("SELECT run_id, status FROM runs")}
        evals = set(conn.execute("SELECT run_id, step FROM evals"))
        events = set(r[0] for r in conn.execute("SELECT id FROM events"))
        return runs, evals, events
    finally:
        conn.close()


@pytest.fixture(scope="module")
def local_sweep(synthetic_corpus, tmp_path_factory):
    """The 4-run tiny plan swept once with the local executor and 2 workers."""
    d = tmp_path_factory.mktemp("local_sweep")
    plan = _write_plan(d / "plan.toml", synthetic_corpus, FOUR)
    db = d / "out" / "results.db"
    # in this process (its forkserver serves later sweeps too); the entry point is the SIGKILL test's
    proc = run_main("sweep", plan, "--db", db, "--workers", "2", "--json", *ONE_THREAD)
    assert proc.returncode == 0, proc.stderr
    return plan, db, json.loads(proc.stdout)


@pytest.mark.slow
def test_local_sweep_runs_every_run_once_and_rerun_skips(local_sweep):
    plan, db, summary = local_sweep
    ids = {r.run_id for r in load_plan(plan).runs}
    assert summary["ran"] == 4 and summary["done"] == 4 and summary["threads"] >= 1
    runs = json.loads(run_cli("runs", "--db", db, "--json", check=True).stdout)
    assert {r["run_id"] for r in runs} == ids
    for r in runs:
        assert r["status"] == "done" and r["val_loss"] > 0 and r["n_params"] > 0 and r["tokens"] == 20 * 4 * 32
        assert r["flops"] > 0 and r["threads"] == summary["threads"] and r["plan"] == "tiny"
        assert r["config"]["n_layer"] in (1, 2) and r["config"]["d_model"] in (32, 48)
        assert (db.parent / "runs" / r["run_id"] / "result.json").is_file()
    before = _snapshot(db)
    proc = run_main("sweep", plan, "--db", db, "--workers", "2", "--json", *ONE_THREAD, check=True)
    again = json.loads(proc.stdout)
    assert again["ran"] == 0 and again["already_done"] == 4
    after = _snapshot(db)
    assert after[0] == before[0] and after[1] == before[1] and after[2] >= before[2]


@pytest.mark.slow
def test_the_costliest_runs_start_first(local_sweep):
    """Longest-processing-time order: the two workers start with the two runs of the most FLOPs (d_model 48), so
    the sweep does not end with one long run on one worker while the other idles."""
    from scalinglab.sweep.estimate import run_flops

    plan, db, _ = local_sweep
    specs = {s.run_id: s for s in load_plan(plan).runs}
    conn = sqlite3.connect(db)
    try:
        started = [r for (r,) in conn.execute("SELECT run_id FROM events WHERE status = 'running' ORDER BY id")]
    finally:
        conn.close()
    flops = [run_flops(specs[r]) for r in started]
    assert flops == sorted(flops, reverse=True)  # every run started in descending cost
    assert {specs[r].config.d_model for r in started[:2]} == {48}


@pytest.mark.slow  # reads the fixture's real 4-run sweep, like the other local_sweep tests
def test_runs_csv_and_curves_feed_pandas(local_sweep):
    _, db, _ = local_sweep
    df = pd.read_csv(io.StringIO(run_main("runs", "--db", db, "--csv", "-", check=True).stdout))
    assert len(df) == 4 and {"run_id", "status", "n_layer", "d_model", "n_params", "tokens", "flops",
                             "val_loss", "config"} <= set(df.columns)
    out = db.parent / "curves.csv"
    run_main("runs", "--db", db, "--csv", out, "--curves", check=True)
    curves = pd.read_csv(out)
    assert set(curves["run_id"]) == set(df["run_id"])
    n_points = sqlite3.connect(db).execute("SELECT count(*) FROM evals").fetchone()[0]
    assert len(curves) == n_points > 4
    assert {"step", "tokens", "flops", "val_loss", "train_loss", "noise_scale", "eval_shifted", "n_layer",
            "n_params"} <= set(curves.columns)
    last = curves.sort_values("step").groupby("run_id").tail(1).set_index("run_id")["val_loss"]
    assert last.to_dict() == pytest.approx(df.set_index("run_id")["val_loss"].to_dict())
    js = json.loads(run_main("runs", "--db", db, "--json", "--curves", check=True).stdout)
    assert sum(len(r["curve"]) for r in js) == n_points and "shifted" in js[0]["curve"][-1]["eval_losses"]
    table = run_main("runs", "--db", db, check=True).stdout
    assert all(rid in table for rid in df["run_id"])


def test_runs_missing_db_exits_2_without_creating_it(tmp_path):
    missing = tmp_path / "none.db"
    assert_clean_error(run_main("runs", "--db", missing, "--json"), "not found")
    assert not missing.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.ray
def test_ray_executor_matches_local(local_sweep, tmp_path):
    pytest.importorskip("ray")
    plan, local_db, _ = local_sweep
    db = tmp_path / "ray.db"
    proc = run_cli("sweep", plan, "--db", db, "--executor", "ray", "--workers", "2", "--json", *ONE_THREAD)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["done"] == 4
    local = store.load_runs(local_db).set_index("run_id")
    remote = store.load_runs(db).set_index("run_id")
    assert set(local.index) == set(remote.index)
    for rid in local.index:  # same config, same threads: bit-identical results
        assert remote.loc[rid, "val_loss"] == local.loc[rid, "val_loss"]
        assert remote.loc[rid, "threads"] == local.loc[rid, "threads"]


@pytest.mark.slow
def test_diverged_and_failed_runs_are_recorded_and_the_sweep_goes_on(synthetic_corpus, tmp_path):
    # lr=1000 diverges (recorded, final); data_tokens beyond the corpus makes the worker raise ('failed',
    # retried only with --retry-failed); the third run completes regardless.
    plan = _write_plan(tmp_path / "p.toml", synthetic_corpus, (
        "[[run]]\nn_layer = 1\nd_model = 32\nlr = 1000.0\n"
        "[[run]]\nn_layer = 1\nd_model = 32\ndata_tokens = 10000000\n"
        "[[run]]\nn_layer = 1\nd_model = 32\n"))
    db = tmp_path / "r.db"
    proc = run_main("sweep", plan, "--db", db, *ONE_THREAD)
    assert proc.returncode == 1 and "1 run(s) failed" in proc.stderr  # failures are reported ...
    runs = json.loads(run_main("runs", "--db", db, "--json", check=True).stdout)
    by = {(r["config"]["lr"], r["config"]["data_tokens"]): r for r in runs}
    assert by[(1000.0, None)]["status"] == "diverged" and by[(1000.0, None)]["reason"]
    assert by[("auto", 10000000)]["status"] == "failed" and "data_tokens" in by[("auto", 10000000)]["reason"]
    assert by[("auto", None)]["status"] == "done" and by[("auto", None)]["val_loss"] > 0  # ... the sweep went on
    # a rerun tries neither the diverged run (final) nor the failed one (unless asked)
    skip = json.loads(run_main("sweep", plan, "--db", db, "--json", *ONE_THREAD).stdout)
    assert skip["ran"] == 0 and skip["already_done"] == 2 and skip["skipped_failed"] == 1
    retry = json.loads(run_main("sweep", plan, "--db", db, "--retry-failed", "--json", *ONE_THREAD).stdout)
    assert retry["ran"] == 1 and retry["failed"] == 1
    conn = sqlite3.connect(db)
    rid = by[("auto", 10000000)]["run_id"]
    assert conn.execute("SELECT attempts FROM runs WHERE run_id = ?", (rid,)).fetchone()[0] == 2
    events = [r[0] for r in conn.execute("SELECT status FROM events WHERE run_id = ? ORDER BY id", (rid,))]
    assert events == ["queued", "running", "failed", "running", "failed"]  # the first failure is kept
    conn.close()


@pytest.mark.slow
def test_sigkill_mid_sweep_then_rerun_completes_each_run_once(synthetic_corpus, tmp_path):
    body = "[[grid]]\nn_layer = [1]\nd_model = [32, 40, 48]\nsteps = 40\n"
    plan = _write_plan(tmp_path / "p.toml", synthetic_corpus, body)
    db = tmp_path / "out" / "r.db"
    runs_dir = db.parent / "runs"
    cmd = [sys.executable, "-m", "scalinglab", "sweep", str(plan), "--db", str(db), "--workers", "1", *ONE_THREAD]

    def mid_runs() -> list[str]:  # runs with a checkpoint and no result
        return [p.name for p in runs_dir.glob("*") if (p / "checkpoint.pt").exists()
                and not (p / "result.json").exists()] if runs_dir.exists() else []

    def mid_run() -> str | None:  # ... once another run is done
        done = [r for r, s in (store.run_statuses(db).items() if db.exists() else []) if s == "done"]
        return next(iter(mid_runs()), None) if done else None

    # the kill lands mid-run for sure: the sweep (driver and workers: one process group) is frozen at that
    # point, and killed only if a run is still mid-way then; else the sweep is started again
    for _attempt in range(3):
        shutil.rmtree(db.parent, ignore_errors=True)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        killed_mid_run = None
        try:
            killed_mid_run = freeze_at("a run mid-way after another is done", mid_run, lambda q=proc: group(q.pid),
                                       proc, lambda: next(iter(mid_runs()), None))  # files only: the store may be locked
        finally:
            if killed_mid_run is not None or proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, at once
            proc.wait()
        if killed_mid_run is not None:
            break
    else:
        raise AssertionError("precondition not reached: the sweep finished its runs before it could be frozen "
                             "mid-run, 3 times")
    assert store.run_statuses(db)[killed_mid_run] == "running"
    before = _snapshot(db)

    again = run_main("sweep", plan, "--db", db, "--workers", "1", "--json", *ONE_THREAD)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["already_done"] >= 1 and summary["ran"] == 3 - summary["already_done"]
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = conn.execute("SELECT run_id, status, result, steps FROM runs").fetchall()
    assert len(rows) == 3 and all(r[1] == "done" and r[3] == 40 for r in rows)
    # every run done exactly once: one 'done' event per run
    done_events = conn.execute("SELECT run_id, count(*) FROM events WHERE status = 'done' GROUP BY run_id").fetchall()
    assert sorted(n for _, n in done_events) == [1, 1, 1]
    result = json.loads(next(r[2] for r in rows if r[0] == killed_mid_run))
    assert result["resumed_from"] and 0 < result["resumed_from"][0] <= 40  # continued from its checkpoint
    steps = [r[0] for r in conn.execute("SELECT step FROM evals WHERE run_id = ? ORDER BY step", (killed_mid_run,))]
    assert steps == sorted(set(steps)) and steps[-1] == 40
    conn.close()
    after = _snapshot(db)
    assert set(before[0]) <= set(after[0]) and before[1] <= after[1] and before[2] <= after[2]  # nothing deleted


def test_one_writer_per_store(tmp_path):
    db = tmp_path / "r.db"
    with _Lock(db):
        with pytest.raises(Exception, match="another sweep"):
            with _Lock(db):
                pass
    with _Lock(db):  # released
        pass
