"""`run_training`: one training run of the paper's recipe, with learning curves and exact resume.

Recipe (Kaplan et al. 2020 §2.2, App. D): AdamW, linear warmup then cosine decay, gradient clipping,
dropout, LR(N) from the paper's fit when `lr="auto"` (see `schedule.py`). Each step is `step.train_step`;
on every `noise_scale_every`-th step its batch is split into `noise_scale_micro_batches` micro-batches
whose gradient norms give the gradient noise scale B_simple almost for free (`noise_scale.py`).
Evaluations at log-spaced steps (plus the last) on fixed held-out windows of the val split and of every
extra eval set record tokens, FLOPs, PF-days, wall time, losses and B_simple (`accounting.py`,
`evaluate.py`); each record goes to metrics.jsonl and to every `on_eval` callback.

Files in `out_dir` (`rundir.py`): config.json, metrics.jsonl, checkpoint.pt (every `checkpoint_every_steps`
steps and at the end, `state.py`) and result.json. Calling again with the same config resumes from
checkpoint.pt (bit for bit on CPU: evaluation draws no random numbers); a finished run returns its
result.json. Under `torchrun`, or with `nproc_per_node` > 1 (then torchrun is started here), the run is
data-parallel over the processes (`distributed.py`).

A run whose training loss becomes NaN/inf, whose gradient norm is not finite, or whose loss exceeds
`BLOWUP_FACTOR` × the first step's loss stops and returns status "diverged" with the reason (no exception:
a sweep goes on; the `train` command exits 3). The calling process's threads, TF32 flags and RNG states
are the same afterwards (`runtime.session`).
"""

from __future__ import annotations

import functools
import json
import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from scalinglab.config import TrainConfig
from scalinglab.data.corpus import Corpus
from scalinglab.data.loader import WindowLoader
from scalinglab.errors import UserError
from scalinglab.io import json_safe, read_json
from scalinglab.model import build_model
from scalinglab.progress import Progress
from scalinglab.train import branches, distributed, runtime, state
from scalinglab.train.accounting import Accounting
from scalinglab.train.distributed import GradSync, Ranks
from scalinglab.train.evaluate import Evaluator
from scalinglab.train.noise_scale import MicroBatchNorms, NoiseScaleEstimator
from scalinglab.train.optim import make_optimizer, resolve_device
from scalinglab.train.rundir import CHECKPOINT, RESULT, comparable, prepare_out, write_metrics, write_result
from scalinglab.train.schedule import eval_steps, lr_at, resolve_lr, warmup_steps
from scalinglab.train.state import RunState, Trainable
from scalinglab.train.step import StepPlan, StepStats, train_step

BLOWUP_FACTOR = 3.0
EvalHook = Callable[[dict], None]


