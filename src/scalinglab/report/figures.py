"""The paper's figures, drawn from the user's own runs: a registry with one function per figure.

Each figure function takes a `Study` and returns a matplotlib Figure, or raises `NotMeasured(reason)`
when the store lacks the data it needs — the report then lists the figure as "not measured by this
study" with the plan entry that would measure it. Nothing is ever drawn from invented data; reference
slopes from the paper are drawn only as clearly labelled dashed guides next to measured points.

Adding a figure is a few lines:

    @figure("12", "Title", caption="What it shows. Paper: what it found.", needs="...", plan="[[grid]] ...")
    def fig12(study: Study) -> Figure:
        d = need_runs(study.main_family(), 3, "three model sizes")
        fig, ax = panels(1)
        ...
        return fig
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from scalinglab.report.study import Study

if TYPE_CHECKING:  # matplotlib is imported lazily (Agg backend) by render_figures
    from matplotlib.figure import Figure

PF_DAY = 8.64e19
LOSS = "test loss L (nats/token)"
NLABEL = "N, non-embedding parameters"


class NotMeasured(Exception):
    """The study has no data for this figure; the message says what is missing."""


@dataclass(frozen=True)
class FigureSpec:
    key: str
    number: str
    title: str
    caption: str
    needs: str
    plan: str
    draw: Callable[[Study], Figure]


@dataclass
class FigureResult:
    spec: FigureSpec
    drawn: bool
    reason: str = ""
    png: str | None = None
    svg: str | None = None


FIGURES: list[FigureSpec] = []


def figure(number: str, title: str, *, caption: str, needs: str, plan: str) -> Callable:
    """Register a figure function under the paper's figure number."""

    def deco(fn: Callable[[Study], Figure]) -> Callable[[Study], Figure]:
        key = "fig" + "_".join(p.zfill(2) for p in number.replace("–", "/").split("/"))
        FIGURES.append(FigureSpec(key, number, title, caption, needs, plan, fn))
        return fn

    return deco


# ----------------------------------------------------------------------------------------------------
# shared helpers


def panels(n: int, width: float = 5.2, height: float = 4.0):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False, layout="constrained")
    return fig, list(axes[0])


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


def need_runs(df: pd.DataFrame, k: int, what: str, by: str = "n_params") -> pd.DataFrame:
    if df is None or df.empty or (df[by].nunique() if by in df else 0) < k:
        have = 0 if df is None or df.empty or by not in df else df[by].nunique()
        raise NotMeasured(f"needs {what} (the study has {have})")
    return df


def size_colors(values: pd.Series | np.ndarray):
    """Colour by N on a log scale (viridis), as the paper does; returns (color_fn, ScalarMappable)."""
    import matplotlib as mpl
    from matplotlib.colors import LogNorm

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    lo, hi = (v.min(), v.max()) if v.size else (1.0, 10.0)
    if hi <= lo:
        lo, hi = lo / 1.5, hi * 1.5
    norm = LogNorm(lo, hi)
    cmap = mpl.colormaps["viridis"]
    sm = mpl.cm.ScalarMappable(norm=norm, cmap=cmap)
    return (lambda x: cmap(norm(x))), sm


def size_colorbar(fig, sm, ax, label: str = NLABEL) -> None:
    cb = fig.colorbar(sm, ax=ax, pad=0.02)
    cb.set_label(label)


def loglog(ax, xlabel: str, ylabel: str = LOSS, logy: bool = True) -> None:
    """Log axes as the paper draws them; narrow spans (< 1 decade, e.g. loss) get plain-number ticks."""
    ax.set_xscale("log")
    _log_ticks(ax.xaxis, ax.get_xlim())
    if logy:
        ax.set_yscale("log")
        _log_ticks(ax.yaxis, ax.get_ylim())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    ax.grid(True, which="minor", alpha=0.1)


