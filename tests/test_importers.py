"""`scalinglab import`: a store's own curves written by the real libraries (TensorBoard SummaryWriter, MLflow on
SQLite, wandb offline, a Trainer state JSON, CSV/JSONL) come back as the same curves and the same fits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scalinglab.importers import import_runs, read_runs
from scalinglab.laws import fit_law
from scalinglab.laws.framework.data import frame_from_store
from scalinglab.store.db import load_evals, load_runs
from tests.helpers import N_CTX, VOCAB, assert_clean_error, make_store, run_cli, run_main

CURVE = ["step", "tokens", "flops", "val_loss", "train_loss", "lr"]


@pytest.fixture(scope="module")
def native(tmp_path_factory) -> dict:
    """The MAIN family of the synthetic store: runs (with their config) and every curve point."""
    db = make_store(tmp_path_factory.mktemp("native") / "native.db", extras=False)
    runs = load_runs(db)
    runs = runs[runs["status"] == "done"].reset_index(drop=True)
    return {"db": db, "runs": runs, "evals": load_evals(db)}


def _per_run(native):
    for r in native["runs"].itertuples():
        yield r, native["evals"][native["evals"]["run_id"] == r.run_id]


def _config(r) -> dict:
    return {"n_layer": int(r.n_layer), "d_model": int(r.d_model), "n_ctx": int(r.n_ctx),
            "batch_size": int(r.batch_size), "vocab_size": VOCAB, "N": int(r.n_params)}


# ---- writers: each puts the native store's curves into one format with that format's own library ----------------
def write_table(native, out: Path, fmt: str) -> tuple[Path, Path]:
    curve = native["evals"].rename(columns={"run_id": "run", "val_loss": "loss"})[["run", *CURVE[:3], "loss",
                                                                                     *CURVE[4:]]]
    config = pd.DataFrame([{"run": r.run_id, **_config(r)} for r in native["runs"].itertuples()])
    src, cfg = out / f"curves.{fmt}", out / "config.csv"
    if fmt == "csv":
        curve.to_csv(src, index=False)
    else:
        src.write_text("".join(json.dumps(r) + "\n" for r in curve.to_dict("records")))  # exact floats
    config.to_csv(cfg, index=False)
    return src, cfg


def write_tensorboard(native, out: Path) -> Path:
    from torch.utils.tensorboard import SummaryWriter

    for r, ev in _per_run(native):
        w = SummaryWriter(log_dir=str(out / r.run_id))
        for p in ev.itertuples():
            for tag in ("tokens", "flops", "val_loss", "train_loss", "lr"):
                w.add_scalar(tag, getattr(p, tag), global_step=int(p.step))
        w.add_hparams(_config(r), {"hparam/final_loss": float(r.val_loss)}, run_name=".")
        w.close()
    return out


def write_mlflow(native, out: Path) -> str:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{out / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("roundtrip")
    for r, ev in _per_run(native):
        run = client.create_run(exp, run_name=r.run_id)
        rid = run.info.run_id
        for k, v in _config(r).items():
            client.log_param(rid, k, v)
        metrics = [Metric(tag, float(getattr(p, tag)), 0, int(p.step))
                   for p in ev.itertuples() for tag in ("tokens", "flops", "val_loss", "train_loss", "lr")]
        client.log_batch(rid, metrics=metrics)
        client.set_terminated(rid, "FINISHED")
    return uri.removeprefix("sqlite:///")


WANDB_WRITER = """
import json, sys, wandb
for run in json.load(open(sys.argv[1])):
    r = wandb.init(project="roundtrip", name=run["name"], config=run["config"], dir=sys.argv[2])
    for p in run["points"]:
        r.log({k: v for k, v in p.items() if k != "step"}, step=p["step"])
    r.finish()
