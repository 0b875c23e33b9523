"""Frontier tools (approaches 1 and 2), bcrit-scan, transforms and the derived quantities of Kaplan §4–6."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scalinglab.datasets import load as load_dataset
from scalinglab.errors import UserError
from scalinglab.laws import fit_law
from scalinglab.laws.analyses.planning import paper_contradiction
from scalinglab.laws.families.frontier import (
    compute_frontier,
    data_requirement,
    fit_isoflop_scaling,
    fit_nopt,
    isoflop_optima,
    overfit_penalty,
    s_stop,
)
from scalinglab.laws.framework.transforms import bcrit_at, c_min, s_min, steps_to_reach


def _chinchilla_curves(alpha=0.34, beta=0.28, n_sizes=40):
    rows = []
    for N in np.geomspace(1e6, 1e10, n_sizes):
        D = np.geomspace(1e6, 1e12, 80)
        rows.append(pd.DataFrame({"run": f"n{N:.3g}", "N": N, "C": 6 * N * D,
                                  "L": 1.69 + 406.4 / N**alpha + 410.7 / D**beta}))
    return pd.concat(rows, ignore_index=True)


def test_frontier_approach1_recovers_nopt_exponent():
    curves = _chinchilla_curves()
    front = compute_frontier(curves, n_points=50)
    assert (np.diff(front["L"]) <= 1e-12).all()  # envelope falls with compute
    inner = front[(front["C"] > 1e17) & (front["C"] < 1e20)]
    nopt = fit_nopt(inner)
    assert nopt["exponent"] == pytest.approx(0.28 / 0.62, abs=0.03)
    # every frontier loss is the lowest any single curve reaches at that compute
    c = float(inner["C"].iloc[10])
    direct = min(1.69 + 406.4 / N**0.34 + 410.7 / (c / (6 * N))**0.28 for N in curves["N"].unique())
    assert inner["L"].iloc[10] == pytest.approx(direct, rel=2e-3)


def test_frontier_needs_columns():
    with pytest.raises(UserError, match="C and L"):
        compute_frontier(pd.DataFrame({"N": [1.0], "L": [2.0]}))


def test_isoflop_llama3():
    """Llama 3 Fig. 2: their fit gives D* ∝ C^0.53 with coefficient 0.29."""
    o = isoflop_optima(load_dataset("llama3_fig2_isoflops"))
    assert len(o) == 10 and o["convex"].all() and o["inside"].all()
    s = fit_isoflop_scaling(o)
    assert s["b"] == pytest.approx(0.53, abs=0.02) and s["a"] == pytest.approx(0.47, abs=0.02)
    assert s["D_coef"] == pytest.approx(0.29, rel=0.15)


def test_isoflop_openathena_chinchilla():
    """Chinchilla approach 2 published a = 0.49 on these budgets."""
    oa = load_dataset("openathena_isoflops")
    g = oa[oa["experiment"] == "epochai_chinchilla__massivetext__chinchilla"]
    s = fit_isoflop_scaling(isoflop_optima(g))
    assert s["a"] == pytest.approx(0.49, abs=0.03)
    assert s["a"] + s["b"] == pytest.approx(1.0, abs=1e-9)  # D = C/(6N)
    with pytest.raises(UserError):
        isoflop_optima(g, min_points=1000)


def test_data_requirement_and_penalty():
    N = np.array([1e6, 1e9, 1e12])
    D = data_requirement(N)
    assert np.allclose(D / (5e3 * N**0.74), 1.0, atol=0.08)  # paper: D ≳ 5e3·N^0.74
    assert np.allclose(overfit_penalty(N, D), 0.022, rtol=1e-9)
    assert overfit_penalty(1e9, 1e13) < overfit_penalty(1e9, 1e10)
    assert (s_stop(1e9, np.array([1e10, 1e12])) > 0).all()
    assert s_stop(1e9, 1e12) > s_stop(1e9, 1e10)  # more data, later stop


def test_paper_contradiction_point():
    pt = paper_contradiction()
    assert 3e3 < pt["C_pf_days"] < 3e4
    assert 3e11 < pt["N"] < 3e12
    assert 1e11 < pt["D"] < 3e12
    assert pt["L"] == pytest.approx(1.7, abs=0.05)


def test_transforms():
    assert s_min(1000, 100, 100) == pytest.approx(500)
    assert c_min(1e18, 100, 100) == pytest.approx(5e17)
    assert bcrit_at(2.0, 2e8, 0.21) == pytest.approx(2e8 / 2 ** (1 / 0.21))
    assert steps_to_reach(np.array([1, 10, 100]), np.array([5.0, 4.0, 3.0]), 3.5) == pytest.approx(np.sqrt(1000))
    assert np.isnan(steps_to_reach(np.array([1, 10]), np.array([5.0, 4.0]), 3.0))


def _batch_scan(B_star=2e5, alpha_B=0.3, batches=np.geomspace(256, 1e6, 9)):
    L = np.linspace(5.5, 2.0, 60)
    smin = 50.0 * (L - 1.5) ** -2.0
    bc = B_star / L ** (1 / alpha_B)
    rows = [pd.DataFrame({"run": f"b{B:.0f}", "B": B, "S": smin * (1 + bc / B), "L": L}) for B in batches]
    return pd.concat(rows, ignore_index=True)


@pytest.mark.slow  # about 10 s: each of the 10 whole-run resamples refinds every batch-scan level
def test_bcrit_scan_recovers_eq_1_4():
    law = fit_law("bcrit-scan", _batch_scan(), bootstrap=10)  # 10: the fewest refits that give intervals
    assert law.params_["alpha_B"] == pytest.approx(0.3, rel=0.05)
    assert law.params_["B_star"] == pytest.approx(2e5, rel=0.15)
    lv = law.levels_
    assert len(lv) >= 5 and all(r["n_batch_sizes"] >= 3 for r in lv)
    r = lv[len(lv) // 2]
    assert r["B_crit"] == pytest.approx(2e5 / r["L"] ** (1 / 0.3), rel=0.03)
    assert r["E_min"] == pytest.approx(r["S_min"] * r["B_crit"])
    assert law.predict(L=3.0) == pytest.approx(2e5 / 3.0 ** (1 / 0.3), rel=0.1)
    assert "levels" in law.to_dict()
    assert law.bootstrap_["n_converged"] == 10 and law.bootstrap_["resample"] == "run"
    for name, truth in (("B_star", 2e5), ("alpha_B", 0.3)):  # noise-free curves: tight intervals on the truth
        lo, hi = law.ci95_[name]
        assert lo <= truth <= hi and hi - lo < 0.01 * truth, (name, lo, hi)


def test_bcrit_scan_needs_several_batch_sizes():
    with pytest.raises(UserError, match="batch sizes"):
        fit_law("bcrit-scan", _batch_scan(batches=[1e3, 1e4]))


def test_frontier_on_published_learning_curves():
    """(Mis)Fitting checkpoints: 4852 learning-curve points (C as big integers) -> frontier and N_opt(C)."""
    m = load_dataset("misfitting_checkpoints")
    m["run"] = m["model"] + "_" + m["sweep"].astype(str) + "_" + m["peak_lr"].astype(str)
    front = compute_frontier(m[["run", "N", "C", "L"]])
    assert front["L"].min() == pytest.approx(m["L"].min(), rel=1e-6)  # the best checkpoint is on it
    nopt = fit_nopt(front)
    assert nopt["n_sizes"] >= 5 and 0.3 < nopt["exponent"] < 0.6
