"""The Law framework: a scikit-learn-style estimator for one scaling law, and the registry it fills.

A law is a formula for log(target) as a function of log(inputs), vectorised over a batch of parameter
vectors so that a whole grid of starts (or a thousand bootstrap problems) is evaluated in one numpy call:

    law = KaplanN(irreducible=False).fit(df)       # df has canonical columns N, L
    law.params_  -> {"alpha_N": ..., "N_c": ...}    law.ci95_, law.residual_rms_, law.converged_, law.objective_
    law.predict(N=[1e8, 1e9])                        -> predicted L
    Law.from_dict(law.to_dict())                     -> the same fitted law

Internally positive scale parameters (N_c, A, E, B_star, ...) live in log space and exponents in linear space
with bounds; `_logpred(theta, X)` returns log predictions and their analytic Jacobian in those coordinates.
A subclass registers itself when it is defined: `class KaplanN(PowerLaw, register={"kaplan-n": {}})`; the
numerics (Huber loss, grid of starts, L-BFGS, bootstrap) are in `laws/framework/optimiser.py`, which knows no law.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, ClassVar

import numpy as np

from scalinglab.errors import UserError
from scalinglab.io import json_safe
from scalinglab.laws.framework.columns import data_range, law_columns
from scalinglab.laws.framework.curves import is_curves, run_weights, transient_cut
from scalinglab.laws.framework.optimiser import bootstrap_fits, optimise, percentile_ci

EXP_BOUNDS = (1e-6, 10.0)  # exponents
LOG_BOUNDS = (-200.0, 200.0)  # log of a positive scale parameter

# how the rows were made, copied from the data (frame_from_store) into the fit JSON and back
PROVENANCE_KEYS = ("flops", "flops_note", "loss", "min_policy", "min_policy_note", "min_converted")
# name -> (class, constructor defaults); filled by Estimator.__init_subclass__ as the family modules are imported
_REGISTRY: dict[str, tuple[type[Estimator], dict[str, Any]]] = {}
INTERVALS = ("measurement", "mean")  # the two prediction bands (laws/analyses/prediction.py); "measurement" is the default


def make_law(name: str, **options: Any) -> Any:
    """A fresh (unfitted) law by registered name; options override the registered defaults."""
    if name not in _REGISTRY:
        raise UserError(f"unknown law {name!r}; known laws: {', '.join(_REGISTRY)}")
    cls, defaults = _REGISTRY[name]
    unknown = sorted(set(options) - set(cls._param_names()))
    if unknown:
        raise UserError(f"law {name} has no setting {unknown[0]!r}; its settings: {', '.join(cls._param_names())}")
    try:
        return cls(**{**defaults, **options})
    except TypeError as e:
        raise UserError(f"bad options for law {name}: {e}") from None


def law_class(name: str) -> type[Estimator]:
    """The class registered under `name` (what it reads and provides are class attributes)."""
    if name not in _REGISTRY:
        raise UserError(f"unknown law {name!r}; known laws: {', '.join(_REGISTRY)}")
    return _REGISTRY[name][0]


def registered_names() -> list[str]:
    return list(_REGISTRY)


def softmax_lse(*terms: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """log(sum(exp(terms))) and the softmax weight of each term (stable)."""
    m = terms[0]
    for t in terms[1:]:
        m = np.maximum(m, t)
    exps = [np.exp(t - m) for t in terms]
    tot = exps[0]
    for e in exps[1:]:
        tot = tot + e
    return m + np.log(tot), [e / tot for e in exps]


def log_of_linear(pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log of a prediction that is linear in its parameters, and d log/d pred = 1/pred; a non-positive
    prediction is clipped (log 1e-12) with zero gradient, so the optimiser backs off instead of failing."""
    ok = pred > 1e-12
    safe = np.where(ok, pred, 1e-12)
    return np.log(safe), np.where(ok, 1.0 / safe, 0.0)



