"""Variable projection (laws/framework/projection.py) against the grid of starts on every published set, and its exact NNLS."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import nnls

from scalinglab.datasets import load as load_dataset
from scalinglab.laws import get_law
from scalinglab.laws.framework.projection import projected_coefficients


def _published_sets():
    e = load_dataset("chinchilla_epoch_fig4")
    sets = {"epoch240": e[e["in_epoch_fit"]], "epoch245": e, "kyo_takano": load_dataset("chinchilla_kyo_takano"),
            "llama3": load_dataset("llama3_fig2_isoflops")}
    for name, g in load_dataset("openathena_isoflops").groupby("experiment"):
        sets[f"openathena:{name}"] = g
    m = load_dataset("misfitting_checkpoints")
    sets["misfitting_final"] = m[m["portion_steps_elapsed"] == 1.0]
    return sets


SETS = _published_sets()


@pytest.mark.parametrize("law_name", ["chinchilla", "chinchilla-tied"])
@pytest.mark.parametrize("name", sorted(SETS))
def test_varpro_reaches_the_grid_optimum(name, law_name):
    df = SETS[name]
    grid = get_law(law_name, solver="grid").fit(df)
    vp = get_law(law_name, solver="varpro").fit(df)
    assert vp.converged_
    assert vp.objective_ <= grid.objective_ * (1 + 1e-8)  # the same optimum, to the polish's tolerance
    for k, v in grid.params_.items():  # misfitting_final, tied: objectives 2e-9 apart, A and B 4e-4 apart
        assert vp.params_[k] == pytest.approx(v, rel=1e-3), (k, vp.params_, grid.params_)


def test_epoch_refit_unchanged_by_the_solver():
    """Epoch AI's grid fit on the 240 points (objective 0.00101827) is what the default solver returns."""
    law = get_law("chinchilla").fit(SETS["epoch240"])
    assert law.get_options()["solver"] == "varpro"
    assert law.objective_ == pytest.approx(0.00101827, rel=1e-5)
    assert law.params_["alpha"] == pytest.approx(0.3473, abs=1e-4)
    assert law.params_["beta"] == pytest.approx(0.3672, abs=1e-4)


def test_projected_coefficients_are_nnls():
    """The batched 7-support solve equals scipy's NNLS on random problems, including ones with zero coefficients."""
    rng = np.random.default_rng(0)
    G, n = 200, 30
    basis = rng.normal(size=(G, n, 3))
    target = np.ones(n)
    gram = np.einsum("gni,gnj->gij", basis, basis)
    rhs = np.einsum("gni,n->gi", basis, target)
    coef, rss = projected_coefficients(gram, rhs, float(n))
    n_zero = 0
    for g in range(G):
        c, r = nnls(basis[g], target)
        assert coef[g] == pytest.approx(c, abs=1e-8)
        assert rss[g] == pytest.approx(r**2, rel=1e-8, abs=1e-10)
        n_zero += int((c == 0).any())
    assert n_zero > 20  # the test exercises the constrained case
