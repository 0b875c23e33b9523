"""Where runs execute: worker processes on this machine, or tasks on a Ray cluster.

Both executors call the same `execute_run` (sweep/worker.py, which cluster.py's Ray task also calls, so neither
module imports the other) with the same task dict, so a run's result depends only on
its config and its thread count, not on the executor. Workers only compute and return the result dict;
the sweep driver alone writes to the store.

An executor has `submit(task) -> handle`, `wait(handles, timeout) -> [(handle, result), ...]` (at least
one finished run, or none after `timeout`) and `shutdown()`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from scalinglab.cores import available_cores
from scalinglab.sweep.worker import execute_run

__all__ = ["EXECUTORS", "LocalExecutor", "RayExecutor", "execute_run", "make_executor"]

EXECUTORS = ("local", "ray")


def _failure(task: dict[str, Any], reason: str) -> dict[str, Any]:
    return {"run_id": task["run_id"], "status": "failed", "reason": reason, "config": task["config"]}


class LocalExecutor:
    """`workers` processes from a 'forkserver' (else 'spawn') context: forked from a clean server that
    has imported torch but started no threads (never from the driver); each process keeps serving runs.
    `preload=False` (a sweep of command runs only, whose workers just launch programs) imports nothing ahead."""

    def __init__(self, workers: int, preload: bool = True):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        methods = mp.get_all_start_methods()
        self._ctx = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
        if "forkserver" in methods and preload:  # import torch once in the server; workers fork from it ready
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
    """One Ray task per run, asking for the run's resources (`cluster.task_options`: num_cpus = its
    threads unless the plan says otherwise, num_gpus, memory) and retried `MAX_RETRIES` times when its
    node or worker dies (the rerun resumes from the run's checkpoint). `address=None` starts a local Ray
    (no dashboard, num_cpus = this machine's cores) that ends with the sweep; an address joins an
    existing cluster, whose nodes must have scalinglab installed and see the run folders and corpora at
    the same paths (checked before the first run, see `cluster.check_shared_paths`)."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None, runs_dir: Path | None = None,
                 corpora: list[str] | None = None):
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        try:
            import ray
        except ImportError:
            from scalinglab.errors import UserError

            raise UserError("--executor ray needs Ray: pip install 'scalinglab[ray]'") from None
        from scalinglab.sweep import cluster

        self.ray = ray
        # Ray's driver prints cluster events (a node died, a task is retried) on sys.stdout, which is the
        # sweep's result (--json): send them to stderr, with the progress lines, until shutdown
        self._stdout, sys.stdout = sys.stdout, sys.stderr
        try:
            self._start(ray, cluster, address, num_cpus, runs_dir, corpora)
        except BaseException:
            sys.stdout = self._stdout
            raise
        self._remote = ray.remote(max_retries=cluster.MAX_RETRIES)(cluster.run_on_node)
        self._options = cluster.task_options
        self._tasks: dict[Any, dict] = {}

    @staticmethod
    def _start(ray, cluster, address, num_cpus, runs_dir, corpora) -> None:
        if address:
            cluster.connect(ray, address)
            try:
                if runs_dir is not None:
                    cluster.check_shared_paths(ray, runs_dir, list(corpora or []))
            except BaseException:
                ray.shutdown()
                raise
        else:
            try:
                ray.init(num_cpus=num_cpus or available_cores(), include_dashboard=False, log_to_driver=False,
                         ignore_reinit_error=True)
            except (ConnectionError, RuntimeError, ValueError) as e:
                from scalinglab.errors import UserError

                raise UserError(f"cannot start Ray: {' '.join(str(e).split())[:300]}") from None

    def submit(self, task: dict[str, Any]):
        ref = self._remote.options(**self._options(task)).remote(task)
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
        try:
            self.ray.shutdown()
        finally:
            sys.stdout = self._stdout


def make_executor(kind: str, workers: int, threads: int, address: str | None = None,
                  runs_dir: Path | None = None, corpora: list[str] | None = None, preload: bool = True):
    """The executor of `kind`; a Ray one at `address` first checks that every node sees `runs_dir` and `corpora`."""
    if kind == "local":
        return LocalExecutor(workers, preload)
    if kind == "ray":
        return RayExecutor(address, num_cpus=None if address else max(available_cores(), workers * threads),
                           runs_dir=runs_dir, corpora=corpora)
    from scalinglab.errors import UserError

    raise UserError(f"unknown --executor {kind!r}; choose one of: {', '.join(EXECUTORS)}")
