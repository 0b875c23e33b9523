"""Fits on learning curves: whole-run bootstrap, the transient cut, the frontier derived inside the law, the
recorded choices (resample, transient, loss, S_min/C_min policy, FLOP convention) and their bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from scalinglab.errors import UserError
from scalinglab.laws import fit_law
from scalinglab.laws.analyses.calibration import study_frontier, study_kaplan_ns
from scalinglab.laws.framework.curves import run_weights, transient_cut
from scalinglab.laws.framework.transforms import batch_scan_levels, to_min
from tests.helpers import assert_clean_error, run_main


def _ns_curves(steps=np.geomspace(1, 1e5, 26)):
    rng = np.random.default_rng(1)
    rows = []
    for i, N in enumerate(np.geomspace(1e6, 1e9, 6)):
        L = (6.5e13 / N) ** 0.077 + (2.1e3 / steps) ** 0.76
        rows.append(pd.DataFrame({"run": f"r{i}", "N": N, "S": steps,
                                  "L": L * np.exp(0.003 * rng.standard_normal(len(steps)))}))
    return pd.concat(rows, ignore_index=True)


def test_run_weights_move_whole_runs():
    runs = np.array(["a", "a", "b", "b", "b", "c"])
    W = run_weights(runs, 50, seed=0)
    assert W.shape == (50, 6)
    for w in W:  # every point of a run gets the run's count; counts over runs sum to the number of runs
        assert w[0] == w[1] and w[2] == w[3] == w[4]
        assert w[0] + w[2] + w[5] == 3


def test_transient_cut_default_and_user():
    cols = {"run": np.array(["a"] * 6), "S": np.array([1, 5, 10, 40, 60, 100.0]), "warmup": np.full(6, 30.0)}
    kept, info = transient_cut(cols)
    assert kept["S"].tolist() == [60, 100] and info["n_before"] == 6 and info["n_after"] == 2  # >= 2 x 30
    kept, info = transient_cut({k: v for k, v in cols.items() if k != "warmup"})
    assert kept["S"].tolist() == [10, 40, 60, 100] and "no warm-up column" in info["policy"]
    kept, info = transient_cut(cols, min_step=5)
    assert kept["S"].tolist() == [5, 10, 40, 60, 100] and info["min_step"] == 5


def test_kaplan_ns_on_curves_resamples_runs_and_cuts_the_transient():
    df = _ns_curves()
    law = fit_law("kaplan-ns", df, bootstrap=100, seed=0)
    assert law.resample_ == "run" and law.bootstrap_["resample"] == "run"
    assert law.transient_["n_before"] == len(df) and law.n_points_ == int((df["S"] >= 10).sum())
    assert law.params_["alpha_S"] == pytest.approx(0.76, rel=0.05)
    d = law.to_dict()
    assert d["resample"] == "run" and d["transient"]["policy"].startswith("S >= max(2 * warmup_steps, 10)")
    # without the run column the same rows are independent points (the old bootstrap)
    assert fit_law("kaplan-ns", df.drop(columns="run"), bootstrap=20).resample_ == "point"


def test_run_bootstrap_is_wider_than_point_bootstrap_with_run_offsets():
    df = study_kaplan_ns(np.random.default_rng(3))
    run = fit_law("kaplan-ns", df, bootstrap=150, seed=0).ci95_["alpha_N"]
    point = fit_law("kaplan-ns", df.drop(columns="run"), bootstrap=150, seed=0).ci95_["alpha_N"]
    assert run[1] - run[0] > 1.3 * (point[1] - point[0])  # and 2.6x at 20 studies' median (README)


def test_kaplan_c_on_curves_fits_the_frontier_in_each_resample():
    df = study_frontier(np.random.default_rng(0))
    law = fit_law("kaplan-c", df, bootstrap=100, seed=0)
    assert law.resample_ == "run" and law.n_points_ == 60  # the 60-point frontier, not the 128 curve points
    assert law.params_["alpha_C"] == pytest.approx(0.057, rel=0.1)
    lo, hi = law.ci95_["alpha_C"]
    assert lo < law.params_["alpha_C"] < hi
    cmin = fit_law("kaplan-cmin", df, bootstrap=30, seed=0)
    assert cmin.resample_ == "run" and cmin.n_points_ == 60


def test_bcrit_on_curve_points_resamples_runs():
    rng = np.random.default_rng(0)
    rows = [pd.DataFrame({"run": f"r{i}", "S": np.geomspace(10, 1000, 12), "L": (L := np.linspace(4.5 - i * 0.2, 3 - i * 0.1, 12)),
                          "B": 2e8 / L ** (1 / 0.21) * np.exp(0.05 * rng.standard_normal() + 0.01 * rng.standard_normal(12))})
            for i in range(5)]
    law = fit_law("bcrit", pd.concat(rows, ignore_index=True), bootstrap=80)
    assert law.resample_ == "run" and law.params_["alpha_B"] == pytest.approx(0.21, rel=0.1)


def test_curve_laws_need_several_runs_and_enough_points():
    one = _ns_curves()
    one = one[one["run"] == "r0"]
    with pytest.raises(UserError, match="needs at least 2 runs"):
        fit_law("kaplan-ns", one)
    with pytest.raises(UserError, match="leaves 0 of"):
        fit_law("kaplan-ns", _ns_curves(), min_step=1e7)


def test_to_min_policies():
    S, B, L = np.array([100.0, 1000.0]), np.array([512.0, 512.0]), np.array([4.0, 3.0])
    assert to_min("S", S, B, L, "none").tolist() == S.tolist()
    ns = np.array([512.0, np.nan])  # measured at the first point only: the second falls back to eq 1.4
    got = to_min("S", S, B, L, "noise-scale", noise_scale=ns)
    assert got[0] == pytest.approx(50.0) and got[1] < S[1]
    law = to_min("C", S, B, L, "bcrit-law", bcrit={"B_star": 512.0 * 4.0 ** 5, "alpha_B": 0.2})
    assert law[0] == pytest.approx(50.0)
    with pytest.raises(UserError, match="unknown S_min/C_min policy"):
        to_min("S", S, B, L, "magic")


def test_bcrit_identified_only_within_3x_of_the_scanned_batches():
    L = np.linspace(5.5, 2.0, 40)

    def scan(scale):
        rows = [{"run": f"b{B:.0f}", "B": B, "S": s, "L": lv} for B in np.geomspace(256, 4096, 5)
                for lv, s in zip(L, 50 * (L - 1.5) ** -2 * (1 + scale / L ** (1 / 0.3) / B), strict=True)]
        df = pd.DataFrame(rows)
        return batch_scan_levels({c: df[c].to_numpy() for c in ("run", "B", "S", "L")})

    assert any(lv["identified"] for lv in scan(2e4))  # B_crit inside the scanned 256..4096
    far = scan(2e7)  # B_crit ~ 10^5-10^6 tokens: > 3x beyond the largest batch
    assert not any(lv["identified"] for lv in far if lv["B_crit"] > 3 * 4096)


def test_fit_csv_with_run_column_records_choices(tmp_path):
    csv = tmp_path / "curves.csv"
    _ns_curves().to_csv(csv, index=False)
    d = json.loads(run_main("fit", "--csv", csv, "--law", "kaplan-ns", "--bootstrap", "50", "--json", "-",
                           check=True).stdout)
    assert d["resample"] == "run" and d["bootstrap"]["resample"] == "run"
    assert 0 < d["bootstrap"]["converged_fraction"] <= 1 and d["transient"]["n_after"] < d["transient"]["n_before"]
    assert d["flops"] == "as given in column C"
    d = json.loads(run_main("fit", "--csv", csv, "--law", "kaplan-ns", "--min-step", "100", "--json", "-",
                           check=True).stdout)
    assert d["transient"]["min_step"] == 100 and d["n_points"] == 6 * int((np.geomspace(1, 1e5, 26) >= 100).sum())


@pytest.mark.parametrize("args,needle", [
    (["--law", "kaplan-ns", "--query", "run == 'r0'"], "needs at least 2 runs"),
    (["--law", "kaplan-ns", "--min-step", "1e9"], "leaves 0 of"),
    (["--law", "kaplan-ns", "--flops", "magic"], "unknown --flops"),
])
def test_fit_curve_bad_input_exit_2(tmp_path, args, needle):
    csv = tmp_path / "curves.csv"
    _ns_curves().to_csv(csv, index=False)
    out = tmp_path / "fit.json"
    out.write_text('{"keep": true}\n')
    assert_clean_error(run_main("fit", "--csv", csv, *args, "--json", out), needle)
    assert out.read_text() == '{"keep": true}\n'


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from tests.helpers import make_store

    return make_store(tmp_path_factory.mktemp("curves_store") / "runs.db")


def test_store_frames_record_flops_loss_and_policy(store):
    from scalinglab.laws.framework.data import frame_from_store
    from scalinglab.store.db import load_runs

    runs = frame_from_store(store, "kaplan-d")
    r = load_runs(store).set_index("run_id").loc[runs["run"]]
    sub = r["data_tokens"].notna().to_numpy()  # D-subset runs: their best (early-stopped) loss, the others final
    assert sub.any() and np.allclose(runs["L"][sub], r["best_val_loss"][sub])
    assert np.allclose(runs["L"][~sub], runs["L_final"][~sub])
    assert runs.attrs["provenance"]["flops"] == "paper" and "best" in runs.attrs["provenance"]["loss"]
    exact = frame_from_store(store, "kaplan-c", flops="exact")
    head = frame_from_store(store, "kaplan-c", flops="with-head")
    assert (head["C"] > exact["C"]).all()
    ns = frame_from_store(store, "kaplan-ns")
    assert ns.attrs["provenance"]["min_policy"] == "noise-scale" and (ns["S"] < ns["step"]).all()
    fitted = fit_law("kaplan-ns", ns, bootstrap=20)
    d = fitted.to_dict()
    assert d["min_policy"] == "noise-scale" and d["flops"] == "paper" and d["resample"] == "run"
    assert d["transient"]["n_after"] < d["transient"]["n_before"]  # warm-up (5% of 600 steps) x 2 = 60 steps
    with pytest.raises(UserError, match="unknown --flops"):
        frame_from_store(store, "kaplan-c", flops="6N")


def test_fit_sensitivity_prints_each_convention(store):
    out = run_main("fit", "--db", store, "--law", "kaplan-c", "--sensitivity", check=True).stdout
    for word in ("paper", "exact", "with-head", "non-emb", "default", "none", "alpha_C"):
        assert word in out
    assert_clean_error(run_main("fit", "--csv", store, "--law", "kaplan-c", "--sensitivity"), "--sensitivity needs --db")
