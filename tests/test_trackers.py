"""`train`/`sweep --tracker`: every eval record and the config reach MLflow, TensorBoard and W&B (offline), checked by
reading them back with the importers and comparing with the run's own metrics.jsonl."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from scalinglab.importers import read_runs
from tests.helpers import assert_clean_error, run_cli, run_main

SHAPE = ["--n-layer", "1", "--d-model", "16", "--n-ctx", "32", "--batch-size", "4", "--threads", "1",
         "--steps", "12", "--eval-every", "4", "--eval-tokens", "512"]
LIBS = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}


def _env(kind: str, tmp: Path) -> dict:
    if kind == "wandb":
        return {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp), "WANDB_SILENT": "true", "WANDB_DISABLE_GIT": "true",
                "WANDB_CONSOLE": "off", "WANDB_PROJECT": "tracked"}
    if kind == "mlflow":
        return {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}", "MLFLOW_EXPERIMENT_NAME": "tracked"}
    return {}


def _source(kind: str, tmp: Path, out: Path) -> str:
    return {"wandb": str(tmp / "wandb"), "mlflow": str(tmp / "mlflow.db"), "tensorboard": str(out / "tensorboard")}[kind]


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["tensorboard", "mlflow", "wandb"])
def test_train_tracker_logs_every_eval_and_the_config(kind, synthetic_corpus, tmp_path):
    pytest.importorskip(LIBS[kind])
    out = tmp_path / "run"
    run_cli("train", "--corpus", synthetic_corpus, "--out", out, *SHAPE, "--tracker", kind,
            env=_env(kind, tmp_path), check=True)
    want = _metrics(out)
    assert len(want) >= 3
    (run,) = read_runs(_source(kind, tmp_path, out), fmt=kind)
    got = run.curve.dropna(subset=["loss"]).set_index("step")  # (TensorBoard: the hparams summary sits at step 0)
    steps = [r["step"] for r in want]
    assert sorted(got.index) == steps
    rtol = 1e-6 if kind == "tensorboard" else 1e-12  # TensorBoard scalars are float32
    for col in ("loss", "tokens", "flops", "train_loss", "lr"):
        src = "val_loss" if col == "loss" else col
        np.testing.assert_allclose(got.loc[steps, col].to_numpy(float), [r[src] for r in want], rtol=rtol, err_msg=col)
    assert int(float(run.config["n_layer"])) == 1 and int(float(run.config["d_model"])) == 16
    if kind != "tensorboard":
        assert run.status == "done"


@pytest.mark.slow
def test_sweep_tracker_logs_every_run(synthetic_corpus, tmp_path):
    pytest.importorskip("tensorboard")
    plan = tmp_path / "plan.toml"
    plan.write_text(f'name = "tracked"\ncorpus = "{synthetic_corpus}"\n[train]\nn_ctx = 32\nbatch_size = 4\n'
                    'steps = 8\neval_every = 4\neval_tokens = 512\n[[grid]]\nn_layer = 1\nd_model = [8, 16]\n')
    db = tmp_path / "runs.db"
    run_main("sweep", plan, "--db", db, "--threads", "1", "--tracker", "tensorboard", check=True)
    runs = read_runs(tmp_path / "runs", fmt="tensorboard")
    assert len(runs) == 2
    for r in runs:
        run_dir = Path(r.source["path"]).parent
        want = [m["val_loss"] for m in _metrics(run_dir)]
        np.testing.assert_allclose(r.curve.dropna(subset=["loss"]).sort_values("step")["loss"], want, rtol=1e-6)


def test_tracker_off_by_default_and_bad_names_exit_2(synthetic_corpus, tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert_clean_error(run_main("train", "--corpus", synthetic_corpus, "--out", out, *SHAPE, "--tracker", "neptune"),
                       "unknown --tracker", "neptune")
    assert not out.exists()
    plan = tmp_path / "plan.toml"
    plan.write_text(f'name = "p"\ncorpus = "{synthetic_corpus}"\n[train]\nsteps = 2\n[[run]]\nn_layer = 1\nd_model = 8\n')
    assert_clean_error(run_main("sweep", plan, "--db", tmp_path / "r.db", "--tracker", "neptune"), "unknown --tracker")
    assert not (tmp_path / "r.db").exists()
    monkeypatch.setenv("WANDB_MODE", "offline")
    run_main("train", "--corpus", synthetic_corpus, "--out", out, *SHAPE, check=True)
    assert not (out / "tensorboard").exists() and not any(Path(os.getcwd()).glob("mlflow.db"))
