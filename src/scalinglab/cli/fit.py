"""`scalinglab fit`: fit a scaling law to a CSV of measurements or to the results store."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from scalinglab.cli.core import emit_json, new_app

app = new_app()


@app.command()
def fit(
    law: Annotated[str, typer.Option("--law", help="Law to fit (kaplan-n, kaplan-d, kaplan-c, kaplan-cmin, kaplan-nd, "
                                     "kaplan-ns, bcrit, bcrit-scan, chinchilla, chinchilla-tied, data-constrained, *-e "
                                     "variants, log-n, ..., lr-opt, batch-opt, batch-opt-c; isoflop or frontier for "
                                     "approaches 2 and 1; A,B,... to compare forms by hold-out).")],
    csv: Annotated[str | None, typer.Option("--csv", help="CSV with canonical columns N, D, C, S, B, L (map others "
                                            "with --col). lr-opt: one row per run with N, LR, L; batch-opt: one row "
                                            "per run with N, B (batch, tokens), D (tokens trained), L (final loss); "
                                            "batch-opt-c: also C (FLOPs).")] = None,
    db: Annotated[str | None, typer.Option("--db", help="Results store (SQLite) to read finished runs from.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="A packaged table (`scalinglab datasets list`): "
                                                "shorthand for --csv of its file.")] = None,
    col: Annotated[list[str] | None, typer.Option("--col", help="Map a canonical column: N=params (repeatable).")] = None,
    query: Annotated[str | None, typer.Option("--query", help="Select rows (pandas query), e.g. 'in_epoch_fit'.")] = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples for 95% CIs (0: none).")] = 0,
    holdout: Annotated[int, typer.Option("--holdout", help="Refit without the K largest-compute points.")] = 0,
    huber_delta: Annotated[float, typer.Option("--huber-delta", help="Huber delta on log-loss residuals.")] = 1e-3,
    count_embeddings: Annotated[bool, typer.Option("--count-embeddings",
                                                   help="With --db: N includes embedding parameters.")] = False,
    c_unit: Annotated[Literal["flops", "pf-days"], typer.Option("--c-unit", help="Unit of column C: flops or pf-days (C_c is reported in "
                                        "PF-days either way).")] = "flops",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap resampling.")] = 0,
    fix: Annotated[list[str] | None, typer.Option("--fix", help="Hold a parameter fixed: NAME=VALUE (repeatable), "
                                                  "e.g. E=1.69.")] = None,
    solver: Annotated[Literal["varpro", "grid"] | None, typer.Option("--solver", help="chinchilla(-tied): varpro "
                                                                     "(variable projection, the default) or grid "
                                                                     "(grid of starts).")] = None,
    window: Annotated[int | None, typer.Option("--window", help="isoflop: parabola over the K sizes nearest each "
                                               "budget's lowest loss (0: every size; default 5).")] = None,
    group: Annotated[str | None, typer.Option("--group", help="isoflop: column naming the budget (default: C); "
                                              "frontier: column(s) naming a curve (default: run), e.g. model,sweep.")] = None,
    method: Annotated[Literal["envelope", "hull"] | None, typer.Option("--method", help="frontier: envelope (Hoffmann "
                                                                       "et al., the default) or hull (lower convex "
                                                                       "hull).")] = None,
    flops: Annotated[str, typer.Option("--flops", help="With --db: FLOP convention of C: paper (6N per token), exact "
                                       "(with the attention-context term) or with-head (exact + the de-embedding).")
                     ] = "paper",
    min_step: Annotated[float | None, typer.Option("--min-step", help="Learning-curve rows: drop points before this "
                                                   "step (default: max(2 x warm-up, 10)).")] = None,
    min_tokens: Annotated[float | None, typer.Option("--min-tokens", help="Learning-curve rows: drop points before "
                                                     "this many tokens.")] = None,
    min_policy: Annotated[str, typer.Option("--min-policy", help="With --db, kaplan-ns/-cmin: B_crit for S_min/C_min: "
                                            "noise-scale (measured per point) or none.")] = "noise-scale",
    sensitivity: Annotated[bool, typer.Option("--sensitivity", help="With --db: print the law's exponents under each "
                                              "FLOP convention, transient cut and N with/without embeddings.")] = False,
    json_out: Annotated[str | None, typer.Option("--json", help="Write the fit as JSON to this file ('-': stdout).")] = None,
) -> None:
    """Fit LAW with a Huber loss on log residuals from a grid of starts; bootstrap CIs and a hold-out check."""
    from scalinglab.cli import fitting
    from scalinglab.errors import UserError
    from scalinglab.laws.data import check_flops, parse_col_maps
    from scalinglab.laws.fit import fit_law
    from scalinglab.laws.optimal import ALLOCATION_LAWS
    from scalinglab.laws.power import KaplanC

    if sum(x is not None for x in (csv, db, dataset)) != 1:
        raise UserError("give exactly one of --csv FILE, --db DB or --dataset NAME")
    if dataset is not None:
        from scalinglab.datasets import path as dataset_path

        csv = str(dataset_path(dataset))
    names = fitting.law_list(law)
    check_flops(flops)
    if min_policy not in ("noise-scale", "none"):
        raise UserError(f"unknown --min-policy {min_policy!r}; use noise-scale or none")
    if sensitivity:
        _sensitivity(db, names[0], huber_delta, json_out)
        return
    allocation = names[0] in ALLOCATION_LAWS
    laws = _laws(names, fix, c_unit, solver, huber_delta, seed)
    _check_law_options(names[0], laws, solver=solver, window=window, method=method, group=group)
    df = _rows(csv, db, names[0], parse_col_maps(col), query, count_embeddings, flops, min_policy)
    source = csv if db is None else db
    if dataset is not None:
        source = f"dataset:{dataset}"
    if db is not None:
        group = group or ("budget" if names[0] == "isoflop" else None)
    if allocation:
        result = fitting.fit_allocation(names[0], df, bootstrap, seed, 5 if window is None else window, group,
                                        method or "envelope")
        show = fitting.allocation_summary
    elif len(laws) > 1:
        result = fitting.fit_comparison(laws, df, holdout)
        show = fitting.comparison_summary
    else:
        result = fit_law(laws[0], df, bootstrap=bootstrap, holdout=holdout, huber_delta=huber_delta,
                         seed=seed, min_step=min_step, min_tokens=min_tokens).to_dict()
        show = summary
    _record_inputs(result, source, db, query, count_embeddings, c_unit if laws and isinstance(laws[0], KaplanC) else None)
    if db is not None:  # `report --db` reads the latest fit of each law from the store
        from scalinglab.store.db import save_fit_result

        save_fit_result(db, result)
    if json_out is not None:
        emit_json(result, json_out)
    if json_out != "-":
        typer.echo(show(result))




def _laws(names: list[str], fix: list[str] | None, c_unit: str, solver: str | None, huber_delta: float,
          seed: int) -> list:
    """The law objects to fit (none for an allocation estimator, which has no parameters to --fix or compare)."""
    from scalinglab.errors import UserError
    from scalinglab.laws.fixed import parse_fix
    from scalinglab.laws.optimal import ALLOCATION_LAWS

    if names[0] not in ALLOCATION_LAWS:
        return [_law(n, c_unit, solver, huber_delta, seed, parse_fix(fix)) for n in names]
    if len(names) > 1:
        raise UserError(f"--law {names[0]} (an allocation estimator) cannot be compared with point laws")
    if fix:
        raise UserError(f"--fix holds a parameter of a law; {names[0]} measures N_opt(C) directly and has none to hold")
    return []


def _check_law_options(name: str, laws: list, **given: object) -> None:
    """Options that only some laws read are refused for the others (one line), never silently ignored."""
    from scalinglab.errors import UserError

    readers = {"window": {"isoflop"}, "method": {"frontier"}, "group": {"isoflop", "frontier"}}
    for option, value in given.items():
        if value is None:
            continue
        if option == "solver":
            if not any("solver" in law.get_options() for law in laws):
                raise UserError(f"--solver is for --law chinchilla or chinchilla-tied; {name} has no solver choice")
        elif name not in readers[option]:
            raise UserError(f"--{option} is for --law {' or '.join(sorted(readers[option]))}, not {name}")


def _rows(csv: str | None, db: str | None, law: str, col_map: dict[str, str], query: str | None,
          count_embeddings: bool, flops: str, min_policy: str):
    """The rows to fit: a CSV as mapped by --col/--query, or the store's frame for `law` (allocation laws: budgets)."""
    from scalinglab.cli import fitting
    from scalinglab.laws.data import apply_mapping, frame_from_store, load_csv
    from scalinglab.laws.optimal import ALLOCATION_LAWS

    if csv is not None:
        return load_csv(csv, col_map, query)
    frame = (fitting.store_frame(db, law, count_embeddings) if law in ALLOCATION_LAWS
             else frame_from_store(db, law, count_embeddings=count_embeddings, flops=flops, min_policy=min_policy))
    return apply_mapping(frame, col_map, query, what=f"DB {db}")


