"""How much the key exponents of a store's fits depend on the analyst's choices (`scalinglab fit --sensitivity`).

Porian et al. 2024 and Pearce & Song 2024 trace most of the Kaplan/Chinchilla disagreement to three choices: the
FLOP convention (6N per token or the exact count with the attention context, with or without the head), whether
embedding parameters count in N, and how the early part of each learning curve is treated. `sensitivity` refits one
law from one store under every combination that applies to it and returns the exponents side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scalinglab.errors import UserError
from scalinglab.laws.framework.data import FLOPS, frame_from_store
from scalinglab.laws.framework.fit import fit_law
from scalinglab.laws.framework.registry import get_law

CUTS = {"default": None, "none": 0.0}  # the default transient cut, or keep every point (min_step 0)


def sensitivity(db: str | Path, law: str, huber_delta: float = 1e-3) -> list[dict[str, Any]]:
    """One row per (FLOP convention, transient cut, embeddings) that changes this law's rows: its exponents."""
    proto = get_law(law)
    exponents = [p for p, lg in zip(proto.param_names, proto.log_params, strict=True) if not lg]
    flops = FLOPS if "C" in proto.required_columns() else ("paper",)
    cuts = CUTS if proto.curve_law else {"default": None}
    embeds = (False, True) if "N" in proto.required_columns() else (False,)
    rows = []
    for fl in flops:
        for emb in embeds:
            df = frame_from_store(db, law, count_embeddings=emb, flops=fl)
            for cut, min_step in cuts.items():
                row: dict[str, Any] = {"flops": fl, "cut": cut, "embeddings": emb}
                try:
                    fitted = fit_law(law, df, huber_delta=huber_delta, min_step=min_step)
                except UserError as e:
                    row["error"] = str(e)
                else:
                    row.update({p: fitted.params_[p] for p in exponents})
                    row["n_points"] = fitted.n_points_
                rows.append(row)
    return rows


def sensitivity_table(rows: list[dict[str, Any]]) -> str:
    """The rows as aligned text: one line per combination, one column per exponent."""
    keys = [k for k in rows[0] if k not in ("flops", "cut", "embeddings", "error", "n_points")] if rows else []
    for r in rows:
        keys += [k for k in r if k not in keys and k not in ("flops", "cut", "embeddings", "error", "n_points")]
    head = f"{'flops':<10} {'cut':<8} {'N':<10}" + "".join(f" {k:>9}" for k in keys) + "  points"
    lines = [head]
    for r in rows:
        n = "with-emb" if r["embeddings"] else "non-emb"
        vals = "".join(f" {r[k]:>9.4f}" if k in r else f" {'-':>9}" for k in keys)
        tail = f"  {r['n_points']}" if "n_points" in r else f"  ({r['error']})"
        lines.append(f"{r['flops']:<10} {r['cut']:<8} {n:<10}{vals}{tail}")
    return "\n".join(lines)
