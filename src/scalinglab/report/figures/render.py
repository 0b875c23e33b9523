"""Draw the registered figures into a folder as PNG and SVG, without touching pyplot or the matplotlib backend."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from scalinglab.report.figures.registry import FigureResult, NotMeasured, select_figures
from scalinglab.report.figures.style import RC

if TYPE_CHECKING:
    from scalinglab.report.study import Study


def render_figures(study: Study, out_dir: str | Path, dpi: int = 110, only: list[str] | None = None
                   ) -> list[FigureResult]:
    """Draw every registered figure (or those in `only`) the study has data for into out_dir (PNG + SVG)."""
    import matplotlib

    from scalinglab.io import atomic_write_with

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    with matplotlib.rc_context(RC | {"figure.dpi": dpi}):
        for spec in select_figures(only):
            try:
                fig = spec.draw(study)
            except NotMeasured as e:
                results.append(FigureResult(spec, False, str(e)))
                continue
            fig.suptitle(f"Figure {spec.number}: {spec.title}", fontsize=12, fontweight="bold")
            for ext in ("png", "svg"):
                atomic_write_with(out / f"{spec.key}.{ext}",
                                  lambda f, e=ext, fg=fig: fg.savefig(f, format=e, dpi=dpi), binary=True)
                # the PNG's draw placed every axis; keep that layout for the SVG instead of solving it again
                # (the constrained-layout solve is about half of each save)
                fig.set_layout_engine("none")
            results.append(FigureResult(spec, True, png=f"{spec.key}.png", svg=f"{spec.key}.svg"))
    return results
