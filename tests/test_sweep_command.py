"""Any trainer from a sweep (sweep/command.py): the metrics contract, failures with their reasons, resume, and the
example foreign trainer end to end (sweep -> store -> fit -> report)."""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, assert_clean_error, run_main

PY = shlex.quote(sys.executable)
CONFIG = {"corpus": "", "n_layer": 1, "d_model": 8, "n_ctx": 4, "batch_size": 2, "steps": 10, "threads": 1}


def _task(tmp_path: Path, command: str) -> dict:
    return {"run_id": "r1", "config": dict(CONFIG), "out_dir": str(tmp_path / "run"), "command": command,
            "cwd": str(tmp_path)}


def _script(tmp_path: Path, body: str) -> str:
    """A command running `body` as a Python script (the metrics path is in $SCALINGLAB_METRICS)."""
    p = tmp_path / "trainer.py"
    p.write_text("import json, os, sys\nM = os.environ['SCALINGLAB_METRICS']\n"
                 "def emit(r):\n    open(M, 'a').write(json.dumps(r) + '\\n')\n" + body)
    return f"{PY} trainer.py --steps {{steps}} --out {{run_dir}}"


def test_records_become_the_curve_and_the_result(tmp_path):
    from scalinglab.sweep.command import execute_command

    cmd = _script(tmp_path, "emit({'step': 5, 'loss': 3.0, 'flops': 1e9})\nemit({'step': 10, 'tokens': 80, "
                            "'loss': 2.5, 'flops': 2e9, 'lr': 1e-3})\nemit({'final': True, 'n_params': 1234})\n")
    r = execute_command(_task(tmp_path, cmd))
    assert r["status"] == "done", r
    assert [(p["step"], p["tokens"], p["val_loss"]) for p in r["curve"]] == [(5, 40, 3.0), (10, 80, 2.5)]
    assert r["val_loss"] == 2.5 and r["n_params"] == 1234 and r["flops"] == 2e9 and r["flops_convention"] == "reported"
    assert r["curve"][1]["lr"] == 1e-3 and r["best_step"] == 10
    assert json.loads((tmp_path / "run" / "config.json").read_text())["command"] == cmd


@pytest.mark.parametrize("body, needles", [
    ("sys.stderr.write('CUDA out of memory\\n'); sys.exit(5)", ["exited with status 5", "CUDA out of memory"]),
    ("pass", ["wrote no metrics", "SCALINGLAB_METRICS"]),
    ("emit({'step': 1, 'loss': 3.0})", ["without a final record"]),
    ("emit({'step': 1, 'loss': 3.0})\nopen(M, 'a').write('not json\\n')\nemit({'final': True})",
     ["metrics.jsonl line 2 is not valid JSON"]),
    ("emit({'step': 1, 'tokens': 8})\nemit({'final': True})", ["record 1 has no 'loss'"]),
    ("emit({'final': True, 'loss': 2.0})", ["no evaluation"]),
])
def test_a_command_that_breaks_the_contract_fails_with_its_reason(tmp_path, body, needles):
    from scalinglab.sweep.command import execute_command

    r = execute_command(_task(tmp_path, _script(tmp_path, body)))
    assert r["status"] == "failed"
    for n in needles:
        assert n in r["reason"], r["reason"]


def test_a_command_that_cannot_start_fails(tmp_path):
    from scalinglab.sweep.command import execute_command

    r = execute_command(_task(tmp_path, "no-such-program-xyz --steps {steps}"))
    assert r["status"] == "failed" and "no-such-program-xyz" in r["reason"]


def test_a_finished_run_is_collected_never_rerun_and_a_cut_record_is_dropped(tmp_path):
    from scalinglab.sweep.command import execute_command

    run = tmp_path / "run"
    run.mkdir()
    # a command killed mid-write left half a line; its rerun writes the step again and finishes
    (run / "metrics.jsonl").write_text('{"step": 5, "loss": 3.5}\n{"step": 10, "lo')
    cmd = _script(tmp_path, "emit({'step': 5, 'loss': 3.0})\nemit({'step': 10, 'loss': 2.0})\nemit({'final': True})")
    r = execute_command(_task(tmp_path, cmd))
    assert r["status"] == "done" and [p["val_loss"] for p in r["curve"]] == [3.0, 2.0]  # rewritten steps win
    # finished: a second call returns the same result without running anything (the command would now fail)
    (tmp_path / "trainer.py").write_text("import sys; sys.exit(9)")
    again = execute_command(_task(tmp_path, cmd))
    assert again["status"] == "done" and again["curve"] == r["curve"]


