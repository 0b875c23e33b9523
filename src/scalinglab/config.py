"""Validated configuration shared by every stage (pydantic): model shapes and training runs.

`ModelConfig` is what `count`, `bench`, `train` and sweep plans agree on. Defaults follow the paper:
d_ff = 4·d_model, d_attn = d_model, and heads of width 64 (at least one head).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Arch = Literal["transformer", "lstm", "universal"]
ARCHS: tuple[str, ...] = ("transformer", "lstm", "universal")


class ModelConfig(BaseModel):
    """Shape of a decoder-only language model (the paper's n_layer, d_model, d_ff, d_attn, n_heads)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    arch: Arch = "transformer"
    n_layer: int = Field(gt=0, description="number of layers (blocks)")
    d_model: int = Field(gt=0, description="residual stream width")
    d_ff: int | None = Field(default=None, gt=0, description="feed-forward width (default 4·d_model)")
    d_attn: int | None = Field(default=None, gt=0, description="attention width (default d_model)")
    n_heads: int | None = Field(default=None, gt=0, description="attention heads (default d_attn/64, ≥ 1)")
    n_ctx: int = Field(gt=0, description="context length in tokens")
    vocab_size: int = Field(gt=1, description="vocabulary size")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    tie_embeddings: bool = False

    @model_validator(mode="after")
    def _defaults_and_divisibility(self) -> ModelConfig:
        d_ff = self.d_ff if self.d_ff is not None else 4 * self.d_model
        d_attn = self.d_attn if self.d_attn is not None else self.d_model
        n_heads = self.n_heads if self.n_heads is not None else max(1, d_attn // 64)
        if d_attn % n_heads != 0:
            if self.n_heads is not None:
                raise ValueError(f"n_heads={n_heads} does not divide d_attn={d_attn}")
            n_heads = 1
        object.__setattr__(self, "d_ff", d_ff)
        object.__setattr__(self, "d_attn", d_attn)
        object.__setattr__(self, "n_heads", n_heads)
        return self

    @property
    def head_dim(self) -> int:
        return self.d_attn // self.n_heads  # type: ignore[operator]


class TrainConfig(BaseModel):
    """One training run, flat so that CLI flags, plan keys and the run id hash all use the same names.

    Exactly one of `steps` or `tokens` sets the length; `tokens` = steps · batch_size · n_ctx.
    `batch_size` counts sequences: the paper's B in tokens is batch_size · n_ctx.
    """

    model_config = ConfigDict(extra="forbid")

    corpus: str = Field(description="prepared corpus folder")
    # model shape
    arch: Arch = "transformer"
    n_layer: int = Field(gt=0)
    d_model: int = Field(gt=0)
    d_ff: int | None = Field(default=None, gt=0)
    d_attn: int | None = Field(default=None, gt=0)
    n_heads: int | None = Field(default=None, gt=0)
    n_ctx: int = Field(default=128, gt=0)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    tie_embeddings: bool = False
    # length and data
    batch_size: int = Field(default=16, gt=0, description="sequences per step")
    steps: int | None = Field(default=None, gt=0)
    tokens: int | None = Field(default=None, gt=0)
    data_tokens: int | None = Field(default=None, gt=0, description="train on a fixed D-token subset")
    # optimisation (paper §2.2, App. D)
    lr: float | Literal["auto"] = "auto"
    warmup: float = Field(default=0.05, ge=0, description="steps if ≥ 1, else a fraction of the run")
    schedule: Literal["cosine", "constant", "linear"] = "cosine"
    min_lr_ratio: float = Field(default=0.1, ge=0.0, le=1.0, description="final LR as a fraction of peak")
    weight_decay: float = Field(default=0.1, ge=0.0)
    beta1: float = Field(default=0.9, ge=0.0, lt=1.0)
    beta2: float = Field(default=0.95, ge=0.0, lt=1.0)
    grad_clip: float = Field(default=1.0, ge=0.0, description="max global grad norm (0 = off)")
    seed: int = Field(default=0, ge=0)
    # measurement
    eval_every: int | Literal["log"] = "log"
    eval_tokens: int = Field(default=32768, gt=0, description="held-out tokens per evaluation")
    noise_scale_micro_batches: int = Field(default=2, ge=1, description="≥ 2 enables the noise-scale estimate")
    noise_scale_every: int = Field(
        default=4, ge=1, description="split the batch into micro-batches on every K-th step only (the rest run whole)"
    )
    checkpoint_every_steps: int = Field(default=200, ge=0, description="0 = only at the end")
    early_stop: bool = False
    patience: int = Field(default=3, gt=0, description="evaluations without improvement before stopping")
    threads: int | None = Field(default=None, gt=0, description="torch threads (default: all cores)")
    device: str = "auto"

    @model_validator(mode="after")
    def _length(self) -> TrainConfig:
        if (self.steps is None) == (self.tokens is None):
            raise ValueError("give exactly one of steps or tokens")
        if isinstance(self.eval_every, int) and self.eval_every <= 0:
            raise ValueError("eval_every must be 'log' or a positive number of steps")
        if isinstance(self.lr, float) and not (self.lr > 0):
            raise ValueError("lr must be positive or 'auto'")
        self.model()  # validate the shape (e.g. n_heads divides d_attn) early
        return self

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.n_ctx

    @property
    def total_steps(self) -> int:
        if self.steps is not None:
            return self.steps
        return max(1, -(-int(self.tokens) // self.tokens_per_step))  # type: ignore[arg-type]

    def model(self, vocab_size: int = 2) -> ModelConfig:
        """The model shape of this run (vocab comes from the corpus)."""
        return ModelConfig(
            arch=self.arch,
            n_layer=self.n_layer,
            d_model=self.d_model,
            d_ff=self.d_ff,
            d_attn=self.d_attn,
            n_heads=self.n_heads,
            n_ctx=self.n_ctx,
            vocab_size=vocab_size,
            dropout=self.dropout,
            tie_embeddings=self.tie_embeddings,
        )
