"""Gradient noise scale against linear regression, where |G|² and tr(Σ) are known in closed form.

Loss per example ½(x·w − y)² with x ~ N(0, I_d), y = x·w* + ε, ε ~ N(0, σ²), and δ = w − w*:
the per-example gradient is g = x(x·δ − ε), so G = E[g] = δ and (Isserlis' theorem)
E[g gᵀ] = |δ|²·I + 2·δδᵀ + σ²·I, hence Σ = |δ|²·I + δδᵀ + σ²·I and
tr(Σ) = (d + 1)·|δ|² + d·σ², B_simple = tr(Σ)/|G|².
"""

from __future__ import annotations

import math

import pytest
import torch

from scalinglab.train.noise_scale import MicroBatchNorms, NoiseScaleEstimator
from scalinglab.train.step import train_step


def _estimate(d: int, sigma: float, delta_norm: float, batch: int, n_micro: int, steps: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    w_star = torch.randn(d, generator=gen, dtype=torch.float64)
    delta = torch.randn(d, generator=gen, dtype=torch.float64)
    delta *= delta_norm / delta.norm()
    model = torch.nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_((w_star + delta)[None, :])
    params = list(model.parameters())
    norms = MicroBatchNorms(params)
    est = NoiseScaleEstimator(beta=0.999)
    opt = torch.optim.SGD(params, lr=0.0)  # the trainer's step, with the weights held at w* + δ

    def forward(xb, yb):
        return None, 0.5 * (model(xb).squeeze(1) - yb).square().mean()

    for _ in range(steps):
        x = torch.randn(batch, d, generator=gen, dtype=torch.float64)
        y = x @ w_star + sigma * torch.randn(batch, generator=gen, dtype=torch.float64)
        s = train_step(x, y, forward=forward, params=params, opt=opt, pieces=n_micro, grad_clip=1e9, norms=norms)
        est.update(s.small_sq, s.grad_norm**2, s.b_small, batch)
    truth_trace = (d + 1) * delta_norm**2 + d * sigma**2
    return est, truth_trace, delta_norm**2


@pytest.mark.parametrize(("batch", "n_micro", "delta_norm"), [(64, 2, 1.0), (50, 3, 0.5)])
def test_b_simple_matches_closed_form(batch, n_micro, delta_norm):
    """Equal and unequal micro-batches; B_simple = 13.5 and 43 examples (it grows near the optimum)."""
    est, trace, g2 = _estimate(d=10, sigma=0.5, delta_norm=delta_norm, batch=batch, n_micro=n_micro, steps=1500)
    assert est.grad_sq == pytest.approx(g2, rel=0.08)
    assert est.trace == pytest.approx(trace, rel=0.08)
    assert est.b_simple == pytest.approx(trace / g2, rel=0.08)


def test_estimator_state_round_trip_and_unmeasurable():
    est = NoiseScaleEstimator(beta=0.9)
    assert est.b_simple is None and est.grad_sq is None
    est.update(2.0, 1.5, 8, 16)  # |G|² = (16·1.5 − 8·2)/8 = 1, tr(Σ) = 0.5/(1/8 − 1/16) = 8
    assert est.b_simple == pytest.approx(8.0)
    est.update(2.5, 1.6, 8, 16)
    again = NoiseScaleEstimator()
    again.load_state_dict(est.state_dict())
    assert again.b_simple == est.b_simple and math.isfinite(est.b_simple)
    est.update(float("nan"), 1.0, 8, 16)  # a non-finite observation is skipped, not absorbed
    assert est.b_simple == again.b_simple
    noisy_zero = NoiseScaleEstimator()
    noisy_zero.update(1.0, 1.1, 8, 16)  # |G_small|² < |G_big|²: tr(Σ) estimate negative → not measurable yet
    assert noisy_zero.b_simple is None
    with pytest.raises(ValueError):
        est.update(1.0, 1.0, 16, 16)
