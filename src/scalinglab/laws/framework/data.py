"""Getting data into a law: CSV reading, column mapping, and the results-store mapping.

Canonical columns: N (non-embedding parameters), D (tokens), C (training FLOPs), S (steps), B (batch size in
tokens), L (loss, nats/token), L_ood (loss on another distribution), U (unique tokens), LR (peak learning rate);
laws/framework/columns.py validates them.

`law_frame(runs, evals, law, ...)` maps the store's run and eval tables (from `frame_from_store(db, law)` or a
Study, src/scalinglab/study.py, which selects the runs) onto canonical columns: N = n_params (n_params_with_embeddings with count_embeddings), D = data_tokens when set
else tokens (U the same; the data-constrained law takes D = tokens trained on and U = data_tokens, batch-opt(-c) D =
tokens trained on), C under the FLOP convention `flops` (FLOPS_NOTE: paper = 6N per token, the paper's C = 6NBS; exact =
with the attention-context term; with-head = exact + the de-embedding matmul; kaplan-c/-cmin convert to PF-days
inside the law), S = steps, B = batch_size·n_ctx tokens, L = the final val loss, or the best one for D-subset runs
(early stopping, LOSS_NOTE), L:<name> = final loss on each extra eval set (L_ood too when there is exactly one),
warmup = the run's warm-up steps, family = its tag or, untagged, its inferred family; only runs with status
"done", ordered by run id. What a law reads is declared on its class (`Law.reads`): laws that read "curves"
(kaplan-ns, kaplan-c, kaplan-cmin, bcrit-scan, frontier) get every eval point of every curve (`curves_table`) and
do the rest themselves (transient cut, frontier, whole-run bootstrap; laws/framework/curves.py); a law with `min_convert`
(kaplan-cmin: C, kaplan-ns: S) gets C_min or S_min from `transforms.to_min` under `min_policy`; "noise-scale"
(bcrit) fits eq 1.4 to (L, noise scale in tokens) along every curve; "frontier-points" (log-c) the frontier
itself; "budgets" (isoflop) one row per run with its budget, C to 2 significant digits. The choices go into `df.attrs["provenance"]` and from there into the fit JSON. For a CSV, kaplan-cmin reads
C_min from column C and kaplan-ns S_min from S (map them with --col). `fit_axis(fit, curves, runs)` puts report
curves on the axes a fit used (figures).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from scalinglab.errors import UserError
from scalinglab.laws.framework.columns import CANONICAL


def parse_col_maps(specs: list[str] | None) -> dict[str, str]:
    """['N=params', 'L=loss'] -> {'N': 'params', 'L': 'loss'}."""
    out: dict[str, str] = {}
    for spec in specs or []:
        if "=" not in spec:
            raise UserError(f"--col must look like CANONICAL=column (e.g. N=params), got {spec!r}")
        k, v = (p.strip() for p in spec.split("=", 1))
        if k not in CANONICAL:
            raise UserError(f"--col {spec!r}: {k!r} is not a canonical column ({', '.join(CANONICAL)})")
        if not v:
            raise UserError(f"--col {spec!r}: empty source column name")
        out[k] = v
    return out


def load_csv(path: str | Path, col_map: dict[str, str] | None = None, query: str | None = None):
    """Read a CSV of measurements, map columns onto canonical names, apply a pandas query."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise UserError(f"CSV file not found: {p}")
    try:
        df = pd.read_csv(p)
    except pd.errors.EmptyDataError:
        raise UserError(f"CSV file {p} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise UserError(f"CSV file {p} could not be parsed: {str(e).splitlines()[0]}") from None
    if df.empty:
        raise UserError(f"CSV file {p} has a header but no rows")
    return apply_mapping(df, col_map, query, what=f"CSV {p.name}")


def apply_mapping(df, col_map: dict[str, str] | None = None, query: str | None = None, what: str = "data"):
    """Copy mapped columns to canonical names (originals stay usable in --query), then filter rows."""
    df = df.copy()
    for canon, src in (col_map or {}).items():
        if src not in df.columns:
            raise UserError(f"--col {canon}={src}: {what} has no column {src!r}; columns: {', '.join(map(str, df.columns))}")
        df[canon] = df[src]
    if query:
        try:
            df = df.query(query)
        except Exception as e:  # pandas raises many kinds for a bad expression
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise UserError(f"--query {query!r} failed: {msg}") from None
        if len(df) == 0:
            raise UserError(f"--query {query!r} selected no rows")
    return df


# ---- results store ------------------------------------------------------------------------------------
def _store():
    try:
        from scalinglab.store import db as store_db
    except ImportError:  # pragma: no cover - depends on the store module being present
        raise UserError("the results store (scalinglab.store.db) is not available in this installation") from None
    return store_db


FLOPS = ("paper", "exact", "with-head")
FLOPS_NOTE = {"paper": "C = 6N per token (no attention-context term; the paper's C = 6NBS)",
              "exact": "C = Table 1 training FLOPs with the attention-context term",
              "with-head": "C = exact + 6·d_model·n_vocab per token (the de-embedding matmul, forward x3)"}
LOSS_NOTE = "best (early-stopped) val loss for D-subset runs (data_tokens set), final val loss otherwise"


def check_flops(flops: str) -> str:
    if flops not in FLOPS:
        raise UserError(f"unknown --flops {flops!r}; use one of {', '.join(FLOPS)}")
    return flops


def _compute(frame, tokens: np.ndarray, flops: str, head: np.ndarray) -> np.ndarray:
    """C under a FLOP convention from a frame with flops / flops_no_context columns (runs or eval points)."""
    import pandas as pd

    exact = pd.to_numeric(frame["flops"], errors="coerce").to_numpy(float)
    if flops == "exact":
        return exact
    if flops == "with-head":
        return exact + 6.0 * head * tokens
    no_ctx = (pd.to_numeric(frame["flops_no_context"], errors="coerce").to_numpy(float)
              if "flops_no_context" in frame.columns else np.full(len(frame), np.nan))
    return np.where(np.isfinite(no_ctx) & (no_ctx > 0), no_ctx, exact)


def warmup_steps(runs) -> np.ndarray:
    """Warm-up steps of each run from its config (warmup >= 1: steps, below 1: a fraction of the run)."""
    import pandas as pd

    w = (pd.to_numeric(runs["warmup"], errors="coerce").to_numpy(float) if "warmup" in runs.columns
         else np.zeros(len(runs)))
    steps = runs["steps"].to_numpy(dtype=float)
    return np.where(w >= 1, np.round(w), np.round(w * steps))


def _head_params(runs) -> np.ndarray:
    """d_model·n_vocab of each run: its embedding table less the position table (LSTMs have none)."""
    import pandas as pd

    emb = pd.to_numeric(runs.get("n_embedding"), errors="coerce").to_numpy(float)
    with_emb = (pd.to_numeric(runs.get("n_params_with_embeddings"), errors="coerce")
                - pd.to_numeric(runs.get("n_params"), errors="coerce")).to_numpy(float)
    emb = np.where(np.isfinite(emb), emb, with_emb)  # stores from importers may lack n_embedding
    d = pd.to_numeric(runs.get("d_model"), errors="coerce").to_numpy(float)
    ctx = np.where(runs.get("arch", pd.Series([""] * len(runs))).astype(str).to_numpy() == "lstm", 0.0,
                   pd.to_numeric(runs.get("n_ctx"), errors="coerce").to_numpy(float))
    return emb - ctx * d


def runs_from_store(db: str | Path, count_embeddings: bool = False, flops: str = "paper"):
    """One row per finished run of the store `db` (see `runs_table`)."""
    return runs_table(_load_runs(db), count_embeddings, flops, where=f"results DB {db}")


def _load_runs(db: str | Path):
    p = Path(db)
    if not p.is_file():
        raise UserError(f"results DB not found: {p}")
    return _store().load_runs(p)


def runs_table(runs, count_embeddings: bool = False, flops: str = "paper", where: str = "the runs",
               pruned: bool = False):
    """One row per finished run, canonical columns N, D, C, S, B, L plus run, family, noise_scale, warmup, L_final.

    `runs` is the store's run table (`store.db.load_runs`, or a frame shaped like it). C follows the FLOP
    convention `flops` (FLOPS_NOTE); L is the best val loss of D-subset runs (LOSS_NOTE). With `pruned`, runs a
    sweep pruned are rows too, with L = +inf (`Law.reads_pruned`)."""
    try:
        return _runs_table(runs, count_embeddings, flops, where, pruned)
    except KeyError as e:
        raise UserError(f"{where} lack the run column {e.args[0]!r} the laws read") from None


def _runs_table(runs, count_embeddings: bool, flops: str, where: str, pruned: bool = False):
    import pandas as pd

    from scalinglab.store.families import with_families

    if "status" in runs.columns:
        runs = runs[runs["status"].isin(("done", "pruned") if pruned else ("done",))]
    if len(runs) == 0:
        raise UserError(f"{where} has no finished runs")
    # by run id, not by finishing order: bootstrap weights go to rows, so a fit must not depend on which
    # of two parallel runs happened to finish first
    runs = runs.sort_values("run_id", kind="stable")
    ncol = "n_params_with_embeddings" if count_embeddings else "n_params"
    df = pd.DataFrame({"run": runs["run_id"].astype(str).to_numpy()})
    df["N"] = runs[ncol].to_numpy(dtype=float)
    tokens = runs["tokens"].to_numpy(dtype=float)
    df["tokens"] = tokens  # trained on (D of the data-constrained law)
    if "data_tokens" in runs.columns:
        dt = pd.to_numeric(runs["data_tokens"], errors="coerce").to_numpy(dtype=float)
        tokens = np.where(np.isfinite(dt) & (dt > 0), dt, tokens)
    df["D"] = tokens
    df["U"] = tokens  # unique tokens: the D-subset's size, else every token seen was new
    df["head"] = _head_params(runs)
    df["C"] = _compute(runs, runs["tokens"].to_numpy(dtype=float), check_flops(flops), df["head"].to_numpy())
    df["S"] = runs["steps"].to_numpy(dtype=float)
    df["B"] = (runs["batch_size"].to_numpy(dtype=float) * runs["n_ctx"].to_numpy(dtype=float))
    df["warmup"] = warmup_steps(runs)
    final = pd.to_numeric(runs["val_loss"], errors="coerce").to_numpy(dtype=float)
    best = (pd.to_numeric(runs["best_val_loss"], errors="coerce").to_numpy(dtype=float)
            if "best_val_loss" in runs.columns else np.full(len(runs), np.nan))
    subset = np.isfinite(dt) & (dt > 0) if "data_tokens" in runs.columns else np.zeros(len(runs), dtype=bool)
    df["L_final"] = final
    df["L"] = np.where(subset & np.isfinite(best), best, final)  # early stopping of runs that repeat data
    if pruned and "status" in runs.columns:
        df.loc[(runs["status"] == "pruned").to_numpy(), "L"] = np.inf  # stopped because its forecast lost
    df["LR"] = pd.to_numeric(runs["lr"], errors="coerce").to_numpy(dtype=float)  # the peak LR it ran at (lr-opt)
    # the run's family: its tag, or the inferred one for an untagged run (never the text "None")
    df["family"] = with_families(runs.reset_index(drop=True))["family"].astype(str).to_numpy()
    df["noise_scale"] = (pd.to_numeric(runs["noise_scale"], errors="coerce").to_numpy(dtype=float)
                         if "noise_scale" in runs.columns else np.nan)
    extra = [_json_dict(v) for v in runs.get("eval_losses", pd.Series([None] * len(runs)))]
    names = sorted({k for e in extra for k in e})
    for name in names:
        df[f"L:{name}"] = [float(e[name]) if e.get(name) is not None else np.nan for e in extra]
    if len(names) == 1:  # the out-of-distribution loss of the ood-* laws (Fig. 8/24)
        df["L_ood"] = df[f"L:{names[0]}"]
    return df


def _json_dict(value: Any) -> dict:
    """A store JSON column (text, dict or missing) as a dict."""
    import json

    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value:
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def curves_from_store(db: str | Path, count_embeddings: bool = False, flops: str = "paper"):
    """Every learning-curve point of the finished runs of the store `db` (see `curves_table`)."""
    return curves_table(runs_from_store(db, count_embeddings, flops), _store().load_evals(Path(db)), flops,
                        where=f"results DB {db}")


def curves_table(runs, evals, flops: str = "paper", where: str = "the runs"):
    """Every learning-curve point of the runs of `runs_table`: run, N, B, S (=step), step, D (tokens so far), C
    (under the FLOP convention `flops`), L, noise_scale, warmup (the run's warm-up steps). `evals` is the
    store's eval table (`store.db.load_evals`, or a frame shaped like it)."""
    import pandas as pd

    ev = evals[evals["run_id"].astype(str).isin(set(runs["run"]))] if len(evals) else evals
    if len(ev) == 0:
        raise UserError(f"{where} has no learning-curve points for finished runs")
    meta = runs.set_index("run")[["N", "B", "noise_scale", "warmup", "head"]].rename(
        columns={"noise_scale": "run_noise_scale"})
    out = ev.assign(run=ev["run_id"].astype(str)).join(meta, on="run")
    point_ns = (pd.to_numeric(out["noise_scale"], errors="coerce").to_numpy(float) if "noise_scale" in out.columns
                else np.full(len(out), np.nan))
    # the noise scale measured at that point of the curve (B_crit at that loss), else the run's final one
    ns = np.where(np.isfinite(point_ns), point_ns, out["run_noise_scale"].to_numpy(float))
    tokens = pd.to_numeric(out["tokens"], errors="coerce").to_numpy(float)
    out = out.assign(S=pd.to_numeric(out["step"], errors="coerce").astype(float),
                     step=pd.to_numeric(out["step"], errors="coerce").astype(float), D=tokens,
                     C=_compute(out, tokens, flops, out["head"].to_numpy(float)),
                     L=pd.to_numeric(out["val_loss"], errors="coerce").astype(float), noise_scale=ns)
    out = out[(out["S"] > 0) & np.isfinite(out["L"])]
    return out[["run", "N", "B", "S", "step", "D", "C", "L", "noise_scale", "warmup"]].reset_index(drop=True)


def frame_from_store(db: str | Path, law: Any, count_embeddings: bool = False, run_ids: Any = None,
                     flops: str = "paper", min_policy: str = "noise-scale", bcrit: dict | None = None):
    """The canonical DataFrame a law should be fitted on, read from the results store (see `law_frame`)."""
    p = Path(db)
    runs = _load_runs(p)
    evals = _store().load_evals(p) if _law(law).reads != "runs" else None
    return law_frame(runs, evals, law, count_embeddings, run_ids, flops, min_policy, bcrit, where=f"results DB {db}")


def _law(law: Any):
    from scalinglab.laws.framework.registry import get_law

    return get_law(law) if isinstance(law, str) else law


def law_frame(runs, evals, law: Any, count_embeddings: bool = False, run_ids: Any = None, flops: str = "paper",
              min_policy: str = "noise-scale", bcrit: dict | None = None, where: str = "the runs"):
    """The canonical DataFrame `law` (a name or an estimator) is fitted on, from a run table and an eval table
    shaped like the store's (see module doc). The law says what it reads (`Law.reads`: final losses of runs,
    every point of the learning curves, the noise scale along them, the frontier points, or runs grouped by
    budget), whether its C or S is converted to C_min / S_min (`min_convert`), whether D is the tokens trained on
    (`trained_tokens`) and whether it needs losses on extra eval sets (`needs_eval_sets`).

    `run_ids` (optional) restricts it to those runs (e.g. one family of a sweep). Curve laws get every eval point
    (the law cuts the transient and, for kaplan-c/-cmin, takes the frontier itself, inside each bootstrap
    resample); S_min/C_min come from `to_min(policy=min_policy)`. What was chosen is in `df.attrs["provenance"]`,
    which the fitted law copies into its JSON.
    """
    law = _law(law)
    check_flops(flops)
    keep = None if run_ids is None else {str(r) for r in run_ids}
    provenance: dict[str, Any] = {"flops": flops, "flops_note": FLOPS_NOTE[flops], "loss": LOSS_NOTE}
    table = runs_table(runs, count_embeddings, flops, where, pruned=getattr(law, "reads_pruned", False))
    if getattr(law, "reads_pruned", False):
        provenance["pruned"] = "LR candidates a sweep pruned count as lost (L = inf)"
    if keep is not None:
        table = table[table["run"].isin(keep)].reset_index(drop=True)
        if len(table) == 0:
            raise UserError(f"{where} has no finished runs among the selected ones")
    if law.reads != "runs" and law.reads != "budgets":
        df = _curve_frame(table, evals, law, provenance, min_policy, bcrit, flops, where)
    else:
        df = table
        if law.reads == "budgets":  # the runs of one planned budget: C to 2 significant digits
            df = df.assign(budget=[float(f"{c:.2g}") for c in df["C"]])
        if law.trained_tokens:  # D = the tokens trained on (repeats included); data-constrained's U stays the
            df = df.assign(D=df["tokens"])  # subset's unique tokens
        if law.needs_eval_sets and not any(str(c).startswith("L:") for c in df.columns):
            raise UserError(f"{where} has no losses on extra eval sets for {law.name}; prepare the corpus with "
                            "--eval-set NAME=SOURCE (the stdlib source has one) and train on it")
    df.attrs["provenance"] = provenance
    return df


def _curve_frame(table, evals, law: Any, provenance: dict, min_policy: str, bcrit: dict | None, flops: str,
                 where: str):
    """The learning-curve rows of a curve law (noise-scale rows for bcrit, frontier points for log-c)."""
    from scalinglab.laws.framework.transforms import MIN_POLICIES, to_min

    df = curves_table(table, evals, flops, where)
    provenance["loss"] = "val loss at each eval point of the learning curves"
    cols = {c: df[c].to_numpy() for c in ("B", "L", "noise_scale")}
    if law.reads == "noise-scale":  # eq 1.4 from the measured gradient noise scale (the B_crit proxy)
        ns = df["noise_scale"].to_numpy(float)
        df = df[np.isfinite(ns) & (ns > 0)].assign(B=lambda d: d["noise_scale"]).reset_index(drop=True)
        if len(df) == 0:
            raise UserError(f"{where} has no gradient noise-scale measurements to fit {law.name} on")
    elif law.min_convert:
        kind = law.min_convert
        df[kind] = to_min(kind, df[kind].to_numpy(), cols["B"], cols["L"], min_policy, cols["noise_scale"], bcrit)
        provenance.update(min_policy=min_policy, min_policy_note=MIN_POLICIES[min_policy], min_converted=kind)
    if law.reads == "frontier-points":  # fitted on the frontier points themselves, not a curve law
        from scalinglab.laws.families.frontier import compute_frontier

        df = compute_frontier(df)
    return df


def fit_axis(fit: dict, curves, runs):
    """Report curve points (store evals with run_id, step, tokens, flops, val_loss, noise_scale) on the axes `fit`
    was fitted on: C under its FLOP convention (C_min where it converted C), S (S_min where it converted S), and
    `kept`: past its transient cut. Figures draw a fitted law over these, so line and points share one axis.
    Fits written before these choices were recorded used exact FLOPs, no conversion record and no cut."""
    import pandas as pd

    from scalinglab.laws.framework.curves import transient_mask
    from scalinglab.laws.framework.transforms import to_min

    r = runs.drop_duplicates("run_id").set_index("run_id")
    per_run = pd.DataFrame({"warmup": warmup_steps(r), "head": _head_params(r),
                            "run_noise": pd.to_numeric(r.get("noise_scale"), errors="coerce")}, index=r.index)
    j = per_run.reindex(curves["run_id"].to_numpy())
    tokens = pd.to_numeric(curves["tokens"], errors="coerce").to_numpy(float)
    C = _compute(curves, tokens, check_flops(fit.get("flops", "exact")), j["head"].to_numpy(float))
    S = pd.to_numeric(curves["step"], errors="coerce").to_numpy(float)
    L = pd.to_numeric(curves["val_loss"], errors="coerce").to_numpy(float)
    B = (pd.to_numeric(curves["batch_size"], errors="coerce") * pd.to_numeric(curves["n_ctx"], errors="coerce")
         ).to_numpy(float)
    point = (pd.to_numeric(curves["noise_scale"], errors="coerce").to_numpy(float) if "noise_scale" in curves
             else np.full(len(curves), np.nan))
    noise = np.where(np.isfinite(point), point, j["run_noise"].to_numpy(float))
    kind = fit.get("min_converted")
    if kind == "C":
        C = to_min("C", C, B, L, fit.get("min_policy", "noise-scale"), noise)
    if kind == "S":
        S = to_min("S", S, B, L, fit.get("min_policy", "noise-scale"), noise)
    t = fit.get("transient") or {}
    if t:
        kept, _ = transient_mask({"step": pd.to_numeric(curves["step"], errors="coerce").to_numpy(float),
                                  "D": tokens, "warmup": j["warmup"].to_numpy(float)},
                                 t.get("min_step"), t.get("min_tokens"))
    else:
        kept = np.ones(len(curves), dtype=bool)
    return pd.DataFrame({"C": C, "S": S, "kept": kept}, index=curves.index)
