"""`train_step`, the one training step: accumulation gives the whole batch's gradient, diverged steps are not applied."""

from __future__ import annotations

import pytest
import torch

from scalinglab.config import ModelConfig
from scalinglab.model import build_model
from scalinglab.train.noise_scale import MicroBatchNorms
from scalinglab.train.step import StepPlan, train_step


def _model():
    torch.manual_seed(0)
    return build_model(ModelConfig(n_layer=1, d_model=16, n_ctx=8, vocab_size=32))


def _grads(pieces: int, measure: bool = False):
    model = _model()
    params = [p for p in model.parameters() if p.requires_grad]
    norms = MicroBatchNorms(params) if measure else None
    opt = torch.optim.SGD(params, lr=0.0)
    x = torch.randint(0, 32, (12, 8), generator=torch.Generator().manual_seed(1))
    s = train_step(x, x.roll(1, 1), forward=model, params=params, opt=opt, pieces=pieces, norms=norms)
    return s, [p.grad.clone() for p in params]


@pytest.mark.parametrize("pieces", [2, 3, 5])
def test_accumulation_gives_the_whole_batch_gradient(pieces):
    whole, g1 = _grads(1)
    split, g2 = _grads(pieces)  # 12 sequences in 5 pieces: unequal micro-batches weigh by their size
    assert split.loss == pytest.approx(whole.loss, rel=1e-6)
    assert split.grad_norm == pytest.approx(whole.grad_norm, rel=1e-5)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert whole.small_sq is None and whole.stepped


def test_measuring_step_reports_micro_batch_norms():
    s, _ = _grads(3, measure=True)
    assert s.b_small == pytest.approx(4.0) and s.small_sq > s.grad_norm**2 > 0  # noisier small batches


def test_non_finite_step_is_not_applied():
    model = _model()
    params = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    opt = torch.optim.SGD(params, lr=1.0)
    x = torch.randint(0, 32, (4, 8))
    s = train_step(x, x, forward=lambda a, b: (None, model(a, b)[1] * float("nan")), params=params, opt=opt)
    assert not s.finite and not s.stepped
    assert all(torch.equal(a, p) for a, p in zip(before, params, strict=True))


def test_step_plan_splits_only_where_asked():
    plan = StepPlan.for_run(batch=16, micro_batch_size=None, noise_micro_batches=2, every=4)
    assert [plan.pieces(s) for s in range(1, 9)] == [1, 1, 1, 2, 1, 1, 1, 2]
    plan = StepPlan.for_run(batch=16, micro_batch_size=6, noise_micro_batches=2, every=4)
    assert plan.accumulate == 3 and plan.pieces(4) == 3 and plan.measures(4) and not plan.measures(3)
    off = StepPlan.for_run(batch=16, micro_batch_size=None, noise_micro_batches=1, every=1)
    assert not off.measures(1) and off.pieces(1) == 1
    ddp = StepPlan.for_run(batch=8, micro_batch_size=None, noise_micro_batches=2, every=4, distributed=True)
    assert ddp.pieces(4, distributed=True) == 1 and ddp.measures(4, distributed=True)
