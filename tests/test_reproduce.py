"""`scalinglab reproduce`: presets, refusal of foreign output folders, and one end-to-end run that resumes."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import tomllib

from tests.helpers import assert_clean_error, run_cli, run_main

MICRO_PLAN = """
name = "micro"
corpus = "corpus"
[train]
n_ctx = 16
batch_size = 16
steps = 12
eval_tokens = 256
checkpoint_every_steps = 0
[[grid]]
n_layer = [1]
d_model = [8, 16, 24, 32]
"""


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*")}


def test_unknown_preset_lists_the_presets(tmp_path):
    out = tmp_path / "o"
    assert_clean_error(run_main("reproduce", "--preset", "huge", "--out", out), "huge", "cpu", "gpu", "tiny")
    assert not out.exists()


def test_foreign_out_folder_is_refused_untouched(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    before = _snapshot(out)
    assert_clean_error(run_main("reproduce", "--preset", "tiny", "--out", out), "not empty")
    assert _snapshot(out) == before
    # a previous reproduce of another preset is refused too
    other = tmp_path / "cpu_run"
    other.mkdir()
    (other / "reproduce.json").write_text(json.dumps({"preset": "cpu"}))
    before = _snapshot(other)
    assert_clean_error(run_main("reproduce", "--preset", "tiny", "--out", other), "cpu")
    assert _snapshot(other) == before
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    assert_clean_error(run_main("reproduce", "--preset", "tiny", "--out", not_a_dir), "not a folder")


@pytest.mark.parametrize("preset", ["tiny", "cpu", "gpu"])
def test_presets_are_plans_that_meet_their_brief(preset, tmp_path, synthetic_corpus):
    from scalinglab.model.counting import count_model
    from scalinglab.sweep.plan import load_plan

    proc = run_main("reproduce", "--preset", preset, "--print-plan", check=True)
    raw = tomllib.loads(proc.stdout)
    assert raw["corpus"] == "corpus"
    (tmp_path / "plan.toml").write_text(proc.stdout)
    os.symlink(synthetic_corpus, tmp_path / "corpus")
    plan = load_plan(tmp_path / "plan.toml")
    main = [s for s in plan.runs if s.config.data_tokens is None and s.config.arch == "transformer"
            and s.config.batch_size == raw["train"]["batch_size"] and s.config.schedule == "cosine"]
    sizes = sorted({count_model(s.config.model(256)).n_params for s in main})
    decades = math.log10(sizes[-1] / sizes[0])
    assert len(sizes) >= 6 and decades > 1.0, (sizes, decades)
    if preset in ("cpu", "gpu"):
        assert decades >= (2.5 if preset == "cpu" else 1.5)
        assert len({s.config.data_tokens for s in plan.runs if s.config.data_tokens}) >= 3  # L(N, D)
        per_shape: dict[tuple, set] = {}
        for s in plan.runs:
            if s.config.data_tokens is None and s.config.arch == "transformer":
                per_shape.setdefault((s.config.n_layer, s.config.d_model), set()).add(s.config.batch_size)
        assert max(len(b) for b in per_shape.values()) >= 4  # a batch-size scan for B_crit
        assert {s.config.arch for s in plan.runs} == {"transformer", "lstm", "universal"}


@pytest.mark.slow
def test_reproduce_end_to_end_and_resume(tmp_path):
    plan = tmp_path / "micro.toml"
    plan.write_text(MICRO_PLAN)
    out = tmp_path / "out"
    args = ("reproduce", "--preset", "tiny", "--plan", plan, "--out", out, "--max-tokens", "30000",
            "--vocab-size", "300", "--workers", "2", "--figures", "1,23", "--json")
    first = json.loads(run_cli(*args, check=True).stdout.strip().splitlines()[-1])
    assert first["sweep"]["done"] == 4 and first["sweep"]["failed"] == 0
    fits = json.loads((out / "fits.json").read_text())
    assert set(fits) >= {"kaplan-n", "kaplan-c"}
    kn = fits["kaplan-n"]
    assert kn["law"] == "kaplan-n" and kn["n_points"] == 4 and 0 < kn["params"]["alpha_N"] < 2
    assert kn["ci95"]["alpha_N"] and kn["holdout"]["k"] == 1
    # the command and the API fit the same runs as fits.json, to the last digit (one Study selects them)
    import scalinglab as sl

    for law, extra in (("kaplan-n", ("--holdout", "1")), ("kaplan-c", ())):
        cli = json.loads(run_main("fit", "--db", out / "runs.db", "--law", law, "--bootstrap", "100", *extra,
                                  "--json", "-", check=True).stdout)
        api = sl.Study.from_db(out / "runs.db").fit(law, bootstrap=100, holdout=len(extra) // 2)
        assert cli["params"] == api.params_ == fits[law]["params"] and cli["ci95"] == fits[law]["ci95"]
    assert first["report"]["figures_drawn"] == ["1", "23"]
    html = (out / "report" / "index.html").read_text()
    assert "kaplan-n" in html and 'src="fig01.png"' in html
    assert (out / "runs.db").is_file() and len(list((out / "runs").iterdir())) == 4
    assert json.loads((out / "reproduce.json").read_text())["preset"] == "plan:micro.toml"
    plans = json.loads((out / "plans.json").read_text())
    assert plans and all(p["L_pred"] > 0 for p in plans)

    before = _snapshot(out)
    second = json.loads(run_main(*args, check=True).stdout.strip().splitlines()[-1])
    assert second["sweep"]["ran"] == 0 and second["sweep"]["already_done"] == 4
    after = _snapshot(out)
    changed = {k for k in after if before.get(k) != after[k]}
    # nothing redone: corpus, runs, fits and report untouched (only the marker and the store's WAL files move)
    assert changed <= {"reproduce.json", "runs.db", "runs.db-wal", "runs.db-shm", "runs.db.lock"}, changed
    assert second["fits"]["kaplan-n"]["params"] == first["fits"]["kaplan-n"]["params"]


@pytest.mark.slow
def test_comparisons_law_jobs_select_their_families(tmp_path):
    """The comparisons preset's fits: one law on several families under its own key, LR ranges, skips said."""
    import pandas as pd

    from scalinglab.reproduce import fit_laws, settings_for
    from scalinglab.study import Study
    from tests.helpers import make_store

    study = Study.from_frame(pd.DataFrame({"run_id": ["a", "b", "c"], "status": "done", "val_loss": 3.0,
                                           "family": "x", "arch": ["lstm", "lstm", "transformer"],
                                           "lr": [1e-3, 5e-3, 1e-3]}))
    assert study.select(None, arch="lstm", lr={"max": 3e-3}).selection["runs"] == ["a"]
    assert study.select("all", lr={"min": 2e-3}).selection["runs"] == ["b"]

    db = make_store(tmp_path / "runs.db")
    fits, skipped = fit_laws(db, settings_for("comparisons").laws, lambda _: None)
    assert {"kaplan-n", "log-n", "kaplan-c", "ood-offset", "ood-linear"} <= set(fits)
    assert set(skipped) == {"kaplan-n:lstm"} and "at least 3" in skipped["kaplan-n:lstm"]  # the store has 2 LSTMs
    assert fits["ood-offset"]["params"]["offset"] == pytest.approx(0.4, abs=1e-3)  # its "shifted" set is L + 0.4
    assert fits["ood-linear"]["params"]["slope"] == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("preset", ["tiny", "cpu", "gpu", "comparisons"])
