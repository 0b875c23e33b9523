"""Predictions with 95% intervals from a saved fit (what `scalinglab predict` prints).

For a point law (chinchilla, kaplan-*, data-constrained, ...) the interval comes from the fit's bootstrap draws of
the parameters. Two intervals answer two questions:

- `measurement` (default): where a new measurement at these inputs should fall: each bootstrap draw of the law plus
  a log-normal scatter with the fit's residual RMS (log L), 20 scatter draws per bootstrap draw;
- `mean`: where the law itself lies (the bootstrap draws only); narrower, and it does not contain the scatter of
  single runs.

For an isoflop/frontier fit the inputs are compute budgets C and the outputs N_opt and D_opt with the bootstrap
band of each. A fit without bootstrap draws gives the point prediction and says so (`interval: null`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scalinglab.errors import UserError
from scalinglab.laws.framework.base import INTERVALS, check_interval

DEFAULT_INTERVAL = "measurement"  # the band `scalinglab predict`, `sl.predict` and `plan` give unless asked


def load_fit(d: Any):
    """A fitted law (any, approaches 1 and 2 included) from a fit JSON object."""
    from scalinglab.laws.framework.base import Estimator

    if not isinstance(d, dict) or "law" not in d:
        raise UserError("not a fit: expected a JSON object with 'law' and 'params' (from `scalinglab fit --json`)")
    return Estimator.from_dict(d)


def _inputs(law: Any, rows: Any) -> dict[str, np.ndarray]:
    import pandas as pd

    df = pd.DataFrame(rows)
    missing = [c for c in law.inputs if c not in df.columns]
    if missing:
        raise UserError(f"{law.law_name} predicts from {', '.join(law.inputs)}; missing {', '.join(missing)} "
                        f"(give --{missing[0]} VALUE or a column {missing[0]})")
    cols = {}
    for c in law.inputs:
        v = pd.to_numeric(df[c], errors="coerce").to_numpy(float)
        if not (np.isfinite(v).all() and (v > 0).all()):
            raise UserError(f"input {c} must be positive numbers")
        cols[c] = v
    return cols


def _has_draws(law: Any) -> bool:
    return law.bootstrap_samples_ is not None and len(law.bootstrap_samples_) >= 10


def predict_table(fit: Any, rows: Any, interval: str = DEFAULT_INTERVAL, seed: int = 0) -> dict[str, Any]:
    """{"law", "interval", "band", "predictions": [{inputs..., target, target_lo, target_hi}]} for the rows of a
    table; "band" names the interval (measurement | mean; null without bootstrap draws), "interval" describes it."""
    if interval not in INTERVALS:
        raise UserError(f"--interval must be measurement or mean, got {interval!r}")
    law = load_fit(fit) if isinstance(fit, dict) else fit
    law._check_fitted()
    cols = _inputs(law, rows)
    has_draws = _has_draws(law)
    if "allocation" in law.provides and law.target != "L":
        out = _allocation_rows(law, cols, has_draws)
        note = "95% bootstrap percentile band of N_opt and D_opt" if has_draws else None
        band = "mean" if has_draws else None
    else:
        out = _law_rows(law, cols, interval if has_draws else None, seed)
        note = _note(interval, law) if has_draws else None
        band = interval if has_draws else None
    result: dict[str, Any] = {"law": law.law_name, "target": law.target, "band": band, "interval": note,
                              "predictions": out}
    if not has_draws:
        result["warning"] = (f"the {law.law_name} fit has no bootstrap draws, so there are no intervals; refit with "
                             "--bootstrap K (and keep the draws in the fit JSON) for 95% intervals")
    return result


def predict_frame(law: Any, X: Any, interval: str | None = None, seed: int = 0):
    """`law.predict(X, interval=...)`: a DataFrame on X's index with the target(s) and, with an interval, the
    95% band (columns <target>_lo, <target>_hi); an interval without bootstrap draws is a UserError."""
    import pandas as pd

    check_interval(interval)
    law._check_fitted()
    cols = _inputs(law, X)
    index = X.index if hasattr(X, "index") and hasattr(X, "columns") else None
    if interval is not None and not _has_draws(law):
        raise UserError(f"the {law.law_name} fit has no bootstrap draws for a 95% band; fit with bootstrap=K "
                        "(or predict with interval=None)")
    if "allocation" in law.provides and law.target != "L":
        rows = _allocation_rows(law, cols, interval is not None)
    else:
        rows = _law_rows(law, cols, interval, seed)
    out = pd.DataFrame(rows, index=index)
    out.attrs["band"] = interval
    return out


def _note(interval: str, law: Any) -> str:
    if interval == "mean":
        return "95% percentile band of the law over the bootstrap draws (the law itself, not a new measurement)"
    return (f"95% interval for a new measurement: bootstrap draws of the law with log-normal scatter of the fit's "
            f"residual RMS ({law.residual_rms_:.3g} in log L)")


def _law_rows(law: Any, cols: dict[str, np.ndarray], interval: str | None, seed: int) -> list[dict[str, Any]]:
    t = law.target
    point = law.predict(**cols)
    rows = [{**{c: float(cols[c][i]) for c in law.inputs}, t: float(point[i])} for i in range(len(point))]
    if interval is None:
        return rows
    X = law.features(cols)
    thetas = np.array([law.theta_from_params(dict(zip(law.param_names, r, strict=True)))
                       for r in law.bootstrap_samples_])
    f, _ = law._logpred(thetas, X, grad=False)
    f = f[np.isfinite(f).all(axis=1)]
    if interval == "measurement":
        rms = float(law.residual_rms_ or 0.0)
        z = np.random.default_rng(seed).standard_normal((len(f), 20, 1)) * rms
        f = (f[:, None, :] + z).reshape(-1, f.shape[1])
    lo, hi = np.percentile(np.exp(f), [2.5, 97.5], axis=0)
    for r, a, b in zip(rows, lo, hi, strict=True):
        r[f"{t}_lo"], r[f"{t}_hi"] = float(a), float(b)
    return rows


def _allocation_rows(est: Any, cols: dict[str, np.ndarray], has_draws: bool) -> list[dict[str, Any]]:
    p = est.predict(C=cols["C"])
    band = est.predict_interval(C=cols["C"]) if has_draws else None
    rows = []
    for i in range(len(p)):
        r = {"C": float(p["C"].iloc[i]), "N_opt": float(p["N_opt"].iloc[i]), "D_opt": float(p["D_opt"].iloc[i])}
        if band is not None:
            r.update({k: float(band[k].iloc[i]) for k in ("N_opt_lo", "N_opt_hi", "D_opt_lo", "D_opt_hi")})
        rows.append(r)
    return rows