def run_training(
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    progress: bool | None = None,
    on_eval: EvalHook | Iterable[EvalHook] | None = None,
    overwrite: bool = False,
    pause_at: int | None = None,
) -> dict:
    """Train (or resume, or return the finished result of) the run `cfg` in `out_dir`.

    progress: True = rich progress bar on stderr, None = bar on a terminal and plain log lines
    otherwise, False = silent. on_eval: a callable, or several, called with each new evaluation record.
    pause_at: stop after this step with a checkpoint and return the run so far with status "paused" (nothing
    written to result.json), so that a sweep can look at the curve and resume the run, bit-exact, or prune it
    (`sweep/prune.py`); a run already past it pauses at once.
    Returns the result dict (also written to out_dir/result.json); status "done" or "diverged".
    """
    out, ranks = Path(out_dir), Ranks.from_env()
    world = distributed.world_size_for(cfg.nproc_per_node, ranks)
    hooks = [on_eval] if callable(on_eval) else list(on_eval or ())
    cfg_dict = json.loads(cfg.model_dump_json())
    corpus = Corpus.open(cfg.corpus)
    # Everything that can reject the input happens before the run folder is touched.
    rt = runtime.resolve(ranks.device(resolve_device(cfg.device)), cfg.compile, cfg.precision)
    device = rt.device
    loader = WindowLoader(corpus.tokens("train"), cfg.n_ctx, cfg.batch_size, seed=cfg.seed, data_tokens=cfg.data_tokens)
    splits = {"val": corpus.tokens("val"), **{n: corpus.tokens(n) for n in corpus.eval_set_names if n != "val"}}
    evaluator = Evaluator(splits, cfg.n_ctx, cfg.eval_tokens, corpus.vocab_size, device)
    distributed.split(cfg.batch_size, world)
    if world > ranks.world_size:
        if pause_at is not None:
            raise UserError("a run on several processes (nproc_per_node) cannot pause for pruning")
        return _launch(cfg, out, cfg_dict, overwrite, hooks)
    with distributed.process_group(ranks, device), runtime.session(ranks.threads(cfg.threads), device) as threads:
        finished = distributed.broadcast(ranks, prepare_out(out, cfg_dict, overwrite) if ranks.is_main else None)
        if finished is not None:
            return finished
        run = _Run.build(cfg, corpus.vocab_size, rt, ranks, loader, evaluator)
        ckpt = out / CHECKPOINT
        st = state.restore(ckpt, run.parts, comparable(cfg_dict), ranks) if ckpt.exists() else RunState()
        if ranks.is_main:
            write_metrics(out, st.curve)  # drop records written after the checkpoint by an interrupted run
        total, to_eval = cfg.total_steps, set(eval_steps(cfg.total_steps, cfg.eval_every))
        forks = branches.fork_steps(out)  # WSD trunks keep these checkpoints for their cooldown branches
        rep = _progress(progress if ranks.is_main else False, total, st.step)
        if st.resumed_from and st.resumed_from[-1] == st.step:
            rep.log(f"resumed {out} from step {st.step}")
        clock = _Clock(st)
        status, reason, lr = "done", None, run.lr(max(st.step, 1))
        run.parts.model.train()
        stop = total if pause_at is None else min(total, max(pause_at, st.step))
        try:
            while st.step < stop and not st.early_stopped:
                step, t0 = st.step + 1, time.perf_counter()
                lr = run.set_lr(step)
                stats = run.step(step)
                st.last_loss = stats.loss
                reason = _divergence(stats, st.initial_loss, step)
                if reason:
                    status = "diverged"
                    break
                if st.initial_loss is None:
                    st.initial_loss = stats.loss
                run.observe_noise(stats)
                st.record_step(step, stats.loss, time.perf_counter() - t0)
                info = None
                if step in to_eval:
                    rec, bad = _evaluate(run, st, clock, out, step, lr)
                    if rec is not None:
                        info = f"val {rec['val_loss']:.4f}"
                        rep.log(_eval_line(rec, step, total, lr))
                        for hook in hooks:  # trackers (mlflow, tensorboard, wandb, ...) plug in here
                            hook(json_safe(rec))
                    if bad:
                        status, reason = "diverged", f"validation loss is {rec['val_loss'] if rec else 'nan'} at step {step}"
                        break
                if cfg.checkpoint_every_steps and step % cfg.checkpoint_every_steps == 0 and step < total:
                    clock.tick()
                    state.save(ckpt, st, run.parts, comparable(cfg_dict), ranks)
                if step in forks:
                    clock.tick()
                    state.save(branches.fork_path(out, step), st, run.parts, comparable(cfg_dict), ranks)
                rep.update(step, info)
            clock.tick()
            if status == "done" and st.step < total and not st.early_stopped:  # paused at `pause_at`
                state.save(ckpt, st, run.parts, comparable(cfg_dict), ranks)
                return _result(run, st, "paused", None, threads, cfg_dict)
            if status == "done":
                if distributed.broadcast_flags(ranks, device, not st.curve or st.curve[-1]["step"] != st.step)[0]:
                    _evaluate(run, st, clock, out, st.step, lr)
                clock.tick()
                state.save(ckpt, st, run.parts, comparable(cfg_dict), ranks)
        finally:
            rep.close()
        result = _result(run, st, status, reason, threads, cfg_dict)
        return distributed.broadcast(ranks, write_result(out, result) if ranks.is_main else None)


