"""One command from nothing to a report: corpus → sweep → fits → planner → report (`scalinglab reproduce`).

A preset is one plan file shipped in the package (`presets/<name>.toml`, whose corpus is "corpus", i.e. the
folder beside it) that holds everything: the runs (tagged with their families), and in its [reproduce] table
how to prepare the corpus, which laws to fit on which runs and the planner's budgets:

    [reproduce]
    budgets_pf_days = [1e-6, 1e-3, 1.0]
    corpus = { source = "stdlib", vocab_size = 2048, max_tokens = 4_000_000 }
    [[reproduce.fit]]
    law = "kaplan-n"
    select = "main"               # a family, or a table of run columns: { n_layer = 2, d_model = [32, 64],
    bootstrap = 500               #   lr = { max = 3e-3 }, data_tokens = { missing = true } }
    holdout = 1

`--print-plan` prints that file, and `--plan FILE` runs one like it (a file without [reproduce] takes the
preset's). Everything lands in one folder:

    OUT/reproduce.json   marker: preset, settings, progress of each stage (so a rerun redoes nothing)
    OUT/corpus/          the prepared corpus (reused when its settings match)
    OUT/plan.toml        the preset's plan, as run
    OUT/runs.db          the results store; OUT/runs/<run_id>/ one folder per run (checkpoints, metrics)
    OUT/fits.json        fitted laws keyed by law name: {"kaplan-n": {law, params, ci95, n_points, ...}, ...}
    OUT/plans.json       the planner's answer for a few compute budgets
    OUT/report/index.html

Rerunning the same command resumes: the sweep skips finished runs (and resumes half-done ones from their
checkpoints), and fits and the report are redone only when the finished runs changed. An OUT that holds
anything other than a previous reproduce of the same preset is refused before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import pydantic
import tomllib
from pydantic import BaseModel, ConfigDict, Field

from scalinglab.errors import UserError
from scalinglab.io import atomic_write_json, atomic_write_text, read_json

MARKER = "reproduce.json"


@dataclass(frozen=True)
class LawJob:
    """Fit `law` on the runs matching `select` with bootstrap/hold-out; saved as `key` (default: the law's name).

    `select` is a family name (the runs tagged with it, e.g. "main") or maps a run column to a value, a list of
    values, None (no value) or {"min": a, "max": b} (a range)."""

    law: str
    select: dict[str, Any] | str = "main"
    bootstrap: int = 200
    holdout: int = 0
    key: str = ""  # name in fits.json when one law is fitted on several families, e.g. "kaplan-n:lstm"

    @property
    def name(self) -> str:
        return self.key or self.law


@dataclass(frozen=True)
class PresetSettings:
    corpus: dict[str, Any]
    laws: tuple[LawJob, ...]
    budgets_pf_days: tuple[float, ...] = ()
    note: str = ""


class _Fit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    law: str = Field(min_length=1)
    select: str | dict[str, Any] = "main"
    bootstrap: int = Field(default=200, ge=0)
    holdout: int = Field(default=0, ge=0)
    key: str = ""


class _Corpus(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1)
    vocab_size: int = Field(gt=1)
    max_tokens: int | None = Field(default=None, gt=0)
    val_fraction: float | None = Field(default=None, gt=0, lt=1)


class _Reproduce(BaseModel):
    """The [reproduce] table of a plan file: how to prepare its corpus and which laws to fit on which runs."""

    model_config = ConfigDict(extra="forbid")

    note: str = ""
    budgets_pf_days: list[float] = Field(default_factory=list)
    corpus: _Corpus
    fit: list[_Fit] = Field(min_length=1)


def _select_value(v: Any) -> Any:
    """TOML has no null: `{ missing = true }` in a select table stands for None (runs without a value)."""
    return None if v == {"missing": True} else v


def settings_from_table(table: dict[str, Any], where: str) -> PresetSettings:
    """PresetSettings from a plan's [reproduce] table; a problem is one UserError naming `where` and the key."""
    try:
        r = _Reproduce.model_validate(table)
    except pydantic.ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise UserError(f"{where}: [reproduce] {loc}: {first['msg']}") from None
    laws = tuple(LawJob(f.law, f.select if isinstance(f.select, str) else
                        {k: _select_value(v) for k, v in f.select.items()}, f.bootstrap, f.holdout, f.key)
                 for f in r.fit)
    return PresetSettings(r.corpus.model_dump(exclude_none=True), laws, tuple(r.budgets_pf_days), r.note)


def settings_from_text(text: str, where: str) -> PresetSettings | None:
    """The [reproduce] settings of a plan file's text, None when it has no such table."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"plan {where} is not valid TOML: {e}") from None
    table = raw.get("reproduce")
    return None if table is None else settings_from_table(table, where)


def preset_names() -> list[str]:
    files = resources.files("scalinglab").joinpath("presets")
    return sorted(p.name[: -len(".toml")] for p in files.iterdir() if p.name.endswith(".toml"))


def preset_text(name: str) -> str:
    """The preset's plan file text; unknown names are a UserError listing the presets."""
    names = preset_names()
    if name not in names:
        raise UserError(f"unknown preset {name!r}; presets: {', '.join(names)}")
    return resources.files("scalinglab").joinpath("presets").joinpath(f"{name}.toml").read_text(encoding="utf-8")


def settings_for(name: str) -> PresetSettings:
    """The preset's corpus settings and law jobs (its plan file's [reproduce] table)."""
    settings = settings_from_text(preset_text(name), f"{name}.toml")
    if settings is None:  # pragma: no cover - every shipped preset has one (tested)
        raise UserError(f"preset {name!r} has no [reproduce] table")
    return settings


# ----------------------------------------------------------------------------------------------------
# the output folder


def check_out(out: Path, preset: str) -> dict | None:
    """The marker of a previous reproduce of `preset` in `out`, None for a new/empty folder; else UserError."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    marker = out / MARKER
    if not marker.is_file():
        if any(out.iterdir()):
            raise UserError(f"--out {out} is not empty and holds no previous reproduce ({MARKER}); "
                            "choose a new or empty folder")
        return None
    try:
        m = json.loads(marker.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"--out {out}: {MARKER} is not valid JSON; choose a new folder") from None
    if not isinstance(m, dict) or m.get("preset") != preset:
        other = m.get("preset") if isinstance(m, dict) else None
        raise UserError(f"--out {out} holds a reproduce of preset {other!r}, not {preset!r}; choose another folder")
    return m


def _log(msg: str) -> None:
    print(f"reproduce: {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------------
# stages


def ensure_corpus(out: Path, settings: dict[str, Any], marker: dict, log: Callable[[str], None]) -> Path:
    """Prepare OUT/corpus, or reuse it when the marker says it was built with the same settings."""
    from scalinglab.data.corpus import Corpus
    from scalinglab.data.prepare import prepare_corpus

    path = out / "corpus"
    if path.exists() and marker.get("corpus") == settings:
        try:
            Corpus.open(path)
            log(f"corpus: reusing {path}")
            return path
        except UserError:
            pass
    t0 = time.perf_counter()
    extra = {"val_fraction": settings["val_fraction"]} if "val_fraction" in settings else {}
    info = prepare_corpus(settings["source"], path, vocab_size=settings["vocab_size"],
                          max_tokens=settings.get("max_tokens"), overwrite=path.exists(), **extra)
    log(f"corpus: {info['train_tokens']:,} train + {info['val_tokens']:,} val tokens, vocab {info['vocab_size']:,} "
        f"in {time.perf_counter() - t0:.1f} s")
    return path


def law_frame(db: Path, job: LawJob):
    """The canonical frame (N, D, C, S, B, L) of the runs `job.select` picks: the Study's one selection (a family
    name, or a table of run columns whose `family` key, if any, names the families), as `fit --db` reads it."""
    from scalinglab.study import Study

    if isinstance(job.select, str):
        family, where = job.select, {}
    else:
        where = dict(job.select)
        family = where.pop("family", None)
    try:
        chosen = Study.from_db(db).select(family, **where)
    except UserError as e:
        raise UserError(f"{job.law}: {e}") from None
    return chosen.frame(job.law)


def fit_laws(db: Path, jobs: tuple[LawJob, ...], log: Callable[[str], None]) -> tuple[dict, dict]:
    """Fit each job's law; returns (fits by law name, reasons for the laws that could not be fitted)."""
    from scalinglab.laws import fit_law
    from scalinglab.store.db import save_fit

    fits, skipped = {}, {}
    for job in jobs:
        t0 = time.perf_counter()
        try:
            df = law_frame(db, job)
            law = fit_law(job.law, df, bootstrap=job.bootstrap, holdout=job.holdout, seed=0)
        except UserError as e:
            skipped[job.name] = str(e)
            log(f"fit {job.name}: skipped ({e})")
            continue
        d = law.to_dict(include_samples=True)
        d["selection"] = job.select if isinstance(job.select, str) else dict(job.select)
        fits[job.name] = d
        save_fit(db, job.name, d)
        ps = ", ".join(f"{k}={v:.4g}" for k, v in d["params"].items())
        log(f"fit {job.name}: {ps} on {d['n_points']} points in {time.perf_counter() - t0:.1f} s")
    return fits, skipped


