"""Appendix D.6: learning-rate schedules (Fig. 22)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scalinglab.report.figures.data import (
    curve_groups,
    scan_at_one_size,
)
from scalinglab.report.figures.registry import figure
from scalinglab.report.figures.style import (
    loglog,
    panels,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from scalinglab.report.study import Study


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

