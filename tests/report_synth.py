"""Synthetic store frames for the report tests: curves drawn from L(N, S) with noise (test data only)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd


def synthetic_frames(seed: int = 0, with_extras: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Runs + eval frames shaped like `store.load_runs` / `load_evals`, from L = (Nc/N)^a + (Sc/S)^b."""
    rng = np.random.default_rng(seed)
    runs, evals = [], []
    n_ctx, vocab = 64, 512

    def add(rid, n_layer, d_model, batch=16, steps=400, data_tokens=None, schedule="cosine", arch="transformer",
            d_ff=None):
        d_ff = d_ff or 4 * d_model
        n = 2 * d_model * n_layer * (2 * d_model + d_ff) + 13 * d_model * n_layer
        if arch == "lstm":
            n = 8 * n_layer * d_model**2
        bt = batch * n_ctx
        pos = np.arange(1, n_ctx + 1)
        l_inf = (1e7 / n) ** 0.3 + 2.0 + (0.3 if arch == "lstm" else 0.0)
        steps_arr = np.unique(np.geomspace(1, steps, 12).astype(int))
        losses = []
        for s in steps_arr:
            bc = 2000.0
            smin = s / (1 + bc / bt)
            loss = l_inf + (300 / smin) ** 0.6 + rng.normal(0, 0.005)
            if data_tokens:
                loss += 0.3 * max(0.0, s * bt / data_tokens - 1) ** 0.5
            losses.append(loss)
            flops = 6 * n * s * bt
            evals.append(dict(run_id=rid, step=int(s), tokens=int(s * bt), examples=int(s * batch), flops=flops,
                              pf_days=flops / 8.64e19, wall_s=s * 0.01, lr=1e-3 * (0.5 if schedule == "constant" else 1 - s / steps / 2),
                              train_loss=loss - 0.05 - (0.2 if data_tokens else 0), val_loss=loss,
                              noise_scale=bc * (loss / 3) ** -4, noise_scale_seqs=bc * (loss / 3) ** -4 / n_ctx,
                              eval_losses=json.dumps({"shifted": loss + 0.4})))
        final = losses[-1]
        per_pos = list(final + 0.8 * pos ** -0.5 - 0.8 * np.mean(pos ** -0.5))
        runs.append(dict(run_id=rid, plan="synthetic", status="done", arch=arch, n_layer=n_layer, d_model=d_model,
                         d_ff=d_ff, d_attn=d_model, n_heads=max(1, d_model // 32), n_ctx=n_ctx, batch_size=batch,
                         steps=steps, data_tokens=data_tokens, lr=1e-3, schedule=schedule, seed=0, n_params=n,
                         n_params_with_embeddings=n + (vocab + n_ctx) * d_model, tokens=steps * bt,
                         flops=6 * n * steps * bt, pf_days=6 * n * steps * bt / 8.64e19, val_loss=final,
                         best_val_loss=min(losses), train_loss=final - 0.05, noise_scale=bc,
                         eval_losses=json.dumps({"shifted": final + 0.4}),
                         val_loss_per_position=json.dumps(per_pos), config=json.dumps({"n_layer": n_layer}),
                         wall_s=steps * 0.01))

    i = 0
    for nl, dm in [(1, 16), (1, 32), (2, 32), (2, 64), (4, 64), (4, 128)]:
        add(f"r{i}", nl, dm, steps=600)
        i += 1
    if with_extras:
        for b in (4, 8, 32, 64):
            add(f"b{b}", 2, 32, batch=b, steps=1200)
        for dt in (2e4, 1e5, 5e5):
            for nl, dm in [(2, 32), (4, 64)]:
                add(f"d{i}", nl, dm, data_tokens=dt, steps=600)
                i += 1
        add("s1", 2, 32, schedule="constant", steps=600)
        add("s2", 2, 32, schedule="linear", steps=600)
        for nl, dm in [(8, 24), (1, 64)]:
            add(f"shape{nl}", nl, dm, steps=600)
        add("lstm1", 1, 32, arch="lstm")
        add("lstm2", 2, 64, arch="lstm")
        runs.append(dict(run_id="bad", status="diverged", val_loss=float("nan"), n_params=1e5, arch="transformer"))
    return pd.DataFrame(runs), pd.DataFrame(evals)
