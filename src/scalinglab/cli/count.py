"""`scalinglab count`: exact parameters and Table 1 FLOPs of a model shape."""

from __future__ import annotations

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

app = new_app()


@app.command()
def count(
    n_layer: NLayer,
    d_model: DModel,
    n_ctx: NCtx = 1024,
    vocab: Vocab = 50257,
    d_ff: DFF = None,
    d_attn: DAttn = None,
    n_heads: NHeads = None,
    arch: ArchOpt = "transformer",
    tie_embeddings: TieEmb = False,
    json_: JsonFlag = False,
) -> None:
    """Exact non-embedding parameters N, Kaplan's 12·n_layer·d_model², embeddings, and FLOPs per token."""
    from scalinglab.model.counting import count_model

    cfg = model_config(
        n_layer=n_layer, d_model=d_model, n_ctx=n_ctx, vocab_size=vocab, d_ff=d_ff, d_attn=d_attn,
        n_heads=n_heads, arch=arch, tie_embeddings=tie_embeddings,
    )
    result = count_model(cfg).to_dict()
    if json_:
        emit_json(result)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{arch}: n_layer={n_layer} d_model={d_model} n_ctx={n_ctx} vocab={vocab}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    # What each formula is for this architecture (universal: one block reused n_layer times).
    approx, emb, fwd, no_ctx = {
        "lstm": ("8·L·d²", "vocab·d", "2N + 13·L·d gate work", "same: no context term"),
        "universal": ("2·d·(2·d_attn+d_ff), one shared block", "(vocab+n_ctx)·d",
                      "2·(L·block + 2d) + 2·L·n_ctx·d_attn", "every pass, no context term"),
    }.get(arch, ("Kaplan 2·L·d·(2·d_attn+d_ff)", "(vocab+n_ctx)·d", "2N + 2·L·n_ctx·d_attn", "6N"))
    rows = [
        ("N (non-embedding params, exact)", f"{result['n_params']:,}"),
        (f"N approx ({approx})", f"{result['n_params_approx']:,}"),
        (f"embedding params ({emb})", f"{result['n_embedding']:,}"),
        ("output head params", f"{result['n_head']:,}"),
        ("total params", f"{result['n_params_total']:,}"),
        (f"forward FLOPs/token ({fwd})", f"{result['flops_per_token_forward']:.4g}"),
        ("training FLOPs/token (3× forward)", f"{result['flops_per_token_train']:.4g}"),
        (f"training FLOPs/token ({no_ctx})", f"{result['flops_per_token_train_no_context']:.4g}"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    Console().print(table)