@dataclass
class _Run:
    """What a run is built from: model, optimiser, data, schedule, step plan and the evaluator."""

    cfg: TrainConfig
    ranks: Ranks
    rt: runtime.Runtime
    parts: Trainable
    forward: Callable  # what the training step calls (the DDP module on several processes)
    eval_forward: Callable  # the model itself, compiled when the runtime compiles
    params: list[torch.Tensor]
    plan: StepPlan
    norms: MicroBatchNorms | None
    sync: GradSync | None
    acct: Accounting
    peak: float
    warm: int
    evaluator: Evaluator

    @classmethod
    def build(cls, cfg: TrainConfig, vocab_size: int, rt: runtime.Runtime, ranks: Ranks, loader: WindowLoader,
              evaluator: Evaluator) -> _Run:
        mcfg, device = cfg.model(vocab_size), rt.device
        torch.manual_seed(cfg.seed)  # the init depends only on the seed
        model = build_model(mcfg).to(device)
        compiled = rt.prepare(model)  # what forward passes call; `model` keeps the weights (no `_orig_mod.` names)
        distributed.seed_rank(cfg.seed, ranks)
        acct = Accounting.for_model(mcfg, cfg.batch_size)
        peak = resolve_lr(cfg.lr, acct.n_params)
        opt = make_optimizer(model, peak, cfg.weight_decay, (cfg.beta1, cfg.beta2), device)
        params = [p for p in model.parameters() if p.requires_grad]
        plan = StepPlan.for_run(ranks.share(cfg.batch_size), cfg.micro_batch_size, cfg.noise_scale_micro_batches,
                                cfg.noise_scale_every, distributed=ranks.distributed)
        forward, sync = distributed.wrap(model, compiled, device, ranks)
        return cls(cfg, ranks, rt, Trainable(model, opt, loader, NoiseScaleEstimator(), rt.scaler()), forward, compiled,
                   params, plan, MicroBatchNorms(params) if plan.micro_batches >= 2 else None, sync, acct, peak,
                   warmup_steps(cfg.warmup, cfg.total_steps), evaluator)

    @property
    def device(self) -> torch.device:
        return self.rt.device

    def autocast(self):
        return self.rt.autocast()

    def lr(self, step: int) -> float:
        c = self.cfg
        return lr_at(step, peak=self.peak, total_steps=c.total_steps, warmup=self.warm, schedule=c.schedule,
                     min_lr_ratio=c.min_lr_ratio, decay_fraction=c.decay_fraction)

    def set_lr(self, step: int) -> float:
        lr = self.lr(step)
        for group in self.parts.opt.param_groups:
            group["lr"] = lr
        return lr

    def step(self, step: int) -> StepStats:
        """Step `step` on the next batch (this rank's share of it)."""
        x, y = self.parts.loader.next_batch()
        if self.ranks.distributed:
            x, y = self.ranks.shard(x), self.ranks.shard(y)
            self.sync.measure = self.plan.measures(step, distributed=True)
        measure = self.plan.measures(step, self.ranks.distributed)
        return train_step(
            runtime.to_device(x, self.device), runtime.to_device(y, self.device), forward=self.forward,
            params=self.params, opt=self.parts.opt, pieces=self.plan.pieces(step, self.ranks.distributed),
            grad_clip=self.cfg.grad_clip, norms=self.norms if measure and self.sync is None else None,
            autocast=self.autocast, sync=self.sync, scaler=self.parts.scaler,
        )

    def observe_noise(self, stats: StepStats) -> None:
        if stats.small_sq is not None:
            self.parts.noise.update(stats.small_sq, stats.grad_norm**2, stats.b_small, self.cfg.batch_size)


def _launch(cfg: TrainConfig, out: Path, cfg_dict: dict, overwrite: bool, hooks: list[EvalHook]) -> dict:
    """Train on `nproc_per_node` processes that torchrun starts here (they resume from a checkpoint like any run).

    The ranks evaluate, so the `on_eval` hooks get the run's evaluation records when it has finished."""
    finished = prepare_out(out, cfg_dict, overwrite)
    if finished is not None:
        return finished
    state.check_world_size(out / CHECKPOINT, cfg.nproc_per_node)
    rc = distributed.launch(out, cfg.nproc_per_node, cfg.threads)
    if not (out / RESULT).exists():
        raise RuntimeError(f"torchrun with {cfg.nproc_per_node} processes exited {rc} before the run finished "
                           "(its stderr says why); run again to resume from the last checkpoint")
    result = read_json(out / RESULT, "run result")
    for rec in result.get("curve", []):
        for hook in hooks:
            hook(rec)
    return result


class _Clock:
    """Adds the wall time since the last tick to the run's `wall_s` (which survives a resume)."""

    def __init__(self, st: RunState):
        self.st, self.mark = st, time.perf_counter()

    def tick(self) -> None:
        now = time.perf_counter()
        self.st.wall_s += now - self.mark
        self.mark = now


def _divergence(stats: StepStats, initial_loss: float | None, step: int) -> str | None:
    """Why the run stops at this step, or None."""
    if not math.isfinite(stats.loss):
        return f"training loss is {stats.loss} at step {step}"
    if not math.isfinite(stats.grad_norm) and not stats.overflow:  # an fp16 overflow only lowers the loss scale
        return f"gradient norm is {stats.grad_norm} at step {step}"
    if initial_loss is not None and stats.loss > BLOWUP_FACTOR * initial_loss:
        return (f"training loss {stats.loss:.4g} at step {step} exceeds {BLOWUP_FACTOR:g}× the first step's "
                f"{initial_loss:.4g}")
    return None


