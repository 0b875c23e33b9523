"""A nanoGPT-style trainer (same flags, same log lines, same checkpoint and resume) that knows nothing of scalinglab.

    python train.py --out_dir=out --n_layer=2 --n_head=1 --n_embd=32 --block_size=32 --batch_size=8 \
        --max_iters=100 --eval_interval=20 --learning_rate=1e-2 [--init_from=resume]

Like karpathy/nanoGPT's train.py it takes `--key=value` overrides of its globals, prints
    step 20: train loss 4.1234, val loss 4.2345        (every eval_interval iterations, and at the last one)
    iter 20: loss 4.1000, time 12.34ms, mfu -100.00%   (every log_interval iterations)
and keeps `ckpt.pt` (model, optimizer, iter_num) in out_dir, which `--init_from=resume` continues from. Its data are
random tokens, each followed by a draw from a fixed sparse Markov chain over 64 tokens (generated here: no
download), so the loss falls.
A sweep reads its curve from its stdout: see docs/how-to/any-trainer.md and plan.toml beside this file.
"""

import math
import os
import sys
import time

import torch
from torch import nn
from torch.nn import functional as F

# -- config (nanoGPT style: globals overridden by --key=value) --
out_dir = "out"
eval_interval = 20
log_interval = 10
eval_iters = 4
init_from = "scratch"  # or "resume"
n_layer = 2
n_head = 1
n_embd = 32
block_size = 32
batch_size = 8
gradient_accumulation_steps = 1
max_iters = 100
learning_rate = 1e-2
seed = 1337
vocab_size = 64
for arg in sys.argv[1:]:
    key, _, val = arg.removeprefix("--").partition("=")
    if key not in globals() or key.startswith("_"):
        sys.exit(f"unknown config key: {key}")
    globals()[key] = type(globals()[key])(val)

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
torch.manual_seed(1234)  # the data source is the same for every run
chain = torch.distributions.Dirichlet(torch.full((vocab_size,), 0.1)).sample((vocab_size,))
torch.manual_seed(seed)
train_gen = torch.Generator().manual_seed(seed)


def get_batch(split, g=None):
    """Tokens drawn at random, each followed by a draw from the chain: the model has to learn the chain."""
    x = torch.randint(vocab_size, (batch_size, block_size), generator=g or train_gen)
    y = torch.multinomial(chain[x.view(-1)], 1, generator=g or train_gen).view(batch_size, block_size)
    return x, y


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)
        self.attn = nn.MultiheadAttention(n_embd, n_head, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd))

    def forward(self, x):
        mask = torch.triu(torch.ones(x.size(1), x.size(1), dtype=torch.bool), 1)
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab_size, n_embd), nn.Embedding(block_size, n_embd)
        self.blocks = nn.Sequential(*[Block() for _ in range(n_layer)])
        self.ln_f, self.lm_head = nn.LayerNorm(n_embd), nn.Linear(n_embd, vocab_size, bias=False)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.size(1)))
        logits = self.lm_head(self.ln_f(self.blocks(x)))
        return F.cross_entropy(logits.view(-1, vocab_size), targets.reshape(-1))


model = GPT()
optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
iter_num = 0
ckpt_path = os.path.join(out_dir, "ckpt.pt")
if init_from == "resume":
    ckpt = torch.load(ckpt_path, weights_only=True)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    iter_num = int(ckpt["iter_num"])
    print(f"resuming from iteration {iter_num}")
print(f"number of parameters: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M")


@torch.no_grad()
def estimate_loss():
    model.eval()
    out = {}
    for split in ("train", "val"):  # the same held-out batches at every evaluation
        g = torch.Generator().manual_seed(10_000 + (split == "val"))
        out[split] = sum(model(*get_batch(split, g)).item() for _ in range(eval_iters)) / eval_iters
    model.train()
    return out


def get_lr(it):  # cosine decay to a tenth, like nanoGPT's (without its warmup)
    return learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(it, max_iters) / max_iters)))


os.makedirs(out_dir, exist_ok=True)
t0 = time.time()
while True:
    for group in optimizer.param_groups:
        group["lr"] = get_lr(iter_num)
    if iter_num % eval_interval == 0 or iter_num == max_iters:
        losses = estimate_loss()
        print(f"step {iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
        if iter_num > 0:
            tmp = ckpt_path + ".tmp"
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "iter_num": iter_num}, tmp)
            os.replace(tmp, ckpt_path)
    if iter_num >= max_iters:
        break
    for _ in range(gradient_accumulation_steps):
        loss = model(*get_batch("train")) / gradient_accumulation_steps
        loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    iter_num += 1
    if iter_num % log_interval == 0:
        dt, t0 = time.time() - t0, time.time()
        print(f"iter {iter_num}: loss {loss.item() * gradient_accumulation_steps:.4f}, time {dt * 1000:.2f}ms, "
              f"mfu -100.00%")
