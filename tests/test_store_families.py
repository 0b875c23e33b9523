"""Run families: plan tags reach the store, untagged (old) runs get the family the report used to infer, and an
old store opens without being changed and reports the same."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import MAIN, make_store


def _families(db: Path) -> dict[tuple, str]:
    from scalinglab.store.db import load_runs

    r = load_runs(db)
    r = r[r["status"] == "done"]
    key = zip(r["arch"], r["n_layer"], r["d_model"], r["batch_size"], r["data_tokens"].fillna(0), r["schedule"],
              strict=True)
    return dict(zip(key, r["family"], strict=True))


def test_untagged_runs_get_the_inferred_family(tmp_path):
    """The synthetic study's groups land in their families by the rule of store.families."""
    fam = _families(make_store(tmp_path / "runs.db"))
    main = {k for k, f in fam.items() if f == "main"}
    # of the shape scan at N ≈ 25k (aspect 2, 16, 45) the shape nearest the others' median aspect stays in
    kept = [(1, 45), *MAIN[:2], *MAIN[3:]]
    assert {(a, nl, dm) for a, nl, dm, *_ in main} == {("transformer", nl, dm) for nl, dm in kept}
    by = pd.Series(list(fam.values())).value_counts().to_dict()
    # 4 extra batch sizes, 6 D-subset runs, 2 schedules, 2 LSTMs, 2 shapes of the shape scan
    assert by == {"main": 6, "batch-scan": 4, "d-subsets": 6, "lr-schedules": 2, "lstm": 2, "shape": 2}
    assert {k[1:3] for k, f in fam.items() if f == "shape"} == {(8, 16), (2, 32)}


def test_study_main_family_is_the_tagged_family(tmp_path):
    from scalinglab.report.study import Study
    from scalinglab.store.db import enqueue, load_runs

    db = make_store(tmp_path / "runs.db")
    before = Study.from_db(db)
    assert len(before.main_family()) == 6 and before.done["family_inferred"].all()
    # a plan that tags the (8, 16) shape-scan run "main" moves it, and only it, into the main family
    runs = load_runs(db)
    rid = runs.loc[(runs["n_layer"] == 8) & (runs["d_model"] == 16), "run_id"].item()
    enqueue(db, [(rid, __import__("json").loads(runs.set_index("run_id").loc[rid, "config"]))], plan="synthetic",
            families={rid: "main"})
    after = Study.from_db(db)
    assert set(after.main_family()["run_id"]) == set(before.main_family()["run_id"]) | {rid}
    row = after.runs.set_index("run_id").loc[rid]
    assert row["family"] == "main" and not row["family_inferred"]
    assert set(after.main_family(one_shape=False)["run_id"]) == set(before.main_family(one_shape=False)["run_id"])


def _make_v1(db: Path) -> None:
    """Turn a store into one written before families existed (schema version 1)."""
    c = sqlite3.connect(db)
    c.execute("DROP INDEX runs_family")
    c.execute("ALTER TABLE runs DROP COLUMN family")
    c.execute("PRAGMA user_version = 1")
    c.commit()
    c.close()


def _dump(db: Path) -> tuple[int, list[str]]:
    c = sqlite3.connect(db)
    try:
        return c.execute("PRAGMA user_version").fetchone()[0], list(c.iterdump())
    finally:
        c.close()


def test_an_old_store_opens_unchanged_reports_the_same_and_migrates_on_write(tmp_path):
    from scalinglab.report.study import Study
    from scalinglab.store import db as store

    new = make_store(tmp_path / "new.db")
    old = make_store(tmp_path / "old.db")
    _make_v1(old)
    stamp = _dump(old)
    s_old, s_new = Study.from_db(old), Study.from_db(new)
    assert _dump(old) == stamp  # reading did not migrate (nor change) the old store
    cols = ["run_id", "family"]
    pd.testing.assert_frame_equal(s_old.runs[cols], s_new.runs[cols])
    for sel in ("main_family", "full_data"):
        assert set(getattr(s_old, sel)()["run_id"]) == set(getattr(s_new, sel)()["run_id"])
    assert set(store.run_statuses(old).values()) == {"done", "diverged"}
    # the first write migrates it: the family column exists, old runs stay untagged (inferred when read)
    store.save_fit(old, "kaplan-n", {"law": "kaplan-n", "params": {}})
    with sqlite3.connect(old) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION == 3
        assert c.execute("SELECT count(*) FROM runs WHERE family IS NOT NULL").fetchone()[0] == 0
    pd.testing.assert_frame_equal(Study.from_db(old).runs[cols], s_new.runs[cols])


def test_family_is_a_table_tag_not_part_of_the_run_id(synthetic_corpus, tmp_path):
    from scalinglab.sweep.plan import load_plan

    def plan(body: str) -> Path:
        p = tmp_path / "plan.toml"
        p.write_text(f'name = "p"\ncorpus = "{synthetic_corpus}"\n[train]\nn_ctx = 16\nsteps = 5\n' + body)
        return p

    tagged = load_plan(plan('family = "main"\n[[grid]]\nn_layer = [1]\nd_model = [8, 16]\n'
                            '[[grid]]\nfamily = "batch-scan"\nn_layer = 1\nd_model = 16\nbatch_size = [4, 8]\n'
                            '[[run]]\nfamily = "shape"\nn_layer = 1\nd_model = 8\n'))
    assert [s.family for s in tagged.runs] == ["main", "main", "batch-scan", "batch-scan"]  # (1, 8) stays main
    untagged = load_plan(plan('[[grid]]\nn_layer = [1]\nd_model = [8, 16]\n'))
    assert [s.run_id for s in untagged.runs] == [s.run_id for s in tagged.runs[:2]]
    assert all(s.family is None for s in untagged.runs)


@pytest.mark.parametrize("body, needle", [
    ('[[grid]]\nfamily = ["a", "b"]\nn_layer = [1]\nd_model = [8]\n', "not a grid axis"),
    ('[[grid]]\nfamily = "two words"\nn_layer = [1]\nd_model = [8]\n', "family"),
    ('[[grid]]\nfamily = 3\nn_layer = [1]\nd_model = [8]\n', "family"),
])
def test_bad_family_tags_name_the_table(synthetic_corpus, tmp_path, body, needle):
    from scalinglab.errors import UserError
    from scalinglab.sweep.plan import load_plan

    p = tmp_path / "plan.toml"
    p.write_text(f'name = "p"\ncorpus = "{synthetic_corpus}"\n[train]\nn_ctx = 16\nsteps = 5\n' + body)
    with pytest.raises(UserError, match=needle) as e:
        load_plan(p)
    assert "[[grid]] #1" in str(e.value) and "line 7" in str(e.value)
