"""lr-opt: the best learning rate as a power law of model size, LR*(N) = (N_LR/N)^alpha_LR (DeepSeek LLM 2024 and
Porian et al. 2024 fit such laws; the paper's own LR(N) is logarithmic, App. D.6).

Fitted on runs of an LR sweep (`lr = "sweep"` in a plan: columns N, LR, L): the LR with the lowest final loss at
each size is that size's LR*, and the power law is fitted on those (N, LR*) points, one per size, so the bootstrap
resamples sizes. Sizes with a single LR are left out (they say nothing about the best one); an LR* at the edge of
its size's grid is only a bound, and `edge_sizes` lists them. A candidate a sweep pruned (its forecast lost,
sweep/prune.py) counts as a lost LR of its size, with an infinite loss.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scalinglab.errors import UserError
from scalinglab.laws.families.power import PowerLaw


class LrOpt(PowerLaw, register={"lr-opt": {}}):
    """LR*(N) = (N_LR/N)^alpha_LR over the best LR of each size (see module doc)."""

    column, exponent, scale, base_name = "N", "alpha_LR", "N_LR", "lr-opt"
    target = "LR"
    families = ("main", "lr-sweep")
    reads_pruned = True  # a pruned candidate lost (L = inf): its LR still belongs to the size's grid
    provides = frozenset({"lr"})

    def __init__(self, irreducible: bool = False, **kw: Any) -> None:
        if irreducible:
            raise UserError("lr-opt has no irreducible term")
        super().__init__(irreducible=irreducible, **kw)
        self.best_: list[dict] = []

    def get_options(self) -> dict[str, Any]:
        return {}

    @property
    def formula(self) -> str:  # type: ignore[override]
        return "LR* = (N_LR/N)^alpha_LR, LR* = the LR with the lowest final loss at each N"

    def required_columns(self) -> tuple[str, ...]:
        return ("N", "LR", "L")

    def _fit_columns(self, cols: dict[str, np.ndarray], bootstrap: int, holdout: int, seed: int) -> None:
        self.best_ = best_lr_per_size(cols["N"], cols["LR"], cols["L"])
        if len(self.best_) < 3:
            raise UserError(f"lr-opt: {len(self.best_)} model size(s) with an LR sweep (two or more LRs); "
                            "need 3 (plan them with lr = \"sweep\")")
        points = {"N": np.array([b["N"] for b in self.best_]), "LR": np.array([b["LR"] for b in self.best_])}
        super()._fit_columns(points, bootstrap, holdout, seed)

    def _extra_dict(self) -> dict[str, Any]:
        return {"best_per_size": self.best_, "edge_sizes": [b["N"] for b in self.best_ if b["at_edge"]]}

    def _load_extra(self, d: dict[str, Any]) -> None:
        self.best_ = list(d.get("best_per_size") or [])


def best_lr_per_size(n: np.ndarray, lr: np.ndarray, loss: np.ndarray) -> list[dict]:
    """For each N with two or more LRs: the LR of the lowest loss, the loss, the grid and whether LR* is at its edge."""
    out = []
    for size in np.unique(n):
        at = n == size
        lrs = np.unique(lr[at])
        if len(lrs) < 2:
            continue
        i = int(np.argmin(np.where(at, loss, np.inf)))
        out.append({"N": float(size), "LR": float(lr[i]), "L": float(loss[i]), "lrs": [float(x) for x in lrs],
                    "at_edge": bool(lr[i] in (lrs[0], lrs[-1]))})
    return out
