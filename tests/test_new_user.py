"""What a new user hit in the first hour: stores of other trainers' runs (a `command` plan that sets no LR, an import
that names no architecture, schedule or LR) through `runs`, `fit`, `report`; fits that `report` finds in the store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import MAIN, run_main, synthetic_result


def _command_result(rng, n_layer: int, d_model: int, lr_logged: bool) -> dict:
    """A `command`-plan run as the command executor stores it: config lr "auto" (the plan set none)."""
    r = synthetic_result(rng, n_layer=n_layer, d_model=d_model, steps=600)
    r["config"] = {**r["config"], "lr": "auto"}
    r.update(trainer="command", command="python train.py", flops_convention="6N", lr=1e-3 if lr_logged else None)
    if not lr_logged:
        for p in r["curve"]:
            p.pop("lr", None)
    return r


@pytest.fixture(scope="module")
def mixed_store(tmp_path_factory) -> Path:
    """Command-plan runs with and without a logged LR, and runs imported from a CSV that gives only N and the curve."""
    from scalinglab.importers import import_runs
    from scalinglab.store.db import record_result

    tmp = tmp_path_factory.mktemp("mixed")
    db = tmp / "runs.db"
    rng = np.random.default_rng(1)
    for i, (nl, dm) in enumerate(MAIN):
        record_result(db, _command_result(rng, nl, dm, lr_logged=i % 2 == 0), plan="foreign")
    rows = []
    for name, n in (("tiny-a", 2e5), ("tiny-b", 8e5), ("tiny-c", 3e6), ("tiny-d", 1e7)):
        for step in (100, 300, 1000, 3000):
            rows.append({"run": name, "step": step, "tokens": step * 4096, "N": n,
                         "loss": (1e7 / n) ** 0.1 + 2 + (200 / step) ** 0.5})
    pd.DataFrame(rows).to_csv(tmp / "mine.csv", index=False)
    import_runs(tmp / "mine.csv", db, fmt="csv")
    return db


def test_store_keeps_unknown_settings_unknown_and_lr_numeric(mixed_store):
    from scalinglab.store.db import load_runs

    runs = load_runs(mixed_store)
    lr = runs["lr"]
    assert all(x is None or isinstance(x, float) or pd.isna(x) for x in lr)  # "auto" is not an LR
    assert pd.to_numeric(lr, errors="raise").notna().sum() == 3
    imported = runs[runs["plan"] == "imported"]
    assert sorted(imported["name"]) == ["tiny-a", "tiny-b", "tiny-c", "tiny-d"]
    assert imported["arch"].isna().all() and imported["schedule"].isna().all()


def test_runs_lists_mixed_stores_with_names(mixed_store):
    table = run_main("runs", "--db", mixed_store, check=True).stdout
    assert "tiny-a" in table and "None" not in table and "nan" not in table
    rows = json.loads(run_main("runs", "--db", mixed_store, "--json", check=True).stdout)
    assert {r["name"] for r in rows if r["plan"] == "imported"} == {"tiny-a", "tiny-b", "tiny-c", "tiny-d"}
    run_main("runs", "--db", mixed_store, "--csv", "-", "--curves", check=True)


def _copy(db: Path, tmp_path: Path) -> Path:
    """A copy of the shared store for a test that saves fits in it."""
    import shutil

    return Path(shutil.copyfile(db, tmp_path / "runs.db"))


@pytest.mark.slow  # every figure is drawn: the LR figure is where "auto" met a float column
def test_fit_and_report_of_mixed_store(mixed_store, tmp_path):
    mixed_store = _copy(mixed_store, tmp_path)
    fit = run_main("fit", "--db", mixed_store, "--law", "kaplan-n", "--json", "-", check=True)
    assert json.loads(fit.stdout)["n_points"] == 10
    run_main("report", "--db", mixed_store, "--out", tmp_path / "rep", check=True)
    html = (tmp_path / "rep" / "index.html").read_text()
    runs_section = html.split('id="runs"')[1]
    for name in ("tiny-a", "tiny-b", "tiny-c", "tiny-d"):
        assert f">{name}<" in runs_section
    # the imported runs said nothing about arch or schedule: shown as unknown, never as scalinglab's defaults
    imported_rows = [r for r in runs_section.split("<tr>") if ">tiny-" in r]
    assert len(imported_rows) == 4
    for row in imported_rows:
        assert ">transformer<" not in row and ">cosine<" not in row and row.count(">unknown<") == 2


def _fit_laws_in_report(html: str) -> set[str]:
    section = html.split('id="laws"')[1].split('id="plan"')[0]
    return {law for law in ("kaplan-n", "kaplan-c", "frontier") if f">{law}<" in section}


def test_fit_db_saves_its_fit_for_the_report(mixed_store, tmp_path):
    from scalinglab.report.study import fits_from_store

    db = _copy(mixed_store, tmp_path)
    assert fits_from_store(db) == {}
    for law in ("kaplan-n", "frontier"):
        run_main("fit", "--db", db, "--law", law, "--json", tmp_path / f"{law}.json", check=True)
    run_main("report", "--db", db, "--out", tmp_path / "after", "--figures", "1", check=True)
    assert _fit_laws_in_report((tmp_path / "after" / "index.html").read_text()) == {"kaplan-n", "frontier"}
    # the latest fit of a law is the one the report uses
    run_main("fit", "--db", db, "--law", "kaplan-n", "--query", "N > 1e5", check=True)
    assert fits_from_store(db)["kaplan-n"]["query"] == "N > 1e5"


@pytest.mark.slow
def test_report_takes_several_fits_files(mixed_store, tmp_path):
    mixed_store = _copy(mixed_store, tmp_path)
    files = []
    for law in ("kaplan-n", "kaplan-c", "frontier"):
        files += ["--fits", tmp_path / f"{law}.json"]
        run_main("fit", "--db", mixed_store, "--law", law, "--json", tmp_path / f"{law}.json", check=True)
    run_main("report", "--db", mixed_store, "--out", tmp_path / "rep", "--figures", "1", *files, check=True)
    assert _fit_laws_in_report((tmp_path / "rep" / "index.html").read_text()) == {"kaplan-n", "kaplan-c", "frontier"}


# ---- an unexpected exception is one line and exit 1, bad input stays exit 2 --------------------------------------
def _boom(*args, **kwargs):
    raise KeyError("boom-from-deep-inside")


@pytest.fixture(scope="module")
def small_inputs(tmp_path_factory) -> dict[str, Path]:
    """A one-run store, a CSV of (N, L), a fit JSON and a plan: enough input for every command to reach its core."""
    from scalinglab.store.db import record_result

    tmp = tmp_path_factory.mktemp("inputs")
    record_result(tmp / "runs.db", synthetic_result(np.random.default_rng(0), n_layer=1, d_model=16), plan="p")
    pd.DataFrame({"N": [1e5, 1e6, 1e7, 1e8], "L": [4.0, 3.5, 3.1, 2.8]}).to_csv(tmp / "nl.csv", index=False)
    (tmp / "fit.json").write_text(json.dumps({"law": "kaplan-n", "params": {"alpha_N": 0.076, "N_c": 8.8e13}}))
    (tmp / "plan.toml").write_text('name = "p"\n[train]\ncommand = "true"\nn_ctx = 8\nbatch_size = 2\nsteps = 2\n'
                                   '[[grid]]\nn_layer = [1]\nd_model = [8]\n')
    (tmp / "runs.csv").write_text("run,step,tokens,N,loss\na,1,100,1000,4.0\na,2,200,1000,3.9\n")
    return {"db": tmp / "runs.db", "csv": tmp / "nl.csv", "fit": tmp / "fit.json", "plan": tmp / "plan.toml",
            "runs_csv": tmp / "runs.csv", "tmp": tmp}


# (command line with {placeholders}, the library function deep under it that raises)
EVERY_COMMAND = {
    "count": (["count", "--n-layer", "2", "--d-model", "64", "--n-ctx", "64", "--vocab", "256"],
              "scalinglab.model.counting.count_model"),
    "fit": (["fit", "--csv", "{csv}", "--law", "kaplan-n"], "scalinglab.laws.framework.data.load_csv"),
    "forecast": (["forecast", "--csv", "{runs_csv}"], "scalinglab.laws.analyses.forecast.forecast_curves"),
    "import": (["import", "{runs_csv}", "--db", "{tmp}/imported.db"], "scalinglab.store.db.record_result"),
    "plan": (["plan", "--compute", "1e21", "--fit", "{fit}"], "scalinglab.laws.analyses.planning.plan_allocation"),
    "predict": (["predict", "--fit", "{fit}", "--N", "1e9"], "scalinglab.laws.analyses.prediction.predict_table"),
    "report": (["report", "--db", "{db}", "--out", "{tmp}/rep"], "scalinglab.store.db.load_evals"),
    "reproduce": (["reproduce", "--preset", "tiny", "--out", "{tmp}/repro"], "scalinglab.reproduce.reproduce"),
    "runs": (["runs", "--db", "{db}"], "scalinglab.store.db.load_runs"),
    "sweep": (["sweep", "{plan}", "--db", "{tmp}/sweep.db"], "scalinglab.sweep.runner.run_sweep"),
    "train": (["train", "--corpus", "{tmp}", "--out", "{tmp}/run", "--n-layer", "1", "--d-model", "8", "--n-ctx",
               "8", "--batch-size", "2", "--steps", "2"], "scalinglab.trackers.train_tracked"),
    "bench train": (["bench", "train", "--n-layer", "1", "--d-model", "8", "--n-ctx", "8", "--batch-size", "2",
                     "--steps", "2"], "scalinglab.bench.bench_train"),
    "corpus prepare": (["corpus", "prepare", "--source", "stdlib", "--out", "{tmp}/corpus"],
                       "scalinglab.data.prepare.prepare_corpus"),
    "corpus info": (["corpus", "info", "{tmp}"], "scalinglab.data.corpus.Corpus.open"),
    "datasets list": (["datasets", "list"], "scalinglab.datasets.list_datasets"),
    "datasets show": (["datasets", "show", "chinchilla_epoch_fig4"], "scalinglab.datasets.load"),
    "datasets export": (["datasets", "export", "chinchilla_epoch_fig4", "--out", "{tmp}/x.csv"],
                        "scalinglab.datasets.read_bytes"),
}


def test_every_command_is_driven_here():
    import typer

    from scalinglab.cli import app

    def leaves(group, prefix=()):
        for name, sub in group.commands.items():
            yield from (leaves(sub, (*prefix, name)) if hasattr(sub, "commands") else [" ".join((*prefix, name))])

    assert set(leaves(typer.main.get_command(app))) == set(EVERY_COMMAND)


@pytest.mark.parametrize("name", sorted(EVERY_COMMAND))
def test_internal_errors_are_one_line_and_exit_1(name, small_inputs, monkeypatch):
    import importlib

    argv, target = EVERY_COMMAND[name]
    module, _, attr = target.rpartition(".")
    try:
        owner = importlib.import_module(module)
    except ImportError:  # a class method: module.Class.attr
        module, _, cls = module.rpartition(".")
        owner = getattr(importlib.import_module(module), cls)
    monkeypatch.setattr(owner, attr, _boom)
    monkeypatch.delenv("SCALINGLAB_DEBUG", raising=False)
    args = [a.format(**small_inputs) for a in argv]
    res = run_main(*args)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 1, (res.returncode, res.stderr)
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert lines[0].startswith(f"error: scalinglab {name} failed in scalinglab."), lines[0]
    assert "KeyError" in lines[0] and "boom-from-deep-inside" in lines[0] and "--debug" in lines[0]
    # asked for, the traceback is there (the exception propagates out of main, as Python prints it)
    with pytest.raises(KeyError, match="boom-from-deep-inside"):
        run_main(*args, "--debug")


def test_debug_env_and_bad_input_exit_codes(small_inputs, monkeypatch):
    monkeypatch.setattr("scalinglab.store.db.load_runs", _boom)
    monkeypatch.setenv("SCALINGLAB_DEBUG", "1")
    with pytest.raises(KeyError):
        run_main("runs", "--db", small_inputs["db"])
    monkeypatch.setenv("SCALINGLAB_DEBUG", "0")
    assert run_main("runs", "--db", small_inputs["db"]).returncode == 1
    assert run_main("runs", "--db", small_inputs["tmp"] / "missing.db").returncode == 2  # bad input stays 2


@pytest.mark.slow
def test_internal_error_through_the_real_entry_point(small_inputs):
    """A real process: a store whose config column is not JSON makes `runs` fail deep in the store reader."""
    import sqlite3

    from tests.helpers import run_cli

    db = small_inputs["tmp"] / "broken.db"
    import shutil

    shutil.copyfile(small_inputs["db"], db)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET config = '{not json'")
    res = run_cli("runs", "--db", db)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.count("\n") == 1 and "scalinglab runs failed in scalinglab.store.db.load_runs" in res.stderr
    res = run_cli("--debug", "runs", "--db", db)
    assert res.returncode == 1 and "Traceback" in res.stderr and "JSONDecodeError" in res.stderr


# ---- sweep --dry-run and the stored result count FLOPs the same way, and say how ---------------------------------
def test_dry_run_plans_a_command_run_as_its_result_counts_it(tmp_path):
    from scalinglab.sweep.command import command_result
    from scalinglab.sweep.plan import load_plan

    plan = tmp_path / "plan.toml"
    plan.write_text('name = "p"\n[train]\ncommand = "true"\nn_ctx = 32\nbatch_size = 4\nsteps = 2\n'
                    '[[grid]]\nn_layer = [2]\nd_model = [32]\n')
    dry = json.loads(run_main("sweep", plan, "--dry-run", "--json", check=True).stdout)["runs"][0]
    assert dry["flops_convention"] == "6N"
    spec = load_plan(plan).runs[0]
    records = [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.9}, {"final": True}]  # no N, no FLOPs logged
    stored = command_result({"run_id": spec.run_id, "config": spec.config.model_dump(mode="json"), "command": "true"},
                            records, 1.0)
    assert stored["flops"] == pytest.approx(dry["flops"]) and stored["flops_convention"] == dry["flops_convention"]
    assert "6·N·tokens" in run_main("sweep", plan, "--dry-run", check=True).stdout


@pytest.mark.slow
def test_dry_run_and_stored_result_agree_on_command_run_flops(tmp_path):
    import shlex
    import sys

    (tmp_path / "trainer.py").write_text(
        "import json, os\nM = os.environ['SCALINGLAB_METRICS']\n"
        "for s in (1, 2):\n    open(M, 'a').write(json.dumps({'step': s, 'loss': 3.0 - 0.1 * s}) + '\\n')\n"
        "open(M, 'a').write(json.dumps({'final': True}) + '\\n')\n")
    plan = tmp_path / "plan.toml"
    plan.write_text(f'name = "p"\n[train]\ncommand = "{shlex.quote(sys.executable)} trainer.py"\nn_ctx = 32\n'
                    'batch_size = 4\nsteps = 2\n[[grid]]\nn_layer = [2]\nd_model = [32]\n')
    dry = json.loads(run_main("sweep", plan, "--dry-run", "--json", check=True).stdout)["runs"][0]
    assert dry["flops_convention"] == "6N" and dry["flops"] == pytest.approx(6 * dry["n_params"] * dry["tokens"])
    table = run_main("sweep", plan, "--dry-run", check=True).stdout
    assert "6·N·tokens" in table
    run_main("sweep", plan, "--db", tmp_path / "runs.db", check=True)
    stored = json.loads(run_main("runs", "--db", tmp_path / "runs.db", "--json", check=True).stdout)[0]
    assert stored["flops"] == pytest.approx(dry["flops"]) and stored["flops_convention"] == "6N"
    assert "6N (6·N·tokens" in run_main("runs", "--db", tmp_path / "runs.db", check=True).stdout


# ---- the planner says how far it extrapolates; a fit far from the paper says so ----------------------------------
def test_plan_says_how_far_it_extrapolates(tmp_path):
    fit = tmp_path / "ch.json"
    run_main("fit", "--dataset", "chinchilla_epoch_fig4", "--law", "chinchilla", "--json", fit, check=True)
    rng = json.loads(fit.read_text())["data_range"]
    from scalinglab.datasets import load

    table = load("chinchilla_epoch_fig4")
    assert rng == {"N": [table["N"].min(), table["N"].max()], "D": [table["D"].min(), table["D"].max()],
                   "C": [(6 * table["N"] * table["D"]).min(), (6 * table["N"] * table["D"]).max()]}
    near = json.loads(run_main("plan", "--fit", fit, "--compute", "1e21", "--json", check=True).stdout)["extrapolation"]
    far = json.loads(run_main("plan", "--fit", fit, "--compute", "1e27", "--json", check=True).stdout)["extrapolation"]
    assert near["projection"] is False and near["decades_C"] < 0 and near["decades_N"] == 0
    assert far["projection"] is True and far["decades_C"] == pytest.approx(np.log10(1e27 / rng["C"][1]))
    assert far["decades_N"] > 1 and far["decades_D"] > 1
    text = run_main("plan", "--fit", fit, "--compute", "1e27", check=True).stdout
    assert "extrapolation: C +4.9, N +2.7, D +1.8 decades" in text and "PROJECTION" in text
    assert "-> prediction" in run_main("plan", "--fit", fit, "--compute", "1e21", check=True).stdout


def test_report_planner_rows_say_prediction_or_projection(tmp_path):
    from scalinglab.report.content import plan_rows
    from scalinglab.report.study import Study, plan_budgets
    from tests.helpers import make_store

    db = make_store(tmp_path / "s.db", extras=False)
    run_main("fit", "--db", db, "--law", "kaplan-nd", check=True)  # saved in the store, N and D ranges with it
    run_main("fit", "--db", db, "--law", "frontier", check=True)
    from scalinglab.report.study import fits_from_store

    study = Study.from_db(db, fits=fits_from_store(db))
    largest = study.done["pf_days"].max()
    rows = plan_budgets(study, [largest * 5, largest * 1e4])
    assert [r["kind"] for r in rows] == ["prediction", "projection"]
    assert rows[1]["extrapolation"]["decades_C"] == pytest.approx(4)
    cols, table = plan_rows(rows)
    assert {"kind", "reach"} <= set(cols) and table[1][cols.index("kind")] == "projection"


def test_exponent_outside_its_interval_of_the_papers_says_so():
    from scalinglab.report.content import fit_rows, paper_gap_lines

    fits = {"kaplan-n": {"law": "kaplan-n", "params": {"alpha_N": 0.039, "N_c": 1e9},
                         "ci95": {"alpha_N": [0.030, 0.048], "N_c": [5e8, 2e9]}},
            "kaplan-d": {"law": "kaplan-d", "params": {"alpha_D": 0.09, "D_c": 1e13},
                         "ci95": {"alpha_D": [0.08, 0.11]}}}
    rows = {(r["param"]): r for r in fit_rows(fits)}
    assert rows["alpha_N"]["paper"] == "0.076 (outside the CI)" and rows["alpha_D"]["paper"] == "0.095"
    assert rows["N_c"]["paper"] == "8.800e+13"  # scales are not exponents: not compared
    (line,) = paper_gap_lines(fits)
    assert "alpha_N = 0.039" in line and "0.076" in line and "more than its interval" in line


def test_report_never_cuts_a_planner_note(tmp_path):
    from scalinglab.report.study import Study, plan_budgets
    from tests.helpers import make_store

    db = make_store(tmp_path / "s.db", extras=False)
    fits = {"kaplan-n": {"law": "kaplan-n", "params": {"alpha_N": 0.076, "N_c": 8.8e13}}}
    rows = plan_budgets(Study.from_db(db, fits=fits), [1.0])
    note = rows[0].get("note") or ""
    assert note.startswith("planner:") and "frontier" in note and not note.rstrip().endswith(",")


# ---- the main job needs only the base dependencies ----------------------------------------------------------------
# Extras and test tools (pyproject: ray, track, hf, dev, docs): none may be imported on the main job's path.
NOT_BASE = ("ray", "pytest", "_pytest", "xdist", "hypothesis", "playwright", "mlflow", "wandb", "tensorboard",
            "tbparse", "datasets", "sklearn", "mkdocs", "ruff")
BLOCKER = f"""
import sys

