"""The text of a fit: what `scalinglab fit` prints and `Law.summary()` returns (one function, so they agree)."""

from __future__ import annotations

from typing import Any


def fit_summary(result: dict[str, Any]) -> str:
    """The summary of a fit JSON: approaches 1 and 2 (parameters a, N_coef, b, D_coef) or a law, and which runs
    of a store it took."""
    if "per_budget" in result or "frontier_points" in result:
        text = allocation_summary(result)
    else:
        text = summary(result)
    line = (result.get("selection") or {}).get("line") if isinstance(result.get("selection"), dict) else None
    return text + (f"\n  {line}" if line else "")


def summary(result: dict) -> str:
    """A few readable lines: the law, each parameter with its CI, fit quality and the hold-out error."""
    lines = [f"{result['law']}: {result['formula']}  ({result['n_points']} points)"]
    for k, v in result["params"].items():
        ci = result["ci95"].get(k)
        held = "  (fixed)" if k in (result.get("fixed") or {}) else ""
        lines.append(f"  {k:>8} = {v:.5g}" + (f"   95% CI [{ci[0]:.5g}, {ci[1]:.5g}]" if ci else "") + held)
    for k, v in (result.get("derived") or {}).items():
        ci = (result.get("derived_ci95") or {}).get(k)
        if v is not None:
            lines.append(f"  {k:>8} = {v:.5g}" + (f"   95% CI [{ci[0]:.5g}, {ci[1]:.5g}]" if ci else "") + "  (derived)")
    lines.append(f"  residual rms (log) = {result['residual_rms']:.4g}, objective = {result['objective']:.6g}, "
                 f"converged = {result['converged']}")
    lines += _optimum_lines(result)
    for k in result.get("at_bounds") or []:
        lines.append(f"  warning: {k} is at a bound of its search range; the data do not determine it")
    if result.get("bootstrap"):
        b = result["bootstrap"]
        lines.append(f"  bootstrap: {b['k']} resamples of {b.get('resample') or 'point'}s, "
                     f"{100 * b['converged_fraction']:.1f}% converged (intervals from the converged ones)")
        if b["converged_fraction"] < 0.95:
            lines.append(f"  warning: only {100 * b['converged_fraction']:.1f}% of the bootstrap refits converged; "
                         "the intervals may be too narrow")
    t = result.get("transient")
    if t:
        lines.append(f"  transient cut: {t['policy']}: kept {t['n_after']} of {t['n_before']} curve points")
    h = result.get("holdout")
    if h:
        lines.append(f"  hold-out of {h['k']} largest-compute points: mean |rel err| = {h['mean_abs_rel_error']:.4g}, "
                     f"max = {h['max_abs_rel_error']:.4g}")
    return "\n".join(lines)


def _optimum_lines(result: dict) -> list[str]:
    """lr-opt / batch-opt: each scan's optimum and the sizes where it is only a bound (at a grid edge)."""
    lines = [f"  scan N = {s['N']:.4g}, D = {s['D']:.4g}: B* = {s['B']:.4g} of batches {s['batches'][0]:.4g}-"
             f"{s['batches'][-1]:.4g}, {s['method']}" + ("" if s.get("used", True) else " (not used)")
             for s in result.get("scans") or []]
    edges = result.get("edge_sizes") or []
    if edges:
        lines.append(f"  warning: the best value is at an edge of its grid for N = {', '.join(f'{n:.4g}' for n in edges)}"
                     ": there it is only a bound")
    return lines


def allocation_summary(r: dict[str, Any]) -> str:
    p, ci = r["params"], r.get("ci95") or {}
    lines = [f"{r['law']}: {r['formula']}  ({r['n_points']} points)"]
    for k in ("a", "N_coef", "b", "D_coef"):
        c = ci.get(k)
        lines.append(f"  {k:>8} = {p[k]:.5g}" + (f"   95% CI [{c[0]:.5g}, {c[1]:.5g}]" if c else ""))
    for row in r.get("per_budget") or []:
        if row.get("dropped"):
            lines.append(f"  budget C = {row['C']:.3g}: dropped ({row['dropped']}; {row['n_sizes']} sizes)")
    if "per_budget" in r:
        lines.append(f"  {r['n_budgets']} budgets used; {r['window_note']}")
    else:
        lines.append(f"  {r['options']['method']} frontier: {r['n_frontier_points']} points, "
                     f"{r['n_sizes_on_frontier']} model sizes")
    b = r.get("bootstrap")
    if b:
        lines.append(f"  bootstrap: {b['k']} resamples of {b['resample']}, {100 * b['converged_fraction']:.1f}% usable")
    return "\n".join(lines)