def _log_ticks(axis, lim: tuple[float, float]) -> None:
    """Up to 3 decades: 3–8 labelled ticks at 1-2-5 style steps (plain numbers); wider: powers of ten."""
    from matplotlib.ticker import (
        FixedLocator,
        FuncFormatter,
        LogFormatterSciNotation,
        LogLocator,
        NullFormatter,
    )

    lo, hi = sorted(lim)
    if not lo > 0 or np.log10(hi / lo) >= 3:
        axis.set_major_locator(LogLocator(base=10, numticks=8))
        axis.set_major_formatter(LogFormatterSciNotation())
    else:
        ticks: list[float] = []
        for subs in ((1,), (1, 3), (1, 2, 5), (1, 1.5, 2, 3, 5, 7), (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8),
                     tuple(np.round(np.arange(1, 10, 0.1), 1))):
            decades = range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
            ticks = [m * 10.0**d for d in decades for m in subs if lo <= m * 10.0**d <= hi]
            if len(ticks) >= 3:
                break
        if len(ticks) > 8:
            ticks = ticks[:: int(np.ceil(len(ticks) / 8))]
        axis.set_major_locator(FixedLocator(ticks))
        axis.set_major_formatter(FuncFormatter(_human))
    axis.set_minor_formatter(NullFormatter())


def _human(v: float, _pos: int | None = None) -> str:
    """20k, 1.5M: readable labels for narrow log axes of large counts."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{suffix}"
    return f"{v:.3g}"


def note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=10, color="0.4", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def law_predict(fit: dict, **cols: np.ndarray) -> np.ndarray:
    """Evaluate a fitted law (a fit dict as written by `scalinglab fit`) at raw columns (C in FLOPs)."""
    from scalinglab.laws import Law

    return np.asarray(Law.from_dict(fit).predict(**cols), dtype=float)


def fit_label(fit: dict, keys: tuple[str, ...]) -> str:
    p, ci = fit["params"], fit.get("ci95") or {}
    parts = []
    for k in keys:
        if k not in p:
            continue
        s = f"{_sym(k)}={p[k]:.3g}"
        if isinstance(ci.get(k), (list, tuple)) and len(ci[k]) == 2:
            s += f" [{ci[k][0]:.3g}, {ci[k][1]:.3g}]"
        parts.append(s)
    return "fit: " + ", ".join(parts)


def _sym(k: str) -> str:
    return {"alpha_N": "α_N", "alpha_D": "α_D", "alpha_C": "α_C", "alpha_S": "α_S", "alpha_B": "α_B",
            "alpha": "α", "beta": "β", "B_star": "B*"}.get(k, k)


def power_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least squares in log-log: y = a·x^b; returns (a, b). Used only for measured trends on a plot."""
    b, loga = np.polyfit(np.log(x), np.log(y), 1)
    return float(np.exp(loga)), float(b)


def final_loss(runs: pd.DataFrame) -> pd.Series:
    """Final val loss (best val loss where the run kept one, e.g. early-stopped D-subset runs)."""
    if "best_val_loss" in runs:
        return runs["best_val_loss"].fillna(runs["val_loss"])
    return runs["val_loss"]


def curve_groups(curves: pd.DataFrame):
    for rid, g in curves.groupby("run_id", sort=False):
        yield rid, g.sort_values("step")


def tokens_to_reach(g: pd.DataFrame, target: float, x: str = "tokens") -> float:
    """First x where the learning curve reaches `target` (log-interpolated); NaN if it never does."""
    loss = g["val_loss"].to_numpy(float)
    xs = g[x].to_numpy(float)
    hit = np.nonzero(loss <= target)[0]
    if hit.size == 0:
        return float("nan")
    i = hit[0]
    if i == 0 or not (xs[i - 1] > 0):
        return float(xs[i])
    l0, l1 = loss[i - 1], loss[i]
    t = (l0 - target) / (l0 - l1) if l0 != l1 else 1.0
    return float(np.exp(np.log(xs[i - 1]) + t * (np.log(xs[i]) - np.log(xs[i - 1]))))


