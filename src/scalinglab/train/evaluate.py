"""Held-out evaluation on fixed windows: mean loss and loss at each position of the context (Fig. 20).

The windows are chosen once (`fixed_windows`) and gathered into tensors up front, so every evaluation of
a run sees exactly the same tokens and costs one no-grad forward pass over them. Evaluation runs in
`model.eval()` under `torch.no_grad()` and draws no random numbers, so it never perturbs training.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from scalinglab.data.loader import fixed_windows, windows

LOGITS_BUDGET = 1 << 22  # floats of logits per evaluation forward pass (16 MiB in float32)
TOKENS_PER_PASS = 2048  # cache-sized passes: on CPU, 16×128-token passes ran 1.5× faster per token than 128×128


class Evaluator:
    """Evaluates a model on fixed windows of several held-out splits ({name: 1-D token array})."""

    def __init__(
        self,
        splits: dict[str, np.ndarray],
        n_ctx: int,
        max_tokens: int,
        vocab_size: int,
        device: torch.device | str = "cpu",
    ):
        self.n_ctx = n_ctx
        self.device = torch.device(device)
        self.data: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for name, tokens in splits.items():
            starts = fixed_windows(tokens, n_ctx, max_tokens)
            x, y = windows(tokens, starts, n_ctx)
            self.data[name] = (x.to(self.device), y.to(self.device))
        per_pass = TOKENS_PER_PASS if self.device.type == "cpu" else 32 * TOKENS_PER_PASS
        self.batch = max(1, min(LOGITS_BUDGET // (n_ctx * vocab_size), per_pass // n_ctx))

    @property
    def tokens_per_eval(self) -> int:
        return sum(int(x.numel()) for x, _ in self.data.values())

    @torch.no_grad()
    def per_position(self, forward, name: str, autocast=None) -> torch.Tensor:
        """Mean loss at each position 0…n_ctx−1 over the split's windows (float64, on CPU)."""
        x, y = self.data[name]
        total = torch.zeros(self.n_ctx, dtype=torch.float64, device=self.device)
        for i in range(0, x.shape[0], self.batch):
            xb, yb = x[i : i + self.batch], y[i : i + self.batch]
            if autocast is not None:
                with autocast():
                    logits = forward(xb)[0]
            else:
                logits = forward(xb)[0]
            loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), yb.reshape(-1), reduction="none")
            total += loss.view(yb.shape).sum(0, dtype=torch.float64)
        return (total / x.shape[0]).cpu()

    def __call__(self, model: torch.nn.Module, autocast=None, forward=None) -> dict[str, torch.Tensor]:
        """{split name: per-position loss}; the mean loss is its mean (windows all have n_ctx targets).

        `forward` is the callable to run (e.g. the compiled model); `model` is switched to eval mode.
        """
        was_training = model.training
        model.eval()
        try:
            return {name: self.per_position(model if forward is None else forward, name, autocast) for name in self.data}
        finally:
            model.train(was_training)
