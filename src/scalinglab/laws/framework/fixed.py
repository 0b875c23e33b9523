"""Hold some parameters of any law fixed (`fit --fix NAME=VALUE`); only the others are fitted and bootstrapped.

`Fixed(law, {"E": 1.69})` is itself a law whose parameters are the free ones: its objective is the base law's
with the fixed values inserted, its Jacobian the base law's free columns, so the grid, the L-BFGS refinement and the
bootstrap run unchanged. `expanded()` returns the base law with every parameter (the fixed ones at their values and
without CIs), which is what `to_dict`, `predict` and the planner use: a fit with fixed parameters reads back as an
ordinary fit of the base law, plus a `fixed` record.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

from scalinglab.errors import UserError
from scalinglab.laws.framework.base import Law


def parse_fix(specs: list[str] | None) -> dict[str, float]:
    """['E=1.69', 'alpha=0.34'] -> {'E': 1.69, 'alpha': 0.34} (a one-line UserError for anything else)."""
    out: dict[str, float] = {}
    for spec in specs or []:
        name, sep, value = (p.strip() for p in spec.partition("="))
        if not sep or not name:
            raise UserError(f"--fix must look like NAME=VALUE (e.g. E=1.69), got {spec!r}")
        try:
            v = float(value)
        except ValueError:
            raise UserError(f"--fix {spec!r}: {value!r} is not a number") from None
        if not math.isfinite(v):
            raise UserError(f"--fix {spec!r}: the value must be finite")
        out[name] = v
    return out


class Fixed(Law):
    """`law` with the parameters in `fixed` held at their values."""

    def __init__(self, law: Law, fixed: dict[str, float], huber_delta: float | None = None,
                 seed: int | None = None, **kw: Any) -> None:
        unknown = [k for k in fixed if k not in law.param_names]
        if unknown:
            raise UserError(f"--fix {unknown[0]}: law {law.law_name} has no parameter {unknown[0]!r}; its parameters: "
                            f"{', '.join(law.param_names)}")
        if type(law)._fit_columns is not Law._fit_columns:
            raise UserError(f"--fix is not available for {law.law_name} (it is fitted in stages)")
        self.free = [i for i, p in enumerate(law.param_names) if p not in fixed]
        if not self.free:
            raise UserError(f"--fix holds every parameter of {law.law_name}; nothing is left to fit")
        for k, v in fixed.items():
            if law.log_params[law.param_names.index(k)] and not v > 0:
                raise UserError(f"--fix {k}={v:g}: {k} must be positive")
        self.base = self.law = law
        self.fixed = {k: float(fixed[k]) for k in law.param_names if k in fixed}
        self.held = [i for i in range(law.n_params) if i not in self.free]
        self.held_theta = np.array([math.log(self.fixed[law.param_names[i]]) if law.log_params[i]
                                    else self.fixed[law.param_names[i]] for i in self.held])
        self.param_names = tuple(law.param_names[i] for i in self.free)
        self.log_params = tuple(law.log_params[i] for i in self.free)
        self.inputs = law.inputs
        self.target = law.target  # type: ignore[misc]
        settings = {k: v for k, v in law.get_params().items() if k in Law._param_names()}
        super().__init__(**{**settings, **kw, "huber_delta": law.huber_delta if huber_delta is None else huber_delta,
                            "seed": law.seed if seed is None else seed})

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.base.name

    @property
    def formula(self) -> str:  # type: ignore[override]
        return self.base.formula

    def get_options(self) -> dict[str, Any]:
        return {"law": self.base, "fixed": dict(self.fixed)}

    def required_columns(self):
        return self.base.required_columns()

    def features(self, cols):
        return self.base.features(cols)

    def log_target(self, cols):
        return self.base.log_target(cols)

    def compute_key(self, cols):
        return self.base.compute_key(cols)

    def bounds(self):
        return self.base.bounds()[self.free]

    def full_theta(self, theta: np.ndarray) -> np.ndarray:
        theta = np.atleast_2d(theta)
        full = np.empty((theta.shape[0], self.base.n_params))
        full[:, self.free] = theta
        full[:, self.held] = self.held_theta
        return full

    def _logpred(self, theta, X, grad=True):
        f, J = self.base._logpred(self.full_theta(theta), X, grad=grad)
        return (f, None) if not grad else (f, [J[i] for i in self.free])

    def _grid(self, X, y):
        return np.unique(self.base._grid(X, y)[:, self.free], axis=0)

    def derived(self, params):
        return self.base.derived({**params, **self.fixed})

    def expanded(self) -> Law:
        """The base law, fitted: every parameter (fixed ones at their values), bootstrap draws with full columns."""
        self._check_fitted()
        out = copy.copy(self.base)
        out._reset()
        out.huber_delta, out.seed = self.huber_delta, self.seed
        out.params_ = {p: (self.params_ or {}).get(p, self.fixed.get(p)) for p in self.base.param_names}
        for attr in ("ci95_", "residual_rms_", "converged_", "objective_", "n_points_", "derived_",
                     "derived_ci95_", "bootstrap_", "data_range_"):
            setattr(out, attr, copy.deepcopy(getattr(self, attr, None)))
        if self.holdout_:
            out.holdout_ = {**self.holdout_, "params": {**self.holdout_.get("params", {}), **self.fixed}}
        if self.bootstrap_samples_ is not None:
            full = np.empty((len(self.bootstrap_samples_), self.base.n_params))
            full[:, self.free] = self.bootstrap_samples_
            full[:, self.held] = [self.fixed[self.base.param_names[i]] for i in self.held]
            out.bootstrap_samples_ = full
        return out

    def to_dict(self, include_samples: bool = True) -> dict[str, Any]:
        return {**self.expanded().to_dict(include_samples), "fixed": dict(self.fixed)}


def with_fixed(law: Law, fixed: dict[str, float] | None) -> Law:
    """`law` itself when nothing is fixed, else the `Fixed` wrapper."""
    return Fixed(law, fixed) if fixed else law
