"""Static report: index.html (or index.md) with the runs, the fitted laws, the planner and the paper's figures.

Everything is local — the PNG/SVG figures sit beside index.html with a copied style.css; there are no
scripts, web fonts or remote URLs, so the folder can be zipped, mailed or served from anywhere.
"""

from __future__ import annotations

import html
import math
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from scalinglab.io import atomic_write_text
from scalinglab.report.figures import FigureResult, render_figures
from scalinglab.report.study import Study

# The paper's constants (DESIGN §1) shown beside each fitted law for comparison.
PAPER = {
    "kaplan-n": {"alpha_N": 0.076, "N_c": 8.8e13},
    "kaplan-d": {"alpha_D": 0.095, "D_c": 5.4e13},
    "kaplan-cmin": {"alpha_C": 0.050, "C_c": 3.1e8},
    "kaplan-c": {"alpha_C": 0.057, "C_c": 1.6e7},
    "bcrit": {"B_star": 2e8, "alpha_B": 0.21},
    "kaplan-nd": {"alpha_N": 0.076, "alpha_D": 0.103, "N_c": 6.4e13, "D_c": 1.8e13},
    "kaplan-ns": {"alpha_N": 0.077, "alpha_S": 0.76, "N_c": 6.5e13, "S_c": 2.1e3},
    "chinchilla": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28},
}

RUN_COLUMNS = [
    ("run_id", "run"), ("status", "status"), ("arch", "arch"), ("n_layer", "layers"), ("d_model", "d_model"),
    ("n_params", "N"), ("batch_size", "batch (seq)"), ("steps", "steps"), ("tokens", "tokens"),
    ("data_tokens", "D subset"), ("schedule", "schedule"), ("pf_days", "PF-days"), ("val_loss", "val loss"),
    ("best_val_loss", "best val"), ("noise_scale", "noise scale"), ("wall_s", "wall s"),
]


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
    if isinstance(x, (int, float)) and not isinstance(x, bool):
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


def _e(x: Any) -> str:
    return html.escape(fmt(x))