def test_a_template_key_the_plan_lacks_exits_2_and_writes_nothing(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text('name = "p"\n[train]\ncommand = "python t.py --width {d_model} --depth {n_layers}"\n'
                    'steps = 5\n[[grid]]\nn_layer = [1]\nd_model = [8]\n')
    db = tmp_path / "out" / "runs.db"
    assert_clean_error(run_main("sweep", plan, "--db", db), "plan.toml line 3", "command", "{n_layers}")
    assert not (tmp_path / "out").exists()
    plan.write_text(plan.read_text().replace("{n_layers}", "{data_tokens}"))  # a key without a value here
    assert_clean_error(run_main("sweep", plan, "--db", db), "{data_tokens}")
    plan.write_text(plan.read_text().replace("{data_tokens}", "{}"))
    assert_clean_error(run_main("sweep", plan, "--db", db), "must be names")
    assert not (tmp_path / "out").exists()


def test_the_command_is_part_of_the_run_id(synthetic_corpus, tmp_path):
    from scalinglab.sweep.plan import load_plan

    def ids(extra: str) -> list[str]:
        p = tmp_path / "plan.toml"
        p.write_text(f'name = "p"\ncorpus = "{synthetic_corpus}"\n[train]\n{extra}steps = 5\n'
                     '[[grid]]\nn_layer = [1]\nd_model = [8]\n')
        return [s.run_id for s in load_plan(p).runs]

    native, a, b = ids(""), ids('command = "a {d_model}"\n'), ids('command = "b {d_model}"\n')
    assert len({native[0], a[0], b[0]}) == 3


def _example(tmp_path: Path) -> Path:
    """The shipped example plan and trainer, with `python` pinned to this interpreter."""
    for name in ("foreign_plan.toml", "foreign_trainer.py"):
        shutil.copy(ROOT / "examples" / name, tmp_path / name)
    plan = tmp_path / "foreign_plan.toml"
    plan.write_text(plan.read_text().replace('command = "python ', f'command = "{PY} '))
    return plan


@pytest.mark.slow
def test_example_foreign_trainer_sweeps_fits_and_reports(tmp_path):
    plan = _example(tmp_path)
    db = tmp_path / "out" / "runs.db"
    run_main("sweep", plan, "--db", db, "--workers", "2", check=True)
    runs = json.loads(run_main("runs", "--db", db, "--json", check=True).stdout)
    assert len(runs) == 4 and {r["status"] for r in runs} == {"done"}
    losses = [r["val_loss"] for r in sorted(runs, key=lambda r: r["n_params"])]
    assert losses == sorted(losses, reverse=True)  # wider models reach lower loss
    fit = tmp_path / "fit.json"
    run_main("fit", "--db", db, "--law", "kaplan-n", "--json", fit, check=True)
    f = json.loads(fit.read_text())
    assert f["n_points"] == 4 and f["params"]["alpha_N"] > 0
    run_main("report", "--db", db, "--out", tmp_path / "report", check=True)
    html = (tmp_path / "report" / "index.html").read_text()
    assert 'src="fig01.png"' in html
    # rerunning finds everything finished
    again = json.loads(run_main("sweep", plan, "--db", db, "--json", check=True).stdout)
    assert again["already_done"] == 4 and again["ran"] == 0


@pytest.mark.slow
def test_a_failed_command_run_is_retried_and_resumes_itself(tmp_path):
    """The example trainer stops at step 50 once (exit 3); the sweep marks the run failed with the reason, and
    --retry-failed reruns the command, which resumes from its checkpoint and ends on the uninterrupted loss."""
    from scalinglab.store.db import get_run

    plan = _example(tmp_path)
    text = plan.read_text().replace("d_model = [4, 8, 16, 24]", "d_model = [8]")
    plan.write_text(text.replace("--out {run_dir}", "--out {run_dir} --fail_at 50"))
    db = tmp_path / "a" / "runs.db"
    first = run_main("sweep", plan, "--db", db, "--json")
    assert first.returncode == 1
    (run,) = json.loads(first.stdout)["runs"]
    assert "exited with status 3" in run["reason"] and "simulated failure at step 50" in run["reason"]
    assert get_run(db, run["run_id"])["status"] == "failed"
    second = json.loads(run_main("sweep", plan, "--db", db, "--retry-failed", "--json", check=True).stdout)
    resumed = get_run(db, run["run_id"])
    assert second["done"] == 1 and resumed["status"] == "done" and resumed["attempts"] == 2

    plan.write_text(text)  # the same run uninterrupted (another command, so another run id and folder)
    run_main("sweep", plan, "--db", tmp_path / "b" / "runs.db", check=True)
    (plain,) = json.loads(run_main("runs", "--db", tmp_path / "b" / "runs.db", "--json", check=True).stdout)
    assert resumed["val_loss"] == plain["val_loss"]


def test_a_final_record_without_its_newline_still_finishes_the_run(tmp_path):
    from scalinglab.sweep.command import execute_command

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 10, "loss": 2.0}\n{"final": true}')
    r = execute_command(_task(tmp_path, f"{PY} -c 'import sys; sys.exit(7)'"))  # would fail if it ran
    assert r["status"] == "done" and r["val_loss"] == 2.0
    assert (run / "metrics.jsonl").read_text().endswith('{"final": true}\n')
