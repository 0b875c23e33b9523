"""Unmodified trainers in a sweep (sweep/readers.py, sweep/command.py): a run's curve read from the trainer's own
stdout, TensorBoard events or HF Trainer state through the importers' readers, live while it runs, resumed through
{resume} or restarted from scratch; the same curves imported afterwards give the same points and the same fit."""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, assert_clean_error, run_main

PY = shlex.quote(sys.executable)
CONFIG = {"corpus": "", "n_layer": 1, "d_model": 8, "n_ctx": 4, "batch_size": 2, "steps": 10, "threads": 1}
EVAL = r"step (?P<step>\d+): .*val loss (?P<loss>[\d.]+)"


def _plan(tmp_path: Path, train: str, grid: str = "n_layer = [1]\nd_model = [8]\n", top: str = "") -> Path:
    p = tmp_path / "plan.toml"
    p.write_text(f'name = "p"\n{top}[train]\nsteps = 10\nn_ctx = 4\nbatch_size = 2\n{train}\n[[grid]]\n{grid}')
    return p


@pytest.mark.parametrize("train, needles", [
    ("command = \"t {run_dir}\"\nmetrics = { stdout = 'val (?P<loss>[0-9.]+)' }", ["metrics", "no (?P<step>"]),
    ("command = \"t {run_dir}\"\nmetrics = { stdout = 'step (?P<step>[0-9]+)' }", ["metrics", "no (?P<loss>"]),
    ("command = \"t {run_dir}\"\nmetrics = { stdout = '(?P<step>' }", ["metrics", "not a valid regex"]),
    ("command = \"t {run_dir}\"\nmetrics = { neptune = 'x' }", ["metrics", "unknown reader 'neptune'"]),
    ("command = \"t {run_dir}\"\nmetrics = \"json\"", ["metrics", "contract"]),
    ("command = \"t {run_dir}\"\nmetrics = { log = 'train.log' }", ["metrics", "needs pattern"]),
    ("command = \"t {run_dir}\"\nmetrics = { tensorboard = '/no/such/tb/folder' }",
     ["metrics", "/no/such/tb/folder", "outside the run folder", "does not exist"]),
    ("command = \"t {run_dir}\"\nresume = { checkpoint = 'ckpt.pt', yes = '--resume' }", ["resume", "no {resume}"]),
    ("command = \"t {run_dir} {resume}\"", ["command", "{resume}"]),
    ("command = \"t {run_dir} {resume}\"\nresume = { yes = '--resume' }", ["resume", "checkpoint"]),
    ("command = \"t {run_dir}\"\ngrad_accum = 0", ["grad_accum", "positive whole number"]),
    ("metrics = { stdout = '(?P<step>[0-9]+) (?P<loss>[0-9.]+)' }", ["metrics", "command plan"]),
])
def test_bad_metrics_or_resume_exit_2_before_any_run(tmp_path, synthetic_corpus, train, needles):
    plan = _plan(tmp_path, train, top="" if "command" in train else f'corpus = "{synthetic_corpus}"\n')
    db = tmp_path / "out" / "runs.db"
    assert_clean_error(run_main("sweep", plan, "--db", db), "plan.toml", *needles)
    assert not (tmp_path / "out").exists()


def test_grad_accum_and_tokens_per_step_are_part_of_the_run_id_and_the_template(tmp_path):
    from scalinglab.sweep.plan import load_plan

    def spec(extra: str):
        (run,) = load_plan(_plan(tmp_path, f'command = "t --accum {{grad_accum}} {{run_dir}}"\n{extra}')).runs
        return run

    one, four = spec("grad_accum = 1"), spec("grad_accum = 4")
    assert one.run_id != four.run_id and four.command_options == {"grad_accum": 4}
    assert four.summary(2)["tokens"] == 4 * one.summary(2)["tokens"] == 4 * 10 * 2 * 4
    assert spec("grad_accum = 4\ntokens_per_step = 64").summary(2)["tokens"] == 640


