"""Learning-rate rule and schedule of the paper's recipe (Kaplan et al. 2020, §2.2 and App. D.6).

`lr_auto(N)` is the paper's fit of the best learning rate against non-embedding parameters,
LR(N) ≈ 0.003239 − 0.0001395·ln(N). It gives about 2.3e-3 at N=1e3, 1.6e-3 at N=1e5 and 6e-4 at N=1e8,
values that train tiny models well too, so it is used unchanged for small N; it would reach zero at
N ≈ 1.2e10, so it is floored at `LR_FLOOR` (far beyond the sizes this toolkit trains on a laptop).

The schedule is a pure function of the step, so a checkpoint only needs the step to resume it exactly:
linear warmup from 0 to the peak, then cosine (or linear) decay to `min_lr_ratio`·peak at the last step,
or a constant LR after warmup, or WSD (warmup-stable-decay, Hägele et al. 2024): the peak until the last
`decay_fraction` of the run, then a linear decay to `min_lr_ratio`·peak. A WSD run's LR up to its decay start
does not depend on its length, which is what lets cooldown branches fork from one trunk (`train/branches.py`).
"""

from __future__ import annotations

import math

LR_FLOOR = 1e-5


def lr_auto(n_params: int | float) -> float:
    """The paper's LR(N) = 0.003239 − 0.0001395·ln(N) (App. D.6), floored at LR_FLOOR."""
    return max(LR_FLOOR, 0.003239 - 0.0001395 * math.log(max(float(n_params), 1.0)))


def resolve_lr(lr: float | str, n_params: int) -> float:
    return lr_auto(n_params) if lr == "auto" else float(lr)


def warmup_steps(warmup: float, total_steps: int) -> int:
    """`warmup` ≥ 1 is a number of steps; below 1 it is a fraction of the run (the paper: 3000 of 250k)."""
    w = int(round(warmup)) if warmup >= 1 else int(round(warmup * total_steps))
    return min(max(w, 0), total_steps)


DEFAULT_DECAY_FRACTION = 0.2  # Hägele et al. 2024: a 20% cooldown matches cosine


def decay_steps(total_steps: int, decay_fraction: float | None) -> int:
    """Steps a WSD run of `total_steps` spends decaying: round(fraction · total), at least 1."""
    f = DEFAULT_DECAY_FRACTION if decay_fraction is None else decay_fraction
    return min(total_steps, max(1, int(round(f * total_steps))))


def lr_at(
    step: int,
    *,
    peak: float,
    total_steps: int,
    warmup: int,
    schedule: str = "cosine",
    min_lr_ratio: float = 0.1,
    decay_fraction: float | None = None,
) -> float:
    """LR for optimisation step `step` (1-based: step 1 is the first update)."""
    if warmup > 0 and step <= warmup:
        return peak * step / warmup
    if schedule == "constant":
        return peak
    floor = peak * min_lr_ratio
    if schedule == "wsd":
        decay = decay_steps(total_steps, decay_fraction)
        start = max(total_steps - decay, warmup)
        if step <= start:
            return peak
        return floor + (peak - floor) * (1.0 - min((step - start) / max(total_steps - start, 1), 1.0))
    span = max(total_steps - warmup, 1)
    progress = min(max((step - warmup) / span, 0.0), 1.0)
    if schedule == "cosine":
        return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "linear":
        return floor + (peak - floor) * (1.0 - progress)
    raise ValueError(f"unknown schedule {schedule!r}")


EVAL_RATIO = 1.5  # log-spaced evaluations about 1.5× apart: ~17 of them in 1,000 steps


def eval_steps(total_steps: int, every: int | str = "log", ratio: float = EVAL_RATIO) -> list[int]:
    """Steps after which to evaluate: log-spaced (1, 2, 3, 5, 8, 11, 17, ...) or every K, always the last."""
    if every == "log":
        steps, x = set(), 1.0
        while x <= total_steps:
            steps.add(int(round(x)))
            x *= ratio
    else:
        k = int(every)
        steps = set(range(k, total_steps + 1, k))
    steps.add(total_steps)
    return sorted(s for s in steps if 1 <= s <= total_steps)
