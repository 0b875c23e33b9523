"""The SQLite results store: schema, migrations, run ids, atomic upserts, readers."""

from __future__ import annotations

import json
import math
import shutil
import sqlite3

import pytest

from scalinglab.errors import UserError
from scalinglab.store import db


def _cfg(corpus, **kw):
    return {"corpus": str(corpus), "n_layer": 1, "d_model": 32, "n_ctx": 32, "steps": 20, "batch_size": 4, **kw}


def _result(cfg, status="done", val_loss=3.25, steps=(0, 10, 20)):
    curve = [
        {"step": s, "tokens": s * 128, "examples": s * 4, "flops": s * 1e6, "flops_no_context": s * 9e5,
         "pf_days": s * 1e6 / 8.64e19, "wall_s": 0.1 * s, "tokens_per_s": 1000.0, "lr": 1e-3,
         "train_loss": 5.0 - 0.05 * s, "val_loss": 5.5 - 0.1 * s, "noise_scale": 10.0 + s,
         "noise_scale_seqs": 1.0, "eval_losses": {"shifted": 5.6 - 0.1 * s}, "epochs": 0.01 * s}
        for s in steps
    ]
    return {
        "status": status, "reason": None if status == "done" else "loss is nan", "steps": steps[-1],
        "tokens": steps[-1] * 128, "examples": steps[-1] * 4, "n_params": 12_000, "n_params_with_embeddings": 21_000,
        "n_embedding": 9_000, "flops": 2e7, "flops_no_context": 1.8e7, "pf_days": 2e7 / 8.64e19,
        "val_loss": val_loss, "best_val_loss": val_loss, "best_step": steps[-1], "train_loss": 3.1,
        "noise_scale": 30.0, "noise_scale_seqs": 1.0, "val_loss_per_position": [4.0, 3.5, 3.2],
        "eval_losses": {"shifted": 3.4}, "wall_s": 2.5, "tokens_per_s": 1000.0, "threads": 2, "device": "cpu",
        "dtype": "float32", "lr": 1e-3, "epochs": 0.2, "config": cfg, "curve": curve,
    }


