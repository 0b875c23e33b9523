"""Data-parallel training over torch.distributed: one run on K processes started by `torchrun`.

`torchrun --nproc-per-node K -m scalinglab train ...` sets RANK/WORLD_SIZE/LOCAL_RANK; `Ranks.from_env()`
reads them and `process_group()` joins the group (gloo on CPU, nccl on CUDA with a GPU per rank, gloo when ranks
share a GPU). Every rank draws the same
global batch positions (the loader's (seed, k) generator) and trains on its contiguous 1/K share, so the
run is the single-process run with the same global batch up to the order of float sums: the same data,
the same init, the same accounting (tokens and FLOPs count the global batch).

Gradients are averaged by `DistributedDataParallel`, except on noise-scale steps: there each rank keeps
its own gradient until `GradSync.reduce` has read its norm, then averages them with one all-reduce. The
ranks' gradients (batch B/K) and their average (batch B) are the two batch sizes of McCandlish et al.'s
estimate, so a data-parallel run measures B_simple without splitting any batch.

Rank 0 evaluates and writes every file; decisions taken there (early stop, a NaN validation loss) are
broadcast so that every rank leaves the loop at the same step. Checkpoints hold every rank's RNG state.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from scalinglab.cores import available_cores
from scalinglab.errors import UserError


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run: rank, world size and the ranks on this node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @classmethod
    def from_env(cls) -> Ranks:
        env = os.environ
        world = int(env.get("WORLD_SIZE", "1"))
        return cls(int(env.get("RANK", "0")), world, int(env.get("LOCAL_RANK", "0")),
                   int(env.get("LOCAL_WORLD_SIZE", str(world))))

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, batch_size: int) -> int:
        """Sequences per rank."""
        return split(batch_size, self.world_size)

    def device(self, device: torch.device) -> torch.device:
        """One GPU per rank (cuda:LOCAL_RANK) when the run is on CUDA; ranks share GPUs when there are fewer."""
        if device.type == "cuda" and self.distributed and device.index is None:
            return torch.device("cuda", self.local_rank % max(1, torch.cuda.device_count()))
        return device

    def threads(self, threads: int | None) -> int | None:
        """The cores of this process's affinity split among the ranks on this node (unless set)."""
        if threads is not None or not self.distributed:
            return threads
        return max(1, available_cores() // self.local_world_size)

    def shard(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0] // self.world_size
        return x[self.rank * b : (self.rank + 1) * b]


def split(batch_size: int, world_size: int) -> int:
    """Sequences per rank; a batch that the ranks cannot split evenly is bad input."""
    if batch_size % world_size:
        raise UserError(f"batch_size {batch_size} does not split evenly over nproc_per_node={world_size} processes; "
                        f"use a multiple of {world_size} (micro_batch_size sets gradient accumulation per rank)")
    return batch_size // world_size


def world_size_for(nproc_per_node: int, ranks: Ranks) -> int:
    """The run's world size: torchrun's when under it (a different nproc_per_node is bad input), else the config's."""
    if ranks.distributed and nproc_per_node not in (1, ranks.world_size):
        raise UserError(f"nproc_per_node={nproc_per_node} but torchrun started {ranks.world_size} processes")
    return ranks.world_size if ranks.distributed else nproc_per_node


def launch(out: Path, nproc: int, threads: int | None) -> int:
    """Run the run whose config.json is in `out` on `nproc` local processes through torchrun; its exit status.

    The ranks run `scalinglab.train.worker`, which trains from that config.json, so they see exactly the
    config of the caller; rank 0 writes result.json."""
    per_rank = threads or max(1, available_cores() // nproc)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           "-m", "scalinglab.train.worker", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": str(per_rank), "PYTHONUNBUFFERED": "1"}
    return subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=False).returncode


@contextlib.contextmanager
def process_group(ranks: Ranks, device: torch.device):
    """Join the run's process group for the duration (nothing when there is one process)."""
    if not ranks.distributed or dist.is_initialized():
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend(ranks, device))
    try:
        yield
        dist.barrier()  # no rank tears gloo down while another still talks to it (that aborted a rank at exit)
    finally:
        dist.destroy_process_group()


