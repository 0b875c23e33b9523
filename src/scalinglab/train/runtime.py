"""The one place that decides how a run executes: device, `torch.compile`, autocast precision, grad scaler.

`resolve(device, compile, precision)` turns the settings of `TrainConfig` (or `bench train`'s flags) into a
`Runtime`, and rejects what this machine cannot do before any step runs (a `UserError`: exit 2):

- compile: "auto" compiles on CUDA and not on CPU (on CPU the compile time did not pay back over runs of a few
  hundred steps, see the training benchmarks page); "true" needs a torch whose dynamo supports this Python and a
  backend (a C++ compiler on CPU, triton on CUDA).
- precision: "auto" is bf16 autocast on a CUDA device that supports it, else fp32; "bf16" on CUDA needs a GPU
  with bf16; "fp16" is autocast with a `GradScaler` (loss scaling: an overflowing step is skipped and the scale
  lowered, as `torch.amp` does), on CUDA or CPU.

Enter `session(threads, device)` around a run (it sets the thread count and, on CUDA, TF32 matmuls, and
puts back the caller's settings and RNG states on exit, so a notebook calling `run_training` keeps its own).
Then `Runtime.prepare(model)` returns the callable to run forward passes with (the compiled module, or the
model itself); the uncompiled `model` keeps the weights, so the optimiser, checkpoints and parameter counts
never see the compiled wrapper's `_orig_mod.` names.
"""

from __future__ import annotations

import contextlib
import importlib.util
import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from scalinglab.errors import UserError
from scalinglab.train.optim import resolve_device, set_threads

COMPILE_CHOICES = ("auto", "true", "false")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Runtime:
    """How a run executes: where, compiled or not, and in which autocast precision."""

    device: torch.device
    compile: bool
    precision: str  # fp32 | bf16 | fp16 (resolved: never "auto")

    @property
    def dtype(self) -> torch.dtype:
        return _DTYPES[self.precision]

    @property
    def dtype_name(self) -> str:
        """The compute dtype as results record it ("float32", "bfloat16", "float16")."""
        return str(self.dtype).removeprefix("torch.")

    def autocast(self):
        """The context every forward pass runs in: autocast to bf16/fp16, nothing for fp32."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def scaler(self) -> torch.amp.GradScaler | None:
        """A loss scaler for fp16 (its gradients underflow without one); None otherwise."""
        return torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move `model` to the device; return what forward passes call (compiled when asked)."""
        model.to(self.device)
        return torch.compile(model) if self.compile else model

    def as_dict(self) -> dict:
        return {"device": str(self.device), "compile": self.compile, "precision": self.precision,
                "dtype": self.dtype_name}


def resolve(device: str | torch.device = "auto", compile: str | bool | None = "auto",
            precision: str = "auto") -> Runtime:
    """The runtime for these settings, or a UserError naming the first one this machine cannot honour."""
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    return Runtime(dev, _resolve_compile(compile, dev), _resolve_precision(precision, dev))


def _resolve_compile(compile: str | bool | None, dev: torch.device) -> bool:
    choice = "auto" if compile is None else str(compile).lower()  # True -> "true"
    if choice not in COMPILE_CHOICES:
        raise UserError(f"compile must be auto, true or false (got {compile!r})")
    if choice == "false":
        return False
    if choice == "auto":
        return dev.type == "cuda" and compile_problem(dev) is None
    problem = compile_problem(dev)
    if problem:
        raise UserError(f"compile = true but {problem}; use compile = false (or auto)")
    return True


def compile_problem(dev: torch.device) -> str | None:
    """Why `torch.compile` cannot run here (None when it can): old torch, unsupported Python, no backend."""
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile (it needs torch 2.0 or later)"
    try:
        from torch import _dynamo

        if not _dynamo.is_dynamo_supported():
            return f"torch {torch.__version__} cannot compile on this Python"
    except Exception as e:  # pragma: no cover - broken installs
        return f"torch's compiler does not import ({type(e).__name__})"
    if dev.type == "cuda":
        if importlib.util.find_spec("triton") is None:
            return "triton is not installed (torch.compile needs it on CUDA)"
        return None
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        get_cpp_compiler()
    except ImportError:  # pragma: no cover - torch versions without cpp_builder find the compiler themselves
        return None
    except Exception:
        return "no working C++ compiler was found (torch.compile needs one on CPU; set CXX)"
    return None


def _resolve_precision(precision: str, dev: torch.device) -> str:
    p = str(precision).lower()
    if p not in PRECISIONS:
        raise UserError(f"precision must be auto, fp32, bf16 or fp16 (got {precision!r})")
    if p == "auto":
        return "bf16" if dev.type == "cuda" and _cuda_bf16(dev) else "fp32"
    if p == "bf16" and dev.type == "cuda" and not _cuda_bf16(dev):
        raise UserError(f"precision = bf16 but {torch.cuda.get_device_name(dev)} does not support bfloat16; "
                        "use fp16 or fp32")
    return p


def _cuda_bf16(dev: torch.device) -> bool:
    with torch.cuda.device(dev):
        return torch.cuda.is_bf16_supported()


@contextlib.contextmanager
def session(threads: int | None = None, device: str | torch.device = "auto") -> Iterator[int]:
    """Threads (yielded: the count set) and matmul precision for fast training, restored on exit with the RNGs."""
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    saved = (torch.get_num_threads(), torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    rng = np.random.get_state(), random.getstate()
    try:
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            n = set_threads(threads)
            if dev.type == "cuda":  # never run on a GPU yet (see the GPU how-to)
                torch.backends.cuda.matmul.allow_tf32 = True
                torch.backends.cudnn.allow_tf32 = True
            yield n
    finally:
        torch.set_num_threads(saved[0])
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[1], saved[2]
        np.random.set_state(rng[0])
        random.setstate(rng[1])


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host batch on `device`: through pinned memory with a non-blocking copy on CUDA, as is on CPU."""
    if device.type != "cuda" or t.device == device:
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so a timer reads the time the work took (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