class _WithoutExtras:
    # wraps each import finder: the extras and test tools are not found, as in an environment without them
    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {NOT_BASE!r}:
            return None
        find = getattr(self.finder, "find_spec", None)
        return None if find is None else find(name, path, target)

    def __getattr__(self, attr):
        return getattr(self.finder, attr)

sys.meta_path[:] = [_WithoutExtras(f) for f in sys.meta_path]
"""


def _base_closure() -> set[str]:
    """The distributions a plain `pip install .` brings: pyproject's `dependencies` and what they require."""
    import re
    from importlib.metadata import PackageNotFoundError, requires

    import tomllib

    def name(req: str) -> str:
        return re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0].lower().replace("_", "-")

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    allowed, todo = set(), [name(r) for r in project["dependencies"]]
    while todo:
        dist = todo.pop()
        if dist in allowed:
            continue
        allowed.add(dist)
        try:
            todo += [name(r) for r in (requires(dist) or []) if "extra ==" not in r]
        except PackageNotFoundError:  # a requirement for other Pythons or platforms, not installed here
            continue
    return allowed


def _not_base_modules() -> set[str]:
    """Top-level modules of every installed distribution outside the base closure (the extras, test tools, and
    whatever else this environment happens to hold), plus NOT_BASE."""
    from importlib.metadata import packages_distributions

    allowed = _base_closure()
    return set(NOT_BASE) | {m for m, dists in packages_distributions().items()
                            if m != "scalinglab" and not {d.lower().replace("_", "-") for d in dists} & allowed}


