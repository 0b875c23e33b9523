"""`scalinglab fit` through the real entry point: outputs, and every bad input exits 2 leaving --json untouched."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from scalinglab.datasets import path as dataset_path
from tests.helpers import assert_clean_error, run_cli, run_main


def _kaplan_n_csv(path, n=20, names=("N", "L")):
    N = np.geomspace(1e6, 1e10, n)
    L = (8.8e13 / N) ** 0.076 * np.exp(0.003 * np.random.default_rng(0).standard_normal(n))
    pd.DataFrame({names[0]: N, names[1]: L}).to_csv(path, index=False)
    return path


def test_fit_csv_json_and_summary(tmp_path):
    out = tmp_path / "fit.json"
    proc = run_cli("fit", "--csv", dataset_path("chinchilla_epoch_fig4"), "--law", "chinchilla",
                   "--query", "in_epoch_fit", "--bootstrap", "100", "--holdout", "5", "--json", out, check=True)
    assert "alpha" in proc.stdout and "95% CI" in proc.stdout and "hold-out" in proc.stdout
    d = json.loads(out.read_text())
    assert d["law"] == "chinchilla" and d["n_points"] == 240 and d["converged"] is True
    assert set(d["params"]) == {"E", "A", "B", "alpha", "beta"}
    assert 0.317 <= d["params"]["alpha"] <= 0.373
    assert d["ci95"]["alpha"][0] < d["params"]["alpha"] < d["ci95"]["alpha"][1]
    assert d["holdout"]["k"] == 5 and d["holdout"]["mean_abs_rel_error"] < 0.05
    assert "a" in d["derived_ci95"] and d["objective"] > 0 and d["residual_rms"] > 0


def test_fit_col_mapping_and_stdout_json(tmp_path):
    csv = _kaplan_n_csv(tmp_path / "runs.csv", names=("params", "loss"))
    proc = run_main("fit", "--csv", csv, "--law", "kaplan-n", "--col", "N=params", "--col", "L=loss", "--json", "-",
                   check=True)
    d = json.loads(proc.stdout)
    assert d["params"]["alpha_N"] == pytest.approx(0.076, rel=0.05)


def test_fit_kaplan_c_reports_pf_days(tmp_path):
    C = np.geomspace(1e15, 1e21, 20)
    pd.DataFrame({"C": C, "L": (1.6e7 / (C / 8.64e19)) ** 0.057}).to_csv(tmp_path / "c.csv", index=False)
    d = json.loads(run_main("fit", "--csv", tmp_path / "c.csv", "--law", "kaplan-c", "--json", "-", check=True).stdout)
    assert d["units"]["C_c"] == "PF-days"
    assert d["params"]["C_c"] == pytest.approx(1.6e7, rel=0.01)


BAD = [
    ("missing.csv", None, ["--law", "kaplan-n"], "not found"),
    ("empty.csv", "", ["--law", "kaplan-n"], "empty"),
    ("header.csv", "N,L\n", ["--law", "kaplan-n"], "no rows"),
    ("text.csv", "N,L\n1e6,3.0\nbig,2.9\n1e8,2.8\n1e9,2.7\n", ["--law", "kaplan-n"], "non-numeric"),
    ("nan.csv", "N,L\n1e6,3.0\n1e7,nan\n1e8,2.8\n1e9,2.7\n", ["--law", "kaplan-n"], "NaN"),
    ("inf.csv", "N,L\n1e6,3.0\n1e7,inf\n1e8,2.8\n1e9,2.7\n", ["--law", "kaplan-n"], "infinite"),
    ("neg.csv", "N,L\n1e6,3.0\n-1e7,2.9\n1e8,2.8\n1e9,2.7\n", ["--law", "kaplan-n"], "positive"),
    ("zero.csv", "N,L\n1e6,3.0\n1e7,0\n1e8,2.8\n1e9,2.7\n", ["--law", "kaplan-n"], "positive"),
    ("nocol.csv", "N,loss\n1e6,3.0\n1e7,2.9\n1e8,2.8\n1e9,2.7\n", ["--law", "kaplan-n"], "column(s) L"),
    ("law.csv", "N,L\n1e6,3.0\n1e7,2.9\n1e8,2.8\n1e9,2.7\n", ["--law", "kaplan-q"], "known laws"),
    ("few.csv", "N,D,L\n1e6,1e7,3.0\n1e7,1e8,2.9\n1e8,1e9,2.8\n", ["--law", "chinchilla"], "at least 6"),
    ("col.csv", "N,L\n1e6,3.0\n1e7,2.9\n1e8,2.8\n1e9,2.7\n", ["--law", "kaplan-n", "--col", "N=size"], "size"),
    ("query.csv", "N,L\n1e6,3.0\n1e7,2.9\n1e8,2.8\n1e9,2.7\n", ["--law", "kaplan-n", "--query", "N >"], "--query"),
    ("hold.csv", "N,L\n1e6,3.0\n1e7,2.9\n1e8,2.8\n1e9,2.7\n", ["--law", "kaplan-n", "--holdout", "3"], "holdout"),
    # options only some laws read are refused for the others, not ignored
    ("solver.csv", "N,L\n1e6,3.0\n1e7,2.9\n1e8,2.8\n1e9,2.7\n", ["--law", "kaplan-n", "--solver", "grid"],
     "--solver is for --law chinchilla"),
    ("window.csv", "N,L\n1e6,3.0\n1e7,2.9\n1e8,2.8\n1e9,2.7\n", ["--law", "kaplan-n", "--window", "3"],
     "--window is for --law batch-opt or batch-opt-c or isoflop, not kaplan-n"),
    ("method.csv", "N,C,L\n1e6,1e15,3.0\n1e7,1e16,2.9\n1e8,1e17,2.8\n", ["--law", "isoflop", "--method", "hull"],
     "isoflop method must be parabola or akima"),
    ("group.csv", "N,L\n1e6,3.0\n1e7,2.9\n1e8,2.8\n1e9,2.7\n", ["--law", "kaplan-n", "--group", "run"],
     "--group is for --law frontier or isoflop"),
]


@pytest.mark.parametrize("name,content,args,needle", BAD, ids=[b[0] for b in BAD])
def test_fit_bad_input_exit_2_keeps_json(tmp_path, name, content, args, needle):
    csv = tmp_path / name
    if content is not None:
        csv.write_text(content)
    out = tmp_path / "fit.json"
    out.write_text('{"keep": true}\n')
    proc = run_main("fit", "--csv", csv, *args, "--json", out)
    assert_clean_error(proc, needle)
    assert out.read_text() == '{"keep": true}\n'


def test_fit_needs_exactly_one_source(tmp_path):
    assert_clean_error(run_main("fit", "--law", "kaplan-n"), "--csv")


def _store_db(path, corpus, eval_sets=("other",)):
    """A results store with finished runs whose final loss follows L = (N_c/N)^alpha_N, plus one failed run.
    Each extra eval set i measures L + 0.3·(i + 1) (a constant offset, Fig. 8/24)."""
    from scalinglab.store import db

    for d_model in (16, 24, 32, 48, 64, 96, 128):
        n = 12 * 2 * d_model**2
        cfg = {"corpus": str(corpus), "n_layer": 2, "d_model": d_model, "n_ctx": 32, "steps": 100, "batch_size": 4}
        curve = []
        for s in (10, 20, 40, 70, 100):
            loss = (1e9 / n) ** 0.1 + (50.0 / s) ** 0.5
            curve.append({"step": s, "tokens": s * 128, "flops": 6.0 * n * s * 128, "val_loss": loss,
                          "noise_scale": 2e4 / loss ** (1 / 0.3)})
        final = curve[-1]
        res = {"status": "done", "steps": 100, "tokens": 12_800, "n_params": n,
               "n_params_with_embeddings": n + 300 * d_model, "flops": final["flops"], "val_loss": final["val_loss"],
               "noise_scale": 100.0, "config": cfg, "curve": curve,
               "eval_losses": {name: final["val_loss"] + 0.3 * (i + 1) for i, name in enumerate(eval_sets)}}
        db.record_result(path, res)
    bad = {"corpus": str(corpus), "n_layer": 3, "d_model": 16, "n_ctx": 32, "steps": 100, "batch_size": 4}
    db.record_result(path, {"status": "failed", "reason": "test", "n_params": 5, "val_loss": 99.0, "config": bad})
    return path


def test_fit_from_store(tmp_path, synthetic_corpus):
    dbp = _store_db(tmp_path / "runs.db", synthetic_corpus)
    d = json.loads(run_main("fit", "--db", dbp, "--law", "kaplan-n", "--json", "-", check=True).stdout)
    assert d["n_points"] == 7  # the failed run is left out
    d2 = json.loads(run_main("fit", "--db", dbp, "--law", "kaplan-n", "--count-embeddings", "--json", "-",
                            check=True).stdout)
    assert d2["count_embeddings"] is True and d2["params"] != d["params"]
    # kaplan-c reads the learning curves and fits their compute-efficient frontier
    d3 = json.loads(run_main("fit", "--db", dbp, "--law", "kaplan-c", "--json", "-", check=True).stdout)
    assert d3["units"]["C_c"] == "PF-days" and d3["n_points"] > 7
    d4 = json.loads(run_main("fit", "--db", dbp, "--law", "bcrit", "--json", "-", check=True).stdout)
    assert d4["n_points"] == 35  # every curve point with a noise scale
    assert d4["params"]["alpha_B"] == pytest.approx(0.3, rel=0.02)
    from scalinglab.laws.framework.data import frame_from_store

    df = frame_from_store(dbp, "kaplan-n")
    assert set("NDCSBL") <= set(df.columns) and (df["B"] == 4 * 32).all()
    assert list(df["run"]) == sorted(df["run"])  # row order (→ bootstrap weights) independent of finishing order
    some = df["run"].iloc[:3].tolist()
    assert set(frame_from_store(dbp, "kaplan-n", run_ids=some)["run"]) == set(some)
    assert set(frame_from_store(dbp, "bcrit", run_ids=some)["run"]) == set(some)
    assert_clean_error(run_main("fit", "--db", tmp_path / "nope.db", "--law", "kaplan-n"), "not found")


def test_fit_ood_offset_from_store(tmp_path, synthetic_corpus):
    """The loss on the extra eval set becomes L_ood; with several sets the user names one (or gets exit 2)."""
    one = _store_db(tmp_path / "one.db", synthetic_corpus)
    d = json.loads(run_main("fit", "--db", one, "--law", "ood-offset", "--bootstrap", "50", "--json", "-",
                           check=True).stdout)
    assert d["n_points"] == 7 and d["params"]["offset"] == pytest.approx(0.3, abs=1e-6)
    d = json.loads(run_main("fit", "--db", one, "--law", "ood-linear", "--json", "-", check=True).stdout)
    assert d["params"]["slope"] == pytest.approx(1.0, abs=1e-3)
    two = _store_db(tmp_path / "two.db", synthetic_corpus, eval_sets=("a", "b"))
    assert_clean_error(run_main("fit", "--db", two, "--law", "ood-offset"), "--col L_ood=")
    d = json.loads(run_main("fit", "--db", two, "--law", "ood-offset", "--col", "L_ood=L:b", "--json", "-",
                           check=True).stdout)
    assert d["params"]["offset"] == pytest.approx(0.6, abs=1e-6)
    none = _store_db(tmp_path / "none.db", synthetic_corpus, eval_sets=())
    assert_clean_error(run_main("fit", "--db", none, "--law", "ood-offset"), "no losses on extra eval sets")


def test_fit_bcrit_scan_csv(tmp_path):
    L = np.linspace(5.5, 2.0, 40)
    rows = [pd.DataFrame({"run": f"b{B:.0f}", "B": B, "S": 50 * (L - 1.5) ** -2 * (1 + 2e5 / L ** (1 / 0.3) / B),
                          "L": L}) for B in np.geomspace(256, 1e6, 8)]
    pd.concat(rows).to_csv(tmp_path / "scan.csv", index=False)
    d = json.loads(run_main("fit", "--csv", tmp_path / "scan.csv", "--law", "bcrit-scan", "--json", "-",
                           check=True).stdout)
    assert d["params"]["alpha_B"] == pytest.approx(0.3, rel=0.05) and len(d["levels"]) >= 5


def test_fit_summary_warns_about_a_parameter_at_its_bound(tmp_path):
    csv = tmp_path / "flat.csv"
    pd.DataFrame({"L": np.linspace(3.0, 5.0, 10), "B": np.full(10, 1000.0)}).to_csv(csv, index=False)
    out = run_main("fit", "--csv", csv, "--law", "bcrit", "--json", tmp_path / "f.json", check=True).stdout
    assert "warning: alpha_B is at a bound of its search range" in out
    assert json.loads((tmp_path / "f.json").read_text())["at_bounds"] == ["alpha_B"]
