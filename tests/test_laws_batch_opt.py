"""batch-opt / batch-opt-c: the loss-optimal batch B*(N), B*(C) from batch-size scans (recovery, edges, bad input,
the planner's suggestion, a store through reproduce's fit job and the report's fits table)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from scalinglab.errors import UserError
from scalinglab.laws.framework.registry import get_law, law_names
from tests.helpers import assert_clean_error, run_main

SIZES = (1e4, 4e4, 1.6e5, 6.4e5, 2.56e6)


def _scans(beta: float = 0.4, sizes=SIZES, batches=128 * 2.0 ** np.arange(9), noise: float = 0.003,
           tokens=lambda n: 1e6, seed: int = 0, b_ref: float = 2048.0) -> pd.DataFrame:
    """One run per (size, batch): the loss is a parabola in ln B around B*(N) = b_ref·(N/1e6)^beta, plus noise;
    every size on its own token budget `tokens(N)`, C = 6ND."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        best = b_ref * (n / 1e6) ** beta
        for b in batches:
            loss = 3.0 + 0.1 * np.log(b / best) ** 2 + rng.normal(0.0, noise)
            rows.append({"N": n, "B": b, "D": tokens(n), "C": 6.0 * n * tokens(n), "L": loss})
    return pd.DataFrame(rows)


def test_batch_opt_recovers_the_exponent_within_its_interval():
    assert {"batch-opt", "batch-opt-c"} <= set(law_names())
    law = get_law("batch-opt").fit(_scans(0.4), bootstrap=200)
    lo, hi = law.ci95_["beta_B"]
    assert lo <= 0.4 <= hi and law.params_["beta_B"] == pytest.approx(0.4, abs=0.03)
    assert law.params_["B_0"] == pytest.approx(2048.0, rel=0.1)
    assert law.predict(N=[1e7])[0] == pytest.approx(2048.0 * 10**0.4, rel=0.15)
    assert [s["method"] for s in law.scans_] == ["parabola"] * 5 and law.to_dict()["edge_sizes"] == []
    d = law.to_dict()
    assert d["resample"] == "run" and d["bootstrap"]["n_units"] == 45 and d["bootstrap"]["converged_fraction"] == 1.0
    again = type(law).from_dict(json.loads(json.dumps(d)))
    assert again.params_ == law.params_ and again.scans_ == law.scans_ and again.law_name == "batch-opt"
    assert np.allclose(again.predict_ci(N=[1e5]), law.predict_ci(N=[1e5]))


def test_batch_opt_c_fits_the_best_batch_over_compute():
    df = _scans(0.4, tokens=lambda n: 20.0 * n)  # C = 120·N², so B* ∝ C^0.2
    law = get_law("batch-opt-c").fit(df, bootstrap=100)
    assert law.params_["beta_B"] == pytest.approx(0.2, abs=0.02)
    lo, hi = law.ci95_["beta_B"]
    assert lo <= 0.2 <= hi
    # B_coef is DeepSeek's form B = B_coef·C^beta_B (C in FLOPs)
    C = 120.0 * 1e10
    assert law.derived_["B_coef"] * C ** law.params_["beta_B"] == pytest.approx(law.predict(C=[C])[0])
    same_c = _scans(0.4, sizes=(1e4, 4e4), tokens=lambda n: 4e10 / n)  # two sizes, one compute level
    assert get_law("batch-opt").fit(same_c).params_["beta_B"] == pytest.approx(0.4, abs=0.05)
    with pytest.raises(UserError, match="1 compute level"):
        get_law("batch-opt-c").fit(same_c)


