"""Exact parameter counts and the paper's Table 1 FLOPs.

N (the paper's "non-embedding parameters") counts every weight, bias and LayerNorm parameter of the
blocks plus the final LayerNorm, and excludes the token and position embeddings and the output head.
`n_params_closed_form` must equal `count_non_embedding(model)` read off the real module (tested).

Table 1 (Kaplan et al. 2020, §2.1): forward FLOPs per token C_forward ≈ 2N + 2·n_layer·n_ctx·d_attn,
training ≈ 3 × forward (so ≈ 6N per token when the context term is small). PF-day = 8.64e19 FLOPs.

Other architectures (paper §3.2.1, App. D.2):
- universal (recurrent Transformer, one block reused n_layer times): N counts the shared block once
  (≈ 12·d_model²) + final LayerNorm; FLOPs count every pass: 2·(n_layer·block + 2d) + the context term,
  so compute per token is ≈ n_layer × that of N's parameters.
- lstm: N = n_layer·(8d² + 8d) + 2d; forward FLOPs = 2N + 13d elementwise gate work per layer, no
  context term (see `model/lstm.py`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from scalinglab.config import ModelConfig
from scalinglab.laws.framework.constants import (
    PF_DAY,  # FLOPs in one petaflop/s-day (one definition for the package)
)


def transformer_block_params(d_model: int, d_ff: int, d_attn: int) -> int:
    """Exact parameters of one pre-LN block: 2 LayerNorms, QKV + output projection, 2-layer MLP, all biased."""
    layernorms = 2 * (2 * d_model)
    qkv = d_model * 3 * d_attn + 3 * d_attn
    proj = d_attn * d_model + d_model
    mlp = d_model * d_ff + d_ff + d_ff * d_model + d_model
    return layernorms + qkv + proj + mlp


def n_params_closed_form(cfg: ModelConfig) -> int:
    """Exact non-embedding parameters N, in closed form (blocks + final LayerNorm)."""
    if cfg.arch == "lstm":
        from scalinglab.model.lstm import lstm_params

        return lstm_params(cfg.n_layer, cfg.d_model)
    block = transformer_block_params(cfg.d_model, cfg.d_ff, cfg.d_attn)  # type: ignore[arg-type]
    n_blocks = 1 if cfg.arch == "universal" else cfg.n_layer  # universal: one block, shared by all passes
    return n_blocks * block + 2 * cfg.d_model


def n_params_approx(cfg: ModelConfig) -> int:
    """Kaplan's approximation N ≈ 2·d_model·n_layer·(2·d_attn + d_ff) (= 12·n_layer·d_model² by default)."""
    if cfg.arch == "lstm":
        return 8 * cfg.n_layer * cfg.d_model**2
    n_blocks = 1 if cfg.arch == "universal" else cfg.n_layer
    return 2 * cfg.d_model * n_blocks * (2 * cfg.d_attn + cfg.d_ff)  # type: ignore[operator]


def n_embedding_params(cfg: ModelConfig) -> int:
    """Token + position embedding parameters, (n_vocab + n_ctx)·d_model (LSTMs have no position table)."""
    pos = 0 if cfg.arch == "lstm" else cfg.n_ctx
    return (cfg.vocab_size + pos) * cfg.d_model


def n_head_params(cfg: ModelConfig) -> int:
    """Output projection (unembedding) parameters: zero when tied to the token embedding."""
    return 0 if cfg.tie_embeddings else cfg.vocab_size * cfg.d_model


def flops_per_token_forward(cfg: ModelConfig, context: bool = True, embedding: bool = False) -> float:
    """Table 1 forward FLOPs per token: 2N (+ 2·n_layer·n_ctx·d_attn) (+ 2·d_model·n_vocab for the head)."""
    if cfg.arch == "lstm":
        from scalinglab.model.lstm import lstm_flops_per_token_forward

        flops = float(lstm_flops_per_token_forward(cfg.n_layer, cfg.d_model))
    else:
        n = n_params_closed_form(cfg)
        if cfg.arch == "universal":  # the shared block runs n_layer times
            n = cfg.n_layer * (n - 2 * cfg.d_model) + 2 * cfg.d_model
        flops = 2.0 * n
        if context:
            flops += 2.0 * cfg.n_layer * cfg.n_ctx * cfg.d_attn  # type: ignore[operator]
    if embedding:
        flops += 2.0 * cfg.d_model * cfg.vocab_size
    return flops


def flops_per_token_train(cfg: ModelConfig, context: bool = True, embedding: bool = False) -> float:
    """Training FLOPs per token: forward + backward ≈ 3 × forward (Table 1)."""
    return 3.0 * flops_per_token_forward(cfg, context=context, embedding=embedding)


def to_pf_days(flops: float) -> float:
    return flops / PF_DAY


@dataclass(frozen=True)
class ModelCount:
    """Everything `scalinglab count` reports about one shape."""

    arch: str
    n_layer: int
    d_model: int
    d_ff: int
    d_attn: int
    n_heads: int
    n_ctx: int
    vocab_size: int
    n_params: int
    n_params_approx: int
    n_embedding: int
    n_head: int
    n_params_with_embeddings: int
    n_params_total: int
    flops_per_token_forward: float
    flops_per_token_forward_no_context: float
    flops_per_token_train: float
    flops_per_token_train_no_context: float
    flops_per_token_train_with_embedding: float

    def to_dict(self) -> dict:
        return asdict(self)


def count_model(cfg: ModelConfig) -> ModelCount:
    """All the counts and per-token FLOPs of a shape, in both conventions."""
    n = n_params_closed_form(cfg)
    emb = n_embedding_params(cfg)
    head = n_head_params(cfg)
    return ModelCount(
        arch=cfg.arch,
        n_layer=cfg.n_layer,
        d_model=cfg.d_model,
        d_ff=cfg.d_ff,  # type: ignore[arg-type]
        d_attn=cfg.d_attn,  # type: ignore[arg-type]
        n_heads=cfg.n_heads,  # type: ignore[arg-type]
        n_ctx=cfg.n_ctx,
        vocab_size=cfg.vocab_size,
        n_params=n,
        n_params_approx=n_params_approx(cfg),
        n_embedding=emb,
        n_head=head,
        n_params_with_embeddings=n + emb,
        n_params_total=n + emb + head,
        flops_per_token_forward=flops_per_token_forward(cfg),
        flops_per_token_forward_no_context=flops_per_token_forward(cfg, context=False),
        flops_per_token_train=flops_per_token_train(cfg),
        flops_per_token_train_no_context=flops_per_token_train(cfg, context=False),
        flops_per_token_train_with_embedding=flops_per_token_train(cfg, embedding=True),
    )


def count_non_embedding(model) -> int:
    """N read off a real module: all parameters except the embeddings and an untied output head.

    Models mark those with the attribute names `wte`, `wpe` and `lm_head`; shared (tied) tensors count once.
    """
    seen: set[int] = set()
    excluded: set[int] = set()
    for name in ("wte", "wpe", "lm_head"):
        mod = getattr(model, name, None)
        if mod is not None:
            excluded.update(id(p) for p in mod.parameters())
    total = 0
    for p in model.parameters():
        if id(p) in seen or id(p) in excluded:
            continue
        seen.add(id(p))
        total += p.numel()
    return total
