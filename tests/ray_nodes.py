"""A real Ray cluster of separate nodes on this machine, for tests: `ray start --block` per node.

Every node gets its own --temp-dir and its own free ports, and the cluster its own auth token (RAY_AUTH_MODE=
token, RAY_AUTH_TOKEN), so it shares nothing with other Ray instances on the machine (~/.ray/auth_token is
neither read nor written). The ports are picked at random below the kernel's ephemeral range (free when
picked): there no outgoing connection or bind(0) of another process can take one before the node binds it,
only another suite's cluster picking the same port at the same moment. Processes are stopped by pid only: each `ray start --block` process (SIGTERM makes
it stop the node's processes), then any process still holding the node's temp dir in its command line.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

RAY_START = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", "--disable-usage-stats"]
OBJECT_STORE_BYTES = 80 * 2**20  # Ray's minimum is 75 MiB


def free_ports(n: int) -> list[int]:
    """n ports free now, from the kernel's ephemeral range (for an address nothing listens at)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("", port))
        except OSError:
            return False
    return True


_TAKEN: set[int] = set()  # ports this suite has handed out already (its nodes may not have bound them yet)


def node_ports(*spans: int) -> list[int]:
    """A port for a node to listen on per span, each the first of `span` free consecutive ports, picked at
    random in [20000, start of the ephemeral range) (Ray's default worker ports, 10002-19999, are below)."""
    top, out = _ephemeral_start(), []
    for span in spans:
        while True:
            block = range(first := random.randrange(20000, top - span), first + span)
            if not _TAKEN & set(block) and all(map(_is_free, block)):
                _TAKEN.update(block)
                out.append(first)
                break
    return out


def _pids_with(marker: str) -> list[int]:
    """Processes whose command line contains `marker` (the node's unique temp dir)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if marker in (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    out.append(int(d.name))
            except OSError:
                continue
    return out


class Node:
    def __init__(self, name: str, root: Path, proc: subprocess.Popen):
        self.name, self.temp_dir, self.proc = name, root / name, proc

    @property
    def node_id(self) -> str | None:
        """This node's Ray node id (from the port files Ray writes in the node's session folder)."""
        files = sorted(self.temp_dir.glob("session_*/runtime_env_agent_port_*"))
        return files[-1].name.rsplit("_", 1)[-1] if files else None

    def raylet_pid(self) -> int | None:
        for pid in _pids_with(str(self.temp_dir)):
            try:
                if Path(f"/proc/{pid}/exe").resolve().name == "raylet":
                    return pid
            except OSError:
                continue
        return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for pid in _pids_with(str(self.temp_dir)):  # anything the node left behind
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class LocalCluster:
    """Head node plus worker nodes, each `ray start --block --num-cpus 1` in its own temp dir."""

    def __init__(self, root: Path):
        self.root = root
        self.port = node_ports(1)[0]
        self.address = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
                    "RAY_AUTH_TOKEN": secrets.token_hex(16)}
        self.nodes: list[Node] = []

    def start_node(self, name: str, head: bool = False, prefix: list[str] | None = None, num_cpus: int = 1,
                   num_gpus: int = 0, wait: bool = True) -> Node:
        """Start one node; with wait=False return at once (`wait_started` later): a worker started beside its
        head joins when the head's GCS answers, so the two start-ups overlap."""
        p = node_ports(*[1] * 8, 31)  # the last: the first of the node's 31 worker ports
        args = [*RAY_START, "--num-cpus", str(num_cpus), "--num-gpus", str(num_gpus),
                "--object-store-memory", str(OBJECT_STORE_BYTES),
                "--temp-dir", str(self.root / name), "--node-manager-port", str(p[0]),
                "--object-manager-port", str(p[1]), "--dashboard-agent-listen-port", str(p[2]),
                "--dashboard-agent-grpc-port", str(p[3]), "--runtime-env-agent-port", str(p[4]),
                "--metrics-export-port", str(p[5]), "--min-worker-port", str(p[8]), "--max-worker-port", str(p[8] + 30)]
        if head:
            args += ["--head", "--port", str(self.port), "--include-dashboard", "false", "--dashboard-port", str(p[7]),
                     "--ray-client-server-port", str(p[6])]
        else:
            args += ["--address", self.address]
        log = open(self.root / f"{name}.log", "w")  # noqa: SIM115 - the node writes it while it runs
        proc = subprocess.Popen([*(prefix or []), *args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        node = Node(name, self.root, proc)
        self.nodes.append(node)
        if wait:
            self.wait_started(node)
        return node

    @contextmanager
    def extra_node(self, name: str, **kwargs):
        """A node that joins for one test and is stopped (and forgotten) after it."""
        node = self.start_node(name, **kwargs)
        try:
            yield node
        finally:
            node.stop()
            self.nodes.remove(node)

    def wait_started(self, node: Node, timeout: float = 180) -> None:
        log = self.root / f"{node.name}.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "Ray runtime started" in log.read_text(errors="replace") and node.node_id:
                return
            if node.proc.poll() is not None:
                raise RuntimeError(f"ray node {node.name} exited:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        raise RuntimeError(f"ray node {node.name} did not start in {timeout} s:\n{log.read_text(errors='replace')[-3000:]}")

    def stop(self) -> None:
        for node in reversed(self.nodes):  # workers first, the head (GCS) last
            node.stop()
