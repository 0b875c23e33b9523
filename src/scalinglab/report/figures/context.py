"""Appendix D.5: loss per token position in the context (Figs. 20/21)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from scalinglab.laws.families.frontier import _loglog_fit as loglog_fit
from scalinglab.report.figures.data import (
    need_runs,
)
from scalinglab.report.figures.registry import NotMeasured, figure
from scalinglab.report.figures.style import (
    NLABEL,
    loglog,
    panels,
    size_colorbar,
    size_colors,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from scalinglab.report.study import Study


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
    _, slope = loglog_fit(centres[tail], top[tail])
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

