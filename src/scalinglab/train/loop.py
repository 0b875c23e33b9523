"""`run_training`: one training run of the paper's recipe, with learning curves and exact resume.

Recipe (Kaplan et al. 2020 §2.2, App. D): AdamW, linear warmup then cosine decay, gradient clipping,
dropout, LR(N) from the paper's fit when `lr="auto"` (see `schedule.py`). On every `noise_scale_every`-th
step the batch is split into `noise_scale_micro_batches` micro-batches whose gradients accumulate; their
norms give the gradient noise scale B_simple almost for free (`noise_scale.py`). Evaluations at log-spaced
steps (plus the last) on fixed held-out windows of the val split and of every extra eval set record tokens,
FLOPs, PF-days, wall time, losses and B_simple (`accounting.py`, `evaluate.py`).

Files in `out_dir`: config.json (the TrainConfig), metrics.jsonl (one evaluation record per line),
checkpoint.pt (every `checkpoint_every_steps` steps and at the end) and result.json — all written
atomically. Calling again with the same config resumes from checkpoint.pt (bit for bit on CPU: model,
optimiser, step, RNG states, data position and all bookkeeping are restored; evaluation draws no random
numbers); a finished run returns its result.json. A different config in the same folder is refused
unless `overwrite=True`.

A run whose training loss becomes NaN/inf, whose gradient norm is not finite, or whose loss exceeds
`BLOWUP_FACTOR` × the first step's loss stops and returns status "diverged" with the reason (no exception:
a sweep goes on; the `train` command exits 3).
"""

from __future__ import annotations

import functools
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from scalinglab.config import TrainConfig
from scalinglab.data.corpus import Corpus
from scalinglab.data.loader import WindowLoader
from scalinglab.errors import UserError
from scalinglab.io import atomic_write_json, atomic_write_text, json_safe, read_json
from scalinglab.model import build_model
from scalinglab.progress import Progress
from scalinglab.train import runtime
from scalinglab.train.accounting import Accounting
from scalinglab.train.checkpoint import CHECKPOINT, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from scalinglab.train.evaluate import Evaluator
from scalinglab.train.noise_scale import MicroBatchNorms, NoiseScaleEstimator
from scalinglab.train.optim import make_optimizer, resolve_device
from scalinglab.train.schedule import eval_steps, lr_at, resolve_lr, warmup_steps

CONFIG = "config.json"
METRICS = "metrics.jsonl"
RESULT = "result.json"
BLOWUP_FACTOR = 3.0
RESUME_IGNORES = ("threads",)  # may differ between an interrupted run and its continuation


def _comparable(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k not in RESUME_IGNORES}


def _prepare_out(out: Path, cfg_dict: dict, overwrite: bool) -> dict | None:
    """Check `out` against the run's config; returns the stored result when the run is already finished."""
    if out.exists() and not out.is_dir():
        raise UserError(f"run folder {out} exists and is not a folder")
    cfg_path = out / CONFIG
    if cfg_path.exists():
        old = read_json(cfg_path, "run config")
        old_c, new_c = _comparable(old if isinstance(old, dict) else {}), _comparable(cfg_dict)
        if old_c != new_c and not overwrite:
            key = next((k for k in sorted(set(old_c) | set(new_c)) if old_c.get(k) != new_c.get(k)), "?")
            raise UserError(
                f"{out} holds a run with a different config ({key}: {old_c.get(key)!r} → {new_c.get(key)!r}); "
                "use --overwrite to replace it or choose another --out"
            )
        if overwrite:
            for name in (CHECKPOINT, METRICS, RESULT):
                (out / name).unlink(missing_ok=True)
        elif (out / RESULT).exists():
            return read_json(out / RESULT, "run result")
    atomic_write_json(cfg_path, cfg_dict)
    return None



def _write_metrics(out: Path, curve: list[dict]) -> None:
    atomic_write_text(out / METRICS, "".join(json.dumps(json_safe(r), allow_nan=False) + "\n" for r in curve))


