"""train stage of scalinglab (see DESIGN.md §2): `run_training` runs, resumes and records one training run."""

from scalinglab.train.loop import run_training

__all__ = ["run_training"]
