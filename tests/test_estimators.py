"""Every law is a scikit-learn style estimator: settings in the constructor (clone-able with scikit-learn itself),
fit returns self, predict on a frame with a named band, summary() is the CLI's text, fit JSONs of the previous
release load; a law declares what it reads and provides, so a new one needs no other edit (laws/framework/base.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

import scalinglab as sl
from scalinglab.laws.framework.base import Law, law_class
from tests.helpers import assert_clean_error, run_main

FITS_V1 = Path(__file__).parent / "data" / "fits_v1"


def _kaplan_n() -> pd.DataFrame:
    return pd.read_csv(FITS_V1 / "kaplan_n_points.csv")


@pytest.mark.parametrize("name", sl.law_names())
def test_every_law_clones_with_scikit_learn(name):
    law = sl.get_law(name)
    assert law.name == name == law.law_name  # one name: the registry's
    twin = clone(law)
    assert type(twin) is type(law) and twin.get_params() == law.get_params() and twin is not law
    assert {"seed", "bootstrap"} <= set(law.get_params())
    with pytest.raises(sl.UserError, match="has no setting 'nope'"):
        law.set_params(nope=1)


def test_settings_are_constructor_parameters_and_fit_returns_self():
    law = sl.get_law("kaplan-n", bootstrap=30, holdout=2, huber_delta=1e-2, seed=3)
    assert law.fit(_kaplan_n()) is law
    assert law.bootstrap_["k"] == 30 and law.holdout_["k"] == 2 and law.bootstrap_["seed"] == 3
    assert clone(law).params_ is None and clone(law).get_params()["huber_delta"] == 1e-2
    fresh = vars(clone(law))
    changed = [k for k, v in vars(law).items() if not k.startswith("_")
               and (k not in fresh or (fresh[k] is not v and not (isinstance(v, tuple) and fresh[k] == v)))]
    assert changed and all(k.endswith("_") for k in changed)  # fitting sets only trailing-underscore attributes
    with pytest.raises(sl.UserError, match="no setting 'colour'"):
        sl.get_law("kaplan-n", colour="red")


def test_fit_law_keeps_the_settings_of_an_instance():
    law = sl.get_law("kaplan-n", huber_delta=0.05)
    fitted = sl.fit_law(law, _kaplan_n())
    assert fitted is law and law.huber_delta == 0.05
    other = sl.fit_law(law, _kaplan_n(), bootstrap=20)
    assert other is not law and other.huber_delta == 0.05 and law.bootstrap == 0


def test_predict_on_a_frame_with_a_named_band():
    law = sl.fit_law("kaplan-n", _kaplan_n(), bootstrap=50)
    X = pd.DataFrame({"N": [1e9, 1e10]}, index=["a", "b"])
    point = law.predict(X)
    assert list(point.index) == ["a", "b"] and list(point.columns) == ["N", "L"]
    meas, mean = law.predict(X, interval="measurement"), law.predict(X, interval="mean")
    assert (meas["L_lo"] <= mean["L_lo"]).all() and (meas["L_hi"] >= mean["L_hi"]).all()
    np.testing.assert_allclose(point["L"], law.predict(N=[1e9, 1e10]))
    # the API's default band is the CLI's: measurement
    p = sl.predict(law, N=[1e9, 1e10])
    assert p.band == "measurement"
    np.testing.assert_allclose(p.ci95[:, 0], meas["L_lo"])
    with pytest.raises(sl.UserError, match="interval must be"):
        law.predict(X, interval="x")
    with pytest.raises(sl.UserError, match="missing N"):
        law.predict(pd.DataFrame({"D": [1.0]}))
    with pytest.raises(sl.UserError, match="needs N, L"):
        sl.get_law("kaplan-n").fit(pd.DataFrame({"D": [1.0, 2.0, 3.0], "L": [3.0, 2.0, 1.0]}))


def test_summary_is_what_the_cli_prints(tmp_path):
    out = run_main("fit", "--csv", FITS_V1 / "kaplan_n_points.csv", "--law", "kaplan-n", "--bootstrap", "30",
                   "--holdout", "2", check=True).stdout
    law = sl.fit_law("kaplan-n", _kaplan_n(), bootstrap=30, holdout=2)
    assert law.summary() == out.rstrip("\n")
    iso = run_main("fit", "--dataset", "llama3_fig2_isoflops", "--law", "isoflop", check=True).stdout
    assert sl.fit_law("isoflop", sl.datasets.load("llama3_fig2_isoflops")).summary() == iso.rstrip("\n")


@pytest.mark.parametrize("name", ["chinchilla", "kaplan-n", "isoflop", "frontier"])
def test_fit_files_of_the_previous_release_load_and_predict_the_same(name):
    from scalinglab.laws.analyses.prediction import predict_table

    fit = json.loads((FITS_V1 / f"{name}.json").read_text())
    expected = json.loads((FITS_V1 / "expected_predictions.json").read_text())[name]
    law = sl.Law.from_dict(fit)
    assert law.params_ == fit["params"]
    rows = {k: [r[k] for r in expected] for k in law.inputs}
    got = predict_table(law, rows)["predictions"]
    for g, e in zip(got, expected, strict=True):
        assert g == pytest.approx(e, rel=1e-12)


def test_approaches_one_and_two_are_registered_laws():
    df = sl.datasets.load("llama3_fig2_isoflops")
    iso = sl.fit_law("isoflop", df, bootstrap=50)
    assert iso.params_["b"] == pytest.approx(0.531, abs=0.005)
    band = iso.predict(pd.DataFrame({"C": [1e22]}), interval="mean")
    assert band["N_opt_lo"].iloc[0] < band["N_opt"].iloc[0] < band["N_opt_hi"].iloc[0]
    assert "allocation" in law_class("isoflop").provides and law_class("frontier").reads == "curves"
    assert sl.Law.from_dict(iso.to_dict()).params_ == iso.params_


def test_akima_approach_two_on_llama3():
    """Akima interpolation over each whole IsoFLOP curve keeps the 6e20 budget (concave near its minimum, which
    the local parabola drops) and lands near Llama 3's published 0.53."""
    df = sl.datasets.load("llama3_fig2_isoflops")
    fit = sl.get_law("isoflop", method="akima", bootstrap=100).fit(df)
    assert fit.params_["b"] == pytest.approx(0.528, abs=0.005)
    lo, hi = fit.ci95_["b"]
    assert lo < 0.53 < hi
    assert all(r["inside"] for r in fit.per_budget_)
    assert "Akima" in fit.to_dict()["window_note"]


