"""An LSTM language model, the paper's recurrent baseline (Kaplan et al. 2020, §3.2.1, Fig. 7).

Token embedding → n_layer LSTM layers of width d_model (one multi-layer `nn.LSTM`) → final LayerNorm →
output head. No position embedding: the recurrence carries position. Same interface as `GPT`
(`forward`, `loss_per_token`, `hidden`, `logits`) so training, evaluation and benchmarking take either.
The attribute names `wte` and `lm_head` mark embedding parameters for `counting.count_non_embedding`.

Exact non-embedding parameters: per layer nn.LSTM holds W_ih (4d×d), W_hh (4d×d) and two bias vectors
b_ih, b_hh (4d each) → 8d² + 8d; plus the final LayerNorm's 2d. `lstm_params` is that closed form.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from scalinglab.config import ModelConfig
from scalinglab.model.lm import LanguageModel


def lstm_layer_params(d_model: int) -> int:
    """Exact parameters of one nn.LSTM layer with input and hidden width d: 4·(d·d + d·d) + 2·4d."""
    return 4 * (d_model * d_model + d_model * d_model) + 8 * d_model


def lstm_params(n_layer: int, d_model: int) -> int:
    """Exact non-embedding parameters N of `LSTMLM`: n_layer·(8d² + 8d) + 2d (final LayerNorm)."""
    return n_layer * lstm_layer_params(d_model) + 2 * d_model


# Elementwise work per layer per token, in units of d_model (1 FLOP per add, multiply or nonlinearity):
#   4  adding the two gate pre-activations W_ih·x + W_hh·h (4 gates)
#   5  nonlinearities: sigmoid on i, f, o; tanh on g; tanh on c
#   3  c = f⊙c + i⊙g
#   1  h = o⊙tanh(c)
LSTM_ELEMENTWISE_PER_D = 13


def lstm_flops_per_token_forward(n_layer: int, d_model: int) -> int:
    """Forward FLOPs per token: 2N (every weight and bias one multiply-add, as in Table 1) + the gate work.

    = n_layer·(16d² + 16d + 13d) + 4d. Unlike attention there is no context term: an LSTM's cost per token
    does not grow with the position in the context.
    """
    return 2 * lstm_params(n_layer, d_model) + n_layer * LSTM_ELEMENTWISE_PER_D * d_model


class LSTMLM(LanguageModel):
    """LSTM language model. `forward(idx, targets)` returns (logits, mean loss); every sequence starts from
    a zero state, so windows are independent exactly as for the Transformer."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.arch != "lstm":
            raise ValueError(f"LSTMLM builds arch='lstm', not {cfg.arch}")
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.lstm = nn.LSTM(
            cfg.d_model,
            cfg.d_model,
            num_layers=cfg.n_layer,
            batch_first=True,
            dropout=cfg.dropout if cfg.n_layer > 1 else 0.0,
        )
        self.ln_f = nn.LayerNorm(cfg.d_model)
        if cfg.tie_embeddings:
            self.lm_head = None
        else:
            self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self._init_weights()

    def _init_weights(self) -> None:
        # Untied: unit-scale embeddings (torch's default N(0, 1)). Unlike a pre-LN Transformer, nothing
        # normalises the LSTM's input, and GPT's std 0.02 leaves the gates nearly blind to the token (it
        # barely learns in the first hundred steps). Tied: the embedding is also the output head, so it keeps
        # GPT's 0.02 to start near the uniform loss. Head std 0.02; LSTM weights keep torch's U(±1/√d);
        # forget-gate bias 1 (Jozefowicz et al. 2015) so early gradients flow through the cell.
        nn.init.normal_(self.wte.weight, mean=0.0, std=0.02 if self.cfg.tie_embeddings else 1.0)
        if self.lm_head is not None:
            nn.init.normal_(self.lm_head.weight, mean=0.0, std=0.02)
        d = self.cfg.d_model
        with torch.no_grad():
            for name, p in self.lstm.named_parameters():
                if name.startswith("bias_"):
                    p.zero_()
                    if name.startswith("bias_ih"):
                        p[d : 2 * d].fill_(1.0)  # gate order i, f, g, o

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """Final-LayerNorm hidden states (B, T, d_model)."""
        x = self.drop(self.wte(idx))
        out, _ = self.lstm(x)
        return self.ln_f(self.drop(out))
