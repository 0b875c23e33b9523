"""Atomic, pickle-free checkpoints: every piece of state a run needs to continue bit for bit.

A checkpoint holds only tensors and plain Python types (dict/list/int/float/str/bool/None), so it loads
with `torch.load(weights_only=True)`. RNG states of torch (CPU and CUDA), numpy and Python's `random`
are converted to tensors. It is written through `scalinglab.io.atomic_write_with` (temp file, fsync,
rename), so a kill at any moment leaves either the previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from scalinglab.errors import UserError
from scalinglab.io import atomic_write_with


def rng_state(all_cuda: bool = True) -> dict:
    """Every RNG a run draws from; `all_cuda=False` keeps only the current GPU's (one rank of a data-parallel run)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": int(version), "state": torch.tensor(py_state, dtype=torch.int64), "gauss": gauss},
    }
    if torch.cuda.is_available() and all_cuda:
        state["cuda"] = torch.cuda.get_rng_state_all()
    elif torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda_current"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(int(x) for x in p["state"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "cuda_current" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda_current"])


def save_checkpoint(path: str | Path, state: dict) -> Path:
    return atomic_write_with(path, lambda f: torch.save(state, f), binary=True)


def load_checkpoint(path: str | Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated by hand, foreign pickle, ...
        raise UserError(f"cannot read checkpoint {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
