"""laws stage of scalinglab: every scaling law as a scikit-learn style estimator, and what is built on them
(docs/explanations/architecture.md has the map).

- framework/: the estimator contract and registry (base, registry), the optimiser (Huber loss, batched L-BFGS,
  starts, bootstrap; optimiser), variable projection (projection), columns and the store readers (columns, data,
  curves, transforms), `fit_law` (fit), `--fix` (fixed), the fit's text (summary), constants;
- families/: one module per law family (power, joint, chinchilla, chinchilla_variants, batch, bcrit_scan,
  batch_opt, lr_opt, generalisation, allocation: approaches 1 and 2, frontier: the compute frontier); every module
  there is imported by the registry, so a new law is one new module;
- analyses/: planning (compute-optimal allocation, the contradiction point; reach: how far it extrapolates),
  forecast (a partial run's final loss), prediction (bands), comparison
  (forms by hold-out), calibration (coverage of intervals), sensitivity (counting conventions).

Python API: `get_law(name, **settings)`, `law_names()`, `fit_law(name_or_law, df, ...)`, `Law.from_dict(d)`;
a fitted law has `params_`, `ci95_`, `residual_rms_`, `converged_`, `holdout_`, `derived_`,
`predict(df, interval=None | "mean" | "measurement")`, `summary()`, `to_dict()`.

The modules' former flat paths (`scalinglab.laws.plan`, `scalinglab.laws.optimal`, ...) still import: each is an
alias of its new module (`MOVED`).
"""

import importlib
import importlib.abc
import importlib.util
import sys

from scalinglab.laws.framework.base import Estimator, Law
from scalinglab.laws.framework.fit import fit_law
from scalinglab.laws.framework.registry import get_law, law_names

__all__ = ["Estimator", "Law", "fit_law", "get_law", "law_names"]

# former module name -> its module now (under scalinglab.laws)
MOVED = {
    "base": "framework.base",
    "registry": "framework.registry",
    "optimize": "framework.optimiser",
    "varpro": "framework.projection",
    "columns": "framework.columns",
    "curves": "framework.curves",
    "transforms": "framework.transforms",
    "constants": "framework.constants",
    "data": "framework.data",
    "fit": "framework.fit",
    "fixed": "framework.fixed",
    "summary": "framework.summary",
    "power": "families.power",
    "joint": "families.joint",
    "chinchilla": "families.chinchilla",
    "chinchilla_variants": "families.chinchilla_variants",
    "batch": "families.batch",
    "bcrit_scan": "families.bcrit_scan",
    "batch_opt": "families.batch_opt",
    "lr_opt": "families.lr_opt",
    "generalisation": "families.generalisation",
    "frontier": "families.frontier",
    "optimal": "families.allocation",
    "plan": "analyses.planning",
    "predict": "analyses.prediction",
    "compare": "analyses.comparison",
    "calibration": "analyses.calibration",
    "sensitivity": "analyses.sensitivity",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports `scalinglab.laws.<former name>` as the module it moved to (the same module object)."""

    def find_spec(self, fullname, path=None, target=None):
        prefix, _, name = fullname.rpartition(".")
        if prefix != __name__ or name not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return importlib.import_module(f"{__name__}.{MOVED[spec.name.rpartition('.')[2]]}")

    def exec_module(self, module):
        pass


if not any(isinstance(f, _Alias) for f in sys.meta_path):
    sys.meta_path.append(_Alias())
