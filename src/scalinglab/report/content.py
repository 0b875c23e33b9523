"""What a report says, as plain strings: the one context both templates (HTML and Markdown) render.

Numbers are formatted here, once; the templates only lay them out (the HTML one escapes, the Markdown one
escapes table pipes).
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pandas as pd

from scalinglab.laws.analyses.reach import PROJECTION_DECADES
from scalinglab.laws.framework.constants import PAPER_LAWS

if TYPE_CHECKING:
    from scalinglab.report.figures import FigureResult
    from scalinglab.report.study import Study

# The paper's constants (DESIGN §1, laws/framework/constants.py) shown beside each fitted law for comparison.
PAPER = PAPER_LAWS

RUN_COLUMNS = [
    ("run", "run"), ("status", "status"), ("arch", "arch"), ("n_layer", "layers"), ("d_model", "d_model"),
    ("n_params", "N"), ("batch_size", "batch (seq)"), ("steps", "steps"), ("tokens", "tokens"),
    ("data_tokens", "D subset"), ("schedule", "schedule"), ("pf_days", "PF-days"), ("val_loss", "val loss"),
    ("best_val_loss", "best val"), ("noise_scale", "noise scale"), ("wall_s", "wall s"),
]

FIT_HEAD = ["law", "parameter", "value", "95% CI", "paper", "points", "RMS residual", "hold-out"]
FIT_KEYS = ["law", "param", "value", "ci95", "paper", "n", "rms", "holdout"]


def fmt(x: Any) -> str:
    """Numbers as a reader wants them: 4 significant digits, scientific beyond 1e5 or below 1e-3."""
    if x is None:
        return ""
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):  # numpy scalars
        try:
            x = x.item()
        except (ValueError, TypeError):
            pass
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, (int, float)):
        if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
            return ""
        if float(x).is_integer() and abs(x) < 1e6:
            return f"{int(x):,d}" if abs(x) >= 1e4 else f"{int(x):d}"
        if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
            return f"{x:.3e}"
        return f"{x:.4g}"
    try:
        if pd.isna(x):
            return ""
    except (TypeError, ValueError):
        pass
    return str(x)


def _ci(ci: Any) -> str:
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        return f"[{fmt(ci[0])}, {fmt(ci[1])}]"
    return ""


EXPONENTS = ("alpha_N", "alpha_D", "alpha_C", "alpha_B", "alpha_S", "alpha", "beta")
# Why an exponent fitted at small scale differs from the paper's (DESIGN "Known caveats"), said once under the table.
SMALL_SCALE_NOTE = (
    "Exponents fitted at small scale differ from the paper's for known reasons, not only noise: what is counted "
    "(embedding parameters, the head and context FLOPs weigh most at small N: Pearce & Song 2024), the warm-up and "
    "schedule length relative to the run, and learning rate and batch tuned per size or not (Porian et al. 2024 trace "
    "Kaplan's N_opt ∝ C^0.73 vs Chinchilla's C^0.5 to these), besides the corpus, tokenizer and the few decades of N a "
    "small study spans. scalinglab fit --db DB --law LAW --sensitivity shows how the exponents move with the counting "
    "conventions.")


def paper_gaps(name: str, fit: dict) -> list[dict[str, Any]]:
    """The fit's exponents whose 95% interval excludes the paper's value: param, value, interval, paper value."""
    paper = PAPER.get(name, {})
    ci = fit.get("ci95") or {}
    out = []
    for k, v in (fit.get("params") or {}).items():
        lo_hi = ci.get(k)
        if (k in EXPONENTS and k in paper and isinstance(v, (int, float)) and isinstance(lo_hi, (list, tuple))
                and len(lo_hi) == 2 and not lo_hi[0] <= paper[k] <= lo_hi[1]):
            out.append({"param": k, "value": v, "ci95": list(lo_hi), "paper": paper[k]})
    return out


def paper_gap_lines(fits: dict[str, dict]) -> list[str]:
    """One sentence per exponent outside its interval of the paper's value (shown under the fit table)."""
    return [f"{name}: {g['param']} = {fmt(g['value'])} (95% CI {_ci(g['ci95'])}) differs from the paper's "
            f"{fmt(g['paper'])} by more than its interval." for name, f in fits.items() if isinstance(f, dict)
            for g in paper_gaps(name, f)]


