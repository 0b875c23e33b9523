"""`sweep --executor ray --address`: a real two-node Ray cluster on this machine, a node killed mid-sweep,
the bad inputs (an address nothing answers at, a node that cannot see the run folder), and the plan's
per-run resource requests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from scalinglab.sweep.cluster import ATTEMPTS_FILE, parse_memory, task_options
from scalinglab.sweep.plan import load_plan
from scalinglab.train.rundir import CHECKPOINT
from tests.helpers import assert_clean_error, freeze, run_cli, run_main
from tests.ray_nodes import LocalCluster, free_ports

# 4 tiny runs of STEPS steps with a checkpoint every 10: the node-loss test catches a run after its first
# checkpoint, 140 steps (about a second here) before its end
STEPS = 150
PLAN = f"""name = "cluster"
corpus = "{{corpus}}"
[train]
n_ctx = 32
batch_size = 4
steps = {STEPS}
eval_tokens = 2048
checkpoint_every_steps = 10
[[grid]]
n_layer = [1, 2]
d_model = [32, 48]
"""


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("ray")
    # a short root: Ray's socket paths under it must stay within AF_UNIX's 107 bytes
    c = LocalCluster(Path(tempfile.mkdtemp(prefix="slray-", dir="/tmp")))
    try:
        for node in (c.start_node("head", head=True, wait=False), c.start_node("w1", wait=False)):
            c.wait_started(node)
        yield c
    finally:
        c.stop()
        shutil.rmtree(c.root, ignore_errors=True)


def _attempt_records(run_dir: Path) -> list[dict]:
    f = run_dir / ATTEMPTS_FILE
    return [json.loads(line) for line in f.read_text().splitlines()] if f.is_file() else []


def _attempts(run_dir: Path) -> list[str]:
    return [a["node_id"] for a in _attempt_records(run_dir)]


def _checkpoint_step(run_dir: Path) -> int:
    return int(torch.load(run_dir / CHECKPOINT, map_location="cpu", weights_only=True)["run"]["step"])


def _lose_node_mid_run(node, runs: Path, sweep: subprocess.Popen, timeout: float = 600) -> tuple[str, int]:
    """Lose `node` while it trains a run, deterministically: (run id, step of the checkpoint left behind).

    When a run on `node` has its first checkpoint, the worker process training it (its pid is in the run's
    attempts file) is frozen with SIGSTOP, so it can neither finish nor write while the test looks. A frozen
    run with no result.json and a checkpoint before its last step is mid-run: the node's raylet is SIGKILLed,
    then the frozen worker, which a lost machine takes with it. (Killing the raylet alone left the worker
    alive for a moment, until it noticed by itself; a tiny run could finish in that moment and hand its result
    to the driver: the race seen once in CI.) A run caught only after its end is let go (SIGCONT), and the
    next run on `node` is tried."""
    deadline, passed = time.monotonic() + timeout, set()
    while time.monotonic() < deadline and sweep.poll() is None:
        for d in sorted(runs.glob("*")) if runs.is_dir() else []:
            att = _attempt_records(d)
            if d.name in passed or not att or att[-1]["node_id"] != node.node_id or not (d / CHECKPOINT).exists():
                continue
            worker = att[-1]["pid"]
            if not freeze(worker):  # SIGSTOP, and wait until it has taken hold (the worker may have ended)
                passed.add(d.name)
                continue
            step = _checkpoint_step(d)
            if (d / "result.json").exists() or step >= STEPS:
                os.kill(worker, signal.SIGCONT)
                passed.add(d.name)
                continue
            raylet = node.raylet_pid()
            assert raylet is not None, f"no raylet process for node {node.name}"
            os.kill(raylet, signal.SIGKILL)
            os.kill(worker, signal.SIGKILL)
            return d.name, step
        time.sleep(0.02)
    raise AssertionError(f"never caught node {node.name} mid-run (runs let go after their end: {sorted(passed)}; "
                         f"sweep exit {sweep.poll()})")


@pytest.mark.slow
@pytest.mark.ray
def test_run_folder_a_node_cannot_see_exits_2(cluster, synthetic_corpus, tmp_path):
    # a third node in its own mount namespace, where the run folder is covered by an empty tmpfs: it is
    # a node without the shared filesystem
    if subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs unprivileged mount namespaces (unshare -rm) to hide a folder from one node")
    (tmp_path / "plan.toml").write_text(PLAN.format(corpus=synthetic_corpus))
    runs = tmp_path / "out" / "runs"
    runs.mkdir(parents=True)
    hide = ["unshare", "-rm", "sh", "-c", 'mount -t tmpfs none "$0" && exec "$@"', str(runs)]
    with cluster.extra_node("blind", prefix=hide) as blind:
        proc = run_cli("sweep", tmp_path / "plan.toml", "--db", tmp_path / "out" / "results.db", "--executor", "ray",
                       "--address", cluster.address, "--workers", "2", "--threads", "1", env=cluster.env, timeout=400)
        assert_clean_error(proc, "cannot see the run folder", str(runs), blind.node_id[:8])
        assert list(runs.iterdir()) == []  # no run started, the check's marker file removed


@pytest.mark.slow
@pytest.mark.ray
def test_a_driver_without_the_cluster_token_exits_2_with_one_line(cluster, synthetic_corpus, tmp_path):
    (tmp_path / "plan.toml").write_text(PLAN.format(corpus=synthetic_corpus))
    env = {"RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN": "", "HOME": str(tmp_path)}  # Ray's default for a driver
    args = ("sweep", tmp_path / "plan.toml", "--db", tmp_path / "r.db", "--executor", "ray", "--address",
            cluster.address, "--threads", "1")
    # the probe asks the GCS once with the driver's token (none here) and says why in one line, before ray.init,
    # whose client would retry for ~20 s
    assert_clean_error(run_cli(*args, env=env, timeout=120), "token authentication", "RAY_AUTH_MODE=token")
    wrong = {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 32}
    assert_clean_error(run_cli(*args, env=wrong, timeout=120), "refused this driver's token", "use the head's token")
    assert not (tmp_path / "r.db").exists() and not (tmp_path / "runs").exists()  # refused before the store


@pytest.mark.slow
@pytest.mark.ray
def test_a_run_asking_for_a_gpu_lands_on_the_node_that_has_one(cluster, synthetic_corpus, tmp_path):
    # the node declares one GPU (Ray's resource; this machine has none, so the run still trains on the CPU)
    with cluster.extra_node("gpu", num_gpus=1) as gpu:
        body = PLAN.format(corpus=synthetic_corpus).split("[[grid]]")[0].replace(f"steps = {STEPS}", "steps = 20")
        plan = _write(tmp_path / "plan.toml", body + "[[run]]\nn_layer = 1\nd_model = 32\nnum_gpus = 1\n"
                      "[[run]]\nn_layer = 1\nd_model = 48\n")
        db = tmp_path / "results.db"
        proc = run_cli("sweep", plan, "--db", db, "--executor", "ray", "--address", cluster.address, "--workers", "2",
                       "--threads", "1", "--json", env=cluster.env, timeout=400)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert json.loads(proc.stdout)["done"] == 2
        conn = sqlite3.connect(db)
        placed = {json.loads(c)["d_model"]: json.loads(r)["node_id"] for c, r in conn.execute("SELECT config, result FROM runs")}
        conn.close()
        assert placed[32] == gpu.node_id  # the only node with a GPU


@pytest.mark.slow
@pytest.mark.ray
def test_two_node_sweep_survives_a_node_loss(cluster, synthetic_corpus, tmp_path):
    head, w1 = cluster.nodes[0], cluster.nodes[1]
    (tmp_path / "plan.toml").write_text(PLAN.format(corpus=synthetic_corpus))
    db = tmp_path / "results.db"
    err = open(tmp_path / "sweep.err", "w")  # noqa: SIM115
    sweep = subprocess.Popen(
        [sys.executable, "-m", "scalinglab", "sweep", str(tmp_path / "plan.toml"), "--db", str(db), "--executor", "ray",
         "--address", cluster.address, "--workers", "2", "--threads", "1", "--json"],
        env={**cluster.env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        killed, killed_at = _lose_node_mid_run(w1, tmp_path / "runs", sweep)
        out, _ = sweep.communicate(timeout=600)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
    stderr = (tmp_path / "sweep.err").read_text()
    assert sweep.returncode == 0, stderr[-3000:]
    summary = json.loads(out)
    assert (summary["ran"], summary["done"], summary["failed"]) == (4, 4, 0), summary

    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        rows = conn.execute("SELECT run_id, status, attempts, result FROM runs").fetchall()
        events = {rid: [s for (s,) in conn.execute("SELECT status FROM events WHERE run_id = ? ORDER BY id", (rid,))]
                  for rid, *_ in rows}
        n_evals = dict(conn.execute("SELECT run_id, count(*) FROM evals GROUP BY run_id"))
    finally:
        conn.close()
    assert len(rows) == 4 and {r[1] for r in rows} == {"done"}
    for rid, _, attempts, result_json in rows:  # every run recorded exactly once, with its curve
        assert attempts == 1 and events[rid] == ["queued", "running", "done"], (rid, events[rid])
        assert n_evals[rid] > 1
        result = json.loads(result_json)
        att = _attempts(tmp_path / "runs" / rid)
        assert result["node_id"] == att[-1]  # the store says which node finished the run
        if rid == killed:  # Ray ran it again on the surviving node, resuming from the checkpoint the lost node left
            assert att == [w1.node_id, head.node_id] and result["resumed_from"] == [killed_at], (att, result["resumed_from"])
        else:
            assert len(att) == 1 and not result["resumed_from"]
    nodes_used = {n for rid, *_ in rows for n in _attempts(tmp_path / "runs" / rid)}
    assert nodes_used == {head.node_id, w1.node_id}  # the plan was spread over both nodes


@pytest.mark.ray
def test_unreachable_address_exits_2_within_the_probe_timeout(synthetic_corpus, tmp_path, monkeypatch):
    pytest.importorskip("ray")
    from scalinglab.sweep import cluster

    (tmp_path / "plan.toml").write_text(PLAN.format(corpus=synthetic_corpus))
    db = tmp_path / "r.db"
    args = ("sweep", tmp_path / "plan.toml", "--db", db, "--executor", "ray", "--threads", "1")
    # nothing listens: refused at once (the probe's bound is 10 s; `timeout` fails the test on a hang); the
    # entry point once, the other cases in this process
    port = free_ports(1)[0]
    assert_clean_error(run_cli(*args, "--address", f"127.0.0.1:{port}", timeout=60), "cannot reach", str(port))
    assert_clean_error(run_main(*args, "--address", "nohost.invalid:6379"), "cannot reach")
    assert_clean_error(run_main(*args, "--address", "127.0.0.1"), "HOST:PORT")
    # something listens but never speaks gRPC: refused after the handshake timeout (shortened here)
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 1.0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        addr = f"127.0.0.1:{s.getsockname()[1]}"
        assert_clean_error(run_main(*args, "--address", addr), "not a Ray cluster", "within 1 s")
    assert not (tmp_path / "runs").exists() and not db.exists()  # probed before the store is created


def test_plan_resource_requests_reach_the_ray_task_options_and_leave_run_ids_alone(synthetic_corpus, tmp_path):
    base = PLAN.format(corpus=synthetic_corpus)
    plain = load_plan(_write(tmp_path / "a.toml", base))
    asked = load_plan(_write(tmp_path / "b.toml", base.replace("[train]\n", '[train]\nmemory = "1.5GiB"\n') +
                             "[[run]]\nn_layer = 3\nd_model = 32\nnum_gpus = 1\nnum_cpus = 2\n"))
    assert [r.run_id for r in plain.runs] == [r.run_id for r in asked.runs][:4]  # resources are not identity
    assert asked.runs[0].resources == {"memory": 1.5 * 2**30}
    gpu = asked.runs[-1]
    assert gpu.resources == {"num_cpus": 2, "num_gpus": 1, "memory": 1.5 * 2**30}
    task = {"config": gpu.config.model_copy(update={"threads": 1}).model_dump(), "resources": gpu.resources}
    assert task_options(task) == {"num_cpus": 2, "num_gpus": 1, "memory": 1.5 * 2**30}
    assert task_options({"config": {"threads": 3}}) == {"num_cpus": 3}  # default: one CPU per thread
    assert task_options({"config": {"threads": 3, "nproc_per_node": 2}}) == {"num_cpus": 6}  # ... of every rank
    assert plain.runs[0].resources == {}


@pytest.mark.parametrize(("line", "needle"), [("num_gpus = -1", "num_gpus: must be a number ≥ 0"),
                                              ('memory = "lots"', "memory: expected bytes"),
                                              ("num_cpus = true", "num_cpus: must be a number")])
def test_bad_resource_requests_name_the_key_and_line(synthetic_corpus, tmp_path, line, needle):
    plan = _write(tmp_path / "p.toml", PLAN.format(corpus=synthetic_corpus) + f"[[run]]\nn_layer = 1\nd_model = 8\n{line}\n")
    assert_clean_error(run_main("sweep", plan, "--dry-run", "--no-estimate"), "p.toml line 15", "[[run]] #1", needle)


def test_parse_memory():
    assert parse_memory(1000) == 1000 and parse_memory("4GB") == 4 * 10**9 and parse_memory("512MiB") == 2**29
    assert parse_memory("2g") == 2 * 10**9
    for bad in ("0", "-1G", "4 parsecs", True, 0):
        with pytest.raises(ValueError):
            parse_memory(bad)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
