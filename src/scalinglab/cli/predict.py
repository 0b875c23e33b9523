"""`scalinglab predict`: the loss (or allocation) a saved fit predicts, with a 95% interval."""

from __future__ import annotations

from typing import Annotated

import typer

from scalinglab.cli.core import emit_json, new_app

app = new_app()


@app.command()
def predict(
    fit: Annotated[str, typer.Option("--fit", help="FIT.json from `scalinglab fit --json`.")],
    N: Annotated[list[float] | None, typer.Option("--N", help="Parameters N (repeatable).")] = None,  # noqa: N803
    D: Annotated[list[float] | None, typer.Option("--D", help="Training tokens D (repeatable).")] = None,  # noqa: N803
    U: Annotated[list[float] | None, typer.Option("--U", help="Unique tokens U (data-constrained).")] = None,  # noqa: N803
    C: Annotated[list[float] | None, typer.Option("--C", help="Compute C in FLOPs (repeatable).")] = None,  # noqa: N803
    S: Annotated[list[float] | None, typer.Option("--S", help="Steps S (repeatable).")] = None,  # noqa: N803
    B: Annotated[list[float] | None, typer.Option("--B", help="Batch size B in tokens (repeatable).")] = None,  # noqa: N803
    L: Annotated[list[float] | None, typer.Option("--L", help="Loss L (input of bcrit).")] = None,  # noqa: N803
    csv: Annotated[str | None, typer.Option("--csv", help="CSV with the law's input columns (one prediction per row).")] = None,
    interval: Annotated[str, typer.Option("--interval", help="measurement (where a new run should land) or mean "
                                          "(the law's own band).")] = "measurement",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the measurement-scatter draws.")] = 0,
    json_out: Annotated[str | None, typer.Option("--json", help="Write the predictions as JSON to this file ('-': stdout).")] = None,
) -> None:
    """Predicted target of a fitted law at given inputs, with a 95% interval from the fit's bootstrap draws."""
    import numpy as np
    import pandas as pd

    from scalinglab.errors import UserError
    from scalinglab.io import read_json
    from scalinglab.laws.analyses.prediction import load_fit, predict_table
    from scalinglab.laws.framework.data import load_csv

    given = {k: v for k, v in {"N": N, "D": D, "U": U, "C": C, "S": S, "B": B, "L": L}.items() if v}
    if (csv is None) == (not given):
        raise UserError("give the inputs either as options (--N X --D Y ...) or as --csv FILE, not both or neither")
    law = load_fit(read_json(fit, "fit file"))
    if csv is not None:
        rows = load_csv(csv)
    else:
        n = max(len(v) for v in given.values())
        bad = [k for k, v in given.items() if len(v) not in (1, n)]
        if bad:
            raise UserError(f"--{bad[0]} has {len(given[bad[0]])} values; give 1 or {n} like the longest input")
        rows = pd.DataFrame({k: np.broadcast_to(np.asarray(v, float), n) for k, v in given.items()})
    result = predict_table(law, rows, interval=interval, seed=seed)
    result["fit_file"] = str(fit)
    if json_out is not None:
        emit_json(result, json_out)
    if json_out != "-":
        typer.echo(summary(result))


def summary(r: dict) -> str:
    t = r["target"]
    lines = [f"{r['law']} predictions" + (f" ({r['interval']})" if r["interval"] else "")]
    for p in r["predictions"]:
        if "D_opt" not in p:
            inputs = ", ".join(f"{k}={v:.4g}" for k, v in p.items() if not k.startswith(t))
            band = f"  95% [{p[t + '_lo']:.5g}, {p[t + '_hi']:.5g}]" if f"{t}_lo" in p else ""
            lines.append(f"  {inputs}: {t} = {p[t]:.5g}{band}")
        else:
            band = (f"  95% [{p['N_opt_lo']:.4g}, {p['N_opt_hi']:.4g}]" if "N_opt_lo" in p else "")
            lines.append(f"  C={p['C']:.4g}: N_opt = {p['N_opt']:.4g}{band}, D_opt = {p['D_opt']:.4g}"
                         + (f"  95% [{p['D_opt_lo']:.4g}, {p['D_opt_hi']:.4g}]" if "D_opt_lo" in p else ""))
    if r.get("warning"):
        lines.append(f"  note: {r['warning']}")
    return "\n".join(lines)