def test_batch_opt_flags_scans_whose_best_batch_is_at_the_grid_edge(tmp_path):
    df = _scans(0.4, noise=0.0)
    df = df[df["B"] >= 512]  # B*(1e4) = 325 and B*(4e4) = 564: their best scanned batch is the smallest, 512
    law = get_law("batch-opt").fit(df)
    assert law.to_dict()["edge_sizes"] == [1e4, 4e4]
    assert [s["at_edge"] for s in law.scans_] == [True, True, False, False, False]
    assert law.scans_[0]["B"] == 512 and law.scans_[0]["method"].startswith("grid argmin")
    kept = get_law("batch-opt", drop_edges=True).fit(df)  # the bounds left out: the interior scans fit 0.4
    assert [s["used"] for s in kept.scans_] == [False, False, True, True, True]
    assert kept.params_["beta_B"] == pytest.approx(0.4, abs=1e-6) and kept.n_points_ == 3
    assert law.params_["beta_B"] < 0.35  # the two bounds pull it down
    csv = tmp_path / "edge.csv"
    df.to_csv(csv, index=False)
    out = run_main("fit", "--csv", csv, "--law", "batch-opt", check=True).stdout
    assert "edge of its grid for N = 1e+04, 4e+04" in out and "parabola" in out


def test_batch_opt_with_two_sizes_gets_its_interval_from_the_runs():
    law = get_law("batch-opt").fit(_scans(0.4, sizes=(1e5, 1e6), seed=1), bootstrap=200)
    assert law.n_points_ == 2 and law.residual_rms_ == pytest.approx(0.0, abs=1e-12)
    lo, hi = law.ci95_["beta_B"]
    assert lo < law.params_["beta_B"] < hi and lo <= 0.4 <= hi


@pytest.mark.parametrize("rows, needles", [
    (lambda: _scans(sizes=(1e5,)), ("1 model size", "need scans at 2")),
    (lambda: _scans().groupby("N").head(1), ("no batch-size scan",)),
    (lambda: _scans().drop(columns="D"), ("needs column(s) D", "--col D=")),
])
def test_batch_opt_bad_input_exits_2_with_one_line(tmp_path, rows, needles):
    csv = tmp_path / "scan.csv"
    rows().to_csv(csv, index=False)
    out = tmp_path / "fit.json"
    assert_clean_error(run_main("fit", "--csv", csv, "--law", "batch-opt", "--json", out), *needles)
    assert not out.exists()


def test_batch_opt_reads_named_csv_columns(tmp_path):
    df = _scans().rename(columns={"N": "n_params", "B": "batch_tokens", "D": "tokens", "L": "loss"})
    csv = tmp_path / "scan.csv"
    df.to_csv(csv, index=False)
    out = tmp_path / "fit.json"
    run_main("fit", "--csv", csv, "--law", "batch-opt", "--col", "N=n_params", "--col", "B=batch_tokens",
             "--col", "D=tokens", "--col", "L=loss", "--bootstrap", "50", "--json", out, check=True)
    fit = json.loads(out.read_text())
    assert fit["law"] == "batch-opt" and fit["params"]["beta_B"] == pytest.approx(0.4, abs=0.03)
    assert len(fit["scans"]) == 5 and fit["bootstrap"]["resample"] == "run"


CHINCHILLA = {"law": "chinchilla", "params": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}}


def test_plan_suggests_the_batch_of_the_planned_model(tmp_path):
    from scalinglab.laws.analyses.planning import plan_allocation

    bo = get_law("batch-opt").fit(_scans(0.4), bootstrap=100)
    p = plan_allocation(1e20, fits={"chinchilla": CHINCHILLA, "batch-opt": bo.to_dict()})
    assert p["B_opt"] == pytest.approx(bo.predict(N=[p["N_opt"]])[0]) and p["sources"]["B_opt"] == "batch-opt at N_opt"
    lo, hi = p["ci95"]["B_opt"]
    assert lo < p["B_opt"] < hi
    assert "B_opt" not in plan_allocation(1e20, fits={"chinchilla": CHINCHILLA})
    bc = get_law("batch-opt-c").fit(_scans(0.4, tokens=lambda n: 20.0 * n))
    pc = plan_allocation(1e20, fits={"chinchilla": CHINCHILLA, "batch-opt": bo.to_dict(), "batch-opt-c": bc.to_dict()})
    assert pc["B_opt"] == pytest.approx(bc.predict(C=[1e20])[0]) and pc["sources"]["B_opt"] == "batch-opt-c at C"
    path = tmp_path / "fits.json"
    path.write_text(json.dumps({"chinchilla": CHINCHILLA, "batch-opt": bo.to_dict()}))
    res = run_main("plan", "--compute", "1e20", "--fit", path, check=True)
    assert "B_opt (tokens)" in res.stdout and "[batch-opt at N_opt]" in res.stdout
    assert "loss-optimal batch" in res.stdout


