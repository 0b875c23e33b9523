"""Where runs execute: worker processes on this machine, or tasks on a Ray cluster.

Both executors call the same `execute_run` with the same task dict, so a run's result depends only on
its config and its thread count, not on the executor. Workers only compute and return the result dict;
the sweep driver alone writes to the store.

An executor has `submit(task) -> handle`, `wait(handles, timeout) -> [(handle, result), ...]` (at least
one finished run, or none after `timeout`) and `shutdown()`.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from typing import Any

from scalinglab.cores import available_cores

EXECUTORS = ("local", "ray")


def execute_run(task: dict[str, Any]) -> dict[str, Any]:
    """Train one run in a worker: `task` = {run_id, config (TrainConfig dict with threads), out_dir}.

    Never raises: an exception becomes a result with status 'failed' and the reason, so that one bad run
    cannot take the sweep down. A run folder with a checkpoint resumes inside `run_training`.
    """
    t0 = time.perf_counter()
    base = {"run_id": task["run_id"], "host": socket.gethostname(), "worker_pid": os.getpid()}
    try:
        from scalinglab.config import TrainConfig
        from scalinglab.train import run_training

        cfg = TrainConfig.model_validate(task["config"])
        result = dict(run_training(cfg, task["out_dir"], progress=False))
    except Exception as e:  # noqa: BLE001 - reported to the driver, recorded as 'failed'
        tb = traceback.format_exc(limit=-3)
        return {**base, "status": "failed", "reason": f"{type(e).__name__}: {' '.join(str(e).split())}"[:500],
                "traceback": tb, "config": task["config"], "worker_s": time.perf_counter() - t0}
    return {**result, **base, "worker_s": time.perf_counter() - t0}


def _failure(task: dict[str, Any], reason: str) -> dict[str, Any]:
    return {"run_id": task["run_id"], "status": "failed", "reason": reason, "config": task["config"]}


class LocalExecutor:
    """`workers` processes from a 'forkserver' (else 'spawn') context: forked from a clean server that
    has imported torch but started no threads (never from the driver); each process keeps serving runs."""

    def __init__(self, workers: int):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        methods = mp.get_all_start_methods()
        self._ctx = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
        if "forkserver" in methods:  # import torch once in the server; workers fork from it ready to train
            # (torch._dynamo is imported lazily by the first optimiser: seconds, so pay it once here)
            self._ctx.set_forkserver_preload(["torch", "torch._dynamo", "scalinglab.train"])
        self._workers = workers
        self._make = lambda: ProcessPoolExecutor(max_workers=workers, mp_context=self._ctx)
        self._pool = self._make()
        self._tasks: dict[Any, dict] = {}

    def submit(self, task: dict[str, Any]):
        from concurrent.futures.process import BrokenProcessPool

        try:
            fut = self._pool.submit(execute_run, task)
        except BrokenProcessPool:  # a worker died earlier (e.g. killed by the OOM killer): start afresh
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._make()
            fut = self._pool.submit(execute_run, task)
        self._tasks[fut] = task
        return fut

    def wait(self, handles, timeout: float | None = None) -> list[tuple[Any, dict]]:
        from concurrent.futures import FIRST_COMPLETED
        from concurrent.futures import wait as fwait

        done, _ = fwait(list(handles), timeout=timeout, return_when=FIRST_COMPLETED)
        out = []
        for fut in done:
            task = self._tasks.pop(fut)
            try:
                out.append((fut, fut.result()))
            except Exception as e:  # noqa: BLE001 - the worker process died (BrokenProcessPool)
                out.append((fut, _failure(task, f"worker process died: {type(e).__name__}: {e}")))
        return out

    def shutdown(self, cancel: bool = False) -> None:
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)


class RayExecutor:
    """One Ray task per run with `num_cpus` = the run's threads. `address=None` starts a local Ray
    (no dashboard, num_cpus = this machine's cores) that ends with the sweep; an address joins an
    existing cluster, whose nodes must have scalinglab installed and see the corpus path."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None):
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        try:
            import ray
        except ImportError:
            from scalinglab.errors import UserError

            raise UserError("--executor ray needs Ray: pip install 'scalinglab[ray]'") from None
        self.ray = ray
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "ignore_reinit_error": True}
        if address:
            kwargs["address"] = address
        else:
            kwargs["num_cpus"] = num_cpus or available_cores()
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            from scalinglab.errors import UserError

            raise UserError(f"cannot start or reach Ray{' at ' + address if address else ''}: {e}") from None
        self._remote = ray.remote(max_retries=0)(execute_run)
        self._tasks: dict[Any, dict] = {}

    def submit(self, task: dict[str, Any]):
        ref = self._remote.options(num_cpus=int(task["config"].get("threads") or 1)).remote(task)
        self._tasks[ref] = task
        return ref

    def wait(self, handles, timeout: float | None = None) -> list[tuple[Any, dict]]:
        ready, _ = self.ray.wait(list(handles), num_returns=1, timeout=timeout)
        out = []
        for ref in ready:
            task = self._tasks.pop(ref)
            try:
                out.append((ref, self.ray.get(ref)))
            except Exception as e:  # noqa: BLE001 - the worker died or the task could not run
                out.append((ref, _failure(task, f"ray task failed: {type(e).__name__}: {' '.join(str(e).split())[:300]}")))
        return out

    def shutdown(self, cancel: bool = False) -> None:
        if cancel:
            for ref in list(self._tasks):
                try:
                    self.ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - best effort on the way out
                    pass
        self.ray.shutdown()


def make_executor(kind: str, workers: int, threads: int, address: str | None = None):
    if kind == "local":
        return LocalExecutor(workers)
    if kind == "ray":
        return RayExecutor(address, num_cpus=None if address else max(available_cores(), workers * threads))
    from scalinglab.errors import UserError

    raise UserError(f"unknown --executor {kind!r}; choose one of: {', '.join(EXECUTORS)}")
