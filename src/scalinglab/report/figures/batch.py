"""Section 5.1 and appendix B: critical batch size, S_min and batch-size scans (Figs. 10, 11, 18)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from scalinglab.laws.framework.data import fit_axis
from scalinglab.laws.framework.transforms import to_min
from scalinglab.report.figures.data import (
    curve_groups,
    law_predict,
    need_runs,
    scan_at_one_size,
)
from scalinglab.report.figures.registry import NotMeasured, figure
from scalinglab.report.figures.style import (
    LOSS,
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
    "10", "Critical batch size and gradient noise scale vs loss",
    caption="Measured gradient noise scale B_simple (in tokens) along each learning curve against the loss, with "
            "B_crit(L) fitted to it (bcrit, dotted) and to a batch scan's levels (bcrit-scan, red). "
            "Paper: B_crit depends on L only, B_crit ∝ L^(−1/α_B), α_B≈0.21.",
    needs="learning curves with the gradient noise scale recorded (or a bcrit fit)",
    plan="[train]\nnoise_scale_micro_batches = 2",
)
def fig10(study: Study) -> Figure:
    c = study.done_curves
    fb = study.saved_fit("bcrit", "bcrit-scan")
    if c.empty or "noise_scale" not in c or not (c["noise_scale"] > 0).any():
        if fb is None:
            raise NotMeasured("no gradient noise scale was recorded and no bcrit fit exists")
    fig, (ax,) = panels(1, width=6.4)
    sm = None
    if not c.empty and "noise_scale" in c and (c["noise_scale"] > 0).any():
        c = c[(c["noise_scale"] > 0) & (c["step"] > 0)]
        color, sm = size_colors(c["n_params"])
        for _, g in curve_groups(c):
            ax.plot(g["val_loss"], g["noise_scale"], "o-", ms=3, lw=0.8, color=color(g["n_params"].iloc[0]), alpha=0.8)
        ax.plot([], [], "o-", color="0.4", ms=3, label="noise scale B_simple (measured)")
    lo = c["val_loss"].min() if not c.empty else 2.0
    hi = c["val_loss"].max() if not c.empty else 6.0
    xs = np.geomspace(lo, hi, 50)
    scan, noise = study.saved_fit("bcrit-scan"), study.saved_fit("bcrit")
    if scan is not None:
        lv = [x for x in scan.get("levels", []) if x.get("identified")]
        if lv:
            ax.plot([x["L"] for x in lv], [x["B_crit"] for x in lv], "D", color="tab:red", ms=7, zorder=4,
                    label="B_crit from the batch scan (Fig. 18)")
        ax.plot(xs, law_predict(scan, L=xs), "r--", lw=1.5,
                label="bcrit-scan B_crit(L) " + fit_label(scan, ("B_star", "alpha_B")))
    if noise is not None:
        ax.plot(xs, law_predict(noise, L=xs), "k:", lw=1.8,
                label="bcrit (noise scale) B_crit(L) " + fit_label(noise, ("B_star", "alpha_B")))
    loglog(ax, LOSS, "batch size (tokens)", logy=True)
    ax.legend(fontsize=8)
    if sm is not None:
        size_colorbar(fig, sm, ax)
    return fig


@figure(
    "11", "Loss vs S_min (steps at B ≫ B_crit)",
    caption="Learning curves against S_min = S/(1 + B_crit/B), converted as the kaplan-ns fit was (its recorded "
            "policy; the fitted B_crit(L) when there is no kaplan-ns fit). "
            "Paper: after this adjustment curves of all sizes follow eq. 1.6, L(N, S_min).",
    needs="learning curves and a bcrit fit (from a batch-size scan)",
    plan="[[grid]]\nn_layer = [2]\nd_model = [64]\nbatch_size = [4, 8, 16, 32, 64]",
)
def fig11(study: Study) -> Figure:
    fb = study.saved_fit("bcrit", "bcrit-scan")
    if fb is None:
        raise NotMeasured("needs a bcrit fit (from a batch-size scan) to convert S to S_min")
    runs = need_runs(study.main_family(), 2, "learning curves of ≥ 2 sizes")
    c = study.done_curves
    c = c[c["run_id"].isin(runs["run_id"]) & (c["step"] > 0)]
    color, sm = size_colors(runs["n_params"])
    fig, (ax,) = panels(1, width=6.4)
    fns = study.saved_fit("kaplan-ns")
    # one S -> S_min for fit and figure (laws.transforms.to_min): the kaplan-ns fit's own axis when it is drawn,
    # else the fitted B_crit(L)
    if fns is not None:
        ax_s = fit_axis(fns, c, study.runs)
        c = c.assign(smin=ax_s["S"], kept=ax_s["kept"])
    else:
        B = c["batch_size"].to_numpy(float) * c["n_ctx"].to_numpy(float)
        c = c.assign(smin=to_min("S", c["step"], B, c["val_loss"], "bcrit-law", bcrit=fb["params"]), kept=True)
    for _, g in curve_groups(c):
        smin = g["smin"].to_numpy(float)
        n = g["n_params"].iloc[0]
        ax.plot(smin, g["val_loss"], color=color(n), lw=1.2)
        if fns is not None and g["kept"].any():
            smin = smin[g["kept"].to_numpy(bool)]
            xs = np.geomspace(smin.min(), smin.max(), 40)
            ax.plot(xs, law_predict(fns, N=np.full_like(xs, n), S=xs), "--", color=color(n), lw=1)
    if fns is not None:
        ax.plot([], [], "k--", label=fit_label(fns, ("alpha_N", "alpha_S")))
        ax.legend(fontsize=8)
    loglog(ax, "S_min (steps)")
    size_colorbar(fig, sm, ax)
    return fig


@figure(
    "18", "Batch-size scans: steps vs examples to reach a loss",
    caption="For each target loss, steps S against tokens processed E = B·S across batch sizes, with the fitted "
            "hyperbola (S/S_min − 1)(E/E_min − 1) = 1, after the fits' transient cut (steps ≥ max(2·warm-up, 10)). Paper: every scan follows it; B_crit = E_min/S_min.",
    needs="learning curves of one model size at ≥ 3 batch sizes",
    plan="[[grid]]\nn_layer = [2]\nd_model = [64]\nbatch_size = [4, 8, 16, 32, 64]",
)
def fig18(study: Study) -> Figure:
    from scalinglab.errors import UserError
    from scalinglab.laws.framework.curves import transient_mask
    from scalinglab.laws.framework.data import warmup_steps
    from scalinglab.laws.framework.transforms import batch_scan_levels, steps_to_reach

    n, scan = scan_at_one_size(study.full_data(), "batch_size", 3, "at ≥ 3 batch sizes")
    c = study.done_curves
    c = c[c["run_id"].isin(scan["run_id"]) & (c["step"] > 0)]
    warm = dict(zip(scan["run_id"], warmup_steps(scan), strict=True))
    keep, _ = transient_mask({"step": c["step"].to_numpy(float), "warmup": c["run_id"].map(warm).to_numpy(float)})
    c = c[keep]  # the bcrit-scan fit's transient cut: levels from the early steps are warm-up, not batch size
    cols = {"run": c["run_id"].to_numpy(), "B": (c["batch_size"] * c["n_ctx"]).to_numpy(float),
            "S": c["step"].to_numpy(float), "L": c["val_loss"].to_numpy(float)}
    try:
        levels = batch_scan_levels(cols, n_levels=5)
    except UserError as e:
        raise NotMeasured(f"the batch scan at N = {n:.3g} gives no usable loss levels ({e})") from None
    if not levels:
        raise NotMeasured("no loss level is reached at ≥ 3 batch sizes")
    import matplotlib as mpl

    cmap = mpl.colormaps["plasma"]
    fig, (ax,) = panels(1, width=6.4)
    for i, lv in enumerate(levels):
        col = cmap(i / max(1, len(levels)))
        pts = []
        for _, g in curve_groups(c):
            s_ = steps_to_reach(g["step"].to_numpy(float), g["val_loss"].to_numpy(float), lv["L"])
            if np.isfinite(s_):
                pts.append((s_ * g["batch_size"].iloc[0] * g["n_ctx"].iloc[0], s_))
        E, S = np.array(pts).T
        ax.plot(E, S, "o", color=col, zorder=3)
        Bs = np.geomspace(lv["B_crit"] / 30, lv["B_crit"] * 30, 80)
        Sh = lv["S_min"] * (1 + lv["B_crit"] / Bs)
        tag = "" if lv["identified"] else " (B_crit outside the scanned range)"
        ax.plot(Bs * Sh, Sh, "-", color=col, lw=1.2, label=f"L={lv['L']:.3f}: B_crit = {lv['B_crit']:.3g} tokens{tag}")
    loglog(ax, "tokens processed E = B·S", "steps S", logy=True)
    ax.set_title(f"N = {n:.3g}; lines: (S/S_min − 1)(E/E_min − 1) = 1", fontsize=10)
    ax.legend(fontsize=7)
    return fig

