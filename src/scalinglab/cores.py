"""How many CPU cores this process may use (its affinity mask, not the machine's count): the default for torch
threads, sweep workers, Ray CPUs and bootstrap threads."""

from __future__ import annotations

import os


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1
