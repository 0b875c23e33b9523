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

    `scalinglab train` generates one option per field from this model (name, type, default and description), so a
    field added here is a flag, a plan key and a `--set` key at once.

    Exactly one of `steps` or `tokens` sets the length; `tokens` = steps · batch_size · n_ctx.
    `batch_size` counts sequences: the paper's B in tokens is batch_size · n_ctx.
    """

    model_config = ConfigDict(extra="forbid")

    corpus: str = Field(description="Prepared corpus folder (`scalinglab corpus prepare`).")
    # model shape
    arch: Arch = Field(default="transformer", description="transformer | lstm | universal (weight-shared).")
    n_layer: int = Field(gt=0, description="Number of layers (blocks).")
    d_model: int = Field(gt=0, description="Residual stream width d_model.")
    d_ff: int | None = Field(default=None, gt=0, description="Feed-forward width (default 4·d_model).")
    d_attn: int | None = Field(default=None, gt=0, description="Attention width (default d_model).")
    n_heads: int | None = Field(default=None, gt=0, description="Attention heads (default d_attn/64, at least 1).")
    n_ctx: int = Field(default=128, gt=0, description="Context length in tokens.")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="Dropout probability (the paper: 0.1).")
    tie_embeddings: bool = Field(default=False, description="Share input and output embeddings.")
    # length and data
    batch_size: int = Field(default=16, gt=0, description="Sequences per step (B in tokens = batch·n_ctx).")
    micro_batch_size: int | None = Field(
        default=None, gt=0,
        description="At most this many sequences per forward pass (gradient accumulation; not part of the run id).")
    steps: int | None = Field(default=None, gt=0, description="Optimisation steps (or give tokens).")
    tokens: int | None = Field(default=None, gt=0, description="Training tokens; steps = ceil(T / (batch·n_ctx)).")
    data_tokens: int | None = Field(default=None, gt=0,
                                    description="Train on a fixed D-token subset (L(N, D) runs).")
    # optimisation (paper §2.2, App. D)
    lr: float | Literal["auto"] = Field(
        default="auto", description="Peak learning rate, or 'auto' for the paper's LR(N) = 0.003239 − "
        "0.0001395·ln(N) (N = non-embedding params; ~1.6e-3 at N=1e5; floored at 1e-5).")
    warmup: float = Field(default=0.05, ge=0, description="Linear warmup: steps if ≥ 1, else a fraction of the run.")
    schedule: Literal["cosine", "constant", "linear", "wsd"] = Field(
        default="cosine", description="cosine | constant | linear (decay after warmup) | wsd (warmup, constant, "
        "then a linear decay over the last `decay_fraction` of the run).")
    decay_fraction: float | None = Field(
        default=None, gt=0.0, lt=1.0,
        description="WSD: the share of the run spent decaying (default 0.2; Hägele et al. 2024 use 0.2).")
    min_lr_ratio: float = Field(default=0.1, ge=0.0, le=1.0,
                                description="Final LR as a fraction of the peak (0 = decay to zero).")
    weight_decay: float = Field(default=0.1, ge=0.0, description="AdamW weight decay on matrices.")
    beta1: float = Field(default=0.9, ge=0.0, lt=1.0, description="AdamW beta1.")
    beta2: float = Field(default=0.95, ge=0.0, lt=1.0, description="AdamW beta2.")
    grad_clip: float = Field(default=1.0, ge=0.0, description="Max global gradient norm (0 = off).")
    seed: int = Field(default=0, ge=0, description="Seeds the init, the data order and dropout.")
    # measurement
    eval_every: int | Literal["log"] = Field(
        default="log", description="'log' (steps ~1.5× apart, plus the last) or every K steps.")
    eval_tokens: int = Field(default=32768, gt=0, description="Held-out tokens per evaluation (fixed windows).")
    noise_scale_micro_batches: int = Field(
        default=2, ge=1, description="Micro-batches per step for the gradient noise scale (1 = off).")
    noise_scale_every: int = Field(
        default=4, ge=1, description="Measure the noise scale on every K-th step (the others run the batch whole).")
    checkpoint_every_steps: int = Field(default=200, ge=0,
                                        description="Checkpoint every K steps (0 = only at the end).")
    early_stop: bool = Field(default=False,
                             description="Stop when val loss has not improved for `patience` evaluations.")
    patience: int = Field(default=3, gt=0, description="Evaluations without improvement before an early stop.")
    threads: int | None = Field(default=None, gt=0, description="Torch threads (default: all cores).")
    nproc_per_node: int = Field(
        default=1, gt=0,
        description="Data-parallel processes (ranks) for this run, started through torchrun; the batch splits "
        "evenly over them (not part of the run id).")
    device: str = Field(default="auto", description="auto | cpu | cuda.")
    compile: bool | Literal["auto"] = Field(
        default="auto", description="torch.compile the model: auto (on CUDA, not on CPU) | true | false (not part "
        "of the run id; a run may resume with another choice).")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        default="auto", description="Autocast precision: auto (bf16 on CUDA where supported, else fp32) | fp32 | "
        "bf16 | fp16 (with a grad scaler).")

    @model_validator(mode="after")
    def _length(self) -> TrainConfig:
        if (self.steps is None) == (self.tokens is None):
            raise ValueError("give exactly one of steps or tokens")
        if isinstance(self.eval_every, int) and self.eval_every <= 0:
            raise ValueError("eval_every must be 'log' or a positive number of steps")
        if isinstance(self.lr, float) and not (self.lr > 0):
            raise ValueError("lr must be positive or 'auto'")
        if self.decay_fraction is not None and self.schedule != "wsd":
            raise ValueError(f"decay_fraction is for schedule = 'wsd' (schedule is {self.schedule!r})")
        if self.batch_size % self.nproc_per_node:
            raise ValueError(f"batch_size {self.batch_size} does not split evenly over nproc_per_node="
                             f"{self.nproc_per_node} processes")
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
