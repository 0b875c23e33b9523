"""Every law of the paper (plus Chinchilla) as a scikit-learn-style estimator.

A law is a formula for log(target) as a function of log(inputs), vectorised over a batch of parameter
vectors so that a whole grid of starts (or a thousand bootstrap problems) is evaluated in one numpy call:

    law = KaplanN(irreducible=False).fit(df)       # df has canonical columns N, L
    law.params_  -> {"alpha_N": ..., "N_c": ...}    law.ci95_, law.residual_rms_, law.converged_, law.objective_
    law.predict(N=[1e8, 1e9])                        -> predicted L
    Law.from_dict(law.to_dict())                     -> the same fitted law

Internally positive scale parameters (N_c, A, E, B_star, ...) live in log space and exponents in linear space
with bounds; `_logpred(theta, X)` returns log predictions and their analytic Jacobian in those coordinates.
Fitting itself (Huber loss, grid of starts, L-BFGS, bootstrap, hold-out) is in `laws/fit.py`.

Registry (`get_law(name)`): kaplan-n, kaplan-d, kaplan-c, kaplan-cmin (C in PF-days inside the law, FLOPs in the
data unless c_unit="pf-days"), each with an irreducible variant (kaplan-n-e: L = E + (N_c/N)^alpha_N, ...),
kaplan-nd (eq 1.5), kaplan-ns (eq 1.6), bcrit (eq 1.4), bcrit-scan (batch-size scans -> eq 1.4),
batch-tradeoff (S(B) = S_min·(1 + B_crit/B)), chinchilla, and logarithmic alternatives log-n, log-d, log-c
(L = a − b·ln X, Fig. 23) so a power law and a logarithm can be compared on the same points, and ood-offset /
ood-linear (loss on another distribution against the training loss, Figs. 8/24; laws/generalisation.py).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from scalinglab.errors import UserError
from scalinglab.io import json_safe

PF_DAY = 8.64e19  # FLOPs in one petaflop/s-day (same constant as model/counting.py)
EXP_BOUNDS = (1e-6, 10.0)  # exponents
LOG_BOUNDS = (-200.0, 200.0)  # log of a positive scale parameter
_TINY = 1e-300


def _softmax_lse(*terms: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """log(sum(exp(terms))) and the softmax weight of each term (stable)."""
    m = terms[0]
    for t in terms[1:]:
        m = np.maximum(m, t)
    exps = [np.exp(t - m) for t in terms]
    tot = exps[0]
    for e in exps[1:]:
        tot = tot + e
    return m + np.log(tot), [e / tot for e in exps]


class Law:
    """Base class: subclasses set the class attributes and implement `_logpred` and `_grid`."""

    name: ClassVar[str] = "law"
    formula: ClassVar[str] = ""
    target: ClassVar[str] = "L"
    inputs: tuple[str, ...] = ()
    param_names: tuple[str, ...] = ()
    log_params: tuple[bool, ...] = ()  # True: internal coordinate is log(value)

    def __init__(self, huber_delta: float = 1e-3, seed: int = 0) -> None:
        self.huber_delta = float(huber_delta)
        self.seed = int(seed)
        self._reset()

    # ---- scikit-learn style surface -------------------------------------------------------------------
    def _reset(self) -> None:
        self.params_: dict[str, float] | None = None
        self.ci95_: dict[str, list[float]] = {}
        self.residual_rms_: float | None = None
        self.converged_: bool | None = None
        self.objective_: float | None = None
        self.n_points_: int | None = None
        self.holdout_: dict | None = None
        self.derived_: dict[str, float] = {}
        self.derived_ci95_: dict[str, list[float]] = {}
        self.bootstrap_: dict | None = None
        self.bootstrap_samples_: np.ndarray | None = None

    def get_options(self) -> dict[str, Any]:
        """Constructor options that change the law itself (saved in to_dict)."""
        return {}

    @property
    def law_name(self) -> str:
        return self.name

    @property
    def n_params(self) -> int:
        return len(self.param_names)

    def fit(self, data: Any, bootstrap: int = 0, holdout: int = 0, seed: int | None = None) -> Law:
        """Fit to a DataFrame (or mapping) with the canonical columns in `required_columns()`."""
        from scalinglab.laws.fit import fit_into

        fit_into(self, data, bootstrap=bootstrap, holdout=holdout, seed=self.seed if seed is None else seed)
        return self

    def predict(self, **columns: Any) -> np.ndarray:
        """Predicted target (e.g. L) at the given raw input values, e.g. predict(N=1e9, D=2e10)."""
        self._check_fitted()
        missing = [c for c in self.inputs if c not in columns]
        if missing:
            raise UserError(f"{self.law_name}.predict needs {', '.join(self.inputs)}; missing {', '.join(missing)}")
        arrays = np.broadcast_arrays(*[np.asarray(columns[c], dtype=float) for c in self.inputs])
        shape = arrays[0].shape
        X = self.features({c: a.ravel() for c, a in zip(self.inputs, arrays, strict=True)})
        f, _ = self._logpred(self.theta_from_params(self.params_)[None, :], X, grad=False)
        return np.exp(f[0]).reshape(shape)

    def predict_ci(self, **columns: Any) -> np.ndarray:
        """95% percentile band of the prediction over the bootstrap fits: array (..., 2) of [low, high]."""
        self._check_fitted()
        if self.bootstrap_samples_ is None:
            raise UserError(f"{self.law_name} has no bootstrap fits; fit with bootstrap=K for prediction CIs")
        arrays = np.broadcast_arrays(*[np.asarray(columns[c], dtype=float) for c in self.inputs])
        shape = arrays[0].shape
        X = self.features({c: a.ravel() for c, a in zip(self.inputs, arrays, strict=True)})
        thetas = np.array([self.theta_from_params(dict(zip(self.param_names, row, strict=True)))
                           for row in self.bootstrap_samples_])
        f, _ = self._logpred(thetas, X, grad=False)
        lo, hi = np.percentile(np.exp(f), [2.5, 97.5], axis=0)
        return np.stack([lo, hi], axis=-1).reshape(*shape, 2)

    def required_columns(self) -> tuple[str, ...]:
        return (*self.inputs, self.target)

    def features(self, cols: dict[str, np.ndarray]) -> np.ndarray:
        """(n, d) matrix of log inputs the formula uses."""
        return np.column_stack([np.log(np.asarray(cols[c], dtype=float)) for c in self.inputs])

    def log_target(self, cols: dict[str, np.ndarray]) -> np.ndarray:
        return np.log(np.asarray(cols[self.target], dtype=float))

    def compute_key(self, cols: dict[str, np.ndarray]) -> np.ndarray:
        """What 'largest compute' means for --holdout: C if given, else 6·N·D, else the first input."""
        if "C" in cols:
            return np.asarray(cols["C"], float)
        if "N" in cols and "D" in cols:
            return 6.0 * np.asarray(cols["N"], float) * np.asarray(cols["D"], float)
        if "N" in cols and "S" in cols:
            return np.asarray(cols["N"], float) * np.asarray(cols["S"], float)
        return np.asarray(cols[self.inputs[0]], float)

    # ---- parameter coordinates -----------------------------------------------------------------------
    def bounds(self) -> np.ndarray:
        """(k, 2) bounds in internal coordinates."""
        return np.array([LOG_BOUNDS if lg else EXP_BOUNDS for lg in self.log_params], dtype=float)

    def theta_from_params(self, params: dict[str, float]) -> np.ndarray:
        return np.array([math.log(params[p]) if lg else float(params[p])
                         for p, lg in zip(self.param_names, self.log_params, strict=True)])

    def params_from_theta(self, theta: np.ndarray) -> np.ndarray:
        """Internal (..., k) -> natural parameter values (..., k)."""
        theta = np.asarray(theta, float)
        mask = np.array(self.log_params)
        return np.where(mask, np.exp(np.where(mask, theta, 0.0)), theta)

    def params_at_bounds(self, rtol: float = 1e-6) -> list[str]:
        """Parameters the fit left at an end of their search range: the data do not pin them down, so their
        value (and its CI) says where the search stopped, not what was measured."""
        if self.params_ is None:
            return []
        theta, b = self.theta_from_params(self.params_), self.bounds()
        tol = rtol * (b[:, 1] - b[:, 0])
        near = (theta - b[:, 0] <= tol) | (b[:, 1] - theta <= tol)
        return [p for p, n in zip(self.param_names, near, strict=True) if n]

    def derived(self, params: dict[str, float]) -> dict[str, float]:
        """Quantities computed from the parameters that deserve their own CI (e.g. the N_opt exponent)."""
        return {}

    # ---- subclass hooks ------------------------------------------------------------------------------
    def _logpred(self, theta: np.ndarray, X: np.ndarray, grad: bool = True) -> tuple[np.ndarray, list | None]:
        """theta (P, k), X (n, d) -> log prediction (P, n) and its Jacobian in internal coordinates, as a list
        of k arrays broadcastable to (P, n) (one per parameter; no (P, n, k) copy is built)."""
        raise NotImplementedError

    def _grid(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(G, k) starting points in internal coordinates, possibly anchored on the data."""
        raise NotImplementedError

    # ---- serialisation -------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if self.params_ is None:
            raise UserError(f"{self.law_name} is not fitted yet; call fit() first")

    def to_dict(self, include_samples: bool = True) -> dict[str, Any]:
        """JSON-ready description of the fitted law (what `scalinglab fit --json` writes)."""
        self._check_fitted()
        out: dict[str, Any] = {
            "law": self.law_name,
            "formula": self.formula,
            "inputs": list(self.inputs),
            "target": self.target,
            "options": self.get_options(),
            "params": dict(self.params_),
            "ci95": {k: list(v) for k, v in self.ci95_.items()},
            "n_points": self.n_points_,
            "residual_rms": self.residual_rms_,
            "residual_rms_note": "RMS of log(prediction) - log(observed)",
            "converged": self.converged_,
            "at_bounds": self.params_at_bounds(),
            "objective": self.objective_,
            "huber_delta": self.huber_delta,
            "holdout": self.holdout_,
            "derived": dict(self.derived_),
            "derived_ci95": {k: list(v) for k, v in self.derived_ci95_.items()},
        }
        if self.bootstrap_ is not None:
            boot = dict(self.bootstrap_)
            if include_samples and self.bootstrap_samples_ is not None:
                boot["samples"] = [[float(f"{v:.10g}") for v in row] for row in self.bootstrap_samples_]
            out["bootstrap"] = boot
        out.update(self._extra_dict())
        return json_safe(out)

    def _extra_dict(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Law:
        """Rebuild a fitted law from `to_dict()` output (any law: dispatches on d['law'])."""
        if not isinstance(d, dict) or "law" not in d or "params" not in d:
            raise UserError("not a fit: expected an object with 'law' and 'params'")
        law = get_law(str(d["law"]), **dict(d.get("options") or {}))
        law.huber_delta = float(d.get("huber_delta", law.huber_delta))
        params = d["params"]
        if not isinstance(params, dict) or set(params) != set(law.param_names):
            raise UserError(f"fit of {law.law_name} must have params {', '.join(law.param_names)}")
        try:
            law.params_ = {k: float(params[k]) for k in law.param_names}
        except (TypeError, ValueError):
            raise UserError(f"fit of {law.law_name} has non-numeric params") from None
        for k, v in law.params_.items():
            if not math.isfinite(v):
                raise UserError(f"fit of {law.law_name} has a non-finite parameter {k}")
        law.ci95_ = {k: list(v) for k, v in (d.get("ci95") or {}).items()}
        law.n_points_ = d.get("n_points")
        law.residual_rms_ = d.get("residual_rms")
        law.converged_ = d.get("converged")
        law.objective_ = d.get("objective")
        law.holdout_ = d.get("holdout")
        law.derived_ = dict(d.get("derived") or law.derived(law.params_))
        law.derived_ci95_ = {k: list(v) for k, v in (d.get("derived_ci95") or {}).items()}
        boot = d.get("bootstrap")
        if isinstance(boot, dict):
            law.bootstrap_ = {k: v for k, v in boot.items() if k != "samples"}
            samples = boot.get("samples")
            if samples:
                arr = np.asarray(samples, dtype=float)
                if arr.ndim == 2 and arr.shape[1] == law.n_params:
                    law.bootstrap_samples_ = arr
        law._load_extra(d)
        return law

    def _load_extra(self, d: dict[str, Any]) -> None:
        pass

    def __repr__(self) -> str:
        if self.params_ is None:
            return f"{type(self).__name__}({self.get_options()})"
        ps = ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items())
        return f"{type(self).__name__}<{self.law_name}>({ps})"