def end_rank(code: int) -> None:
    """End a torchrun rank whose work is written and whose process group is gone: flush and leave with os._exit.

    Interpreter finalization can still meet a gloo worker thread and abort the rank ("terminate called without
    an active exception", SIGABRT) after a run that finished; nothing is left to finalize, so it is skipped. Outside
    torchrun this returns and the caller exits as usual."""
    if not Ranks.from_env().distributed:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def backend(ranks: Ranks, device: torch.device) -> str:
    """nccl when every rank on this node has a GPU of its own, else gloo (CPU runs; several ranks on one GPU, which
    nccl refuses): the only thing that differs between the CPU and the GPU set-up."""
    if device.type == "cuda" and ranks.local_world_size <= torch.cuda.device_count():
        return "nccl"
    return "gloo"


def seed_rank(seed: int, ranks: Ranks) -> None:
    """Different dropout streams per rank after the (shared) init; rank 0 of one process is untouched."""
    if ranks.distributed:
        torch.manual_seed(int(np.random.SeedSequence([seed, ranks.rank]).generate_state(1)[0]))


# The DDP modules of this rank process, kept until `end_rank` leaves with os._exit. Freeing one after its process
# group was destroyed drops the group's last reference inside the reducer's destructor, with the GIL held: gloo's
# destructor then joins its worker thread, which may still be freeing the final barrier's work and need the GIL
# to release its tensors, and the rank hangs at the end of a finished run (seen with py-spy in a loaded test run).
_HELD: list[torch.nn.Module] = []


def wrap(model: torch.nn.Module, forward, device: torch.device, ranks: Ranks):
    """(forward to call, GradSync) for this run; the plain forward and None with one process."""
    if not ranks.distributed:
        return forward, None
    ids = [device.index] if device.type == "cuda" else None
    ddp = torch.nn.parallel.DistributedDataParallel(forward, device_ids=ids)  # the models have no buffers
    _HELD.append(ddp)
    return ddp, GradSync(ddp, ranks)


class GradSync:
    """Gradient averaging across ranks for `train_step`, with the per-rank norms on measuring steps."""

    def __init__(self, ddp: torch.nn.parallel.DistributedDataParallel, ranks: Ranks):
        self.ddp, self.ranks = ddp, ranks
        self.measure = False

    def accumulating(self, last: bool):
        """DDP averages after the last micro-batch's backward, unless this step measures (then `reduce` does)."""
        return contextlib.nullcontext() if last and not self.measure else self.ddp.no_sync()

    @torch.no_grad()
    def reduce(self, params: Sequence[torch.Tensor], loss: torch.Tensor, share: int):
        """(global mean loss, mean over ranks of |g_rank|², batch per rank) — the last two None unless measuring."""
        grads = [p.grad for p in params if p.grad is not None]
        local_sq = torch.stack(torch._foreach_norm(grads)).double().square().sum() if self.measure else None
        scalars = torch.stack([loss.double(), local_sq if local_sq is not None else torch.zeros((), dtype=torch.float64,
                                                                                                  device=loss.device)])
        dist.all_reduce(scalars)
        scalars /= self.ranks.world_size
        if not self.measure:
            return scalars[0], None, None
        flat = torch._utils._flatten_dense_tensors(grads)
        dist.all_reduce(flat)
        flat /= self.ranks.world_size
        torch._foreach_copy_(grads, torch._utils._unflatten_dense_tensors(flat, grads))
        return scalars[0], float(scalars[1]), float(share)


def broadcast_flags(ranks: Ranks, device: torch.device, *flags: bool) -> tuple[bool, ...]:
    """Rank 0's values of `flags` on every rank."""
    if not ranks.distributed:
        return flags
    t = torch.tensor([int(f) for f in flags], dtype=torch.int64, device=device)
    dist.broadcast(t, src=0)
    return tuple(bool(v) for v in t.tolist())


def broadcast(ranks: Ranks, obj):
    """Rank 0's `obj` (any picklable value) on every rank."""
    if not ranks.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(ranks: Ranks, obj) -> list | None:
    """[obj of rank 0, obj of rank 1, ...] on rank 0, None elsewhere."""
    if not ranks.distributed:
        return [obj]
    out = [None] * ranks.world_size if ranks.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out
