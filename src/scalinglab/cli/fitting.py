"""The parts of `scalinglab fit` beyond one law: the list of names in `--law A,B,...` and the comparison of forms."""

from __future__ import annotations

from typing import Any

from scalinglab.errors import UserError


def law_list(law: str) -> list[str]:
    names = [n.strip() for n in law.split(",")]
    if any(not n for n in names) or len(set(names)) != len(names):
        raise UserError(f"--law {law!r}: give law names separated by commas, each once")
    return names


def fit_comparison(laws: list[Any], df: Any, holdout: int) -> dict[str, Any]:
    """The comparison JSON: the table and every law's full fit."""
    from scalinglab.laws.analyses.comparison import compare_laws

    if holdout == 0:
        holdout = max(1, len(df) // 10)
    out = compare_laws(laws, df, holdout)
    out["fits"] = {name: f.to_dict() for name, f in out.pop("_fits").items()}
    return out


def comparison_summary(r: dict[str, Any]) -> str:
    lines = [f"comparison on the same rows; hold-out = the {r['holdout_k']} largest-compute rows (by "
             f"{r['holdout_rows_by']}); ordered by hold-out error",
             f"  {'law':<18} {'params':>6} {'holdout |rel err|':>18} {'max':>9} {'rms(log)':>9} {'AIC':>10} {'BIC':>10}"]
    for row in r["comparison"]:
        aic = "n/a" if row["aic"] is None else f"{row['aic']:.2f}"
        bic = "n/a" if row["bic"] is None else f"{row['bic']:.2f}"
        lines.append(f"  {row['law']:<18} {row['n_params']:>6} {row['holdout_mean_abs_rel_error']:>18.4g} "
                     f"{row['holdout_max_abs_rel_error']:>9.4g} {row['residual_rms']:>9.4g} {aic:>10} {bic:>10}")
    lines.append(f"  best by hold-out: {r['best_by_holdout']}; AIC/BIC: {r['aic_note']}")
    return "\n".join(lines)
