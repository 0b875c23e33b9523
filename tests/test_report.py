"""Report: the figure registry, the static HTML/Markdown report and `scalinglab report`, on a hand-made store.

The store is filled through `store.db.record_result` with result dicts shaped like the trainer's, whose learning
curves follow L = L_inf(N) + (S_c/S_min)^0.6 with noise (test data only; the report never invents data).
"""

from __future__ import annotations

import html.parser
import math
import re
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import MAIN, assert_clean_error, make_store, run_cli, run_main, synthetic_result


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("report_store") / "runs.db")


@pytest.fixture(scope="module")
def kaplan_n_fit(store) -> dict:
    from scalinglab.laws import fit_law
    from scalinglab.laws.framework.data import runs_from_store

    df = runs_from_store(store)
    df = df[df["run"].isin(_main_ids(store))]
    return fit_law("kaplan-n", df, bootstrap=50, holdout=1).to_dict()


def _main_ids(db) -> set[str]:
    from scalinglab.store.db import load_runs

    r = load_runs(db)
    keep = (r["data_tokens"].isna() & (r["batch_size"] == 16) & (r["schedule"] == "cosine")
            & (r["arch"] == "transformer") & (r["status"] == "done"))
    return set(r.loc[keep, "run_id"])


def test_each_figure_is_drawn_exactly_when_its_data_exist(store):
    from scalinglab.report.figures import FIGURES, NotMeasured
    from scalinglab.report.study import Study

    study = Study.from_db(store)
    drawn, missing = set(), {}
    for spec in FIGURES:
        try:
            fig = spec.draw(study)
        except NotMeasured as e:
            missing[spec.number] = str(e)
            continue
        drawn.add(spec.number)
        for ax in fig.axes:  # every panel labelled (colour bars included)
            assert ax.get_xlabel() or ax.get_ylabel(), (spec.number, ax)
    assert drawn == {"1", "2/19", "4", "5", "6", "7", "8/24", "10", "13/14", "16", "18", "20/21", "22", "23"}
    # no recurrent runs, no kaplan-nd / bcrit / L(C)+L(D) fits: said, not invented
    assert set(missing) == {"9", "11", "15", "17", "LR"}
    assert all(missing.values())
    assert "LR sweep" in missing["LR"]
    assert "recurrent" in missing["17"] and "kaplan-nd" in missing["9"]


def test_study_keeps_only_finished_runs_and_parses_json(store):
    from scalinglab.report.study import Study

    s = Study.from_db(store)
    assert len(s.runs) == len(s.done) + 1  # the diverged run is listed but never drawn
    assert isinstance(s.done["val_loss_per_position"].iloc[0], list)
    assert s.eval_set_names() == ["shifted"]
    main = s.main_family()
    # batch scans, schedules, D-subsets, LSTMs and all but one shape of the shape scan are not in L(N)
    assert set(main["run_id"]) <= _main_ids(store)
    assert sorted(zip(main["n_layer"], main["d_model"], strict=True)) == sorted([(1, 45), *MAIN[:2], *MAIN[3:]])


def test_figures_without_data_are_listed_with_the_plan_entry(tmp_path):
    import tomllib

    from scalinglab.report.figures import FIGURES, render_figures
    from scalinglab.report.study import Study

    db = tmp_path / "one.db"
    from scalinglab.store.db import record_result

    record_result(db, synthetic_result(np.random.default_rng(1), n_layer=1, d_model=32), plan="p")
    results = render_figures(Study.from_db(db), tmp_path / "figs")
    assert len(results) == len(FIGURES)
    # one run measures only the noise scale along its curve (Fig. 10); nothing else is drawn
    assert [r.spec.number for r in results if r.drawn] == ["10"]
    assert sorted(p.name for p in (tmp_path / "figs").glob("*.png")) == ["fig10.png"]
    for r in results:
        assert r.drawn or r.reason
        if r.spec.plan.startswith("[") or "\n" in r.spec.plan:  # plan snippets are valid TOML
            tomllib.loads(r.spec.plan)


