"""A Hugging Face Trainer run of a small GPT-2 built here, on a synthetic corpus (no download), knowing nothing of
scalinglab:

    python train.py OUT_DIR N_LAYER D_MODEL N_CTX BATCH STEPS [--resume]

Its evaluations (`eval_loss`, every STEPS/2 steps) and checkpoints go to OUT_DIR the Trainer's way; `--resume`
continues from the latest checkpoint-*. The data are walks on a fixed sparse Markov chain over 32 tokens.
A sweep reads its curve from trainer_state.json: see plan.toml beside this file and docs/how-to/any-trainer.md.
"""

import sys

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

out, n_layer, d_model, n_ctx, batch, steps = sys.argv[1], *map(int, sys.argv[2:7])
torch.manual_seed(0)
V = 32
chain = torch.distributions.Dirichlet(torch.full((V,), 0.1)).sample((V,))


def walk(n, g):
    """n sequences, each a walk on the chain."""
    x = torch.empty(n, n_ctx, dtype=torch.long)
    x[:, 0] = torch.randint(V, (n,), generator=g)
    for t in range(1, n_ctx):
        x[:, t] = torch.multinomial(chain[x[:, t - 1]], 1, generator=g).squeeze(1)
    return [{"input_ids": r, "labels": r} for r in x]


train, held_out = walk(batch * steps, torch.Generator().manual_seed(1)), walk(32, torch.Generator().manual_seed(2))
model = GPT2LMHeadModel(GPT2Config(vocab_size=V, n_positions=n_ctx, n_embd=d_model, n_layer=n_layer, n_head=1))
args = TrainingArguments(output_dir=out, max_steps=steps, per_device_train_batch_size=batch, learning_rate=1e-2,
                         eval_strategy="steps", eval_steps=steps // 2, logging_steps=steps // 2, save_steps=steps // 2,
                         report_to=[], use_cpu=True, disable_tqdm=True, seed=0)
Trainer(model=model, args=args, train_dataset=train, eval_dataset=held_out).train(
    resume_from_checkpoint="--resume" in sys.argv)
model.config.save_pretrained(out)
