"""`import scalinglab as sl`: cheap import, every lazy name, predict/plan/Study, and the example script in a fresh
interpreter that must leave threads, TF32 flags and the matplotlib backend as they were."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import scalinglab as sl
from tests.helpers import make_store

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "numpy", "pandas", "scipy", "matplotlib", "pydantic", "typer")


def _fresh(code: str, timeout: float = 600) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_import_is_cheap_and_names_load_on_first_use():
    code = ("import sys, scalinglab as sl\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
            "sl.fit_law\n"
            "print('numpy' in sys.modules, 'torch' in sys.modules)")
    lines = _fresh(code).splitlines()
    assert lines[0] == "[]"  # nothing heavy until a name is used
    assert lines[1] == "True False"  # fitting a law needs numpy, never torch


def test_every_public_name_resolves():
    for name in sl.__all__:
        assert getattr(sl, name) is not None, name
    assert set(sl.__all__) <= set(dir(sl))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        sl.nope  # noqa: B018
    assert sl.Plan.__name__ == "Plan" and sl.datasets.names()


def _kaplan_n(n=12, seed=0) -> pd.DataFrame:
    N = np.geomspace(1e6, 1e9, n)
    L = (8.8e13 / N) ** 0.076 * np.exp(0.002 * np.random.default_rng(seed).standard_normal(n))
    return pd.DataFrame({"N": N, "L": L})


def test_predict_from_a_law_a_dict_or_a_file(tmp_path):
    law = sl.fit_law("kaplan-n", _kaplan_n(), bootstrap=30)
    p = sl.predict(law, N=[1e10, 1e11])
    assert isinstance(p, sl.Prediction) and p.law == "kaplan-n" and p.target == "L"
    np.testing.assert_allclose(p.value, (law.params_["N_c"] / np.array([1e10, 1e11])) ** law.params_["alpha_N"])
    assert p.ci95.shape == (2, 2) and (p.ci95[:, 0] <= p.value).all() and (p.value <= p.ci95[:, 1]).all()
    f = tmp_path / "fit.json"
    f.write_text(json.dumps(law.to_dict()))
    np.testing.assert_allclose(sl.predict(f, N=1e10).value, p.value[0])
    np.testing.assert_allclose(sl.predict(law.to_dict(), N=1e10).value, p.value[0])
    with pytest.raises(sl.UserError, match="fitted law"):
        sl.predict({"params": {}}, N=1.0)


def test_plan_allocation_on_a_chinchilla_fit_of_the_packaged_data():
    law = sl.fit_law("chinchilla", sl.datasets.load("chinchilla_epoch_fig4").query("in_epoch_fit"))
    plan = sl.plan_allocation(5.8e23, fits={"chinchilla": law})
    assert plan["mode"] == "fit" and plan["N_opt"] * plan["D"] * 6 == pytest.approx(5.8e23, rel=1e-6)


def test_study_from_a_store_and_from_an_import(tmp_path):
    db = make_store(tmp_path / "s.db", extras=False)
    study = sl.Study.from_db(db)
    assert len(study.runs) == 7 and len(study.curves) > 0  # 6 done + 1 diverged
    from scalinglab.laws.framework.data import frame_from_store

    want = sl.fit_law("kaplan-n", frame_from_store(db, "kaplan-n")).params_
    assert study.fit("kaplan-n").params_ == pytest.approx(want)
    # the store's curves as a CSV long table, imported into a temporary store that lives with the Study
    from scalinglab.store.db import load_evals, load_runs

    runs = load_runs(db)
    runs = runs[runs["status"] == "done"]
    ev = load_evals(db).rename(columns={"run_id": "run", "val_loss": "loss"})
    ev = ev.merge(runs[["run_id", "n_params", "batch_size", "n_ctx"]].rename(columns={"run_id": "run", "n_params": "N"}))
    ev[["run", "step", "tokens", "flops", "loss", "N", "batch_size", "n_ctx"]].to_csv(tmp_path / "c.csv", index=False)
    imported = sl.Study.from_import(tmp_path / "c.csv")
    assert len(imported.runs) == 6 and Path(imported.source).is_file()
    assert imported.fit("kaplan-n").params_ == pytest.approx(want, rel=1e-6)
    # frames shaped like the store's tables give the same fit as the store
    assert sl.Study.from_frame(load_runs(db), load_evals(db)).fit("kaplan-n").params_ == want


def test_plan_from_a_dict_is_the_plan_file(synthetic_corpus, tmp_path):
    d = {"name": "p", "corpus": str(synthetic_corpus), "train": {"n_ctx": 32, "steps": 10},
         "grid": [{"n_layer": 1, "d_model": [8, 16]}], "run": [{"n_layer": 2, "d_model": 8, "lr": 1e-3}]}
    toml = (f'name = "p"\ncorpus = "{synthetic_corpus}"\n[train]\nn_ctx = 32\nsteps = 10\n'
            '[[grid]]\nn_layer = 1\nd_model = [8, 16]\n[[run]]\nn_layer = 2\nd_model = 8\nlr = 1e-3\n')
    (tmp_path / "p.toml").write_text(toml)
    from_file = sl.load_plan(tmp_path / "p.toml")
    from_dict = sl.Plan.from_dict(d)
    assert [r.run_id for r in from_dict.runs] == [r.run_id for r in from_file.runs] and len(from_dict.runs) == 3
    assert [r.run_id for r in sl.load_plan(d).runs] == [r.run_id for r in from_file.runs]
    rel = sl.Plan.from_dict({**d, "corpus": synthetic_corpus.name}, base_dir=synthetic_corpus.parent)
    assert rel.corpus == synthetic_corpus.resolve()
    with pytest.raises(sl.UserError, match="d_model"):
        sl.Plan.from_dict({**d, "grid": [{"n_layer": 1, "d_model": []}]})


def test_bad_input_is_a_user_error(tmp_path):
    with pytest.raises(sl.UserError, match="out_dir"):
        sl.run_training(corpus="x", n_layer=1, d_model=8, steps=1)
    with pytest.raises(sl.UserError, match="not a finished run folder"):
        sl.load_model(tmp_path)
    with pytest.raises(sl.UserError, match="plan file not found"):
        sl.load_plan(tmp_path / "missing.toml")


# The example, run as a user's fresh kernel would: process settings recorded before and after it.
EXAMPLE = """
import json, runpy, sys
import matplotlib, torch
matplotlib.use("svg")          # stands in for a notebook's inline backend: anything but Agg
torch.set_num_threads(1)       # a setting the caller chose; training must not leave it changed
def state():
    return {"threads": torch.get_num_threads(), "backend": matplotlib.get_backend(),
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32,
            "matmul_precision": torch.get_float32_matmul_precision()}