def frontier_grid(curves: pd.DataFrame, n_grid: int = 40) -> pd.DataFrame:
    """Compute-efficient frontier (laws.frontier.compute_frontier) with the step each frontier run had reached.

    Returns rows (C_pf, L, run_id, N, step): the lower envelope of the learning curves and N_opt(C).
    """
    from scalinglab.laws.frontier import compute_frontier

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


def reference_slope(ax, x: np.ndarray, y0: float, slope: float, label: str) -> None:
    """A dashed guide with the paper's exponent, anchored at the first measured point."""
    x = np.asarray(x, dtype=float)
    ax.plot(x, y0 * (x / x[0]) ** slope, "--", color="0.5", lw=1.2, label=label)


# ----------------------------------------------------------------------------------------------------
# the figures


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
    for _, g in curve_groups(curves):
        g = g[g["flops"] > 0]
        a.plot(g["flops"] / PF_DAY, g["val_loss"], color=color(g["n_params"].iloc[0]), lw=1, alpha=0.8)
    fr = frontier_grid(curves)
    if not fr.empty:
        a.plot(fr["C_pf"], fr["L"], color="k", lw=2, label="frontier (lower envelope)")
    fc = study.fit("kaplan-cmin", "kaplan-c")
    if fc is not None and not fr.empty:
        xs = np.geomspace(fr["C_pf"].min(), fr["C_pf"].max(), 50)
        a.plot(xs, law_predict(fc, C=xs * PF_DAY), "--", color="tab:red", lw=1.5, label=fit_label(fc, ("alpha_C",)))
    loglog(a, "compute C (PF-days)")
    a.set_title("L(C): learning curves")
    a.legend(fontsize=8, loc="upper right")

    dsub = study.transformers()
    dsub = dsub[dsub["data_tokens"].notna()] if not dsub.empty else dsub
    if dsub.empty or dsub["data_tokens"].nunique() < 2:
        note(b, "L(D) not measured:\nno runs on D-token subsets\n(plan: data_tokens = [...])")
    else:
        big = dsub[dsub["n_params"] == dsub["n_params"].max()].sort_values("data_tokens")
        b.plot(big["data_tokens"], final_loss(big), "o", color="tab:blue", label=f"N={big['n_params'].iloc[0]:.3g}")
        fd = study.fit("kaplan-d")
        if fd is not None:
            xs = np.geomspace(big["data_tokens"].min(), big["data_tokens"].max(), 50)
            b.plot(xs, law_predict(fd, D=xs), "--", color="tab:red", label=fit_label(fd, ("alpha_D",)))
        loglog(b, "dataset size D (tokens)")
        b.legend(fontsize=8)
    b.set_title("L(D): early-stopped, largest model")

    r = runs.sort_values("n_params")
    c.scatter(r["n_params"], r["val_loss"], c=[color(n) for n in r["n_params"]], s=36, zorder=3, label="final loss")
    fn = study.fit("kaplan-n")
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
        for _, g in curve_groups(curves):
            tok = tokens_to_reach(g, t)
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
    dsub = study.transformers()
    dsub = dsub[dsub["data_tokens"].notna()] if not dsub.empty else dsub
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
        fnd = study.fit("kaplan-nd")
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
        fns = study.fit("kaplan-ns")
        curves = study.done_curves
        noise = runs.set_index("run_id")["noise_scale"] if "noise_scale" in runs else pd.Series(dtype=float)
        # eq 1.6 is in S_min; the laws engine fits it with B_crit ≈ each run's noise scale, so do the same
        adjusted = fns is not None and bool(np.isfinite(noise).any() and (noise > 0).any())
        for rid, g in curve_groups(curves[curves["run_id"].isin(runs["run_id"])]):
            g = g[g["step"] > 0]
            n = g["n_params"].iloc[0]
            x = g["step"].to_numpy(float)
            ns = float(noise.get(rid, np.nan))
            if adjusted and np.isfinite(ns) and ns > 0:  # S_min as the laws engine fits it (B_crit ≈ noise scale)
                x = x / (1 + ns / (g["batch_size"].iloc[0] * g["n_ctx"].iloc[0]))
            b.plot(x, g["val_loss"], color=color(n), lw=1.2, alpha=0.85)
            if fns is not None:
                xs = np.geomspace(x.min(), x.max(), 50)
                b.plot(xs, law_predict(fns, N=np.full_like(xs, n), S=xs), "--", color=color(n), lw=1)
        if fns is not None:
            b.plot([], [], "k--", lw=1, label=fit_label(fns, ("alpha_N", "alpha_S")))
            b.legend(fontsize=8)
        loglog(b, "S_min = S/(1 + B_noise/B), steps" if adjusted else "optimisation steps S")
        b.set_title("L(N, S): learning curves" + (", dashed = eq. 1.6" if fns is not None else ""))
    size_colorbar(fig, sm, axes[-1])
    return fig


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
            ax.plot(g[key], pct, "o-", label=f"N ≈ {g['n_params'].median():.2g}, {_held(key, g)}")
        ax.set_xscale("log")
        _log_ticks(ax.xaxis, ax.get_xlim())
        ax.set_xlabel(label)
        ax.set_ylabel("loss increase over best shape (%)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def _held(key: str, g: pd.DataFrame) -> str:
    """What a Fig. 5 scan held fixed, for its legend."""
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
    fn = study.fit("kaplan-n")
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


@figure(
    "7", "LSTMs vs Transformers",
    caption="Final loss against N for each architecture (left) and loss per context position (right). "
            "Paper: LSTMs keep up on early tokens but plateau after ~100 tokens; Transformers scale better.",
    needs="≥ 2 finished LSTM runs beside transformer runs",
    plan="[[grid]]\narch = [\"lstm\"]\nn_layer = [1, 2]\nd_model = [64, 128]",
)
def fig07(study: Study) -> Figure:
    return _arch_compare(study, "lstm", "LSTM")


@figure(
    "17", "Recurrent (weight-shared) Transformers",
    caption="Final loss against N for the recurrent Transformer (one block reused n_layer times) and the standard one. "
            "Paper: recurrence is slightly better per parameter, worse per FLOP.",
    needs="≥ 2 finished 'universal' runs beside transformer runs",
    plan="[[grid]]\narch = [\"universal\"]\nn_layer = [4]\nd_model = [64, 128]",
)
def fig17(study: Study) -> Figure:
    return _arch_compare(study, "universal", "recurrent Transformer")


def _arch_compare(study: Study, arch: str, name: str) -> Figure:
    other = study.transformers(arch)
    need_runs(other, 2, f"≥ 2 finished {name} runs")
    base = need_runs(study.main_family(), 2, "≥ 2 transformer runs to compare with")
    fig, (a, b) = panels(2, width=5.0)
    n_other = other["n_params"].max()
    for df, label, col, law in ((base, "Transformer", "tab:blue", "kaplan-n"),
                                (other, name, "tab:orange", f"kaplan-n:{arch}")):
        g = df.sort_values("n_params")
        # a run far off the family's learning rate (e.g. an LR check) is shown hollow, not as the family
        lr_ratio = pd.to_numeric(g["lr"], errors="coerce") / pd.to_numeric(g["lr"], errors="coerce").median()
        odd = (lr_ratio > 1.5) | (lr_ratio < 1 / 1.5)
        for _, r in g[odd].iterrows():
            a.plot(r["n_params"], r["val_loss"], "o", mfc="none", color=col,
                   label=f"{label}, LR {r['lr']:.2g} ({lr_ratio[r.name]:.1f}× the family's)")
        g = g[~odd]
        a.plot(g["n_params"], g["val_loss"], "o", color=col, label=label)
        fn = study.fit(law)
        if fn is not None:  # the family's own L(N) fit (reproduce fits kaplan-n:<arch> where the preset has one)
            xs = np.geomspace(g["n_params"].min() / 1.2, g["n_params"].max() * 1.2, 50)
            a.plot(xs, law_predict(fn, N=xs), "--", color=col, lw=1, label=fit_label(fn, ("alpha_N",)))
        else:
            a.plot(g["n_params"], g["val_loss"], "-", color=col, lw=1)
        # per-position loss at comparable size: the largest other-arch model and the transformer nearest it
        top = g.loc[(np.log(g["n_params"]) - np.log(n_other)).abs().idxmin()]
        pp = top.get("val_loss_per_position")
        if isinstance(pp, list) and len(pp) > 2:
            edges = position_bins(len(pp))
            centres = [np.sqrt(lo * hi) for lo, hi in edges]
            b.plot(centres, bin_positions(np.asarray(pp, dtype=float), edges), "o-", ms=3, color=col,
                   label=f"{label}, N={top['n_params']:.2g}")
    loglog(a, NLABEL)
    a.legend(fontsize=8)
    if b.lines:
        loglog(b, "token position in context (log-spaced bins)")
        b.legend(fontsize=8)
    else:
        note(b, "per-position loss not recorded")
    return fig


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
    offset, linear = (study.fit(n) if len(names) == 1 else None for n in ("ood-offset", "ood-linear"))
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
    dsub = study.transformers()
    dsub = dsub[dsub["data_tokens"].notna()] if not dsub.empty else dsub
    need_runs(dsub, 2, "D-subset runs of ≥ 2 sizes")
    f = study.fit("kaplan-nd")
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
    "10", "Critical batch size and gradient noise scale vs loss",
    caption="Measured gradient noise scale B_simple (in tokens) along each learning curve against the loss, with the "
            "fitted B_crit(L) where a batch scan was fitted. Paper: B_crit depends on L only, B_crit ∝ L^(−1/α_B), α_B≈0.21.",
    needs="learning curves with the gradient noise scale recorded (or a bcrit fit)",
    plan="[train]\nnoise_scale_micro_batches = 2",
)
def fig10(study: Study) -> Figure:
    c = study.done_curves
    fb = study.fit("bcrit", "bcrit-scan")
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
    if fb is not None and fb.get("levels"):
        lv = [x for x in fb["levels"] if x.get("identified")]
        if lv:
            ax.plot([x["L"] for x in lv], [x["B_crit"] for x in lv], "D", color="tab:red", ms=7, zorder=4,
                    label="B_crit from the batch scan (Fig. 18)")
    if fb is not None:
        lo = c["val_loss"].min() if not c.empty else 2.0
        hi = c["val_loss"].max() if not c.empty else 6.0
        xs = np.geomspace(lo, hi, 50)
        ax.plot(xs, law_predict(fb, L=xs), "r--", lw=1.5, label="B_crit(L) " + fit_label(fb, ("B_star", "alpha_B")))
    loglog(ax, LOSS, "batch size (tokens)", logy=True)
    ax.legend(fontsize=8)
    if sm is not None:
        size_colorbar(fig, sm, ax)
    return fig


