"""The Python API in a notebook's order: fit -> predict -> plan on published data, then train -> fit -> report.

Run it as a script (`python examples/notebook_api.py [WORKDIR]`) or paste the cells into a notebook.
It prints what it measured; tests/test_api.py runs it in a fresh interpreter and checks that it leaves the
process's thread count, TF32 flags and matplotlib backend as they were.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import scalinglab as sl


def published(show=print) -> dict:
    # %% 1. Fit the Chinchilla form to Epoch AI's extraction of Chinchilla Fig. 4 (packaged with scalinglab)
    df = sl.datasets.load("chinchilla_epoch_fig4").query("in_epoch_fit")
    law = sl.fit_law("chinchilla", df)
    show(f"chinchilla on {law.n_points_} points: " + ", ".join(f"{k}={v:.4g}" for k, v in law.params_.items()))

    # %% 2. Predict the loss of a 70B-parameter model trained on 1.4T tokens
    p = sl.predict(law, N=70e9, D=1.4e12)
    show(f"predicted {p.target} at N=70e9, D=1.4e12: {float(p.value):.4f}")

    # %% 3. Plan: the compute-optimal allocation for 5.8e23 FLOPs (Chinchilla's budget) from this fit
    plan = sl.plan_allocation(5.8e23, fits={"chinchilla": law})
    show(f"plan for 5.8e23 FLOPs: N_opt={plan['N_opt']:.3g}, D={plan['D']:.3g} tokens, L={plan['L_pred']:.4f}")
    return {"params": law.params_, "prediction": float(p.value), "plan": plan}


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
    # %% 4. A small corpus from the Python standard library (byte-level BPE, 512 tokens)
    sl.prepare_corpus("stdlib", work / "corpus", vocab_size=512, max_tokens=150_000, eval_sets={})

    # %% 5. One run, then its model back from the run folder
    result = sl.run_training(corpus=str(work / "corpus"), n_layer=1, d_model=16, n_ctx=32, batch_size=8,
                             steps=20, eval_every=10, eval_tokens=1024, out_dir=work / "one-run")
    model = sl.load_model(work / "one-run")
    show(f"one run: N={result['n_params']}, final val loss {result['val_loss']:.3f}, "
         f"{sum(p.numel() for p in model.parameters())} weights loaded")

    # %% 6. A three-size sweep into a store, L(N) fitted on it, and the report (figures drawn off-screen)
    (work / "plan.toml").write_text(PLAN)
    summary = sl.run_sweep(work / "plan.toml", work / "runs.db")
    study = sl.Study.from_db(work / "runs.db")
    fit = study.fit_law("kaplan-n")
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
