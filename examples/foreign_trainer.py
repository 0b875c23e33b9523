"""A trainer that is not scalinglab's, run from a sweep through the metrics contract (see sweep/command.py).

    python examples/foreign_trainer.py --n_layer 1 --d_model 16 --batch_size 16 --n_ctx 16 --steps 120 \
        --lr 0.01 --seed 0 --out RUN_DIR

A small numpy language model (token embedding, n_layer residual tanh layers of width d_model, a softmax head;
hand-written backward pass and Adam) learns an order-1 Markov chain over 128 tokens that it generates itself.
It follows the contract a sweep expects of any trainer:
  * one JSON line per evaluation appended to $SCALINGLAB_METRICS: {"step", "tokens", "loss", "train_loss", "lr"},
    and a final record {"final": true, "loss", "n_params"} when done;
  * it resumes itself: a checkpoint (parameters, Adam moments, step, RNG state) in --out every --checkpoint_every
    steps, written atomically; started again with the same arguments it continues from there and ends with the
    same loss, bit for bit, as an uninterrupted run;
  * exit status 0 on success, non-zero (with a message on stderr) on failure.
`--fail_at STEP` stops with exit status 3 at that step once (a marker file in --out remembers it), which the tests
use to show a failed run being retried and resuming.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

VOCAB = 128
EVAL_PAIRS = 4096


def chain(seed: int = 1234) -> np.ndarray:
    """Transition matrix of the source: each row a sparse Dirichlet draw (a few likely successors per token)."""
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(VOCAB, 0.05), size=VOCAB)


def sample_pairs(trans: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n (token, next token) pairs with the token drawn uniformly and the next from the chain."""
    x = rng.integers(0, VOCAB, size=n)
    cdf = np.cumsum(trans[x], axis=1)
    y = (cdf < rng.random((n, 1))).sum(axis=1).clip(0, VOCAB - 1)
    return x, y


def init_params(n_layer: int, d_model: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = {"E": rng.normal(0, 1.0, (VOCAB, d_model)), "U": rng.normal(0, d_model ** -0.5, (d_model, VOCAB)),
         "c": np.zeros(VOCAB)}
    for i in range(n_layer):
        p[f"W{i}"] = rng.normal(0, d_model ** -0.5, (d_model, d_model))
        p[f"b{i}"] = np.zeros(d_model)
    return p


def n_params(p: dict[str, np.ndarray]) -> int:
    """Non-embedding parameters (the layers and the head), as Kaplan et al. count N."""
    return int(sum(v.size for k, v in p.items() if k != "E"))


def loss_and_grads(p: dict, x: np.ndarray, y: np.ndarray, n_layer: int, grads: bool = True):
    h = [p["E"][x]]
    zs = []
    for i in range(n_layer):
        z = np.tanh(h[-1] @ p[f"W{i}"] + p[f"b{i}"])
        zs.append(z)
        h.append(h[-1] + z)
    logits = h[-1] @ p["U"] + p["c"]
    logits -= logits.max(axis=1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    loss = float(-logp[np.arange(len(y)), y].mean())
    if not grads:
        return loss, None
    g = np.exp(logp)
    g[np.arange(len(y)), y] -= 1.0
    g /= len(y)
    out = {"U": h[-1].T @ g, "c": g.sum(axis=0)}
    gh = g @ p["U"].T
    for i in reversed(range(n_layer)):
        ga = gh * (1.0 - zs[i] ** 2)
        out[f"W{i}"] = h[i].T @ ga
        out[f"b{i}"] = ga.sum(axis=0)
        gh = gh + ga @ p[f"W{i}"].T
    gE = np.zeros_like(p["E"])
    np.add.at(gE, x, gh)
    out["E"] = gE
    return loss, out


def save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **{f"p_{k}": v for k, v in state["p"].items()}, **{f"m_{k}": v for k, v in state["m"].items()},
                 **{f"v_{k}": v for k, v in state["v"].items()},
                 meta=np.array(json.dumps({"step": state["step"], "rng": state["rng"].bit_generator.state})))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    z = np.load(path)
    meta = json.loads(str(z["meta"]))
    rng = np.random.default_rng()
    rng.bit_generator.state = meta["rng"]
    pick = lambda pre: {k[len(pre):]: z[k] for k in z.files if k.startswith(pre)}  # noqa: E731
    return {"p": pick("p_"), "m": pick("m_"), "v": pick("v_"), "step": meta["step"], "rng": rng}


def eval_steps(total: int) -> set[int]:
    """Log-spaced evaluation steps (and the last)."""
    return {int(s) for s in np.unique(np.geomspace(1, total, 12).round())} | {total}


def emit(record: dict) -> None:
    """Append one record to the metrics file the sweep reads (one line, flushed)."""
    with open(os.environ.get("SCALINGLAB_METRICS", "metrics.jsonl"), "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for k, t in (("n_layer", int), ("d_model", int), ("batch_size", int), ("n_ctx", int), ("steps", int),
                 ("lr", float), ("seed", int), ("checkpoint_every", int), ("fail_at", int)):
        ap.add_argument(f"--{k}", type=t, default={"checkpoint_every": 20, "fail_at": 0, "seed": 0}.get(k))
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "ckpt.npz"
    trans = chain()
    x_val, y_val = sample_pairs(trans, EVAL_PAIRS, np.random.default_rng(99))
    if ckpt.exists():
        st = load_checkpoint(ckpt)
    else:
        p = init_params(a.n_layer, a.d_model, a.seed)
        st = {"p": p, "m": {k: np.zeros_like(v) for k, v in p.items()},
              "v": {k: np.zeros_like(v) for k, v in p.items()}, "step": 0, "rng": np.random.default_rng(a.seed + 1)}
    p, m, v = st["p"], st["m"], st["v"]
    per_step = a.batch_size * a.n_ctx
    evals = eval_steps(a.steps)
    while st["step"] < a.steps:
        if a.fail_at and st["step"] == a.fail_at and not (out / "failed_once").exists():
            (out / "failed_once").write_text("1")
            print(f"foreign_trainer: simulated failure at step {st['step']}", file=sys.stderr)
            return 3
        step = st["step"] + 1
        lr = a.lr * 0.5 * (1 + math.cos(math.pi * (step - 1) / a.steps))  # cosine decay to 0
        x, y = sample_pairs(trans, per_step, st["rng"])
        train_loss, g = loss_and_grads(p, x, y, a.n_layer)
        for k in p:
            m[k] = 0.9 * m[k] + 0.1 * g[k]
            v[k] = 0.99 * v[k] + 0.01 * g[k] ** 2
            p[k] -= lr * (m[k] / (1 - 0.9 ** step)) / (np.sqrt(v[k] / (1 - 0.99 ** step)) + 1e-8)
        st["step"] = step
        if step in evals:
            val, _ = loss_and_grads(p, x_val, y_val, a.n_layer, grads=False)
            if not math.isfinite(val):
                print(f"foreign_trainer: loss became {val} at step {step}", file=sys.stderr)
                return 4
            emit({"step": step, "tokens": step * per_step, "loss": val, "train_loss": train_loss, "lr": lr})
        if step % a.checkpoint_every == 0 or step == a.steps:
            save_checkpoint(ckpt, st)
    val, _ = loss_and_grads(p, x_val, y_val, a.n_layer, grads=False)
    emit({"final": True, "loss": val, "n_params": n_params(p), "steps": a.steps, "tokens": a.steps * per_step})
    return 0


if __name__ == "__main__":
    sys.exit(main())