def bootstrap_record(bootstrap: dict[str, Any], samples: np.ndarray | None) -> dict[str, Any]:
    """The fit JSON's "bootstrap" entry: its settings and, when given, the draws at 10 significant digits."""
    record = dict(bootstrap)
    if samples is not None:
        record["samples"] = [[float(f"{v:.10g}") for v in row] for row in samples]
    return record


class Estimator:
    """What every law shares with scikit-learn's estimators: settings are constructor parameters, stored unchanged
    (`get_params`/`set_params`, so `sklearn.base.clone` works); a subclass registers itself by name when defined:
    `class KaplanN(PowerLaw, register={"kaplan-n": {}, "kaplan-n-e": {"irreducible": True}})`.

    The class also declares what it needs and provides, so callers ask it instead of keeping lists of names:
    `reads` (what a store gives it, laws/framework/data.py `law_frame`), `families` (the runs a Study selects by default),
    and `provides` (what the planner and `predict` can take from it: "loss" of its inputs, "loss(C)", "loss(D)",
    "allocation", "bcrit", "lr", "batch", "unique-tokens")."""

    name: ClassVar[str] = "law"
    reads: ClassVar[str] = "runs"  # runs | curves | noise-scale | frontier-points | budgets
    min_convert: ClassVar[str | None] = None  # "C" or "S": converted to C_min / S_min at the critical batch
    trained_tokens: ClassVar[bool] = False  # D = tokens trained on (repeats included), not the unique tokens
    needs_eval_sets: ClassVar[bool] = False  # losses on extra eval sets (columns L:<name>)
    families: ClassVar[tuple[str, ...] | None] = ("main",)  # default selection of runs (None: every family)
    # pruned LR candidates (sweep/prune.py: stopped because their forecast lost) as rows with L = +inf; a law that
    # ranks the candidates of a size (lr-opt) needs them, every other law leaves them out
    reads_pruned: ClassVar[bool] = False
    provides: ClassVar[frozenset[str]] = frozenset({"loss"})
    plan_rank: ClassVar[int] = 0  # among fits that provide the same thing, the planner takes the lowest rank first

    def __init_subclass__(cls, register: dict[str, dict[str, Any]] | None = None, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        for name, defaults in (register or {}).items():
            if name in _REGISTRY:
                raise ValueError(f"law name {name!r} registered twice ({_REGISTRY[name][0].__name__}, {cls.__name__})")
            _REGISTRY[name] = (cls, dict(defaults))

    @classmethod
    def _param_names(cls) -> list[str]:
        """Constructor parameters of the class and of the bases its `**kw` passes on to."""
        names: list[str] = []
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            params = list(inspect.signature(init).parameters.values())[1:]
            names += [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in names]
            if not any(p.kind == p.VAR_KEYWORD for p in params):
                break
        return names

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Every setting, by constructor parameter name (scikit-learn's contract)."""
        return {p: getattr(self, p) for p in self._param_names()}

    def set_params(self, **params: Any) -> Estimator:
        """Change settings; an unknown name is a UserError naming the settings there are."""
        names = self._param_names()
        for k in params:
            if k not in names:
                raise UserError(f"{self.name} has no setting {k!r}; its settings: {', '.join(names)}")
        fresh = type(self)(**{**self.get_params(), **params})  # validated by the constructor
        self.__dict__.update({k: v for k, v in fresh.__dict__.items() if not k.endswith("_")})
        return self

    @property
    def law_name(self) -> str:
        """The same as `name` (the registry name of this law, e.g. kaplan-n-e); kept for older callers."""
        return self.name

    def summary(self) -> str:
        """The text `scalinglab fit` prints for this fit."""
        from scalinglab.laws.framework.summary import fit_summary

        return fit_summary(self.to_dict(include_samples=False))

    def to_dict(self, include_samples: bool = True) -> dict[str, Any]:
        raise NotImplementedError

    def _extra_dict(self) -> dict[str, Any]:
        return {}

    def _finish_dict(self, out: dict[str, Any], include_samples: bool) -> dict[str, Any]:
        """The keys every fit JSON ends with: the bootstrap record, the family's extras, the Study's selection."""
        if self.bootstrap_ is not None:
            out["bootstrap"] = bootstrap_record(self.bootstrap_, self.bootstrap_samples_ if include_samples else None)
        out.update(self._extra_dict())
        if getattr(self, "selection_", None) is not None:  # fitted by a Study: which runs it took
            out["selection"] = self.selection_
        return json_safe(out)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Any:
        """Rebuild any fitted law from its fit JSON (dispatches on d['law'])."""
        if not isinstance(d, dict) or "law" not in d or "params" not in d:
            raise UserError("not a fit: expected an object with 'law' and 'params'")
        return law_class(str(d["law"]))._from_dict(d)

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> Any:
        raise NotImplementedError


def check_interval(interval: str | None) -> str | None:
    if interval is not None and interval not in INTERVALS:
        raise UserError(f"interval must be None, 'measurement' or 'mean', got {interval!r}")
    return interval


class Law(Estimator):
    """Base class: subclasses set the class attributes and implement `_logpred` and `_grid`.

    Settings (constructor parameters of every law): huber_delta (δ of the Huber loss on log residuals), seed,
    bootstrap (resamples for 95% CIs), holdout (refit without the K largest-compute points), min_step /
    min_tokens (transient cut of learning-curve rows; None: the default policy), flops (FLOP convention of C read
    from a store: paper | exact | with-head), min_policy (B_crit for S_min / C_min: noise-scale | none)."""

    formula: ClassVar[str] = ""
    target: ClassVar[str] = "L"
    inputs: tuple[str, ...] = ()
    param_names: tuple[str, ...] = ()
    log_params: tuple[bool, ...] = ()  # True: internal coordinate is log(value)
    # Curve laws are fitted on points of learning curves when the rows have a repeated `run` column (see
    # laws/framework/curves.py): transient cut, whole-run bootstrap, and `_derive` (e.g. the frontier) inside each resample.
    curve_law: ClassVar[bool] = False
    min_runs: ClassVar[int] = 2
    def __init__(self, huber_delta: float = 1e-3, seed: int = 0, bootstrap: int = 0, holdout: int = 0,
                 min_step: float | None = None, min_tokens: float | None = None, flops: str = "paper",
                 min_policy: str = "noise-scale") -> None:
        self.huber_delta = huber_delta
        self.seed = seed
        self.bootstrap = bootstrap
        self.holdout = holdout
        self.min_step = min_step  # transient cut of curve rows (None: the default policy)
        self.min_tokens = min_tokens
        self.flops = flops
        self.min_policy = min_policy
        self._reset()

    def _check_settings(self) -> None:
        """The settings' values, checked when fitting (scikit-learn validates in fit, not in the constructor)."""
        from scalinglab.laws.framework.data import check_flops

        if not (isinstance(self.huber_delta, int | float) and self.huber_delta > 0 and np.isfinite(self.huber_delta)):
            raise UserError(f"huber delta must be a positive number, got {self.huber_delta}")
        for name, v in (("bootstrap", self.bootstrap), ("holdout", self.holdout)):
            if not (isinstance(v, int | np.integer) and v >= 0):
                raise UserError(f"{name} must be a whole number >= 0, got {v!r}")
        for name, v in (("--min-step", self.min_step), ("--min-tokens", self.min_tokens)):
            if v is not None and not (np.isfinite(v) and v >= 0):
                raise UserError(f"{name} must be a number >= 0, got {v}")
        check_flops(self.flops)
        if self.min_policy not in ("noise-scale", "none"):
            raise UserError(f"unknown min_policy {self.min_policy!r}; use noise-scale or none")

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
        self.resample_: str | None = None  # "point" or "run": the bootstrap's resampling unit
        self.transient_: dict | None = None  # what the transient cut of curve rows did
        self.provenance_: dict = {}  # how the rows were made (loss choice, S_min/C_min policy, FLOP convention)

    def get_options(self) -> dict[str, Any]:
        """Constructor options that change the law itself (saved in to_dict)."""
        return {}

    @property
    def n_params(self) -> int:
        return len(self.param_names)

    def fit(self, data: Any, bootstrap: int | None = None, holdout: int | None = None, seed: int | None = None) -> Law:
        """Fit to a DataFrame (or mapping) with the canonical columns in `required_columns()`: the point
        estimate, then `bootstrap` resamples (95% percentile CIs) and a hold-out of the `holdout` largest-compute
        points if asked. The arguments override the settings for this fit only; returns self."""
        self._check_settings()
        bootstrap = self.bootstrap if bootstrap is None else bootstrap
        holdout = self.holdout if holdout is None else holdout
        if bootstrap < 0 or holdout < 0:
            raise UserError("bootstrap and holdout must be >= 0")
        provenance = dict(getattr(data, "attrs", {}).get("provenance") or {})  # set by frame_from_store
        self._fit_columns(law_columns(self, data), int(bootstrap), int(holdout), self.seed if seed is None else seed)
        self.provenance_ = provenance
        return self

    def _unfitted_copy(self) -> Law:
        """A fresh law with the same settings (what `sklearn.base.clone` makes), without bootstrap or hold-out."""
        return type(self)(**{**self.get_params(), "bootstrap": 0, "holdout": 0})

    def _fit_columns(self, cols: dict[str, np.ndarray], bootstrap: int, holdout: int, seed: int) -> None:
        """Fit validated columns (laws with a derived stage, like bcrit-scan, override this)."""
        if self.curve_law and is_curves(cols):
            self._fit_curves(cols, bootstrap, holdout, seed)
            return
        theta = self._fit_arrays(cols)
        self.resample_ = "point"
        self._n_units = self.n_points_
        if bootstrap:
            samples, conv = bootstrap_fits(self, self._X, self._y, theta, bootstrap, seed)
            self._attach_bootstrap(samples, conv, seed)
        if holdout:
            self.holdout_ = self._holdout(cols, holdout)

    def _curve_rows(self, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Learning-curve points after the transient cut, checked to hold enough runs and points."""
        kept, info = transient_cut(cols, self.min_step, self.min_tokens)
        if info["n_after"] < self.n_params + 1:
            raise UserError(f"the transient cut ({info['policy']}) leaves {info['n_after']} of {info['n_before']} "
                            f"curve points; {self.law_name} needs at least {self.n_params + 1}")
        n_runs = len(np.unique(kept["run"]))
        if n_runs < self.min_runs:
            what = "after the transient cut " if info["n_after"] < info["n_before"] else ""
            raise UserError(f"{self.law_name} on learning curves needs at least {self.min_runs} runs; {what}the "
                            f"rows have {n_runs} (column run)")
        self._transient_info = info
        return kept

    def _derive(self, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The rows the formula is fitted on, from (cut) curve points; identity unless a law derives (frontier)."""
        return cols

    def _fit_curves(self, cols: dict[str, np.ndarray], bootstrap: int, holdout: int, seed: int) -> None:
        """Curve rows: cut the transient, derive, fit; the bootstrap resamples whole runs."""
        cols = self._curve_rows(cols)
        rows = self._derive(cols)
        theta = self._fit_arrays(rows)
        self.transient_ = self._transient_info
        self.resample_ = "run"
        self._n_units = len(np.unique(cols["run"]))
        if bootstrap:
            samples, conv = self._bootstrap_runs(cols, rows, theta, bootstrap, seed)
            self._attach_bootstrap(samples, conv, seed)
        if holdout:
            self.holdout_ = self._holdout(rows, holdout)

    def _bootstrap_runs(self, cols: dict[str, np.ndarray], rows: dict[str, np.ndarray], theta: np.ndarray,
                        k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Whole-run resamples of rows that are the curve points themselves (laws with `_derive` override)."""
        return bootstrap_fits(self, self._X, self._y, theta, k, seed, weights=run_weights(rows["run"], k, seed))

    def _fit_arrays(self, cols: dict[str, np.ndarray]) -> np.ndarray:
        """Point estimate on validated raw columns; sets the fitted attributes, returns internal theta."""
        X = self.features(cols)
        y = self.log_target(cols)
        n = len(y)
        if n < self.n_params + 1:
            raise UserError(f"{self.law_name} has {self.n_params} parameters and needs at least {self.n_params + 1} "
                            f"points; got {n}")
        theta, obj, ok = self._optimise(X, y)
        self._reset()
        self.params_ = dict(zip(self.param_names, map(float, self.params_from_theta(theta)), strict=True))
        f, _ = self._logpred(theta[None, :], X, grad=False)
        self.residual_rms_ = float(np.sqrt(np.mean((f[0] - y) ** 2)))
        self.objective_ = float(obj)
        self.converged_ = bool(ok)
        self.n_points_ = int(n)
        self.data_range_ = data_range(cols)  # how far a plan from this fit extrapolates (laws/analyses/reach.py)
        self.derived_ = self.derived(self.params_)
        self._X, self._y, self._theta = X, y, theta
        return theta

    def _optimise(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float, bool]:
        """The point fit in internal coordinates (grid of starts -> L-BFGS); laws with structure override it."""
        return optimise(self, X, y)

    def _attach_bootstrap(self, samples: np.ndarray, conv: np.ndarray, seed: int) -> None:
        """Percentile CIs of parameters and derived quantities from the converged bootstrap refits (K, p): a refit
        that stopped short says where the optimiser stalled, not what the resample measures."""
        conv = np.asarray(conv, bool) & np.isfinite(samples).all(axis=1)
        samples = samples[conv]
        self.bootstrap_samples_ = samples
        self.bootstrap_ = {"k": int(len(conv)), "seed": int(seed), "converged_fraction": float(np.mean(conv)),
                           "n_converged": int(conv.sum()), "resample": self.resample_, "n_units": int(self._n_units),
                           "ci": "95% percentile of the converged refits"}
        if len(samples) < 10:
            self.ci95_, self.derived_ci95_ = {}, {}
            return
        self.ci95_ = dict(zip(self.param_names, percentile_ci(samples), strict=True))
        if self.derived_:
            names = list(self.derived_)
            vals = np.array([[self.derived(dict(zip(self.param_names, row, strict=True)))[k] for k in names]
                             for row in samples])
            self.derived_ci95_ = dict(zip(names, percentile_ci(vals), strict=True))

    def _holdout(self, cols: dict[str, np.ndarray], k: int) -> dict[str, Any]:
        """Refit without the k largest-compute points; the relative error of their predictions."""
        n = len(next(iter(cols.values())))
        if k >= n - self.n_params:
            raise UserError(f"--holdout {k} leaves {n - k} points to fit {self.law_name} "
                            f"({self.n_params} parameters needs at least {self.n_params + 1})")
        order = np.argsort(self.compute_key(cols), kind="stable")
        test, train = order[n - k:], order[: n - k]
        sub = self._unfitted_copy()
        sub._fit_arrays({c: v[train] for c, v in cols.items()})
        pred = sub.predict(**{c: cols[c][test] for c in self.inputs})
        actual = cols[self.target][test]
        rel = (pred - actual) / actual
        return {
            "k": int(k),
            "params": dict(sub.params_ or {}),
            "points": [{**{c: float(cols[c][i]) for c in self.inputs}, self.target: float(a), "predicted": float(p),
                        "rel_error": float(e)} for i, a, p, e in zip(test, actual, pred, rel, strict=True)],
            "mean_abs_rel_error": float(np.mean(np.abs(rel))),
            "max_abs_rel_error": float(np.max(np.abs(rel))),
        }

    def _input_columns(self, X: Any, columns: dict[str, Any]) -> dict[str, Any]:
        """The inputs from a table X (DataFrame or mapping, the shape `fit` takes) or keyword columns."""
        if X is not None:
            columns = {**{c: X[c] for c in self.inputs if c in X}, **columns}
        missing = [c for c in self.inputs if c not in columns]
        if missing:
            raise UserError(f"{self.law_name}.predict needs {', '.join(self.inputs)}; missing {', '.join(missing)}")
        return columns

    def predict(self, X: Any = None, interval: str | None = None, seed: int = 0, **columns: Any) -> Any:
        """Predicted target (e.g. L) for a table X with the input columns, or keyword columns.

        predict(df) and predict(df, interval="measurement" | "mean") return a DataFrame on df's index with the
        target (and target_lo, target_hi: the 95% band, laws/analyses/prediction.py); predict(N=1e9, D=2e10) with no interval
        returns an array of the target."""
        check_interval(interval)
        if interval is not None or _is_frame(X):
            from scalinglab.laws.analyses.prediction import predict_frame

            return predict_frame(self, X if X is not None else columns, interval, seed)
        self._check_fitted()
        columns = self._input_columns(X, columns)
        arrays = np.broadcast_arrays(*[np.asarray(columns[c], dtype=float) for c in self.inputs])
        shape = arrays[0].shape
        X = self.features({c: a.ravel() for c, a in zip(self.inputs, arrays, strict=True)})
        f, _ = self._logpred(self.theta_from_params(self.params_)[None, :], X, grad=False)
        return np.exp(f[0]).reshape(shape)

    def predict_ci(self, X: Any = None, **columns: Any) -> np.ndarray:
        """95% percentile band of the prediction over the bootstrap fits: array (..., 2) of [low, high]."""
        self._check_fitted()
        if self.bootstrap_samples_ is None:
            raise UserError(f"{self.law_name} has no bootstrap fits; fit with bootstrap=K for prediction CIs")
        columns = self._input_columns(X, columns)
        arrays = np.broadcast_arrays(*[np.asarray(columns[c], dtype=float) for c in self.inputs])
        shape = arrays[0].shape
        X = self.features({c: a.ravel() for c, a in zip(self.inputs, arrays, strict=True)})
        thetas = np.array([self.theta_from_params(dict(zip(self.param_names, row, strict=True)))
                           for row in self.bootstrap_samples_])
        f, _ = self._logpred(thetas, X, grad=False)
        lo, hi = np.percentile(np.exp(f), [2.5, 97.5], axis=0)
        return np.stack([lo, hi], axis=-1).reshape(*shape, 2)

    predict_interval = predict_ci

    def required_columns(self) -> tuple[str, ...]:
        return (*self.inputs, self.target)

    def optional_columns(self) -> tuple[str, ...]:
        """Columns curve rows may carry beyond the required ones (step S and tokens D for the transient cut,
        warm-up steps, model size N of each run)."""
        return ("S", "step", "D", "warmup", "N") if self.curve_law else ()

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
            "resample": self.resample_,
            "transient": self.transient_,
            "data_range": getattr(self, "data_range_", None),
            **self.provenance_,
        }
        return self._finish_dict(out, include_samples)

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> Law:
        """Rebuild a fitted law from `to_dict()` output."""
        law = make_law(str(d["law"]), **dict(d.get("options") or {}))
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
        law.resample_ = d.get("resample")
        law.transient_ = d.get("transient")
        law.data_range_ = d.get("data_range")
        law.provenance_ = {k: d[k] for k in PROVENANCE_KEYS if k in d}
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


def _is_frame(X: Any) -> bool:
    return hasattr(X, "columns") and hasattr(X, "index")
