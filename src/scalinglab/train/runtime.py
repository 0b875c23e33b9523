"""Runtime settings that make a training step fast, shared by `train` and `bench train`.

Enter `session(threads, device)` around a run (it sets the thread count and, on CUDA, TF32 matmuls, and
puts back the caller's settings and RNG states on exit, so a notebook calling `run_training` keeps its
own), then `prepare_model(model, device, compile)` and run each forward under `autocast(device)`.
`torch.compile` did not pay on CPU for runs of a few hundred steps, so it is on by default only on CUDA
(with bf16 autocast, untested here).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch

from scalinglab.train.optim import resolve_device, set_threads


@contextlib.contextmanager
def session(threads: int | None = None, device: str | torch.device = "auto") -> Iterator[int]:
    """Threads (yielded: the count set) and matmul precision for fast training, restored on exit with the RNGs."""
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    saved = (torch.get_num_threads(), torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    rng = np.random.get_state(), random.getstate()
    try:
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            n = set_threads(threads)
            if dev.type == "cuda":  # untested here: no GPU in the development environment
                torch.backends.cuda.matmul.allow_tf32 = True
                torch.backends.cudnn.allow_tf32 = True
            yield n
    finally:
        torch.set_num_threads(saved[0])
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[1], saved[2]
        np.random.set_state(rng[0])
        random.setstate(rng[1])


def default_compile(device: torch.device) -> bool:
    """Whether `torch.compile` pays for a run of a few hundred steps: on CUDA yes, on CPU no (measured)."""
    return device.type == "cuda"


def prepare_model(model: torch.nn.Module, device: torch.device, compile: bool | None = None) -> torch.nn.Module:
    """Move to `device` and compile when asked (None: `default_compile`). Keep the uncompiled module for
    the optimiser, checkpoints and counting; call the returned one for forward passes."""
    model.to(device)
    if compile is None:
        compile = default_compile(device)
    return torch.compile(model) if compile else model


def autocast(device: torch.device):
    """bf16 autocast on CUDA (untested here); full fp32 on CPU, where bf16 is not faster on AVX2."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compute_dtype(device: torch.device) -> str:
    return "bfloat16" if device.type == "cuda" else "float32"
