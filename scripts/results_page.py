"""Write a results page of the docs from a `scalinglab reproduce` output folder, so its numbers come from a run.

    scalinglab reproduce --preset cpu --out cpu_run --workers 2
    python scripts/results_page.py cpu_run --machine "2-core CPU, shared/loaded" \
        --command "scalinglab reproduce --preset cpu --out cpu_run --workers 2" --wall "23 min 57 s"

reads OUT/reproduce.json, OUT/fits.json, OUT/plans.json and OUT/runs.db, writes docs/benchmarks/results-PRESET.md
and copies the report's PNG figures to docs/figures/results-PRESET/. Every estimate is printed with its 95%
interval, or says that it has none (no bootstrap in the preset) and how wide its residuals are, so the page
never claims more than the fit measured.

The `comparisons` preset's page also has one section per comparative study (shape at fixed N, LSTM vs
Transformer, recurrent Transformer, LR schedules at a fixed area, power law vs logarithm, another
distribution): a table computed from the runs (selected as the report's figures select them, `scalinglab.study`)
and fits.json, beside the report's figure of that study.
"""

from __future__ import annotations

import argparse
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHOWN_FIGURES = ("fig01", "fig10", "fig18", "figLR", "fig20_21", "fig04", "fig23")
STUDY_PRESETS = ("comparisons",)  # presets whose page has the comparative-study sections (and their figures)


def _g(x: float | str | None, digits: int = 3) -> str:
    if isinstance(x, str):
        return x
    if x is None or x != x:
        return "—"
    return f"{x:.{digits}g}" if abs(x) < 1e4 and abs(x) >= 1e-3 else f"{x:.{digits - 1}e}"


def _int(x: float | None) -> str:
    return "—" if x is None or x != x else f"{int(x):,}"


def _runs(db: Path) -> list[dict]:
    """The store's runs as the store reads them (families inferred for untagged runs), by family and size."""
    from scalinglab.store.db import load_runs

    runs = load_runs(db).sort_values(["family", "n_params"], na_position="last")
    rows = []
    for r in runs.to_dict("records"):
        r["shape"] = f"{r.get('n_layer')}×{r.get('d_model')}"
        r["batch"] = r.get("batch_size")
        rows.append(r)
    return rows


def _fit_rows(fits: dict, paper: dict) -> list[str]:
    lines = ["| fit | parameter | estimate | 95% interval | paper | points | resampled | converged | "
             "residual RMS (log) |", "|---|---|---|---|---|---|---|---|---|"]
    for key, fit in fits.items():
        boot = fit.get("bootstrap") or {}
        ci = fit.get("ci95") or {}
        law_paper = paper.get(fit.get("law"), {})
        for i, (name, value) in enumerate(fit.get("params", {}).items()):
            if name in ci and ci[name] is not None:
                interval = f"{_g(ci[name][0])} – {_g(ci[name][1])}"
            else:
                interval = "**none** (no bootstrap in this preset)"
            if name in (fit.get("at_bounds") or []):
                interval += " (at a bound)"
            first = i == 0
            lines.append("| " + " | ".join([
                key if first else "", name, _g(value), interval, _g(law_paper.get(name)) if law_paper else "—",
                str(fit.get("n_points", "")) if first else "",
                (fit.get("resample") or "") + (f" ×{boot.get('k')}" if boot and first else "") if first else "",
                (f"{boot.get('converged_fraction', 0):.0%}" if boot else "—") if first else "",
                _g(fit.get("residual_rms")) if first else ""]) + " |")
    return lines


def _plan_rows(plans: list[dict]) -> list[str]:
    lines = ["| budget (PF-days) | N_opt | D (tokens) | predicted loss | 95% interval of the loss | from |",
             "|---|---|---|---|---|---|"]
    for p in plans:
        ci = (p.get("ci95") or {}).get("L_pred")
        lines.append("| " + " | ".join([
            _g(p.get("compute_pf_days")), _g(p.get("N_opt")), _g(p.get("D")), _g(p.get("L_pred"), 4),
            f"{_g(ci[0], 4)} – {_g(ci[1], 4)}" if ci else "**none**",
            ", ".join(f"{k}: {v}" for k, v in (p.get("sources") or {}).items())]) + " |")
    return lines


