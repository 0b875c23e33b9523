"""How every figure looks: panels, colours by model size, log axes and fit labels, on matplotlib's own pieces.

Figures are built on `matplotlib.figure.Figure` with an Agg canvas and never through pyplot, so drawing a report
leaves the caller's backend (a notebook's inline plots) and pyplot's figure list alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.ticker import EngFormatter

LOSS = "test loss L (nats/token)"
NLABEL = "N, non-embedding parameters"

# matplotlib settings every figure is drawn and saved under (render.py applies them with matplotlib.rc_context)
RC = {"font.size": 10, "axes.titlesize": 11, "legend.framealpha": 0.85, "svg.fonttype": "none"}


class CountFormatter(EngFormatter):
    """20k, 1.5M, 3.5, 0.05: SI prefixes for large counts, plain numbers below 1000 (never 'm' or 'µ')."""

    ENG_PREFIXES = {0: "", 3: "k", 6: "M", 9: "G", 12: "T"}

    def __init__(self) -> None:
        super().__init__(sep="")


def panels(n: int, width: float = 5.2, height: float = 4.0):
    """A row of `n` axes on a new Figure (constrained layout, Agg canvas); returns (fig, [axes])."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * n, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n, squeeze=False)
    return fig, list(axes[0])


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
    """Log axes as the paper draws them; narrow spans (e.g. loss) get plain-number ticks."""
    ax.set_xscale("log")
    log_ticks(ax.xaxis, ax.get_xlim())
    if logy:
        ax.set_yscale("log")
        log_ticks(ax.yaxis, ax.get_ylim())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    ax.grid(True, which="minor", alpha=0.1)


def log_ticks(axis, lim: tuple[float, float]) -> None:
    """Ticks for a log axis by the decades it spans: ≥ 3 decades powers of ten (1e5); 2–3 at 1-3 steps,
    1–2 at 1-2-5 steps, under one decade evenly spaced values, all labelled as plain counts (20k, 3.5)."""
    from matplotlib.ticker import LogFormatterSciNotation, LogLocator, MaxNLocator, NullFormatter

    lo, hi = sorted(lim)
    decades = np.log10(hi / lo) if lo > 0 else np.inf
    if decades >= 3:
        axis.set_major_locator(LogLocator(base=10, numticks=8))
        axis.set_major_formatter(LogFormatterSciNotation())
    else:
        if decades >= 2:
            locator: Any = LogLocator(base=10, subs=(1.0, 3.0))
        elif decades >= 1:
            locator = LogLocator(base=10, subs=(1.0, 2.0, 5.0))
        else:
            locator = MaxNLocator(nbins=6, steps=[1, 2, 5, 10], min_n_ticks=3)
        axis.set_major_locator(locator)
        axis.set_major_formatter(CountFormatter())
    axis.set_minor_formatter(NullFormatter())


def note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=10, color="0.4", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def fit_label(fit: dict, keys: tuple[str, ...]) -> str:
    """Legend text of a fitted law: its exponents with their 95% intervals."""
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


def reference_slope(ax, x: np.ndarray, y0: float, slope: float, label: str) -> None:
    """A dashed guide with the paper's exponent, anchored at the first measured point."""
    x = np.asarray(x, dtype=float)
    ax.plot(x, y0 * (x / x[0]) ** slope, "--", color="0.5", lw=1.2, label=label)
