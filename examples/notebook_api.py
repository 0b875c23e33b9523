"""The Python API in a notebook's order: fit -> predict -> plan on published data, then train -> fit -> report.

Run it as a script (`python examples/notebook_api.py [WORKDIR]`) or paste the cells into a notebook.
Each cell is what one command does, in one to three lines of Python. It prints what it measured;
tests/test_api.py runs it in a fresh interpreter and checks that it leaves the process's thread count, TF32 flags
and matplotlib backend as they were (and tests/test_estimators.py runs the published-data cells).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import pandas as pd

import scalinglab as sl


def published(show=print) -> dict:
    # %% 1. Fit the Chinchilla form to Epoch AI's extraction of Chinchilla Fig. 4 (packaged with scalinglab)
    #       = scalinglab fit --dataset chinchilla_epoch_fig4 --query in_epoch_fit --law chinchilla --bootstrap 100
    df = sl.datasets.load("chinchilla_epoch_fig4").query("in_epoch_fit")
    law = sl.fit_law("chinchilla", df, bootstrap=100)
    show(law.summary())  # exactly what the command prints

    # %% 2. Predict the loss of a 70B-parameter model trained on 1.4T tokens, with the 95% band a new run would
    #       land in (= scalinglab predict --fit FIT.json --N 70e9 --D 1.4e12); interval="mean" for the law's own band
    p = sl.predict(law, N=70e9, D=1.4e12)
    show(f"predicted {p.target} at N=70e9, D=1.4e12: {float(p.value):.4f}, 95% {p.band} band {p.ci95.round(4)}")
    table = law.predict(pd.DataFrame({"N": [1e9, 7e10], "D": [2e10, 1.4e12]}), interval="mean")

    # %% 3. Plan: the compute-optimal allocation for 5.8e23 FLOPs (= scalinglab plan --fit FIT.json --compute 5.8e23)
    plan = sl.plan_allocation(5.8e23, fits=law)
    show(f"plan for 5.8e23 FLOPs: N_opt={plan['N_opt']:.3g}, D={plan['D']:.3g} tokens, L={plan['L_pred']:.4f} "
         f"(95% {plan['band']['L_pred']} band [{plan['ci95']['L_pred'][0]:.4f}, {plan['ci95']['L_pred'][1]:.4f}])")

    # %% 4. Approach 2 on Llama 3's IsoFLOP curves: the local parabola, and Akima over the whole curve
    #       (= scalinglab fit --dataset llama3_fig2_isoflops --law isoflop [--method akima])
    llama = sl.datasets.load("llama3_fig2_isoflops")
    parabola = sl.fit_law("isoflop", llama)
    akima = sl.get_law("isoflop", method="akima").fit(llama)
    show(f"Llama 3 D_opt ∝ C^b: parabola b = {parabola.params_['b']:.3f}, akima b = {akima.params_['b']:.3f}")

    # %% 5. Save a fit and load it back (= the fit JSON `scalinglab fit --json` writes)
    again = sl.Law.from_dict(json.loads(json.dumps(law.to_dict())))
    assert again.params_ == law.params_
    return {"params": law.params_, "prediction": float(p.value), "band": p.band, "plan": plan,
            "table": table.to_dict("list"), "isoflop_b": parabola.params_["b"], "akima_b": akima.params_["b"]}


PLAN = """
name = "api-example"
corpus = "corpus"

[train]
n_ctx = 32
batch_size = 8
steps = 30
eval_every = 10
eval_tokens = 1024
checkpoint_every_steps = 0

[[grid]]
n_layer = 1
d_model = [16, 32, 48]
"""


def trained(work: Path, show=print) -> dict:
    # %% 6. A small corpus from the Python standard library (byte-level BPE, 512 tokens)
    sl.prepare_corpus("stdlib", work / "corpus", vocab_size=512, max_tokens=150_000, eval_sets={})

    # %% 7. One run, then its model back from the run folder
    result = sl.run_training(corpus=str(work / "corpus"), n_layer=1, d_model=16, n_ctx=32, batch_size=8,
                             steps=20, eval_every=10, eval_tokens=1024, out_dir=work / "one-run")
    model = sl.load_model(work / "one-run")
    show(f"one run: N={result['n_params']}, final val loss {result['val_loss']:.3f}, "
         f"{sum(p.numel() for p in model.parameters())} weights loaded")

    # %% 8. A three-size sweep into a store (= scalinglab sweep), L(N) fitted on the runs `scalinglab fit --db`,
    #       reproduce and the report take (the law's own family, "main"; study.select(...) picks others), and
    #       the report (= scalinglab report --db; figures drawn off-screen)
    (work / "plan.toml").write_text(PLAN)
    summary = sl.run_sweep(work / "plan.toml", work / "runs.db")
    study = sl.Study.from_db(work / "runs.db")
    fit = study.fit("kaplan-n")
    report = sl.build_report(work / "runs.db", work / "report")
    show(f"sweep: {summary.done} runs done; kaplan-n alpha_N = {fit.params_['alpha_N']:.3f}; "
         f"report with {len(report.drawn)} figures at {report.path}")
    return {"one_run_loss": result["val_loss"], "runs": len(study.runs), "alpha_N": fit.params_["alpha_N"],
            "report": str(report.path), "figures": len(report.drawn)}


def main(argv: list[str]) -> dict:
    if argv:
        work = Path(argv[0])
        work.mkdir(parents=True, exist_ok=True)
        return {**published(), **trained(work)}
    with tempfile.TemporaryDirectory() as tmp:
        return {**published(), **trained(Path(tmp))}


if __name__ == "__main__":
    main(sys.argv[1:])
