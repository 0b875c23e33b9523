"""Optimiser and runtime setup shared by `train` and `bench train`, so both time the same step.

AdamW with weight decay on matrices only (not biases, LayerNorms), using the fused kernel where this
torch build has one for the device and the multi-tensor (foreach) path otherwise.
"""

from __future__ import annotations

import inspect

import torch


def resolve_device(device: str = "auto", what: str = "device") -> torch.device:
    """'auto' → CUDA when present else CPU; anything but an available cpu/cuda[:N] is a UserError.

    `what` names the setting in the message (e.g. '--device' for a CLI flag).
    """
    from scalinglab.errors import UserError

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise UserError(f"unknown {what} {device!r}: {e}") from None
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"{what} must be auto, cpu or cuda[:N] (got {device!r})")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{what} {device} asked for CUDA but torch sees no GPU")
    return dev


def set_threads(threads: int | None) -> int:
    """Use `threads` intra-op threads (default: every core this process may use); returns the count."""
    if threads is None:
        from scalinglab.cores import available_cores

        threads = available_cores()
    torch.set_num_threads(int(threads))
    return int(threads)


def make_optimizer(
    model: torch.nn.Module,
    lr: float,
    weight_decay: float = 0.1,
    betas: tuple[float, float] = (0.9, 0.95),
    device: torch.device | None = None,
) -> torch.optim.AdamW:
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    kwargs: dict = {}
    if "fused" in inspect.signature(torch.optim.AdamW).parameters:
        kwargs["fused"] = True
    try:
        return torch.optim.AdamW(groups, lr=lr, betas=betas, **kwargs)
    except (RuntimeError, ValueError):  # no fused kernel for this device/dtype
        return torch.optim.AdamW(groups, lr=lr, betas=betas, foreach=True)