def test_connect_sets_wal_foreign_keys_and_schema(tmp_path):
    conn = db.connect(tmp_path / "r.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"runs", "evals", "fits", "plan_runs", "events"} <= tables
    with pytest.raises(sqlite3.IntegrityError):  # an eval point needs its run
        conn.execute("INSERT INTO evals (run_id, step) VALUES ('nope', 0)")
    conn.close()
    # reopening applies nothing twice
    conn = db.connect(tmp_path / "r.db", create=False)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION
    conn.close()


def test_missing_db_is_not_created(tmp_path):
    with pytest.raises(UserError, match="not found"):
        db.connect(tmp_path / "missing.db", create=False)
    with pytest.raises(UserError):
        db.load_runs(tmp_path / "missing.db")
    assert list(tmp_path.iterdir()) == []


def test_foreign_or_newer_files_are_refused(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_text("not a database at all, just some text" * 50)
    with pytest.raises(UserError, match="junk.db"):
        db.connect(junk)
    assert junk.read_text().startswith("not a database")
    other = tmp_path / "other.db"
    c = sqlite3.connect(other)
    c.execute("CREATE TABLE t (x)")
    c.commit()
    c.close()
    with pytest.raises(UserError, match="not a scalinglab results DB"):
        db.connect(other)
    newer = tmp_path / "newer.db"
    db.connect(newer).close()
    c = sqlite3.connect(newer)
    c.execute(f"PRAGMA user_version = {db.SCHEMA_VERSION + 1}")
    c.commit()
    c.close()
    with pytest.raises(UserError, match="newer"):
        db.connect(newer)


def test_run_id_is_stable_and_ignores_execution_settings(synthetic_corpus, tmp_path):
    base = _cfg(synthetic_corpus)
    rid = db.run_id_for(base)
    assert len(rid) == db.RUN_ID_LEN and rid == db.run_id_for(dict(base))
    # threads/device say where it runs; explicit defaults are the same run
    assert db.run_id_for({**base, "threads": 1, "device": "cpu"}) == rid
    assert db.run_id_for({**base, "d_ff": 128, "d_attn": 32, "n_heads": 1, "lr": "auto"}) == rid
    # anything that changes the computation is a new run
    assert db.run_id_for({**base, "seed": 1}) != rid
    assert db.run_id_for({**base, "d_model": 64}) != rid
    assert db.run_id_for({**base, "lr": 1e-3}) != rid
    # the corpus is identified by content: a copy elsewhere is the same corpus ...
    moved = tmp_path / "elsewhere" / "corpus"
    shutil.copytree(synthetic_corpus, moved)
    assert db.run_id_for({**base, "corpus": str(moved)}) == rid
    # ... and a different one is not
    manifest = json.loads((moved / "corpus.json").read_text())
    manifest["shards"]["train"]["sha256"] = "0" * 64
    (moved / "corpus.json").write_text(json.dumps(manifest))
    assert db.run_id_for({**base, "corpus": str(moved)}) != rid


def test_record_result_round_trip(synthetic_corpus, tmp_path):
    path = tmp_path / "r.db"
    cfg = _cfg(synthetic_corpus)
    rid = db.record_result(path, _result(cfg), plan="p1")
    assert rid == db.run_id_for(cfg)
    runs = db.load_runs(path)
    assert len(runs) == 1
    row = runs.iloc[0]
    assert row["run_id"] == rid and row["plan"] == "p1" and row["status"] == "done"
    assert (row["n_layer"], row["d_model"], row["d_ff"], row["n_heads"], row["batch_size"]) == (1, 32, 128, 1, 4)
    assert row["val_loss"] == pytest.approx(3.25) and row["n_params"] == 12_000 and row["threads"] == 2
    assert row["flops"] == pytest.approx(2e7) and row["tokens"] == 20 * 128
    assert json.loads(row["eval_losses"]) == {"shifted": 3.4}
    assert json.loads(row["val_loss_per_position"]) == [4.0, 3.5, 3.2]
    assert json.loads(row["config"])["d_model"] == 32
    for col in ("host", "started_at", "finished_at", "wall_s", "schedule", "seed", "lr", "pf_days",
                "best_val_loss", "train_loss", "noise_scale", "n_embedding", "n_params_with_embeddings"):
        assert col in runs.columns, col
    evals = db.load_evals(path)
    assert list(evals["step"]) == [0, 10, 20]
    assert evals["eval_shifted"].tolist() == pytest.approx([5.6, 4.6, 3.6])
    for col in ("run_id", "tokens", "examples", "flops", "flops_no_context", "pf_days", "wall_s", "lr",
                "train_loss", "val_loss", "noise_scale", "noise_scale_seqs"):
        assert col in evals.columns, col
    assert db.load_runs(path, plan="p1").shape[0] == 1 and db.load_runs(path, plan="other").empty


def test_rerecording_updates_in_place_and_deletes_nothing(synthetic_corpus, tmp_path):
    path = tmp_path / "r.db"
    cfg = _cfg(synthetic_corpus)
    db.enqueue(path, [(db.run_id_for(cfg), cfg)], plan="p1")
    assert db.run_statuses(path) == {db.run_id_for(cfg): "queued"}
    db.mark_running(path, db.run_id_for(cfg), cfg, threads=2)
    db.mark_failed(path, db.run_id_for(cfg), "worker died")
    rid = db.record_result(path, _result(cfg, steps=(0, 10)), plan="p1")
    rid2 = db.record_result(path, _result(cfg, val_loss=3.0, steps=(0, 10, 20)), plan="p2")
    assert rid == rid2
    conn = db.connect(path)
    assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM evals").fetchone()[0] == 3  # union of both curves, no duplicates
    assert {r[0] for r in conn.execute("SELECT plan FROM plan_runs")} == {"p1", "p2"}
    history = [r[0] for r in conn.execute("SELECT status FROM events ORDER BY id")]
    assert history == ["queued", "running", "failed", "done", "done"]  # the failure is still on record
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    assert db.load_runs(path)["val_loss"].tolist() == [pytest.approx(3.0)]


def test_diverged_nan_is_stored_as_missing(synthetic_corpus, tmp_path):
    path = tmp_path / "r.db"
    cfg = _cfg(synthetic_corpus, lr=1000.0)
    res = _result(cfg, status="diverged", val_loss=float("nan"))
    res["curve"][-1]["train_loss"] = float("inf")
    db.record_result(path, res)
    row = db.load_runs(path).iloc[0]
    assert row["status"] == "diverged" and row["reason"] == "loss is nan"
    assert row["val_loss"] is None or math.isnan(row["val_loss"])
    assert db.get_run(path, row["run_id"])["result"]["val_loss"] is None


def test_a_failed_write_leaves_no_half_run(synthetic_corpus, tmp_path):
    path = tmp_path / "r.db"
    cfg = _cfg(synthetic_corpus)
    res = _result(cfg)
    del res["curve"][-1]["step"]  # the last point is malformed: nothing of the run may be stored
    with pytest.raises(UserError, match="step"):
        db.record_result(path, res)
    conn = db.connect(path)
    assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM evals").fetchone()[0] == 0
    conn.close()
    with pytest.raises(UserError, match="status"):
        db.record_result(path, {**_result(cfg), "status": "weird"})


def test_fits_are_appended(tmp_path):
    path = tmp_path / "r.db"
    a = db.save_fit(path, "kaplan-n", {"law": "kaplan-n", "params": {"alpha_N": 0.076, "N_c": 8.8e13}})
    b = db.save_fit(path, "kaplan-d", {"params": {"alpha_D": 0.095}})
    c = db.save_fit(path, "kaplan-n", {"params": {"alpha_N": 0.08, "N_c": 1e14}})
    assert a < b < c
    fits = db.load_fits(path)
    assert [f["law"] for f in fits] == ["kaplan-n", "kaplan-d", "kaplan-n"]
    assert [f["params"]["alpha_N"] for f in db.load_fits(path, law="kaplan-n")] == [0.076, 0.08]
    assert db.load_runs(path).empty and "val_loss" in db.load_runs(path).columns
    assert db.load_evals(path).empty and "step" in db.load_evals(path).columns
