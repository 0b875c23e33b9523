"""Forecasts of a run's final loss from its partial curve (laws/analyses/forecast.py, `scalinglab forecast`, sl.forecast)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from scalinglab.errors import UserError
from scalinglab.laws.analyses.forecast import (
    LR_UNIT,
    Forecaster,
    curves_from_frame,
    curves_from_store,
    forecast_curves,
    lr_areas,
)
from scalinglab.train.schedule import lr_at
from tests.helpers import assert_clean_error, make_store, run_main

T = 600
TRUTH = {"L0": 2.0, "A": 3.0, "alpha": 0.5, "C": 4e-5}


def law_curves(rng, sizes=(1e4, 3e4, 1e5, 3e5), noise=0.01, peak=0.01, every=6) -> pd.DataFrame:
    """Curves drawn from L = L0(N) + A·S1^−α − C·S2 under a cosine schedule, with independent normal noise."""
    lr = np.array([lr_at(s, peak=peak, total_steps=T, warmup=12) for s in range(1, T + 1)])
    S1, S2 = lr_areas(lr / LR_UNIT)
    steps = np.arange(every, T + 1, every)
    rows = []
    for i, N in enumerate(sizes):
        L = TRUTH["L0"] + (1e5 / N) ** 0.1 + TRUTH["A"] * S1[steps] ** -TRUTH["alpha"] - TRUTH["C"] * S2[steps]
        rows.append(pd.DataFrame({"run": f"r{i}", "step": steps, "L": L + noise * rng.standard_normal(len(steps)),
                                  "lr": lr[steps - 1], "N": N, "warmup": 12, "total_steps": T}))
    return pd.concat(rows, ignore_index=True)


def test_lr_areas_follow_the_definition():
    S1, S2 = lr_areas(np.full(5, 2.0))
    assert np.allclose(S1, [0, 2, 4, 6, 8, 10]) and np.allclose(S2, 0)
    # one drop of 1 at step 3, then the momentum m decays by λ per step: m = 0, 0, 1, λ, λ²
    S1, S2 = lr_areas(np.array([2.0, 2.0, 1.0, 1.0, 1.0]), lam=0.5)
    assert np.allclose(S2, [0, 0, 0, 1, 1.5, 1.75])
    # the warm-up's rise does not anneal
    assert np.allclose(lr_areas(np.array([1.0, 2.0, 3.0]))[1], 0)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("forecast") / "s.db", extras=False)


@pytest.mark.parametrize("method", [pytest.param("schedule", marks=pytest.mark.slow), "family"])
def test_interval_covers_the_truth_on_curves_drawn_from_the_law(method):
    rng = np.random.default_rng(1)
    hits, errs = [], []
    fc = Forecaster(method=method, bootstrap=40, widen=1.0, seed=0)
    for _ in range(10):
        curves = curves_from_frame(law_curves(rng))
        for c in curves[2:]:
            noiseless = (TRUTH["L0"] + (1e5 / c.N) ** 0.1 + TRUTH["A"] * c.S1[T] ** -TRUTH["alpha"]
                         - TRUTH["C"] * c.S2[T])
            truth = noiseless + 0.01 * rng.standard_normal()  # a new measurement at the last step
            f = fc.forecast(c, 0.5, family=curves)
            hits.append(f["L_final_lo"] <= truth <= f["L_final_hi"])
            errs.append(abs(f["L_final"] / noiseless - 1))
    assert 0.85 <= np.mean(hits) <= 1.0, np.mean(hits)
    assert np.median(errs) < {"schedule": 0.02, "family": 0.01}[method]


def test_forecast_records_method_fraction_and_points():
    df = law_curves(np.random.default_rng(2))
    r = forecast_curves(df, run="r1", fraction=0.33, bootstrap=20)
    (f,) = r["forecasts"]
    assert f["method"] == "family" and f["family_runs"] == 3
    assert f["fraction_seen"] == pytest.approx(0.33) and f["points_used"] == len(range(18, 199, 6))
    assert f["curve"][-1]["step"] == T and f["L_final_lo"] < f["L_final"] < f["L_final_hi"]
    # without an lr column the schedule is unknown: the power-law curve
    r = forecast_curves(df.drop(columns="lr"), run="r1", fraction=0.33, bootstrap=20)
    assert r["forecasts"][0]["method"] == "power"


def test_too_few_points_is_refused_and_never_forecast():
    df = law_curves(np.random.default_rng(3))
    with pytest.raises(UserError, match="needs at least"):
        forecast_curves(df, run="r0", fraction=0.03, bootstrap=20)
    r = forecast_curves(df, fraction=0.03, bootstrap=20)
    assert r["forecasts"] == [] and len(r["skipped"]) == 4


def test_cli_on_a_store_and_a_csv(store, tmp_path):
    out = run_main("forecast", "--db", store, "--fraction", "0.5", "--bootstrap", "20", "--json", "-", check=True)
    r = json.loads(out.stdout)
    assert len(r["forecasts"]) == 6 and {f["method"] for f in r["forecasts"]} == {"family"}
    # a CSV of partial curves: losses seen up to step 300, the LR given to the end of the schedule
    df = law_curves(np.random.default_rng(4))
    df.loc[df["step"] > 300, "L"] = np.nan
    df.to_csv(tmp_path / "c.csv", index=False)
    res = run_main("forecast", "--csv", tmp_path / "c.csv", "--bootstrap", "20", "--json", tmp_path / "f.json",
                   check=True)
    assert "95% [" in res.stdout
    f = json.loads((tmp_path / "f.json").read_text())["forecasts"]
    assert len(f) == 4 and all(x["fraction_seen"] == pytest.approx(0.5) for x in f)


def test_cli_bad_input(store, tmp_path):
    from scalinglab.store.db import load_runs

    assert_clean_error(run_main("forecast", "--db", store, "--fraction", "1.5"), "(0, 1)")
    rid = load_runs(store)["run_id"].iloc[0]
    assert_clean_error(run_main("forecast", "--db", store, "--run", rid, "--fraction", "0.1"), "needs at least")
    (tmp_path / "bad.csv").write_text("run,tokens,acc\na,1,0.5\na,2,0.6\n")
    assert_clean_error(run_main("forecast", "--csv", tmp_path / "bad.csv"), "loss column")
    (tmp_path / "bad2.csv").write_text("run,loss\na,3.0\na,2.5\n")
    assert_clean_error(run_main("forecast", "--csv", tmp_path / "bad2.csv"), "step")
    assert_clean_error(run_main("forecast"), "--db")


def test_api_takes_a_store_or_a_frame(store):
    import scalinglab as sl

    df = law_curves(np.random.default_rng(5))
    r = sl.forecast(df, fraction=0.5, bootstrap=20, method="schedule")
    assert len(r["forecasts"]) == 4 and r["forecasts"][0]["method"] == "schedule"
    r = sl.forecast(store, fraction=0.5, bootstrap=20, method="schedule")
    assert len(r["forecasts"]) == 0 and len(r["skipped"]) == 6  # 4 points past the warm-up: too few for 4 parameters


def test_study_forecast_is_the_store_forecast_of_its_runs(store):
    import scalinglab as sl

    study = sl.Study.from_db(store)
    assert study.forecast(fraction=0.5, bootstrap=20) == sl.forecast(store, fraction=0.5, bootstrap=20)
    one = study.select(family=None, n_params={"max": float(study.done["n_params"].min())})
    got = one.forecast(fraction=0.5, bootstrap=20)
    assert {f["run"] for f in got["forecasts"]} | {s["run"] for s in got["skipped"]} <= set(one.selection["runs"])
    with pytest.raises(sl.UserError, match="from a store"):
        sl.Study.from_frame(study.raw_runs, study.raw_curves).forecast()


def test_a_run_in_flight_is_forecast_from_its_run_folder(tmp_path):
    """The store gets a run's points when it finishes; until then the forecast reads its metrics.jsonl."""
    from scalinglab.store.db import enqueue, mark_running, run_id_for
    from scalinglab.train.rundir import METRICS
    from tests.helpers import synthetic_result

    db = make_store(tmp_path / "s.db", extras=False)
    live = synthetic_result(np.random.default_rng(9), n_layer=2, d_model=48, steps=600)
    rid = run_id_for(live["config"])
    enqueue(db, [(rid, live["config"])], plan="synthetic")
    mark_running(db, rid, live["config"], threads=1)
    folder = tmp_path / "runs" / rid
    folder.mkdir(parents=True)
    seen = [p for p in live["curve"] if p["step"] <= 400]
    (folder / METRICS).write_text("".join(json.dumps(p) + "\n" for p in seen) + '{"step": 45')  # a line mid-write
    assert live_points_count(db, rid) == 0  # a line cut off mid-write: read on the next call
    (folder / METRICS).write_text("".join(json.dumps(p) + "\n" for p in seen))
    r = json.loads(run_main("forecast", "--db", db, "--bootstrap", "20", "--json", "-", check=True).stdout)
    (f,) = r["forecasts"]
    assert f["run"] == rid and f["method"] == "family" and f["seen_step"] == seen[-1]["step"]


