"""Joining an existing Ray cluster: reach its address in bounded time, check that every node sees the
run folders and the corpora, and turn a run's resource requests into Ray task options.

`ray.init(address=...)` retries for minutes when nothing answers at the address, so the address is
probed first: a TCP connection (`CONNECT_TIMEOUT_S`), then a gRPC handshake (the protocol of Ray's GCS,
`CONNECT_TIMEOUT_S` again), one GCS call with the driver's token (a cluster with token authentication
refuses a driver without it at once, where `ray.init` would retry for about 20 s first), and only then
`ray.init`. A sweep on a cluster keeps its run folders beside the store (`<db dir>/runs/`), where every
node must read and write them: a node that cannot (no shared filesystem there) would train into a folder
nobody else sees, so the sweep refuses to start.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from scalinglab.errors import UserError

CONNECT_TIMEOUT_S = 10.0  # per probe (TCP, then gRPC): an unreachable --address fails within 2 × this
CHECK_TIMEOUT_S = 120.0  # every node answers the shared-path check within this (worker start-up included)
MAX_RETRIES = 3  # a run whose node (or worker process) dies is run again, resuming from its checkpoint
RESOURCE_KEYS = ("num_cpus", "num_gpus", "memory")  # plan keys: what one run asks the cluster for
ATTEMPTS_FILE = "ray_attempts.jsonl"  # one line per attempt of a run on the cluster: node, host, pid, time

TOKEN_HINT = ("the cluster uses token authentication: set RAY_AUTH_MODE=token and its token "
              "(~/.ray/auth_token, RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH)")

_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_memory(value: Any) -> int:
    """Bytes from a number of bytes or a string such as "512MiB", "4GB", "2G" (Ray's `memory` is bytes)."""
    if isinstance(value, bool):
        raise ValueError(f"expected bytes or a size such as '4GiB' (got {value!r})")
    if isinstance(value, int | float):
        n = float(value)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]i?)?b?\s*", str(value), re.IGNORECASE)
        if not m:
            raise ValueError(f"expected bytes or a size such as '4GiB' (got {value!r})")
        n = float(m.group(1)) * _UNITS[(m.group(2) or "").lower()]
    if not n > 0 or n != n or n == float("inf"):
        raise ValueError(f"must be a positive size (got {value!r})")
    return int(n)


