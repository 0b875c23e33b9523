"""The notebook-friendly surface behind `import scalinglab as sl` (each name is loaded on first use).

Thin, typed wrappers over the library, so a notebook can go fit -> predict -> plan on a DataFrame, train a
run, sweep a plan, import foreign runs and draw a report without the CLI. Nothing here changes process
state: figures are drawn on matplotlib Figure objects (the backend is never switched), and training leaves
threads and TF32 flags as it found them (the trainer's runtime session restores them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from scalinglab.errors import UserError
from scalinglab.study import Study

if TYPE_CHECKING:
    import numpy as np

    from scalinglab.laws import Law
    from scalinglab.report.html import Report
    from scalinglab.sweep.plan import Plan
    from scalinglab.sweep.runner import SweepSummary


class TrainResult(TypedDict, total=False):
    """What `run_training` returns (the run's result.json): the keys most used in a notebook."""

    config: dict
    status: str
    steps: int
    tokens: int
    n_params: int
    n_params_with_embeddings: int
    flops: float
    pf_days: float
    val_loss: float
    best_val_loss: float
    train_loss: float
    lr: float
    wall_s: float
    curve: list[dict]


@dataclass(frozen=True)
class Prediction:
    """A law's prediction at some inputs, with the 95% band over its bootstrap fits when it has them."""

    law: str
    target: str
    inputs: dict[str, Any]
    value: np.ndarray
    ci95: np.ndarray | None = None  # (..., 2): low, high
    band: str | None = None  # which 95% band: "measurement" or "mean" (None: no bootstrap draws)


def as_law(fit: Any) -> Law:
    """A fitted Law from a Law, a fit dict (`fit --json`, `Law.to_dict()`) or the path of a fit JSON file."""
    from scalinglab.laws import Law
    from scalinglab.laws.framework.base import Estimator

    if isinstance(fit, Estimator):
        return fit
    if isinstance(fit, str | Path):
        from scalinglab.io import read_json

        fit = read_json(fit, "fit file")
    if not isinstance(fit, dict) or "law" not in fit:
        raise UserError("expected a fitted law: a Law, a fit dict with 'law' and 'params', or a fit JSON file")
    return Law.from_dict(fit)


def predict(fit: Any, interval: str = "measurement", seed: int = 0, **inputs: Any) -> Prediction:
    """Predict a fitted law at `inputs` (e.g. N=1e9, D=2e10; arrays broadcast), e.g. predict(fit, C=1e21).

    The band is the one `scalinglab predict` gives (laws/analyses/prediction.py): "measurement" (default: where a new run
    should land) or "mean" (the law's own band); `Prediction.band` says which, None without bootstrap draws."""
    import numpy as np

    from scalinglab.laws.analyses.prediction import predict_table
    from scalinglab.laws.framework.base import check_interval

    law = as_law(fit)
    if check_interval(interval) is None:
        raise UserError("interval must be 'measurement' or 'mean' (law.predict(df) gives the point prediction)")
    arrays = np.broadcast_arrays(*[np.asarray(inputs[c], dtype=float) for c in law.inputs if c in inputs])
    shape = arrays[0].shape if arrays else ()
    flat = {c: np.ravel(np.broadcast_to(np.asarray(v, float), shape)) for c, v in inputs.items()}
    table = predict_table(law, flat, interval=interval, seed=seed)
    t = "N_opt" if table["target"] == "N_opt" else law.target
    rows = table["predictions"]
    value = np.array([r[t] for r in rows]).reshape(shape)
    ci = (np.array([[r[f"{t}_lo"], r[f"{t}_hi"]] for r in rows]).reshape(*shape, 2) if table["band"] else None)
    return Prediction(law=law.law_name, target=t, inputs=dict(inputs), value=value, ci95=ci, band=table["band"])


def forecast(curves: Any, run: str | None = None, fraction: float | None = None, method: str = "auto",
             bootstrap: int = 200, seed: int = 0) -> dict:
    """Forecast the final loss (and the rest of the curve) of runs from their partial learning curves.

    `curves` is a results store path or a DataFrame of curve points (run, step, L, optional lr, total_steps, N,
    warmup, done: see `scalinglab.laws.analyses.forecast`). Without `fraction`, every unfinished run is forecast from all its
    points; with it, every run (finished ones too) from its first `fraction` of steps. Returns what `scalinglab
    forecast --json` writes: {"forecasts": [...], "skipped": [{"run", "reason"}], ...}."""
    from scalinglab.laws.analyses.forecast import curves_from_store, forecast_curves

    if isinstance(curves, str | Path):
        curves = curves_from_store(curves)
    return forecast_curves(curves, run=run, fraction=fraction, method=method, bootstrap=bootstrap, seed=seed)


def run_training(config: Any = None, out_dir: str | Path | None = None, *, progress: bool = False,
                 overwrite: bool = False, **settings: Any) -> TrainResult:
    """Train (or resume, or return the finished result of) one run; `config` is a TrainConfig, a dict or
    None, and keyword settings (corpus=..., n_layer=..., steps=...) override it. Silent unless progress=True."""
    from scalinglab.config import TrainConfig
    from scalinglab.train.loop import run_training as _run

    if out_dir is None:
        raise UserError("run_training needs out_dir (the run folder: checkpoint, metrics, result)")
    base = config.model_dump() if isinstance(config, TrainConfig) else dict(config or {})
    cfg = TrainConfig.model_validate({**base, **settings})
    return _run(cfg, out_dir, progress=progress, overwrite=overwrite)  # type: ignore[return-value]


def load_plan(plan: str | Path | dict | Plan, base_dir: str | Path = ".") -> Plan:
    """A validated, expanded sweep plan from a TOML file or a dict shaped like one (`Plan.from_dict`; a
    relative corpus is relative to `base_dir`); a Plan is returned as is."""
    from scalinglab.sweep.plan import Plan
    from scalinglab.sweep.plan import load_plan as _load

    if isinstance(plan, Plan):
        return plan
    return Plan.from_dict(plan, base_dir) if isinstance(plan, dict) else _load(plan)


def run_sweep(plan: str | Path | dict | Plan, db: str | Path, *, progress: bool = False, log=None,
              **options: Any) -> SweepSummary:
    """Run every unfinished run of `plan` into the store `db` (options: executor, workers, threads, ...)."""
    from scalinglab.sweep.runner import run_sweep as _run

    return _run(load_plan(plan), db, progress=progress, log=log or (lambda _msg: None), **options)


def build_report(study: Study | str | Path, out_dir: str | Path, *, fmt: str = "html",
                 title: str = "Scaling-law study", budgets: list[float] | None = None) -> Report:
    """Draw every figure the study has data for into out_dir, with index.html (or index.md).

    A store path gets its saved fits and the planner's rows, as `scalinglab report --db` does."""
    from scalinglab.report.html import build_report as _build
    from scalinglab.report.study import fits_from_store, plan_budgets

    if not isinstance(study, Study):
        study = Study.from_db(study, fits=fits_from_store(study))
        study.plans = plan_budgets(study, budgets)
    return _build(study, out_dir, fmt_=fmt, title=title)


def load_model(run_dir: str | Path):
    """The trained torch module of a run folder (its config.json and checkpoint.pt), in eval mode on CPU."""
    from scalinglab.config import TrainConfig
    from scalinglab.model import build_model
    from scalinglab.train.checkpoint import load_checkpoint

    d = Path(run_dir)
    for name in ("config.json", "checkpoint.pt"):
        if not (d / name).is_file():
            raise UserError(f"{d} is not a finished run folder: no {name}")
    cfg = TrainConfig.model_validate(json.loads((d / "config.json").read_text(encoding="utf-8")))
    state = load_checkpoint(d / "checkpoint.pt")["model"]
    model = build_model(cfg.model(int(state["wte.weight"].shape[0])))
    model.load_state_dict(state)
    return model.eval()