before = state()
sys.argv = ["notebook_api.py", sys.argv[1]]
ns = runpy.run_path("examples/notebook_api.py")
out = ns["main"]([sys.argv[1]])
print(json.dumps({"before": before, "after": state(), "out": out}, default=str))
"""


@pytest.mark.slow
def test_example_script_in_a_fresh_interpreter_leaves_process_state_alone(tmp_path):
    proc = subprocess.run([sys.executable, "-c", EXAMPLE, str(tmp_path)], capture_output=True, text=True,
                          timeout=1200, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    out = res["out"]
    assert 0.3 < out["params"]["alpha"] < 0.4 and 1.8 < out["prediction"] < 2.2
    assert out["runs"] == 3 and np.isfinite(out["alpha_N"]) and out["figures"] >= 1
    assert Path(out["report"]).is_file() and out["one_run_loss"] < np.log(512) + 0.5
    before, after = res["before"], res["after"]
    assert {k: v for k, v in after.items() if k != "threads"} == {k: v for k, v in before.items() if k != "threads"}
    from scalinglab.train import runtime

    if after["threads"] != before["threads"] and not hasattr(runtime, "session"):
        pytest.xfail("run_training sets the thread count and does not restore it yet (train.runtime has no "
                     "session; issue #16, the trainer's part)")
    assert after["threads"] == before["threads"]
