"""`scalinglab train`: one training run with learning curve, noise scale, per-position loss and resume."""

from __future__ import annotations

from typing import Annotated

import typer

from scalinglab.cli.core import app, emit_json
from scalinglab.cli.options import DFF, ArchOpt, DAttn, DModel, JsonFlag, NCtx, NHeads, NLayer, TieEmb
from scalinglab.errors import UserError


def _float_or(value: str, keyword: str, flag: str) -> float | str:
    if value == keyword:
        return keyword
    try:
        return float(value)
    except ValueError:
        raise UserError(f"{flag} must be {keyword!r} or a number (got {value!r})") from None


def _number(value: str, flag: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise UserError(f"{flag} must be a number (got {value!r})") from None


def _int_or(value: str, keyword: str, flag: str) -> int | str:
    if value == keyword:
        return keyword
    try:
        return int(value)
    except ValueError:
        raise UserError(f"{flag} must be {keyword!r} or a whole number of steps (got {value!r})") from None


@app.command()
def train(
    corpus: Annotated[str, typer.Option("--corpus", help="Prepared corpus folder (`scalinglab corpus prepare`).")],
    out: Annotated[str, typer.Option("--out", help="Run folder: config.json, metrics.jsonl, checkpoint.pt, result.json.")],
    n_layer: NLayer,
    d_model: DModel,
    n_ctx: NCtx = 128,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Sequences per step (B in tokens = batch·n_ctx).")] = 16,
    steps: Annotated[int | None, typer.Option("--steps", help="Optimisation steps (or give --tokens).")] = None,
    tokens: Annotated[int | None, typer.Option("--tokens", help="Training tokens; steps = ceil(T / (batch·n_ctx)).")] = None,
    data_tokens: Annotated[int | None, typer.Option("--data-tokens", help="Train on a fixed D-token subset (L(N, D) runs).")] = None,
    d_ff: DFF = None,
    d_attn: DAttn = None,
    n_heads: NHeads = None,
    arch: ArchOpt = "transformer",
    tie_embeddings: TieEmb = False,
    lr: Annotated[str, typer.Option(
        "--lr", help="Peak learning rate, or 'auto' for the paper's LR(N) = 0.003239 − 0.0001395·ln(N) "
        "(N = non-embedding params; ~1.6e-3 at N=1e5; floored at 1e-5).")] = "auto",
    warmup: Annotated[str, typer.Option("--warmup", help="Linear warmup: steps if ≥ 1, else a fraction of the run.")] = "0.05",
    schedule: Annotated[str, typer.Option("--schedule", help="cosine | constant | linear (decay after warmup).")] = "cosine",
    min_lr_ratio: Annotated[float, typer.Option("--min-lr-ratio", help="Final LR as a fraction of the peak (0 = decay to zero).")] = 0.1,
    dropout: Annotated[float, typer.Option("--dropout", help="Dropout probability (the paper: 0.1).")] = 0.0,
    weight_decay: Annotated[float, typer.Option("--weight-decay", help="AdamW weight decay on matrices.")] = 0.1,
    grad_clip: Annotated[float, typer.Option("--grad-clip", help="Max global gradient norm (0 = off).")] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the init, the data order and dropout.")] = 0,
    eval_every: Annotated[str, typer.Option("--eval-every", help="'log' (steps ~1.5× apart, plus the last) or every K steps.")] = "log",
    eval_tokens: Annotated[int, typer.Option("--eval-tokens", help="Held-out tokens per evaluation (fixed windows).")] = 32768,
    micro_batches: Annotated[int, typer.Option("--noise-scale-micro-batches", help="Micro-batches per step for the gradient noise scale (1 = off).")] = 2,
    noise_every: Annotated[int, typer.Option("--noise-scale-every", help="Measure the noise scale on every K-th step (the others run the batch whole).")] = 4,
    checkpoint_every: Annotated[int, typer.Option("--checkpoint-every-steps", help="Checkpoint every K steps (0 = only at the end).")] = 200,
    early_stop: Annotated[bool, typer.Option("--early-stop", help="Stop when val loss has not improved for --patience evaluations.")] = False,
    patience: Annotated[int, typer.Option("--patience", help="Evaluations without improvement before an early stop.")] = 3,
    threads: Annotated[int | None, typer.Option("--threads", help="Torch threads (default: all cores).")] = None,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda.")] = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a run with a different config in --out.")] = False,
    db: Annotated[str | None, typer.Option("--db", help="Also record the run in this SQLite results store.")] = None,
    json_: JsonFlag = False,
) -> None:
    """Train one model; rerun the same command to resume after an interruption.

    Exit status: 0 when the run finished (also when it stopped early), 2 on bad input, 3 when it
    diverged (NaN/inf or blown-up loss; the JSON line is still printed, with status "diverged").
    """
    from scalinglab.config import ARCHS, TrainConfig

    if arch not in ARCHS:
        raise UserError(f"unknown --arch {arch!r}; choose one of: {', '.join(ARCHS)}")
    if schedule not in ("cosine", "constant", "linear"):
        raise UserError(f"unknown --schedule {schedule!r}; choose cosine, constant or linear")
    cfg = TrainConfig(
        corpus=corpus, arch=arch, n_layer=n_layer, d_model=d_model, d_ff=d_ff, d_attn=d_attn, n_heads=n_heads,
        n_ctx=n_ctx, dropout=dropout, tie_embeddings=tie_embeddings, batch_size=batch_size, steps=steps,
        tokens=tokens, data_tokens=data_tokens, lr=_float_or(lr, "auto", "--lr"),
        warmup=_number(warmup, "--warmup"), schedule=schedule,
        min_lr_ratio=min_lr_ratio, weight_decay=weight_decay, grad_clip=grad_clip, seed=seed,
        eval_every=_int_or(eval_every, "log", "--eval-every"), eval_tokens=eval_tokens,
        noise_scale_micro_batches=micro_batches, noise_scale_every=noise_every, checkpoint_every_steps=checkpoint_every,
        early_stop=early_stop, patience=patience, threads=threads, device=device,
    )
    from scalinglab.train import run_training

    result = run_training(cfg, out, overwrite=overwrite)
    if db:
        from scalinglab.store.db import record_result

        record_result(db, result, plan=None)
    short = {k: v for k, v in result.items() if k not in ("curve", "config")}
    if json_:
        emit_json(short)
    else:
        def f(x, spec: str = ".4f") -> str:
            return "n/a" if x is None else format(x, spec)

        typer.echo(
            f"{result['status']}{' (early stop)' if result.get('early_stopped') else ''}: {result['steps']} steps, "
            f"{result['tokens']:,} tokens, N={result['n_params']:,}, val loss {f(result['val_loss'])} "
            f"(best {f(result['best_val_loss'])} at step {result['best_step']}), "
            f"B_simple {f(result['noise_scale'], '.3g')} tokens, {result['tokens_per_s']:,.0f} tokens/s -> {out}"
        )
    if result["status"] == "diverged":
        from scalinglab.errors import RunDiverged

        raise RunDiverged(result.get("reason") or "loss diverged")
