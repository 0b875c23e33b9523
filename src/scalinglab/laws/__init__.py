"""laws stage of scalinglab (DESIGN.md §1–2): every scaling law as an estimator, robust fits, frontier, planner.

Modules: base (the Law framework; a law registers itself at class definition), optimize (Huber loss, batched
L-BFGS, multi-start optimiser, whitening, bootstrap; imports no law), one module per law family (power, joint,
chinchilla, batch, bcrit_scan, generalisation), registry (imports the families), constants (PF_DAY and the published
constants), columns/data (validation, CSV and store mapping), transforms, frontier, plan.

Python API (what `fit`, `plan`, `report` and `reproduce` call):

- `get_law(name, **options) -> Law`, `law_names()`: the registry (kaplan-n, kaplan-d, kaplan-c, kaplan-cmin,
  their `-e` irreducible variants, kaplan-nd, kaplan-ns, bcrit, bcrit-scan, batch-tradeoff, chinchilla, log-n, ...).
- `fit_law(name_or_law, df, bootstrap=0, holdout=0, huber_delta=1e-3, seed=0, **options) -> Law` with `params_`,
  `ci95_`, `residual_rms_`, `converged_`, `objective_`, `holdout_`, `derived_`, `predict(**cols)`, `to_dict()`;
  `Law.from_dict(d)` rebuilds any fitted law.
- `frame_from_store(db, law, count_embeddings=False)`, `load_csv(path, col_map, query)` (laws/data.py).
- `compute_frontier(curves_df)`, `fit_nopt(frontier_df)`, `isoflop_optima(df)` (laws/frontier.py).
- `plan_allocation(compute_flops, fits=None | paper=True)`, `contradiction_point(...)` (laws/plan.py).
- `s_min`, `c_min`, `bcrit_at` (laws/transforms.py).
"""

from scalinglab.laws.base import Law
from scalinglab.laws.fit import fit_law
from scalinglab.laws.registry import get_law, law_names

__all__ = ["Law", "fit_law", "get_law", "law_names"]
