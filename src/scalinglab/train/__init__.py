"""train stage of scalinglab (see docs/explanations/architecture.md): `run_training` runs, resumes and records one training run.

`run_training` is imported on first use, so reading a plan or a run folder through this package's torch-free
modules (schedule, rundir, branches' planning) does not import torch."""

from typing import Any

__all__ = ["run_training"]


def __getattr__(name: str) -> Any:
    if name == "run_training":
        from scalinglab.train.loop import run_training

        return run_training
    raise AttributeError(f"module 'scalinglab.train' has no attribute {name!r}")
