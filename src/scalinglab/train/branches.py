"""WSD cooldown branches: many data budgets L(N, D_1), L(N, D_2), ... from one run (Hägele et al. 2024).

A trunk is a WSD run of T tokens (`schedule = "wsd"`). The branch for a cooldown point D_k < T is the WSD run of
D_k tokens with the trunk's settings and the trunk's warm-up in steps: its LR is the trunk's up to its own decay
start s_k − decay_steps(s_k) (the fork step), and its data order, dropout and noise-scale steps are the trunk's
too, so it starts from the trunk's checkpoint at the fork step and trains only its decay. Its final loss is the
point L(N, D_k); its result says which run it forked from (`parent_id`, `forked_at`) and splits its FLOPs into
the trunk's (`inherited_flops`, counted once, in the trunk) and its own (`own_flops`, the decay).

Files: the sweep driver writes `forks.json` (the fork steps) into the trunk's run folder before the trunk
trains; the trunk keeps a copy of its checkpoint at each of those steps in `forks/step-<k>.pt`. Before a branch
trains, `start_branch` puts that copy into the branch's folder as its checkpoint (with the branch's config), so
the branch "resumes" from the fork, and a killed branch resumes from its own later checkpoints. A branch whose
fork checkpoint is missing (the trunk finished before it was asked for forks) trains from step 0: the same
run, at the full cost.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from scalinglab.config import TrainConfig
from scalinglab.io import atomic_write_json, read_json
from scalinglab.train.rundir import CHECKPOINT, CONFIG, RESULT, comparable
from scalinglab.train.schedule import decay_steps, warmup_steps

FORK_PLAN = "forks.json"
FORKS = "forks"


@dataclass(frozen=True)
class Branch:
    """One cooldown branch of a trunk: its config (a complete WSD run of D_k tokens) and where it forks."""

    config: TrainConfig
    fork_step: int
    tokens: int


def plan_branches(trunk: TrainConfig, cooldowns: list[float]) -> list[Branch]:
    """The branches of `trunk` for cooldown points in tokens (≥ 1) or fractions of the trunk's tokens (< 1).

    Raises ValueError (one line) for a trunk that is not WSD, or a point that is not below the trunk's tokens,
    that forks inside the warm-up, or that is not a positive number."""
    if trunk.schedule != "wsd":
        raise ValueError(f"cooldown branches need schedule = 'wsd' (schedule is {trunk.schedule!r})")
    tps, total = trunk.tokens_per_step, trunk.total_steps
    warm = warmup_steps(trunk.warmup, total)
    out: list[Branch] = []
    for point in cooldowns:
        if isinstance(point, bool) or not isinstance(point, int | float) or not (point > 0 and math.isfinite(point)):
            raise ValueError(f"cooldown point {point!r} is not a positive number of tokens or a fraction")
        tokens = point * total * tps if point < 1 else point
        steps = int(round(tokens / tps))
        if steps >= total:
            raise ValueError(f"cooldown point {point:g} ({steps * tps:,} tokens) is not below the trunk's "
                             f"{total * tps:,} tokens (the trunk itself gives that point)")
        fork = steps - decay_steps(steps, trunk.decay_fraction)
        if fork < max(warm, 1):
            raise ValueError(f"cooldown point {point:g} ({steps * tps:,} tokens) would fork at step {fork}, "
                             f"inside the trunk's {warm}-step warm-up; choose a later point")
        cfg = trunk.model_copy(update={"steps": steps, "tokens": None, "warmup": float(warm)})
        out.append(Branch(cfg, fork, steps * tps))
    return sorted({b.tokens: b for b in out}.values(), key=lambda b: b.tokens)


def fork_path(trunk_dir: Path, step: int) -> Path:
    return Path(trunk_dir) / FORKS / f"step-{step}.pt"


def request_forks(trunk_dir: Path, steps: list[int]) -> None:
    """Ask the trunk in `trunk_dir` to keep its checkpoint at `steps` (added to any steps asked before)."""
    path = Path(trunk_dir) / FORK_PLAN
    old = read_json(path, "fork plan").get("steps", []) if path.exists() else []
    atomic_write_json(path, {"steps": sorted({int(s) for s in [*old, *steps]})})


def fork_steps(run_dir: Path) -> set[int]:
    """The steps whose checkpoint this run keeps for its branches (none unless a sweep asked)."""
    path = Path(run_dir) / FORK_PLAN
    return {int(s) for s in read_json(path, "fork plan").get("steps", [])} if path.exists() else set()


def start_branch(trunk_dir: Path, branch: Branch, branch_dir: Path, parent_id: str) -> bool:
    """Make the trunk's fork checkpoint the branch's checkpoint; False if the branch has begun or no fork exists.

    The branch keeps the trunk's thread count (written to its config.json), so it computes bit for bit what an
    independent WSD run of its length with those threads computes."""
    from scalinglab.train.checkpoint import load_checkpoint, save_checkpoint  # torch: planning needs none

    branch_dir = Path(branch_dir)
    src = fork_path(trunk_dir, branch.fork_step)
    if (branch_dir / CHECKPOINT).exists() or (branch_dir / RESULT).exists() or not src.exists():
        return False
    trunk_cfg = read_json(Path(trunk_dir) / CONFIG, "trunk config")
    cfg_dict = {**json.loads(branch.config.model_dump_json()), "threads": trunk_cfg.get("threads")}
    ck = load_checkpoint(src)
    ck["config"] = comparable(cfg_dict)
    ck["run"] = {**ck["run"], "resumed_from": [],
                 "fork": {"parent_id": parent_id, "step": branch.fork_step, "wall_s": ck["run"]["wall_s"]}}
    atomic_write_json(branch_dir / CONFIG, cfg_dict)
    save_checkpoint(branch_dir / CHECKPOINT, ck)
    return True


def branch_accounting(fork: dict | None, flops_at, flops: float, wall_s: float) -> dict:
    """The result fields that count a branch's FLOPs (and time) once: what it inherited from its trunk and what
    it spent itself. `flops_at(step)` gives the run's cumulative training FLOPs after `step` steps; `flops`
    and `wall_s` (like the learning curve) count from step 0, as for an independent run of the same length."""
    inherited = float(flops_at(fork["step"])) if fork else 0.0
    return {"parent_id": fork["parent_id"] if fork else None, "forked_at": fork["step"] if fork else None,
            "inherited_flops": inherited, "own_flops": float(flops) - inherited,
            "own_wall_s": float(wall_s) - (float(fork["wall_s"]) if fork else 0.0)}
