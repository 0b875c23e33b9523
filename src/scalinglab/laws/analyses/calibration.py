"""Calibration of the fit intervals: draw synthetic studies with a known truth, fit each, count how often the 95%
interval of the key exponent covers the truth. `python -m scalinglab.laws.analyses.calibration` prints the table the README
shows (tests/test_laws_calibration.py checks the same property with fewer resamples).

Families (each a generator `study_<family>(rng) -> DataFrame` and its truth):

- kaplan-n: final losses of 8 model sizes (1e5-1e8), L = (N_c/N)^alpha_N (Table: 0.076, 8.8e13), 1% noise each.
- kaplan-ns: eq 1.6 learning curves, 6 sizes x 16 log-spaced steps (1e3-1e5), each curve scaled by one 1%
  run-level offset plus 0.3% point noise (Table 3 constants; the study of issue #14); resampled by run.
- chinchilla: a 5 x 5 (N, D) grid, L = E + A/N^alpha + B/D^beta (Hoffmann et al.'s constants), 1% noise.
- kaplan-c: the frontier of 8 learning curves in C, each tangent to L = (C_c/C)^alpha_C at its own compute and
  rising on both sides of it, with a 1% run-level offset and 0.3% point noise; the truth is the exponent the same
  fit gives on the noise-free curves (the estimand of a frontier fit), resampled by run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from scalinglab.laws.framework.constants import PAPER_LAWS, PF_DAY
from scalinglab.laws.framework.fit import fit_law


def study_kaplan_n(rng: np.random.Generator, noise: float = 0.01) -> pd.DataFrame:
    p = PAPER_LAWS["kaplan-n"]
    N = np.geomspace(1e5, 1e8, 8)
    return pd.DataFrame({"N": N, "L": (p["N_c"] / N) ** p["alpha_N"] * np.exp(noise * rng.standard_normal(8))})


def study_kaplan_ns(rng: np.random.Generator, run_offset: float = 0.01, noise: float = 0.003) -> pd.DataFrame:
    p = PAPER_LAWS["kaplan-ns"]
    rows = []
    for i, N in enumerate(np.geomspace(1e6, 1e9, 6)):
        S = np.geomspace(1e3, 1e5, 16)
        L = (p["N_c"] / N) ** p["alpha_N"] + (p["S_c"] / S) ** p["alpha_S"]
        L = L * np.exp(run_offset * rng.standard_normal() + noise * rng.standard_normal(16))
        rows.append(pd.DataFrame({"run": f"r{i}", "N": N, "S": S, "L": L}))
    return pd.concat(rows, ignore_index=True)


def study_chinchilla(rng: np.random.Generator, noise: float = 0.01) -> pd.DataFrame:
    p = PAPER_LAWS["chinchilla"]
    N, D = (a.ravel() for a in np.meshgrid(np.geomspace(1e7, 1e9, 5), np.geomspace(1e8, 1e11, 5)))
    L = p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]
    return pd.DataFrame({"N": N, "D": D, "L": L * np.exp(noise * rng.standard_normal(len(N)))})


FRONTIER_TRUTH = {"alpha_C": 0.057, "C_c": 1.6e7}  # PF-days (eq 3.3)


def study_frontier(rng: np.random.Generator | None, run_offset: float = 0.01, noise: float = 0.003) -> pd.DataFrame:
    """8 curves, curve i tangent to the power law at C_i and rising by exp(kappa·(ln C/C_i)²) around it."""
    p = FRONTIER_TRUTH
    centres = np.geomspace(1e16, 1e20, 8)  # FLOPs
    step = np.log(centres[1] / centres[0])
    rows = []
    for i, ci in enumerate(centres):
        C = np.exp(np.linspace(np.log(ci) - 1.5 * step, np.log(ci) + 1.5 * step, 16))
        L = (p["C_c"] / (C / PF_DAY)) ** p["alpha_C"] * np.exp(0.02 * (np.log(C / ci)) ** 2)
        if rng is not None:
            L = L * np.exp(run_offset * rng.standard_normal() + noise * rng.standard_normal(16))
        rows.append(pd.DataFrame({"run": f"r{i}", "C": C, "L": L}))
    return pd.concat(rows, ignore_index=True)


def _frontier_truth() -> float:
    return float(fit_law("kaplan-c", study_frontier(None)).params_["alpha_C"])


FAMILIES: dict[str, tuple[str, str, Callable[[np.random.Generator], pd.DataFrame], Callable[[], float]]] = {
    "kaplan-n": ("kaplan-n", "alpha_N", study_kaplan_n, lambda: PAPER_LAWS["kaplan-n"]["alpha_N"]),
    "kaplan-ns": ("kaplan-ns", "alpha_N", study_kaplan_ns, lambda: PAPER_LAWS["kaplan-ns"]["alpha_N"]),
    "chinchilla": ("chinchilla", "alpha", study_chinchilla, lambda: PAPER_LAWS["chinchilla"]["alpha"]),
    "frontier": ("kaplan-c", "alpha_C", study_frontier, _frontier_truth),
}


def coverage(family: str, studies: int = 100, bootstrap: int = 200, seed: int = 0,
             point_resampling: bool = False) -> dict[str, Any]:
    """Fit `studies` synthetic studies of a family; the fraction whose 95% interval of the key exponent covers
    the truth, with the median interval width. `point_resampling` drops the run column (the old behaviour)."""
    law, param, make, truth_of = FAMILIES[family]
    truth = truth_of()
    rng = np.random.default_rng(seed)
    hits, widths, conv = [], [], []
    t0 = time.perf_counter()
    for i in range(studies):
        df = make(rng)
        if point_resampling:
            df = df.drop(columns=["run"], errors="ignore")
        fitted = fit_law(law, df, bootstrap=bootstrap, seed=seed + i)
        lo, hi = fitted.ci95_.get(param, (np.nan, np.nan))
        hits.append(bool(lo <= truth <= hi))
        widths.append(hi - lo)
        conv.append(fitted.bootstrap_["converged_fraction"])
    return {"family": family, "law": law, "param": param, "truth": truth, "studies": studies,
            "bootstrap": bootstrap, "coverage": float(np.mean(hits)), "median_width": float(np.nanmedian(widths)),
            "min_converged_fraction": float(np.min(conv)), "resample": fitted.resample_,
            "seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", action="append", choices=list(FAMILIES), help="default: all")
    ap.add_argument("--studies", type=int, default=100)
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--point-resampling", action="store_true", help="drop the run column (resample points)")
    a = ap.parse_args(argv)
    print("family      law        param    truth    studies  B    coverage  median width  resample  s")
    for fam in a.family or list(FAMILIES):
        r = coverage(fam, a.studies, a.bootstrap, a.seed, a.point_resampling)
        print(f"{fam:<11} {r['law']:<10} {r['param']:<8} {r['truth']:<8.4g} {r['studies']:<8} {r['bootstrap']:<4} "
              f"{100 * r['coverage']:>6.1f}%   {r['median_width']:<12.4g}  {r['resample']:<8}  {r['seconds']:.0f}",
              flush=True)


if __name__ == "__main__":
    main()
