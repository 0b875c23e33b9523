"""What the figures select from a study: runs of enough sizes, one size's scan of a setting, curves, the frontier.

Analysis proper (levels, frontiers, fits) lives in scalinglab.laws; these helpers only pick and reshape a study's
runs for drawing and raise NotMeasured, with what is missing, when the study lacks them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from scalinglab.laws.framework.constants import PF_DAY
from scalinglab.report.figures.registry import NotMeasured

if TYPE_CHECKING:
    from scalinglab.report.study import Study



def need_runs(df: pd.DataFrame, k: int, what: str, by: str = "n_params") -> pd.DataFrame:
    """`df` when it holds ≥ k distinct values of `by` (model sizes), else NotMeasured saying how many it has."""
    if df is None or df.empty or (df[by].nunique() if by in df else 0) < k:
        have = 0 if df is None or df.empty or by not in df else df[by].nunique()
        raise NotMeasured(f"needs {what} (the study has {have})")
    return df


def scan_at_one_size(runs: pd.DataFrame, column: str, k: int, what: str) -> tuple[float, pd.DataFrame]:
    """The model size (N) with the most distinct values of `column` and its runs: one size's scan of that
    setting (batch sizes, schedules); NotMeasured when no size has `k` of them."""
    if runs.empty:
        raise NotMeasured("no finished runs")
    counts = runs.groupby("n_params")[column].nunique()
    if counts.max() < k:
        raise NotMeasured(f"needs one model size {what} (most seen: {int(counts.max())})")
    n = counts.idxmax()
    return n, runs[runs["n_params"] == n]


def d_subset_runs(study: Study) -> pd.DataFrame:
    """The transformer runs trained on a D-token subset of the corpus (data_tokens set)."""
    dsub = study.transformers()
    return dsub[dsub["data_tokens"].notna()] if not dsub.empty else dsub


def final_loss(runs: pd.DataFrame) -> pd.Series:
    """Final val loss (best val loss where the run kept one, e.g. early-stopped D-subset runs)."""
    if "best_val_loss" in runs:
        return runs["best_val_loss"].fillna(runs["val_loss"])
    return runs["val_loss"]


def curve_groups(curves: pd.DataFrame):
    """(run_id, that run's curve in step order) for each run, in the curves' order."""
    for rid, g in curves.groupby("run_id", sort=False):
        yield rid, g.sort_values("step")


def law_predict(fit: dict, **cols: np.ndarray) -> np.ndarray:
    """Evaluate a fitted law (a fit dict as written by `scalinglab fit`) at raw columns (C in FLOPs)."""
    from scalinglab.laws import Law

    return np.asarray(Law.from_dict(fit).predict(**cols), dtype=float)


def frontier_grid(curves: pd.DataFrame, n_grid: int = 40) -> pd.DataFrame:
    """Compute-efficient frontier (laws.frontier.compute_frontier) with the step each frontier run had reached.

    Returns rows (C_pf, L, run_id, N, step): the lower envelope of the learning curves and N_opt(C).
    """
    from scalinglab.laws.families.frontier import compute_frontier

    c = curves[(curves["flops"] > 0) & np.isfinite(curves["val_loss"]) & (curves["step"] > 0)]
    if c["run_id"].nunique() < 1 or len(c) < 2:
        return pd.DataFrame(columns=["C_pf", "L", "run_id", "N", "step"])
    fr = compute_frontier(pd.DataFrame({"C": c["flops"], "L": c["val_loss"], "run": c["run_id"],
                                        "N": c["n_params"]}), n_points=n_grid)
    steps = []
    for C, rid in zip(fr["C"], fr["run"], strict=True):
        g = c[c["run_id"] == rid]
        steps.append(float(np.exp(np.interp(np.log(C), np.log(g["flops"].to_numpy(float)),
                                            np.log(g["step"].to_numpy(float))))))
    return pd.DataFrame({"C_pf": fr["C"] / PF_DAY, "L": fr["L"], "run_id": fr["run"], "N": fr["N"], "step": steps})
