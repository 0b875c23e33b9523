"""The Study: runs and learning curves from a store, an import or frames, and the one way to select runs.

`Study.from_db(db)`, `Study.from_frame(runs, curves)`, `Study.from_import(source)` build one; `study.select(
family="main", n_layer=[2, 3], lr={"max": 3e-3}, data_tokens=None)` picks runs (a family or families, then run
columns: a value, a list of values, a {min, max} range, None for runs without a value); `study.frame(law)` is the
canonical frame the law is fitted on (what the law reads: final losses, curves, noise scale, budgets; laws/framework/data.py);
`study.saved_fit(law)` fits a law by name or an estimator on the runs selected (by default the law's own families,
`Law.families`: "main" for most). `scalinglab fit --db`, `reproduce`, the report and `sl.Study` all go through
here, so they select the same runs and give the same parameters. The report's figures use the selections below
(`family`, `main_family`, `shape_scans`); nothing here invents data: a column the store does not have is absent.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scalinglab.errors import UserError
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
    selection: dict[str, Any] | None = None  # what `select` took (None: every run)
    raw_runs: pd.DataFrame | None = field(default=None, repr=False)  # as the store gave them (laws/framework/data.py reads)
    raw_curves: pd.DataFrame | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.raw_runs is None:
            self.raw_runs = self.runs.copy() if self.runs is not None else pd.DataFrame()
        if self.raw_curves is None:
            self.raw_curves = self.curves.copy() if self.curves is not None else pd.DataFrame()
        self.runs = _normalise_runs(self.runs)
        self.curves = _normalise_curves(self.curves, self.runs)

    @classmethod
    def from_db(cls, db: str | Path, fits: dict[str, dict] | None = None, plans: list[dict] | None = None) -> Study:
        from scalinglab.store.db import load_evals, load_runs

        if not Path(db).is_file():
            raise UserError(f"results DB not found: {db}")
        runs = load_runs(db)
        curves = load_evals(db)
        return cls(runs=runs, curves=curves, fits=dict(fits or {}), plans=list(plans or []), source=str(db))

    @classmethod
    def from_frame(cls, runs: pd.DataFrame, curves: pd.DataFrame | None = None) -> Study:
        """A study of frames shaped like the store's tables (`store.db.load_runs` / `load_evals`)."""
        return cls(runs=runs, curves=curves if curves is not None else pd.DataFrame())

    @classmethod
    def from_import(cls, source: str | Path, db: str | Path | None = None, fmt: str | None = None,
                    run_config: list[str] | dict[str, str] | None = None,
                    config_table: str | Path | None = None) -> Study:
        """Import another tool's runs (into `db`, or a temporary store kept while the Study lives)."""
        from scalinglab.importers import import_runs

        tmp = None
        if db is None:
            tmp = tempfile.mkdtemp(prefix="scalinglab-import-")
            db = Path(tmp) / "imported.db"
        import_runs(source, db, fmt=fmt, run_config=run_config, config_table=config_table)
        study = cls.from_db(db)
        if tmp is not None:
            weakref.finalize(study, shutil.rmtree, tmp, True)
        return study

    # -- the one way to select runs, and what laws are fitted on ---------------------------------------

    def select(self, family: str | list[str] | tuple[str, ...] | None = MAIN, **where: Any) -> Study:
        """The study restricted to the finished runs of `family` (a name, several, or None / "all" for every
        family; untagged runs have their inferred family) that match `where` (run column -> a value, a list of
        values, {"min": x, "max": y}, or None for runs without a value). No match is a UserError."""
        families = _families(family)
        done = self.done
        mask = pd.Series(True, index=done.index)
        if families is not None:
            mask &= done["family"].isin(families)
        for key, value in where.items():
            mask &= _matches(done, key, value)
        chosen = done[mask]
        pruned = self._pruned(families, where)  # kept for the laws that rank LR candidates (`Law.reads_pruned`)
        what = describe_selection(families, where)
        if chosen.empty:
            present = ", ".join(sorted(map(str, done["family"].dropna().unique()))) or "none"
            raise UserError(f"no finished run matches {what} (families present: {present})")
        ids = set(chosen["run_id"].astype(str))
        raw_runs = (self.raw_runs[self.raw_runs["run_id"].astype(str).isin(ids | pruned)] if len(self.raw_runs)
                    else self.raw_runs)
        raw_curves = (self.raw_curves[self.raw_curves["run_id"].astype(str).isin(ids)]
                      if len(self.raw_curves) and "run_id" in self.raw_curves else self.raw_curves)
        # the families stay those inferred over the whole study (a selection does not re-infer them)
        families_of = dict(zip(self.runs["run_id"].astype(str), self.runs["family"], strict=True))
        raw_runs = raw_runs.assign(family=raw_runs["run_id"].astype(str).map(
            {**families_of, **dict(zip(chosen["run_id"].astype(str), chosen["family"], strict=True))}))
        out = Study(runs=raw_runs, curves=raw_curves, fits=self.fits, plans=self.plans, source=self.source,
                    selection={"family": list(families) if families is not None else None, "where": dict(where),
                               "description": what, "n_runs": len(ids), "runs": sorted(ids),
                               **({"pruned": sorted(pruned)} if pruned else {})},
                    raw_runs=raw_runs, raw_curves=raw_curves)
        return out

    def _pruned(self, families: tuple[str, ...] | None, where: dict[str, Any]) -> set[str]:
        """Ids of the runs a sweep pruned that match a selection (figures and most laws never see them)."""
        r = self.runs
        if r.empty or "status" not in r:
            return set()
        mask = r["status"].eq("pruned")
        if families is not None:
            mask &= r["family"].isin(families)
        for key, value in where.items():
            mask &= _matches(r, key, value)
        return set(r.loc[mask, "run_id"].astype(str))

    def frame(self, law: Any, count_embeddings: bool = False):
        """The canonical frame `law` (a name or an estimator) is fitted on, from this study's runs (all of them:
        select first). The FLOP convention and S_min/C_min policy are the law's settings (`flops`, `min_policy`)."""
        from scalinglab.laws.framework.data import law_frame
        from scalinglab.laws.framework.registry import get_law

        law = get_law(law) if isinstance(law, str) else law
        evals = self.raw_curves if law.reads != "runs" else None
        if evals is not None and (len(evals) == 0 or "run_id" not in evals):
            raise UserError(f"{law.name} reads learning curves; this study has none")
        where = f"results DB {self.source}" if self.source else "the study's runs"
        return law_frame(self.raw_runs, evals, law, count_embeddings, None, getattr(law, "flops", "paper"),
                         getattr(law, "min_policy", "noise-scale"), where=where)

    def fit(self, law: Any, count_embeddings: bool = False, **settings: Any) -> Any:
        """Fit `law` (a registered name, or an estimator whose settings are kept) on the selected runs; a study
        that was not selected gives the law its default families (`Law.families`). Returns the fitted law, with
        `selection_` saying which runs it took."""
        from scalinglab.laws.framework.fit import fit_law
        from scalinglab.laws.framework.registry import get_law

        est = get_law(law, **settings) if isinstance(law, str) else law
        if settings and not isinstance(law, str):
            est = type(est)(**est.get_params()).set_params(**settings)
        default = self.selection is None
        study = self.select(est.families) if default else self
        fitted = fit_law(est, study.frame(est, count_embeddings))
        fitted.selection_ = with_line(study.selection, default)
        return fitted

    def forecast(self, run: str | None = None, fraction: float | None = None, method: str = "auto",
                 bootstrap: int = 200, seed: int = 0) -> dict[str, Any]:
        """Forecast the final loss of this study's runs from their partial curves, as `scalinglab forecast --db`
        does (the LR schedule of runs trained here comes from their configs). A selected study forecasts its own
        runs, with the finished ones among them as the family; an unselected one every run of the store."""
        from scalinglab.laws.analyses.forecast import curves_from_store, forecast_curves

        if not self.source:
            raise UserError("Study.forecast needs a study read from a store (Study.from_db); "
                            "for a frame of curve points use sl.forecast(frame)")
        curves = curves_from_store(self.source)
        if self.selection is not None:
            curves = curves[curves["run"].astype(str).isin(self.selection["runs"])]
        return forecast_curves(curves, run=run, fraction=fraction, method=method, bootstrap=bootstrap, seed=seed)

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

    def saved_fit(self, *names: str) -> dict | None:
        """First fitted law among `names` (in `fits`) that has parameters."""
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


