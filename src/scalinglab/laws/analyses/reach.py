"""How far a planner answer extrapolates its fits, and when it stops being a prediction.

A fit records the range of the data it was fitted on (`data_range` in laws/framework/columns.py: N, D and C, with C = 6·N·D where only N and D
were given). `extrapolation` compares an answer (N_opt, D at a budget C) with it, in decades beyond the range (0
inside it), and with the study's largest run when the caller knows it (the report does).

Past `PROJECTION_DECADES` (one decade) on any axis the answer is a *projection*: the fitted form carried where no
measurement of the study checked it. One decade because that is as far as a study's own checks reach (a hold-out of
the largest-compute runs tests about a decade past the rest), and beyond it errors compound: an exponent off by δα
moves a prediction by a factor 10^(δα·decades), and exponents fitted at small scale drift (Porian et al. 2024, Pearce
& Song 2024; DESIGN "Known caveats"), so the interval of the fit no longer covers the error of the answer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

PROJECTION_DECADES = 1.0


def _range_of(fit: Any) -> dict[str, list[float]]:
    r = fit.get("data_range") if isinstance(fit, Mapping) else getattr(fit, "data_range_", None)
    return dict(r) if isinstance(r, Mapping) else {}


def _union(ranges: list[dict[str, list[float]]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for r in ranges:
        for k, (lo, hi) in r.items():
            out[k] = [min(lo, out[k][0]), max(hi, out[k][1])] if k in out else [lo, hi]
    return out


def decades_beyond(x: Any, lo_hi: list[float] | None) -> float | None:
    """log10 distance of x outside [lo, hi] (0 inside), None when either is unknown."""
    if lo_hi is None or not isinstance(x, (int, float)) or not (math.isfinite(x) and x > 0):
        return None
    lo, hi = lo_hi
    return max(0.0, math.log10(x / hi), math.log10(lo / x))


def extrapolation(row: Mapping[str, Any], fits: Mapping[str, Any] | None,
                  largest_run_flops: float | None = None) -> dict[str, Any]:
    """How far `row` (a plan: compute_flops, N_opt, D, sources) reaches beyond the data of `fits` (law name -> fit),
    in decades: of compute beyond the largest run (the study's when given, else the fits' largest C), of N_opt and
    D beyond the fitted ranges (the range of the law the value came from, else of all the fits). `projection` is
    True past PROJECTION_DECADES on any axis; None when nothing is known about the fits' data."""
    fits = dict(fits or {})
    sources = row.get("sources") or {}
    every = _union([_range_of(f) for f in fits.values()])

    def range_for(key: str, axis: str) -> list[float] | None:
        own = _range_of(fits.get(str(sources.get(key)), {})) if sources.get(key) in fits else {}
        return own.get(axis) or every.get(axis)

    c_range = [0.0, float(largest_run_flops)] if largest_run_flops else range_for("N_opt", "C")
    out: dict[str, Any] = {
        "decades_C": None if not c_range else _signed_decades(row.get("compute_flops"), c_range[1]),
        "decades_N": decades_beyond(row.get("N_opt"), range_for("N_opt", "N")),
        "decades_D": decades_beyond(row.get("D"), range_for("D", "D")),
        "compute_basis": "the study's largest run" if largest_run_flops else "the largest C the fits saw",
        "threshold_decades": PROJECTION_DECADES,
    }
    known = [v for k, v in out.items() if k.startswith("decades_") and v is not None]
    # compared as shown (one decimal): a budget of exactly 10x the largest run is one decade, not "more than one"
    out["projection"] = None if not known else bool(round(max(known), 1) > PROJECTION_DECADES)
    return out


def _signed_decades(x: Any, ref: float) -> float | None:
    """log10(x / ref): how many decades of compute the budget is beyond (negative: within) the reference."""
    if not isinstance(x, (int, float)) or not (x > 0 and ref > 0):
        return None
    return math.log10(x / ref)


def reach_text(e: Mapping[str, Any]) -> str:
    """'C +3.0, N +2.1, D +0.4 decades' (only the axes known), or '' when none is."""
    parts = [f"{axis} {e[f'decades_{axis}']:+.1f}" for axis in ("C", "N", "D")
             if isinstance(e.get(f"decades_{axis}"), (int, float))]
    return (", ".join(parts) + " decades") if parts else ""


def kind_text(e: Mapping[str, Any]) -> str:
    """'prediction', 'projection' or 'unknown reach' for a row's extrapolation record."""
    p = e.get("projection")
    return "unknown reach" if p is None else ("projection" if p else "prediction")
