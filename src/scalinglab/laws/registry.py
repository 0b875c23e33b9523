"""The law registry: every family module is imported here, so each law has registered itself by name.

`get_law(name, **options)` returns a fresh law, `law_names()` lists them (kaplan-n, kaplan-d, kaplan-c, kaplan-cmin
and their `-e` variants, log-n/-d/-c/-s, kaplan-nd, kaplan-ns, chinchilla, bcrit, batch-tradeoff, bcrit-scan,
ood-offset, ood-linear, lr-opt, batch-opt, batch-opt-c, plus whatever later family modules add).
"""

from __future__ import annotations

from typing import Any

from scalinglab.laws import (
    batch,
    batch_opt,
    bcrit_scan,
    chinchilla,
    chinchilla_variants,
    generalisation,
    joint,
    lr_opt,
    optimal,
    power,
)
from scalinglab.laws.base import make_law, registered_names

# the order `law_names()` lists the families in (the paper's order: single-variable, joint, batch, then the rest)
FAMILIES = (power, joint, chinchilla, chinchilla_variants, batch, bcrit_scan, generalisation, lr_opt, batch_opt, optimal)


def law_names() -> list[str]:
    order = {m.__name__: i for i, m in enumerate(FAMILIES)}
    return sorted(registered_names(), key=lambda n: order.get(make_law(n).__class__.__module__, len(order)))


def get_law(name: str, **options: Any) -> Any:
    """A fresh (unfitted) law by registry name; options override the registry's defaults."""
    return make_law(name, **options)
