"""Runtime settings that make a training step fast, shared by `train` and `bench train`.

Call `setup_runtime(threads, device)` once per process before building the model, then
`prepare_model(model, device, compile)` and run each forward under `autocast(device)`. Measured on a
2-core CPU (`scalinglab bench train --baseline`, interleaved): these settings give about 1.0-1.07x over a
plain eager loop, within noise; the step is matmul-bound (~62% of time in MKL sgemm). `torch.compile` costs
~40 s and did not pay on CPU, so it is on by default only on CUDA (with bf16 autocast, untested here).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util

import torch

from scalinglab.train.optim import resolve_device, set_threads

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_GLIBC_DEFAULTS = {_M_TRIM_THRESHOLD: 128 * 1024, _M_TOP_PAD: 128 * 1024, _M_MMAP_THRESHOLD: 128 * 1024}
_TUNED = {_M_TRIM_THRESHOLD: 2**31 - 1, _M_TOP_PAD: 64 * 2**20, _M_MMAP_THRESHOLD: 2**30}


def _mallopt(settings: dict[int, int]) -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to tune
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_int]
    return all(fn(k, v) == 1 for k, v in settings.items())


def tune_allocator() -> bool:
    """Serve activations (tens of MB each) from the glibc heap and keep freed memory for the next step.

    By default glibc hands every allocation over 128 KiB-32 MiB to mmap and returns it on free, so each step
    page-faults and zero-fills every activation again; a separate-process test suggested ~15% but interleaved runs show ≤ 7%. The price is
    that the process keeps its peak memory. Returns False where the C library is not glibc.
    """
    return _mallopt(_TUNED)


def reset_allocator() -> bool:
    """Back to glibc's default thresholds (used by the bench to time the untuned baseline fairly)."""
    return _mallopt(_GLIBC_DEFAULTS)


def setup_runtime(threads: int | None = None, device: str | torch.device = "auto") -> dict:
    """Thread count, allocator and matmul precision for fast training; returns what was set."""
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    n = set_threads(threads)
    allocator = tune_allocator() if dev.type == "cpu" else False
    if dev.type == "cuda":  # untested here: no GPU in the development environment
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return {"device": str(dev), "threads": n, "allocator_tuned": allocator}


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
