"""Compute-optimal allocation for a budget, and the L(C_min) vs L(D(C)) contradiction point (Kaplan §6).

`plan_allocation(compute_flops, paper=True)` uses the paper's eq 1.7 (C in PF-days): N_opt = 1.3e9·C^0.73,
B_crit = 2e6·C^0.24 tokens, S_min = 5.4e3·C^0.03, D = 2e10·C^0.27, L = (3.1e8/C)^0.050.

`plan_allocation(compute_flops, fits={...})` uses fitted laws (Law objects or their to_dict()):
- chinchilla: N_opt = G·(C/6)^(β/(α+β)), D_opt = G⁻¹·(C/6)^(α/(α+β)), L = E + A/N^α + B/D^β;
- kaplan-nd: N_opt minimises L(N, C/(6N)) numerically;
- otherwise kaplan-cmin / kaplan-c give L_pred only;
- bcrit / bcrit-scan give B_crit(L_pred) and S_min = C/(6·N_opt·B_crit) (C read as C_min);
- lr-opt gives the peak LR at N_opt; batch-opt-c the loss-optimal batch B_opt at C, else batch-opt B_opt at N_opt
  (B_opt is measured by batch-size scans at fixed tokens; Kaplan's B_crit is the steps/compute trade-off point, not a
  loss optimum: both are given when both fits are);
- with bootstrap samples in a fit, each output gets a 95% percentile interval;
- the contradiction point needs kaplan-cmin (or kaplan-c) and kaplan-d fits plus an allocation D(C).

`contradiction_point(L_of_C, L_of_D, D_of_C)` finds where L(C_min) falls below L(D(C)) (paper: C* ~ 1e4 PF-days,
N* ~ 1e12, D* ~ 1e12 tokens, L* ~ 1.7).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from scalinglab.errors import UserError
from scalinglab.laws.analyses.reach import extrapolation
from scalinglab.laws.families.allocation import _Allocation
from scalinglab.laws.framework.base import Estimator, Law
from scalinglab.laws.framework.constants import PAPER_PLAN, PF_DAY

PAPER = PAPER_PLAN  # the paper's eq 1.7 allocation and the laws it combines (laws/framework/constants.py)


def providers(laws: dict[str, Any], what: str) -> list[str]:
    """The fitted laws that provide `what` (a `provides` tag of their class), the planner's choice first."""
    from scalinglab.laws.framework.registry import law_names

    order = {n: i for i, n in enumerate(law_names())}
    names = [n for n, law in laws.items() if what in law.provides]
    return sorted(names, key=lambda n: (laws[n].plan_rank, order.get(n, len(order))))


def _first(laws: dict[str, Any], what: str) -> str | None:
    found = providers(laws, what)
    return found[0] if found else None


def _capable(what: str) -> list[str]:
    """Registered law names whose class provides `what` (for messages)."""
    from scalinglab.laws.framework.base import law_class
    from scalinglab.laws.framework.registry import law_names

    return [n for n in law_names() if what in law_class(n).provides]


def contradiction_point(L_of_C: Callable[[np.ndarray], np.ndarray], L_of_D: Callable[[np.ndarray], np.ndarray],
                        D_of_C: Callable[[np.ndarray], np.ndarray], lo_pf: float = 1e-8,
                        hi_pf: float = 1e14) -> dict[str, float] | None:
    """Smallest C (PF-days) where L(C_min) ≤ L(D(C)): the compute-efficient frontier would beat the data limit."""
    from scipy.optimize import brentq

    lc = np.linspace(math.log(lo_pf), math.log(hi_pf), 2000)
    C = np.exp(lc)
    with np.errstate(all="ignore"):
        gap = np.log(L_of_C(C)) - np.log(L_of_D(D_of_C(C)))
    ok = np.isfinite(gap)
    sign = np.flatnonzero(ok[:-1] & ok[1:] & (gap[:-1] > 0) & (gap[1:] <= 0))
    if sign.size == 0:
        return None
    i = sign[0]

    def g(x: float) -> float:
        c = np.array([math.exp(x)])
        return float((np.log(L_of_C(c)) - np.log(L_of_D(D_of_C(c))))[0])

    x = brentq(g, lc[i], lc[i + 1], xtol=1e-12)
    c = math.exp(x)
    return {"C_pf_days": c, "C_flops": c * PF_DAY, "D": float(D_of_C(np.array([c]))[0]),
            "L": float(L_of_C(np.array([c]))[0])}