def _base_only_env(tmp_path: Path) -> dict[str, str]:
    """PYTHONPATH with a sitecustomize that makes every module outside the base dependencies unimportable, in this
    process and every child process."""
    import os

    site = tmp_path / "base_only"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER.replace(repr(NOT_BASE), repr(sorted(_not_base_modules()))))
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def test_requires_python_admits_only_pythons_with_the_stdlib_it_uses():
    import tomllib

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    uses_tomllib = any("import tomllib" in p.read_text() for p in (Path(__file__).parents[1] / "src").rglob("*.py"))
    assert not uses_tomllib or project["requires-python"].replace(" ", "") in (">=3.11", ">=3.12"), \
        f"src imports tomllib (Python 3.11+) but requires-python is {project['requires-python']}"


@pytest.mark.slow  # a fresh interpreter imports torch, matplotlib, pandas, scipy
def test_main_job_modules_import_with_base_dependencies_only(tmp_path):
    import subprocess
    import sys

    code = ("import scalinglab.cli.app, scalinglab.reproduce, scalinglab.sweep.runner, scalinglab.sweep.executors, "
            "scalinglab.train.loop, scalinglab.report.html, scalinglab.report.figures, scalinglab.laws, "
            "scalinglab.laws.analyses.planning, scalinglab.data.prepare, scalinglab.api\n"
            "import importlib.util as u\n"
            "assert u.find_spec('ray') is None and u.find_spec('pytest') is None, 'the extras are importable'\n")
    import os

    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, **_base_only_env(tmp_path)},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_reproduce_runs_with_base_dependencies_only(tmp_path):
    """`reproduce` end to end (a micro plan of the tiny preset) with every extra and test tool unimportable."""
    from tests.helpers import run_cli

    plan = tmp_path / "micro.toml"
    plan.write_text('name = "micro"\ncorpus = "corpus"\n[train]\nn_ctx = 16\nbatch_size = 16\nsteps = 12\n'
                    'eval_tokens = 256\ncheckpoint_every_steps = 0\n[[grid]]\nn_layer = [1]\nd_model = [8, 16, 24, 32]\n')
    res = run_cli("reproduce", "--preset", "tiny", "--plan", plan, "--out", tmp_path / "out", "--max-tokens", "30000",
                  "--vocab-size", "300", "--workers", "2", "--figures", "1,23", "--json", env=_base_only_env(tmp_path))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["sweep"]["done"] == 4 and out["sweep"]["failed"] == 0
    assert (tmp_path / "out" / "report" / "index.html").is_file()



