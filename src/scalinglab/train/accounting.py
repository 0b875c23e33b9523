"""Compute accounting of a run (paper §2.1, Table 1): tokens, examples, training FLOPs, PF-days.

FLOPs are non-embedding training FLOPs, 3 × (2N + 2·n_layer·n_ctx·d_attn) per token (`flops`) and 6N per
token without the context term (`flops_no_context`), the two conventions the paper compares.
"""

from __future__ import annotations

from dataclasses import dataclass

from scalinglab.config import ModelConfig
from scalinglab.model.counting import PF_DAY, count_model, flops_per_token_train


@dataclass(frozen=True)
class Accounting:
    batch_size: int  # sequences per step
    n_ctx: int
    flops_per_token: float
    flops_per_token_no_context: float
    n_params: int
    n_params_with_embeddings: int
    n_embedding: int

    @classmethod
    def for_model(cls, cfg: ModelConfig, batch_size: int) -> Accounting:
        c = count_model(cfg)
        return cls(
            batch_size=batch_size,
            n_ctx=cfg.n_ctx,
            flops_per_token=flops_per_token_train(cfg, context=True),
            flops_per_token_no_context=flops_per_token_train(cfg, context=False),
            n_params=c.n_params,
            n_params_with_embeddings=c.n_params_with_embeddings,
            n_embedding=c.n_embedding,
        )

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.n_ctx

    def at(self, step: int) -> dict:
        """Accounting after `step` optimisation steps."""
        tokens = step * self.tokens_per_step
        flops = self.flops_per_token * tokens
        return {
            "step": step,
            "tokens": tokens,
            "examples": step * self.batch_size,
            "flops": flops,
            "flops_no_context": self.flops_per_token_no_context * tokens,
            "pf_days": flops / PF_DAY,
        }