def with_line(selection: dict[str, Any] | None, default: bool) -> dict[str, Any]:
    """The selection with the line a fit's summary prints about it (`fit --db` and `Study.fit` alike)."""
    out = dict(selection or {})
    out["line"] = (f"runs: {out.get('n_runs')} finished runs of {out.get('description')}"
                   + (" (the law's default; --family NAME|all or Study.select for others)" if default else ""))
    return out


def _families(family: Any) -> tuple[str, ...] | None:
    if family is None or family == "all":
        return None
    if isinstance(family, str):
        return (family,)
    return tuple(str(f) for f in family)


def describe_selection(families: tuple[str, ...] | None, where: dict[str, Any]) -> str:
    parts = ["every family" if families is None else f"family {', '.join(families)}"]
    parts += [f"{k} = {v!r}" for k, v in where.items()]
    return "; ".join(parts)


def _matches(runs: pd.DataFrame, key: str, value: Any) -> pd.Series:
    """Runs whose column `key` matches `value` (see `Study.select`); the config JSON fills a column the run table
    lacks; a key no run has is a UserError."""
    if key in runs:
        col = runs[key]
    elif "config" in runs and runs["config"].map(lambda c: isinstance(c, dict) and key in c).any():
        col = runs["config"].map(lambda c: c.get(key) if isinstance(c, dict) else None)
    else:
        raise UserError(f"cannot select on {key!r}: the runs have no such column")
    if value is None or (isinstance(value, dict) and value.get("missing")):
        return col.isna()
    if isinstance(value, dict):
        num = pd.to_numeric(col, errors="coerce")
        return num.ge(value.get("min", -np.inf)) & num.le(value.get("max", np.inf))
    if isinstance(value, list | tuple):
        return col.isin(list(value))
    if isinstance(value, bool):
        return col.fillna(False).astype(bool) == value
    return col == value
