"""lr-opt: LR*(N) as a power law over the best LR of each size (recovery, edges, too few sizes, round trip)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from scalinglab.laws.framework.registry import get_law, law_names
from tests.helpers import assert_clean_error, run_main


def _sweep(alpha: float = 0.3, sizes=(1e4, 3e4, 1e5, 3e5, 1e6), step: float = 2 ** 0.25, noise: float = 0.0):
    """LR sweeps whose loss is a parabola in log LR around 0.02·(N/1e4)^-alpha."""
    rng = np.random.default_rng(0)
    lrs = 2e-3 * step ** np.arange(-8, 17)
    n = np.repeat(sizes, len(lrs))
    lr = np.tile(lrs, len(sizes))
    best = 0.02 * (n / 1e4) ** -alpha
    loss = 2.0 + np.log(lr / best) ** 2 + rng.normal(0, noise, len(n))
    return pd.DataFrame({"N": n, "LR": lr, "L": loss})


def test_lr_opt_recovers_the_exponent_and_predicts_lr():
    assert "lr-opt" in law_names()
    law = get_law("lr-opt").fit(_sweep(0.3), bootstrap=100)
    assert law.params_["alpha_LR"] == pytest.approx(0.3, abs=0.03)  # the grid is 2^0.25 apart
    lo, hi = law.ci95_["alpha_LR"]
    assert lo <= law.params_["alpha_LR"] <= hi
    assert law.predict(N=[1e5])[0] == pytest.approx(0.02 * 10 ** -0.3, rel=0.2)
    assert [b["at_edge"] for b in law.best_] == [False] * 5
    again = type(law).from_dict(json.loads(json.dumps(law.to_dict())))
    assert again.best_ == law.best_ and again.params_ == law.params_


def test_lr_opt_lists_sizes_whose_best_lr_is_at_the_grid_edge():
    df = _sweep(0.3, step=2.0)  # LRs 2e-3/256 .. 2e-3·65536: wide; cut it so the smallest size's best is the top
    df = df[df["LR"] <= 0.016]
    law = get_law("lr-opt").fit(df)
    assert law.to_dict()["edge_sizes"] == [1e4, 3e4]


def test_lr_opt_needs_three_swept_sizes(tmp_path):
    df = _sweep(sizes=(1e4, 1e5))
    df = pd.concat([df, pd.DataFrame({"N": [1e6], "LR": [1e-3], "L": [2.5]})])  # one LR: not a sweep
    csv = tmp_path / "lr.csv"
    df.to_csv(csv, index=False)
    out = tmp_path / "fit.json"
    assert_clean_error(run_main("fit", "--csv", csv, "--law", "lr-opt", "--json", out), "lr-opt", "need 3")
    assert not out.exists()


def test_plan_suggests_the_lr_of_the_planned_model(tmp_path):
    from scalinglab.laws.analyses.planning import plan_allocation
    from scalinglab.laws.framework.fit import fit_law

    rng = np.random.default_rng(0)
    N = np.exp(rng.uniform(np.log(5e7), np.log(2e10), 80))
    D = np.exp(rng.uniform(np.log(2e8), np.log(3e11), 80))
    L = (1.69 + 406.4 / N**0.34 + 410.7 / D**0.28) * np.exp(0.002 * rng.standard_normal(80))
    chin = fit_law("chinchilla", pd.DataFrame({"N": N, "D": D, "L": L}), bootstrap=50)
    lr = get_law("lr-opt").fit(_sweep(0.3), bootstrap=50)
    fits = {"chinchilla": chin.to_dict(), "lr-opt": lr.to_dict()}
    p = plan_allocation(1e22, fits=fits)
    assert p["LR"] == pytest.approx(lr.predict(N=[p["N_opt"]])[0])
    lo, hi = p["ci95"]["LR"]
    assert lo < p["LR"] < hi and p["sources"]["LR"] == "lr-opt at N_opt"
    assert "LR" not in plan_allocation(1e22, fits={"chinchilla": chin.to_dict()})
    path = tmp_path / "fits.json"
    path.write_text(json.dumps(fits))
    res = run_main("plan", "--compute", "1e22", "--fit", path, check=True)
    assert "LR (peak)" in res.stdout