"""


def write_wandb(native, out: Path) -> Path:
    """wandb offline (WANDB_MODE=offline, WANDB_DIR in tmp) in a child process, so the SDK's service and
    settings never touch the test process."""
    runs = [{"name": r.run_id, "config": _config(r),
             "points": [{k: (int(v) if k in ("step", "tokens") else float(v)) for k, v in p.items()}
                        for p in ev[["step", "tokens", "flops", "val_loss", "train_loss", "lr"]].to_dict("records")]}
            for r, ev in _per_run(native)]
    spec = out / "runs.json"
    spec.write_text(json.dumps(runs))
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": str(out), "WANDB_SILENT": "true",
           "WANDB_DISABLE_GIT": "true", "WANDB_CONSOLE": "off"}
    subprocess.run([sys.executable, "-c", WANDB_WRITER, str(spec), str(out)], env=env, check=True, timeout=300)
    return out / "wandb"


def write_hf(native, out: Path) -> tuple[Path, Path]:
    """A Trainer output folder per run (trainer_state.json + a GPT-2 config.json); N and 6N FLOPs per token
    in a config table, since a Trainer logs neither."""
    for r, ev in _per_run(native):
        d = out / r.run_id
        d.mkdir(parents=True)
        history = []
        for p in ev.itertuples():
            history.append({"step": int(p.step), "loss": float(p.train_loss), "learning_rate": float(p.lr),
                            "num_input_tokens_seen": int(p.tokens)})
            history.append({"step": int(p.step), "eval_loss": float(p.val_loss), "num_input_tokens_seen": int(p.tokens)})
        state = {"global_step": int(ev["step"].max()), "max_steps": int(r.steps), "log_history": history,
                 "train_batch_size": int(r.batch_size), "total_flos": float(r.flops)}
        (d / "trainer_state.json").write_text(json.dumps(state))
        (d / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": int(r.n_layer),
                                                   "n_embd": int(r.d_model), "n_head": 1,
                                                   "n_positions": N_CTX, "vocab_size": VOCAB}))
    table = out.parent / "hf_config.csv"
    pd.DataFrame([{"run": r.run_id, "N": int(r.n_params), "flops_per_token": 6 * int(r.n_params)}
                  for r in native["runs"].itertuples()]).to_csv(table, index=False)
    return out, table


def _write(fmt: str, native, out: Path) -> tuple[str, str | None]:
    if fmt in ("csv", "jsonl"):
        src, cfg = write_table(native, out, fmt)
        return str(src), str(cfg)
    if fmt == "tensorboard":
        return str(write_tensorboard(native, out / "tb")), None
    if fmt == "mlflow":
        return write_mlflow(native, out), None
    if fmt == "wandb":
        return str(write_wandb(native, out)), None
    src, cfg = write_hf(native, out / "hf")
    return str(src), str(cfg)


LIBS = {"tensorboard": "tbparse", "mlflow": "mlflow", "wandb": "wandb"}


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "tensorboard", pytest.param("mlflow", marks=pytest.mark.slow),
                                 pytest.param("wandb", marks=pytest.mark.slow), "hf-trainer"])
def test_each_format_brings_the_same_curves_and_fits_back(fmt, native, tmp_path):
    if fmt in LIBS:
        pytest.importorskip(LIBS[fmt])
    if fmt == "tensorboard":
        pytest.importorskip("torch.utils.tensorboard")
    src, cfg = _write(fmt, native, tmp_path)
    db = tmp_path / "imported.db"
    summary = import_runs(src, db, fmt=fmt, config_table=cfg)
    assert len(summary.runs) == len(native["runs"]) and all(r["status"] == "done" for r in summary.runs)
    # same curves: every point of every run, matched on the source's run name
    runs = load_runs(db)
    name = {row.run_id: json.loads(row.config)["import"].get("name") or json.loads(row.config)["import"]["run"]
            for row in runs.itertuples()}
    got = load_evals(db).assign(orig=lambda d: d["run_id"].map(name).str.split("/").str[-1])
    want = native["evals"].rename(columns={"run_id": "orig"})
    merged = want.merge(got, on=["orig", "step"], suffixes=("", "_imp"), how="outer", indicator=True)
    assert (merged["_merge"] == "both").all()
    rtol = 1e-6 if fmt == "tensorboard" else 1e-12  # TensorBoard scalars are float32
    for col in ("tokens", "flops", "val_loss", "train_loss", "lr"):
        np.testing.assert_allclose(merged[f"{col}_imp"], merged[col], rtol=rtol, err_msg=col)
    assert set(runs["n_params"]) == set(native["runs"]["n_params"])
    # same fits: L(N) on final losses, L(C) on the compute frontier of the curves (rows come in run-id order,
    # which differs from the native store's, so the optimiser's sums differ in the last bits)
    # (exact FLOPs and no transient cut: an import carries neither flops_no_context nor the warm-up of the run)
    for law in ("kaplan-n", "kaplan-c"):
        a = fit_law(law, frame_from_store(native["db"], law, flops="exact"), min_step=0).params_
        b = fit_law(law, frame_from_store(db, law, flops="exact"), min_step=0).params_
        for k in a:
            assert b[k] == pytest.approx(a[k], rel=1e-4 if fmt == "tensorboard" else 1e-6), (law, k)


def test_reimport_updates_and_never_duplicates(native, tmp_path):
    src, cfg = write_table(native, tmp_path, "csv")
    db = tmp_path / "s.db"
    first = import_runs(src, db, config_table=cfg)
    again = import_runs(src, db, config_table=cfg)
    assert [r["run_id"] for r in first.runs] == [r["run_id"] for r in again.runs]
    assert len(load_runs(db)) == len(native["runs"]) and len(load_evals(db)) == len(native["evals"])
    # the source grows (a running run logs another eval) and one loss is corrected: the store follows
    df = pd.read_csv(src)
    last = df[df["run"] == df["run"].iloc[0]].iloc[-1].copy()
    last["step"], last["tokens"], last["loss"] = last["step"] + 100, last["tokens"] + 100 * 1024, 2.5
    df = pd.concat([df, last.to_frame().T], ignore_index=True)
    df.loc[0, "loss"] = 9.0
    df.to_csv(src, index=False)
    import_runs(src, db, config_table=cfg)
    ev = load_evals(db)
    assert len(ev) == len(native["evals"]) + 1 and len(load_runs(db)) == len(native["runs"])
    rid = first.runs[0]["run_id"]
    mine = ev[ev["run_id"] == rid]
    assert mine["val_loss"].iloc[0] == 9.0 and mine["val_loss"].iloc[-1] == 2.5
    assert load_runs(db).set_index("run_id").loc[rid, "val_loss"] == 2.5


def test_n_d_c_from_a_config_shape_and_the_convention_recorded(tmp_path):
    """No N, tokens or FLOPs logged: N counted from n_layer/d_model, tokens = step·batch·n_ctx, Table 1 FLOPs."""
    from scalinglab.config import ModelConfig
    from scalinglab.model.counting import flops_per_token_train, n_params_closed_form

    src = tmp_path / "c.jsonl"
    src.write_text("".join(json.dumps({"run": "a", "step": s, "eval_loss": 5.0 / s, "n_layer": 2, "d_model": 64,
                                       "n_ctx": 128, "batch_size": 8}) + "\n" for s in (1, 10, 100)))
    db = tmp_path / "s.db"
    s = import_runs(src, db)
    (run,) = read_runs(src)
    from scalinglab.importers.schema import to_result

    rec = to_result(run)
    shape = ModelConfig(n_layer=2, d_model=64, n_ctx=128, vocab_size=2)
    assert s.runs[0]["N"] == rec["n_params"] == n_params_closed_form(shape)
    assert [p["tokens"] for p in rec["curve"]] == [1024, 10240, 102400]
    assert rec["curve"][-1]["flops"] == pytest.approx(102400 * flops_per_token_train(shape))
    assert rec["import"]["flop_convention"].startswith("Kaplan Table 1")
    assert "counted" in rec["import"]["n_params_source"]
    stored = json.loads(load_runs(db)["config"].iloc[0])
    assert stored["import"]["format"] == "jsonl" and stored["batch_size"] == 8


@pytest.mark.slow
def test_cli_import_then_fit_matches_the_native_fit(native, tmp_path):
    src, cfg = write_table(native, tmp_path, "csv")
    db = tmp_path / "s.db"
    out = json.loads(run_cli("import", src, "--db", db, "--config", cfg, "--json", check=True).stdout)
    assert out["format"] == "csv" and len(out["runs"]) == len(native["runs"]) and out["points"] == len(native["evals"])
    fit = lambda d: json.loads(run_main("fit", "--db", d, "--law", "kaplan-n", "--json", "-", check=True).stdout)  # noqa: E731
    assert fit(db)["params"] == pytest.approx(fit(native["db"])["params"], rel=1e-6)  # rows in another run-id order


@pytest.mark.slow
def test_report_on_imported_runs(native, tmp_path):
    src, cfg = write_table(native, tmp_path, "csv")
    db = tmp_path / "s.db"
    run_main("import", src, "--db", db, "--config", cfg, check=True)
    run_main("report", "--db", db, "--out", tmp_path / "report", check=True)
    assert (tmp_path / "report" / "index.html").is_file()


# ---- bad input: exit 2, one line, nothing written ---------------------------------------------------------------
def _no_db(db: Path) -> None:
    assert not db.exists(), "a failed import must not create the store"


def test_unknown_format_and_undetectable_source(tmp_path):
    db = tmp_path / "s.db"
    f = tmp_path / "x.csv"
    f.write_text("run,step,loss\na,1,3.0\n")
    assert_clean_error(run_main("import", f, "--db", db, "--format", "parquet"), "unknown --format", "parquet")
    other = tmp_path / "notes.txt"
    other.write_text("hello\n")
    assert_clean_error(run_main("import", other, "--db", db), "cannot tell the format")
    _no_db(db)


def test_folder_with_no_runs(tmp_path):
    db = tmp_path / "s.db"
    (tmp_path / "empty").mkdir()
    for fmt in ("tensorboard", "wandb", "hf-trainer"):
        if fmt in LIBS:
            pytest.importorskip(LIBS[fmt])
        assert_clean_error(run_main("import", tmp_path / "empty", "--db", db, "--format", fmt), "no runs found")
    _no_db(db)


def test_run_without_a_loss_series(tmp_path):
    db = tmp_path / "s.db"
    f = tmp_path / "c.csv"
    f.write_text("run,step,tokens,N,train_loss\na,1,100,1000,3.0\na,2,200,1000,2.0\n")
    assert_clean_error(run_main("import", f, "--db", db), "run 'a'", "no loss series")
    _no_db(db)


def test_jsonl_line_that_is_not_json(tmp_path):
    db = tmp_path / "s.db"
    f = tmp_path / "c.jsonl"
    f.write_text('{"run": "a", "step": 1, "loss": 3.0, "tokens": 10, "N": 5}\n\n{"run": "a", "step": 2,\n')
    assert_clean_error(run_main("import", f, "--db", db), "line 3", "not valid json")
    _no_db(db)


def test_bad_input_leaves_an_existing_store_as_it_was(native, tmp_path):
    src, cfg = write_table(native, tmp_path, "csv")
    db = tmp_path / "s.db"
    import_runs(src, db, config_table=cfg)
    before = (load_runs(db).drop(columns=["finished_at"]), load_evals(db))
    bad = tmp_path / "bad.csv"
    pd.read_csv(src).assign(loss=lambda d: d["loss"].where(d["run"] != d["run"].iloc[-1])).to_csv(bad, index=False)
    assert_clean_error(run_main("import", bad, "--db", db, "--config", cfg), "no loss series")
    pd.testing.assert_frame_equal(load_runs(db).drop(columns=["finished_at"]), before[0])
    pd.testing.assert_frame_equal(load_evals(db), before[1])


def test_bad_run_config_and_config_table(tmp_path):
    f = tmp_path / "c.csv"
    f.write_text("run,step,loss,N,tokens\na,1,3.0,10,5\n")
    db = tmp_path / "s.db"
    assert_clean_error(run_main("import", f, "--db", db, "--run-config", "los=x"), "not a canonical key")
    assert_clean_error(run_main("import", f, "--db", db, "--run-config", "loss"), "KEY=COLUMN")
    t = tmp_path / "t.csv"
    t.write_text("run,n_layer\nzzz,2\n")
    assert_clean_error(run_main("import", f, "--db", db, "--config", t), "does not have", "zzz")
    _no_db(db)