def test_akima_approach_two_on_openathena():
    """Chinchilla's approach-2 budgets (Open-Athena's QC-clean rows): Akima gives an exponent inside its CI, of the
    published 0.49's order, with every budget bracketed."""
    oa = sl.datasets.load("openathena_isoflops")
    g = oa[(oa["experiment"] == "epochai_chinchilla__massivetext__chinchilla") & ~oa["outlier"].astype(bool)]
    fit = sl.get_law("isoflop", method="akima", bootstrap=100, seed=1).fit(g)
    a, (lo, hi) = fit.params_["a"], fit.ci95_["a"]
    assert lo <= a <= hi and a == pytest.approx(0.49, abs=0.03)
    assert all(r["inside"] for r in fit.per_budget_) and fit.bootstrap_["converged_fraction"] == 1.0
    with pytest.raises(sl.UserError, match="parabola or akima"):
        sl.get_law("isoflop", method="spline")


@pytest.fixture
def toy_law():
    """A law defined here, registered for the test only: L = (C_0/C)^p, a loss of compute."""
    from scalinglab.laws.framework.base import _REGISTRY

    class Toy(Law, register={"toy-c": {}}):
        name = "toy-c"
        formula = "L = (C_0/C)^p"
        inputs = ("C",)
        param_names = ("p", "C_0")
        log_params = (False, True)
        provides = frozenset({"loss", "loss(C)"})

        def _logpred(self, theta, X, grad=True):
            x = X[None, :, 0]
            f = theta[:, 0:1] * (theta[:, 1:2] - x)
            return (f, [theta[:, 1:2] - x, np.broadcast_to(theta[:, 0:1], f.shape)]) if grad else (f, None)

        def _grid(self, X, y):
            return np.array([[p, c] for p in (0.03, 0.1, 0.3) for c in (30.0, 45.0, 60.0)])

    yield Toy
    del _REGISTRY["toy-c"]


