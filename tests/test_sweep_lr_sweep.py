"""Per-size LR tuning in plans (`lr = "sweep"`): expansion, bad input, the choice of the best LR and its family."""

from __future__ import annotations

import json
import sqlite3

import pytest

from scalinglab.model.counting import count_model
from scalinglab.store.db import load_runs
from scalinglab.sweep.lr_sweep import MULTIPLIERS, choose
from scalinglab.sweep.plan import load_plan
from scalinglab.train.schedule import lr_auto
from tests.helpers import assert_clean_error, run_main

BASE = """
[train]
n_ctx = 32
batch_size = 4
n_layer = 1
eval_tokens = 2048
steps = 12
"""


def _plan(tmp_path, corpus, body: str):
    p = tmp_path / "p.toml"
    p.write_text(f'name = "lr"\ncorpus = "{corpus}"\n{BASE}{body}')
    return p


def test_lr_sweep_expands_per_size(synthetic_corpus, tmp_path):
    plan = load_plan(_plan(tmp_path, synthetic_corpus, '[[grid]]\nd_model = [32, 48]\nlr = "sweep"\nfamily = "main"\n'))
    assert len(plan.runs) == 2 * len(MULTIPLIERS)
    for d in (32, 48):
        runs = [r for r in plan.runs if r.config.d_model == d]
        n = count_model(runs[0].config.model()).n_params
        assert [r.config.lr for r in runs] == pytest.approx([m * lr_auto(n) for m in MULTIPLIERS])
        assert len({r.lr_group for r in runs}) == 1 and all(r.family == "lr-sweep" and r.lr_family == "main"
                                                            for r in runs)
    explicit = load_plan(_plan(tmp_path, synthetic_corpus, '[[run]]\nd_model = 32\nlr = "sweep"\nlr_grid = [1e-3, 4e-3]\n'))
    assert [r.config.lr for r in explicit.runs] == [1e-3, 4e-3] and explicit.runs[0].lr_family == "main"


@pytest.mark.parametrize("body,needles", [
    ('lr = "sweep"\nlr_grid = [1e-3]', ("lr_grid", "at least two")),
    ('lr = "sweep"\nlr_grid = [1e-3, 1e-3]', ("lr_grid", "two different")),
    ('lr = "sweep"\nlr_grid = [1e-3, -1]', ("lr_grid", "positive")),
    ('lr_grid = [1e-3, 2e-3]', ("lr_grid", 'needs lr = "sweep"')),
    ('lr = "sweep"\nschedule = "wsd"\nsteps = 100\ncooldowns = [0.5]', ("cooldowns", "separate tables")),
    ('lr = "fast"', ("lr",)),
])
def test_bad_lr_sweep_exits_2_and_writes_nothing(synthetic_corpus, tmp_path, body, needles):
    p = _plan(tmp_path, synthetic_corpus, f"[[run]]\nd_model = 32\n{body}\n")
    db = tmp_path / "out" / "r.db"
    assert_clean_error(run_main("sweep", p, "--db", db), *needles)
    assert not db.parent.exists()


def test_choose_waits_for_the_whole_group_and_skips_diverged_runs():
    rows = [{"run_id": "a", "lr": 1e-3, "status": "done", "val_loss": 3.0},
            {"run_id": "b", "lr": 2e-3, "status": "done", "val_loss": 2.5},
            {"run_id": "c", "lr": 4e-3, "status": "diverged", "val_loss": float("nan")}]
    pick = choose(rows)
    assert pick["best_run_id"] == "b" and pick["best_lr"] == 2e-3 and not pick["at_edge"]
    assert choose([*rows[:2], {"run_id": "c", "lr": 4e-3, "status": "running", "val_loss": None}]) is None
    assert choose(rows[:2])["at_edge"]  # 2e-3 is the largest LR left


@pytest.mark.slow
def test_sweep_tags_the_best_lr_per_size_main(synthetic_corpus, tmp_path):
    p = _plan(tmp_path, synthetic_corpus, '[[grid]]\nd_model = [32]\nlr = "sweep"\nlr_grid = [1e-4, 1e-2]\n')
    db = tmp_path / "out" / "r.db"
    summary = json.loads(run_main("sweep", p, "--db", db, "--threads", "1", "--json", check=True).stdout)
    runs = load_runs(db)
    best = runs.loc[runs["val_loss"].idxmin()]
    assert best["family"] == "main" and set(runs["family"]) == {"main", "lr-sweep"}
    (choice,) = summary["lr_choices"]
    assert choice["best_run_id"] == best["run_id"] and choice["best_lr"] == best["lr"]
    assert sorted(choice["lrs"]) == [1e-4, 1e-2] and choice["at_edge"]
    conn = sqlite3.connect(db)
    (detail,) = conn.execute("SELECT detail FROM events WHERE status = 'lr-best'").fetchone()
    conn.close()
    assert json.loads(detail)["best_run_id"] == best["run_id"]
    # a rerun trains nothing and keeps the choice
    again = json.loads(run_main("sweep", p, "--db", db, "--threads", "1", "--json", check=True).stdout)
    assert again["ran"] == 0 and again["lr_choices"][0]["best_run_id"] == best["run_id"]
    assert load_runs(db).set_index("run_id").loc[best["run_id"], "family"] == "main"