def _evaluate(run: _Run, st: RunState, clock: _Clock, out: Path, step: int, lr: float) -> tuple[dict | None, bool]:
    """Rank 0 evaluates, records and writes metrics.jsonl; every rank learns rank 0's early-stop and NaN verdicts.

    Returns (the record on rank 0, else None; whether the validation loss is not finite)."""
    rec = None
    if run.ranks.is_main:
        per_pos = run.evaluator(run.parts.model, run.autocast, run.eval_forward)
        clock.tick()
        b = run.parts.noise.b_simple
        acc = run.acct.at(step)
        rec = {
            **acc, "wall_s": st.wall_s, "tokens_per_s": acc["tokens"] / max(st.wall_s, 1e-9), "lr": lr,
            "train_loss": st.take_train_loss(), "val_loss": float(per_pos["val"].mean()),
            "noise_scale": None if b is None else b * run.cfg.n_ctx, "noise_scale_seqs": b,
            "eval_losses": {n: float(v.mean()) for n, v in per_pos.items() if n != "val"},
            "epochs": run.parts.loader.epochs,
        }
        st.record_eval(rec, per_pos["val"].tolist(), run.cfg.early_stop, run.cfg.patience)
        write_metrics(out, st.curve)
    else:
        st.take_train_loss()
    bad = rec is not None and not math.isfinite(rec["val_loss"])
    st.early_stopped, bad = distributed.broadcast_flags(run.ranks, run.device, st.early_stopped, bad)
    return rec, bad


def _eval_line(rec: dict, step: int, total: int, lr: float) -> str:
    b = "n/a" if rec["noise_scale"] is None else format(rec["noise_scale"], ".3g")
    return (f"step {step}/{total} tokens {rec['tokens']:,} train {rec['train_loss']:.4f} val {rec['val_loss']:.4f} "
            f"lr {lr:.3g} B_simple {b} tokens tok/s {rec['tokens_per_s']:,.0f}")


def _progress(progress: bool | None, total: int, start: int) -> Progress:
    """A bar on a terminal (or when asked), one plain stderr line per evaluation when piped, or nothing."""
    lines = progress is None and not sys.stderr.isatty()
    return Progress("train", total, enabled=progress, completed=start,
                    fallback=functools.partial(print, file=sys.stderr, flush=True) if lines else None)


def _result(run: _Run, st: RunState, status: str, reason: str | None, threads: int, cfg_dict: dict) -> dict:
    last = st.curve[-1] if st.curve else {}
    acc = run.acct.at(st.step)
    return {
        "status": status,
        "reason": reason,
        "early_stopped": st.early_stopped,
        "steps": st.step,
        **{k: acc[k] for k in ("tokens", "examples", "flops", "flops_no_context", "pf_days")},
        "total_steps": run.cfg.total_steps,
        "n_params": run.acct.n_params,
        "n_params_with_embeddings": run.acct.n_params_with_embeddings,
        "n_embedding": run.acct.n_embedding,
        "val_loss": last.get("val_loss"),
        "best_val_loss": st.best_val_loss,
        "best_step": st.best_step,
        "train_loss": st.last_loss if status == "diverged" else last.get("train_loss"),
        "noise_scale": last.get("noise_scale"),
        "noise_scale_seqs": last.get("noise_scale_seqs"),
        "val_loss_per_position": st.val_loss_per_position,
        "eval_losses": last.get("eval_losses", {}),
        "wall_s": st.wall_s,
        "tokens_per_s": acc["tokens"] / max(st.wall_s, 1e-9),
        "train_tokens_per_s": acc["tokens"] / max(st.train_s, 1e-9),
        "threads": threads,
        "world_size": run.ranks.world_size,
        "device": str(run.device),
        "dtype": run.rt.dtype_name,
        "precision": run.rt.precision,
        "compile": run.rt.compile,
        "lr": run.peak,
        "warmup_steps": run.warm,
        "epochs": run.parts.loader.epochs,
        "resumed_from": st.resumed_from,
        **branches.branch_accounting(st.fork, lambda s: run.acct.at(s)["flops"], acc["flops"], st.wall_s),
        "config": cfg_dict,
        "curve": st.curve,
    }
