"""The paper's figures, drawn from the user's own runs: a registry with one function per figure.

Each figure function takes a `Study` and returns a matplotlib Figure, or raises `NotMeasured(reason)` when the
store lacks the data it needs — the report then lists the figure as "not measured by this study" with the plan
entry that would measure it. Nothing is ever drawn from invented data; reference slopes from the paper are drawn
only as clearly labelled dashed guides next to measured points.

Layout: registry.py (registration, selection), style.py (panels, colours, log ticks, fit labels), data.py (what a
figure selects from a study), render.py (PNG + SVG files), and one module per paper section. Adding a figure is
a few lines in its section's module:

    @figure("12", "Title", caption="What it shows. Paper: what it found.", needs="...", plan="[[grid]] ...")
    def fig12(study: Study) -> Figure:
        d = need_runs(study.main_family(), 3, "three model sizes")
        fig, (ax,) = panels(1)
        ...
        return fig
"""

from scalinglab.report.figures import (  # noqa: F401  (importing a section registers its figures)
    architectures,
    batch,
    context,
    generalisation,
    scaling,
    schedules,
    shape,
    tuning,
)
from scalinglab.report.figures.context import position_bins
from scalinglab.report.figures.data import law_predict
from scalinglab.report.figures.registry import (
    FIGURES,
    FigureResult,
    FigureSpec,
    NotMeasured,
    figure,
    figure_index,
    select_figures,
)
from scalinglab.report.figures.render import render_figures

__all__ = ["FIGURES", "FigureResult", "FigureSpec", "NotMeasured", "figure", "figure_index", "law_predict",
           "position_bins", "render_figures", "select_figures"]
