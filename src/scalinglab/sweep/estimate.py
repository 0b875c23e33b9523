"""Wall-time estimates for `sweep --dry-run`, from a few real timed training steps (a couple of seconds).

For each distinct step shape (model shape, batch, micro-batches) a tiny model is built and three steps of
`train.step.train_step` are timed (the first is discarded as warm-up; then one whole-batch step and one
split as on the run's noise-scale steps, weighted 1 - 1/noise_scale_every and 1/noise_scale_every) with
the threads each run will get. When the time budget
runs out, the remaining shapes are extrapolated from the measured FLOP/s of the nearest measured shape
(Table 1 training FLOPs incl. the output head). Evaluation adds, per evaluation, one forward pass (≈ ⅓ of
a training step per token) over `eval_tokens` for the val split and every extra eval set.
"""

from __future__ import annotations

import math
import time

from scalinglab.sweep.plan import Plan, RunSpec


def _step_key(spec: RunSpec) -> tuple:
    c = spec.config
    m = c.model()
    return (m.arch, m.n_layer, m.d_model, m.d_ff, m.d_attn, m.n_heads, m.n_ctx, m.tie_embeddings, c.batch_size,
            c.micro_batch_size, min(c.noise_scale_micro_batches, c.batch_size), c.noise_scale_every)


def _time_step(spec: RunSpec, vocab_size: int, threads: int) -> float:
    """Seconds per optimiser step of this run's shape, measured on the trainer's own step: one step split as
    on the run's noise-scale steps and one as on the others, weighted by how often the run takes each."""
    import torch

    from scalinglab.model import build_model
    from scalinglab.train import runtime
    from scalinglab.train.optim import make_optimizer
    from scalinglab.train.step import StepPlan, train_step

    c = spec.config
    plan = StepPlan.for_run(c.batch_size, c.micro_batch_size, c.noise_scale_micro_batches, c.noise_scale_every)
    with runtime.session(threads, "cpu"):
        torch.manual_seed(0)
        model = build_model(c.model(vocab_size))
        params = [p for p in model.parameters() if p.requires_grad]
        opt = make_optimizer(model, 1e-4)
        x = torch.randint(0, vocab_size, (c.batch_size, c.n_ctx))

        def timed(step: int) -> float:
            t0 = time.perf_counter()
            train_step(x, x, forward=model, params=params, opt=opt, pieces=plan.pieces(step), grad_clip=1.0)
            return time.perf_counter() - t0

        timed(1)  # warm-up: allocations, kernel selection
        whole, measuring = timed(1), timed(plan.every)
    share = 1.0 / plan.every if plan.measures(plan.every) else 0.0
    return (1.0 - share) * whole + share * measuring


def run_flops(spec: RunSpec) -> float:
    """Training FLOPs of a whole run (body and attention, no head): the sweep starts the costliest runs first, so
    the last runs to finish are short ones and no worker idles at the end (longest-processing-time order)."""
    return _flops_per_step(spec, embedding=False) * spec.config.total_steps


def _flops_per_step(spec: RunSpec, vocab_size: int = 2, embedding: bool = True) -> float:
    from scalinglab.model.counting import flops_per_token_train

    return flops_per_token_train(spec.config.model(vocab_size), embedding=embedding) * spec.config.tokens_per_step


def estimate_walls(plan: Plan, threads: int, budget_s: float = 2.5) -> dict[str, float]:
    """run_id → estimated training wall seconds (training steps + evaluations)."""
    from scalinglab.data.corpus import Corpus
    from scalinglab.train.schedule import eval_steps

    if not plan.runs:
        return {}
    corpus = Corpus.open(plan.runs[0].config.corpus)
    vocab = corpus.vocab_size
    n_splits = 1 + len([n for n in corpus.eval_set_names if n != "val"])
    shapes: dict[tuple, RunSpec] = {}
    for s in plan.runs:
        shapes.setdefault(_step_key(s), s)
    measured: dict[tuple, float] = {}  # key -> seconds per step
    t_end = time.perf_counter() + budget_s
    for key, spec in sorted(shapes.items(), key=lambda kv: _flops_per_step(kv[1], vocab)):
        if measured and time.perf_counter() > t_end:
            break
        if measured:  # skip a shape whose three steps would blow the budget
            rate = _nearest_rate(spec, measured, shapes, vocab)
            if 3 * _flops_per_step(spec, vocab) / rate > max(0.0, t_end - time.perf_counter()):
                continue
        measured[key] = _time_step(spec, vocab, threads)
    walls = {}
    for s in plan.runs:
        key = _step_key(s)
        per_step = measured.get(key) or _flops_per_step(s, vocab) / _nearest_rate(s, measured, shapes, vocab)
        n_evals = len(eval_steps(s.config.total_steps, s.config.eval_every))
        eval_s = n_evals * n_splits * s.config.eval_tokens / s.config.tokens_per_step * per_step / 3
        walls[s.run_id] = s.config.total_steps * per_step + eval_s
    return walls


def _nearest_rate(spec: RunSpec, measured: dict, shapes: dict, vocab: int) -> float:
    """FLOP/s of the measured shape with the closest FLOPs per step (in log)."""
    f = _flops_per_step(spec, vocab)
    best = min(measured, key=lambda k: abs(math.log(_flops_per_step(shapes[k], vocab) / f)))
    return _flops_per_step(shapes[best], vocab) / measured[best]