def run_training(
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    progress: bool | None = None,
    on_eval: Callable[[dict], None] | None = None,
    overwrite: bool = False,
) -> dict:
    """Train (or resume, or return the finished result of) the run `cfg` in `out_dir`.

    progress: True = rich progress bar on stderr, None = bar on a terminal and plain log lines
    otherwise, False = silent. on_eval: called with each new evaluation record.
    Returns the result dict (also written to out_dir/result.json); status "done" or "diverged".
    """
    out = Path(out_dir)
    corpus = Corpus.open(cfg.corpus)
    mcfg = cfg.model(corpus.vocab_size)
    cfg_dict = json.loads(cfg.model_dump_json())
    device = resolve_device(cfg.device)

    # Everything that can reject the input happens before the run folder is touched.
    loader = WindowLoader(corpus.tokens("train"), cfg.n_ctx, cfg.batch_size, seed=cfg.seed, data_tokens=cfg.data_tokens)
    splits = {"val": corpus.tokens("val"), **{n: corpus.tokens(n) for n in corpus.eval_set_names if n != "val"}}
    evaluator = Evaluator(splits, cfg.n_ctx, cfg.eval_tokens, corpus.vocab_size, device)
    finished = _prepare_out(out, cfg_dict, overwrite)
    if finished is not None:
        return finished

    # The same runtime setup as `scalinglab bench train` (threads, allocator, compile on CUDA, bf16 autocast).
    threads = runtime.setup_runtime(cfg.threads, device)["threads"]
    dtype = runtime.compute_dtype(device)
    torch.manual_seed(cfg.seed)  # the init depends only on the seed
    model = build_model(mcfg).to(device)
    forward = runtime.prepare_model(model, device)  # compiled on CUDA; `model` keeps the weights

    def autocast():
        return runtime.autocast(device)
    acct = Accounting.for_model(mcfg, cfg.batch_size)
    peak = resolve_lr(cfg.lr, acct.n_params)
    total = cfg.total_steps
    warm = warmup_steps(cfg.warmup, total)
    opt = make_optimizer(model, peak, cfg.weight_decay, (cfg.beta1, cfg.beta2), device)
    params = [p for p in model.parameters() if p.requires_grad]
    n_micro = min(cfg.noise_scale_micro_batches, cfg.batch_size)
    norms = MicroBatchNorms(params) if n_micro >= 2 else None
    noise = NoiseScaleEstimator()
    to_eval = set(eval_steps(total, cfg.eval_every))
    st: dict = {
        "step": 0, "curve": [], "best_val_loss": None, "best_step": None, "bad_evals": 0,
        "initial_loss": None, "wall_s": 0.0, "train_s": 0.0, "loss_sum": 0.0, "loss_n": 0,
        "last_loss": None, "val_loss_per_position": None, "early_stopped": False, "resumed_from": [],
    }

    ckpt_path = out / CHECKPOINT
    if ckpt_path.exists():
        ck = load_checkpoint(ckpt_path)
        if ck.get("config") != _comparable(cfg_dict):
            raise UserError(f"{ckpt_path} belongs to a different config; use --overwrite to start again")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        loader.load_state_dict(ck["loader"])
        noise.load_state_dict(ck["noise"])
        st = ck["run"]
        set_rng_state(ck["rng"])
        st["resumed_from"].append(st["step"])
    _write_metrics(out, st["curve"])  # drop records written after the checkpoint by an interrupted run

    def checkpoint() -> None:
        save_checkpoint(ckpt_path, {
            "format": "scalinglab-checkpoint", "version": 1, "config": _comparable(cfg_dict),
            "model": model.state_dict(), "optimizer": opt.state_dict(), "loader": loader.state_dict(),
            "noise": noise.state_dict(), "rng": rng_state(), "run": st,
        })

    mark = time.perf_counter()

    def tick() -> None:
        nonlocal mark
        now = time.perf_counter()
        st["wall_s"] += now - mark
        mark = now

    def evaluate(step: int, lr: float) -> dict:
        per_pos = evaluator(model, autocast, forward)
        tick()
        b = noise.b_simple
        acc = acct.at(step)
        rec = {
            **acc, "wall_s": st["wall_s"], "tokens_per_s": acc["tokens"] / max(st["wall_s"], 1e-9), "lr": lr,
            "train_loss": st["loss_sum"] / st["loss_n"] if st["loss_n"] else st["last_loss"],
            "val_loss": float(per_pos["val"].mean()),
            "noise_scale": None if b is None else b * cfg.n_ctx, "noise_scale_seqs": b,
            "eval_losses": {n: float(v.mean()) for n, v in per_pos.items() if n != "val"},
            "epochs": loader.epochs,
        }
        st["loss_sum"], st["loss_n"] = 0.0, 0
        st["val_loss_per_position"] = per_pos["val"].tolist()
        st["curve"].append(rec)
        _write_metrics(out, st["curve"])
        val = rec["val_loss"]
        if math.isfinite(val) and (st["best_val_loss"] is None or val < st["best_val_loss"]):
            st["best_val_loss"], st["best_step"], st["bad_evals"] = val, step, 0
        else:
            st["bad_evals"] += 1
            st["early_stopped"] = bool(cfg.early_stop and st["bad_evals"] >= cfg.patience)
        return rec

    lines = progress is None and not sys.stderr.isatty()  # piped: one plain line per evaluation
    rep = Progress("train", total, enabled=progress, completed=st["step"],
                   fallback=functools.partial(print, file=sys.stderr, flush=True) if lines else None)
    if st["resumed_from"] and st["resumed_from"][-1] == st["step"]:
        rep.log(f"resumed {out} from step {st['step']}")
    status, reason, lr = "done", None, lr_at(max(st["step"], 1), peak=peak, total_steps=total, warmup=warm,
                                             schedule=cfg.schedule, min_lr_ratio=cfg.min_lr_ratio)
    model.train()
    try:
        while st["step"] < total and not st["early_stopped"]:
            step = st["step"] + 1
            t0 = time.perf_counter()
            lr = lr_at(step, peak=peak, total_steps=total, warmup=warm, schedule=cfg.schedule,
                       min_lr_ratio=cfg.min_lr_ratio)
            for group in opt.param_groups:
                group["lr"] = lr
            x, y = loader.next_batch()
            x, y = x.to(device), y.to(device)
            opt.zero_grad(set_to_none=True)
            # Noise-scale steps split the batch (smaller matmuls cost ~5-10% on CPU); the others run it whole.
            measure = norms is not None and step % cfg.noise_scale_every == 0
            pieces = list(zip(x.tensor_split(n_micro), y.tensor_split(n_micro), strict=True)) if measure else [(x, y)]
            if measure:
                norms.start()
            step_loss = torch.zeros((), device=device)
            for i, (xb, yb) in enumerate(pieces):
                w = xb.shape[0] / x.shape[0]
                with autocast():
                    _, loss = forward(xb, yb)
                (loss * w).backward()
                step_loss += loss.detach().float() * w
                if measure:
                    norms.after_backward(xb.shape[0], w, last=i == len(pieces) - 1)
            if cfg.grad_clip > 0:
                gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip, foreach=True)
            else:
                gnorm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm([p.grad for p in params if p.grad is not None])))
            loss_v, gnorm_v = float(step_loss), float(gnorm)
            st["last_loss"] = loss_v
            if not math.isfinite(loss_v):
                status, reason = "diverged", f"training loss is {loss_v} at step {step}"
            elif not math.isfinite(gnorm_v):
                status, reason = "diverged", f"gradient norm is {gnorm_v} at step {step}"
            elif st["initial_loss"] is not None and loss_v > BLOWUP_FACTOR * st["initial_loss"]:
                status, reason = "diverged", (
                    f"training loss {loss_v:.4g} at step {step} exceeds {BLOWUP_FACTOR:g}× the first step's "
                    f"{st['initial_loss']:.4g}")
            if status == "diverged":
                break
            if st["initial_loss"] is None:
                st["initial_loss"] = loss_v
            opt.step()
            if measure:
                small_sq, b_small = norms.small_sq()
                noise.update(small_sq, gnorm_v**2, b_small, x.shape[0])
            st["step"] = step
            st["loss_sum"] += loss_v
            st["loss_n"] += 1
            st["train_s"] += time.perf_counter() - t0
            info = None
            if step in to_eval:
                rec = evaluate(step, lr)
                info = f"val {rec['val_loss']:.4f}"
                rep.log(
                    f"step {step}/{total} tokens {rec['tokens']:,} train {rec['train_loss']:.4f} "
                    f"val {rec['val_loss']:.4f} lr {lr:.3g} B_simple "
                    f"{'n/a' if rec['noise_scale'] is None else format(rec['noise_scale'], '.3g')} tokens "
                    f"tok/s {rec['tokens_per_s']:,.0f}"
                )
                if on_eval is not None:
                    on_eval(json_safe(rec))
                if not math.isfinite(rec["val_loss"]):
                    status, reason = "diverged", f"validation loss is {rec['val_loss']} at step {step}"
                    break
            if cfg.checkpoint_every_steps and step % cfg.checkpoint_every_steps == 0 and step < total:
                tick()
                checkpoint()
            rep.update(step, info)
        tick()
        if status == "done":
            if not st["curve"] or st["curve"][-1]["step"] != st["step"]:
                evaluate(st["step"], lr)
            tick()
            checkpoint()
    finally:
        rep.close()

    last = st["curve"][-1] if st["curve"] else {}
    acc = acct.at(st["step"])
    result = {
        "status": status,
        "reason": reason,
        "early_stopped": st["early_stopped"],
        "steps": st["step"],
        **{k: acc[k] for k in ("tokens", "examples", "flops", "flops_no_context", "pf_days")},
        "total_steps": total,
        "n_params": acct.n_params,
        "n_params_with_embeddings": acct.n_params_with_embeddings,
        "n_embedding": acct.n_embedding,
        "val_loss": last.get("val_loss"),
        "best_val_loss": st["best_val_loss"],
        "best_step": st["best_step"],
        "train_loss": st["last_loss"] if status == "diverged" else last.get("train_loss"),
        "noise_scale": last.get("noise_scale"),
        "noise_scale_seqs": last.get("noise_scale_seqs"),
        "val_loss_per_position": st["val_loss_per_position"],
        "eval_losses": last.get("eval_losses", {}),
        "wall_s": st["wall_s"],
        "tokens_per_s": acc["tokens"] / max(st["wall_s"], 1e-9),
        "train_tokens_per_s": acc["tokens"] / max(st["train_s"], 1e-9),
        "threads": threads,
        "device": str(device),
        "dtype": dtype,
        "lr": peak,
        "warmup_steps": warm,
        "epochs": loader.epochs,
        "resumed_from": st["resumed_from"],
        "config": cfg_dict,
        "curve": st["curve"],
    }
    result = json_safe(result)
    atomic_write_json(out / RESULT, result)
    return result
