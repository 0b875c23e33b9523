"""One optimisation step, the only one in the package: `train`, `bench train` and `sweep --dry-run` run it.

`train_step` zeroes the gradients, runs forward and backward over the step's micro-batches (gradient
accumulation: each micro-batch loss is weighted by its share of the batch, so `.grad` ends as the batch's
mean gradient), clips the global gradient norm and, when loss and norm are finite, steps the optimiser.
It returns the step's loss and pre-clip gradient norm, and on measuring steps the norms the gradient
noise scale needs (`noise_scale.py`): the micro-batch gradients' mean squared norm and their size.

`StepPlan.pieces(step)` says how a step splits its batch: into `accumulate` micro-batches always (memory),
and on every `every`-th step into at least `micro_batches` (the noise-scale measurement, which costs
~5-10% on CPU because smaller matmuls are slower, hence not on every step). Data-parallel runs pass a
`sync` (`distributed.GradSync`) that reduces gradients across ranks; the ranks' own gradients then are
the small batches of the measurement, so a rank never splits its share for it.

With fp16 a `GradScaler` (`runtime.Runtime.scaler`) scales the loss before each backward and unscales the
gradients before the norm and the clip; a step whose scaled gradients overflow is skipped and the scale
lowered (`StepStats.overflow`), which is how loss scaling finds its scale, not a divergence.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from scalinglab.train.noise_scale import MicroBatchNorms


@dataclass(frozen=True)
class StepPlan:
    """How the steps of a run split their batch (sizes in sequences of this process's share)."""

    batch: int
    accumulate: int = 1  # micro-batches every step (gradient accumulation)
    micro_batches: int = 1  # micro-batches on measuring steps (≥ 2 measures the noise scale)
    every: int = 1  # measure on every `every`-th step

    @classmethod
    def for_run(cls, batch: int, micro_batch_size: int | None, noise_micro_batches: int, every: int,
                distributed: bool = False) -> StepPlan:
        accumulate = 1 if micro_batch_size is None else -(-batch // micro_batch_size)
        micro = 1 if distributed else min(noise_micro_batches, batch)
        return cls(batch=batch, accumulate=min(accumulate, batch), micro_batches=micro, every=every)

    def measures(self, step: int, distributed: bool = False) -> bool:
        return step % self.every == 0 and (distributed or self.micro_batches >= 2)

    def pieces(self, step: int, distributed: bool = False) -> int:
        if self.measures(step, distributed):
            return max(self.accumulate, self.micro_batches)
        return self.accumulate


@dataclass(frozen=True)
class StepStats:
    """What one step measured: mean loss over the (global) batch, pre-clip norm of its mean gradient, and on
    measuring steps the mean squared norm of the small batches' gradients and their effective size."""

    loss: float
    grad_norm: float
    small_sq: float | None = None
    b_small: float | None = None
    stepped: bool = True
    overflow: bool = False  # fp16: the scaled gradients overflowed, the step was skipped and the scale lowered

    @property
    def finite(self) -> bool:
        return math.isfinite(self.loss) and math.isfinite(self.grad_norm)


def grad_norm(params: Sequence[torch.Tensor], clip: float) -> torch.Tensor:
    """Global gradient norm before clipping; clips in place to `clip` when it is > 0."""
    if clip > 0:
        return torch.nn.utils.clip_grad_norm_(params, clip, foreach=True)
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm([p.grad for p in params if p.grad is not None])))


def train_step(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    forward: Callable,
    params: Sequence[torch.Tensor],
    opt: torch.optim.Optimizer,
    pieces: int = 1,
    grad_clip: float = 0.0,
    norms: MicroBatchNorms | None = None,
    autocast: Callable = contextlib.nullcontext,
    sync=None,
    scaler: torch.amp.GradScaler | None = None,
) -> StepStats:
    """One step on (x, y): this process's share of the batch, split into `pieces` micro-batches.

    `norms` (single process, pieces ≥ 2) or `sync.measure` (data-parallel) asks for the noise-scale norms.
    The optimiser steps only when loss and gradient norm are finite (a diverged step is not applied).
    """
    opt.zero_grad(set_to_none=True)
    parts = list(zip(x.tensor_split(pieces), y.tensor_split(pieces), strict=True)) if pieces > 1 else [(x, y)]
    if norms is not None:
        norms.start()
    step_loss = torch.zeros((), device=x.device)
    for i, (xb, yb) in enumerate(parts):
        last = i == len(parts) - 1
        w = xb.shape[0] / x.shape[0]
        with sync.accumulating(last) if sync is not None else contextlib.nullcontext():
            with autocast():
                _, loss = forward(xb, yb)
            scaled = loss * w
            (scaled if scaler is None else scaler.scale(scaled)).backward()
        step_loss += loss.detach().float() * w
        if norms is not None:
            norms.after_backward(xb.shape[0], w, last=last)
    small_sq = b_small = None
    if norms is not None:
        small_sq, b_small = norms.small_sq()
    if sync is not None:
        step_loss, small_sq, b_small = sync.reduce(params, step_loss, x.shape[0])
    if scaler is not None:
        return _scaled_step(scaler, opt, params, grad_clip, float(step_loss), small_sq, b_small)
    gnorm = grad_norm(params, grad_clip)
    stats = StepStats(float(step_loss), float(gnorm), small_sq, b_small)
    if not stats.finite:
        return StepStats(stats.loss, stats.grad_norm, small_sq, b_small, stepped=False)
    opt.step()
    return stats


def _scaled_step(scaler: torch.amp.GradScaler, opt: torch.optim.Optimizer, params: Sequence[torch.Tensor],
                 grad_clip: float, loss: float, small_sq: float | None, b_small: float | None) -> StepStats:
    """Unscale, clip and step through the scaler (which skips the step when the scaled gradients overflowed)."""
    scale = float(scaler.get_scale())
    scaler.unscale_(opt)
    gnorm = float(grad_norm(params, grad_clip))
    if small_sq is not None:
        small_sq /= scale**2  # the micro-batch norms were read off the scaled gradients
    scaler.step(opt)
    scaler.update()
    if math.isfinite(gnorm) or not math.isfinite(loss) or scale <= 1.0:
        stepped = math.isfinite(gnorm) and math.isfinite(loss)
        return StepStats(loss, gnorm, small_sq, b_small, stepped=stepped)
    return StepStats(loss, gnorm, None, None, stepped=False, overflow=True)