def test_the_log_reader_reads_complete_lines_only(tmp_path):
    from scalinglab.importers.logs import read_log

    log = tmp_path / "train.log"
    log.write_text("number of parameters: 0.01M\nstep 0: train loss 4.30, val loss 4.31\niter 10: loss 4.0\n"
                   "step 20: train loss 3.90, val loss 3.95\nstep 40: train loss 3.7")  # the last line is mid-write
    (run,) = read_log(log, [EVAL.replace(".*", r"train loss (?P<train_loss>[\d.]+), "),
                            r"iter (?P<step>\d+): loss (?P<train_loss>[\d.]+)"])
    assert run.curve.fillna(-1).to_dict("records") == [{"step": 0, "loss": 4.31, "train_loss": 4.30},
                                                       {"step": 10, "loss": -1, "train_loss": 4.0},
                                                       {"step": 20, "loss": 3.95, "train_loss": 3.90}]
    log.write_text(log.read_text() + "0, val loss 3.72\n")
    (run,) = read_log(log, EVAL)
    assert list(run.curve["loss"]) == [4.31, 3.95, 3.72]


def _task(tmp_path: Path, body: str, metrics, resume=None) -> dict:
    script = tmp_path / "trainer.py"
    script.write_text("import os, sys\nfrom pathlib import Path\nout = Path(sys.argv[1])\n" + body)
    task = {"run_id": "r1", "config": dict(CONFIG), "out_dir": str(tmp_path / "run"), "cwd": str(tmp_path),
            "command": f"{PY} trainer.py {{run_dir}}" + (" {resume}" if resume else ""), "metrics": metrics}
    if resume:
        task["resume"] = resume
    return task


def test_a_pattern_that_never_matches_fails_with_the_last_lines(tmp_path):
    from scalinglab.sweep.command import execute_command

    r = execute_command(_task(tmp_path, "print('loading data')\nprint('epoch 1 done: 3.2')\n", {"stdout": EVAL}))
    assert r["status"] == "failed"
    assert f"no metrics matched {EVAL} in stdout" in r["reason"] and "epoch 1 done: 3.2" in r["reason"]


def test_a_run_without_resume_restarts_from_scratch_and_its_points_are_replaced(tmp_path):
    """First attempt: steps 10 and 30, then a crash. Second: from scratch (the earlier files moved aside),
    steps 10 and 20. The curve is the second attempt's only; tokens are step x batch x n_ctx x grad_accum."""
    from scalinglab.sweep.command import execute_command

    body = ("first = not (out.parent / 'crashed').exists()\n"
            "print('step 10: val loss', 4.0 if first else 3.5)\n"
            "if first:\n    print('step 30: val loss 3.0'); (out.parent / 'crashed').touch(); sys.exit(1)\n"
            "print('step 20: val loss 3.25')\n")
    task = {**_task(tmp_path, body, {"stdout": r"step (?P<step>\d+): val loss (?P<loss>[\d.]+)"}), "grad_accum": 2}
    assert execute_command(task)["status"] == "failed"
    r = execute_command(task)
    assert r["status"] == "done", r
    assert [(p["step"], p["tokens"], p["val_loss"]) for p in r["curve"]] == [(10, 160, 3.5), (20, 320, 3.25)]
    assert "step 30" in (tmp_path / "run.attempt-1" / "stdout.log").read_text()
    assert (tmp_path / "run" / "finished.json").is_file()
    (tmp_path / "trainer.py").write_text("import sys; sys.exit(9)")  # finished: collected, never run again
    assert execute_command(task)["curve"] == r["curve"]


def test_resume_expands_to_yes_with_a_checkpoint_and_keeps_the_earlier_points(tmp_path):
    from scalinglab.sweep.command import execute_command

    body = ("resumed = '--resume' in sys.argv\nprint('args', sys.argv[2:])\n"
            "if not resumed:\n    print('step 10: val loss 4.0'); (out / 'ckpt.pt').write_text('10'); sys.exit(1)\n"
            "print('step 20: val loss 3.0')\n")
    task = _task(tmp_path, body, {"stdout": r"step (?P<step>\d+): val loss (?P<loss>[\d.]+)"},
                 {"checkpoint": "ckpt.pt", "yes": "--resume --from ckpt.pt"})
    assert execute_command(task)["status"] == "failed"
    r = execute_command(task)
    assert r["status"] == "done" and [p["val_loss"] for p in r["curve"]] == [4.0, 3.0]
    out = (tmp_path / "run" / "stdout.log").read_text()
    assert "args []" in out and "args ['--resume', '--from', 'ckpt.pt']" in out  # empty {resume}: no argument
    assert not (tmp_path / "run.attempt-1").exists()


