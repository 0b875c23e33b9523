"""`RunState`, a run's bookkeeping, and the checkpoint that stores it with everything else a run needs to
continue bit for bit: model, optimiser, data position, noise-scale EMAs and every rank's RNG states.

The checkpoint is a dict of tensors and plain types (format "scalinglab-checkpoint", version 1; it loads
with `torch.load(weights_only=True)`): its "run" entry is `RunState.to_dict()`, the same 14 keys as
checkpoints written before RunState existed, so those keep resuming. A data-parallel run adds
"world_size" and "rng_ranks" (one RNG state per rank); "rng" is always rank 0's. An fp16 run adds "scaler"
(the loss scale and its growth tracker). The model's state dict is the uncompiled module's, so a checkpoint
loads whether or not the run that wrote it, or the one that resumes it, compiles.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from scalinglab.errors import UserError
from scalinglab.train import distributed
from scalinglab.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from scalinglab.train.distributed import Ranks


@dataclass
class RunState:
    """Where a run is: its step, learning curve, best validation loss and the running train-loss mean."""

    step: int = 0
    curve: list[dict] = field(default_factory=list)
    best_val_loss: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    initial_loss: float | None = None
    wall_s: float = 0.0
    train_s: float = 0.0
    loss_sum: float = 0.0
    loss_n: int = 0
    last_loss: float | None = None
    val_loss_per_position: list[float] | None = None
    early_stopped: bool = False
    resumed_from: list[int] = field(default_factory=list)
    fork: dict | None = None  # a WSD cooldown branch: {"parent_id", "step"} of the trunk checkpoint it began from

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RunState:
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})

    def record_step(self, step: int, loss: float, seconds: float) -> None:
        self.step = step
        self.loss_sum += loss
        self.loss_n += 1
        self.train_s += seconds

    def take_train_loss(self) -> float | None:
        """Mean training loss since the last evaluation (the last step's when none), then restart the mean."""
        mean = self.loss_sum / self.loss_n if self.loss_n else self.last_loss
        self.loss_sum, self.loss_n = 0.0, 0
        return mean

    def record_eval(self, record: dict, per_position: list[float], early_stop: bool, patience: int) -> None:
        """Append an evaluation; track the best validation loss and whether patience has run out."""
        self.curve.append(record)
        self.val_loss_per_position = per_position
        val = record["val_loss"]
        if math.isfinite(val) and (self.best_val_loss is None or val < self.best_val_loss):
            self.best_val_loss, self.best_step, self.bad_evals = val, record["step"], 0
        else:
            self.bad_evals += 1
            self.early_stopped = bool(early_stop and self.bad_evals >= patience)


@dataclass
class Trainable:
    """The stateful objects of a run that a checkpoint saves beside its RunState."""

    model: torch.nn.Module
    opt: torch.optim.Optimizer
    loader: object  # WindowLoader
    noise: object  # NoiseScaleEstimator
    scaler: torch.amp.GradScaler | None = None  # fp16 loss scaling (its scale is part of the state)


def save(path: Path, state: RunState, parts: Trainable, config: dict, ranks: Ranks) -> None:
    """Write the checkpoint on rank 0 (every rank takes part: their RNG states are gathered)."""
    rngs = distributed.gather(ranks, rng_state(all_cuda=not ranks.distributed))
    if not ranks.is_main:
        return
    payload = {
        "format": "scalinglab-checkpoint", "version": 1, "config": config,
        "model": parts.model.state_dict(), "optimizer": parts.opt.state_dict(), "loader": parts.loader.state_dict(),
        "noise": parts.noise.state_dict(), "rng": rngs[0], "run": state.to_dict(),
    }
    if parts.scaler is not None:
        payload["scaler"] = parts.scaler.state_dict()
    if ranks.distributed:
        payload.update(world_size=ranks.world_size, rng_ranks=rngs)
    save_checkpoint(path, payload)


def check_world_size(path: Path, world_size: int, ck: dict | None = None) -> None:
    """A checkpoint resumes only on as many processes as wrote it (each rank has its own RNG state)."""
    if ck is None and not path.exists():
        return
    written_by = int((ck if ck is not None else load_checkpoint(path)).get("world_size", 1))
    if written_by != world_size:
        raise UserError(f"{path} was written by a run on {written_by} process(es), not {world_size}; resume it "
                        f"with nproc_per_node={written_by} (or --overwrite to start again)")


def restore(path: Path, parts: Trainable, config: dict, ranks: Ranks) -> RunState:
    """Load the checkpoint into `parts` and this rank's RNGs; returns the RunState it holds."""
    ck = load_checkpoint(path)
    if ck.get("config") != config:
        raise UserError(f"{path} belongs to a different config; use --overwrite to start again")
    check_world_size(path, ranks.world_size, ck)
    parts.model.load_state_dict(ck["model"])
    parts.opt.load_state_dict(ck["optimizer"])
    parts.loader.load_state_dict(ck["loader"])
    parts.noise.load_state_dict(ck["noise"])
    if parts.scaler is not None and "scaler" in ck:
        parts.scaler.load_state_dict(ck["scaler"])
    set_rng_state(ck["rng_ranks"][ranks.rank] if "rng_ranks" in ck else ck["rng"])
    state = RunState.from_dict(ck["run"])
    state.resumed_from.append(state.step)
    return state
