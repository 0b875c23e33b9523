"""Models (Transformer, recurrent Transformer, LSTM) and their exact parameter/FLOP accounting."""

from __future__ import annotations

from scalinglab.config import ModelConfig


def build_model(cfg: ModelConfig):
    """The torch module for a shape: GPT for transformer/universal, an LSTM LM for lstm."""
    if cfg.arch == "lstm":
        from scalinglab.model.lstm import LSTMLM

        return LSTMLM(cfg)
    from scalinglab.model.transformer import GPT

    return GPT(cfg)