def check_resource(key: str, value: Any) -> float | int:
    """A validated resource request: num_cpus/num_gpus ≥ 0 (fractions allowed, as in Ray), memory in bytes."""
    if key == "memory":
        return parse_memory(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0 or value == float("inf"):
        raise ValueError(f"must be a number ≥ 0 (got {value!r})")
    return value


def task_options(task: dict[str, Any]) -> dict[str, Any]:
    """Ray options of one run: num_cpus defaults to its threads × nproc_per_node (a data-parallel run's
    ranks each use `threads`); num_gpus and memory when the plan asks."""
    res = dict(task.get("resources") or {})
    cfg = task["config"]
    cpus = int(cfg.get("threads") or 1) * int(cfg.get("nproc_per_node") or 1)
    opts: dict[str, Any] = {"num_cpus": res.pop("num_cpus", cpus)}
    opts.update({k: v for k, v in res.items() if k in RESOURCE_KEYS})
    return opts


# --------------------------------------------------------------------------------------------------
# reaching the cluster


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of a HOST:PORT or ray://HOST:PORT address; None for 'auto' (found by Ray itself)."""
    if address == "auto":
        return None
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UserError(f"--address {address!r} is not HOST:PORT (the head's `ray start --head --port`)")
    return host.strip("[]"), int(port)


def probe_address(address: str, timeout: float | None = None) -> None:
    """Fail fast, with one line, when nothing at `address` speaks gRPC (Ray's GCS does) or its GCS refuses
    this driver's token; each probe waits at most `timeout` (default CONNECT_TIMEOUT_S)."""
    timeout = CONNECT_TIMEOUT_S if timeout is None else timeout
    hp = _host_port(address)
    if hp is None:
        return
    try:
        socket.create_connection(hp, timeout=timeout).close()
    except OSError as e:
        why = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise UserError(f"cannot reach the Ray cluster at {address}: {why} (within {timeout:g} s); start one with "
                        "`ray start --head` or fix --address") from None
    if address.startswith("ray://"):
        return  # the Ray Client server: ray.init speaks its protocol
    import grpc

    channel = grpc.insecure_channel(f"{hp[0]}:{hp[1]}")
    try:
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise UserError(f"{address} answers but is not a Ray cluster (no gRPC handshake within {timeout:g} s); "
                            "give the head's GCS port") from None
        if refused := _token_refused(grpc, channel, timeout):
            raise UserError(f"cannot connect to the Ray cluster at {address}: {refused}")
    finally:
        channel.close()


def _token_refused(grpc, channel, timeout: float) -> str | None:
    """Why the GCS refuses this driver's token, or its lack of one, on its cheapest call (GetClusterId); None
    when it answers.

    Uses Ray's own token loader (the environment and ~/.ray/auth_token, as ray.init reads them); on a Ray
    without it, or any other answer, the check passes and ray.init decides."""
    try:
        from ray._private.authentication.grpc_authentication_client_interceptor import (
            _get_authentication_metadata_tuple,
        )
        from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

        metadata = _get_authentication_metadata_tuple()
    except (ImportError, AttributeError):
        return None
    stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
    try:
        stub.GetClusterId(gcs_service_pb2.GetClusterIdRequest(), timeout=timeout, metadata=metadata)
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.UNAUTHENTICATED:
            return TOKEN_HINT if not metadata else ("it refused this driver's token (from RAY_AUTH_TOKEN, "
                                                    "RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token); use the head's token")
    return None


@contextmanager
def _stderr_held():
    """Hold what is written on fd 2 until the block ends: replayed when it succeeds, dropped when it raises
    (Ray's C++ client logs a line per retry while it fails to connect; the UserError line says why)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        ok = False
        try:
            yield
            ok = True
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if ok:
                held.seek(0)
                if data := held.read():
                    os.write(2, data)


def connect(ray, address: str) -> None:
    """ray.init on an existing cluster, after `probe_address`; every failure is one UserError line.

    A cluster with token authentication (`ray start --head` turns it on since Ray 2.59) refuses a driver
    without RAY_AUTH_MODE=token; the probe finds that at once, ray.init only after its own retries."""
    probe_address(address)
    try:
        with _stderr_held():
            ray.init(address=address, log_to_driver=False, ignore_reinit_error=True, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as e:
        cause = e.__cause__ or e
        msg = " ".join(str(cause).split())
        if "InvalidAuthToken" in msg or "uthentication" in type(cause).__name__:
            msg = TOKEN_HINT
        raise UserError(f"cannot connect to the Ray cluster at {address}: {msg[:300]}") from None


# --------------------------------------------------------------------------------------------------
# shared paths


def node_view(runs_dir: str, marker: str, token: str, corpora: list[str]) -> str | None:
    """Run on one node: None when `runs_dir` is the driver's folder (holds its marker file) and writable,
    and every corpus is readable; else what is wrong."""
    runs = Path(runs_dir)
    try:
        if (runs / marker).read_text(encoding="utf-8") != token:
            return f"sees a different folder at {runs}"
    except OSError as e:
        return f"cannot see the run folder {runs} ({e.strerror or e})"
    probe = runs / f".write-probe-{uuid.uuid4().hex}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        return f"cannot write in the run folder {runs} ({e.strerror or e})"
    for c in corpora:
        if not (Path(c) / "corpus.json").is_file():
            return f"cannot see the corpus {c}"
    return None


def check_shared_paths(ray, runs_dir: Path, corpora: list[str], timeout: float = CHECK_TIMEOUT_S) -> int:
    """One tiny task pinned to each alive node checks `node_view`; returns the number of nodes checked."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    runs_dir.mkdir(parents=True, exist_ok=True)
    marker, token = f".node-check-{uuid.uuid4().hex}", uuid.uuid4().hex
    (runs_dir / marker).write_text(token, encoding="utf-8")
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        remote = ray.remote(num_cpus=0, max_retries=0)(node_view)
        refs = {remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                .remote(str(runs_dir), marker, token, corpora): n for n in nodes}
        ready, pending = ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
        for ref in pending:
            n = refs[ref]
            raise UserError(f"node {n['NodeManagerAddress']} ({n['NodeID'][:8]}) did not answer the shared-path "
                            f"check within {timeout:g} s")
        for ref in ready:
            n = refs[ref]
            try:
                problem = ray.get(ref)
            except Exception as e:  # noqa: BLE001 - e.g. scalinglab is not installed in the node's Python
                first = next((ln for ln in str(e).splitlines()[::-1] if ln.strip()), type(e).__name__)
                raise UserError(f"node {n['NodeManagerAddress']} ({n['NodeID'][:8]}) cannot run scalinglab "
                                f"({first.strip()[:200]}): install it in the Python that runs `ray start`") from None
            if problem:
                raise UserError(f"node {n['NodeManagerAddress']} ({n['NodeID'][:8]}) {problem}: run folders "
                                "(beside --db) and corpora must be on a path every node mounts")
    finally:
        (runs_dir / marker).unlink(missing_ok=True)
    return len(nodes)


def run_on_node(task: dict[str, Any]) -> dict[str, Any]:
    """`execute_run` as a Ray task: logs the attempt in the run folder and adds the node id to the result."""
    import ray

    from scalinglab.sweep.worker import execute_run

    node_id = ray.get_runtime_context().get_node_id()
    attempt = {"node_id": node_id, "host": socket.gethostname(), "pid": os.getpid(), "at": time.time()}
    try:
        out = Path(task["out_dir"])
        out.mkdir(parents=True, exist_ok=True)
        with open(out / ATTEMPTS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(attempt) + "\n")
    except OSError:
        pass  # the run itself reports a folder it cannot use
    return {**execute_run(task), "node_id": node_id}
