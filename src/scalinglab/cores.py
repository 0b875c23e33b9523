"""How many CPU cores this process may use (its affinity mask, not the machine's count): the default for torch
threads, sweep workers, Ray CPUs and bootstrap threads."""

from __future__ import annotations

import os


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


def passive_omp_wait() -> None:
    """Let idle OpenMP threads sleep instead of spin (OMP_WAIT_POLICY=PASSIVE), unless the user chose a policy.

    torch's CPU kernels run on OpenMP. By default its idle threads spin, so a run with one thread per core slows
    by an order of magnitude when another process holds one of the cores (a sweep's other worker, a test suite's
    other process, anything else on a shared machine): each parallel region waits for a thread that is not
    running. It takes effect only in a process that has not loaded torch yet, and its children inherit it, so
    the entry point calls it first (README, "Measured performance", has the measurement)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