@figure(
    "11", "Loss vs S_min (steps at B ≫ B_crit)",
    caption="Learning curves against S_min = S/(1 + B_crit(L)/B), using the fitted B_crit(L). "
            "Paper: after this adjustment curves of all sizes follow eq. 1.6, L(N, S_min).",
    needs="learning curves and a bcrit fit (from a batch-size scan)",
    plan="[[grid]]\nn_layer = [2]\nd_model = [64]\nbatch_size = [4, 8, 16, 32, 64]",
)
def fig11(study: Study) -> Figure:
    fb = study.fit("bcrit", "bcrit-scan")
    if fb is None:
        raise NotMeasured("needs a bcrit fit (from a batch-size scan) to convert S to S_min")
    runs = need_runs(study.main_family(), 2, "learning curves of ≥ 2 sizes")
    c = study.done_curves
    c = c[c["run_id"].isin(runs["run_id"]) & (c["step"] > 0)]
    color, sm = size_colors(runs["n_params"])
    fig, (ax,) = panels(1, width=6.4)
    fns = study.fit("kaplan-ns")
    for _, g in curve_groups(c):
        B = g["batch_size"].to_numpy(float) * g["n_ctx"].to_numpy(float)
        smin = g["step"] / (1 + law_predict(fb, L=g["val_loss"].to_numpy(float)) / B)
        n = g["n_params"].iloc[0]
        ax.plot(smin, g["val_loss"], color=color(n), lw=1.2)
        if fns is not None:
            xs = np.geomspace(smin.min(), smin.max(), 40)
            ax.plot(xs, law_predict(fns, N=np.full_like(xs, n), S=xs), "--", color=color(n), lw=1)
    if fns is not None:
        ax.plot([], [], "k--", label=fit_label(fns, ("alpha_N", "alpha_S")))
        ax.legend(fontsize=8)
    loglog(ax, "S_min (steps)")
    size_colorbar(fig, sm, ax)
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
        k, slope = power_fit(sel["C_pf"].to_numpy(), sel["N"].to_numpy())
        xs = np.geomspace(fr["C_pf"].min(), fr["C_pf"].max(), 30)
        a.plot(xs, k * xs**slope, "-", color="tab:blue", label=f"measured N_opt ∝ C^{slope:.2f}")
        reference_slope(a, xs, k * xs[0] ** slope, 0.73, "paper's slope 0.73")
    loglog(a, "compute C (PF-days, fixed batch)", "N_opt (non-embedding parameters)", logy=True)
    a.legend(fontsize=8)
    b.plot(fr["C_pf"], fr["step"], "o", ms=4, color="tab:green", label="steps of the frontier model")
    k2, s2 = power_fit(fr["C_pf"].to_numpy(), fr["step"].to_numpy())
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
    fc = study.fit("kaplan-cmin", "kaplan-c")
    fd = study.fit("kaplan-d", "kaplan-nd")
    if fc is None or fd is None:
        raise NotMeasured("needs fits of both L(C) and L(D); " + ("L(D)" if fc is not None else "L(C)") + " is missing")
    runs = need_runs(study.main_family(), 3, "learning curves of ≥ 3 model sizes")
    c = study.done_curves
    fr = frontier_grid(c[c["run_id"].isin(runs["run_id"])])
    if fr["N"].nunique() < 2:
        raise NotMeasured("the frontier gives no N_opt(C) trend")
    k, slope = power_fit(fr["C_pf"].to_numpy(), fr["N"].to_numpy())
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
    loglog(ax, "compute C (PF-days)")
    ax.legend(fontsize=8)
    return fig