def _record_inputs(result: dict, source: str, db: str | None, query: str | None, count_embeddings: bool,
                   c_unit: str | None) -> None:
    """Write into the fit JSON where its rows came from and how they were read."""
    result["source"] = str(source)
    if db is None:  # what a store read records (laws.data) is the user's choice for a CSV
        result.setdefault("flops", "as given in column C")
        result.setdefault("loss", "as given in column L")
    if query:
        result["query"] = query
    if db is not None:
        result["count_embeddings"] = bool(count_embeddings)
    if c_unit is not None:
        result["units"] = {"C_c": "PF-days", "C": c_unit}

def _sensitivity(db: str | None, law: str, huber_delta: float, json_out: str | None) -> None:
    """`fit --sensitivity`: the law's exponents under each FLOP convention, transient cut and N convention."""
    from scalinglab.errors import UserError
    from scalinglab.laws.sensitivity import sensitivity, sensitivity_table

    if db is None:
        raise UserError("--sensitivity needs --db (the conventions are recomputed from the store)")
    rows = sensitivity(db, law, huber_delta=huber_delta)
    if json_out is not None:
        emit_json({"law": law, "source": str(db), "sensitivity": rows}, json_out)
    if json_out != "-":
        typer.echo(f"{law}: exponents under each convention (no bootstrap)\n" + sensitivity_table(rows))


def _law(name: str, c_unit: str, solver: str | None, huber_delta: float, seed: int, fixed: dict[str, float]):
    """An unfitted law with the command's options (unknown names and parameters are one-line errors)."""
    from scalinglab.laws.fixed import with_fixed
    from scalinglab.laws.power import KaplanC
    from scalinglab.laws.registry import get_law

    proto = get_law(name)  # unknown law -> exit 2 listing the known ones
    options = {"c_unit": c_unit} if isinstance(proto, KaplanC) else {}
    if "solver" in proto.get_options() and solver is not None:
        options["solver"] = solver
    return with_fixed(get_law(name, **options, huber_delta=huber_delta, seed=seed), fixed)


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
