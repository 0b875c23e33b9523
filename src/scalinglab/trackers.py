"""Live tracking: every evaluation record and the run config to MLflow, TensorBoard or W&B (off by default).

`tracking(kind, run_id, config, out_dir)` is a context manager yielding the `on_eval` hooks for
`run_training` (none when `kind` is None) and closing the tracker with the run's outcome. Each eval record's
numbers are logged at its step (`val_loss`, `train_loss`, `tokens`, `flops`, `lr`, `noise_scale`, ... and
`eval/<name>` per extra eval set); the config is logged as params / hparams / wandb config.

Where they write (the libraries' own settings win where they have them):
  tensorboard  RUN_DIR/tensorboard (point `tensorboard --logdir` at a sweep's runs/ folder to see them all)
  mlflow       MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working directory; experiment
               MLFLOW_EXPERIMENT_NAME or "scalinglab"; a resumed run continues the MLflow run of its run id
  wandb        WANDB_PROJECT or "scalinglab", WANDB_MODE / WANDB_DIR as set (offline needs no network);
               the W&B run id is the scalinglab run id, so a resumed run continues it
The libraries are the optional `track` extra.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from scalinglab.errors import UserError

TRACKERS = ("mlflow", "tensorboard", "wandb")
_MODULES = {"mlflow": "mlflow", "tensorboard": "torch.utils.tensorboard", "wandb": "wandb"}


def check_tracker(kind: str | None) -> None:
    """A one-line UserError for an unknown tracker or one whose library is missing (before any training)."""
    if kind is None:
        return
    if kind not in TRACKERS:
        raise UserError(f"unknown --tracker {kind!r}; choose one of: {', '.join(TRACKERS)}")
    root = _MODULES[kind].split(".")[0]
    if importlib.util.find_spec(root) is None or (kind == "tensorboard" and importlib.util.find_spec("tensorboard") is None):
        raise UserError(f"--tracker {kind} needs {'tensorboard' if kind == 'tensorboard' else kind}: "
                        "pip install 'scalinglab[track]'")


def metrics_of(record: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of an eval record (nested eval losses as eval/<name>), without the step."""
    out: dict[str, float] = {}
    for k, v in record.items():
        if k == "step":
            continue
        if isinstance(v, dict):
            out.update({f"eval/{n}": float(x) for n, x in v.items() if _finite(x)})
        elif _finite(v):
            out[k] = float(v)
    return out


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _params(config: dict[str, Any]) -> dict[str, Any]:
    return {k: ("" if v is None else v) for k, v in config.items()}


class _TensorBoard:
    def __init__(self, run_id: str, config: dict[str, Any], out_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(out_dir / "tensorboard"))
        self.config = config
        self.writer.add_text("config", "\n".join(f"    {k} = {v}" for k, v in sorted(config.items())))

    def __call__(self, record: dict[str, Any]) -> None:
        for k, v in metrics_of(record).items():
            self.writer.add_scalar(k, v, global_step=int(record["step"]))

    def close(self, result: dict[str, Any] | None) -> None:
        if result is not None:
            hp = {k: v for k, v in _params(self.config).items() if isinstance(v, int | float | str | bool)}
            final = {"final/val_loss": float(result["val_loss"])} if _finite(result.get("val_loss")) else {}
            self.writer.add_hparams(hp, final, run_name=".")
        self.writer.close()


class _MLflow:
    def __init__(self, run_id: str, config: dict[str, Any], out_dir: Path):
        from mlflow.tracking import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///" + str(Path("mlflow.db").resolve())
        self.client = MlflowClient(tracking_uri=uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "scalinglab"
        exp = self.client.get_experiment_by_name(name)
        exp_id = exp.experiment_id if exp else self.client.create_experiment(name)
        found = self.client.search_runs([exp_id], filter_string=f"tags.`scalinglab.run_id` = '{run_id}'",
                                        max_results=1)
        if found:
            self.run = found[0].info.run_id
            self.client.update_run(self.run, status="RUNNING")
        else:
            self.run = self.client.create_run(exp_id, run_name=run_id, tags={"scalinglab.run_id": run_id}).info.run_id
            for k, v in _params(config).items():
                self.client.log_param(self.run, k, v)

    def __call__(self, record: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        step = int(record["step"])
        metrics = [Metric(k, v, 0, step) for k, v in metrics_of(record).items()]
        self.client.log_batch(self.run, metrics=metrics)

    def close(self, result: dict[str, Any] | None) -> None:
        ok = result is not None and result.get("status") == "done"
        self.client.set_terminated(self.run, "FINISHED" if ok else "FAILED")


class _WandB:
    def __init__(self, run_id: str, config: dict[str, Any], out_dir: Path):
        import wandb

        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT") or "scalinglab", id=run_id, name=run_id,
                              config=config, resume="allow", reinit="create_new")

    def __call__(self, record: dict[str, Any]) -> None:
        self.run.log(metrics_of(record), step=int(record["step"]))

    def close(self, result: dict[str, Any] | None) -> None:
        self.run.finish(exit_code=0 if result is not None and result.get("status") == "done" else 1)


_CLASSES = {"tensorboard": _TensorBoard, "mlflow": _MLflow, "wandb": _WandB}


@contextmanager
def tracking(kind: str | None, run_id: str, config: dict[str, Any], out_dir: str | Path) -> Iterator[list]:
    """Yield the on_eval hooks for one run; set `.result` on the yielded list to close with the outcome."""
    check_tracker(kind)
    if kind is None:
        yield []
        return
    tracker = _CLASSES[kind](run_id, config, Path(out_dir))
    hooks = _Hooks([tracker])
    try:
        yield hooks
    finally:
        tracker.close(hooks.result)


class _Hooks(list):
    """The hook list handed to run_training; `result` is the run's result once it returned."""

    result: dict[str, Any] | None = None


def train_tracked(cfg: Any, out_dir: str | Path, tracker: str | None = None, run_id: str | None = None,
                  **options: Any) -> dict[str, Any]:
    """`run_training(cfg, out_dir, **options)`, logging to `tracker` when given (run_id: the store's id)."""
    from scalinglab.train import run_training
    from scalinglab.train.distributed import Ranks

    if tracker is None or not Ranks.from_env().is_main:  # under torchrun only rank 0 evaluates and logs
        return run_training(cfg, out_dir, **options)
    if run_id is None:
        from scalinglab.store.db import run_id_for

        run_id = run_id_for(cfg)
    with tracking(tracker, run_id, cfg.model_dump(mode="json"), out_dir) as hooks:
        hooks.result = run_training(cfg, out_dir, on_eval=hooks, **options)
    return hooks.result
