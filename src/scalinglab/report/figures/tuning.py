"""Beyond the paper: the learning rate and batch size tuned per model size (Porian et al. 2024; DeepSeek LLM 2024).

Kaplan et al. use one LR schedule for every size (their LR(N), appendix D.6) and a critical batch size; small-scale
studies agree with large-scale exponents once LR and batch are tuned per size. This figure shows the tuning the
study measured: the LR sweep of each size, LR*(N) with the lr-opt fit, and the batch scans with B*(N).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from scalinglab.report.figures.data import law_predict
from scalinglab.report.figures.registry import NotMeasured, figure
from scalinglab.report.figures.style import LOSS, fit_label, loglog, note, panels, size_colorbar, size_colors

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from scalinglab.report.study import Study


@figure(
    "LR", "Learning rate and batch size tuned per model size (not in the paper)",
    caption="Left: final loss against peak LR for each size of an LR sweep (stars: each size's best LR, the main "
            "family's run). Middle: the best LR against N with the lr-opt fit LR*(N) = (N_LR/N)^α_LR (hollow: best "
            "LR at the edge of its grid). Right: final loss against batch size in tokens for each batch-scan size "
            "at a fixed token budget, with B* from the batch-opt fit (diamonds). Porian et al. 2024 and DeepSeek "
            "LLM 2024 fit such laws; the paper uses one LR schedule for all sizes.",
    needs="an LR sweep (`lr = \"sweep\"`) at ≥ 2 sizes, or batch-size scans at ≥ 2 sizes",
    plan="[[grid]]\nlr = \"sweep\"\nlr_grid = [0.005, 0.01, 0.02]\nn_layer = [2]\nd_model = [16, 32, 64]",
)
def fig_tuning(study: Study) -> Figure:
    sweep = _lr_sweep_runs(study)
    scans = _batch_scans(study)
    if sweep is None and scans is None:
        raise NotMeasured("no LR sweep at ≥ 2 sizes and no batch-size scan at ≥ 2 sizes")
    fig, (a, b, c) = panels(3, width=4.6)
    if sweep is not None:
        _draw_lr_sweep(a, b, sweep, study.saved_fit("lr-opt"))
    else:
        for ax in (a, b):
            note(ax, "no LR sweep at ≥ 2 sizes in this study")
    if scans is not None:
        _draw_batch_scans(c, scans, study.saved_fit("batch-opt"))
    else:
        note(c, "no batch-size scans at ≥ 2 sizes in this study")
    return fig


def _lr_sweep_runs(study: Study) -> pd.DataFrame | None:
    """Runs of the LR sweep (the best of each size is tagged main, the others lr-sweep) at sizes with ≥ 2 LRs."""
    d = study.family("main", "lr-sweep")
    if d.empty or "lr" not in d:
        return None
    d = d[np.isfinite(d["lr"].astype(float))]
    swept = d.groupby("n_params")["lr"].nunique()
    d = d[d["n_params"].isin(swept[swept >= 2].index)]
    return d if d["n_params"].nunique() >= 2 else None


def _batch_scans(study: Study) -> pd.DataFrame | None:
    d = study.family("batch-scan")
    if d.empty:
        return None
    per = d.groupby("n_params")["batch_size"].nunique()
    d = d[d["n_params"].isin(per[per >= 3].index)]
    return d if d["n_params"].nunique() >= 2 else None


def _draw_lr_sweep(a, b, runs: pd.DataFrame, fit: dict | None) -> None:
    color, sm = size_colors(runs["n_params"])
    best = runs.loc[runs.groupby("n_params")["val_loss"].idxmin()]
    for n, g in runs.groupby("n_params"):
        g = g.sort_values("lr")
        a.plot(g["lr"], g["val_loss"], "o-", ms=4, lw=1, color=color(n))
    a.plot(best["lr"], best["val_loss"], "*", ms=11, color="k", zorder=4, label="best LR of each size")
    loglog(a, "peak learning rate", LOSS)
    a.legend(fontsize=8)
    edge = {float(x) for x in (fit or {}).get("edge_sizes", [])}
    hollow = best["n_params"].astype(float).isin(edge).to_numpy()
    for mask, face, label in ((~hollow, None, "best LR (inside its grid)"), (hollow, "none", "best LR at a grid edge")):
        if mask.any():
            pts = best[mask]
            b.scatter(pts["n_params"], pts["lr"], s=36, facecolors=face or [color(n) for n in pts["n_params"]],
                      edgecolors="k", zorder=3, label=label)
    if fit is not None:
        xs = np.geomspace(best["n_params"].min() / 1.5, best["n_params"].max() * 1.5, 60)
        b.plot(xs, law_predict(fit, N=xs), "k--", lw=1.2, label="LR*(N) " + fit_label(fit, ("alpha_LR",)))
    loglog(b, "non-embedding parameters N", "best peak learning rate")
    b.legend(fontsize=7)
    size_colorbar(b.figure, sm, b)


def _draw_batch_scans(c, scans: pd.DataFrame, fit: dict | None) -> None:
    color, _ = size_colors(scans["n_params"])
    for n, g in scans.groupby("n_params"):
        g = g.assign(B=g["batch_size"] * g["n_ctx"]).sort_values("B")
        c.plot(g["B"], g["val_loss"], "o-", ms=4, lw=1, color=color(n), label=f"N = {n:.3g}")
    for s in (fit or {}).get("scans", []):
        mark = "D" if not s.get("at_edge") else "d"
        c.plot([s["B"]], [s["L"]], mark, ms=8, mfc="none", mec=color(s["N"]), mew=1.5, zorder=4)
    if fit is not None:
        c.plot([], [], "D", mfc="none", mec="k", label="B* " + fit_label(fit, ("beta_B",)))
    loglog(c, "batch size B (tokens)", LOSS)
    c.legend(fontsize=7)
