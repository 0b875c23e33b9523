"""Static report: index.html (or index.md) with the runs, the fitted laws, the planner and the paper's figures.

Both formats are jinja2 templates (report/templates/) rendered from one context (report/content.py). Everything
is local — the PNG/SVG figures sit beside index.html with a copied style.css; there are no scripts, web fonts or
remote URLs, so the folder can be zipped, mailed or served from anywhere.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scalinglab.io import atomic_write_text
from scalinglab.report.content import report_context
from scalinglab.report.figures import FigureResult, render_figures

if TYPE_CHECKING:
    import jinja2

    from scalinglab.report.study import Study

FORMATS = {"html": "index.html", "md": "index.md"}


@dataclass
class Report:
    path: Path
    figures: list[FigureResult] = field(default_factory=list)

    @property
    def drawn(self) -> list[FigureResult]:
        return [f for f in self.figures if f.drawn]

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": str(self.path),
            "figures_drawn": [f.spec.number for f in self.drawn],
            "figures_not_measured": {f.spec.number: f.reason for f in self.figures if not f.drawn},
        }


def build_report(study: Study, out_dir: str | Path, fmt_: str = "html", title: str = "Scaling-law study",
                 only: list[str] | None = None) -> Report:
    """Draw the figures into out_dir and write index.html (or index.md) beside them."""
    if fmt_ not in FORMATS:
        from scalinglab.errors import UserError

        raise UserError(f"unknown report format {fmt_!r}; use html or md")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs = render_figures(study, out, only=only)
    if fmt_ == "html":
        css = resources.files("scalinglab.report").joinpath("report.css")
        with resources.as_file(css) as p:
            shutil.copyfile(p, out / "style.css")
    text = _templates().get_template(FORMATS[fmt_]).render(report_context(study, figs, title))
    return Report(atomic_write_text(out / FORMATS[fmt_], text), figs)


@cache
def _templates() -> jinja2.Environment:
    """The report templates (package data): HTML autoescaped, Markdown with table-cell filters."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("scalinglab.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["mdrow"] = _md_row
    env.filters["mdrule"] = lambda cells: _md_row(["---"] * len(cells))
    return env


def _md_row(cells: list[str]) -> str:
    """One Markdown table row; pipes inside a cell escaped, line breaks flattened."""
    return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"
