"""Measure forecast error and interval coverage: truncate finished runs at 10, 20, 33 and 50% of their steps,
forecast each final loss, and compare with the loss the run reached.

Data sets:
  --db STORE        runs trained here (e.g. the plan scripts/forecast_plan.toml), LR schedule from each config;
  --misfitting      the packaged misfitting_checkpoints table (Li et al. 2025): runs with >= 30 checkpoints. The
                    table has each run's peak LR and total steps but not the schedule's shape: the script assumes
                    open_lm's cosine decay to 0 with no warm-up.

Writes RESULTS.csv (one row per run, fraction and method: truth, forecast, raw 95% bootstrap interval, error
and the ratio |truth - point| / raw half-width toward the truth; an interval widened by k covers the truth
exactly when ratio <= k) and prints the table of median |relative error| and coverage per data set, method and
fraction: raw (k = 1) and at the method's default widening (laws/analyses/forecast.py WIDEN); then, leaving one data set out
at a time, the widening the others choose (95th percentile of their ratios) and the coverage it gives on the one
left out, and the pooled choice rounded up to 0.5 (the defaults).
`--results A.csv B.csv` tabulates saved results instead of measuring. With --figure PNG, draws error and
coverage against the fraction seen.

  python scripts/forecast_calibration.py --db store.db --name store-600 --bootstrap 100 --out store-600.csv
  python scripts/forecast_calibration.py --misfitting --bootstrap 50 --out misfitting.csv
  python scripts/forecast_calibration.py --results store-600.csv misfitting.csv --figure forecast_calibration.png
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import pandas as pd

from scalinglab.errors import UserError
from scalinglab.laws.analyses.forecast import WIDEN, Forecaster, curves_from_frame, curves_from_store

FRACTIONS = (0.1, 0.2, 0.33, 0.5)


def misfitting_curves(min_points: int = 30) -> pd.DataFrame:
    """The misfitting checkpoints as curves with an assumed schedule (module doc)."""
    import scalinglab.datasets as datasets

    df = datasets.load("misfitting_checkpoints")
    df = df[df["portion_steps_elapsed"] <= 1.0]
    parts = []
    for (model, peak, sweep, total), g in df.groupby(["model", "peak_lr", "sweep", "total_steps"]):
        if len(g) < min_points:
            continue
        step = g["current_steps"].to_numpy(float)
        lr = peak * 0.5 * (1 + np.cos(np.pi * step / total))
        parts.append(pd.DataFrame({"run": f"{model}|{peak}|{sweep}|{total}", "step": step, "L": g["L"].to_numpy(),
                                   "lr": lr, "total_steps": int(total), "N": float(g["N"].iloc[0]), "done": True}))
    return pd.concat(parts, ignore_index=True)


def measure(name: str, df: pd.DataFrame, methods: list[str], bootstrap: int, seed: int) -> pd.DataFrame:
    curves = [c for c in curves_from_frame(df) if c.done]
    rows = []
    for method in methods:
        fc = Forecaster(method=method, bootstrap=bootstrap, widen=1.0, seed=seed)
        for frac in FRACTIONS:
            t0 = time.perf_counter()
            for c in curves:
                truth = float(c.L[np.isfinite(c.L)][-1])
                row = {"dataset": name, "method": method, "fraction": frac, "run": c.run, "N": c.N, "truth": truth}
                try:
                    f = fc.forecast(c, frac, family=curves)
                except UserError as e:
                    rows.append({**row, "skipped": str(e)})
                    continue
                p, lo, hi = f["L_final"], f["L_final_lo"], f["L_final_hi"]
                half = (p - lo) if truth < p else (hi - p)
                rows.append({**row, "forecast": p, "lo": lo, "hi": hi, "points": f["points_used"],
                             "abs_rel_err": abs(p / truth - 1), "ratio": abs(truth - p) / max(half, 1e-12)})
            print(f"  {name} {method} {frac:.2f}: {time.perf_counter() - t0:.0f} s", flush=True)
    return pd.DataFrame(rows)


def table(res: pd.DataFrame) -> pd.DataFrame:
    ok = res[res["forecast"].notna()] if "forecast" in res else res.iloc[:0]
    out = []
    for (ds, m, f), g in res.groupby(["dataset", "method", "fraction"]):
        k = ok[(ok.dataset == ds) & (ok.method == m) & (ok.fraction == f)]
        out.append({"dataset": ds, "method": m, "fraction": f, "runs": len(g), "forecast": len(k),
                    "median_err": k["abs_rel_err"].median(), "p90_err": k["abs_rel_err"].quantile(0.9),
                    "coverage_raw": _cover(k, 1.0), "widen": WIDEN[m], "coverage": _cover(k, WIDEN[m])})
    return pd.DataFrame(out)


def _cover(k: pd.DataFrame, widen: float) -> float:
    return float((k["ratio"] <= widen).mean()) if len(k) else math.nan


def transfer(res: pd.DataFrame) -> pd.DataFrame:
    """Leave one data set out: the widening the other data sets choose (95th percentile of their ratios) and the
    coverage it gives on the one left out; and the widening all of them choose together, rounded up to 0.5 (the
    rule the defaults in laws/analyses/forecast.py WIDEN follow)."""
    ok = res[res["forecast"].notna()]
    out = []
    for m, g in ok.groupby("method"):
        for ds in sorted(g["dataset"].unique()):
            others, left = g[g["dataset"] != ds], g[g["dataset"] == ds]
            k = float(np.percentile(others["ratio"], 95)) if len(others) else math.nan
            out.append({"method": m, "left_out": ds, "k95_of_others": k, "forecasts": len(left),
                        "coverage_on_left_out": float((left["ratio"] <= k).mean()) if len(others) else math.nan})
        pooled = float(np.percentile(g["ratio"], 95))
        out.append({"method": m, "left_out": "(none: all pooled)", "k95_of_others": pooled, "forecasts": len(g),
                    "coverage_on_left_out": math.nan, "rounded_up": math.ceil(2 * pooled) / 2})
    return pd.DataFrame(out)


def figure(tab: pd.DataFrame, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.6))
    for (ds, m), g in tab.groupby(["dataset", "method"]):
        a.plot(100 * g["fraction"], 100 * g["median_err"], "o-", label=f"{ds}, {m}")
        b.plot(100 * g["fraction"], 100 * g["coverage"], "o-", label=f"{ds}, {m}")
    a.set(xlabel="% of the run seen", ylabel="median |relative error| of final loss (%)", yscale="log")
    a.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    b.axhspan(85, 99, color="0.9")
    b.set(xlabel="% of the run seen", ylabel="coverage of the 95% interval (%)", ylim=(0, 102))
    a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", help="results store of finished runs")
    ap.add_argument("--name", default="store", help="the store's name in the table")
    ap.add_argument("--misfitting", action="store_true", help="also the packaged misfitting checkpoints")
    ap.add_argument("--method", action="append", choices=["family", "schedule", "power"])
    ap.add_argument("--bootstrap", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", nargs="+", help="tabulate these saved RESULTS.csv files instead of measuring")
    ap.add_argument("--out", default="forecast_calibration.csv")
    ap.add_argument("--figure")
    a = ap.parse_args(argv)
    methods = a.method or ["family", "schedule"]
    if a.results:
        res = pd.concat([pd.read_csv(p) for p in a.results], ignore_index=True)
    else:
        parts = []
        if a.db:
            parts.append(measure(a.name, curves_from_store(a.db), methods, a.bootstrap, a.seed))
        if a.misfitting:
            parts.append(measure("misfitting", misfitting_curves(), methods, a.bootstrap, a.seed))
        if not parts:
            ap.error("give --db STORE, --misfitting or --results CSV...")
        res = pd.concat(parts, ignore_index=True)
        res.to_csv(a.out, index=False)
    tab = table(res)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(tab.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
        print(transfer(res).to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    if a.figure:
        figure(tab, a.figure)


if __name__ == "__main__":
    main()
