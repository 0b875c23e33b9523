"""Deterministic random windows of n_ctx+1 tokens from a memmapped split, resumable to the exact batch.

Batch k is drawn from its own generator seeded by (seed, k), so the loader's whole state is the number of
batches drawn: saving and restoring `state_dict()` reproduces the same batch sequence bit for bit.

`data_tokens=D` restricts training to the first D tokens of a fixed permutation of the train split's
chunks of `SUBSET_CHUNK` tokens (the permutation depends only on the corpus, not the run's seed), so runs
with the same D see the same data whatever their model or seed (L(N, D) studies, paper §4).
"""

from __future__ import annotations

import numpy as np
import torch

from scalinglab.errors import UserError

SUBSET_CHUNK = 2048
SUBSET_SEED = 20200123  # fixed: the paper's arXiv date; the same D-subset for every run


def data_subset(tokens: np.ndarray, data_tokens: int) -> np.ndarray:
    """The first `data_tokens` tokens of a fixed permutation of `tokens`' chunks (copied, D tokens in RAM)."""
    n = len(tokens)
    if data_tokens < 1:
        raise UserError(f"data_tokens must be positive, got {data_tokens}")
    if data_tokens > n:
        raise UserError(f"data_tokens={data_tokens:,} exceeds the corpus's {n:,} training tokens")
    n_chunks = -(-n // SUBSET_CHUNK)
    order = np.random.default_rng(SUBSET_SEED).permutation(n_chunks)
    parts, have = [], 0
    for c in order:
        piece = tokens[c * SUBSET_CHUNK : min((c + 1) * SUBSET_CHUNK, n)]
        piece = piece[: data_tokens - have]
        parts.append(np.asarray(piece))
        have += len(piece)
        if have >= data_tokens:
            break
    return np.concatenate(parts)


class WindowLoader:
    """Random (x, y) batches of shape (batch_size, n_ctx) as int64 tensors, y shifted by one token."""

    def __init__(
        self,
        tokens: np.ndarray,
        n_ctx: int,
        batch_size: int,
        seed: int = 0,
        data_tokens: int | None = None,
    ):
        if n_ctx < 1 or batch_size < 1:
            raise UserError(f"n_ctx and batch_size must be positive, got {n_ctx} and {batch_size}")
        if data_tokens is not None:
            tokens = data_subset(tokens, int(data_tokens))
        if len(tokens) < n_ctx + 1:
            raise UserError(
                f"only {len(tokens):,} training tokens available, fewer than one window of n_ctx+1={n_ctx + 1}"
            )
        self.tokens = tokens
        self.n_ctx = n_ctx
        self.batch_size = batch_size
        self.seed = seed
        self.available_tokens = len(tokens)
        self.batches_drawn = 0

    def starts(self, k: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, k])
        return rng.integers(0, self.available_tokens - self.n_ctx, size=self.batch_size)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        starts = self.starts(self.batches_drawn)
        self.batches_drawn += 1
        return windows(self.tokens, starts, self.n_ctx)

    @property
    def tokens_seen(self) -> int:
        return self.batches_drawn * self.batch_size * self.n_ctx

    @property
    def epochs(self) -> float:
        """Passes over the available training tokens so far (> 1 means repeated data)."""
        return self.tokens_seen / self.available_tokens

    def state_dict(self) -> dict:
        return {"batches_drawn": self.batches_drawn, "seed": self.seed, "available_tokens": self.available_tokens}

    def load_state_dict(self, state: dict) -> None:
        if int(state["available_tokens"]) != self.available_tokens or int(state["seed"]) != self.seed:
            raise UserError("checkpoint's data position belongs to a different corpus, subset or seed")
        self.batches_drawn = int(state["batches_drawn"])


def windows(tokens: np.ndarray, starts: np.ndarray, n_ctx: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather windows of n_ctx+1 tokens at `starts` into (x, y) int64 tensors."""
    idx = starts[:, None] + np.arange(n_ctx + 1)[None, :]
    block = torch.from_numpy(np.asarray(tokens[idx], dtype=np.int64))
    return block[:, :-1], block[:, 1:]


def fixed_windows(tokens: np.ndarray, n_ctx: int, max_tokens: int) -> np.ndarray:
    """Start positions of evenly spaced, non-overlapping windows covering up to `max_tokens` tokens.

    The same windows at every evaluation, so learning curves are measured on a fixed held-out set.
    """
    n_windows = max(1, min(max_tokens // n_ctx, (len(tokens) - 1) // n_ctx))
    if len(tokens) < n_ctx + 1:
        raise UserError(f"held-out split has {len(tokens)} tokens, fewer than one window of {n_ctx + 1}")
    span = len(tokens) - n_ctx - 1
    return np.linspace(0, span, n_windows).astype(np.int64)
