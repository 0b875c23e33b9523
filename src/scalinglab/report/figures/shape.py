"""Section 3.1: shape at fixed size and counting embedding parameters (Figs. 5, 6)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from scalinglab.report.figures.data import (
    law_predict,
    need_runs,
)
from scalinglab.report.figures.registry import NotMeasured, figure
from scalinglab.report.figures.style import (
    NLABEL,
    fit_label,
    log_ticks,
    loglog,
    panels,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from scalinglab.report.study import Study


@figure(
    "5", "Shape at fixed size",
    caption="Loss increase relative to the best shape at (nearly) the same N, against aspect ratio d_model/n_layer, "
            "d_ff/d_model and d_attn/n_heads. Paper: shape matters little — a few percent over wide ranges.",
    needs="≥ 3 shapes of (nearly) the same N (within ±20%)",
    plan="[[run]]\nn_layer = 1\nd_model = 128\n[[run]]\nn_layer = 4\nd_model = 64\n[[run]]\nn_layer = 16\nd_model = 32",
)
def fig05(study: Study) -> Figure:
    scans = study.shape_scans()
    dims = [("aspect", "aspect ratio d_model / n_layer"), ("ff_ratio", "feed-forward ratio d_ff / d_model"),
            ("head_dim", "attention head dimension d_attn / n_heads")]
    used = [(key, label, scans[key]) for key, label in dims if key in scans]
    if not used:
        raise NotMeasured("needs ≥ 3 shapes of (nearly) the same N that differ in one dimension only")
    fig, axes = panels(len(used), width=4.8)
    for ax, (key, label, gs) in zip(axes, used, strict=True):
        for g in gs:
            pct = 100 * (g["val_loss"] / g["val_loss"].min() - 1)
            ax.plot(g[key], pct, "o-", label=f"N ≈ {g['n_params'].median():.2g}, {held_fixed(key, g)}")
        ax.set_xscale("log")
        log_ticks(ax.xaxis, ax.get_xlim())
        ax.set_xlabel(label)
        ax.set_ylabel("loss increase over best shape (%)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def held_fixed(key: str, g: pd.DataFrame) -> str:
    """What a Fig. 5 scan held fixed, for its legend (and the results page's shape table)."""
    r = g.iloc[0]
    if key == "aspect":
        return f"d_ff = {r['d_ff'] / r['d_model']:.3g}·d_model"
    if key == "ff_ratio":
        return f"{int(r['n_layer'])} layers"
    return f"{int(r['n_layer'])}×{int(r['d_model'])}"


@figure(
    "6", "Counting embedding parameters or not",
    caption="Final loss against parameters including embeddings (left) and excluding them (right), coloured by depth. "
            "Paper: without embeddings, models of different depths collapse onto one power law.",
    needs="≥ 3 model sizes with both parameter counts",
    plan="[[grid]]\nn_layer = [1, 2, 4]\nd_model = [32, 64, 128]",
)
def fig06(study: Study) -> Figure:
    d = need_runs(study.main_family(), 3, "≥ 3 model sizes")
    if d["n_params_with_embeddings"].isna().all():
        raise NotMeasured("the store has no parameter counts including embeddings")
    import matplotlib as mpl

    layers = sorted(d["n_layer"].dropna().unique())
    cmap = mpl.colormaps["tab10"]
    fig, (a, b) = panels(2, width=5.0)
    for i, nl in enumerate(layers):
        g = d[d["n_layer"] == nl].sort_values("n_params")
        kw = dict(color=cmap(i % 10), marker="o", label=f"{int(nl)} layer{'s' if nl > 1 else ''}")
        a.plot(g["n_params_with_embeddings"], g["val_loss"], **kw)
        b.plot(g["n_params"], g["val_loss"], **kw)
    fn = study.saved_fit("kaplan-n")
    if fn is not None:
        xs = np.geomspace(d["n_params"].min() / 1.3, d["n_params"].max() * 1.3, 50)
        b.plot(xs, law_predict(fn, N=xs), "k--", lw=1, label=fit_label(fn, ("alpha_N",)))
    loglog(a, "parameters including embeddings")
    loglog(b, NLABEL)
    a.set_title("with embeddings")
    b.set_title("without embeddings")
    a.legend(fontsize=8)
    b.legend(fontsize=8)
    return fig

