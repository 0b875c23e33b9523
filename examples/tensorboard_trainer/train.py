"""A small trainer that logs its curve with torch.utils.tensorboard and knows nothing of scalinglab.

    python train.py --logdir runs/x --width 16 --steps 40 --batch 8 --ctx 16 --lr 0.01

A one-layer MLP language model (token embedding -> width -> next token) on a fixed random Markov chain over 64
tokens; every `--eval_every` steps it writes the scalars `val/loss`, `train/loss` and `lr` at that step. A sweep reads
them from the event files: see docs/how-to/any-trainer.md.
"""

import argparse
import os

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.tensorboard import SummaryWriter

ap = argparse.ArgumentParser()
ap.add_argument("--logdir", required=True)
ap.add_argument("--width", type=int, default=16)
ap.add_argument("--steps", type=int, default=40)
ap.add_argument("--batch", type=int, default=8)
ap.add_argument("--ctx", type=int, default=16)
ap.add_argument("--lr", type=float, default=0.01)
ap.add_argument("--eval_every", type=int, default=10)
a = ap.parse_args()
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
V = 64
torch.manual_seed(1234)
chain = torch.distributions.Dirichlet(torch.full((V,), 0.1)).sample((V,))
gen, held_out = torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)


def batch(g, n):
    x = torch.randint(V, (n * a.ctx,), generator=g)
    return x, torch.multinomial(chain[x], 1, generator=g).squeeze(1)


model = nn.Sequential(nn.Embedding(V, a.width), nn.Linear(a.width, a.width), nn.GELU(), nn.Linear(a.width, V))
opt = torch.optim.Adam(model.parameters(), lr=a.lr)
x_val, y_val = batch(held_out, 64)
writer = SummaryWriter(a.logdir)
for step in range(1, a.steps + 1):
    x, y = batch(gen, a.batch)
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % a.eval_every == 0 or step == a.steps:
        with torch.no_grad():
            val = F.cross_entropy(model(x_val), y_val).item()
        writer.add_scalar("val/loss", val, step)
        writer.add_scalar("train/loss", loss.item(), step)
        writer.add_scalar("lr", a.lr, step)
        writer.flush()
writer.close()