@figure(
    "16", "Early stopping on limited data",
    caption="Train and test loss of runs on D-token subsets of one model size; the marker is the early-stopping step. "
            "Paper: test loss departs from train loss once data repeat; S_stop ≳ S_c/[L(N,D) − L(N,∞)]^(1/α_S).",
    needs="learning curves of runs on ≥ 2 D-token subsets with train loss recorded",
    plan="[[grid]]\nn_layer = [4]\nd_model = [128]\ndata_tokens = [2e5, 1e6, 5e6]\nearly_stop = [true]",
)
def fig16(study: Study) -> Figure:
    dsub = study.transformers()
    dsub = dsub[dsub["data_tokens"].notna()] if not dsub.empty else dsub
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


@figure(
    "18", "Batch-size scans: steps vs examples to reach a loss",
    caption="For each target loss, steps S against tokens processed E = B·S across batch sizes, with the fitted "
            "hyperbola (S/S_min − 1)(E/E_min − 1) = 1. Paper: every scan follows it; B_crit = E_min/S_min.",
    needs="learning curves of one model size at ≥ 3 batch sizes",
    plan="[[grid]]\nn_layer = [2]\nd_model = [64]\nbatch_size = [4, 8, 16, 32, 64]",
)
def fig18(study: Study) -> Figure:
    from scalinglab.errors import UserError
    from scalinglab.laws.transforms import batch_scan_levels, steps_to_reach

    n, scan = scan_at_one_size(study.full_data(), "batch_size", 3, "at ≥ 3 batch sizes")
    c = study.done_curves
    c = c[c["run_id"].isin(scan["run_id"]) & (c["step"] > 0)]
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