def test_hooks_see_each_point_while_the_command_runs(tmp_path):
    """The trainer prints its first eval, then waits for a file that only the hook (a tracker) creates: it can
    finish only if the point was read while it ran."""
    from scalinglab.sweep.command import execute_command

    body = ("import time\nprint('step 10: val loss 4.0')\nfor _ in range(600):\n"
            "    if (out / 'go').exists():\n        break\n    time.sleep(0.1)\nelse:\n    sys.exit('no go')\n"
            "print('step 20: val loss 3.0')\n")
    task = _task(tmp_path, body, {"stdout": r"step (?P<step>\d+): val loss (?P<loss>[\d.]+)"})
    seen = []

    def hook(point):
        seen.append((point["step"], point["val_loss"]))
        (tmp_path / "run" / "go").touch()

    r = execute_command(task, [hook])
    assert r["status"] == "done", r
    assert seen[0] == (10, 4.0) and [p["step"] for p in r["curve"]] == [10, 20]
    live = json.loads((tmp_path / "run" / "curve.live.json").read_text())["points"]
    assert [p["step"] for p in live] == [10, 20]


def test_a_csv_reader_with_a_column_map(tmp_path):
    from scalinglab.sweep.command import execute_command

    body = ("(out / 'log.csv').write_text('it,heldout,tok\\n5,3.5,100\\n10,3.0,200\\n')\n")
    r = execute_command(_task(tmp_path, body, {"csv": "log.csv", "map": {"step": "it", "loss": "heldout",
                                                                        "tokens": "tok"}}))
    assert r["status"] == "done", r
    assert [(p["step"], p["tokens"], p["val_loss"]) for p in r["curve"]] == [(5, 100, 3.5), (10, 200, 3.0)]
    assert r["metrics_reader"]["reader"] == "csv" and r["n_params"] == 888
    missing = execute_command({**_task(tmp_path, "pass\n", {"csv": "log.csv"}), "out_dir": str(tmp_path / "run2")})
    assert missing["status"] == "failed" and "csv output" in missing["reason"] and "no evaluation" in missing["reason"]


# ---- real trainers, swept, stored, fitted, and compared with `scalinglab import` of the same files ----------------

def _copy_example(tmp_path: Path, name: str) -> Path:
    shutil.copytree(ROOT / "examples" / name, tmp_path / name)
    plan = tmp_path / name / "plan.toml"
    plan.write_text(plan.read_text().replace('command = """python ', f'command = """{PY} ')
                    .replace('command = "python ', f'command = "{PY} '))
    return plan


def _fit(db: Path) -> dict:
    out = db.with_suffix(".fit.json")
    run_main("fit", "--db", db, "--law", "kaplan-n", "--json", out, check=True)
    return json.loads(out.read_text())


def _curves(db: Path) -> dict[int, list[tuple]]:
    """N -> the run's points (step, tokens, FLOPs, val loss)."""
    runs = json.loads(run_main("runs", "--db", db, "--json", "--curves", check=True).stdout)
    return {r["n_params"]: [(p["step"], p["tokens"], p["flops"], p["val_loss"]) for p in r["curve"]] for r in runs}


def _same_as_imported(db: Path, sources: list[list[str]], tmp_path: Path) -> None:
    """Each run's source imported into a second store: the same points, the same kaplan-n fit."""
    imported = tmp_path / "imported.db"
    for args in sources:
        run_main("import", *args, "--db", imported, check=True)
    assert _curves(imported) == _curves(db)
    a, b = _fit(db), _fit(imported)
    assert a["n_points"] == b["n_points"] == len(sources)
    # same points; the runs come in another order, so the optimiser's last bits differ. The law is fitted in logs,
    # and a scale like N_c ~ 1e60 (three tiny runs) moves by parts in 1e6 for a change of 1e-6 in log N_c
    log = {k: math.log(v) for k, v in a["params"].items()}
    assert log == pytest.approx({k: math.log(v) for k, v in b["params"].items()}, rel=1e-6)