# ---------------------------------------------------------------------------------------------------------------
# the comparative studies (STUDY_PRESETS): a table each from the runs, selected as the report's figures select
# them (scalinglab.study.Study over the same runs.db), and fits.json; [] when the run did not measure the study


def _est(fit: dict | None, name: str) -> str:
    """A fitted parameter with its 95% interval, or saying it has none."""
    if not fit or name not in (fit.get("params") or {}):
        return "not fitted"
    value, ci = fit["params"][name], (fit.get("ci95") or {}).get(name)
    return f"{_g(value)} [{_g(ci[0])}, {_g(ci[1])}]" if ci else f"{_g(value)} (no interval)"


def _shape(r: dict) -> str:
    return f"{int(r['n_layer'])}×{int(r['d_model'])}"


def _nearest(df, n: float) -> dict:
    """The run of `df` nearest in N to `n` (on a log scale)."""
    import numpy as np

    return df.loc[(np.log(df["n_params"]) - np.log(n)).abs().idxmin()].to_dict()


SHAPE_SCANS = {"aspect": "aspect ratio d_model/n_layer", "ff_ratio": "feed-forward ratio d_ff/d_model",
               "head_dim": "head width d_attn/n_heads"}


def _shape_study(study) -> list[str]:
    from scalinglab.report.figures.shape import held_fixed

    scans = study.shape_scans()
    if not scans:
        return []
    lines = ["Runs of (nearly) the same N that differ in one shape dimension, grouped as Figure 5 groups them. "
             "The embedding share is the embedding parameters (not counted in N) over N.", "",
             "| scan | held fixed | value | shape | d_ff | heads | N | embedding share | final loss | "
             "above the scan's best |", "|---|---|---|---|---|---|---|---|---|---|"]
    spreads = []
    for key, label in SHAPE_SCANS.items():
        for g in scans.get(key, []):
            best = g["val_loss"].min()
            for i, r in enumerate(g.to_dict("records")):
                lines.append("| " + " | ".join([
                    label if i == 0 else "", held_fixed(key, g) if i == 0 else "", _g(r[key]), _shape(r),
                    _int(r["d_ff"]), _int(r["n_heads"]), _int(r["n_params"]),
                    f"{(r['n_params_with_embeddings'] - r['n_params']) / r['n_params']:.0%}",
                    _g(r["val_loss"], 4), f"{100 * (r['val_loss'] / best - 1):.1f}%"]) + " |")
            spreads.append(f"{label} at N ≈ {g['n_params'].median():.2g} ({held_fixed(key, g)}): "
                           f"{100 * (g['val_loss'].max() / best - 1):.1f}%")
    return lines + ["", "Worst shape over best, per scan: " + "; ".join(spreads) + "."]


def _lstm_study(study, fits: dict) -> list[str]:
    from scalinglab.report.figures import position_bins
    from scalinglab.report.figures.context import bin_positions

    lstm, base = study.transformers("lstm").sort_values(["n_params", "lr"]), study.main_family()
    if lstm.empty or base.empty:
        return []
    lines = ["Each LSTM beside the Transformer of the main family nearest to it in N:", "",
             "| LSTM N | LSTM peak LR | LSTM loss | Transformer | Transformer N | Transformer peak LR | "
             "Transformer loss | LSTM − Transformer |", "|---|---|---|---|---|---|---|---|"]
    for r in lstm.to_dict("records"):
        t = _nearest(base, r["n_params"])
        lines.append(f"| {_int(r['n_params'])} | {_g(r['lr'])} | {_g(r['val_loss'], 4)} | {_shape(t)} | "
                     f"{_int(t['n_params'])} | {_g(t['lr'])} | {_g(t['val_loss'], 4)} | "
                     f"{r['val_loss'] - t['val_loss']:+.3f} |")
    lines += ["", f"L(N) exponent α_N (95% interval): Transformer (`kaplan-n`) {_est(fits.get('kaplan-n'), 'alpha_N')}, "
              f"LSTM (`kaplan-n:lstm`) {_est(fits.get('kaplan-n:lstm'), 'alpha_N')}."]
    top = lstm.iloc[-1].to_dict()
    t = _nearest(base, top["n_params"])
    pl, pt = top.get("val_loss_per_position"), t.get("val_loss_per_position")
    if isinstance(pl, list) and isinstance(pt, list) and len(pl) == len(pt) > 2:
        import numpy as np

        edges = position_bins(len(pl))
        bl, bt = (bin_positions(np.asarray(v, dtype=float), edges) for v in (pl, pt))
        lines += ["", f"Loss per position in the context (mean over each bin) of the largest LSTM (N = "
                  f"{_int(top['n_params'])}) and the Transformer nearest it ({_shape(t)}, N = {_int(t['n_params'])}):",
                  "", "| positions | LSTM | Transformer | LSTM − Transformer |", "|---|---|---|---|"]
        lines += [f"| {lo}–{hi} | {a:.3f} | {b:.3f} | {a - b:+.3f} |" if hi > lo else
                  f"| {lo} | {a:.3f} | {b:.3f} | {a - b:+.3f} |" for (lo, hi), a, b in zip(edges, bl, bt, strict=True)]
    return lines