@figure(
    "20/21", "Loss per token position in the context",
    caption="Final test loss at each position of the context for each model size (left, with measured power-law "
            "slopes), and the loss at a few positions against N (right). Paper: per-token loss is a power law in "
            "position, and larger models gain most at later positions.",
    needs="per-position loss of ≥ 2 finished runs",
    plan="(recorded by every training run at its final evaluation)",
)
def fig20(study: Study) -> Figure:
    d = study.main_family()
    if d.empty or "val_loss_per_position" not in d:
        raise NotMeasured("no per-position loss was recorded")
    d = d[d["val_loss_per_position"].map(lambda v: isinstance(v, list) and len(v) > 2)]
    need_runs(d, 2, "per-position loss of ≥ 2 model sizes")
    d = d.sort_values("n_params").drop_duplicates("n_params", keep="last")
    color, sm = size_colors(d["n_params"])
    n_ctx = min(len(v) for v in d["val_loss_per_position"])
    edges = position_bins(n_ctx)
    centres = np.array([np.sqrt(lo * hi) for lo, hi in edges])
    binned = {n: bin_positions(np.asarray(v[:n_ctx], dtype=float), edges)
              for n, v in zip(d["n_params"], d["val_loss_per_position"], strict=True)}
    fig, (a, b) = panels(2, width=5.2)
    for n, y in binned.items():
        a.plot(centres, y, "o-", ms=3, color=color(n), lw=1.2)
    top = binned[d["n_params"].iloc[-1]]
    tail = centres >= 2
    _, slope = power_fit(centres[tail], top[tail])
    a.plot([], [], "o-", color=color(d["n_params"].iloc[-1]), label=f"largest model: L(T) ∝ T^{slope:.3f} (T ≥ 2)")
    loglog(a, "token position T in the context (log-spaced bins)")
    a.legend(fontsize=8)
    size_colorbar(fig, sm, a)
    import matplotlib as mpl

    cmap = mpl.colormaps["cividis"]
    for i, (lo, hi) in enumerate(edges):
        y = [binned[n][i] for n in d["n_params"]]
        label = f"T = {lo}" if lo == hi else f"T = {lo}–{hi}"
        b.plot(d["n_params"], y, "o-", color=cmap(i / max(1, len(edges) - 1)), label=label)
    loglog(b, NLABEL)
    b.legend(fontsize=7, title="token position", ncol=2)
    return fig