def test_a_law_defined_in_one_module_is_found_by_fit_predict_and_plan(toy_law, tmp_path):
    C = np.geomspace(1e15, 1e19, 12)
    rng = np.random.default_rng(0)
    pd.DataFrame({"C": C, "L": (1e21 / C) ** 0.05 * np.exp(rng.normal(0, 0.003, 12))}).to_csv(tmp_path / "c.csv",
                                                                                             index=False)
    fit = tmp_path / "toy.json"
    run_main("fit", "--csv", tmp_path / "c.csv", "--law", "toy-c", "--bootstrap", "30", "--json", fit, check=True)
    d = json.loads(fit.read_text())
    assert d["law"] == "toy-c" and d["params"]["p"] == pytest.approx(0.05, abs=0.005)
    pred = json.loads(run_main("predict", "--fit", fit, "--C", "1e20", "--json", "-", check=True).stdout)
    assert pred["band"] == "measurement" and pred["predictions"][0]["L_lo"] < pred["predictions"][0]["L"]
    plan = json.loads(run_main("plan", "--fit", fit, "--compute", "1e20", "--json", check=True).stdout)
    assert plan["sources"]["L_pred"] == "toy-c" and plan["L_pred"] == pytest.approx(pred["predictions"][0]["L"])
    assert plan["band"]["L_pred"] == "measurement"


def test_plan_labels_its_band_like_predict():
    out = run_main("plan", "--fit", FITS_V1 / "chinchilla.json", "--compute", "1e21", check=True).stdout
    line = next(ln for ln in out.splitlines() if "L (nats/token)" in ln)
    assert "95% measurement band [" in line and line.split("=")[1].split()[0].count(".") == 1
    assert len(line.split("=")[1].split()[0].split(".")[1]) == 4  # four decimals, not three digits
    mean = json.loads(run_main("plan", "--fit", FITS_V1 / "chinchilla.json", "--compute", "1e21", "--interval",
                               "mean", "--json", check=True).stdout)
    meas = json.loads(run_main("plan", "--fit", FITS_V1 / "chinchilla.json", "--compute", "1e21", "--json",
                               check=True).stdout)
    assert mean["band"]["L_pred"] == "mean" and meas["ci95"]["L_pred"][0] < mean["ci95"]["L_pred"][0]
    assert_clean_error(run_main("plan", "--fit", FITS_V1 / "chinchilla.json", "--compute", "1e21", "--interval",
                                "x"), "interval must be")


def test_the_notebook_example_on_published_data():
    """examples/notebook_api.py's published-data cells (fit, predict with its band, plan, approach 2 both ways, save
    and load): the same numbers the commands give."""
    import runpy

    ns = runpy.run_path(str(Path(__file__).parents[1] / "examples" / "notebook_api.py"))
    shown: list[str] = []
    out = ns["published"](show=shown.append)
    assert 0.3 < out["params"]["alpha"] < 0.4 and out["band"] == "measurement"
    assert out["isoflop_b"] == pytest.approx(0.531, abs=0.005) and out["akima_b"] == pytest.approx(0.528, abs=0.005)
    cli = run_main("fit", "--dataset", "chinchilla_epoch_fig4", "--query", "in_epoch_fit", "--law", "chinchilla",
                   "--bootstrap", "100", check=True).stdout
    assert shown[0] == cli.rstrip("\n")


def test_the_former_flat_module_paths_still_import():
    """laws/ moved into framework/, families/, analyses/: the former paths are the same modules."""
    import importlib

    from scalinglab.laws import MOVED

    for old, new in MOVED.items():
        assert importlib.import_module(f"scalinglab.laws.{old}") is importlib.import_module(f"scalinglab.laws.{new}")
    from scalinglab.laws.optimal import IsoFLOP
    from scalinglab.laws.plan import plan_allocation

    assert IsoFLOP is law_class("isoflop") and plan_allocation is sl.plan_allocation
