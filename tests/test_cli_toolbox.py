"""The fitting toolbox from the command line: fit --law isoflop|frontier|A,B, --fix, predict, plan on those fits,
the data-constrained law from a store, and the one-line errors (exit 2, nothing written)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.helpers import assert_clean_error, make_store, run_main


@pytest.fixture(scope="module")
def fits(tmp_path_factory):
    d = tmp_path_factory.mktemp("toolbox")
    run_main("fit", "--dataset", "llama3_fig2_isoflops", "--law", "isoflop", "--bootstrap", "100",
             "--json", d / "iso.json", check=True)
    run_main("fit", "--dataset", "chinchilla_epoch_fig4", "--query", "in_epoch_fit", "--law", "chinchilla",
             "--bootstrap", "100", "--json", d / "ch.json", check=True)
    return d


def test_isoflop_fit_json(fits):
    r = json.loads((fits / "iso.json").read_text())
    assert r["law"] == "isoflop" and set(r["params"]) == {"a", "N_coef", "b", "D_coef"}
    assert r["params"]["b"] == pytest.approx(0.531, abs=0.005) and r["ci95"]["b"][0] < 0.53 < r["ci95"]["b"][1]
    assert len(r["per_budget"]) == 10 and {"C", "N_opt", "D_opt", "L_min", "n_points", "inside"} <= set(r["per_budget"][0])
    assert r["bootstrap"]["resample"] == "points within each budget"


def test_predict_with_intervals(fits):
    res = run_main("predict", "--fit", fits / "ch.json", "--N", "7e9", "--D", "1.4e11", "--N", "1e9", "--D", "2e10",
                   "--json", "-", check=True)
    out = json.loads(res.stdout)
    assert out["law"] == "chinchilla" and "new measurement" in out["interval"]
    p = out["predictions"][0]
    assert p["N"] == 7e9 and p["L_lo"] < p["L"] < p["L_hi"] and p["L"] == pytest.approx(2.172, abs=0.002)
    iso = json.loads(run_main("predict", "--fit", fits / "iso.json", "--C", "1e24", "--json", "-", check=True).stdout)
    q = iso["predictions"][0]
    assert q["N_opt_lo"] < q["N_opt"] < q["N_opt_hi"]


def test_predict_from_csv(fits, tmp_path):
    pd.DataFrame({"N": [1e9, 2e9], "D": [2e10, 4e10]}).to_csv(tmp_path / "in.csv", index=False)
    out = json.loads(run_main("predict", "--fit", fits / "ch.json", "--csv", tmp_path / "in.csv", "--interval", "mean",
                              "--json", "-", check=True).stdout)
    assert len(out["predictions"]) == 2 and "bootstrap draws" in out["interval"]


def test_plan_on_isoflop_fit(fits):
    out = json.loads(run_main("plan", "--fit", fits / "iso.json", "--compute", "3.8e25", "--json", check=True).stdout)
    lo, hi = out["ci95"]["N_opt"]
    assert lo < out["N_opt"] < hi and out["sources"]["N_opt"] == "isoflop"
    assert out["exponents"]["a"] == pytest.approx(0.469, abs=0.005)


def test_comparison_table(tmp_path):
    res = run_main("fit", "--dataset", "chinchilla_epoch_fig4", "--query", "in_epoch_fit",
                   "--law", "chinchilla,chinchilla-tied", "--holdout", "10", "--json", tmp_path / "cmp.json", check=True)
    assert "best by hold-out" in res.stdout
    r = json.loads((tmp_path / "cmp.json").read_text())
    table = {row["law"]: row for row in r["comparison"]}
    assert set(table) == {"chinchilla", "chinchilla-tied"} and set(r["fits"]) == set(table)
    assert table["chinchilla-tied"]["holdout_mean_abs_rel_error"] < table["chinchilla"]["holdout_mean_abs_rel_error"]


def test_fix_a_parameter(tmp_path):
    res = run_main("fit", "--dataset", "chinchilla_epoch_fig4", "--query", "in_epoch_fit", "--law", "chinchilla",
                   "--fix", "E=1.69", "--json", "-", check=True)
    r = json.loads(res.stdout)
    assert r["params"]["E"] == 1.69 and r["fixed"] == {"E": 1.69}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("store") / "runs.db")


@pytest.mark.slow
def test_data_constrained_from_store(store, tmp_path):
    """D-subset runs: U is the subset's unique tokens, D the tokens trained on; runs without a subset have U = D."""
    from scalinglab.laws.framework.data import frame_from_store

    df = frame_from_store(store, "data-constrained")
    sub = df[df["U"] < df["D"]]
    assert len(sub) == 6 and set(sub["U"]) == {2e4, 1e5, 5e5} and (sub["D"] == 600 * 16 * 64).all()
    res = run_main("fit", "--db", store, "--law", "data-constrained", "--json", tmp_path / "dc.json", check=True)
    assert "R_D_star" in res.stdout
    out = json.loads(run_main("plan", "--fit", tmp_path / "dc.json", "--compute", "1e15", "--unique-tokens", "1e5",
                              "--json", check=True).stdout)
    assert out["unique_tokens"] == 1e5 and out["epochs"] == pytest.approx(out["D"] / 1e5)


def test_frontier_from_store(store):
    r = json.loads(run_main("fit", "--db", store, "--law", "frontier", "--bootstrap", "30", "--json", "-",
                            check=True).stdout)
    assert r["law"] == "frontier" and r["bootstrap"]["resample"] == "run" and r["n_sizes_on_frontier"] >= 2


def test_bad_input_exits_2_and_writes_nothing(fits, store, tmp_path):
    out = tmp_path / "out.json"
    # a store whose runs share no budget: every budget has fewer than 3 sizes
    assert_clean_error(run_main("fit", "--db", store, "--law", "isoflop", "--json", out), "budgets", "fewer than 3")
    rows = pd.DataFrame({"N": [1e8, 1e9, 1e8, 1e9], "C": [1e18, 1e18, 1e19, 1e19], "L": [3.0, 2.9, 2.8, 2.7]})
    rows.to_csv(tmp_path / "two.csv", index=False)
    assert_clean_error(run_main("fit", "--csv", tmp_path / "two.csv", "--law", "isoflop", "--json", out), "fewer than 3")
    assert_clean_error(run_main("fit", "--dataset", "chinchilla_kyo_takano", "--law", "chinchilla", "--fix", "Q=1",
                                "--json", out), "no parameter 'Q'")
    assert_clean_error(run_main("predict", "--fit", fits / "ch.json", "--N", "1e9", "--json", out), "missing D")
    assert_clean_error(run_main("fit", "--dataset", "llama3_fig2_isoflops", "--law", "isoflop", "--fix", "a=0.5",
                                "--json", out), "--fix")
    assert_clean_error(run_main("plan", "--fit", fits / "ch.json", "--compute", "1e22", "--unique-tokens", "1e10"),
                       "--unique-tokens", "data-constrained")
    assert not out.exists()
    assert np.isfinite(json.loads((fits / "ch.json").read_text())["params"]["E"])
