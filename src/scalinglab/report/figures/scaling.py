"""Section 3 and 6 of the paper: L(N), L(D), L(C) and the frontier (Figs. 1, 2/19, 4, 13/14, 15, 23)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from scalinglab.laws.families.frontier import _loglog_fit as loglog_fit
from scalinglab.laws.framework.constants import PF_DAY
from scalinglab.laws.framework.data import fit_axis
from scalinglab.laws.framework.transforms import steps_to_reach
from scalinglab.report.figures.data import (
    curve_groups,
    d_subset_runs,
    final_loss,
    frontier_grid,
    law_predict,
    need_runs,
)
from scalinglab.report.figures.registry import NotMeasured, figure
from scalinglab.report.figures.style import (
    NLABEL,
    fit_label,
    loglog,
    note,
    panels,
    reference_slope,
    size_colorbar,
    size_colors,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from scalinglab.report.study import Study


@figure(
    "1", "Loss vs compute, dataset size and model size",
    caption="Learning curves against compute with the compute-efficient frontier, L(D) and L(N). "
            "Paper: each is a power law over many decades (α_C≈0.050, α_D≈0.095, α_N≈0.076).",
    needs="learning curves of ≥ 2 model sizes (L(D) panel: runs on D-token subsets)",
    plan="[[grid]]\nn_layer = [1, 2, 4]\nd_model = [32, 64, 128]",
)
def fig01(study: Study) -> Figure:
    runs = need_runs(study.main_family(), 2, "≥ 2 model sizes trained on the full data")
    curves = study.done_curves
    curves = curves[curves["run_id"].isin(runs["run_id"])]
    if curves.empty:
        raise NotMeasured("needs learning curves (evaluations) of the runs")
    color, sm = size_colors(runs["n_params"])
    fig, (a, b, c) = panels(3, width=4.6)
    fc = study.saved_fit("kaplan-cmin", "kaplan-c")
    cmin = fc is not None and fc.get("min_converted") == "C"
    if fc is not None:  # curves on the axis the fit used: its FLOP convention, C_min for kaplan-cmin, its cut
        ax_c = fit_axis(fc, curves, study.runs)
        curves = curves.assign(flops=ax_c["C"], kept=ax_c["kept"])
    for _, g in curve_groups(curves):
        g = g[g["flops"] > 0]
        a.plot(g["flops"] / PF_DAY, g["val_loss"], color=color(g["n_params"].iloc[0]), lw=1, alpha=0.8)
    fr = frontier_grid(curves[curves["kept"]] if fc is not None else curves)
    if not fr.empty:
        a.plot(fr["C_pf"], fr["L"], color="k", lw=2, label="frontier (lower envelope)")
    if fc is not None and not fr.empty:
        xs = np.geomspace(fr["C_pf"].min(), fr["C_pf"].max(), 50)
        a.plot(xs, law_predict(fc, C=xs * PF_DAY), "--", color="tab:red", lw=1.5, label=fit_label(fc, ("alpha_C",)))
    loglog(a, "compute C_min (PF-days)" if cmin else "compute C (PF-days)")
    a.set_title("L(C): learning curves")
    a.legend(fontsize=8, loc="upper right")

    dsub = d_subset_runs(study)
    if dsub.empty or dsub["data_tokens"].nunique() < 2:
        note(b, "L(D) not measured:\nno runs on D-token subsets\n(plan: data_tokens = [...])")
    else:
        big = dsub[dsub["n_params"] == dsub["n_params"].max()].sort_values("data_tokens")
        b.plot(big["data_tokens"], final_loss(big), "o", color="tab:blue", label=f"N={big['n_params'].iloc[0]:.3g}")
        fd = study.saved_fit("kaplan-d")
        if fd is not None:
            xs = np.geomspace(big["data_tokens"].min(), big["data_tokens"].max(), 50)
            b.plot(xs, law_predict(fd, D=xs), "--", color="tab:red", label=fit_label(fd, ("alpha_D",)))
        loglog(b, "dataset size D (tokens)")
        b.legend(fontsize=8)
    b.set_title("L(D): early-stopped, largest model")

    r = runs.sort_values("n_params")
    c.scatter(r["n_params"], r["val_loss"], c=[color(n) for n in r["n_params"]], s=36, zorder=3, label="final loss")
    fn = study.saved_fit("kaplan-n")
    if fn is not None:
        xs = np.geomspace(r["n_params"].min() / 1.3, r["n_params"].max() * 1.3, 50)
        c.plot(xs, law_predict(fn, N=xs), "--", color="tab:red", lw=1.5, label=fit_label(fn, ("alpha_N",)), zorder=2)
    loglog(c, NLABEL)
    c.set_title("L(N): final loss")
    c.legend(fontsize=8)
    size_colorbar(fig, sm, c)
    return fig


@figure(
    "2/19", "Sample efficiency: tokens to reach a loss vs model size",
    caption="Tokens processed until each run first reaches a given test loss, against N. "
            "Paper: larger models reach any loss with fewer tokens — they are more sample-efficient.",
    needs="learning curves of ≥ 3 model sizes",
    plan="[[grid]]\nn_layer = [1, 2, 4]\nd_model = [32, 64, 128]",
)
def fig02(study: Study) -> Figure:
    runs = need_runs(study.main_family(), 3, "learning curves of ≥ 3 model sizes")
    curves = study.done_curves
    curves = curves[curves["run_id"].isin(runs["run_id"])]
    if curves.empty:
        raise NotMeasured("needs learning curves (evaluations) of the runs")
    # targets inside the range every size eventually reaches
    worst_final = runs["val_loss"].max()
    start = curves.groupby("run_id")["val_loss"].max().min()
    targets = np.linspace(start, worst_final, 6)[1:-1] if start > worst_final else []
    if len(targets) == 0:
        raise NotMeasured("the learning curves do not share a range of loss to compare")
    import matplotlib as mpl

    cmap = mpl.colormaps["plasma"]
    fig, (ax,) = panels(1, width=6.2)
    for i, t in enumerate(targets):
        pts = []
        for _, g in curve_groups(curves[curves["tokens"] > 0]):
            tok = steps_to_reach(g["tokens"].to_numpy(float), g["val_loss"].to_numpy(float), t)
            if np.isfinite(tok):
                pts.append((g["n_params"].iloc[0], tok))
        if len(pts) >= 2:
            n, tok = np.array(sorted(pts)).T
            ax.plot(n, tok, "o-", color=cmap(i / max(1, len(targets))), label=f"L = {t:.3f}")
    loglog(ax, NLABEL, "tokens processed to reach L", logy=True)
    ax.legend(title="target loss (nats)", fontsize=8)
    return fig


@figure(
    "4", "L(N, D) and L(N, S) families",
    caption="Left: final loss against dataset size for each N, with eq. 1.5. Right: learning curves against steps with eq. 1.6. "
            "Paper: both two-variable laws fit the whole family with one set of constants.",
    needs="runs on D-token subsets for ≥ 2 sizes (left); learning curves of ≥ 2 sizes (right)",
    plan="[[grid]]\nn_layer = [2, 4]\nd_model = [64, 128]\ndata_tokens = [2e5, 1e6, 5e6]\nearly_stop = [true]",
)
def fig04(study: Study) -> Figure:
    dsub = d_subset_runs(study)
    runs = study.main_family()
    has_left = not dsub.empty and dsub["data_tokens"].nunique() >= 2 and dsub["n_params"].nunique() >= 2
    has_right = not runs.empty and runs["n_params"].nunique() >= 2 and not study.done_curves.empty
    if not (has_left or has_right):
        raise NotMeasured("needs D-subset runs of ≥ 2 sizes or learning curves of ≥ 2 sizes")
    allN = pd.concat([dsub["n_params"], runs["n_params"]]) if not dsub.empty else runs["n_params"]
    color, sm = size_colors(allN)
    fig, axes = panels(int(has_left) + int(has_right), width=5.2)
    a = axes[0] if has_left else None
    b = axes[-1] if has_right else None
    if has_left:
        fnd = study.saved_fit("kaplan-nd")
        for n, g in dsub.groupby("n_params"):
            g = g.sort_values("data_tokens")
            a.plot(g["data_tokens"], final_loss(g), "o", color=color(n))
            if fnd is not None:
                xs = np.geomspace(g["data_tokens"].min(), g["data_tokens"].max(), 50)
                a.plot(xs, law_predict(fnd, N=np.full_like(xs, n), D=xs), "-", color=color(n), lw=1)
        if fnd is not None:
            a.plot([], [], "k-", lw=1, label=fit_label(fnd, ("alpha_N", "alpha_D")))
            a.legend(fontsize=8)
        loglog(a, "dataset size D (tokens)")
        a.set_title("L(N, D): points = runs, lines = eq. 1.5")
    if has_right:
        fns = study.saved_fit("kaplan-ns")
        curves = study.done_curves
        curves = curves[curves["run_id"].isin(runs["run_id"]) & (curves["step"] > 0)]
        # eq 1.6 is in S_min: the curves on the fit's own axis (laws.data.fit_axis: its S_min policy and cut)
        adjusted = fns is not None and fns.get("min_converted") == "S"
        if fns is not None:
            ax_s = fit_axis(fns, curves, study.runs)
            curves = curves.assign(step=ax_s["S"], kept=ax_s["kept"])
        for _, g in curve_groups(curves):
            n = g["n_params"].iloc[0]
            x = g["step"].to_numpy(float)
            b.plot(x, g["val_loss"], color=color(n), lw=1.2, alpha=0.85)
            if fns is not None and g["kept"].any():  # the law over the points it was fitted on
                x = x[g["kept"].to_numpy(bool)]
                xs = np.geomspace(x.min(), x.max(), 50)
                b.plot(xs, law_predict(fns, N=np.full_like(xs, n), S=xs), "--", color=color(n), lw=1)
        if fns is not None:
            b.plot([], [], "k--", lw=1, label=fit_label(fns, ("alpha_N", "alpha_S")))
            b.legend(fontsize=8)
        loglog(b, "S_min = S/(1 + B_crit/B), steps" if adjusted else "optimisation steps S")
        b.set_title("L(N, S): learning curves" + (", dashed = eq. 1.6" if fns is not None else ""))
    size_colorbar(fig, sm, axes[-1])
    return fig


@figure(
    "13/14", "Compute-efficient model size and steps vs compute",
    caption="N_opt(C): the model size on the frontier of the learning curves, and the steps it had taken, against compute, "
            "with measured power-law slopes. Paper: N_opt ∝ C_min^0.73 while S_min ∝ C_min^0.03 barely grows.",
    needs="learning curves of ≥ 3 model sizes whose frontier changes hands",
    plan="[[grid]]\nn_layer = [1, 2, 4, 6]\nd_model = [32, 64, 128, 192]",
)
def fig13(study: Study) -> Figure:
    runs = need_runs(study.main_family(), 3, "learning curves of ≥ 3 model sizes")
    c = study.done_curves
    fr = frontier_grid(c[c["run_id"].isin(runs["run_id"])])
    if fr.empty or fr["N"].nunique() < 2:
        raise NotMeasured("the frontier is held by a single model size; more sizes or longer runs are needed")
    # only where the frontier is not still held by the smallest model at its start
    fig, (a, b) = panels(2, width=5.2)
    a.plot(fr["C_pf"], fr["N"], "o", ms=4, color="tab:blue", label="frontier model")
    sel = fr[fr["N"] > fr["N"].min()] if fr["N"].nunique() > 2 else fr
    if sel["N"].nunique() >= 2:
        k, slope = loglog_fit(sel["C_pf"].to_numpy(), sel["N"].to_numpy())
        xs = np.geomspace(fr["C_pf"].min(), fr["C_pf"].max(), 30)
        a.plot(xs, k * xs**slope, "-", color="tab:blue", label=f"measured N_opt ∝ C^{slope:.2f}")
        reference_slope(a, xs, k * xs[0] ** slope, 0.73, "paper's slope 0.73")
    loglog(a, "compute C (PF-days, fixed batch)", "N_opt (non-embedding parameters)", logy=True)
    a.legend(fontsize=8)
    b.plot(fr["C_pf"], fr["step"], "o", ms=4, color="tab:green", label="steps of the frontier model")
    k2, s2 = loglog_fit(fr["C_pf"].to_numpy(), fr["step"].to_numpy())
    xs = np.geomspace(fr["C_pf"].min(), fr["C_pf"].max(), 30)
    b.plot(xs, k2 * xs**s2, "-", color="tab:green", label=f"measured S ∝ C^{s2:.2f}")
    loglog(b, "compute C (PF-days, fixed batch)", "steps S on the frontier", logy=True)
    b.legend(fontsize=8)
    return fig


@figure(
    "15", "The contradiction: L(C_min) vs L(D(C))",
    caption="Extrapolations of the fitted L(C) and of L(D) at the data the frontier consumes, D(C) = C/(6·N_opt(C)). "
            "Paper: L(C_min) must eventually fall below L(D(C)) — at ~1e4 PF-days, L*≈1.7 nats/token.",
    needs="fits of L(C) (kaplan-c or kaplan-cmin) and L(D) (kaplan-d or kaplan-nd), plus a frontier",
    plan="[[grid]]\nn_layer = [2, 4]\nd_model = [64, 128]\ndata_tokens = [2e5, 1e6, 5e6]",
)
def fig15(study: Study) -> Figure:
    fc = study.saved_fit("kaplan-cmin", "kaplan-c")
    fd = study.saved_fit("kaplan-d", "kaplan-nd")
    if fc is None or fd is None:
        raise NotMeasured("needs fits of both L(C) and L(D); " + ("L(D)" if fc is not None else "L(C)") + " is missing")
    runs = need_runs(study.main_family(), 3, "learning curves of ≥ 3 model sizes")
    c = study.done_curves
    c = c[c["run_id"].isin(runs["run_id"])]
    ax_c = fit_axis(fc, c, study.runs)  # the frontier on the L(C) fit's axis: its FLOP convention, C_min, its cut
    fr = frontier_grid(c.assign(flops=ax_c["C"])[ax_c["kept"].to_numpy(bool)])
    if fr["N"].nunique() < 2:
        raise NotMeasured("the frontier gives no N_opt(C) trend")
    k, slope = loglog_fit(fr["C_pf"].to_numpy(), fr["N"].to_numpy())
    xs = np.geomspace(fr["C_pf"].min(), fr["C_pf"].max() * 1e12, 200)
    n_opt = k * xs**slope
    D = xs * PF_DAY / (6 * n_opt)
    lc = law_predict(fc, C=xs * PF_DAY)
    if fd["law"] == "kaplan-nd":
        ld = (fd["params"]["D_c"] / D) ** fd["params"]["alpha_D"]
    else:
        ld = law_predict(fd, D=D)
    fig, (ax,) = panels(1, width=6.4)
    ax.plot(xs, lc, "-", color="tab:blue", label="L(C) fit, extrapolated")
    ax.plot(xs, ld, "-", color="tab:orange", label="L(D(C)), D(C) = C/(6·N_opt(C))")
    ax.plot(fr["C_pf"], fr["L"], "k.", label="measured frontier")
    cross = np.nonzero(np.diff(np.sign(lc - ld)))[0]
    if cross.size:
        i = cross[0]
        ax.axvline(xs[i], color="0.5", ls=":", label=f"crossing C* ≈ {xs[i]:.2g} PF-days, L* ≈ {lc[i]:.3g}")
    loglog(ax, "compute C_min (PF-days)" if fc.get("min_converted") == "C" else "compute C (PF-days)")
    ax.legend(fontsize=8)
    return fig


@figure(
    "23", "Power law vs logarithmic fit of L(N)",
    caption="Final loss against N with a power law L = (N_c/N)^α_N and a logarithmic law L = a − b·ln N, each with "
            "its RMS residual. Paper: the power law fits markedly better than the logarithm.",
    needs="≥ 4 model sizes",
    plan="[[grid]]\nn_layer = [1, 2, 4, 6]\nd_model = [32, 64, 128, 192]",
)
def fig23(study: Study) -> Figure:
    d = need_runs(study.main_family(), 4, "≥ 4 model sizes").sort_values("n_params")
    N, L = d["n_params"].to_numpy(float), d["val_loss"].to_numpy(float)
    fn = study.saved_fit("kaplan-n")
    if fn is not None:
        power = law_predict(fn, N=N)
        plabel = "power law (kaplan-n fit)"
        pfun = lambda x: law_predict(fn, N=x)  # noqa: E731
    else:
        k, s = loglog_fit(N, L)
        power = k * N**s
        plabel = "power law (log-log least squares)"
        pfun = lambda x: k * x**s  # noqa: E731
    flog = study.saved_fit("log-n")
    if flog is not None:
        a0, b = flog["params"]["a"], -flog["params"]["b"]
    else:
        b, a0 = np.polyfit(np.log(N), L, 1)
    logfit = a0 + b * np.log(N)
    rms_p = float(np.sqrt(np.mean((power - L) ** 2)))
    rms_l = float(np.sqrt(np.mean((logfit - L) ** 2)))
    xs = np.geomspace(N.min() / 1.5, N.max() * 1.5, 80)
    fig, (ax,) = panels(1, width=6.4)
    ax.plot(N, L, "ko", zorder=3, label="final loss")
    ax.plot(xs, pfun(xs), "-", color="tab:blue", label=f"{plabel}, RMS {rms_p:.4f}")
    ax.plot(xs, a0 + b * np.log(xs), "--", color="tab:orange", label=f"L = {a0:.3g} − {-b:.3g}·ln N, RMS {rms_l:.4f}")
    loglog(ax, NLABEL)
    ax.legend(fontsize=8)
    return fig