def _ci(ci: Any) -> str:
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        return f"[{fmt(ci[0])}, {fmt(ci[1])}]"
    return ""


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
        for i, (k, v) in enumerate(f["params"].items()):
            rows.append({
                "law": name if i == 0 else "", "param": k,
                "value": fmt(v) + (" (at bound: not determined)" if k in at_bounds else ""), "ci95": _ci(ci.get(k)),
                "paper": fmt(paper.get(k)),
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
    keys = ["compute_pf_days", "x_largest_run", "compute_flops", "N_opt", "D", "B_crit", "S_min", "L_pred", "law"]
    present = [k for k in keys if any(k in p for p in plans)]
    extra = sorted({k for p in plans for k, v in p.items()
                    if k not in present and isinstance(v, (int, float, str)) and k != "contradiction"})
    cols = present + extra[: max(0, 10 - len(present))]
    return cols, [[fmt(p.get(k)) for k in cols] for p in plans]


def _table(head: list[str], rows: list[list[str]], left: int = 1, cls: str = "") -> str:
    th = "".join(f'<th class="l">{html.escape(h)}</th>' if i < left else f"<th>{html.escape(h)}</th>"
                 for i, h in enumerate(head))
    body = "".join(
        "<tr>" + "".join(f'<td class="l">{c}</td>' if i < left else f"<td>{c}</td>" for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    table = f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="{cls}">{table}</div>' if cls else table


def runs_table(runs: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    cols = [(k, h) for k, h in RUN_COLUMNS if k in runs and runs[k].notna().any()]
    r = runs.sort_values(["arch", "n_params"], na_position="last") if "n_params" in runs else runs
    rows = [[fmt(row[k]) for k, _ in cols] for _, row in r.iterrows()]
    return [h for _, h in cols], rows


def build_report(study: Study, out_dir: str | Path, fmt_: str = "html", title: str = "Scaling-law study",
                 only: list[str] | None = None) -> Report:
    """Draw the figures into out_dir and write index.html (or index.md) beside them."""
    if fmt_ not in ("html", "md"):
        from scalinglab.errors import UserError

        raise UserError(f"unknown report format {fmt_!r}; use html or md")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs = render_figures(study, out, only=only)
    if fmt_ == "html":
        css = resources.files("scalinglab.report").joinpath("report.css")
        with resources.as_file(css) as p:
            shutil.copyfile(p, out / "style.css")
        path = atomic_write_text(out / "index.html", _html(study, figs, title))
    else:
        path = atomic_write_text(out / "index.md", _markdown(study, figs, title))
    return Report(path, figs)


def _summary(study: Study, figs: list[FigureResult]) -> list[tuple[str, str]]:
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
        cards.append(("total compute", f"{done['pf_days'].sum():.3e} PF-days"))
    if "wall_s" in done and done["wall_s"].notna().any():
        cards.append(("training time", f"{done['wall_s'].sum() / 60:.1f} min"))
    return cards


def _html(study: Study, figs: list[FigureResult], title: str) -> str:
    e = html.escape
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title>",
        '<link rel="stylesheet" href="style.css">',
        "</head><body>",
        f"<h1>{e(title)}</h1>",
        f'<p class="sub">Kaplan et al. 2020, "Scaling Laws for Neural Language Models", reproduced from this study\'s '
        f"own runs. Source: <code>{e(study.source or 'frames')}</code>; generated {now} by scalinglab.</p>",
        '<nav><ul><li><a href="#summary">Summary</a></li><li><a href="#laws">Fitted laws</a></li>'
        '<li><a href="#plan">Planner</a></li><li><a href="#figures">Figures</a></li>'
        '<li><a href="#missing">Not measured</a></li><li><a href="#runs">Runs</a></li></ul></nav>',
        '<h2 id="summary">Summary</h2><div class="cards">',
    ]
    for k, v in _summary(study, figs):
        parts.append(f'<div class="card"><span class="muted">{e(k)}</span><b>{e(v)}</b></div>')
    parts.append("</div>")

    parts.append('<h2 id="laws">Fitted laws</h2>')
    rows = fit_rows(study.fits)
    if rows:
        parts.append('<p class="muted">95% intervals from bootstrap resampling of the points; hold-out: fit without '
                     "the largest-compute points, relative error of their predicted loss. The paper's constants are "
                     "for WebText2 with a 50k BPE vocabulary: exponents are comparable across setups, scales "
                     "(N_c, D_c, C_c) are not.</p>")
        head = ["law", "parameter", "value", "95% CI", "paper", "points", "RMS residual", "hold-out"]
        parts.append(_table(head, [[e(r["law"]), e(r["param"]), e(r["value"]), e(r["ci95"]), e(r["paper"]),
                                    e(r["n"]), e(r["rms"]), e(r["holdout"])] for r in rows], left=2))
    else:
        parts.append('<p class="muted">No fitted laws were given (pass <code>--fits FITS.json</code>, as written by '
                     "<code>scalinglab fit</code> or <code>reproduce</code>).</p>")

    parts.append('<h2 id="plan">Planner: compute-efficient allocation</h2>')
    if study.plans:
        cols, prow = plan_rows(study.plans)
        parts.append('<p class="muted">x_largest_run: the budget over the study\'s largest run. Far beyond 1 the '
                     "row is what the fitted laws imply when extrapolated that far, not a measurement; small-scale "
                     "exponents drift, so read rows of 100× and more as rough.</p>")
        parts.append(_table(cols, [[e(c) for c in r] for r in prow], left=0))
        contra = next((p.get("contradiction") for p in study.plans if isinstance(p.get("contradiction"), dict)), None)
        if contra and contra.get("available") is False:
            parts.append(f'<p class="muted">Contradiction point (L(C_min) meets L(D(C))): not available — '
                         f'{e(str(contra.get("reason", "")))}.</p>')
        elif contra:
            parts.append("<p>Contradiction point (L(C_min) meets L(D(C))): "
                         + ", ".join(f"{e(k)} = {e(fmt(v))}" for k, v in contra.items() if k != "available") + "</p>")
    else:
        parts.append('<p class="muted">No planner output (it needs fitted laws).</p>')

    parts.append('<h2 id="figures">Figures</h2>')
    drawn = [f for f in figs if f.drawn]
    if not drawn:
        parts.append('<p class="muted">No figure could be drawn from this study.</p>')
    for f in drawn:
        s = f.spec
        parts.append(
            f'<figure id="{e(s.key)}"><img src="{e(f.png)}" alt="Figure {e(s.number)}: {e(s.title)}">'
            f"<figcaption><b>Figure {e(s.number)}: {e(s.title)}.</b> {e(s.caption)} "
            f'<span class="links">(<a href="{e(f.png)}">PNG</a> · <a href="{e(f.svg)}">SVG</a>)</span>'
            "</figcaption></figure>"
        )

    parts.append('<h2 id="missing">Not measured by this study</h2>')
    missing = [f for f in figs if not f.drawn]
    if missing:
        parts.append('<p class="muted">These figures of the paper need data this study does not have. The plan entry '
                     "beside each would measure it (add it to a plan and run <code>scalinglab sweep</code>).</p>")
        parts.append(_table(
            ["figure", "what it shows", "why not drawn", "plan entry that would measure it"],
            [[f"Figure {e(f.spec.number)}", e(f.spec.title), e(f.reason), f"<pre>{e(f.spec.plan)}</pre>"]
             for f in missing],
            left=4,
        ))
    else:
        parts.append("<p>Every figure was drawn.</p>")

    parts.append('<h2 id="runs">Runs</h2>')
    head, rrows = runs_table(study.runs)
    parts.append(_table(head, [[e(c) for c in r] for r in rrows], left=3, cls="scroll"))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _markdown(study: Study, figs: list[FigureResult], title: str) -> str:
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"

    out = [f"# {title}", "", f"Source: `{study.source or 'frames'}`", "", "## Summary", ""]
    out += [f"- {k}: {v}" for k, v in _summary(study, figs)]
    out += ["", "## Fitted laws", ""]
    rows = fit_rows(study.fits)
    if rows:
        head = ["law", "parameter", "value", "95% CI", "paper", "points", "RMS residual", "hold-out"]
        out += [row(head), row(["---"] * len(head))]
        out += [row([r["law"], r["param"], r["value"], r["ci95"], r["paper"], r["n"], r["rms"], r["holdout"]])
                for r in rows]
    else:
        out.append("No fitted laws were given.")
    out += ["", "## Planner", ""]
    if study.plans:
        cols, prow = plan_rows(study.plans)
        out += [row(cols), row(["---"] * len(cols))] + [row(r) for r in prow]
    else:
        out.append("No planner output.")
    out += ["", "## Figures", ""]
    for f in figs:
        if f.drawn:
            out += [f"![Figure {f.spec.number}: {f.spec.title}]({f.png})", "",
                    f"**Figure {f.spec.number}: {f.spec.title}.** {f.spec.caption} ([SVG]({f.svg}))", ""]
    out += ["## Not measured by this study", ""]
    for f in figs:
        if not f.drawn:
            out += [f"- **Figure {f.spec.number}: {f.spec.title}** — {f.reason}. Plan entry:", "",
                    "  ```toml", *("  " + ln for ln in f.spec.plan.splitlines()), "  ```"]
    out += ["", "## Runs", ""]
    head, rrows = runs_table(study.runs)
    out += [row(head), row(["---"] * len(head))] + [row(r) for r in rrows]
    return "\n".join(out) + "\n"
