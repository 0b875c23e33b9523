"""What every language model here shares: the output head, the training loss and per-position loss.

Subclasses define `hidden(idx)` (final hidden states) and the attributes `wte` and `lm_head`
(None when the head is tied to the token embedding).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class LanguageModel(nn.Module):
    wte: nn.Embedding
    lm_head: nn.Linear | None

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        if self.lm_head is None:
            return F.linear(h, self.wte.weight)
        return self.lm_head(h)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = self.logits(self.hidden(idx))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss

    @torch.no_grad()
    def loss_per_token(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of every position, shape (B, T), in nats (per-position loss, Figs. 7 and 20)."""
        logits = self.logits(self.hidden(idx))
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), reduction="none")
        return loss.view(targets.shape)