def _sources(folder) -> list[bytes]:
    """The bytes of every .py file under a package folder (its subpackages too)."""
    out = []
    for f in folder.iterdir():
        if f.is_dir():
            out += _sources(f)
        elif f.name.endswith(".py"):
            out.append(f.read_bytes())
    return out


def _digest(db: Path, jobs: tuple[LawJob, ...]) -> str:
    """What the fits depend on: the finished runs, their final losses and families (a plan that retags runs
    refits), the law jobs, and the fitting code (so a rerun after an upgrade of laws/ refits instead of keeping
    fits an older version made)."""
    from scalinglab.store.db import load_runs

    runs = load_runs(db)
    rows = sorted(f"{r.run_id}:{r.status}:{r.val_loss}:{r.family}" for r in runs.itertuples())
    code = sorted(_sources(resources.files("scalinglab").joinpath("laws")))
    h = hashlib.sha256("\n".join(rows).encode())
    h.update(repr(jobs).encode())
    for c in code:
        h.update(c)
    return h.hexdigest()[:16]


@dataclass
class ReproduceResult:
    out: Path
    preset: str
    wall_s: float
    sweep: dict
    fits: dict
    skipped_fits: dict
    plans: list
    report: dict

    def to_dict(self) -> dict[str, Any]:
        kn = self.fits.get("kaplan-n", {})
        return {
            "out": str(self.out), "preset": self.preset, "wall_s": round(self.wall_s, 1),
            "sweep": self.sweep, "fits": {k: {"params": v.get("params"), "ci95": v.get("ci95"),
                                              "n_points": v.get("n_points"), "holdout": _holdout_brief(v)}
                                          for k, v in self.fits.items()},
            "skipped_fits": self.skipped_fits,
            "alpha_N": (kn.get("params") or {}).get("alpha_N"),
            "report": self.report,
        }