def fit_rows(fits: dict[str, dict]) -> list[dict[str, str]]:
    """One row per fitted parameter: law, parameter, value, 95% CI, the paper's value, n, RMS, hold-out."""
    rows = []
    for name, f in fits.items():
        if not isinstance(f, dict) or not isinstance(f.get("params"), dict):
            continue
        ci = f.get("ci95") or {}
        hold = holdout_text(f.get("holdout"))
        paper = PAPER.get(name, {})  # by key: "kaplan-n:lstm" (a family of its own) has no paper constants
        at_bounds = set(f.get("at_bounds") or [])
        differs = {g["param"] for g in paper_gaps(name, f)}
        for i, (k, v) in enumerate(f["params"].items()):
            rows.append({
                "law": name if i == 0 else "", "param": k,
                "value": fmt(v) + (" (at bound: not determined)" if k in at_bounds else ""), "ci95": _ci(ci.get(k)),
                "paper": fmt(paper.get(k)) + (" (outside the CI)" if k in differs else ""),
                "n": fmt(f.get("n_points")) if i == 0 else "",
                "rms": fmt(f.get("residual_rms")) if i == 0 else "",
                "holdout": hold if i == 0 else "",
            })
    return rows


def holdout_text(h: Any) -> str:
    """Hold-out summary: how many largest-compute points were left out and the error of their prediction."""
    if not isinstance(h, dict) or not h:
        return ""
    parts = []
    if "k" in h:
        parts.append(f"{h['k']} largest held out")
    for key, label in (("mean_abs_rel_error", "mean |err|"), ("max_abs_rel_error", "max |err|")):
        if isinstance(h.get(key), (int, float)):
            parts.append(f"{label} {100 * h[key]:.2f}%")
    pts = h.get("points")
    if isinstance(pts, list) and len(pts) == 1 and isinstance(pts[0], dict) and "rel_error" in pts[0]:
        pred, rel = pts[0].get("predicted"), pts[0]["rel_error"]
        measured = pred / (1 + rel) if isinstance(pred, (int, float)) else None  # rel = (pred − measured)/measured
        parts = [f"{h.get('k', 1)} largest held out", f"predicted {fmt(pred)} vs "
                 f"{fmt(measured)} measured ({100 * rel:+.2f}%)"]
    return "; ".join(parts)


def plan_rows(plans: list[dict]) -> tuple[list[str], list[list[str]]]:
    """The planner table: its known columns first, then up to 10 columns in all of whatever else the rows carry."""
    keys = ["compute_pf_days", "x_largest_run", "kind", "reach", "compute_flops", "N_opt", "D", "B_crit", "B_opt",
            "S_min", "L_pred", "law"]
    present = [k for k in keys if any(k in p for p in plans)]
    extra = sorted({k for p in plans for k, v in p.items()
                    if k not in present and isinstance(v, (int, float, str)) and k != "contradiction"})
    cols = present + extra[: max(0, 10 - len(present))]
    return cols, [[fmt(p.get(k)) for k in cols] for p in plans]


def contradiction(plans: list[dict]) -> dict[str, Any]:
    """The planner's contradiction point (L(C_min) meets L(D(C))): why it is unavailable, or its values."""
    c = next((p.get("contradiction") for p in plans if isinstance(p.get("contradiction"), dict)), None)
    if c and c.get("available") is False:
        return {"reason": str(c.get("reason", "")), "point": []}
    return {"reason": None, "point": [(k, fmt(v)) for k, v in (c or {}).items() if k != "available"]}