def test_fit_lines_use_the_fitted_law(store, kaplan_n_fit):
    from scalinglab.report.figures import law_predict

    p = kaplan_n_fit["params"]
    N = np.array([1e4, 1e5])
    assert np.allclose(law_predict(kaplan_n_fit, N=N), (p["N_c"] / N) ** p["alpha_N"])


def test_html_report_is_static_and_complete(store, kaplan_n_fit, tmp_path):
    from scalinglab.report.html import build_report
    from scalinglab.report.study import Study

    study = Study.from_db(store, fits={"kaplan-n": kaplan_n_fit},
                          plans=[{"compute_pf_days": 1.0, "N_opt": 1.2e9, "L_pred": 2.5, "sources": {}}])
    rep = build_report(study, tmp_path / "rep", only=["1", "23", "17"])
    assert [f.spec.number for f in rep.drawn] == ["1", "23"]
    out = tmp_path / "rep"
    text = (out / "index.html").read_text()
    links = _links(text)
    assert links["img"] == ["fig01.png", "fig23.png"]
    for ref in links["img"] + links["href"]:
        if ref.startswith("#"):
            assert f'id="{ref[1:]}"' in text, ref
        else:
            assert (out / ref).is_file(), ref  # every image, SVG and the stylesheet is beside index.html
    assert "style.css" in links["href"]
    assert not re.search(r"(src|href)=\"(https?:)?//", text), "nothing may load from the network"
    assert "<script" not in text
    a = kaplan_n_fit["params"]["alpha_N"]
    assert f"{a:.4g}" in text and "0.076" in text  # fitted exponent beside the paper's
    assert "largest held out" in text  # hold-out error shown
    assert "1.200e+09" in text  # planner row
    assert text.count("<tr>") >= len(Study.from_db(store).runs)  # every run in the runs table
    missing = text[text.index('id="missing"'):text.index('id="runs"')]
    assert "Figure 17" in missing and "universal" in missing  # listed with the plan entry that would measure it


def test_markdown_report(store, tmp_path):
    from scalinglab.report.html import build_report
    from scalinglab.report.study import Study

    rep = build_report(Study.from_db(store), tmp_path, "md", only=["6"])
    md = rep.path.read_text()
    assert rep.path.name == "index.md"
    assert "![Figure 6" in md and (tmp_path / "fig06.png").is_file() and (tmp_path / "fig06.svg").is_file()
    assert "## Not measured by this study" in md


@pytest.mark.slow
def test_report_cli(store, tmp_path, kaplan_n_fit):
    import json

    from scalinglab.io import atomic_write_json

    fits = atomic_write_json(tmp_path / "fit.json", kaplan_n_fit)  # one `scalinglab fit --json` object
    out = tmp_path / "rep"
    proc = run_cli("report", "--db", store, "--out", out, "--fits", fits, "--figures", "1,2", "--json", check=True)
    d = json.loads(proc.stdout.strip().splitlines()[-1])
    assert d["figures_drawn"] == ["1", "2/19"]
    assert (out / "index.html").is_file() and (out / "fig02_19.png").stat().st_size > 10_000
    assert "kaplan-n" in (out / "index.html").read_text()


def test_report_bad_input(tmp_path, store):
    missing = tmp_path / "missing.db"
    assert_clean_error(run_main("report", "--db", missing, "--out", tmp_path / "o"), "not found")
    assert not missing.exists() and not (tmp_path / "o").exists()
    assert_clean_error(run_main("report", "--db", store, "--out", tmp_path / "o", "--format", "pdf"), "format")
    assert_clean_error(run_main("report", "--db", store, "--out", tmp_path / "o", "--figures", "99"), "figure")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert_clean_error(run_main("report", "--db", store, "--out", tmp_path / "o", "--fits", bad), "json")
    assert not (tmp_path / "o").exists()


