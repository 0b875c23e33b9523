"""Run families: which sub-study a run belongs to ("main", "batch-scan", "shape", "d-subsets", ...).

Plans tag their runs (`family = "..."` in [train], a [[grid]] or a [[run]]) and the store keeps the tag, so
which runs the headline fits and figures use is written down, not guessed. Runs stored without a tag (stores
written before tags existed, plans that give none, `train --db`) get a family from `infer_families`: the rule the
report used to apply to every study, kept so that an old store reports exactly what it reported before.

The inference rule, over the finished runs with a finite loss (applied to those without a tag), in this order:
  arch other than transformer          -> the arch ("lstm", "universal")
  trained on a D-token subset          -> "d-subsets"
  not the most common schedule or decay floor (min_lr_ratio) -> "lr-schedules"
  not the most common context (n_ctx)  -> "context"
  not the most common batch size       -> "batch-scan"
  off the usual d_ff/d_model, d_attn/d_model or head rule, or one of a shape scan's extra shapes (>= 3
  aspect ratios at the same N: only the one nearest the family's median aspect ratio stays) -> "shape"
  the rest                             -> "main"
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

MAIN = "main"
FAMILY_RE = re.compile(r"^[A-Za-z0-9_.:\-]+$")
# families whose runs are "full data at the study's usual schedule and context" (what Fig. 18's batch scan and
# Fig. 5's shape scans draw from), and those at the usual batch size too (Fig. 5)
FULL_DATA = (MAIN, "shape", "batch-scan")
USUAL_BATCH = (MAIN, "shape")


def finished_mask(runs: pd.DataFrame) -> pd.Series:
    """Finished runs with a finite final loss (a missing status counts as done, as in frames built by hand)."""
    ok = np.isfinite(pd.to_numeric(runs.get("val_loss", pd.Series(np.nan, index=runs.index)), errors="coerce"))
    if "status" in runs:
        ok &= runs["status"].fillna("done").eq("done")
    return pd.Series(ok, index=runs.index)


def with_families(runs: pd.DataFrame) -> pd.DataFrame:
    """`runs` with a `family` for every finished run: its tag, or the inferred family when it has none.

    `family_inferred` says which ones were inferred. Unfinished untagged runs keep family None."""
    r = runs.copy()
    tag = r["family"] if "family" in r else pd.Series(None, index=r.index, dtype=object)
    tag = tag.where(tag.notna() & (tag.astype(str) != ""), None).astype(object)
    finished = finished_mask(r)
    untagged = tag.isna() & finished
    # inferred over every finished run (as the report did), so tagging some runs leaves the others' families
    inferred = infer_families(r[finished]) if untagged.any() else pd.Series(dtype=object)
    r["family"] = tag.where(~untagged, inferred.reindex(r.index)).astype(object)
    r["family_inferred"] = untagged | (r["family_inferred"].fillna(False).astype(bool) if "family_inferred" in r
                                       else False)
    return r


def infer_families(runs: pd.DataFrame) -> pd.Series:
    """The family of each run by the rule in the module docstring (the report's former heuristic)."""
    d = _normalise(runs)
    fam = pd.Series(MAIN, index=d.index, dtype=object)
    other_arch = d["arch"] != "transformer"
    fam[other_arch] = d.loc[other_arch, "arch"]
    t = d[~other_arch]
    subset = t["data_tokens"].notna()
    fam[subset[subset].index] = "d-subsets"
    t = t[~subset]
    for col, label in (("schedule", "lr-schedules"), ("min_lr_ratio", "lr-schedules"), ("n_ctx", "context"),
                       ("batch_size", "batch-scan")):
        keep = _modal_mask(t, col)
        fam[t.index[~keep]] = label
        t = t[keep]
    fam[sorted(set(t.index) - set(_one_shape(t).index))] = "shape"
    return fam


def _normalise(runs: pd.DataFrame) -> pd.DataFrame:
    d = runs.copy()
    for col in ("arch", "schedule", "min_lr_ratio", "data_tokens", "n_ctx", "batch_size", "n_params", "n_layer",
                "d_model", "d_ff", "d_attn", "n_heads"):
        if col not in d:
            d[col] = np.nan
    d["arch"] = d["arch"].fillna("transformer")
    d["schedule"] = d["schedule"].fillna("cosine")
    for col in ("data_tokens", "n_ctx", "batch_size", "n_params", "n_layer", "d_model", "d_ff", "d_attn", "n_heads"):
        d[col] = pd.to_numeric(d[col], errors="coerce")
    d["d_ff"] = d["d_ff"].fillna(4 * d["d_model"])
    d["d_attn"] = d["d_attn"].fillna(d["d_model"])
    return d


def _modal_mask(d: pd.DataFrame, col: str) -> pd.Series:
    """Rows whose value of `col` is the column's most common value, or unknown (all rows when the column is empty):
    a run that does not say its context or batch (an import) is no evidence of a different study."""
    if col not in d or d.empty or not d[col].notna().any():
        return pd.Series(True, index=d.index)
    return (d[col] == d[col].mode().iloc[0]) | d[col].isna()


def modal(d: pd.DataFrame, cols: tuple[str, ...]) -> pd.DataFrame:
    """Keep the rows whose value of each column (in turn) is that column's most common value."""
    for c in cols:
        d = d[_modal_mask(d, c)]
    return d


def _one_shape(d: pd.DataFrame) -> pd.DataFrame:
    """Of the usual-batch runs, those at the usual shape ratios, one shape per size of a shape scan."""
    d = d.loc[modal(with_shape_ratios(d), ("ff_ratio", "attn_ratio", "default_heads")).index]
    if len(d) < 4:
        return d
    logn = np.log(d["n_params"].astype(float))
    aspect = np.log(d["d_model"].astype(float) / d["n_layer"].astype(float))
    drop: set = set()
    for i in d.index:
        near = d.index[(logn - logn[i]).abs() < np.log(1.2)]
        if len(near) >= 3 and aspect[near].nunique() >= 3:
            others = aspect.drop(near)
            target = others.median() if len(others) else aspect.median()
            keep = (aspect[near] - target).abs().idxmin()
            drop.update(j for j in near if j != keep)
    return d.drop(index=sorted(drop))


def with_shape_ratios(d: pd.DataFrame) -> pd.DataFrame:
    """d plus the shape ratios Fig. 5 varies: aspect, ff_ratio, head_dim, attn_ratio and default_heads."""
    if d.empty:
        return d.assign(aspect=[], ff_ratio=[], head_dim=[], attn_ratio=[], default_heads=[])
    return d.assign(aspect=d["d_model"] / d["n_layer"], ff_ratio=(d["d_ff"] / d["d_model"]).round(4),
                    head_dim=d["d_attn"] / d["n_heads"], attn_ratio=(d["d_attn"] / d["d_model"]).round(4),
                    default_heads=[_default_heads(a, h) for a, h in zip(d["d_attn"], d["n_heads"], strict=True)])


def _default_heads(d_attn: float, n_heads: float) -> bool:
    """Whether n_heads is what `ModelConfig` picks when none is given (heads of width 64, at least one);
    unknown (NaN) counts as the default."""
    if not (np.isfinite(d_attn) and np.isfinite(n_heads)):
        return True
    n = max(1, int(d_attn) // 64)
    return int(n_heads) == (n if int(d_attn) % n == 0 else 1)


def check_family(value: object) -> str:
    """A family tag as given in a plan; raises ValueError saying what a tag may be."""
    if not isinstance(value, str) or not FAMILY_RE.match(value):
        raise ValueError(f"a family is a name of letters, digits and _ . : - (got {value!r})")
    return value
