"""Measure forecast error and interval coverage: truncate finished runs at 10, 20, 33 and 50% of their steps,
forecast each final loss, and compare with the loss the run reached.

Data sets:
  --db STORE        runs trained here (e.g. the plan scripts/forecast_plan.toml), LR schedule from each config;
  --misfitting      the packaged misfitting_checkpoints table (Li et al. 2025): runs with >= 30 checkpoints. The
                    table has each run's peak LR and total steps but not the schedule's shape: the script assumes
                    open_lm's cosine decay to 0 with no warm-up.

Writes RESULTS.csv (one row per run, fraction and method: truth, forecast, raw 95% interval, error and the
ratio |truth - point| / half-width toward the truth) and prints the table of median |relative error| and
coverage per data set, method and fraction, raw and at the widening factors given by --widen.
With --figure PNG, draws error and coverage against the fraction seen.

  python scripts/forecast_calibration.py --db store.db --misfitting --out forecast_calibration.csv
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import pandas as pd

from scalinglab.errors import UserError
from scalinglab.laws.forecast import Forecaster, curves_from_frame, curves_from_store

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


def table(res: pd.DataFrame, widens: list[float]) -> pd.DataFrame:
    ok = res[res["forecast"].notna()] if "forecast" in res else res.iloc[:0]
    out = []
    for (ds, m, f), g in res.groupby(["dataset", "method", "fraction"]):
        k = ok[(ok.dataset == ds) & (ok.method == m) & (ok.fraction == f)]
        row = {"dataset": ds, "method": m, "fraction": f, "runs": len(g), "forecast": len(k),
               "median_err": k["abs_rel_err"].median(), "p90_err": k["abs_rel_err"].quantile(0.9)}
        for w in widens:
            row[f"coverage@{w:g}"] = float((k["ratio"] <= w).mean()) if len(k) else math.nan
        out.append(row)
    return pd.DataFrame(out)


def figure(tab: pd.DataFrame, widen: float, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.6))
    for (ds, m), g in tab.groupby(["dataset", "method"]):
        a.plot(100 * g["fraction"], 100 * g["median_err"], "o-", label=f"{ds}, {m}")
        b.plot(100 * g["fraction"], 100 * g[f"coverage@{widen:g}"], "o-", label=f"{ds}, {m}")
    a.set(xlabel="% of the run seen", ylabel="median |relative error| of final loss (%)", yscale="log")
    b.axhspan(85, 99, color="0.9")
    b.set(xlabel="% of the run seen", ylabel=f"coverage of the 95% interval (%), widen {widen:g}", ylim=(0, 102))
    a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", help="results store of finished runs")
    ap.add_argument("--misfitting", action="store_true", help="also the packaged misfitting checkpoints")
    ap.add_argument("--method", action="append", choices=["family", "schedule", "power"])
    ap.add_argument("--bootstrap", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--widen", type=float, action="append", help="widening factors to report coverage at")
    ap.add_argument("--out", default="forecast_calibration.csv")
    ap.add_argument("--figure")
    a = ap.parse_args(argv)
    methods = a.method or ["family", "schedule"]
    parts = []
    if a.db:
        parts.append(measure("store", curves_from_store(a.db), methods, a.bootstrap, a.seed))
    if a.misfitting:
        parts.append(measure("misfitting", misfitting_curves(), methods, a.bootstrap, a.seed))
    res = pd.concat(parts, ignore_index=True)
    res.to_csv(a.out, index=False)
    widens = sorted({1.0, *(a.widen or [])})
    tab = table(res, widens)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(tab.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    if a.figure:
        figure(tab, widens[-1], a.figure)


if __name__ == "__main__":
    main()
