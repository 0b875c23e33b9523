"""scalinglab: the science of neural scaling laws, end to end (Kaplan et al., 2020).

`import scalinglab as sl` is cheap: the API names below are loaded on first use (module `__getattr__`).

    sl.fit_law(name, df)            fit a law (a scikit-learn style estimator: params_, ci95_, predict, summary)
    sl.get_law(name, **settings), sl.law_names()
    sl.predict(fit, N=..., D=...)   a Prediction (value, 95% measurement band when the fit has bootstrap draws)
    sl.forecast(db_or_curves)       a run's final loss from its partial learning curve, with a 95% interval
    sl.plan_allocation(C, fits=...) the compute-optimal allocation for a budget (paper=True: eq 1.7)
    sl.Study                        runs + curves from a store (from_db), an import (from_import) or frames
                                    (from_frame); select(family, **where), frame(law), fit(law)
    sl.run_training(corpus=..., n_layer=..., d_model=..., steps=..., out_dir=...)
    sl.prepare_corpus(source, out), sl.load_plan(path or dict), sl.Plan.from_dict(d), sl.run_sweep(plan, db)
    sl.build_report(study_or_db, out_dir), sl.load_model(run_dir)
    sl.import_runs(source, db), sl.read_runs(source), sl.datasets (packaged published tables)
    sl.TrainConfig, sl.ModelConfig, sl.UserError
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__: str

_LAZY: dict[str, tuple[str, str | None]] = {
    "fit_law": ("scalinglab.laws", "fit_law"),
    "get_law": ("scalinglab.laws", "get_law"),
    "law_names": ("scalinglab.laws", "law_names"),
    "Law": ("scalinglab.laws", "Law"),
    "plan_allocation": ("scalinglab.laws.analyses.planning", "plan_allocation"),
    "predict": ("scalinglab.api", "predict"),
    "forecast": ("scalinglab.api", "forecast"),
    "Prediction": ("scalinglab.api", "Prediction"),
    "Study": ("scalinglab.api", "Study"),
    "TrainResult": ("scalinglab.api", "TrainResult"),
    "run_training": ("scalinglab.api", "run_training"),
    "load_plan": ("scalinglab.api", "load_plan"),
    "run_sweep": ("scalinglab.api", "run_sweep"),
    "build_report": ("scalinglab.api", "build_report"),
    "load_model": ("scalinglab.api", "load_model"),
    "Plan": ("scalinglab.sweep.plan", "Plan"),
    "prepare_corpus": ("scalinglab.data.prepare", "prepare_corpus"),
    "import_runs": ("scalinglab.importers", "import_runs"),
    "read_runs": ("scalinglab.importers", "read_runs"),
    "datasets": ("scalinglab.datasets", None),
    "TrainConfig": ("scalinglab.config", "TrainConfig"),
    "ModelConfig": ("scalinglab.config", "ModelConfig"),
    "UserError": ("scalinglab.errors", "UserError"),
}

__all__ = ["__version__", *_LAZY]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("scalinglab")
    except PackageNotFoundError:  # running from a source tree without an install
        return "0.0.0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value: Any = _version()
    elif name in _LAZY:
        module, attr = _LAZY[name]
        value = import_module(module) if attr is None else getattr(import_module(module), attr)
    else:
        raise AttributeError(f"module 'scalinglab' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
