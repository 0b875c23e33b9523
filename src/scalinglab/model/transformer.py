"""A decoder-only Transformer language model in the nanoGPT spirit (Kaplan et al. 2020, §2.1).

Pre-LayerNorm blocks, GELU MLP, learned position embeddings, causal self-attention through
`F.scaled_dot_product_attention`. Shapes follow the paper: n_layer, d_model, d_ff, d_attn, n_heads, n_ctx.
`arch="universal"` shares one block's weights across all n_layer passes (the paper's recurrent Transformer).
The attribute names `wte`, `wpe`, `lm_head` mark embedding parameters for `counting.count_non_embedding`.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from scalinglab.config import ModelConfig
from scalinglab.model.lm import LanguageModel


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.d_attn = cfg.d_attn
        self.c_attn = nn.Linear(cfg.d_model, 3 * cfg.d_attn)
        self.c_proj = nn.Linear(cfg.d_attn, cfg.d_model)
        self.dropout = cfg.dropout
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = self.c_attn(x).split(self.d_attn, dim=2)
        hd = self.d_attn // self.n_heads
        q = q.view(B, T, self.n_heads, hd).transpose(1, 2)
        k = k.view(B, T, self.n_heads, hd).transpose(1, 2)
        v = v.view(B, T, self.n_heads, hd).transpose(1, 2)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )
        y = y.transpose(1, 2).contiguous().view(B, T, self.d_attn)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.d_model, cfg.d_ff)
        self.c_proj = nn.Linear(cfg.d_ff, cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(LanguageModel):
    """Decoder-only Transformer LM. `forward(idx, targets)` returns (logits, mean loss)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.arch not in ("transformer", "universal"):
            raise ValueError(f"GPT builds transformer or universal, not {cfg.arch}")
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.n_ctx, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        n_distinct = 1 if cfg.arch == "universal" else cfg.n_layer
        self.h = nn.ModuleList([Block(cfg) for _ in range(n_distinct)])
        self.ln_f = nn.LayerNorm(cfg.d_model)
        if cfg.tie_embeddings:
            self.lm_head = None
        else:
            self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.apply(self._init_weights)
        # GPT-2 scaled init of the residual projections: std 0.02/sqrt(2·n_layer). Universal too: its shared
        # block still adds to the residual stream 2·n_layer times, so the scale follows the passes, not the blocks.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def blocks(self):
        """The block applied at each of the n_layer depths (the same one n_layer times when universal)."""
        if self.cfg.arch == "universal":
            return [self.h[0]] * self.cfg.n_layer
        return list(self.h)

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """Final-LayerNorm hidden states (B, T, d_model)."""
        T = idx.shape[1]
        if T > self.cfg.n_ctx:
            raise ValueError(f"sequence of {T} tokens is longer than n_ctx={self.cfg.n_ctx}")
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for block in self.blocks():
            x = block(x)
        return self.ln_f(x)
