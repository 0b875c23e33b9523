"""`scalinglab bench train`: tokens/s, model FLOPs/s and MFU of real training steps on this machine."""

from __future__ import annotations

from typing import Annotated

import typer

from scalinglab.cli.core import emit_json, new_app
from scalinglab.cli.options import (
    DFF,
    ArchOpt,
    DAttn,
    DModel,
    JsonFlag,
    NCtx,
    NHeads,
    NLayer,
    TieEmb,
    Vocab,
    model_config,
)

bench_app = new_app(no_args_is_help=True, help="Measure training speed (tokens/s, MFU) on this machine.")


@bench_app.command("train")
def train(
    n_layer: NLayer = 4,
    d_model: DModel = 256,
    n_ctx: NCtx = 256,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", min=1,
        help="Sequences per step; the paper's batch size B in tokens is batch_size·n_ctx.")] = 16,
    vocab: Vocab = 4096,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Timed training steps.")] = 20,
    warmup_steps: Annotated[int, typer.Option("--warmup-steps", min=0, help="Untimed steps first.")] = 3,
    d_ff: DFF = None,
    d_attn: DAttn = None,
    n_heads: NHeads = None,
    arch: ArchOpt = "transformer",
    tie_embeddings: TieEmb = False,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="Torch threads (default: all usable cores).")] = None,
    compile_: Annotated[bool | None, typer.Option(
        "--compile/--no-compile",
        help="torch.compile the model (default: on for CUDA, off for CPU, where it does not pay).")] = None,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda[:N].")] = "auto",
    precision: Annotated[str, typer.Option(
        "--precision", help="auto (bf16 autocast on CUDA where supported, else fp32) | fp32 | bf16 | fp16.")] = "auto",
    baseline: Annotated[bool, typer.Option(
        "--baseline",
        help="Also time a plain eager nanoGPT-style loop of the same shape, interleaved, and report the speedup.")]
    = False,
    peak_sizes: Annotated[str | None, typer.Option(
        "--peak-sizes", help="Comma-separated square matmul sizes for the peak (default 512,1024,2048 on CPU).")]
    = None,
    json_: JsonFlag = False,
) -> None:
    """Time real training steps (forward, backward, clip, AdamW, zero_grad) on random tokens.

    Reports tokens/s, model FLOPs/s (Table 1: 3·(2N + 2·n_layer·n_ctx·d_attn) per token, non-embedding) and
    MFU against this machine's measured matmul peak; the *_with_head figures add the output head's FLOPs.
    """
    from scalinglab.errors import UserError

    sizes = None
    if peak_sizes is not None:
        try:
            sizes = tuple(int(v) for v in peak_sizes.split(","))
        except ValueError:
            raise UserError(f"--peak-sizes must be comma-separated integers (got {peak_sizes!r})") from None
        if not sizes or min(sizes) <= 0:
            raise UserError(f"--peak-sizes must be positive (got {peak_sizes!r})")
    cfg = model_config(
        n_layer=n_layer, d_model=d_model, n_ctx=n_ctx, vocab_size=vocab, d_ff=d_ff, d_attn=d_attn,
        n_heads=n_heads, arch=arch, tie_embeddings=tie_embeddings,
    )
    if baseline and cfg.arch == "lstm":
        raise UserError("--baseline compares with a plain nanoGPT loop; use it with --arch transformer or universal")
    from scalinglab.bench import bench_train

    result = bench_train(
        cfg, batch_size=batch_size, steps=steps, warmup_steps=warmup_steps, threads=threads,
        compile=compile_, device=device, baseline=baseline, peak_sizes=sizes, precision=precision,
    )
    if json_:
        emit_json(result)
        return
    _print_table(result, baseline, f"n_layer={n_layer} d_model={d_model} n_ctx={n_ctx} batch={batch_size} vocab={vocab}")


def _print_table(result: dict, baseline: bool, shape: str) -> None:
    """The bench result as a rich table (tuned beside the plain baseline when it ran), the peak and the speed-up."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"bench train: {shape} on {result['device']} ({result['threads']} threads, {result['dtype']})")
    table.add_column("")
    table.add_column("tuned", justify="right")
    if baseline:
        table.add_column("plain baseline", justify="right")

    def row(label: str, key: str, fmt: str) -> None:
        def get(r: dict) -> str:
            return format(r["step_ms"]["median"] if key == "step_ms" else r[key], fmt)

        table.add_row(label, get(result), *([get(result["baseline"])] if baseline else []))

    row("tokens/s (median step)", "tokens_per_s", ",.0f")
    row("step ms (median)", "step_ms", ".1f")
    row("model FLOP/s (Table 1, non-emb.)", "model_flops_per_s", ".3g")
    row("model FLOP/s incl. head", "model_flops_per_s_with_head", ".3g")
    row("MFU (Table 1)", "mfu", ".1%")
    row("MFU incl. head", "mfu_with_head", ".1%")
    console = Console()
    console.print(table)
    console.print(f"matmul peak ({result['peak_dtype']}): {result['peak_flops_per_s']:.3g} FLOP/s; "
                  f"compile: {result['compile']} ({result['compile_s']:.1f} s before the timed steps)")
    if result.get("mfu_datasheet") is not None:
        console.print(f"MFU against the datasheet's dense bf16 peak ({result['datasheet_peak_flops_per_s']:.3g} "
                      f"FLOP/s, {result['device_name']}): {result['mfu_datasheet']:.1%}")
    if baseline:
        console.print(f"speedup over the plain loop: {result['speedup']:.2f}x")
