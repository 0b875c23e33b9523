"""What the report draws from: the store's runs and learning curves, plus fitted laws, as pandas frames.

`Study` is built from a results store (`Study.from_db`) or from frames directly (tests build synthetic
ones). It normalises what the figures need: JSON columns parsed, N with and without embeddings, one
learning-curve frame joined with each run's shape, and the fitted laws keyed by name. Nothing here
invents data: a column the store does not have is simply absent, and figures that need it say so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scalinglab.laws.constants import PF_DAY
from scalinglab.store.families import (
    FULL_DATA,
    MAIN,
    USUAL_BATCH,
    finished_mask,
    with_families,
    with_shape_ratios,
)

RUN_KEYS = (
    "arch", "n_layer", "d_model", "d_ff", "d_attn", "n_heads", "n_ctx", "batch_size", "steps",
    "data_tokens", "lr", "schedule", "seed", "n_params", "n_params_with_embeddings", "plan", "name",
)


def _parse_json(value: Any) -> Any:
    if isinstance(value, (str, bytes)) and value:
        try:
            return json.loads(value)
        except (json.JSONDecodeError, TypeError):
            return None
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def _config_field(cfg: Any, key: str) -> Any:
    return cfg.get(key) if isinstance(cfg, dict) else None


@dataclass
class Study:
    """Runs (one row per run), curves (one row per evaluation) and fits (law name → fit dict)."""

    runs: pd.DataFrame
    curves: pd.DataFrame = field(default_factory=pd.DataFrame)
    fits: dict[str, dict] = field(default_factory=dict)
    plans: list[dict] = field(default_factory=list)
    source: str = ""

    def __post_init__(self) -> None:
        self.runs = _normalise_runs(self.runs)
        self.curves = _normalise_curves(self.curves, self.runs)

    @classmethod
    def from_db(cls, db: str | Path, fits: dict[str, dict] | None = None, plans: list[dict] | None = None) -> Study:
        from scalinglab.store.db import load_evals, load_runs

        runs = load_runs(db)
        curves = load_evals(db)
        return cls(runs=runs, curves=curves, fits=dict(fits or {}), plans=list(plans or []), source=str(db))

    # -- selections the figures share -------------------------------------------------------------

    @property
    def done(self) -> pd.DataFrame:
        """Finished runs with a finite final loss (the only ones any figure uses)."""
        r = self.runs
        return r if r.empty else r[finished_mask(r)]

    @property
    def done_curves(self) -> pd.DataFrame:
        c = self.curves
        if c.empty:
            return c
        c = c[c["run_id"].isin(self.done["run_id"])]
        return c[np.isfinite(pd.to_numeric(c["val_loss"], errors="coerce"))]

    def transformers(self, arch: str = "transformer") -> pd.DataFrame:
        d = self.done
        return d[d["arch"].fillna("transformer") == arch] if not d.empty else d

    def family(self, *names: str) -> pd.DataFrame:
        """Finished runs of the given families (plan tags; untagged runs by `store.families.infer_families`)."""
        d = self.done
        return d[d["family"].isin(names)] if not d.empty else d

    def full_data(self) -> pd.DataFrame:
        """Transformer runs on the full data at the study's usual schedule and context: the main family, its
        shape scans and its batch scans (families "main", "shape", "batch-scan")."""
        return self.family(*FULL_DATA)

    def main_family(self, one_shape: bool = True) -> pd.DataFrame:
        """The L(N) / L(C) family: the runs tagged "main" (batch scans, schedule and D-subset runs are other
        figures' data). With `one_shape=False` the shape scans at the family's batch size are in too (Fig. 5)."""
        return self.family(MAIN) if one_shape else self.family(*USUAL_BATCH)

    def shape_scans(self) -> dict[str, list[pd.DataFrame]]:
        """Fig. 5's sub-studies, keyed by shape dimension ("aspect", "ff_ratio", "head_dim"): sets of ≥ 3
        full-data transformer runs at (nearly) the same N (`_size_groups`) that differ in that dimension only.

        Each dimension holds its own controls fixed, as the paper's scans do: the aspect-ratio scan keeps
        d_ff/d_model, d_attn/d_model and the default heads; the feed-forward scan keeps n_layer and the
        attention; the head scan keeps n_layer, d_model, d_ff and d_attn. Without this a d_ff scan's runs
        (whose aspect ratio moves with d_model) would land in the aspect panel and confound it."""
        d = self.main_family(one_shape=False)
        d = with_shape_ratios(d.dropna(subset=["n_layer", "d_model", "d_ff", "d_attn", "n_heads"]))
        if d.empty:
            return {}
        controls = {"aspect": ["ff_ratio", "attn_ratio", "default_heads"],
                    "ff_ratio": ["n_layer", "attn_ratio", "default_heads"],
                    "head_dim": ["n_layer", "d_model", "d_ff", "d_attn"]}
        scans: dict[str, list[pd.DataFrame]] = {}
        for size in _size_groups(d["n_params"]):
            g = d.loc[size]
            for key, held in controls.items():
                for _, sub in g.groupby(held, sort=False):
                    if sub[key].nunique() >= 3:
                        scans.setdefault(key, []).append(sub.sort_values(key))
        return scans

    def fit(self, *names: str) -> dict | None:
        """First fitted law among `names` that has parameters."""
        for n in names:
            f = self.fits.get(n)
            if isinstance(f, dict) and isinstance(f.get("params"), dict) and f["params"]:
                return f
        return None

    def eval_set_names(self) -> list[str]:
        names: set[str] = set()
        for v in self.done.get("eval_losses", pd.Series(dtype=object)):
            if isinstance(v, dict):
                names.update(k for k, x in v.items() if _finite(x))
        return sorted(names)


def _size_groups(n_params: pd.Series) -> list[pd.Index]:
    """Runs grouped by N: sorted by N, a run joins the previous group when it is within 20% of that group's
    largest run and within 50% of its smallest (shape scans solved for one target N scatter by ±15%)."""
    logn = np.log(n_params.astype(float)).sort_values()
    groups: list[list] = []
    for i, v in logn.items():
        if groups and v - logn[groups[-1][-1]] < np.log(1.2) and v - logn[groups[-1][0]] < np.log(1.5):
            groups[-1].append(i)
        else:
            groups.append([i])
    return [pd.Index(g) for g in groups]


def _finite(x: Any) -> bool:
    try:
        return bool(np.isfinite(float(x)))
    except (TypeError, ValueError):
        return False


def _normalise_runs(runs: pd.DataFrame) -> pd.DataFrame:
    r = runs.copy() if runs is not None else pd.DataFrame()
    if r.empty:
        return pd.DataFrame(columns=["run_id", "status", "val_loss", "family", *RUN_KEYS])
    for col in ("eval_losses", "val_loss_per_position", "config"):
        if col in r:
            r[col] = r[col].map(_parse_json)
    # Fill shape columns from the config JSON where the store left them out.
    for key in RUN_KEYS:
        if key not in r:
            r[key] = r["config"].map(lambda c, k=key: _config_field(c, k)) if "config" in r else None
    for col in ("arch", "schedule"):  # unknown stays unknown (an import that named neither); selections default it
        r[col] = r[col].astype(object).where(r[col].notna(), None)
    for col in ("n_params", "n_params_with_embeddings", "tokens", "flops", "pf_days", "val_loss", "best_val_loss",
                "train_loss", "noise_scale", "data_tokens", "batch_size", "n_ctx", "steps", "n_layer", "d_model",
                "d_ff", "d_attn", "n_heads", "wall_s", "lr", "seed"):
        if col in r:
            r[col] = pd.to_numeric(r[col], errors="coerce")
    if "d_ff" in r:
        r["d_ff"] = r["d_ff"].fillna(4 * r["d_model"])
    if "d_attn" in r:
        r["d_attn"] = r["d_attn"].fillna(r["d_model"])
    return with_families(r).reset_index(drop=True)


def _normalise_curves(curves: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    if curves is None or curves.empty or "run_id" not in curves:
        return pd.DataFrame(columns=["run_id", "step", "tokens", "flops", "val_loss"])
    c = curves.copy()
    for col in c.columns:
        if col not in ("run_id", "eval_losses"):
            c[col] = pd.to_numeric(c[col], errors="coerce")
    if "eval_losses" in c:
        c["eval_losses"] = c["eval_losses"].map(_parse_json)
    keep = [k for k in ("run_id", "arch", "n_params", "n_params_with_embeddings", "batch_size", "n_ctx",
                        "data_tokens", "schedule", "n_layer", "d_model", "lr") if k in runs]
    join = runs[keep].rename(columns={"lr": "run_lr"}) if "lr" in c else runs[keep]
    c = c.merge(join, on="run_id", how="left", suffixes=("", "_run"))
    return c.sort_values(["run_id", "step"]).reset_index(drop=True)


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
        from scalinglab.laws.plan import plan_allocation
    except ImportError:
        return []
    from scalinglab.laws.reach import extrapolation, kind_text, reach_text

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
    from scalinglab.laws.frontier import compute_frontier, fit_nopt

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
