"""The law registry: every module of `scalinglab.laws.families` is imported here, so each law has registered itself
by name (adding a law is adding one module there; nothing else lists it).

`get_law(name, **options)` returns a fresh law, `law_names()` lists them (kaplan-n, kaplan-d, kaplan-c, kaplan-cmin
and their `-e` variants, log-n/-d/-c/-s, kaplan-nd, kaplan-ns, chinchilla, bcrit, batch-tradeoff, bcrit-scan,
ood-offset, ood-linear, lr-opt, batch-opt, batch-opt-c, isoflop, frontier, plus whatever later family modules add).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from scalinglab.laws import families
from scalinglab.laws.framework.base import make_law, registered_names

# the order `law_names()` lists the families in (the paper's order: single-variable, joint, batch, then the rest);
# a family module not named here comes after these, in name order
ORDER = ("power", "joint", "chinchilla", "chinchilla_variants", "batch", "bcrit_scan", "generalisation", "lr_opt",
         "batch_opt", "allocation")
MODULES = [importlib.import_module(f"{families.__name__}.{m.name}")
           for m in sorted(pkgutil.iter_modules(families.__path__), key=lambda m: m.name)]


def law_names() -> list[str]:
    order = {f"{families.__name__}.{m}": i for i, m in enumerate(ORDER)}
    return sorted(registered_names(), key=lambda n: order.get(make_law(n).__class__.__module__, len(order)))


def get_law(name: str, **options: Any) -> Any:
    """A fresh (unfitted) law by registry name; options override the registry's defaults."""
    return make_law(name, **options)
