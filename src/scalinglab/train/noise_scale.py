"""Gradient noise scale B_simple = tr(Σ)/|G|² (McCandlish et al. 2018), the paper's proxy for B_crit (§5.1).

Gradient accumulation over micro-batches gives gradients at two batch sizes for free: each micro-batch's
gradient (size b) and their average, the full batch's gradient (size B). Since E|G_b|² = |G|² + tr(Σ)/b,

    |G|²  ≈ (B·|G_B|² − b·|G_b|²) / (B − b)
    tr(Σ) ≈ (|G_b|² − |G_B|²) / (1/b − 1/B)

are unbiased; each is noisy, so both are smoothed with separate exponential moving averages before the
ratio is taken (the ratio of averages, not the average of ratios). Sizes count examples (sequences);
B_simple in tokens is that times n_ctx.

`MicroBatchNorms` reads the micro-batch gradient norms off the running sum in `.grad` during accumulation
(one buffer copy and one fused norm per micro-batch), so the estimate costs almost nothing beyond the
backward passes themselves. `NoiseScaleEstimator` does the arithmetic and is reusable on any model.
"""

from __future__ import annotations

import math

import torch


class MicroBatchNorms:
    """Squared norms of each micro-batch's own (mean) gradient while gradients accumulate in `.grad`.

    Call `start()` before the first backward of a step and `after_backward(size, weight)` after each
    micro-batch's backward, where the micro-batch loss was multiplied by `weight` = size / B so that `.grad`
    ends as the full batch's mean gradient. `small_sq()` then returns the mean of |g_i|² and the effective
    micro-batch size b = 1/mean(1/b_i) (so that E[mean |g_i|²] = |G|² + tr(Σ)/b for unequal sizes too).
    """

    def __init__(self, params):
        self.params = [p for p in params if p.requires_grad]
        self._prev: list[torch.Tensor] | None = None
        self.start()

    def start(self) -> None:
        self.sq: list[float] = []
        self.sizes: list[int] = []
        self._have_prev = False

    def _grads(self) -> list[torch.Tensor]:
        return [p.grad for p in self.params if p.grad is not None]

    @torch.no_grad()
    def after_backward(self, size: int, weight: float, last: bool = False) -> None:
        grads = self._grads()
        if not self._have_prev:
            diff = grads  # the running sum is this micro-batch's weighted gradient
        else:  # prev ← prev − grads = −weight·g_i (in place, no allocation)
            torch._foreach_sub_(self._prev, grads)
            diff = self._prev
        norms = torch._foreach_norm(diff)
        sq = float(torch.stack(norms).double().square().sum()) / weight**2
        self.sq.append(sq)
        self.sizes.append(int(size))
        if not last:
            if self._prev is None or len(self._prev) != len(grads):
                self._prev = [torch.empty_like(g) for g in grads]
            torch._foreach_copy_(self._prev, grads)
            self._have_prev = True

    def small_sq(self) -> tuple[float, float]:
        """(mean of micro-batch |g_i|², effective micro-batch size b)."""
        b = len(self.sizes) / sum(1.0 / s for s in self.sizes)
        return sum(self.sq) / len(self.sq), b


class NoiseScaleEstimator:
    """EMAs of the unbiased |G|² and tr(Σ) estimates from gradient norms at two batch sizes."""

    def __init__(self, beta: float = 0.95):
        if not 0.0 <= beta < 1.0:
            raise ValueError("beta must be in [0, 1)")
        self.beta = beta
        self.count = 0
        self._g2 = 0.0
        self._trace = 0.0

    def update(self, small_sq: float, big_sq: float, b_small: float, b_big: float) -> None:
        """One observation: |G_b|² at batch size b_small and |G_B|² at b_big (b_small < b_big)."""
        if not (b_big > b_small > 0):
            raise ValueError("need 0 < b_small < b_big")
        if not (math.isfinite(small_sq) and math.isfinite(big_sq)):
            return
        g2 = (b_big * big_sq - b_small * small_sq) / (b_big - b_small)
        trace = (small_sq - big_sq) / (1.0 / b_small - 1.0 / b_big)
        self._g2 = self.beta * self._g2 + (1 - self.beta) * g2
        self._trace = self.beta * self._trace + (1 - self.beta) * trace
        self.count += 1

    def _debias(self, x: float) -> float:
        return x / (1.0 - self.beta**self.count)

    @property
    def grad_sq(self) -> float | None:
        return self._debias(self._g2) if self.count else None

    @property
    def trace(self) -> float | None:
        return self._debias(self._trace) if self.count else None

    @property
    def b_simple(self) -> float | None:
        """tr(Σ)/|G|² in examples; None until both smoothed estimates are positive."""
        if not self.count or self._g2 <= 0 or self._trace <= 0:
            return None
        return self._trace / self._g2  # the debias factors cancel

    def state_dict(self) -> dict:
        return {"beta": self.beta, "count": self.count, "g2": self._g2, "trace": self._trace}

    def load_state_dict(self, state: dict) -> None:
        self.beta = float(state["beta"])
        self.count = int(state["count"])
        self._g2 = float(state["g2"])
        self._trace = float(state["trace"])