def live_points_count(db, rid) -> int:
    from scalinglab.laws.analyses.forecast import live_points

    return len(live_points(db, rid))


def test_imported_runs_are_forecast_from_their_lr_points(tmp_path):
    """Runs imported from another tool carry no TrainConfig: their schedule is the `lr` their points logged."""
    from scalinglab.importers import import_runs

    df = law_curves(np.random.default_rng(6)).rename(columns={"L": "loss"})
    df["tokens"] = df["step"] * 1024
    df[["run", "step", "tokens", "loss", "lr", "N"]].to_csv(tmp_path / "foreign.csv", index=False)
    import_runs(tmp_path / "foreign.csv", tmp_path / "s.db")
    r = forecast_curves(curves_from_store(tmp_path / "s.db"), fraction=0.5, bootstrap=20)
    assert len(r["forecasts"]) == 4 and {f["method"] for f in r["forecasts"]} == {"family"}
    truth = np.sort(df.groupby("run")["loss"].last().to_numpy())  # store ids are hashes: compare in loss order
    assert np.median(np.abs(np.sort([f["L_final"] for f in r["forecasts"]]) / truth - 1)) < 0.01
    # without the lr column the schedule is unknown: a power law in steps
    df[["run", "step", "tokens", "loss", "N"]].to_csv(tmp_path / "nolr.csv", index=False)
    import_runs(tmp_path / "nolr.csv", tmp_path / "t.db")
    r = forecast_curves(curves_from_store(tmp_path / "t.db"), fraction=0.5, bootstrap=20)
    assert {f["method"] for f in r["forecasts"]} == {"power"}