def paper_contradiction() -> dict[str, float]:
    p = PAPER
    pt = contradiction_point(lambda C: (p["C_c_min"] / C) ** p["alpha_Cmin"],
                             lambda D: (p["D_c"] / D) ** p["alpha_D"],
                             lambda C: p["D_coef"] * C ** p["D_exp"])
    assert pt is not None
    pt["N"] = p["N_coef"] * pt["C_pf_days"] ** p["N_exp"]
    pt["source"] = "paper constants: eq 1.3 L(C_min), eq 1.2 L(D), eq 1.7 D(C), N_opt(C)"
    return pt


def _paper_plan(C_pf: float) -> dict[str, Any]:
    p = PAPER
    return {
        "N_opt": p["N_coef"] * C_pf ** p["N_exp"],
        "D": p["D_coef"] * C_pf ** p["D_exp"],
        "B_crit": p["B_coef"] * C_pf ** p["B_exp"],
        "S_min": p["S_coef"] * C_pf ** p["S_exp"],
        "L_pred": (p["C_c_min"] / C_pf) ** p["alpha_Cmin"],
        "sources": {"N_opt": "1.3e9*C^0.73", "D": "2e10*C^0.27", "B_crit": "2e6*C^0.24 tokens",
                    "S_min": "5.4e3*C^0.03", "L_pred": "(3.1e8/C_min)^0.050 (eq 1.3)"},
        "contradiction": paper_contradiction(),
    }


def _as_laws(fits: Any) -> dict[str, Law]:
    """Accept a Law, a fit dict, a list of either, or a dict keyed by law name (what reproduce writes)."""
    if isinstance(fits, Estimator):
        return {fits.law_name: fits}
    if isinstance(fits, (list, tuple)):
        out: dict[str, Law] = {}
        for f in fits:
            out.update(_as_laws(f))
        return out
    if isinstance(fits, dict):
        if "law" in fits and "params" in fits:
            law = Estimator.from_dict(fits)
            return {law.law_name: law}
        out = {}
        for v in fits.values():
            if isinstance(v, Estimator) or (isinstance(v, dict) and "law" in v and "params" in v):
                try:
                    out.update(_as_laws(v))
                except UserError:
                    continue
        return out
    raise UserError("not a fit: expected a fit object or an object of fits keyed by law name")


def _samples(law: Law) -> list[dict[str, float]]:
    if law.bootstrap_samples_ is None:
        return []
    return [dict(zip(law.param_names, map(float, row), strict=True)) for row in law.bootstrap_samples_]


def _alloc(law: Any, params: dict[str, float], C: float, U: float | None = None) -> tuple[float, float, float | None]:
    """(N_opt, D_opt, L) at C FLOPs for an allocation law's parameters (L is None for approaches 1 and 2);
    `U` caps the unique tokens (laws that provide "unique-tokens")."""
    if isinstance(law, _Allocation):
        N, D = _Allocation.allocate(params, np.array([C]))
        return float(N[0]), float(D[0]), None
    if "unique-tokens" in law.provides and U is not None:
        return _data_capped(params, C, U)
    if {"E", "A", "B", "alpha"} <= set(params):  # the Chinchilla form (unrepeated data for data-constrained)
        E, A, B, al = (params[k] for k in ("E", "A", "B", "alpha"))
        be = params.get("beta", al)
        G = (al * A / (be * B)) ** (1.0 / (al + be))
        N = G * (C / 6.0) ** (be / (al + be))
        D = (C / 6.0) ** (al / (al + be)) / G
        return N, D, E + A / N**al + B / D**be
    from scipy.optimize import minimize_scalar

    aN, aD, Nc, Dc = (params[k] for k in ("alpha_N", "alpha_D", "N_c", "D_c"))

    def loss(lnN: float) -> float:
        N = math.exp(lnN)
        return aD * math.log((Nc / N) ** (aN / aD) + Dc * 6.0 * N / C)

    res = minimize_scalar(loss, bounds=(0.0, math.log(C / 6.0)), method="bounded", options={"xatol": 1e-10})
    N = math.exp(res.x)
    return N, C / (6.0 * N), math.exp(res.fun)