def _anchor_scale(x: np.ndarray, y: np.ndarray, alphas: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """For log y = alpha·(xc − x): the xc each alpha implies at the data median, plus offsets -> (A·O, 2)."""
    xc = np.median(x) + np.median(y) / alphas
    a = np.repeat(alphas, len(offsets))
    c = (xc[:, None] + offsets[None, :]).ravel()
    return np.column_stack([a, c])


# ---- one-variable power laws: L = (X_c/X)^alpha, optionally + E ------------------------------------------
class PowerLaw(Law):
    """L = (X_c/X)^alpha (eq 1.1–1.3, 3.3); with irreducible=True, L = E + (X_c/X)^alpha."""

    column = "N"
    exponent = "alpha_N"
    scale = "N_c"
    base_name = "kaplan-n"

    def __init__(self, irreducible: bool = False, **kw: Any) -> None:
        self.irreducible = bool(irreducible)
        x, e, s = self.column, self.exponent, self.scale
        self.inputs = (x,)
        if self.irreducible:
            self.param_names = ("E", e, s)
            self.log_params = (True, False, True)
        else:
            self.param_names = (e, s)
            self.log_params = (False, True)
        super().__init__(**kw)

    @property
    def law_name(self) -> str:
        return self.base_name + ("-e" if self.irreducible else "")

    @property
    def formula(self) -> str:  # type: ignore[override]
        core = f"({self.scale}/{self.column})^{self.exponent}"
        return f"L = E + {core}" if self.irreducible else f"L = {core}"

    def get_options(self) -> dict[str, Any]:
        return {"irreducible": self.irreducible}

    def _logpred(self, theta, X, grad=True):
        x = X[None, :, 0]
        if not self.irreducible:
            a, c = theta[:, 0:1], theta[:, 1:2]
            f = a * (c - x)
            if not grad:
                return f, None
            J = [np.broadcast_to(c - x, f.shape), np.broadcast_to(a, f.shape)]
            return f, J
        e, a, c = theta[:, 0:1], theta[:, 1:2], theta[:, 2:3]
        u = a * (c - x)
        f, (pe, pu) = _softmax_lse(np.broadcast_to(e, u.shape), u)
        if not grad:
            return f, None
        J = [pe, pu * (c - x), pu * a]
        return f, J

    def _grid(self, X, y):
        x = X[:, 0]
        alphas = np.array([0.01, 0.03, 0.06, 0.1, 0.2, 0.4, 0.8, 1.5])
        offsets = np.array([-3.0, -1.0, 0.0, 1.0, 3.0])
        if not self.irreducible:
            return _anchor_scale(x, y, alphas, offsets)
        rows = []
        lmin = float(np.exp(y.min()))
        for frac in (0.05, 0.3, 0.6, 0.8, 0.9, 0.97):
            E = frac * lmin
            resid = np.log(np.maximum(np.exp(y) - E, 1e-12))
            ac = _anchor_scale(x, resid, alphas, offsets)
            rows.append(np.column_stack([np.full(len(ac), math.log(E)), ac]))
        return np.vstack(rows)


class KaplanN(PowerLaw):
    """Eq 1.1: L(N) = (N_c/N)^alpha_N (paper: alpha_N = 0.076, N_c = 8.8e13)."""

    column, exponent, scale, base_name = "N", "alpha_N", "N_c", "kaplan-n"


class KaplanD(PowerLaw):
    """Eq 1.2: L(D) = (D_c/D)^alpha_D (paper: alpha_D = 0.095, D_c = 5.4e13 tokens)."""

    column, exponent, scale, base_name = "D", "alpha_D", "D_c", "kaplan-d"


class KaplanC(PowerLaw):
    """Eq 3.3: L(C) = (C_c/C)^alpha_C at fixed batch; C_c in PF-days (paper: 0.057, 1.6e7)."""

    column, exponent, scale, base_name = "C", "alpha_C", "C_c", "kaplan-c"

    def __init__(self, irreducible: bool = False, c_unit: str = "flops", **kw: Any) -> None:
        if c_unit not in ("flops", "pf-days"):
            raise UserError(f"unknown compute unit {c_unit!r}; use flops or pf-days")
        self.c_unit = c_unit
        super().__init__(irreducible=irreducible, **kw)

    def get_options(self) -> dict[str, Any]:
        return {"irreducible": self.irreducible, "c_unit": self.c_unit}

    def features(self, cols):
        c = np.asarray(cols["C"], dtype=float)
        return np.log(c / PF_DAY if self.c_unit == "flops" else c)[:, None]


class KaplanCmin(KaplanC):
    """Eq 1.3: L(C_min) = (C_c/C_min)^alpha_C with C_min = C/(1 + B/B_crit) (paper: 0.050, 3.1e8 PF-days)."""

    base_name = "kaplan-cmin"


def log_of_linear(pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log of a prediction that is linear in its parameters, and d log/d pred = 1/pred; a non-positive
    prediction is clipped (log 1e-12) with zero gradient, so the optimiser backs off instead of failing."""
    ok = pred > 1e-12
    safe = np.where(ok, pred, 1e-12)
    return np.log(safe), np.where(ok, 1.0 / safe, 0.0)


class LogLaw(Law):
    """Logarithmic alternative L = a − b·ln X (Kaplan Fig. 23 compares it with the power law)."""

    column = "N"

    def __init__(self, column: str = "N", **kw: Any) -> None:
        if column not in ("N", "D", "C", "S"):
            raise UserError(f"log law column must be N, D, C or S, not {column!r}")
        self.column = column
        self.inputs = (column,)
        self.param_names = ("a", "b")
        self.log_params = (False, False)
        super().__init__(**kw)

    @property
    def law_name(self) -> str:
        return f"log-{self.column.lower()}"

    @property
    def formula(self) -> str:  # type: ignore[override]
        return f"L = a - b*ln({self.column})"

    def get_options(self) -> dict[str, Any]:
        return {"column": self.column}

    def bounds(self):
        return np.array([[-1e4, 1e4], [-1e3, 1e3]])

    def _logpred(self, theta, X, grad=True):
        x = X[None, :, 0]
        f, inv = log_of_linear(theta[:, 0:1] - theta[:, 1:2] * x)
        return (f, [inv, -x * inv]) if grad else (f, None)

    def _grid(self, X, y):
        x = X[:, 0]
        slope, intercept = np.polyfit(x, np.exp(y), 1)
        b0, a0 = -slope, intercept
        rows = [[a0 * s, b0 * t] for s in (0.9, 1.0, 1.1) for t in (0.5, 1.0, 1.5)]
        return np.array(rows)


# ---- two-variable laws --------------------------------------------------------------------------------
class KaplanND(Law):
    """Eq 1.5: L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D (Table 2: 0.076, 0.103, 6.4e13, 1.8e13)."""

    name = "kaplan-nd"
    formula = "L = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D"
    inputs = ("N", "D")
    param_names = ("alpha_N", "alpha_D", "N_c", "D_c")
    log_params = (False, False, True, True)

    def _logpred(self, theta, X, grad=True):
        xN, xD = X[None, :, 0], X[None, :, 1]
        aN, aD, nc, dc = (theta[:, i:i + 1] for i in range(4))
        r = aN / aD
        u1 = r * (nc - xN)
        u2 = np.broadcast_to(dc - xD, u1.shape)
        s, (p1, p2) = _softmax_lse(u1, u2)
        f = aD * s
        if not grad:
            return f, None
        J = [p1 * (nc - xN), s - p1 * u1, p1 * aN, aD * p2]
        return f, J

    def _grid(self, X, y):
        xN, xD = X[:, 0], X[:, 1]
        rows = []
        for aN in (0.03, 0.07, 0.15, 0.3, 0.6):
            for aD in (0.03, 0.07, 0.15, 0.3, 0.6):
                for on in (-2.0, 0.0, 2.0):
                    for od in (-2.0, 0.0, 2.0):
                        nc = np.median(xN) + np.median(y) / aN + on
                        dc = np.median(xD) + np.median(y) / aD + od
                        rows.append([aN, aD, nc, dc])
        return np.array(rows)

    def derived(self, params):
        return {"data_exponent": params["alpha_N"] / params["alpha_D"]}


class KaplanNS(Law):
    """Eq 1.6: L(N, S_min) = (N_c/N)^alpha_N + (S_c/S_min)^alpha_S (Table 3: 0.077, 0.76, 6.5e13, 2.1e3)."""

    name = "kaplan-ns"
    formula = "L = (N_c/N)^alpha_N + (S_c/S)^alpha_S"
    inputs = ("N", "S")
    param_names = ("alpha_N", "alpha_S", "N_c", "S_c")
    log_params = (False, False, True, True)

    def _logpred(self, theta, X, grad=True):
        xN, xS = X[None, :, 0], X[None, :, 1]
        aN, aS, nc, sc = (theta[:, i:i + 1] for i in range(4))
        u1, u2 = aN * (nc - xN), aS * (sc - xS)
        f, (p1, p2) = _softmax_lse(u1, u2)
        if not grad:
            return f, None
        J = [p1 * (nc - xN), p2 * (sc - xS), p1 * aN, p2 * aS]
        return f, J

    def _grid(self, X, y):
        xN, xS = X[:, 0], X[:, 1]
        yh = np.median(y) - math.log(2.0)
        rows = []
        for aN in (0.03, 0.07, 0.15, 0.3, 0.6):
            for aS in (0.1, 0.3, 0.7, 1.5):
                for on in (-3.0, 0.0, 3.0):
                    for os_ in (-3.0, 0.0, 3.0):
                        rows.append([aN, aS, np.median(xN) + yh / aN + on, np.median(xS) + yh / aS + os_])
        return np.array(rows)


class Chinchilla(Law):
    """Hoffmann et al. 2022: L(N, D) = E + A/N^alpha + B/D^beta, fitted like their approach 3."""

    name = "chinchilla"
    formula = "L = E + A/N^alpha + B/D^beta"
    inputs = ("N", "D")
    param_names = ("E", "A", "B", "alpha", "beta")
    log_params = (True, True, True, False, False)

    def bounds(self):
        b = super().bounds()
        b[3] = b[4] = (0.0, 10.0)
        return b

    def _logpred(self, theta, X, grad=True):
        xN, xD = X[None, :, 0], X[None, :, 1]
        e, a, b, al, be = (theta[:, i:i + 1] for i in range(5))
        # two exps and one log per point (the terms stay far from overflow inside the bounds)
        T1 = np.exp(a - al * xN)
        T2 = np.exp(b - be * xD)
        E = np.exp(e)
        tot = T1 + T2 + E
        f = np.log(tot)
        if not grad:
            return f, None
        inv = 1.0 / tot
        p0, p1, p2 = E * inv, T1 * inv, T2 * inv
        J = [p0, p1, p2, -p1 * xN, -p2 * xD]
        return f, J

    def _grid(self, X, y):
        """Epoch AI's replication grid: alpha, beta in 0..2 by 0.5, log E in −1..1 by 0.5, log A, log B in 0..25 by 5."""
        ab = np.arange(0.0, 2.01, 0.5)
        es = np.arange(-1.0, 1.01, 0.5)
        lg = np.arange(0.0, 25.01, 5.0)
        E, A, B, al, be = np.meshgrid(es, lg, lg, ab, ab, indexing="ij")
        return np.column_stack([E.ravel(), A.ravel(), B.ravel(), al.ravel(), be.ravel()])

    def derived(self, params):
        al, be, A, B = params["alpha"], params["beta"], params["A"], params["B"]
        s = al + be
        if s <= 0 or al <= 0 or be <= 0:
            return {"a": float("nan"), "b": float("nan"), "G": float("nan")}
        return {"a": be / s, "b": al / s, "G": (al * A / (be * B)) ** (1.0 / s)}


# ---- batch size laws ----------------------------------------------------------------------------------
class Bcrit(Law):
    """Eq 1.4: B_crit(L) = B_star / L^(1/alpha_B), fitted on (L, B) points (paper: B* ≈ 2e8 tokens, 0.21)."""

    name = "bcrit"
    formula = "B = B_star / L^(1/alpha_B)"
    target = "B"
    inputs = ("L",)
    param_names = ("B_star", "alpha_B")
    log_params = (True, False)

    def bounds(self):
        b = super().bounds()
        b[1] = (1e-3, 10.0)
        return b

    def compute_key(self, cols):
        return 1.0 / np.asarray(cols["L"], float)  # lowest loss = most compute

    def _logpred(self, theta, X, grad=True):
        x = X[None, :, 0]
        bs, aB = theta[:, 0:1], theta[:, 1:2]
        f = bs - x / aB
        if not grad:
            return f, None
        J = [np.ones_like(f), np.broadcast_to(x / aB**2, f.shape)]
        return f, J

    def _grid(self, X, y):
        x = X[:, 0]
        rows = []
        for aB in (0.05, 0.1, 0.2, 0.35, 0.6, 1.0, 2.0):
            base = np.median(y + x / aB)
            rows += [[base + o, aB] for o in (-2.0, 0.0, 2.0)]
        return np.array(rows)


class BatchTradeoff(Law):
    """§5.1: S(B) = S_min·(1 + B_crit/B), i.e. (S/S_min − 1)(E/E_min − 1) = 1 with E = B·S, E_min = S_min·B_crit."""

    name = "batch-tradeoff"
    formula = "S = S_min*(1 + B_crit/B)"
    target = "S"
    inputs = ("B",)
    param_names = ("S_min", "B_crit")
    log_params = (True, True)

    def _logpred(self, theta, X, grad=True):
        x = X[None, :, 0]
        sm, bc = theta[:, 0:1], theta[:, 1:2]
        z = bc - x
        f = sm + np.logaddexp(0.0, z)
        if not grad:
            return f, None
        sig = 0.5 * (1.0 + np.tanh(0.5 * z))
        J = [np.ones_like(f), sig]
        return f, J

    def _grid(self, X, y):
        x = X[:, 0]
        rows = []
        for bc in np.linspace(x.min() - 3, x.max() + 3, 13):
            sm = np.median(y - np.logaddexp(0.0, bc - x))
            rows += [[sm + o, bc] for o in (-1.0, 0.0, 1.0)]
        return np.array(rows)

    def derived(self, params):
        return {"E_min": params["S_min"] * params["B_crit"]}


# ---- registry -----------------------------------------------------------------------------------------
_REGISTRY: dict[str, tuple[type[Law], dict[str, Any]]] = {
    "kaplan-n": (KaplanN, {}),
    "kaplan-d": (KaplanD, {}),
    "kaplan-c": (KaplanC, {}),
    "kaplan-cmin": (KaplanCmin, {}),
    "kaplan-n-e": (KaplanN, {"irreducible": True}),
    "kaplan-d-e": (KaplanD, {"irreducible": True}),
    "kaplan-c-e": (KaplanC, {"irreducible": True}),
    "kaplan-cmin-e": (KaplanCmin, {"irreducible": True}),
    "kaplan-nd": (KaplanND, {}),
    "kaplan-ns": (KaplanNS, {}),
    "bcrit": (Bcrit, {}),
    "batch-tradeoff": (BatchTradeoff, {}),
    "chinchilla": (Chinchilla, {}),
    "log-n": (LogLaw, {"column": "N"}),
    "log-d": (LogLaw, {"column": "D"}),
    "log-c": (LogLaw, {"column": "C"}),
    "log-s": (LogLaw, {"column": "S"}),
}


def _lazy_registry() -> dict[str, tuple[type[Law], dict[str, Any]]]:
    if "bcrit-scan" not in _REGISTRY:
        from scalinglab.laws.generalisation import OODOffset
        from scalinglab.laws.transforms import BcritScan

        _REGISTRY["bcrit-scan"] = (BcritScan, {})
        _REGISTRY["ood-offset"] = (OODOffset, {"free_slope": False})
        _REGISTRY["ood-linear"] = (OODOffset, {"free_slope": True})
    return _REGISTRY


def law_names() -> list[str]:
    return list(_lazy_registry())


def get_law(name: str, **options: Any) -> Law:
    """A fresh (unfitted) law by registry name; options override the registry's defaults."""
    reg = _lazy_registry()
    if name not in reg:
        raise UserError(f"unknown law {name!r}; known laws: {', '.join(reg)}")
    cls, defaults = reg[name]
    kw = {**defaults, **options}
    try:
        return cls(**kw)
    except TypeError as e:
        raise UserError(f"bad options for law {name}: {e}") from None
