"""Other architectures beside the Transformer: LSTMs and recurrent Transformers (Figs. 7, 17)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from scalinglab.report.figures.context import bin_positions, position_bins
from scalinglab.report.figures.data import (
    law_predict,
    need_runs,
)
from scalinglab.report.figures.registry import figure
from scalinglab.report.figures.style import (
    NLABEL,
    fit_label,
    loglog,
    note,
    panels,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from scalinglab.report.study import Study


@figure(
    "7", "LSTMs vs Transformers",
    caption="Final loss against N for each architecture (left) and loss per context position (right). "
            "Paper: LSTMs keep up on early tokens but plateau after ~100 tokens; Transformers scale better.",
    needs="≥ 2 finished LSTM runs beside transformer runs",
    plan="[[grid]]\narch = [\"lstm\"]\nn_layer = [1, 2]\nd_model = [64, 128]",
)
def fig07(study: Study) -> Figure:
    return _arch_compare(study, "lstm", "LSTM")


@figure(
    "17", "Recurrent (weight-shared) Transformers",
    caption="Final loss against N for the recurrent Transformer (one block reused n_layer times) and the standard one. "
            "Paper: recurrence is slightly better per parameter, worse per FLOP.",
    needs="≥ 2 finished 'universal' runs beside transformer runs",
    plan="[[grid]]\narch = [\"universal\"]\nn_layer = [4]\nd_model = [64, 128]",
)
def fig17(study: Study) -> Figure:
    return _arch_compare(study, "universal", "recurrent Transformer")


def _arch_compare(study: Study, arch: str, name: str) -> Figure:
    other = study.transformers(arch)
    need_runs(other, 2, f"≥ 2 finished {name} runs")
    base = need_runs(study.main_family(), 2, "≥ 2 transformer runs to compare with")
    fig, (a, b) = panels(2, width=5.0)
    n_other = other["n_params"].max()
    for df, label, col, law in ((base, "Transformer", "tab:blue", "kaplan-n"),
                                (other, name, "tab:orange", f"kaplan-n:{arch}")):
        g = df.sort_values("n_params")
        # a run far off the family's learning rate (e.g. an LR check) is shown hollow, not as the family
        lr_ratio = pd.to_numeric(g["lr"], errors="coerce") / pd.to_numeric(g["lr"], errors="coerce").median()
        odd = (lr_ratio > 1.5) | (lr_ratio < 1 / 1.5)
        for _, r in g[odd].iterrows():
            a.plot(r["n_params"], r["val_loss"], "o", mfc="none", color=col,
                   label=f"{label}, LR {r['lr']:.2g} ({lr_ratio[r.name]:.1f}× the family's)")
        g = g[~odd]
        a.plot(g["n_params"], g["val_loss"], "o", color=col, label=label)
        fn = study.saved_fit(law)
        if fn is not None:  # the family's own L(N) fit (reproduce fits kaplan-n:<arch> where the preset has one)
            xs = np.geomspace(g["n_params"].min() / 1.2, g["n_params"].max() * 1.2, 50)
            a.plot(xs, law_predict(fn, N=xs), "--", color=col, lw=1, label=fit_label(fn, ("alpha_N",)))
        else:
            a.plot(g["n_params"], g["val_loss"], "-", color=col, lw=1)
        # per-position loss at comparable size: the largest other-arch model and the transformer nearest it
        top = g.loc[(np.log(g["n_params"]) - np.log(n_other)).abs().idxmin()]
        pp = top.get("val_loss_per_position")
        if isinstance(pp, list) and len(pp) > 2:
            edges = position_bins(len(pp))
            centres = [np.sqrt(lo * hi) for lo, hi in edges]
            b.plot(centres, bin_positions(np.asarray(pp, dtype=float), edges), "o-", ms=3, color=col,
                   label=f"{label}, N={top['n_params']:.2g}")
    loglog(a, NLABEL)
    a.legend(fontsize=8)
    if b.lines:
        loglog(b, "token position in context (log-spaced bins)")
        b.legend(fontsize=8)
    else:
        note(b, "per-position loss not recorded")
    return fig

