"""`scalinglab plan` and plan_allocation: paper constants, fitted laws, contradiction point, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from scalinglab.errors import UserError
from scalinglab.laws import fit_law, get_law
from scalinglab.laws.analyses.planning import PF_DAY, plan_allocation
from tests.helpers import assert_clean_error, run_cli, run_main


def test_paper_plan_constants():
    p1 = plan_allocation(PF_DAY, paper=True)
    assert p1["N_opt"] == pytest.approx(1.3e9)
    p2 = plan_allocation(1000 * PF_DAY, paper=True)
    assert np.log(p2["N_opt"] / p1["N_opt"]) / np.log(1000) == pytest.approx(0.73)
    assert p1["D"] == pytest.approx(2e10) and p1["B_crit"] == pytest.approx(2e6) and p1["S_min"] == pytest.approx(5.4e3)
    assert p1["L_pred"] == pytest.approx((3.1e8) ** 0.05)
    assert p1["contradiction"]["L"] == pytest.approx(1.7, abs=0.05)


def _chin_fit(boot=0):
    rng = np.random.default_rng(0)
    N = np.exp(rng.uniform(np.log(5e7), np.log(2e10), 80))
    D = np.exp(rng.uniform(np.log(2e8), np.log(3e11), 80))
    L = (1.69 + 406.4 / N**0.34 + 410.7 / D**0.28) * np.exp(0.002 * rng.standard_normal(80))
    return fit_law("chinchilla", pd.DataFrame({"N": N, "D": D, "L": L}), bootstrap=boot)


def test_plan_with_chinchilla_fit_matches_closed_form():
    law = _chin_fit(boot=100)
    C = 1e22
    p = plan_allocation(C, fits=law.to_dict())
    pr = law.params_
    a = pr["beta"] / (pr["alpha"] + pr["beta"])
    G = (pr["alpha"] * pr["A"] / (pr["beta"] * pr["B"])) ** (1 / (pr["alpha"] + pr["beta"]))
    assert p["N_opt"] == pytest.approx(G * (C / 6) ** a)
    assert p["N_opt"] * p["D"] * 6 == pytest.approx(C)
    lo, hi = p["ci95"]["N_opt"]
    assert lo < p["N_opt"] < hi
    # kaplan-nd numerical allocation agrees with the closed form when fed the same optimum structure
    q = plan_allocation(C, fits={"chinchilla": law.to_dict(), "other": {"note": "ignored"}})
    assert q["N_opt"] == pytest.approx(p["N_opt"])


def test_plan_with_kaplan_laws_gives_contradiction():
    C = np.geomspace(1e15, 1e21, 20)
    mk = {}
    for name, params, cols in (
        ("kaplan-cmin", {"alpha_C": 0.050, "C_c": 3.1e8}, {"C": C}),
        ("kaplan-d", {"alpha_D": 0.095, "D_c": 5.4e13}, {"D": np.geomspace(1e8, 1e12, 20)}),
        ("bcrit", {"B_star": 2e8, "alpha_B": 0.21}, {"L": np.linspace(2, 5, 20)}),
    ):
        law = get_law(name)
        law.params_ = params
        df = pd.DataFrame(cols).assign(**{law.target: law.predict(**cols)})
        mk[name] = fit_law(name, df).to_dict()
    N = np.geomspace(1e6, 1e10, 12)
    D = np.geomspace(1e7, 1e11, 12)
    NN, DD = np.meshgrid(N, D)
    nd = get_law("kaplan-nd")
    nd.params_ = {"alpha_N": 0.076, "alpha_D": 0.103, "N_c": 6.4e13, "D_c": 1.8e13}
    mk["kaplan-nd"] = fit_law("kaplan-nd", pd.DataFrame({"N": NN.ravel(), "D": DD.ravel(),
                                                          "L": nd.predict(N=NN.ravel(), D=DD.ravel())})).to_dict()
    p = plan_allocation(PF_DAY, fits=mk)
    assert p["sources"]["N_opt"] == "kaplan-nd" and p["B_crit"] > 0 and p["S_min"] > 0
    c = p["contradiction"]
    assert c["available"] and 1e2 < c["C_pf_days"] < 1e8 and c["L"] > 0


def test_plan_api_errors():
    with pytest.raises(UserError):
        plan_allocation(0, paper=True)
    with pytest.raises(UserError, match="no law the planner can use"):
        plan_allocation(1e20, fits={"law": "kaplan-n", "params": {"alpha_N": 0.07, "N_c": 1e13}})


def test_plan_cli_paper_and_fit(tmp_path):
    d = json.loads(run_cli("plan", "--compute", "1", "--unit", "pf-days", "--paper", "--json", check=True).stdout)
    assert d["N_opt"] == pytest.approx(1.3e9) and d["contradiction"]["C_pf_days"] == pytest.approx(1.1e4, rel=0.1)
    fit_json = tmp_path / "fit.json"
    fit_json.write_text(json.dumps(_chin_fit().to_dict()))
    out = run_main("plan", "--compute", "1e21", "--fit", fit_json, check=True).stdout
    assert "N_opt" in out and "chinchilla" in out
    # a reproduce-style fits.json keyed by law name
    keyed = tmp_path / "fits.json"
    keyed.write_text(json.dumps({"chinchilla": json.loads(fit_json.read_text())}))
    d = json.loads(run_main("plan", "--compute", "1e21", "--fit", keyed, "--json", check=True).stdout)
    assert d["N_opt"] > 0


@pytest.mark.parametrize("args,content,needle", [
    (["--compute", "0", "--paper"], None, "positive"),
    (["--compute", "-5", "--paper"], None, "positive"),
    (["--compute", "1e20", "--unit", "gflops", "--paper"], None, "unit"),
    (["--compute", "1e20"], None, "--paper"),
    (["--compute", "1e20", "--fit", "FIT"], "{not json", "not valid JSON"),
    (["--compute", "1e20", "--fit", "FIT"], '{"law": "kaplan-n", "params": {"alpha_N": 0.07, "N_c": 1e13}}',
     "planner"),
    (["--compute", "1e20", "--fit", "FIT"], '[1, 2]', "not a fit"),
    (["--compute", "1e20", "--fit", "FIT"], '{"law": "chinchilla", "params": {"E": 1}}', "params"),
    (["--compute", "1e20", "--fit", "missing.json"], None, "not found"),
])
def test_plan_bad_input(tmp_path, args, content, needle):
    fit = tmp_path / "fit.json"
    if content is not None:
        fit.write_text(content)
    args = [str(fit) if a == "FIT" else str(tmp_path / a) if a.endswith(".json") else a for a in args]
    assert_clean_error(run_main("plan", *args), needle)
