"""What the report draws from: the store's runs and learning curves, plus fitted laws, as pandas frames.

`Study` is built from a results store (`Study.from_db`) or from frames directly (tests build synthetic
ones). It normalises what the figures need: JSON columns parsed, N with and without embeddings, one
learning-curve frame joined with each run's shape, and the fitted laws keyed by name. Nothing here
invents data: a column the store does not have is simply absent, and figures that need it say so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from scalinglab.laws.framework.constants import PF_DAY
from scalinglab.study import Study

__all__ = ["Study", "default_budgets", "fits_from_store", "frontier_nopt", "load_fits_file", "load_fits_files",
           "plan_budgets"]

# ----------------------------------------------------------------------------------------------------
# fits and planner answers


def load_fits_file(path: str | Path) -> dict[str, dict]:
    """Fits from a file: one `scalinglab fit --json` object, or an object keyed by law name."""
    from scalinglab.errors import UserError
    from scalinglab.io import read_json

    data = read_json(path, "fits file")
    if isinstance(data, dict) and "law" in data and "params" in data:
        return {str(data["law"]): data}
    if isinstance(data, dict) and all(isinstance(v, dict) for v in data.values()):
        return {str(k): v for k, v in data.items() if "params" in v}
    raise UserError(f"fits file {path} is neither a fit (with 'law' and 'params') nor an object of fits by law name")


def load_fits_files(paths: list[str | Path]) -> dict[str, dict]:
    """Fits from several files (each as `load_fits_file` reads it), keyed by law; a later file's law wins."""
    out: dict[str, dict] = {}
    for p in paths:
        out.update(load_fits_file(p))
    return out


def fits_from_store(db: str | Path) -> dict[str, dict]:
    """The latest saved fit of each law in the store (empty when none were saved)."""
    from scalinglab.store.db import load_fits

    out: dict[str, dict] = {}
    for f in load_fits(db):
        if isinstance(f.get("params"), dict):
            out[str(f["law"])] = f
    return out


def default_budgets(study: Study) -> list[float]:
    """Budgets (PF-days) for the planner table: 10×, 1000× the study's largest run, and 1 PF-day."""
    pf = pd.to_numeric(study.done.get("pf_days"), errors="coerce") if not study.done.empty else None
    top = float(pf.max()) if pf is not None and np.isfinite(pf).any() else 1e-6
    return sorted({float(f"{top * 10:.2g}"), float(f"{top * 1000:.2g}"), 1.0})


def plan_budgets(study: Study, budgets: list[float] | None = None) -> list[dict]:
    """The planner's answer (laws.plan) for a few budgets in PF-days, from the study's fits; [] without them."""
    try:
        from scalinglab.laws.analyses.planning import plan_allocation
    except ImportError:
        return []
    from scalinglab.laws.analyses.reach import extrapolation, kind_text, reach_text

    if not study.fits:
        return []
    nopt = frontier_nopt(study)
    done = study.done
    largest = float(pd.to_numeric(done["pf_days"], errors="coerce").max()) if "pf_days" in done else float("nan")
    rows = []
    for b in budgets or default_budgets(study):
        # how far the answer extrapolates the fits: the budget over the largest run the study trained
        reach = {"x_largest_run": b / largest} if np.isfinite(largest) and largest > 0 else {}
        try:
            ans = plan_allocation(b * PF_DAY, fits=study.fits)
        except Exception as e:  # noqa: BLE001 - a planner that cannot use these fits is reported, not fatal
            rows.append({"compute_pf_days": b, **reach, "note": f"planner: {' '.join(str(e).split())}"})
            continue
        if hasattr(ans, "to_dict"):
            ans = ans.to_dict()
        ans = {k: v for k, v in dict(ans).items() if not isinstance(v, list)}
        if ans.get("N_opt") is None and nopt is not None:  # approach 1: extrapolate N_opt(C) of the frontier
            n = nopt["coef"] * (b * PF_DAY) ** nopt["exponent"]
            ans.update(N_opt=n, D=b * PF_DAY / (6 * n))
            ans.setdefault("sources", {}).update(N_opt=f"frontier N_opt ∝ C^{nopt['exponent']:.3f}",
                                                 D="C/(6·N_opt)")
        ans["extrapolation"] = extrapolation(ans, study.fits, largest * PF_DAY if np.isfinite(largest) else None)
        rows.append({"compute_pf_days": b, **reach, **ans, "reach": reach_text(ans["extrapolation"]),
                     "kind": kind_text(ans["extrapolation"])})
    return rows


def frontier_nopt(study: Study) -> dict | None:
    """N_opt(C) = coef·C^exponent (C in FLOPs) from the frontier of the main family's curves, or None."""
    from scalinglab.errors import UserError
    from scalinglab.laws.families.frontier import compute_frontier, fit_nopt

    runs = study.main_family()
    c = study.done_curves
    if runs.empty or c.empty:
        return None
    c = c[c["run_id"].isin(runs["run_id"]) & (c["flops"] > 0) & (c["step"] > 0)]
    try:
        fr = compute_frontier(pd.DataFrame({"C": c["flops"], "L": c["val_loss"], "run": c["run_id"],
                                            "N": c["n_params"]}))
        # the smallest model holds the frontier at the start of training: fit where larger ones took over
        fr = fr[fr["N"] > fr["N"].min()] if fr["N"].nunique() > 2 else fr
        return fit_nopt(fr)
    except UserError:
        return None
