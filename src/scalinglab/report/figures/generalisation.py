"""Sections 3.2.2 and 4: other distributions, overfitting and early stopping (Figs. 8/24, 9, 16)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from scalinglab.report.figures.data import (
    curve_groups,
    d_subset_runs,
    final_loss,
    need_runs,
)
from scalinglab.report.figures.registry import NotMeasured, figure
from scalinglab.report.figures.style import (
    NLABEL,
    fit_label,
    loglog,
    panels,
    size_colorbar,
    size_colors,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from scalinglab.report.study import Study


@figure(
    "8/24", "Generalisation to other distributions",
    caption="Loss on extra evaluation sets (text the model never trained on) against N (left) and against the "
            "training-distribution loss (right), with the ood-offset (L + offset) and ood-linear (free slope) fits "
            "when the study has them. Paper: the other losses track it with a roughly constant offset.",
    needs="extra evaluation sets in the corpus and ≥ 2 finished runs",
    plan="corpus prepared with --eval-set NAME=SOURCE (the stdlib corpus ships one)",
)
def fig08(study: Study) -> Figure:
    d = need_runs(study.main_family(), 2, "≥ 2 model sizes")
    names = study.eval_set_names()
    if not names:
        raise NotMeasured("no losses on extra evaluation sets were recorded")
    import matplotlib as mpl

    cmap = mpl.colormaps["tab10"]
    d = d.sort_values("n_params")
    fig, (a, b) = panels(2, width=5.0)
    a.plot(d["n_params"], d["val_loss"], "o-", color="k", label="training distribution (val)")
    lo, hi = d["val_loss"].min(), d["val_loss"].max()
    # the ood-* laws are fitted on L_ood, which the store fills when there is exactly one extra eval set
    offset, linear = (study.saved_fit(n) if len(names) == 1 else None for n in ("ood-offset", "ood-linear"))
    xs = np.linspace(lo, hi, 10)
    for i, name in enumerate(names):
        y = d["eval_losses"].map(lambda e, n=name: (e or {}).get(n, np.nan) if isinstance(e, dict) else np.nan)
        y = pd.to_numeric(y, errors="coerce")
        ok = np.isfinite(y)
        a.plot(d["n_params"][ok], y[ok], "o-", color=cmap(i + 1), label=name)
        if offset is not None:
            off, ci = offset["params"]["offset"], (offset.get("ci95") or {}).get("offset")
            desc = f"fitted offset {off:+.3f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "")
        else:
            off = float(np.mean(y[ok] - d["val_loss"][ok]))
            desc = f"mean offset {off:+.3f}"
        b.plot(d["val_loss"][ok], y[ok], "o", color=cmap(i + 1), label=name)
        b.plot(xs, xs + off, "-", color=cmap(i + 1), lw=1, alpha=0.6, label=f"L + offset: {desc}")
        lo, hi = min(lo, y[ok].min()), max(hi, y[ok].max())
    if linear is not None:
        p, ci = linear["params"], (linear.get("ci95") or {}).get("slope")
        b.plot(xs, p["intercept"] + p["slope"] * xs, "--", color="k", lw=1,
               label=f"free slope: {p['slope']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
               + " (1 = constant offset)")
    b.plot([lo, hi], [lo, hi], ":", color="0.5", label="equal loss")
    loglog(a, NLABEL)
    b.set_xlabel("loss on the training distribution (nats/token)")
    b.set_ylabel("loss on the other distribution (nats/token)")
    b.grid(True, alpha=0.3)
    a.legend(fontsize=8)
    b.legend(fontsize=8)
    return fig


@figure(
    "9", "Overfitting: δL against N^(α_N/α_D)/D",
    caption="Relative loss penalty δL = L(N,D)/L(N,∞) − 1 of D-subset runs against N^(α_N/α_D)/D, with eq. 1.5. "
            "Paper: the penalty depends on N and D only through this ratio.",
    needs="runs on D-token subsets and a kaplan-nd fit",
    plan="[[grid]]\nn_layer = [2, 4]\nd_model = [64, 128]\ndata_tokens = [2e5, 1e6, 5e6]\nearly_stop = [true]",
)
def fig09(study: Study) -> Figure:
    dsub = d_subset_runs(study)
    need_runs(dsub, 2, "D-subset runs of ≥ 2 sizes")
    f = study.saved_fit("kaplan-nd")
    if f is None:
        raise NotMeasured("needs a kaplan-nd fit (fit it on the D-subset runs)")
    p = f["params"]
    r = p["alpha_N"] / p["alpha_D"]
    N, D = dsub["n_params"].to_numpy(float), dsub["data_tokens"].to_numpy(float)
    linf = (p["N_c"] / N) ** p["alpha_N"]
    dl = final_loss(dsub).to_numpy(float) / linf - 1
    x = N**r / D
    color, sm = size_colors(N)
    fig, (ax,) = panels(1, width=6.4)
    ax.scatter(x, np.maximum(dl, 1e-4), c=[color(n) for n in N], s=36, zorder=3)
    xs = np.geomspace(x.min() / 2, x.max() * 2, 60)
    ax.plot(xs, (1 + xs * p["D_c"] / p["N_c"] ** r) ** p["alpha_D"] - 1, "k--",
            label=fit_label(f, ("alpha_N", "alpha_D")))
    loglog(ax, "N^(α_N/α_D) / D", "δL = L(N,D)/L(N,∞) − 1", logy=True)
    ax.legend(fontsize=8)
    size_colorbar(fig, sm, ax)
    return fig


@figure(
    "16", "Early stopping on limited data",
    caption="Train and test loss of runs on D-token subsets of one model size; the marker is the early-stopping step. "
            "Paper: test loss departs from train loss once data repeat; S_stop ≳ S_c/[L(N,D) − L(N,∞)]^(1/α_S).",
    needs="learning curves of runs on ≥ 2 D-token subsets with train loss recorded",
    plan="[[grid]]\nn_layer = [4]\nd_model = [128]\ndata_tokens = [2e5, 1e6, 5e6]\nearly_stop = [true]",
)
def fig16(study: Study) -> Figure:
    dsub = d_subset_runs(study)
    if dsub.empty or dsub["data_tokens"].nunique() < 2:
        raise NotMeasured("needs runs on ≥ 2 D-token subsets")
    n = dsub["n_params"].value_counts().idxmax()
    g0 = dsub[dsub["n_params"] == n].sort_values("data_tokens")
    c = study.done_curves
    c = c[c["run_id"].isin(g0["run_id"])]
    if c.empty or "train_loss" not in c:
        raise NotMeasured("the D-subset runs have no learning curves with train loss")
    color, sm = size_colors(g0["data_tokens"])
    fig, (ax,) = panels(1, width=6.4)
    for rid, g in curve_groups(c):
        g = g[g["step"] > 0]
        dt = g0.loc[g0["run_id"] == rid, "data_tokens"].iloc[0]
        ax.plot(g["step"], g["val_loss"], "-", color=color(dt), lw=1.5)
        ax.plot(g["step"], g["train_loss"], ":", color=color(dt), lw=1.2)
        i = g["val_loss"].idxmin()
        ax.plot(g.loc[i, "step"], g.loc[i, "val_loss"], "v", color=color(dt), ms=8)
    ax.plot([], [], "k-", label="test")
    ax.plot([], [], "k:", label="train")
    ax.plot([], [], "kv", label="early-stopping step")
    loglog(ax, "steps S")
    ax.set_title(f"N = {n:.3g}")
    ax.legend(fontsize=8)
    size_colorbar(fig, sm, ax, "dataset size D (tokens)")
    return fig

