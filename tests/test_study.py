"""The Study: one selection of runs for `fit --db`, reproduce, the report and the API, and the same parameters
from each of them on one store."""

from __future__ import annotations

import json

import pytest

import scalinglab as sl
from tests.helpers import assert_clean_error, make_store, run_main


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Untagged runs of several families (main, batch scans, D subsets, schedules, LSTMs, shapes) and a diverged one."""
    return make_store(tmp_path_factory.mktemp("study") / "runs.db")


def test_cli_api_and_reproduce_fit_the_same_runs_to_the_last_digit(store, tmp_path):
    from scalinglab.reproduce import LawJob, fit_laws

    cli = json.loads(run_main("fit", "--db", store, "--law", "kaplan-n", "--bootstrap", "40", "--holdout", "1",
                              "--json", "-", check=True).stdout)
    api = sl.Study.from_db(store).fit("kaplan-n", bootstrap=40, holdout=1)
    fits, skipped = fit_laws(store, (LawJob("kaplan-n", "main", bootstrap=40, holdout=1),), lambda _: None)
    assert not skipped
    assert cli["params"] == api.params_ == fits["kaplan-n"]["params"]
    assert cli["ci95"] == api.to_dict()["ci95"] == fits["kaplan-n"]["ci95"]
    # the main family only (6 of the 20 finished runs), said in the JSON and on the fitted law
    assert cli["n_points"] == 6 and cli["selection"]["family"] == ["main"] and cli["selection"]["n_runs"] == 6
    assert api.selection_["runs"] == cli["selection"]["runs"] == api.to_dict()["selection"]["runs"]
    everything = json.loads(run_main("fit", "--db", store, "--law", "kaplan-n", "--family", "all", "--json", "-",
                                     check=True).stdout)
    assert everything["n_points"] > 6 and everything["params"] != cli["params"]


def test_fit_prints_which_runs_it_took(store):
    out = run_main("fit", "--db", store, "--law", "kaplan-n", check=True).stdout
    line = "runs: 6 finished runs of family main (the law's default; --family NAME|all or Study.select for others)"
    assert line in out
    assert sl.Study.from_db(store).fit("kaplan-n").summary() == out.rstrip("\n")  # the API's text is the CLI's


def test_untagged_runs_have_their_inferred_family_never_none(store):
    from scalinglab.laws.framework.data import runs_from_store

    fam = set(runs_from_store(store)["family"])
    assert "None" not in fam and "nan" not in fam and {"main", "batch-scan", "d-subsets", "lstm"} <= fam


def test_select_where_and_the_laws_own_families(store):
    study = sl.Study.from_db(store)
    two = study.select("main", n_layer=[1, 2])
    assert two.selection["n_runs"] == 4 and set(two.runs["n_layer"]) == {1, 2}
    assert len(study.select(None, arch="lstm").runs) == 2
    assert len(study.select("d-subsets", data_tokens={"min": 5e4}).runs) == 4
    dc = study.fit("data-constrained")  # its own families: main and the D subsets
    assert dc.selection_["family"] == ["main", "d-subsets"]


def test_a_selection_that_matches_nothing_is_a_user_error(store, tmp_path):
    study = sl.Study.from_db(store)
    with pytest.raises(sl.UserError, match="no finished run matches family nope"):
        study.select("nope")
    with pytest.raises(sl.UserError, match="no such column"):
        study.select("main", colour="red")
    out = tmp_path / "fit.json"
    out.write_text("keep")
    assert_clean_error(run_main("fit", "--db", store, "--law", "kaplan-n", "--family", "nope", "--json", out),
                       "no finished run matches family nope")
    assert out.read_text() == "keep"


def test_a_query_for_another_family_says_how_to_select_it(store):
    proc = run_main("fit", "--db", store, "--law", "kaplan-n", "--query", "family == 'lstm'")
    assert_clean_error(proc, "of the runs of family main (the law's default); give --family NAME or --family all")
    d = json.loads(run_main("fit", "--db", store, "--law", "kaplan-n", "--family", "main,shape", "--query",
                            "family == 'shape' or N > 1e5", "--json", "-", check=True).stdout)
    assert d["selection"]["family"] == ["main", "shape"] and d["n_points"] == 2 + 2  # 2 shape runs, 2 large main


def test_approach_two_from_a_store_through_the_study_is_the_commands(store):
    """isoflop reads one row per run with its planned budget; the Study and `fit --db` group by it alike (this
    store has no IsoFLOP plan, so both say the budgets have too few sizes)."""
    with pytest.raises(sl.UserError) as api:
        sl.Study.from_db(store).fit("isoflop")
    proc = run_main("fit", "--db", store, "--law", "isoflop")
    assert_clean_error(proc, "budgets", "fewer than 3")
    assert str(api.value) in proc.stderr


def test_frames_without_the_columns_a_law_reads_are_a_user_error():
    import pandas as pd

    study = sl.Study.from_frame(pd.DataFrame({"run_id": ["a", "b", "c"], "status": "done", "val_loss": [3.0, 2.9, 2.8]}))
    with pytest.raises(sl.UserError, match="lack the run column 'n_params'"):
        study.fit("kaplan-n")
    with pytest.raises(sl.UserError, match="kaplan-c reads learning curves; this study has none"):
        study.fit("kaplan-c")