def _holdout_brief(fit: dict) -> dict | None:
    h = fit.get("holdout")
    if not isinstance(h, dict):
        return None
    return {k: h.get(k) for k in ("k", "mean_abs_rel_error", "max_abs_rel_error") if k in h}


def _what_to_run(preset: str, plan_file: str | Path | None) -> tuple[str, str, PresetSettings]:
    """(plan text, label, settings): the preset's, or a plan file's with its [reproduce] table (else the preset's)."""
    if plan_file is None:
        return preset_text(preset), preset, settings_for(preset)
    p = Path(plan_file)
    if not p.is_file():
        raise UserError(f"plan file not found: {p}")
    text = p.read_text(encoding="utf-8")
    return text, f"plan:{p.name}", settings_from_text(text, p.name) or settings_for(preset)


def reproduce(preset: str, out: str | Path, *, workers: int = 2, plan_file: str | Path | None = None,
              only: list[str] | None = None, log: Callable[[str], None] = _log,
              progress: bool | None = None, corpus_overrides: dict[str, Any] | None = None,
              prune: bool = True) -> ReproduceResult:
    """Run the whole pipeline for a preset (or a custom plan file whose corpus is 'corpus') into `out`.

    `corpus_overrides` (e.g. {"max_tokens": ..., "vocab_size": ...}) replace the preset's corpus settings for
    this call only; the presets themselves are never changed. `prune=False` trains every LR candidate to the end
    (the plan's `prune_at` checks are ignored)."""
    from scalinglab.report.html import build_report
    from scalinglab.report.study import Study, plan_budgets
    from scalinglab.sweep.plan import load_plan
    from scalinglab.sweep.runner import run_sweep

    t_start = time.perf_counter()
    text, label, settings = _what_to_run(preset, plan_file)
    if workers < 1:
        raise UserError(f"--workers must be at least 1 (got {workers})")
    if corpus_overrides:
        settings = replace(settings, corpus={**settings.corpus, **corpus_overrides})
    out = Path(out)
    marker = check_out(out, label) or {}
    out.mkdir(parents=True, exist_ok=True)
    marker = {**marker, "preset": label, "stages": marker.get("stages", {})}
    atomic_write_json(out / MARKER, marker)

    corpus = ensure_corpus(out, settings.corpus, marker, log)
    marker["corpus"] = settings.corpus
    atomic_write_json(out / MARKER, marker)

    plan_path = out / "plan.toml"
    if not plan_path.is_file() or plan_path.read_text(encoding="utf-8") != text:
        atomic_write_text(plan_path, text)
    plan = load_plan(plan_path)
    if plan.corpus is None or plan.corpus.resolve() != corpus.resolve():
        raise UserError(f"{plan_path.name}: the plan's corpus must be \"corpus\" (the folder reproduce prepares)")
    db = out / "runs.db"
    summary = run_sweep(plan, db, workers=workers, progress=progress, log=log, prune=prune)
    sweep = {k: getattr(summary, k) for k in ("total", "already_done", "ran", "done", "diverged", "failed",
                                              "pruned", "skipped_pruned", "resumed", "pruned_flops_saved")} \
        | {"wall_s": round(summary.wall_s, 1), "run_wall_s": round(summary.run_wall_s, 1)}

    digest = _digest(db, settings.laws)
    stages = marker["stages"]
    fits_path, plans_path, report_index = out / "fits.json", out / "plans.json", out / "report" / "index.html"
    if stages.get("fits") == digest and fits_path.is_file():
        fits = read_json(fits_path, "fits file")
        skipped = stages.get("skipped_fits", {})
        log("fits: up to date")
    else:
        fits, skipped = fit_laws(db, settings.laws, log)
        atomic_write_json(fits_path, fits)
        stages.update(fits=digest, skipped_fits=skipped)
        atomic_write_json(out / MARKER, marker)

    study = Study.from_db(db, fits=fits)
    report_key = digest + (":" + ",".join(only) if only else "")
    if stages.get("report") == report_key and report_index.is_file() and plans_path.is_file():
        plans = read_json(plans_path, "plans file")
        rep_info = stages.get("report_info", {})
        log(f"report: up to date ({report_index})")
    else:
        plans = plan_budgets(study, list(settings.budgets_pf_days) or None)
        atomic_write_json(plans_path, plans)
        study.plans = plans
        t0 = time.perf_counter()
        rep = build_report(study, out / "report", "html", title=f"scalinglab reproduce --preset {label}", only=only)
        rep_info = rep.to_dict()
        log(f"report: {rep.path} with {len(rep.drawn)} figures in {time.perf_counter() - t0:.1f} s")
        stages.update(report=report_key, report_info=rep_info)
        atomic_write_json(out / MARKER, marker)
    wall = time.perf_counter() - t_start
    stages.setdefault("wall_s", []).append(round(wall, 1))
    atomic_write_json(out / MARKER, marker)
    return ReproduceResult(out, label, wall, sweep, fits, skipped, plans, rep_info)
