"""What a sweep worker does with one task: train the run (or run a user's trainer) and return its result dict.

Both executors (sweep/executors.py) and the Ray task (sweep/cluster.py) call `execute_run`; it lives here so that
neither of those modules imports the other.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from typing import Any


def execute_run(task: dict[str, Any]) -> dict[str, Any]:
    """Train one run in a worker: `task` = {run_id, config (TrainConfig dict with threads), out_dir[, tracker,
    pause_at]}, plus command and cwd for a run of a user's trainer.

    Never raises: an exception becomes a result with status 'failed' and the reason, so that one bad run
    cannot take the sweep down. A run folder with a checkpoint resumes inside `run_training`.
    """
    t0 = time.perf_counter()
    base = {"run_id": task["run_id"], "host": socket.gethostname(), "worker_pid": os.getpid()}
    if task.get("command"):  # a user's trainer (sweep/command.py); a tracker gets its points as they are read
        from scalinglab.sweep.command import execute_command
        from scalinglab.trackers import tracking

        try:
            with tracking(task.get("tracker"), task["run_id"], task["config"], task["out_dir"]) as hooks:
                result = execute_command(task, hooks)
                if hooks:
                    hooks.result = result if result.get("status") != "failed" else None
        except Exception as e:  # noqa: BLE001 - the tracker failed to start or close
            result = {"run_id": task["run_id"], "status": "failed", "config": task["config"],
                      "reason": f"tracker: {type(e).__name__}: {' '.join(str(e).split())}"[:500]}
        return {**result, **base, "worker_s": time.perf_counter() - t0}
    try:
        from scalinglab.config import TrainConfig
        from scalinglab.trackers import train_tracked

        cfg = TrainConfig.model_validate(task["config"])
        result = dict(train_tracked(cfg, task["out_dir"], task.get("tracker"), task["run_id"], progress=False,
                                    pause_at=task.get("pause_at")))
    except Exception as e:  # noqa: BLE001 - reported to the driver, recorded as 'failed'
        tb = traceback.format_exc(limit=-3)
        return {**base, "status": "failed", "reason": f"{type(e).__name__}: {' '.join(str(e).split())}"[:500],
                "traceback": tb, "config": task["config"], "worker_s": time.perf_counter() - t0}
    return {**result, **base, "worker_s": time.perf_counter() - t0}
