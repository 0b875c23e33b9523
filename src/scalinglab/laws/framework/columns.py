"""The columns a law is fitted on: canonical names, validated once into float arrays (one-line errors)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from scalinglab.errors import UserError

CANONICAL = ("N", "D", "C", "S", "B", "L", "L_ood", "U", "LR")
RANGE_KEYS = ("N", "D", "C")  # the axes of a fit's data_range (how far a plan from it extrapolates)


def law_columns(law: Any, data: Any) -> dict[str, np.ndarray]:
    """Validated float arrays of the columns `law` needs from a DataFrame or a mapping of arrays."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        df = data
    elif isinstance(data, dict):
        df = pd.DataFrame({k: np.atleast_1d(np.asarray(v)) for k, v in data.items()})
    else:
        raise UserError(f"{law.law_name}: expected a DataFrame or a mapping of columns, got {type(data).__name__}")
    need = law.required_columns()
    missing = [c for c in need if c not in df.columns]
    if missing:
        have = ", ".join(map(str, df.columns)) or "none"
        raise UserError(f"law {law.law_name} needs column(s) {', '.join(missing)} (needs {', '.join(need)}); "
                        f"columns present: {have}; map one with --col {missing[0]}=NAME")
    if len(df) == 0:
        raise UserError(f"law {law.law_name}: no data rows")
    out: dict[str, np.ndarray] = {}
    for c in need:
        col = df[c]
        vals = pd.to_numeric(col, errors="coerce")
        bad = vals.isna() & col.notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise UserError(f"column {c} has a non-numeric value {col.iloc[i]!r} (row {i + 1})")
        arr = vals.to_numpy(dtype=float)
        nonfin = ~np.isfinite(arr)
        if nonfin.any():
            i = int(np.flatnonzero(nonfin)[0])
            raise UserError(f"column {c} has a missing, NaN or infinite value (row {i + 1})")
        nonpos = arr <= 0
        if nonpos.any():
            i = int(np.flatnonzero(nonpos)[0])
            raise UserError(f"column {c} must be positive; row {i + 1} has {arr[i]:g}")
        out[c] = arr
    if "run" in df.columns and "run" not in out:
        out["run"] = df["run"].astype(str).to_numpy()
        for c in law.optional_columns():  # what curve rows may carry for the transient cut and the frontier
            if c in df.columns and c not in out:
                out[c] = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float)
    return out


def data_range(cols: Mapping[str, Any]) -> dict[str, list[float]]:
    """[min, max] of the positive finite N, D and C among `cols` (C = 6·N·D when N and D are there and C is not)."""
    vals = {k: np.asarray(cols[k], dtype=float) for k in RANGE_KEYS if k in cols and cols[k] is not None}
    if "C" not in vals and "N" in vals and "D" in vals:
        vals["C"] = 6.0 * vals["N"] * vals["D"]
    out = {}
    for k, v in vals.items():
        v = v[np.isfinite(v) & (v > 0)]
        if v.size:
            out[k] = [float(v.min()), float(v.max())]
    return out