def test_import_keeps_a_word_for_the_lr_and_leaves_the_lr_unknown(tmp_path):
    from scalinglab.importers import import_runs
    from scalinglab.store.db import load_runs

    rows = [{"run": name, "step": s, "tokens": s * 1000, "N": n, "loss": 3 + 1 / s + (1e7 / n) ** 0.1}
            for name, n in (("a", 1e5), ("b", 1e6)) for s in (10, 100, 1000)]
    pd.DataFrame(rows).to_csv(tmp_path / "c.csv", index=False)
    pd.DataFrame([{"run": "a", "lr": "auto"}, {"run": "b", "lr": 3e-4}]).to_csv(tmp_path / "cfg.csv", index=False)
    import_runs(tmp_path / "c.csv", tmp_path / "r.db", fmt="csv", config_table=tmp_path / "cfg.csv")
    runs = load_runs(tmp_path / "r.db").set_index("name")
    assert pd.isna(runs.loc["a", "lr"]) and runs.loc["b", "lr"] == pytest.approx(3e-4)
    assert json.loads(runs.loc["a", "config"])["lr"] == "auto"


def test_a_command_runs_recipe_is_known_only_where_its_command_passes_it(tmp_path):
    from scalinglab.store.db import load_runs, record_result

    rng = np.random.default_rng(2)
    for d_model, template in ((16, "python t.py --d {d_model}"), (32, "python t.py --d {d_model} --s {schedule}")):
        r = _command_result(rng, 1, d_model, lr_logged=True)
        r["command"] = template
        record_result(tmp_path / "r.db", r, plan="p")
    runs = load_runs(tmp_path / "r.db").set_index("d_model")
    assert pd.isna(runs.loc[16, "schedule"]) and pd.isna(runs.loc[16, "arch"])  # scalinglab's defaults, never passed
    assert runs.loc[32, "schedule"] == "cosine" and runs.loc[32, "n_layer"] == 1
