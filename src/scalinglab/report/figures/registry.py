"""The figure registry: each paper figure registers its drawing function with its number, caption and plan entry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from scalinglab.report.study import Study


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
    """Register a figure function under the paper's figure number ("13/14": one figure drawing two of the paper's)."""

    def deco(fn: Callable[[Study], Figure]) -> Callable[[Study], Figure]:
        key = "fig" + "_".join(p.zfill(2) for p in number.replace("–", "/").split("/"))
        FIGURES.append(FigureSpec(key, number, title, caption, needs, plan, fn))
        return fn

    return deco


def ordered() -> list[FigureSpec]:
    """The registry in the paper's order; figures that are not the paper's (a name, not a number) come last."""
    def order(s: FigureSpec) -> tuple[int, int, str]:
        head = s.number.split("/")[0]
        return (0, int(head), "") if head.isdigit() else (1, 0, head)

    return sorted(FIGURES, key=order)


def select_figures(only: list[str] | None) -> list[FigureSpec]:
    """The registry, or the figures named in `only` (paper numbers like "1", "2/19", "19", or keys like "fig01")."""
    if not only:
        return ordered()
    known = ({part: s for s in FIGURES for part in s.number.split("/")} | {s.number: s for s in FIGURES}
             | {s.key: s for s in FIGURES})
    bad = [o for o in only if o not in known]
    if bad:
        from scalinglab.errors import UserError

        raise UserError(f"unknown figure {bad[0]!r}; figures: {', '.join(s.number for s in ordered())}")
    picked = {known[o].key for o in only}
    return [s for s in ordered() if s.key in picked]


def figure_index() -> list[dict[str, Any]]:
    """The registry as plain data (for --json output and docs)."""
    return [{"key": s.key, "number": s.number, "title": s.title, "needs": s.needs} for s in ordered()]