def _page_plan() -> str:
    """The nanoGPT-style plan as docs/how-to/any-trainer.md shows it (the block after its marker comment)."""
    page = (ROOT / "docs" / "how-to" / "any-trainer.md").read_text()
    block = re.search(r"<!-- examples/nanogpt_style/plan.toml -->\s*```toml\n(.*?)```", page, re.S)
    assert block, "the page shows examples/nanogpt_style/plan.toml after its marker comment"
    return block.group(1)


@pytest.mark.slow
def test_the_docs_nanogpt_plan_sweeps_fits_reports_and_matches_its_import(tmp_path):
    assert _page_plan() == (ROOT / "examples" / "nanogpt_style" / "plan.toml").read_text()
    plan = _copy_example(tmp_path, "nanogpt_style")
    db = tmp_path / "out" / "runs.db"
    summary = json.loads(run_main("sweep", plan, "--db", db, "--workers", "2", "--json", check=True).stdout)
    assert summary["done"] == 3
    curves = _curves(db)
    assert all([p[0] for p in c] == [0, 20, 40, 60] for c in curves.values())
    assert all(c[-1][1] == 60 * 8 * 32 for c in curves.values())  # tokens = steps x batch x block x grad_accum
    finals = [c[-1][3] for _, c in sorted(curves.items())]
    assert finals == sorted(finals, reverse=True)
    run_main("report", "--db", db, "--out", tmp_path / "report", check=True)
    assert (tmp_path / "report" / "index.html").is_file()
    spec = __import__("tomllib").loads(plan.read_text())["train"]["metrics"]["stdout"]
    pats = [a for p in spec for a in ("--pattern", p)]
    _same_as_imported(db, [[str(d / "stdout.log"), "--format", "log", *pats, "--config", str(d / "config.json")]
                           for d in sorted((db.parent / "runs").iterdir())], tmp_path)
    again = json.loads(run_main("sweep", plan, "--db", db, "--json", check=True).stdout)
    assert again["already_done"] == 3 and again["ran"] == 0


@pytest.mark.slow
def test_a_tensorboard_trainer_sweeps_and_matches_its_import(tmp_path):
    pytest.importorskip("tbparse")
    plan = _copy_example(tmp_path, "tensorboard_trainer")
    db = tmp_path / "out" / "runs.db"
    run_main("sweep", plan, "--db", db, "--workers", "2", check=True)
    curves = _curves(db)
    assert len(curves) == 3 and all([p[0] for p in c] == [10, 20, 30, 40] for c in curves.values())
    _same_as_imported(db, [[str(d), "--format", "tensorboard", "--run-config", "loss=val/loss",
                            "--config", str(d / "config.json")]
                           for d in sorted((db.parent / "runs").iterdir())], tmp_path)