def test_print_plan_round_trips_the_whole_preset(preset, tmp_path, synthetic_corpus):
    """--print-plan prints everything reproduce uses: loading the printed file gives the same runs (ids, families,
    configs), corpus settings, law jobs, budgets and note as the shipped preset."""
    from scalinglab.reproduce import preset_text, settings_for, settings_from_text
    from scalinglab.sweep.plan import load_plan

    printed = run_main("reproduce", "--preset", preset, "--print-plan", check=True).stdout
    os.symlink(synthetic_corpus, tmp_path / "corpus")
    (tmp_path / "printed.toml").write_text(printed)
    (tmp_path / "shipped.toml").write_text(preset_text(preset))
    a, b = load_plan(tmp_path / "printed.toml"), load_plan(tmp_path / "shipped.toml")
    assert [(r.run_id, r.family, r.config) for r in a.runs] == [(r.run_id, r.family, r.config) for r in b.runs]
    assert settings_from_text(printed, "printed.toml") == settings_for(preset)
    assert all(r.family for r in a.runs)  # every preset run is tagged


@pytest.mark.parametrize("preset", ["tiny", "cpu", "gpu", "comparisons"])
def test_preset_tags_are_the_families_old_stores_are_read_with(preset, tmp_path, synthetic_corpus):
    """The presets' explicit tags agree with the inference rule that untagged (old) stores are read with, so a
    store written before tags existed and one written now select the same runs, except where the rule was
    wrong: in gpu it kept a shape-scan run (2 × 320) in L(N) and dropped the main grid's 2 × 384."""
    import pandas as pd

    from scalinglab.model.counting import count_model
    from scalinglab.reproduce import preset_text
    from scalinglab.store.families import infer_families
    from scalinglab.sweep.plan import load_plan

    os.symlink(synthetic_corpus, tmp_path / "corpus")
    (tmp_path / "plan.toml").write_text(preset_text(preset))
    plan = load_plan(tmp_path / "plan.toml")
    runs = pd.DataFrame([{**s.config.model_dump(), "run_id": s.run_id, "status": "done", "val_loss": 3.0,
                          "n_params": count_model(s.config.model(256)).n_params} for s in plan.runs])
    inferred = dict(zip(runs["run_id"], infer_families(runs), strict=True))
    # an LR sweep's runs (`lr = "sweep"`) are tagged by the sweep when it picks each size's best LR, so no store
    # holds them untagged; the rule is not asked about them
    differ = {(s.config.n_layer, s.config.d_model, s.family, inferred[s.run_id])
              for s in plan.runs if s.family != inferred[s.run_id] and s.lr_group is None}
    # gpu: as cpu's, its batch scans run at constant LR and its WSD trunks and branches use another schedule, so
    # the rule calls them schedule studies; its shape scan's 2 × 320 has the aspect of the main sizes
    wrong = {"gpu": {(2, 320, "shape", "main")}
             | {(n, d, f, "lr-schedules") for n, d in ((3, 192), (4, 256), (6, 384)) for f in ("wsd", "wsd-branches")}
             | {(2, 128, "batch-scan", "lr-schedules"), (4, 256, "batch-scan", "lr-schedules")},
             # cpu's batch scans run at constant LR (the rule calls any non-modal schedule a schedule study) and
             # its shape scan's middle shape is not main; the rule predates this preset, whose stores are all tagged
             "cpu": {(2, 32, "batch-scan", "lr-schedules"), (3, 48, "batch-scan", "lr-schedules"),
                     (3, 40, "shape", "main")}}
    assert differ == wrong.get(preset, set())


