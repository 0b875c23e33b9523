"""Option declarations shared by commands that take a model shape (count, bench, train)."""

from __future__ import annotations

from typing import Annotated

import typer

NLayer = Annotated[int, typer.Option("--n-layer", help="Number of layers (blocks).")]
DModel = Annotated[int, typer.Option("--d-model", help="Residual stream width d_model.")]
DFF = Annotated[int | None, typer.Option("--d-ff", help="Feed-forward width (default 4·d_model).")]
DAttn = Annotated[int | None, typer.Option("--d-attn", help="Attention width (default d_model).")]
NHeads = Annotated[int | None, typer.Option("--n-heads", help="Attention heads (default d_attn/64, at least 1).")]
ArchOpt = Annotated[str, typer.Option("--arch", help="transformer | lstm | universal (weight-shared).")]
NCtx = Annotated[int, typer.Option("--n-ctx", help="Context length in tokens.")]
Vocab = Annotated[int, typer.Option("--vocab", help="Vocabulary size.")]
TieEmb = Annotated[bool, typer.Option("--tie-embeddings/--untie-embeddings", help="Share input and output embeddings.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


def model_config(
    *,
    n_layer: int,
    d_model: int,
    n_ctx: int,
    vocab_size: int,
    d_ff: int | None = None,
    d_attn: int | None = None,
    n_heads: int | None = None,
    arch: str = "transformer",
    tie_embeddings: bool = False,
    dropout: float = 0.0,
):
    """Build a validated ModelConfig from CLI values (pydantic validates; its errors become one line, exit 2)."""
    import pydantic

    from scalinglab.cli.core import pydantic_message
    from scalinglab.config import ModelConfig
    from scalinglab.errors import UserError

    try:
        return ModelConfig(arch=arch, n_layer=n_layer, d_model=d_model, d_ff=d_ff, d_attn=d_attn, n_heads=n_heads,
                           n_ctx=n_ctx, vocab_size=vocab_size, tie_embeddings=tie_embeddings, dropout=dropout)
    except pydantic.ValidationError as e:
        raise UserError(pydantic_message(e, {"arch": "--arch", "vocab_size": "--vocab"})) from None