# ---- through a results store: hand-written runs of two sizes, a batch scan each --------------------------------
def _scan_store(path):
    """Runs of (1, 32) and (2, 64) at 4-64 sequences of 64 tokens, 131k tokens each, family batch-scan, whose final
    loss is a parabola in ln B around B*(N) = 2048·(N/1e6)^0.3; a run of another family at (1, 32) beside them."""
    from scalinglab.store.db import record_result, set_family
    from tests.helpers import synthetic_result

    rng = np.random.default_rng(0)
    for nl, dm in ((1, 32), (2, 64)):
        for batch in (4, 8, 16, 32, 64):
            r = synthetic_result(rng, n_layer=nl, d_model=dm, batch=batch, steps=2048 // batch)
            best = 2048.0 * (r["n_params"] / 1e6) ** 0.3
            r["val_loss"] = 3.0 + 0.1 * np.log(batch * 64 / best) ** 2
            set_family(path, record_result(path, r, plan="scan"), "batch-scan", "test")
    other = synthetic_result(rng, n_layer=1, d_model=32, batch=16, steps=128, schedule="constant")
    other["val_loss"] = 3.5  # another experiment at a scanned size and budget: the scan's selection leaves it out
    set_family(path, record_result(path, other, plan="scan"), "lr-schedules", "test")
    return path


def test_batch_opt_from_a_store_through_fit_reproduce_and_the_report(tmp_path):
    from scalinglab.report.content import fit_rows
    from scalinglab.reproduce import LawJob, fit_laws

    db = _scan_store(tmp_path / "runs.db")
    out = tmp_path / "fit.json"
    run_main("fit", "--db", db, "--law", "batch-opt", "--query", "family == 'batch-scan'", "--json", out, check=True)
    fit = json.loads(out.read_text())
    assert fit["params"]["beta_B"] == pytest.approx(0.3, abs=1e-6)  # an exact parabola: each vertex is B*
    assert [s["n_runs"] for s in fit["scans"]] == [5, 5] and fit["scans"][0]["D"] == 131072
    fits, skipped = fit_laws(db, (LawJob("batch-opt", "batch-scan", bootstrap=50),), lambda _: None)
    assert not skipped and fits["batch-opt"]["selection"] == "batch-scan"
    assert fits["batch-opt"]["bootstrap"]["n_units"] == 10
    rows = fit_rows(fits)
    assert [r["param"] for r in rows] == ["B_0", "beta_B"] and rows[0]["law"] == "batch-opt"
    assert rows[1]["ci95"].startswith("[")
    fits, skipped = fit_laws(db, (LawJob("batch-opt", "lstm"),), lambda _: None)
    assert not fits and "no finished run matches" in skipped["batch-opt"]
    fits, skipped = fit_laws(db, (LawJob("batch-opt", "lr-schedules"),), lambda _: None)
    assert "no batch-size scan" in skipped["batch-opt"]
    assert_clean_error(run_main("fit", "--db", db, "--law", "batch-opt", "--family", "lr-schedules"),
                       "no batch-size scan")
    # by default fit --db takes the law's own family (batch-scan for batch-opt), as reproduce does
    default = json.loads(run_main("fit", "--db", db, "--law", "batch-opt", "--json", "-", check=True).stdout)
    assert default["params"] == fit["params"] and default["selection"]["family"] == ["batch-scan"]
    unselected = json.loads(run_main("fit", "--db", db, "--law", "batch-opt", "--family", "all", "--json", "-",
                                     check=True).stdout)
    assert unselected["scans"][0]["n_runs"] == 6  # the whole store: the other run joins the (1, 32) scan