def _links(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {"img": [], "href": []}

    class P(html.parser.HTMLParser):
        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "img":
                found["img"].append(a["src"])
            elif "href" in a:
                found["href"].append(a["href"])

    P().feed(text)
    return found


def test_number_formatting():
    from scalinglab.report.content import fmt

    assert fmt(12768) == "12,768" and fmt(3312) == "3312" and fmt(np.int64(335712)) == "335,712" and fmt(2.5e9) == "2.500e+09" and fmt(0.0761234) == "0.07612"
    assert fmt(float("nan")) == "" and fmt(None) == "" and not math.isnan(float(fmt(1e-4)))


def test_shape_scans_vary_one_dimension_with_the_others_held():
    """Fig. 5: a d_ff scan's runs (whose aspect ratio moves with d_model) and a head scan's runs must not land in
    the aspect-ratio panel; a schedule study's decay-to-zero run is not a shape."""
    import pandas as pd

    from scalinglab.report.study import Study

    def row(n_layer, d_model, d_ff=None, n_heads=1, min_lr_ratio=0.1, loss=4.5):
        d_ff = d_ff or 4 * d_model
        n = n_layer * (4 * d_model**2 + 2 * d_model * d_ff)
        return dict(run_id=f"{n_layer}x{d_model}ff{d_ff}h{n_heads}m{min_lr_ratio}", status="done", arch="transformer",
                    n_layer=n_layer, d_model=d_model, d_ff=d_ff, d_attn=d_model, n_heads=n_heads, n_ctx=64,
                    batch_size=32, schedule="cosine", min_lr_ratio=min_lr_ratio, data_tokens=None, n_params=n,
                    val_loss=loss + 0.01 * n_layer + 0.001 * n_heads)

    aspect = [row(14, 24), row(8, 32), row(5, 40), row(2, 64), row(1, 96)]
    ff = [row(2, 88, 88), row(2, 80, 160), row(2, 48, 384), row(2, 40, 640)]
    heads = [row(2, 64, n_heads=h) for h in (2, 4, 8)]
    floor = [row(2, 64, min_lr_ratio=0.0, loss=4.0)]
    far = [row(4, 96)]  # 4× the N: a size of its own, in no scan
    scans = Study(runs=pd.DataFrame(aspect + ff + heads + floor + far)).shape_scans()
    shapes = {k: [sorted(zip(g["n_layer"], g["d_model"], g["d_ff"], g["n_heads"], strict=True)) for g in gs]
              for k, gs in scans.items()}
    two_by_64 = (2, 64, 256, 1)  # the reference shape belongs to every scan
    assert shapes["aspect"] == [sorted((r["n_layer"], r["d_model"], r["d_ff"], 1) for r in aspect)]
    assert shapes["ff_ratio"] == [sorted([(2, 88, 88, 1), (2, 80, 160, 1), two_by_64, (2, 48, 384, 1),
                                         (2, 40, 640, 1)])]
    assert shapes["head_dim"] == [sorted([two_by_64, (2, 64, 256, 2), (2, 64, 256, 4), (2, 64, 256, 8)])]
    assert all(g["val_loss"].min() > 4.1 for gs in scans.values() for g in gs)  # the floor-0 run is in none


def test_fit_table_holdout_and_paper_columns():
    """The hold-out shows the law's own target (L_ood for ood-offset, not its input L); a family fitted under its
    own key (kaplan-n:lstm) gets no paper constants, the paper's kaplan-n does."""
    from scalinglab.report.content import fit_rows, holdout_text

    h = {"k": 1, "points": [{"L": 4.391, "L_ood": 4.869, "predicted": 4.772, "rel_error": 4.772 / 4.869 - 1}]}
    assert holdout_text(h) == "1 largest held out; predicted 4.772 vs 4.869 measured (-1.99%)"
    fit = {"law": "kaplan-n", "params": {"alpha_N": 0.06, "N_c": 1e16}, "ci95": {}, "n_points": 5}
    rows = fit_rows({"kaplan-n": fit, "kaplan-n:lstm": fit})
    assert [r["paper"] for r in rows] == ["0.076", "8.800e+13", "", ""]
    flat = {"law": "bcrit", "params": {"B_star": 900.0, "alpha_B": 10.0}, "at_bounds": ["alpha_B"]}
    assert [r["value"] for r in fit_rows({"bcrit": flat})] == ["900", "10 (at bound: not determined)"]


@pytest.mark.parametrize("n_ctx", [1, 2, 3, 64, 100, 256, 1024])
def test_position_bins_cover_the_context_without_a_lone_last_position(n_ctx):
    from scalinglab.report.figures import position_bins

    edges = position_bins(n_ctx)
    assert edges[0][0] == 1 and edges[-1][1] == n_ctx
    assert all(b[0] == a[1] + 1 for a, b in zip(edges, edges[1:], strict=False))
    if n_ctx >= 64:  # the last bin (Figs. 7, 20) averages many positions, not position n_ctx alone
        assert edges[-1][1] - edges[-1][0] + 1 >= n_ctx // 4


def test_planner_rows_say_how_far_they_extrapolate(store, kaplan_n_fit):
    from scalinglab.report.content import plan_rows
    from scalinglab.report.study import Study, plan_budgets

    study = Study.from_db(store, fits={"kaplan-n": kaplan_n_fit})
    largest = study.done["pf_days"].max()
    rows = plan_budgets(study, [largest * 10, largest * 1e4])
    assert [r["x_largest_run"] for r in rows] == pytest.approx([10.0, 1e4])
    cols, _ = plan_rows(rows)
    assert cols[:2] == ["compute_pf_days", "x_largest_run"]


def test_report_leaves_the_matplotlib_backend_and_pyplot_alone(store, tmp_path, monkeypatch):
    """A notebook keeps its inline backend: building a report never calls matplotlib.use nor opens pyplot figures."""
    import sys

    import matplotlib

    from scalinglab.report.html import build_report
    from scalinglab.report.study import Study

    monkeypatch.setitem(matplotlib.rcParams, "backend", "template")  # a backend the report would not pick itself
    pyplot = sys.modules.get("matplotlib.pyplot")
    open_before = pyplot.get_fignums() if pyplot else []
    rep = build_report(Study.from_db(store), tmp_path / "rep", only=["1", "6"])
    assert len(rep.drawn) == 2 and (tmp_path / "rep" / "fig06.svg").is_file()
    assert matplotlib.get_backend() == "template"
    pyplot = sys.modules.get("matplotlib.pyplot")
    assert (pyplot.get_fignums() if pyplot else []) == open_before


def test_report_never_imports_pyplot(store, tmp_path):
    """In a fresh interpreter (so no other test's import hides it), drawing figures leaves pyplot unimported."""
    import os
    import subprocess
    import sys

    code = ("import sys, matplotlib; from scalinglab.report.html import build_report; "
            "from scalinglab.report.study import Study; "
            f"r = build_report(Study.from_db({str(store)!r}), {str(tmp_path / 'rep')!r}, only=['1', '20']); "
            "assert len(r.drawn) == 2, r.to_dict(); "
            "assert 'matplotlib.pyplot' not in sys.modules; print(matplotlib.rcParams['backend'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "MPLBACKEND": "svg"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "svg"


@pytest.mark.parametrize("flops", ["paper", "with-head"])
def test_fig15_frontier_is_drawn_in_the_l_of_c_fits_flop_convention(store, flops):
    """Fig. 15's measured frontier is on the axis of the L(C) fit it draws (laws.data.fit_axis), not exact FLOPs.

    The synthetic curves' exact FLOPs are 6·N·D, so `paper` is told apart by a context-free count 10% below it
    (as the trainer records beside the attention term) and `with-head` by the embedding head it adds."""
    from scalinglab.laws.framework.constants import PF_DAY
    from scalinglab.laws.framework.data import fit_axis
    from scalinglab.report.figures import FIGURES
    from scalinglab.report.figures.data import frontier_grid
    from scalinglab.report.study import Study

    base = Study.from_db(store)
    curves = base.curves.assign(flops_no_context=base.curves["flops"] * 0.9)
    fc = {"law": "kaplan-c", "params": {"alpha_C": 0.05, "C_c": 1e8 * PF_DAY}, "flops": flops}
    fd = {"law": "kaplan-d", "params": {"alpha_D": 0.095, "D_c": 5e13}}
    study = Study(runs=base.runs, curves=curves, fits={"kaplan-c": fc, "kaplan-d": fd})
    fig = next(s for s in FIGURES if s.number == "15").draw(study)
    drawn = next(ln for ln in fig.axes[0].get_lines() if ln.get_label() == "measured frontier")
    c = study.done_curves
    c = c[c["run_id"].isin(study.main_family()["run_id"])]
    on_axis = frontier_grid(c.assign(flops=fit_axis(fc, c, study.runs)["C"]))
    exact = frontier_grid(c)
    assert not np.allclose(on_axis["C_pf"].to_numpy(float), exact["C_pf"].to_numpy(float), rtol=1e-3, atol=0)
    np.testing.assert_allclose(drawn.get_xdata(), on_axis["C_pf"].to_numpy(float), rtol=1e-12)
    np.testing.assert_allclose(drawn.get_ydata(), on_axis["L"].to_numpy(float), rtol=1e-12)


def test_tuning_figure_draws_the_lr_sweep_and_the_batch_scans(tmp_path, store):
    """Figure LR: an LR sweep at three sizes (the best of each tagged main, the others lr-sweep) and batch scans
    at two sizes; the stars are the main family's runs and the batch panel marks the batch-opt fit's B*."""
    from scalinglab.laws import fit_law
    from scalinglab.laws.framework.data import frame_from_store
    from scalinglab.report.figures import NotMeasured
    from scalinglab.report.figures.tuning import fig_tuning
    from scalinglab.report.study import Study
    from scalinglab.store.db import record_result, set_family

    db = tmp_path / "runs.db"
    rng = np.random.default_rng(0)
    best = {}
    for dm in (16, 32, 64):
        for lr in (0.005, 0.01, 0.02):
            r = synthetic_result(rng, n_layer=2, d_model=dm)
            r["lr"] = lr
            r["config"]["lr"] = lr
            r["val_loss"] += 0.1 * np.log(lr * dm / 0.32) ** 2  # LR* = 0.32/d_model
            rid = record_result(db, r, plan="sweep")
            best.setdefault(dm, []).append((r["val_loss"], rid))
    for runs in best.values():
        for i, (_, rid) in enumerate(sorted(runs)):
            set_family(db, rid, "main" if i == 0 else "lr-sweep", "test")
    study = Study.from_db(db)
    fig = fig_tuning(study)
    a, b = fig.axes[0], fig.axes[1]
    stars = [ln for ln in a.lines if ln.get_marker() == "*"][0]
    main = study.family("main").sort_values("lr")
    assert sorted(stars.get_xdata()) == sorted(main["lr"])  # the stars are the main family's LRs
    third = fig.axes[2]  # no batch scans: the third panel says so and draws nothing
    assert b.collections and not third.lines and any("no batch-size scans" in t.get_text() for t in third.texts)
    for dm in (16, 32):
        for batch in (8, 16, 32, 64):
            r = synthetic_result(rng, n_layer=1, d_model=dm, batch=batch, steps=4096 // batch, schedule="constant")
            r["val_loss"] = 3.0 + 0.1 * np.log(batch / (dm / 2)) ** 2
            set_family(db, record_result(db, r, plan="scan"), "batch-scan", "test")
    bo = fit_law("batch-opt", frame_from_store(db, "batch-opt").query("family == 'batch-scan'")).to_dict()
    lro = fit_law("lr-opt", frame_from_store(db, "lr-opt").query("family in ['main', 'lr-sweep']")).to_dict()
    fig = fig_tuning(Study.from_db(db, fits={"batch-opt": bo, "lr-opt": lro}))
    c = fig.axes[2]
    marks = [ln for ln in c.lines if ln.get_marker() in ("D", "d") and len(ln.get_xdata())]  # d: B* at an edge
    assert [s["at_edge"] for s in bo["scans"]] == [True, False]
    assert sorted(m.get_xdata()[0] for m in marks) == pytest.approx(sorted(s["B"] for s in bo["scans"]))
    assert any("alpha_LR" in ln.get_label() or "α_LR" in ln.get_label() for ln in fig.axes[1].lines)
    with pytest.raises(NotMeasured, match="no LR sweep"):
        fig_tuning(Study.from_db(store))  # neither an LR sweep nor batch scans at two sizes