def _data_capped(params: dict[str, float], C: float, U: float) -> tuple[float, float, float]:
    """Muennighoff et al.'s allocation under a cap of U unique tokens, solved: the N minimising
    L(N, D = C/(6N), U) of the data-constrained law (a log grid, then a bounded refinement)."""
    from scipy.optimize import minimize_scalar

    from scalinglab.laws.framework.registry import get_law

    law = get_law("data-constrained")
    law.params_ = dict(params)

    def loss(lnN: np.ndarray) -> np.ndarray:
        N = np.exp(lnN)
        return law.predict(N=N, D=C / (6.0 * N), U=np.full_like(N, U))

    grid = np.linspace(0.0, math.log(C / 6.0), 400)
    i = int(np.argmin(loss(grid)))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    res = minimize_scalar(lambda x: float(loss(np.array([x]))[0]), bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-10})
    N = math.exp(res.x)
    return N, C / (6.0 * N), float(res.fun)


def _loss_band(values: list[float], law: Any, interval: str) -> list[float] | None:
    """The 95% band of a predicted loss from its bootstrap draws: the law's own ("mean"), or where a new run
    should land ("measurement": each draw with the log-normal scatter of the fit's residual RMS, 20 per draw, as
    `predict` gives it, laws/analyses/prediction.py)."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x) and x > 0], float)
    rms = float(getattr(law, "residual_rms_", None) or 0.0)
    if interval == "measurement" and v.size and rms > 0:
        z = np.random.default_rng(0).standard_normal((v.size, 20)) * rms
        v = (v[:, None] * np.exp(z)).ravel()
    return _ci(list(v))


def _ci(values: list[float]) -> list[float] | None:
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], float)
    if v.size < 10:
        return None
    lo, hi = np.percentile(v, [2.5, 97.5])
    return [float(lo), float(hi)]


def _fit_plan(C: float, laws: dict[str, Law], unique_tokens: float | None = None,
              interval: str = "measurement") -> dict[str, Any]:
    out: dict[str, Any] = {"N_opt": None, "D": None, "B_crit": None, "S_min": None, "L_pred": None,
                           "ci95": {}, "sources": {}, "band": {"L_pred": interval}}
    alloc = _first(laws, "allocation")
    loss_law = _first(laws, "loss(C)")
    bc_law = _first(laws, "bcrit")
    if unique_tokens is not None:
        alloc = _first(laws, "unique-tokens")
        if alloc is None:
            raise UserError(f"--unique-tokens needs a fit of a law with unique tokens U "
                            f"({', '.join(_capable('unique-tokens'))}); the fit has: {', '.join(laws) or 'none'}")
    if alloc is None and loss_law is None:
        raise UserError("the fit has no law the planner can use (needs an allocation or a loss of C: "
                        f"{', '.join(_capable('allocation') + _capable('loss(C)'))}); found: "
                        f"{', '.join(laws) or 'none'}")
    samples_N: list[float] = []
    if alloc is not None:
        samples_N = _plan_allocation(out, alloc, laws[alloc], C, unique_tokens, interval)
    if out["L_pred"] is None and loss_law is not None:
        _plan_loss(out, loss_law, laws[loss_law], C, interval)
    if bc_law is not None and out["L_pred"] is not None:
        p = laws[bc_law].params_ or {}
        bcrit = p["B_star"] / out["L_pred"] ** (1.0 / p["alpha_B"])
        out["B_crit"] = bcrit
        out["sources"]["B_crit"] = bc_law
        bc_samples = [q["B_star"] / out["L_pred"] ** (1.0 / q["alpha_B"]) for q in _samples(laws[bc_law])]
        if bc_samples:
            out["ci95"]["B_crit"] = _ci(bc_samples)
        if out["N_opt"] is not None:
            out["S_min"] = C / (6.0 * out["N_opt"] * bcrit)
            out["sources"]["S_min"] = "C/(6*N_opt*B_crit), C read as C_min"
            if bc_samples and samples_N:
                m = min(len(bc_samples), len(samples_N))
                out["ci95"]["S_min"] = _ci([C / (6.0 * n * b) for n, b in zip(samples_N[:m], bc_samples[:m],
                                                                              strict=True)])
    lr_law = _first(laws, "lr")
    if lr_law is not None and out["N_opt"] is not None:
        _suggest(out, "LR", laws[lr_law], "N", out["N_opt"], samples_N, f"{lr_law} at N_opt")
    batch = providers(laws, "batch")
    over_c = [n for n in batch if laws[n].inputs == ("C",)]
    if over_c:  # the budget itself: no N_opt needed
        _suggest(out, "B_opt", laws[over_c[0]], "C", C, [], f"{over_c[0]} at C")
    elif batch and out["N_opt"] is not None:
        _suggest(out, "B_opt", laws[batch[0]], "N", out["N_opt"], samples_N, f"{batch[0]} at N_opt")
    out["contradiction"] = _fit_contradiction(laws, alloc)
    used = laws[alloc or loss_law]
    out["flops"] = getattr(used, "provenance_", {}).get("flops", "as in the fit's data")  # the C convention the answer is in
    return out


def _suggest(out: dict[str, Any], key: str, law: Any, column: str, x: float, x_draws: list[float],
             source: str) -> None:
    """What a one-input law (lr-opt: the peak LR, batch-opt: the batch) suggests at the plan's x (N_opt or C); its
    CI pairs the law's bootstrap draws with the draws of x (N_opt's, when the allocation has them)."""
    out[key] = float(law.predict(**{column: np.array([x])})[0])
    out["sources"][key] = source
    draws = _samples(law)
    if draws:
        xs = x_draws[: len(draws)] if x_draws else [x] * len(draws)
        out["ci95"][key] = _ci([_with_params(law, q).predict(**{column: np.array([v])})[0]
                                for q, v in zip(draws, xs, strict=False)])


def _with_params(law: Any, params: dict[str, float]) -> Any:
    """A copy of a fitted law with other parameter values (one bootstrap draw)."""
    copy = type(law)(**law.get_options())
    copy.params_ = params
    return copy


def _plan_allocation(out: dict[str, Any], name: str, law: Any, C: float, U: float | None,
                     interval: str = "measurement") -> list[float]:
    """N_opt, D (and L when the law predicts it) with bootstrap CIs into `out`; returns the N_opt draws."""
    N, D, L = _alloc(law, law.params_ or {}, C, U)
    out.update(N_opt=N, D=D)
    out["sources"].update(N_opt=name, D=name)
    boot = [_alloc(law, s, C, U) for s in _samples(law)]
    samples_N = [b[0] for b in boot]
    if boot:
        out["ci95"].update(N_opt=_ci(samples_N), D=_ci([b[1] for b in boot]))
    if L is not None:
        out["L_pred"] = L
        out["sources"]["L_pred"] = name
        if boot:
            out["ci95"]["L_pred"] = _loss_band([b[2] for b in boot], law, interval)
    if isinstance(law, _Allocation):
        out["exponents"] = {"a": law.params_["a"], "b": law.params_["b"]}
        out["ci95"].update({f"exponent_{k}": law.ci95_[k] for k in ("a", "b") if k in law.ci95_})
    elif "a" in (law.derived_ or {}):
        out["exponents"] = {"a": (law.derived_ or {}).get("a"), "b": (law.derived_ or {}).get("b")}
    if U is not None:
        out.update(unique_tokens=float(U), epochs=D / float(U))
    return samples_N


def _plan_loss(out: dict[str, Any], name: str, law: Any, C: float, interval: str = "measurement") -> None:
    """L_pred (and its CI) from a loss-of-compute law."""
    kw = {"C": np.array([C if getattr(law, "c_unit", "flops") == "flops" else C / PF_DAY])}
    out["L_pred"] = float(law.predict(**kw)[0])
    out["sources"]["L_pred"] = name
    boot = [float(_with_params(law, s).predict(**kw)[0]) for s in _samples(law)]
    if boot:
        out["ci95"]["L_pred"] = _loss_band(boot, law, interval)


def _fit_contradiction(laws: dict[str, Law], alloc: str | None) -> dict[str, Any]:
    lc = _first(laws, "loss(C)")
    ld = _first(laws, "loss(D)")
    if lc is None and ld is None and alloc is not None and {"E", "B", "alpha"} <= set(laws[alloc].param_names):
        return {"available": False,
                "reason": "under the chinchilla form L(N_opt, D_opt) > E + B/D_opt^beta = L(D) at every C, so the "
                          "two never cross; fit kaplan-cmin and kaplan-d to locate the contradiction point"}
    if lc is None or ld is None or alloc is None:
        return {"available": False,
                "reason": "needs kaplan-cmin (or kaplan-c), kaplan-d and an allocation law (chinchilla or kaplan-nd)"}
    lcl, ldl, al = laws[lc], laws[ld], laws[alloc]
    pf = getattr(lcl, "c_unit", "flops") == "pf-days"

    def L_of_C(c: np.ndarray) -> np.ndarray:
        return lcl.predict(C=c if pf else c * PF_DAY)

    def D_of_C(c: np.ndarray) -> np.ndarray:
        return np.array([_alloc(al, al.params_ or {}, float(x) * PF_DAY)[1] for x in c])

    pt = contradiction_point(L_of_C, lambda d: ldl.predict(D=d), D_of_C, lo_pf=1e-10, hi_pf=1e12)
    if pt is None:
        return {"available": False, "reason": "L(C_min) stays above L(D(C)) for all C in 1e-10..1e12 PF-days"}
    pt["N"] = _alloc(al, al.params_ or {}, pt["C_flops"])[0]
    pt["available"] = True
    pt["source"] = f"{lc}, {ld}, D(C) from {alloc}"
    return pt


def plan_allocation(compute_flops: float, fits: Any = None, paper: bool = False,
                    unique_tokens: float | None = None, interval: str = "measurement") -> dict[str, Any]:
    """The plan for a budget of `compute_flops` FLOPs (see module doc); exactly one of fits / paper.

    `interval` is the band of L_pred, as `predict` gives it: "measurement" (default: where a run trained at the
    plan should land) or "mean" (the law's own band); `band` in the answer says which. The bands of N_opt, D,
    B_crit, S_min are those of the fitted laws (their bootstrap draws)."""
    from scalinglab.laws.framework.base import check_interval

    if interval is None or check_interval(interval) is None:
        raise UserError("the plan's interval must be 'measurement' or 'mean'")
    if not (isinstance(compute_flops, (int, float)) and math.isfinite(compute_flops) and compute_flops > 0):
        raise UserError(f"compute must be a positive finite number, got {compute_flops}")
    if paper == (fits is not None):
        raise UserError("give exactly one of paper=True (--paper) or fits (--fit FIT.json)")
    C_pf = compute_flops / PF_DAY
    if unique_tokens is not None and not (math.isfinite(unique_tokens) and unique_tokens > 0):
        raise UserError(f"unique tokens must be a positive number, got {unique_tokens}")
    if unique_tokens is not None and paper:
        raise UserError("--unique-tokens needs --fit of a data-constrained law, not --paper")
    laws = None if paper else _as_laws(fits)
    body = _paper_plan(C_pf) if paper else _fit_plan(compute_flops, laws, unique_tokens, interval)
    out = {"compute_flops": float(compute_flops), "compute_pf_days": C_pf, "mode": "paper" if paper else "fit", **body}
    if laws is not None:  # how far beyond the fits' data this answer reaches (laws/analyses/reach.py)
        out["extrapolation"] = extrapolation(out, laws)
    return out
