"""Per-size learning-rate tuning in a plan: `lr = "sweep"` trains each run at several peak LRs, and the one with
the lowest final validation loss joins the table's family (default "main"), the others stay in "lr-sweep".

Porian et al. 2024 show that tuning the LR per model size is what makes small-scale exponents agree with large-scale
ones. `lr_grid = [...]` gives the LRs (at least two); without it each size tries the paper's LR(N) (`lr_auto`)
times `MULTIPLIERS`. The choice is made after the sweep, once every run of a group has finished, and recorded in
the store: the chosen run's family and an 'lr-best' event with every LR and loss of its group.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from typing import Any

MULTIPLIERS = (0.25, 0.5, 1.0, 2.0, 4.0)
FAMILY = "lr-sweep"


def check_grid(grid: Any) -> list[float] | None:
    """The LR grid of `lr = "sweep"` (None: the default around LR(N)); ValueError, one line, when unusable."""
    if grid is None:
        return None
    if not isinstance(grid, list) or len(grid) < 2:
        raise ValueError(f'lr = "sweep" needs at least two learning rates in lr_grid (got {grid!r})')
    for v in grid:
        if isinstance(v, bool) or not isinstance(v, int | float) or not (v > 0 and math.isfinite(v)):
            raise ValueError(f"lr_grid values must be positive learning rates (got {v!r})")
    if len(set(grid)) < 2:
        raise ValueError(f'lr = "sweep" needs at least two different learning rates in lr_grid (got {grid!r})')
    return [float(v) for v in grid]


def check_prune_at(fractions: Any) -> tuple[float, ...]:
    """The check fractions of `prune_at` (empty: no pruning), increasing, each in (0, 1); ValueError when unusable."""
    if fractions is None:
        return ()
    if not isinstance(fractions, list) or not fractions:
        raise ValueError(f"prune_at must be a non-empty list of fractions of a run's steps (got {fractions!r})")
    for v in fractions:
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 < v < 1.0:
            raise ValueError(f"prune_at values must be fractions in (0, 1) (got {v!r})")
    if sorted(set(fractions)) != list(fractions):
        raise ValueError(f"prune_at must be increasing, without repeats (got {fractions!r})")
    return tuple(float(v) for v in fractions)


def default_grid(n_params: int) -> list[float]:
    from scalinglab.train.schedule import lr_auto

    return [m * lr_auto(n_params) for m in MULTIPLIERS]


def choose(rows: list[dict]) -> dict | None:
    """The best of one group's finished runs (`run_id`, `lr`, `status`, `val_loss`), or None while any is
    unfinished or none has a finite loss; `at_edge` says the best LR is the grid's smallest or largest. A pruned run
    (stopped by its forecast, `sweep/prune.py`) is finished but never chosen, and has no final loss."""
    if any(r["status"] not in ("done", "diverged", "pruned") for r in rows):
        return None
    ok = [r for r in rows if r["status"] == "done" and r["val_loss"] is not None and math.isfinite(r["val_loss"])]
    if not ok:
        return None
    best = min(ok, key=lambda r: r["val_loss"])
    lrs = sorted(r["lr"] for r in rows)
    return {"best_run_id": best["run_id"], "best_lr": best["lr"], "best_val_loss": best["val_loss"],
            "lrs": [r["lr"] for r in rows], "statuses": [r["status"] for r in rows],
            "val_losses": [r["val_loss"] if r["status"] != "pruned" else None for r in rows],
            "at_edge": best["lr"] in (lrs[0], lrs[-1])}


def lr_groups(specs) -> dict[str, list]:
    """The runs of each LR sweep group (`RunSpec.lr_group`: one size's LR candidates), in plan order."""
    groups: dict[str, list] = defaultdict(list)
    for s in specs:
        if s.lr_group:
            groups[s.lr_group].append(s)
    return dict(groups)


def record_choices(conn, plan) -> list[dict]:
    """Choose the best LR of every finished group of `plan` and tag that run with its table's family."""
    from scalinglab.store import db as store

    groups = lr_groups(plan.runs)
    if not groups:
        return []
    stored = {r["run_id"]: dict(r) for r in conn.execute("SELECT run_id, status, val_loss, n_params FROM runs")}
    out = []
    for group, specs in groups.items():
        rows = [{**stored[s.run_id], "lr": s.config.lr} for s in specs if s.run_id in stored]
        pick = choose(rows) if len(rows) == len(specs) else None
        if pick is None:
            continue
        pick = {"group": group, "n_params": rows[0]["n_params"], "family": specs[0].lr_family, **pick}
        store.set_family(conn, pick["best_run_id"], pick["family"], "lr-best", json.dumps(pick, sort_keys=True))
        out.append(pick)
    return out