# Settings a run always has: a run whose source did not say shows "unknown", never scalinglab's default.
ALWAYS_SHOWN = ("arch", "schedule")


def runs_table(runs: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Every run (diverged and failed ones too), by its own name (its id when it has none), in the columns the store
    has values for."""
    runs = runs.assign(run=runs["name"].where(runs["name"].notna(), runs["run_id"]) if "name" in runs
                       else runs.get("run_id"))
    for k in ALWAYS_SHOWN:
        col = runs[k] if k in runs else pd.Series(None, index=runs.index, dtype=object)
        runs[k] = col.astype(object).where(col.notna(), "unknown")
    cols = [(k, h) for k, h in RUN_COLUMNS if k in runs and runs[k].notna().any()]
    r = runs.sort_values(["arch", "n_params"], na_position="last") if "n_params" in runs else runs
    rows = [[fmt(row[k]) for k, _ in cols] for _, row in r.iterrows()]
    return [h for _, h in cols], rows


def summary(study: Study, figs: list[FigureResult]) -> list[tuple[str, str]]:
    """The summary cards: runs, sizes, figures, compute and training time."""
    runs = study.runs
    done = study.done
    n = done["n_params"].dropna() if "n_params" in done else pd.Series(dtype=float)
    cards = [
        ("runs finished", f"{len(done)} / {len(runs)}"),
        ("model sizes N", f"{fmt(n.min())} – {fmt(n.max())}" if len(n) else "–"),
        ("decades of N", f"{math.log10(n.max() / n.min()):.2f}" if len(n) > 1 and n.min() > 0 else "–"),
        ("figures drawn", f"{sum(f.drawn for f in figs)} / {len(figs)}"),
    ]
    if "pf_days" in done and done["pf_days"].notna().any():
        cards.append(("total compute", f"{_counted_once(done, 'pf_days', 'own_flops', 'flops').sum():.3e} PF-days"))
    if "wall_s" in done and done["wall_s"].notna().any():
        cards.append(("training time", f"{_counted_once(done, 'wall_s', 'own_wall_s', 'wall_s').sum() / 60:.1f} min"))
    return cards


def _counted_once(done: pd.DataFrame, col: str, own: str, total: str) -> pd.Series:
    """`col` scaled to what each run spent itself (a WSD cooldown branch shares its trunk's start)."""
    if own not in done or total not in done:
        return done[col]
    share = (done[own] / done[total].where(done[total] > 0)).fillna(1.0)
    return done[col] * share


def report_context(study: Study, figs: list[FigureResult], title: str) -> dict[str, Any]:
    """Everything index.html and index.md show, as strings and lists of strings."""
    plan_cols, plan_table = plan_rows(study.plans) if study.plans else ([], [])
    runs_head, runs_rows = runs_table(study.runs)
    return {
        "title": title,
        "source": study.source or "frames",
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "summary": summary(study, figs),
        "fit_head": FIT_HEAD,
        "fits": [[r[k] for k in FIT_KEYS] for r in fit_rows(study.fits)],
        "paper_gaps": paper_gap_lines(study.fits),
        "small_scale_note": SMALL_SCALE_NOTE,
        "plan_cols": plan_cols,
        "plans": plan_table,
        "plan_threshold": f"{PROJECTION_DECADES:g}",
        "contradiction": contradiction(study.plans),
        "figures": [_figure(f) for f in figs if f.drawn],
        "missing": [_figure(f) for f in figs if not f.drawn],
        "runs_head": runs_head,
        "runs": runs_rows,
    }


def _figure(f: FigureResult) -> dict[str, str]:
    s = f.spec
    return {"key": s.key, "number": s.number, "title": s.title, "caption": s.caption, "plan": s.plan,
            "reason": f.reason, "png": f.png or "", "svg": f.svg or ""}
