"""Sweep plans: expansion, study shapes (n_params, compute), run ids, and errors naming key and line."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import textwrap

import pytest

from scalinglab.config import ModelConfig
from scalinglab.errors import UserError
from scalinglab.model.counting import flops_per_token_train, n_params_closed_form
from scalinglab.sweep.plan import load_plan, solve_shape
from tests.helpers import assert_clean_error, run_cli, run_main


def _plan(tmp_path, body: str, corpus=None, name="p.toml"):
    head = f'name = "t"\ncorpus = "{corpus}"\n' if corpus else 'name = "t"\n'
    p = tmp_path / name
    p.write_text(head + textwrap.dedent(body))
    return p


def test_grid_tables_add_up_and_runs_are_full_configs(synthetic_corpus, tmp_path):
    p = _plan(tmp_path, """
        [train]
        n_ctx = 32
        batch_size = 4
        steps = 20
        [[grid]]
        n_layer = [1, 2]
        d_model = [32, 64]
        seed = [0, 1]
        [[grid]]
        n_layer = 1
        d_model = 32
        batch_size = [2, 8]
        data_tokens = [4096, 8192]
        [[run]]
        n_layer = 3
        d_model = 48
        lr = 1e-3
        """, synthetic_corpus)
    plan = load_plan(p)
    assert len(plan.runs) == 8 + 4 + 1
    assert len({r.run_id for r in plan.runs}) == len(plan.runs)
    for r in plan.runs:
        c = r.config
        assert c.corpus == str(synthetic_corpus.resolve()) and c.n_ctx == 32 and c.total_steps == 20
        assert c.d_ff == 4 * c.d_model and c.d_attn == c.d_model and c.n_heads >= 1
    assert {(r.config.batch_size, r.config.data_tokens) for r in plan.runs if r.origin == "grid 2"} == {
        (2, 4096), (2, 8192), (8, 4096), (8, 8192)}
    last = plan.runs[-1]
    assert (last.origin, last.config.n_layer, last.config.lr) == ("run 1", 3, 1e-3)
    # ids are stable across loads, and editing one run changes only its id
    assert [r.run_id for r in load_plan(p).runs] == [r.run_id for r in plan.runs]
    p.write_text(p.read_text().replace("lr = 1e-3", "lr = 2e-3"))
    edited = load_plan(p)
    assert [r.run_id for r in edited.runs][:-1] == [r.run_id for r in plan.runs][:-1]
    assert edited.runs[-1].run_id != plan.runs[-1].run_id


def test_reading_a_plan_does_not_import_torch(synthetic_corpus, tmp_path):
    # a plan is read (sweep, --dry-run without the estimate, a bad plan's error line) in well under a second;
    # torch costs more than that to import, so only running a step may import it
    p = _plan(tmp_path, "[train]\nsteps = 100\n[[grid]]\nn_layer = [1, 2]\nd_model = 32\n[[run]]\nn_layer = 1\nd_model = 16\nschedule = "
              '"wsd"\ncooldowns = [0.5]\n', synthetic_corpus)
    code = (f"import sys; from scalinglab.sweep.plan import load_plan; p = load_plan({str(p)!r}); "
            "print(len(p.runs), 'torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["4", "False"]  # 2 grid runs, the WSD trunk and its branch


def test_corpus_is_relative_to_the_plan_and_moving_both_keeps_ids(synthetic_corpus, tmp_path):
    home = tmp_path / "study"
    shutil.copytree(synthetic_corpus, home / "data" / "c")
    body = "[[run]]\nn_layer = 1\nd_model = 32\nn_ctx = 32\nsteps = 5\n"
    p = _plan(home, body, "data/c")
    first = load_plan(p)
    assert first.runs[0].config.corpus == str((home / "data" / "c").resolve())
    moved = tmp_path / "moved"
    shutil.move(home, moved)
    again = load_plan(moved / "p.toml")
    assert again.runs[0].config.corpus == str((moved / "data" / "c").resolve())
    assert again.runs[0].run_id == first.runs[0].run_id  # the corpus is hashed by content, not path


def test_duplicate_grid_points_are_merged(synthetic_corpus, tmp_path):
    p = _plan(tmp_path, """
        [train]
        n_ctx = 32
        steps = 5
        [[grid]]
        n_layer = [1, 2]
        d_model = [32]
        [[run]]
        n_layer = 1
        d_model = 32
        d_ff = 128
        """, synthetic_corpus)
    plan = load_plan(p)
    assert len(plan.runs) == 2 and plan.duplicates == 1


@pytest.mark.parametrize("target", [768, 3e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1.5e9])
def test_solve_shape_hits_n_params_at_the_aspect_ratio(target):
    n_layer, d_model = solve_shape(target, 32)
    n = n_params_closed_form(ModelConfig(n_layer=n_layer, d_model=d_model, n_ctx=128, vocab_size=2))
    if target >= 1e5:
        assert abs(math.log(n / target)) < math.log(1.1), (n_layer, d_model, n)
        assert 32 / math.sqrt(2) <= d_model / n_layer <= 32 * math.sqrt(2)
    else:  # the smallest shapes are coarse (one layer, width a multiple of 8): N first, aspect second
        assert abs(math.log(n / target)) < math.log(1.6), (n_layer, d_model, n)
    assert d_model % 8 == 0 and (d_model <= 64 or d_model % 16 == 0) and (d_model <= 256 or d_model % 64 == 0)


def test_solve_shape_respects_a_fixed_n_layer_and_aspect():
    n_layer, d_model = solve_shape(1e6, 32, {"n_layer": 2})
    assert n_layer == 2 and abs(12 * 2 * d_model**2 / 1e6 - 1) < 0.2
    wide = solve_shape(1e7, 128)
    deep = solve_shape(1e7, 8)
    assert wide[1] / wide[0] > deep[1] / deep[0]


def test_isoflop_sets_solve_steps_from_compute(synthetic_corpus, tmp_path):
    p = _plan(tmp_path, """
        [train]
        n_ctx = 32
        batch_size = 8
        steps = 999
        [[grid]]
        n_params = [1e4, 1e5]
        compute = [1e11, 3e11]
        aspect_ratio = 16
        """, synthetic_corpus)
    plan = load_plan(p)
    assert len(plan.runs) == 4
    for r in plan.runs:
        c = r.config
        per_step = flops_per_token_train(c.model()) * c.tokens_per_step
        assert abs(c.total_steps * per_step - r.study["compute"]) <= per_step / 2 + 1e-6
        assert r.study["n_params"] in (1e4, 1e5) and r.study["aspect_ratio"] == 16
        s = r.summary(256)
        assert s["flops"] == pytest.approx(r.study["compute"], rel=0.02)
    sizes = {r.study["n_params"]: r.config.n_layer * 1000 + r.config.d_model for r in plan.runs}
    assert len(set(sizes.values())) == 2  # two shapes, each at two budgets


BAD_PLANS = [
    ("[[grid]]\nn_layer = [1]\nd_modle = [32]\n", ["line 5", "[[grid]] #1", "d_modle", "did you mean 'd_model'"]),
    ("[[run]]\nn_layer = 0\nd_model = 32\nsteps = 5\n", ["line 4", "[[run]] #1", "n_layer", "greater than 0"]),
    ("[train]\nbatch_size = 'x'\n[[run]]\nn_layer = 1\nd_model = 32\nsteps = 5\n", ["line 4", "[train]", "batch_size"]),
    ("[[run]]\nn_layer = [1, 2]\nd_model = 32\n", ["[[run]] #1", "n_layer", "lists belong in a [[grid]]"]),
    ("[[run]]\nn_layer = 1\nd_model = 32\n", ["[[run]] #1", "exactly one of steps or tokens"]),
    ("[[grid]]\nn_layer = []\nd_model = [32]\nsteps = 5\n", ["n_layer", "empty list"]),
    ("[[grid]]\nn_params = [-5]\nsteps = 5\n", ["n_params", "positive"]),
    ("[[run]]\naspect_ratio = 3\nn_layer = 1\nd_model = 8\nsteps = 3\n", ["aspect_ratio", "needs n_params"]),
    ("[[run]]\nn_params = 1e5\ncompute = 1e9\nsteps = 3\n", ["compute", "not both"]),
    ("extra = 1\n[[run]]\nn_layer = 1\n", ["line 3", "extra", "unknown top-level key"]),
    ("[train]\nn_ctx = 32\n", ["no [[grid]] or [[run]]"]),
    ("[[run]\nn_layer = 1\n", ["not valid TOML", "line 3"]),
]


@pytest.mark.parametrize("body,needles", BAD_PLANS)
def test_malformed_plans_name_the_problem(synthetic_corpus, tmp_path, body, needles):
    p = _plan(tmp_path, body, synthetic_corpus)
    with pytest.raises(UserError) as e:
        load_plan(p)
    for n in needles:
        assert n in str(e.value), (n, str(e.value))


def test_plan_without_name_or_corpus(tmp_path, synthetic_corpus):
    p = tmp_path / "p.toml"
    p.write_text(f'corpus = "{synthetic_corpus}"\n[[run]]\nn_layer = 1\n')
    with pytest.raises(UserError, match="missing top-level key 'name'"):
        load_plan(p)
    p.write_text('name = "x"\n[[run]]\nn_layer = 1\nd_model = 32\nsteps = 3\n')
    with pytest.raises(UserError, match="no corpus"):
        load_plan(p)
    p.write_text('name = "x"\ncorpus = "nowhere"\n[[run]]\nn_layer = 1\nd_model = 32\nsteps = 3\n')
    with pytest.raises(UserError, match="corpus folder not found"):
        load_plan(p)
    with pytest.raises(UserError, match="plan file not found"):
        load_plan(tmp_path / "missing.toml")


def test_cli_malformed_plan_exits_2_and_creates_nothing(synthetic_corpus, tmp_path):
    p = _plan(tmp_path, "[[grid]]\nn_layer = [1]\nd_model = [32]\nstep = 5\n", synthetic_corpus)
    proc = run_main("sweep", p, "--db", tmp_path / "out" / "r.db")
    assert_clean_error(proc, "p.toml line 6", "step", "did you mean 'steps'")
    assert not (tmp_path / "out").exists()
    proc = run_main("sweep", p)  # no --db and no --dry-run
    assert_clean_error(proc, "--db")
    proc = run_main("sweep", tmp_path / "nope.toml", "--dry-run")
    assert_clean_error(proc, "plan file not found")
    proc = run_main("sweep", p, "--db", tmp_path / "r.db", "--executor", "slurm")
    assert_clean_error(proc, "--executor", "slurm")


@pytest.mark.slow
def test_cli_dry_run_lists_runs_without_creating_the_db(synthetic_corpus, tmp_path):
    p = _plan(tmp_path, """
        [train]
        n_ctx = 32
        batch_size = 4
        steps = 30
        [[grid]]
        n_layer = [1, 2]
        d_model = [32]
        [[grid]]
        n_params = [3e4]
        compute = [1e9]
        """, synthetic_corpus)
    db = tmp_path / "out" / "r.db"
    proc = run_cli("sweep", p, "--db", db, "--dry-run", "--json", check=True)
    out = json.loads(proc.stdout)
    assert not db.exists() and not db.parent.exists()
    assert out["n_runs"] == 3 and out["n_todo"] == 3
    plan = load_plan(p)
    assert [r["run_id"] for r in out["runs"]] == [r.run_id for r in plan.runs]
    for r in out["runs"]:
        assert r["status"] == "new" and r["n_params"] > 0 and r["tokens"] == r["steps"] * 4 * 32
        assert r["flops"] > 0 and r["est_wall_s"] > 0
    assert out["runs"][2]["target_compute"] == 1e9
    # the human table names every run
    proc = run_main("sweep", p, "--dry-run", "--no-estimate", check=True)
    for r in plan.runs:
        assert r.run_id in proc.stdout