def _recurrent_study(study) -> list[str]:
    uni, pool = study.transformers("universal").sort_values("n_params"), study.main_family(one_shape=False)
    if uni.empty or pool.empty:
        return []
    lines = ["Each recurrent Transformer (one block run n_layer times: N counts it once, the compute counts every "
             "pass) beside the unshared Transformer of the same shape and the unshared one nearest it in N (main "
             "family and shape scans):", "",
             "| recurrent | N | FLOPs/token | loss | same shape unshared: N | FLOPs/token | loss | "
             "nearest N unshared | N | loss |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in uni.to_dict("records"):
        same = pool[(pool["n_layer"] == r["n_layer"]) & (pool["d_model"] == r["d_model"])]
        s = same.iloc[0].to_dict() if not same.empty else None
        near = _nearest(pool, r["n_params"])
        lines.append("| " + " | ".join([
            _shape(r), _int(r["n_params"]), _int(r["flops"] / r["tokens"]), _g(r["val_loss"], 4),
            _int(s["n_params"]) if s else "not run", _int(s["flops"] / s["tokens"]) if s else "—",
            _g(s["val_loss"], 4) if s else "—", _shape(near), _int(near["n_params"]), _g(near["val_loss"], 4)]) + " |")
    return lines


def _lr_area(r: dict) -> float:
    """Σ_step LR of a run: its schedule (as forecast.run_schedule rebuilds it) summed over the steps it took."""
    from scalinglab.config import TrainConfig
    from scalinglab.laws.analyses.forecast import run_schedule

    sched, _ = run_schedule(TrainConfig.model_validate(r["config"]), int(r["n_params"]), peak=float(r["lr"]))
    return float(sched[: int(r["steps"])].sum())


def _schedule_study(study) -> list[str]:
    runs = study.family("lr-schedules")
    if runs.empty or runs["schedule"].nunique() < 2:
        return []
    runs = runs.assign(area=[_lr_area(r) for r in runs.to_dict("records")])
    runs = runs.assign(group=runs["area"].map(lambda a: float(f"{a:.2g}"))).sort_values(["group", "schedule"])
    lines = [f"The `lr-schedules` runs ({_shape(runs.iloc[0])}), grouped by their area Σ_step LR (the schedule summed "
             "over the steps taken, warm-up included):", "",
             "| area (Σ LR) | schedule | peak LR | final loss | loss − the area's best |", "|---|---|---|---|---|"]
    spans = []
    for area, g in runs.groupby("group", sort=True):
        best = g["val_loss"].min()
        lines += [f"| {r['area']:.4g} | {r['schedule']} | {_g(r['lr'])} | {r['val_loss']:.4f} | "
                  f"{r['val_loss'] - best:+.4f} |" for r in g.to_dict("records")]
        spans.append((area, g["val_loss"].mean(), g["val_loss"].max() - best))
    if len(spans) > 1:
        lines += ["", "Mean final loss per area: " + ", ".join(f"{m:.3f} at {a:.2g}" for a, m, _ in spans)
                  + f"; the largest spread between schedules at one area: {max(s for *_, s in spans):.3f}."]
    return lines


def _law_form_study(study, fits: dict) -> list[str]:
    power, log = fits.get("kaplan-n"), fits.get("log-n")
    main = study.main_family()
    if not power or not log or main.empty:
        return []
    n, loss = main["n_params"], main["val_loss"]
    import math

    lines = [f"Both forms fitted to the same main-family runs ({len(main)} sizes, N {_int(n.min())}–{_int(n.max())}: "
             f"{math.log10(n.max() / n.min()):.1f} decades, final loss {loss.min():.3f}–{loss.max():.3f}):", "",
             "| fit | form | parameters (95% interval) | points | residual RMS (log) |", "|---|---|---|---|---|"]
    for key, fit in (("kaplan-n", power), ("log-n", log)):
        params = ", ".join(f"{p} = {_est(fit, p)}" for p in fit.get("params", {}))
        lines.append(f"| `{key}` | {fit.get('formula', '')} | {params} | {fit.get('n_points', '')} | "
                     f"{_g(fit.get('residual_rms'))} |")
    return lines


def _ood_study(study, fits: dict) -> list[str]:
    names = study.eval_set_names()
    main = study.main_family().sort_values("n_params")
    if len(names) != 1 or main.empty:
        return []
    name = names[0]
    ood = main["eval_losses"].map(lambda e: e.get(name) if isinstance(e, dict) else None).astype(float)
    lines = [f"The main family's final loss on the training distribution (val) and on `{name}`, text it never "
             "trained on:", "", f"| N | val loss | `{name}` loss | gap |", "|---|---|---|---|"]
    lines += [f"| {_int(n)} | {v:.4f} | {o:.4f} | {o - v:+.3f} |"
              for n, v, o in zip(main["n_params"], main["val_loss"], ood, strict=True)]
    lines += ["", f"`ood-offset` (L_ood = L + offset): offset {_est(fits.get('ood-offset'), 'offset')}. "
              f"`ood-linear` (L_ood = intercept + slope·L; slope 1 is a constant offset, below 1 a gap that widens "
              f"as the loss falls): slope {_est(fits.get('ood-linear'), 'slope')}, intercept "
              f"{_est(fits.get('ood-linear'), 'intercept')}."]
    return lines


# (title, the report's figures shown with it, the section's lines from (study, fits))
STUDIES = (
    ("Shape at fixed N (Figures 5 and 6)", ("fig05", "fig06"), lambda s, f: _shape_study(s)),
    ("LSTM vs Transformer (Figure 7)", ("fig07",), _lstm_study),
    ("Recurrent Transformer (Figure 17)", ("fig17",), lambda s, f: _recurrent_study(s)),
    ("LR schedules at a fixed area (Figure 22)", ("fig22",), lambda s, f: _schedule_study(s)),
    ("Power law vs logarithm (Figure 23)", ("fig23",), _law_form_study),
    ("Another distribution (Figures 8 and 24)", ("fig08_24",), _ood_study),
)


def _study_sections(out: Path, fits: dict, preset: str, figures_rel: str) -> list[str]:
    from scalinglab.study import Study

    study = Study.from_db(out / "runs.db", fits=fits)
    lines = []
    for title, keys, section in STUDIES:
        body = section(study, fits)
        if not body:
            continue
        lines += ["", f"## {title}", "", *body]
        for key in keys:
            if (out / "report" / f"{key}.png").is_file():
                lines += ["", f"![{key} from the {preset} preset]({figures_rel}/{key}.png)"]
    return lines


def shown_figures(preset: str) -> tuple[str, ...]:
    """The report's figures a preset's page shows: its studies' figures, or the scaling figures."""
    return tuple(k for _, keys, _ in STUDIES for k in keys) if preset in STUDY_PRESETS else SHOWN_FIGURES


def page(out: Path, machine: str, command: str, wall: str | None, figures_rel: str) -> str:
    from scalinglab.laws.constants import PAPER_LAWS

    meta = json.loads((out / "reproduce.json").read_text())
    fits = json.loads((out / "fits.json").read_text())
    plans = json.loads((out / "plans.json").read_text())
    runs = _runs(out / "runs.db")
    preset = meta.get("preset", out.name)
    finished = max((r["finished_at"] or "" for r in runs if isinstance(r["finished_at"], str)), default="")[:10] or "unknown"
    done = [r for r in runs if r["status"] == "done"]
    info = (meta.get("stages") or {}).get("report_info") or {}
    lines = [
        f"# Results of the `{preset}` preset",
        "",
        "Generated by `scripts/results_page.py` from one fresh run's output folder; rerun both commands to "
        "regenerate it on your machine.",
        "",
        "| preset | command | machine | date (UTC) | wall time | runs |",
        "|---|---|---|---|---|---|",
        f"| `{preset}` | `{command}` | {machine} | {finished} | {wall or 'not recorded'} | "
        f"{len(done)} done of {len(runs)} |",
        *(_study_sections(out, fits, preset, figures_rel) if preset in STUDY_PRESETS else []),
        "",
        "## Runs",
        "",
        "Final validation loss (nats/token) of every run, from `runs.db`:",
        "",
        "| family | N (non-embedding) | shape | batch (seq.) | peak LR | tokens | final loss | run time (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(f"| {r['family'] or '—'} | {_int(r['n_params'])} | {r['shape']} | {r['batch']} | {_g(r['lr'])} | "
                     f"{_int(r['tokens'])} | {_g(r['val_loss'], 5)} | {_g(r['wall_s'], 3)} |")
    lines += ["", "## Fits", "",
              "From `fits.json`: the estimate, its 95% bootstrap interval (percentile of the converged refits) "
              "or a plain statement that it has none, and the paper's value (WebText2; C in PF-days there, FLOPs "
              "here, so compare exponents, not the constants C_c).", ""]
    lines += _fit_rows(fits, PAPER_LAWS)
    no_ci = [k for k, f in fits.items() if not f.get("ci95")]
    if no_ci:
        lines += ["", "Fits without an interval (" + ", ".join(f"`{k}`" for k in no_ci) + ") are point estimates "
                  "only: how far to trust them is unknown, and their residual RMS says how well the form fits."]
    lines += ["", "## Planner", "", "From `plans.json` (the budgets of the preset's `[reproduce]` table; far "
              "beyond the largest run these are extrapolations):", ""]
    lines += _plan_rows(plans)
    drawn = info.get("figures_drawn") or []
    missing = info.get("figures_not_measured") or {}
    lines += ["", "## Figures", "", f"The report drew {len(drawn)} figures ({', '.join(drawn)}); "
              f"{len(missing)} are not measured by this preset (the report lists what would measure each).", ""]
    for key in () if preset in STUDY_PRESETS else SHOWN_FIGURES:  # a study preset shows them in its sections
        if (out / "report" / f"{key}.png").is_file():
            lines.append(f"![{key} from the {preset} preset]({figures_rel}/{key}.png)")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="the reproduce output folder")
    ap.add_argument("--machine", required=True, help='where it ran, e.g. "2-core CPU, shared/loaded"')
    ap.add_argument("--command", required=True, help="the reproduce command that produced the folder")
    ap.add_argument("--wall", help="its wall time, as measured (e.g. /usr/bin/time)")
    ap.add_argument("--docs", type=Path, default=ROOT / "docs", help="the docs folder to write into")
    a = ap.parse_args()
    preset = json.loads((a.out / "reproduce.json").read_text()).get("preset", a.out.name)
    fig_dir = a.docs / "figures" / f"results-{preset}"
    fig_dir.mkdir(parents=True, exist_ok=True)
    for key in shown_figures(preset):
        src = a.out / "report" / f"{key}.png"
        if src.is_file():
            shutil.copyfile(src, fig_dir / src.name)
    target = a.docs / "benchmarks" / f"results-{preset}.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page(a.out, a.machine, a.command, a.wall, f"../figures/results-{preset}"), encoding="utf-8")
    print(f"wrote {target} ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC) and {fig_dir}")


if __name__ == "__main__":
    main()