@pytest.mark.slow
def test_a_hugging_face_trainer_sweeps_and_matches_its_import(tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    plan = _copy_example(tmp_path, "hf_trainer")
    db = tmp_path / "out" / "runs.db"
    run_main("sweep", plan, "--db", db, "--workers", "2", check=True)
    curves = _curves(db)
    assert len(curves) == 3 and all([p[0] for p in c] == [5, 10] for c in curves.values())
    assert all(c[-1][1] == 10 * 4 * 8 for c in curves.values())
    _same_as_imported(db, [[str(d), "--format", "hf-trainer"] for d in sorted((db.parent / "runs").iterdir())],
                      tmp_path)


def _wait_for(pred, proc: subprocess.Popen, what: str, limit: float = 300.0) -> None:
    """Poll `pred` until true; fails if the sweep exits first (a bound for a hung test, not a timing assertion)."""
    end = time.monotonic() + limit
    while not pred():
        if proc.poll() is not None:
            raise AssertionError(f"the sweep ended (exit {proc.returncode}) before {what}: {proc.stderr.read()}")
        if time.monotonic() > end:
            raise AssertionError(f"no {what} after {limit:.0f} s")
        time.sleep(0.2)


def _evals(db: Path) -> list[int]:
    """The eval steps the store holds (all runs), read without the CLI."""
    from scalinglab.store.db import connect

    if not db.is_file():
        return []
    conn = connect(db, create=False)
    try:
        return [r[0] for r in conn.execute("SELECT step FROM evals ORDER BY step")]
    finally:
        conn.close()


def _start_sweep(plan: Path, db: Path) -> subprocess.Popen:
    """`scalinglab sweep` in its own process group (the test kills the group by its id)."""
    return subprocess.Popen([sys.executable, "-m", "scalinglab", "sweep", str(plan), "--db", str(db)],
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


@pytest.mark.slow
def test_runs_sees_the_points_of_a_running_command(tmp_path):
    """The trainer prints an eval, then waits for a file the test writes only once `runs` shows that point."""
    (tmp_path / "t.py").write_text(
        "import sys, time\nfrom pathlib import Path\nprint('step 10: val loss 4.0')\n"
        "while not (Path(sys.argv[1]) / 'go').exists():\n    time.sleep(0.1)\nprint('step 20: val loss 3.0')\n")
    plan = _plan(tmp_path, f'command = "{PY} t.py {{run_dir}}"\n'
                           "metrics = { stdout = 'step (?P<step>[0-9]+): val loss (?P<loss>[0-9.]+)' }\n")
    db = tmp_path / "out" / "runs.db"
    proc = _start_sweep(plan, db)
    try:
        def shown() -> bool:
            if not _evals(db):
                return False
            (run,) = json.loads(run_main("runs", "--db", db, "--json", "--curves", check=True).stdout)
            return run["status"] == "running" and [p["val_loss"] for p in run["curve"]] == [4.0]

        _wait_for(shown, proc, "the first point in `runs` while the run goes")
        (run_dir,) = (db.parent / "runs").iterdir()
        (run_dir / "go").touch()
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert _evals(db) == [10, 20]


@pytest.mark.slow
def test_a_killed_sweep_of_a_nanogpt_style_trainer_resumes_without_duplicate_points(tmp_path):
    """The sweep is SIGKILLed once its run has printed its step-20 eval and saved ckpt.pt (280 iterations before
    its end). Rerun: the trainer resumes from ckpt.pt (--init_from=resume), and the store holds each eval step once."""
    plan = _copy_example(tmp_path, "nanogpt_style")
    plan.write_text(plan.read_text().replace("d_model = [8, 16, 32]", "d_model = [16]")
                    .replace("steps = 60", "steps = 300").replace("n_ctx = 32", "n_ctx = 16"))
    db = tmp_path / "out" / "runs.db"
    proc = _start_sweep(plan, db)
    try:
        def at_step_20() -> bool:
            runs = db.parent / "runs"
            run_dir = next(runs.iterdir(), None) if runs.is_dir() else None
            return run_dir is not None and (run_dir / "ckpt.pt").is_file() and \
                "step 20:" in (run_dir / "stdout.log").read_text()

        _wait_for(at_step_20, proc, "the step-20 checkpoint")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    (run_dir,) = (db.parent / "runs").iterdir()
    assert not (run_dir / "finished.json").exists()
    # the trainer may have saved a later checkpoint between the check and the kill: after the kill nothing moves, so
    # the checkpoint on disk is the one the rerun must resume from
    import torch

    killed_at = int(torch.load(run_dir / "ckpt.pt", weights_only=True)["iter_num"])
    assert 20 <= killed_at < 300, f"precondition not reached: killed at iteration {killed_at}"
    run_main("sweep", plan, "--db", db, check=True)
    assert _evals(db) == list(range(0, 301, 20))  # each once, none lost
    assert f"resuming from iteration {killed_at}" in (run_dir / "stdout.log").read_text()
    (run,) = json.loads(run_main("runs", "--db", db, "--json", check=True).stdout)
    assert run["status"] == "done" and run["attempts"] == 2