def position_bins(n_ctx: int) -> list[tuple[int, int]]:
    """Log-spaced position bins 1, 2–3, 4–7, … (1-based, inclusive): per-position losses are noisy alone.
    A last bin shorter than half its doubling (e.g. position 64 alone at n_ctx 64) joins the one before it."""
    edges, lo = [], 1
    while lo <= n_ctx:
        hi = min(2 * lo - 1, n_ctx)
        edges.append((lo, hi))
        lo = hi + 1
    if len(edges) > 2 and edges[-1][1] - edges[-1][0] + 1 < edges[-1][0] / 2:
        edges[-2:] = [(edges[-2][0], n_ctx)]
    return edges


def bin_positions(values: np.ndarray, edges: list[tuple[int, int]]) -> np.ndarray:
    return np.array([float(np.mean(values[lo - 1: hi])) for lo, hi in edges])


@figure(
    "22", "Learning-rate schedules",
    caption="Learning rate (left) and test loss (right) against step for runs that differ only in their schedule. "
            "Paper: schedules with similar total learning rate reach nearly the same final loss.",
    needs="runs of one model size with ≥ 2 different LR schedules",
    plan="[[grid]]\nn_layer = [2]\nd_model = [64]\nschedule = [\"cosine\", \"linear\", \"constant\"]",
)
def fig22(study: Study) -> Figure:
    n, g0 = scan_at_one_size(study.transformers(), "schedule", 2, "trained with ≥ 2 LR schedules")
    c = study.done_curves
    c = c[c["run_id"].isin(g0["run_id"])]
    import matplotlib as mpl

    cmap = mpl.colormaps["tab10"]
    fig, (a, b) = panels(2, width=5.0)
    for i, (rid, g) in enumerate(curve_groups(c)):
        r = g0[g0["run_id"] == rid].iloc[0]
        label = f"{r['schedule']} (final L={r['val_loss']:.3f})"
        if "lr" in g and g["lr"].notna().any():
            a.plot(g["step"], g["lr"], "-", color=cmap(i), label=r["schedule"])
        g = g[g["step"] > 0]
        b.plot(g["step"], g["val_loss"], "-", color=cmap(i), label=label)
    a.set_xlabel("step")
    a.set_ylabel("learning rate")
    a.grid(True, alpha=0.3)
    if a.lines:
        a.legend(fontsize=8)
    loglog(b, "step")
    b.set_title(f"N = {n:.3g}")
    b.legend(fontsize=8)
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
    fn = study.fit("kaplan-n")
    if fn is not None:
        power = law_predict(fn, N=N)
        plabel = "power law (kaplan-n fit)"
        pfun = lambda x: law_predict(fn, N=x)  # noqa: E731
    else:
        k, s = power_fit(N, L)
        power = k * N**s
        plabel = "power law (log-log least squares)"
        pfun = lambda x: k * x**s  # noqa: E731
    flog = study.fit("log-n")
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


