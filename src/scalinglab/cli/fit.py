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
    method: Annotated[str | None, typer.Option("--method", help="isoflop: parabola (the default) or akima (whole-curve "
                                               "Akima interpolation, Porian et al.); frontier: envelope (Hoffmann et "
                                               "al., the default) or hull (lower convex hull).")] = None,
    family: Annotated[str | None, typer.Option("--family", help="With --db: the families of runs to fit (comma-"
                                               "separated; 'all' for every run). Default: the law's own (main for "
                                               "most), the runs reproduce and the report fit.")] = None,
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
    from scalinglab.laws.framework.data import parse_col_maps
    from scalinglab.laws.framework.summary import fit_summary

    csv = _check_sources(csv, db, dataset, family, flops, min_policy)
    names = fitting.law_list(law)
    if sensitivity:
        _sensitivity(db, names[0], huber_delta, json_out)
        return
    settings = dict(huber_delta=huber_delta, seed=seed, min_step=min_step, min_tokens=min_tokens, flops=flops,
                    min_policy=min_policy, bootstrap=bootstrap, holdout=holdout)
    laws = _laws(names, fix, c_unit, solver, settings, window=window, method=method, group=group, db=db)
    df, selection = _rows(csv, db, laws[0], parse_col_maps(col), query, count_embeddings, family)
    if len(laws) > 1:
        result, show = fitting.fit_comparison(laws, df, holdout), fitting.comparison_summary
    else:
        result, show = laws[0].fit(df).to_dict(), fit_summary
    _record_inputs(result, _source(csv, db, dataset), db, query, count_embeddings,
                   c_unit if getattr(laws[0], "c_unit", None) else None, selection)
    if db is not None:  # `report --db` reads the latest fit of each law from the store
        from scalinglab.store.db import save_fit_result

        save_fit_result(db, result)
    if json_out is not None:
        emit_json(result, json_out)
    if json_out != "-":
        typer.echo(show(result))
    elif selection is not None:  # the JSON is on stdout: say which runs on stderr
        typer.echo(selection["line"], err=True)


def _check_sources(csv: str | None, db: str | None, dataset: str | None, family: str | None, flops: str,
                   min_policy: str) -> str | None:
    """One source of rows, the options that go with it; returns the CSV path (a packaged dataset's file)."""
    from scalinglab.errors import UserError
    from scalinglab.laws.framework.data import check_flops

    if sum(x is not None for x in (csv, db, dataset)) != 1:
        raise UserError("give exactly one of --csv FILE, --db DB or --dataset NAME")
    if family is not None and db is None:
        raise UserError("--family selects runs of a store; it needs --db")
    check_flops(flops)
    if min_policy not in ("noise-scale", "none"):
        raise UserError(f"unknown --min-policy {min_policy!r}; use noise-scale or none")
    if dataset is None:
        return csv
    from scalinglab.datasets import path as dataset_path

    return str(dataset_path(dataset))


def _source(csv: str | None, db: str | None, dataset: str | None) -> str:
    return f"dataset:{dataset}" if dataset is not None else str(csv if db is None else db)


def _laws(names: list[str], fix: list[str] | None, c_unit: str, solver: str | None, settings: dict,
          **options: object) -> list:
    """The unfitted laws with the command's settings (one for a fit, several for a comparison)."""
    from scalinglab.errors import UserError
    from scalinglab.laws.framework.base import Law, law_class
    from scalinglab.laws.framework.fixed import parse_fix

    cls = law_class(names[0])  # unknown law -> exit 2 listing the known ones
    if issubclass(cls, Law):
        _check_law_options(names[0], solver=solver, **options)
        if len(names) > 1:  # the comparison does its own hold-out and no bootstrap
            settings = {**settings, "bootstrap": 0, "holdout": 0}
        return [_law(n, c_unit, solver, settings, parse_fix(fix)) for n in names]
    if len(names) > 1:
        raise UserError(f"--law {names[0]} (an allocation estimator) cannot be compared with point laws")
    if fix:
        raise UserError(f"--fix holds a parameter of a law; {names[0]} measures N_opt(C) directly and has none to hold")
    _check_law_options(names[0], solver=solver, **options)
    given = {k: v for k, v in options.items() if k in cls._param_names() and v is not None}
    from scalinglab.laws.framework.registry import get_law

    return [get_law(names[0], seed=settings["seed"], bootstrap=settings["bootstrap"], **given)]


def _check_law_options(name: str, **given: object) -> None:
    """Options that only some laws read are refused for the others (one line), never silently ignored: the law's
    class says which settings it has."""
    from scalinglab.errors import UserError
    from scalinglab.laws.framework.base import law_class, registered_names

    params = law_class(name)._param_names()
    for option, value in given.items():
        if value is None or option == "db" or option in params:
            continue
        readers = [n for n in registered_names() if option in law_class(n)._param_names()]
        raise UserError(f"--{option} is for --law {' or '.join(sorted(readers))}, not {name}")


def _rows(csv: str | None, db: str | None, law, col_map: dict[str, str], query: str | None,
          count_embeddings: bool, family: str | None):
    """The rows to fit: a CSV as mapped by --col/--query, or the law's frame of the store's selected runs (the
    Study: --family, by default the law's own families, as reproduce and the report use); and the selection."""
    from scalinglab.laws.framework.data import apply_mapping, load_csv
    from scalinglab.study import Study, with_line

    if csv is not None:
        return load_csv(csv, col_map, query), None
    families = law.families if family is None else [f.strip() for f in family.split(",")]
    chosen = Study.from_db(db).select("all" if families in (None, ["all"]) else families)
    frame = chosen.frame(law, count_embeddings)
    selection = with_line(chosen.selection, default=family is None)
    from scalinglab.errors import UserError

    try:
        return apply_mapping(frame, col_map, query, what=f"DB {db}"), selection
    except UserError as e:
        if family is None and "selected no rows" in str(e):  # the query may have meant runs of another family
            raise UserError(f"{e} of the runs of {selection['description']} (the law's default); give --family "
                            "NAME or --family all to fit other runs") from None
        raise


def _record_inputs(result: dict, source: str, db: str | None, query: str | None, count_embeddings: bool,
                   c_unit: str | None, selection: dict | None = None) -> None:
    """Write into the fit JSON where its rows came from and how they were read."""
    result["source"] = str(source)
    if selection is not None:
        result["selection"] = selection
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
    from scalinglab.laws.analyses.sensitivity import sensitivity, sensitivity_table

    if db is None:
        raise UserError("--sensitivity needs --db (the conventions are recomputed from the store)")
    rows = sensitivity(db, law, huber_delta=huber_delta)
    if json_out is not None:
        emit_json({"law": law, "source": str(db), "sensitivity": rows}, json_out)
    if json_out != "-":
        typer.echo(f"{law}: exponents under each convention (no bootstrap)\n" + sensitivity_table(rows))


def _law(name: str, c_unit: str, solver: str | None, settings: dict, fixed: dict[str, float]):
    """An unfitted law with the command's settings (unknown names and parameters are one-line errors)."""
    from scalinglab.laws.framework.base import law_class
    from scalinglab.laws.framework.fixed import with_fixed
    from scalinglab.laws.framework.registry import get_law

    params = law_class(name)._param_names()
    options = {"c_unit": c_unit} if "c_unit" in params else {}
    if "solver" in params and solver is not None:
        options["solver"] = solver
    return with_fixed(get_law(name, **options, **settings), fixed)