def test_a_plan_file_carries_its_own_reproduce_settings(tmp_path):
    from scalinglab.reproduce import LawJob, settings_from_text

    text = MICRO_PLAN + ('[reproduce]\ncorpus = { source = "stdlib", vocab_size = 300 }\n[[reproduce.fit]]\n'
                         'law = "kaplan-n"\nselect = { n_layer = 1, data_tokens = { missing = true } }\n')
    s = settings_from_text(text, "micro.toml")
    assert s.corpus == {"source": "stdlib", "vocab_size": 300}
    assert s.laws == (LawJob("kaplan-n", {"n_layer": 1, "data_tokens": None}, 200, 0),)
    assert settings_from_text(MICRO_PLAN, "micro.toml") is None  # then the preset's settings apply
    bad = tmp_path / "bad.toml"
    bad.write_text(MICRO_PLAN + '[reproduce]\ncorpus = { source = "stdlib" }\n[[reproduce.fit]]\nlaw = "kaplan-n"\n')
    out = tmp_path / "out"
    assert_clean_error(run_main("reproduce", "--plan", bad, "--out", out), "bad.toml", "corpus.vocab_size")
    assert not out.exists()


def test_the_corpus_table_passes_val_fraction_to_prepare(tmp_path, monkeypatch):
    import scalinglab.data.prepare as prepare
    from scalinglab.reproduce import ensure_corpus, settings_from_text

    text = MICRO_PLAN + '[reproduce]\ncorpus = { source = "stdlib", vocab_size = 300, val_fraction = 0.03 }\n'
    text += '[[reproduce.fit]]\nlaw = "kaplan-n"\n'
    settings = settings_from_text(text, "micro.toml").corpus
    seen = {}

    def fake_prepare(source, out, **kw):
        seen.update(kw, source=source)
        return {"train_tokens": 1, "val_tokens": 1, "vocab_size": kw["vocab_size"]}

    monkeypatch.setattr(prepare, "prepare_corpus", fake_prepare)
    ensure_corpus(tmp_path, settings, {}, lambda m: None)
    assert seen == {"source": "stdlib", "vocab_size": 300, "max_tokens": None, "val_fraction": 0.03,
                    "overwrite": False}
    bad = tmp_path / "bad.toml"
    bad.write_text(MICRO_PLAN + '[reproduce]\ncorpus = { source = "stdlib", vocab_size = 300, val_fraction = 1.5 }\n'
                   '[[reproduce.fit]]\nlaw = "kaplan-n"\n')
    assert_clean_error(run_main("reproduce", "--plan", bad, "--out", tmp_path / "out"), "val_fraction")
    assert not (tmp_path / "out").exists()