# ----------------------------------------------------------------------------------------------------


def select_figures(only: list[str] | None) -> list[FigureSpec]:
    """The registry, or the figures named in `only` (paper numbers like "1", "2/19", or keys like "fig01")."""
    if not only:
        return _ordered()
    known = {s.number: s for s in FIGURES} | {s.key: s for s in FIGURES}
    for part in (p for s in FIGURES for p in s.number.split("/")):
        known.setdefault(part, next(s for s in FIGURES if part in s.number.split("/")))
    bad = [o for o in only if o not in known]
    if bad:
        from scalinglab.errors import UserError

        raise UserError(f"unknown figure {bad[0]!r}; figures: {', '.join(s.number for s in FIGURES)}")
    picked = {known[o].key for o in only}
    return [s for s in _ordered() if s.key in picked]


def _ordered() -> list[FigureSpec]:
    return sorted(FIGURES, key=lambda s: int(s.number.split("/")[0]))


def render_figures(study: Study, out_dir: str | Path, dpi: int = 110, only: list[str] | None = None
                   ) -> list[FigureResult]:
    """Draw every registered figure (or those in `only`) the study has data for into out_dir (PNG + SVG)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from scalinglab.io import atomic_write_with

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    with plt.rc_context({"font.size": 10, "axes.titlesize": 11, "legend.framealpha": 0.85,
                         "svg.fonttype": "none", "figure.dpi": dpi}):
        for spec in select_figures(only):
            try:
                fig = spec.draw(study)
            except NotMeasured as e:
                results.append(FigureResult(spec, False, str(e)))
                continue
            try:
                fig.suptitle(f"Figure {spec.number}: {spec.title}", fontsize=12, fontweight="bold")
                for ext in ("png", "svg"):
                    atomic_write_with(out / f"{spec.key}.{ext}",
                                      lambda f, e=ext, fg=fig: fg.savefig(f, format=e, dpi=dpi), binary=True)
                    # the PNG's draw placed every axis; keep that layout for the SVG instead of solving it again
                    # (the constrained-layout solve is about half of each save)
                    fig.set_layout_engine("none")
            finally:
                plt.close(fig)
            results.append(FigureResult(spec, True, png=f"{spec.key}.png", svg=f"{spec.key}.svg"))
    return results


def figure_index() -> list[dict[str, Any]]:
    """The registry as plain data (for --json output and docs)."""
    return [{"key": s.key, "number": s.number, "title": s.title, "needs": s.needs} for s in FIGURES]
