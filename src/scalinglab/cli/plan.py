"""`scalinglab plan`: compute-optimal model size, data, batch and steps for a budget, and the contradiction point."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from scalinglab.cli.core import emit_json, new_app

app = new_app()


@app.command()
def plan(
    compute: Annotated[float, typer.Option("--compute", help="Compute budget C (see --unit).")],
    unit: Annotated[Literal["flops", "pf-days"], typer.Option("--unit", help="Unit of --compute: flops or pf-days.")] = "flops",
    paper: Annotated[bool, typer.Option("--paper", help="Use the paper's constants (eq 1.3, 1.7).")] = False,
    fit: Annotated[str | None, typer.Option("--fit", help="FIT.json from `scalinglab fit` or fits.json from "
                                            "`reproduce` (object keyed by law name).")] = None,
    unique_tokens: Annotated[float | None, typer.Option("--unique-tokens", help="Cap on unique training tokens U: "
                                                        "allocate under repeated data (data-constrained fits).")] = None,
    interval: Annotated[str, typer.Option("--interval", help="Band of the predicted loss: measurement (where a run at "
                                          "the plan should land; as `predict`) or mean (the law's own band).")
                        ] = "measurement",
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """N_opt, D, B_crit, S_min and predicted loss for a compute budget (with CIs when the fit has bootstraps)."""
    from scalinglab.io import read_json
    from scalinglab.laws.analyses.planning import plan_allocation
    from scalinglab.laws.framework.constants import PF_DAY

    fits = read_json(fit, "fit file") if fit is not None else None
    flops = compute * PF_DAY if unit == "pf-days" else compute
    result = plan_allocation(flops, fits=fits, paper=paper, unique_tokens=unique_tokens, interval=interval)
    if fit is not None:
        result["fit_file"] = str(fit)
    if json_:
        emit_json(result)
        return
    typer.echo(summary(result))


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def summary(r: dict) -> str:
    lines = [f"plan for C = {r['compute_flops']:.4g} FLOPs = {r['compute_pf_days']:.4g} PF-days ({r['mode']})"]
    for key, label in (("N_opt", "N_opt (params)"), ("D", "D (tokens)"), ("B_crit", "B_crit (tokens)"),
                       ("B_opt", "B_opt (tokens)"), ("S_min", "S_min (steps)"), ("L_pred", "L (nats/token)"),
                       ("LR", "LR (peak)")):
        if key in ("LR", "B_opt") and r.get(key) is None:
            continue  # only with an lr-opt / batch-opt fit
        ci = (r.get("ci95") or {}).get(key)
        src = (r.get("sources") or {}).get(key, "")
        band = (r.get("band") or {}).get(key)
        if key == "L_pred":  # a loss: four decimals, and which band it is (as `predict` labels it)
            value = "n/a" if r.get(key) is None else f"{r[key]:.4f}"
            rng = f"  95% {band} band [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""
        else:
            value, rng = _fmt(r.get(key)), (f"  95% CI [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else "")
        lines.append(f"  {label:>16} = {value}{rng}" + (f"  [{src}]" if src else ""))
    if r.get("B_opt") is not None:
        lines.append("  batch: B_opt is the loss-optimal batch of the batch-size scans (train at it); B_crit is Kaplan's "
                     "critical batch, the steps/compute trade-off point" if r.get("B_crit") is not None else
                     "  batch: B_opt is the loss-optimal batch of the batch-size scans (no B_crit: no bcrit fit)")
    if r.get("unique_tokens"):
        lines.append(f"  unique tokens U = {r['unique_tokens']:.4g}: D is {r['epochs']:.3g} epochs of them")
    e = r.get("extrapolation")
    if e:
        lines.append("  " + extrapolation_line(e))
    c = r.get("contradiction") or {}
    if c.get("C_pf_days") is not None:
        lines.append(f"  contradiction point: C* = {c['C_pf_days']:.3g} PF-days, N* = {c['N']:.3g}, "
                     f"D* = {c['D']:.3g} tokens, L* = {c['L']:.3g} nats/token")
    else:
        lines.append(f"  contradiction point: n/a ({c.get('reason', '')})")
    return "\n".join(lines)


def extrapolation_line(e: dict) -> str:
    """How far the plan extrapolates, and whether that makes it a projection rather than a prediction."""
    from scalinglab.laws.analyses.reach import kind_text, reach_text

    reach = reach_text(e)
    if not reach:
        return "extrapolation: unknown (the fit records no data range: refit it with this version)"
    line = (f"extrapolation: {reach} (C from {e['compute_basis']}; N_opt, D outside the fitted N, D)"
            f" -> {kind_text(e).upper() if e.get('projection') else kind_text(e)}")
    if e.get("projection"):
        return line + (f": more than {e['threshold_decades']:g} decade out, the fitted form carried where no data "
                       "checked it, not a prediction")
    return line + f" (within {e['threshold_decades']:g} decade)"
