"""Helpers shared by the test modules (import them from here; test modules never import each other).

- `run_cli`: the real `scalinglab` entry point in a subprocess, as a user runs it (one per command is enough to
  test the entry point; everything else goes through `run_main`).
- `run_main`: the same `main(argv)` in this process, with stdout, stderr and the exit status captured; bad-input
  cases use it so that checking one error line costs no interpreter start.
- `assert_clean_error`: exit 2, one stderr line naming the problem, no traceback (works on either result).
- `markov_tokens`: learnable synthetic token streams; `make_store`: a results store of synthetic runs.
- `start`: Popen a command as a terminal would, Ctrl-C (SIGINT) reaching it even when this suite ignores SIGINT.
- `freeze_at`, `Output`, `freeze`, `children`, `group`, `wait_until`: for tests that interrupt or kill a
  command at a known point.
  They wait for what the command itself writes when it reaches that point (a log line, a file), freeze it
  (SIGSTOP) so it cannot move on while the test looks, and fail with "precondition not reached: ..." when
  the point never comes; never a fixed sleep.
"""

from __future__ import annotations

import contextlib
import io
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def run_cli(*args: str, cwd: str | Path | None = None, env: dict | None = None, timeout: float = 600,
            check: bool | None = None) -> subprocess.CompletedProcess:
    """Run `python -m scalinglab ARGS` as a user would, capturing stdout/stderr as text. On a timeout the command and
    everything it started (torchrun and its ranks, Ray, workers: one process group) are killed, not left behind."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with subprocess.Popen([sys.executable, "-m", "scalinglab", *map(str, args)], cwd=cwd, env=full_env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True) as child:
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            raise
    proc = subprocess.CompletedProcess(child.args, child.returncode, out, err)
    if check and proc.returncode != 0:
        raise AssertionError(f"scalinglab {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}")
    return proc


@dataclass
class MainResult:
    """What `run_main` saw: the same three fields as a finished subprocess."""

    returncode: int
    stdout: str
    stderr: str


def run_main(*args: str, check: bool | None = None) -> MainResult:
    """Call `scalinglab.cli.main(ARGS)` in this process, capturing stdout, stderr and the exit status."""
    from scalinglab.cli import main

    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            code = e.code
    if not isinstance(code, int):  # SystemExit("message") prints the message and exits 1
        err.write(f"{code}\n" if code is not None else "")
        code = 0 if code is None else 1
    res = MainResult(code, out.getvalue(), err.getvalue())
    if check and res.returncode != 0:
        raise AssertionError(f"scalinglab {' '.join(map(str, args))} exited {res.returncode}:\n{res.stderr}")
    return res


def assert_clean_error(proc: subprocess.CompletedProcess | MainResult, *needles: str) -> None:
    """Exit 2, one line on stderr, no traceback, and the line names the problem."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n.lower() in lines[0].lower(), (n, lines[0])


def markov_tokens(n: int, vocab: int, seed: int, chain: int = 0) -> np.ndarray:
    """A walk (seeded by `seed`) on a sparse random Markov chain (chosen by `chain`).

    Walks on the same chain share their distribution, so a model that learns one generalises to another.
    """
    succ = np.random.default_rng([chain, 7]).integers(0, vocab, size=(vocab, 4))
    rng = np.random.default_rng(seed)
    out = np.empty(n, dtype=np.int64)
    t = 0
    choices = rng.integers(0, 4, size=n)
    for i in range(n):
        out[i] = t
        t = succ[t, choices[i]]
    return out


def small_corpus(out: Path, n_tokens: int, vocab: int = 128) -> Path:
    """A prepared corpus in `out` of one Markov walk: the first 5/6 train, the rest val (tests that train tiny runs)."""
    from scalinglab.data.corpus import write_corpus

    stream = markov_tokens(n_tokens, vocab, 7)
    cut = n_tokens * 5 // 6
    write_corpus(out, stream[:cut], stream[cut:], vocab_size=vocab, eot_token=vocab - 1, source="synthetic:markov",
                 documents={"train": 1, "val": 1})
    return out


# ----------------------------------------------------------------------------------------------------
# A results store of synthetic runs (report, reproduce and browser tests). The store is filled through
# `store.db.record_result` with result dicts shaped like the trainer's, whose learning curves follow
# L = L_inf(N) + (S_c/S_min)^0.6 with noise (test data only; the report never invents data).

N_CTX, VOCAB = 64, 512


def synthetic_result(rng, *, n_layer, d_model, batch=16, steps=400, data_tokens=None, schedule="cosine",
                     arch="transformer", early_stop=False) -> dict:
    """One run's result dict (as `run_training` returns it) with a synthetic learning curve."""
    n = 12 * n_layer * d_model**2 + 13 * n_layer * d_model
    if arch == "lstm":
        n = 8 * n_layer * d_model**2
    bt = batch * N_CTX
    l_inf = (1e7 / n) ** 0.3 + 2.0 + (0.3 if arch == "lstm" else 0.0)
    curve, losses = [], []
    for s in np.unique(np.geomspace(1, steps, 12).astype(int)):
        smin = s / (1 + 2000.0 / bt)
        loss = l_inf + (300 / smin) ** 0.6 + rng.normal(0, 0.005)
        if data_tokens:
            loss += 0.3 * max(0.0, s * bt / data_tokens - 1) ** 0.5
        losses.append(loss)
        flops = 6.0 * n * s * bt
        curve.append(dict(step=int(s), tokens=int(s * bt), examples=int(s * batch), flops=flops,
                          pf_days=flops / 8.64e19,
                          wall_s=s * 0.01, lr=1e-3 * (0.5 if schedule == "constant" else 1 - s / steps / 2),
                          train_loss=loss - 0.05 - (0.2 if data_tokens else 0.0), val_loss=loss,
                          noise_scale=2000.0 * (loss / 3) ** -4, eval_losses={"shifted": loss + 0.4}))
    pos = np.arange(1, N_CTX + 1)
    final = losses[-1]
    config = dict(corpus="/nonexistent/synthetic", arch=arch, n_layer=n_layer, d_model=d_model, n_ctx=N_CTX,
                  batch_size=batch, steps=steps, data_tokens=data_tokens, schedule=schedule, early_stop=early_stop)
    return dict(config=config, status="done", steps=steps, tokens=steps * bt, n_params=n,
                n_params_with_embeddings=n + (VOCAB + N_CTX) * d_model, flops=6.0 * n * steps * bt,
                pf_days=6.0 * n * steps * bt / 8.64e19, val_loss=final, best_val_loss=min(losses),
                train_loss=final - 0.05, noise_scale=2000.0, lr=1e-3, wall_s=steps * 0.01,
                eval_losses={"shifted": final + 0.4},
                val_loss_per_position=list(final + 0.8 * pos**-0.5 - 0.8 * np.mean(pos**-0.5)), curve=curve)


MAIN = [(1, 16), (1, 32), (2, 32), (2, 64), (4, 64), (4, 128)]


def make_store(path: Path, extras: bool = True) -> Path:
    """A store of the MAIN family plus (with `extras`) batch and D scans, schedules, LSTMs and a diverged run."""
    from scalinglab.store.db import record_result

    rng = np.random.default_rng(0)
    res = synthetic_result
    results = [res(rng, n_layer=nl, d_model=dm, steps=600) for nl, dm in MAIN]
    if extras:
        results += [res(rng, n_layer=2, d_model=32, batch=b, steps=1200) for b in (4, 8, 32, 64)]
        results += [res(rng, n_layer=nl, d_model=dm, data_tokens=dt, steps=600, early_stop=True)
                    for dt in (2e4, 1e5, 5e5) for nl, dm in ((2, 32), (4, 64))]
        results += [res(rng, n_layer=2, d_model=32, schedule=s, steps=600) for s in ("constant", "linear")]
        results += [res(rng, n_layer=1, d_model=32, arch="lstm"), res(rng, n_layer=2, d_model=64, arch="lstm")]
        # a shape scan at N ≈ 25k beside the (2, 32) run: aspect ratios 2, 16 and 45
        results += [res(rng, n_layer=nl, d_model=dm, steps=600) for nl, dm in ((8, 16), (1, 45))]
    for r in results:
        record_result(path, r, plan="synthetic")
    diverged = res(rng, n_layer=3, d_model=16)
    diverged.update(status="diverged", reason="loss became nan", val_loss=float("nan"), curve=[])
    record_result(path, diverged, plan="synthetic")
    return path


def start(cmd: list[str], **kwargs) -> subprocess.Popen:
    """`subprocess.Popen`, with SIGINT at its default action in the child, as in a command typed at a terminal.

    A suite started in the background by a non-interactive shell (`sh -c 'pytest ... &'`, a CI script) runs
    with SIGINT ignored, and an ignored signal stays ignored across exec: a Ctrl-C test's command would never
    see the signal (it ran to the end and exited 0). A handled signal is reset to the default by exec, so a
    handler is installed here while the child starts."""
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(cmd, **kwargs)
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def ignores_sigint(pid: int) -> bool:
    """Whether `pid` ignores SIGINT (/proc/PID/status SigIgn). Blocked is not asked: a blocked signal waits and is
    delivered once unblocked, and glibc blocks every signal for a moment each time a thread is created."""
    with open(f"/proc/{pid}/status") as f:
        ignored = next(int(line.split(":")[1], 16) for line in f if line.startswith("SigIgn:"))
    return bool(ignored & 1 << (signal.SIGINT - 1))


def wait_until(what: str, ready: Callable[[], object], timeout: float, alive: subprocess.Popen | None = None,
               every: float = 0.01):
    """`ready()`'s first truthy value, polled every `every` s; AssertionError("precondition not reached: WHAT")
    after `timeout` s, or as soon as the process `alive` has ended."""
    deadline = time.monotonic() + timeout
    while True:
        got = ready()
        if got:
            return got
        if alive is not None and alive.poll() is not None:
            raise AssertionError(f"precondition not reached: {what} (the process ended with {alive.returncode})")
        if time.monotonic() > deadline:
            raise AssertionError(f"precondition not reached: {what} within {timeout:.0f} s")
        time.sleep(every)


class Output:
    """A child's stdout or stderr pipe, read as it comes (bytes decoded at the end), without a thread."""

    def __init__(self, pipe):
        self.fd = pipe.fileno()
        os.set_blocking(self.fd, False)
        self.data = b""
        self.closed = False

    def _read(self, wait: float) -> None:
        if not self.closed and select.select([self.fd], [], [], wait)[0]:
            while True:
                try:
                    chunk = os.read(self.fd, 1 << 16)
                except BlockingIOError:
                    return
                if not chunk:
                    self.closed = True
                    return
                self.data += chunk

    @property
    def text(self) -> str:
        return self.data.decode(errors="replace")

    def wait_for(self, needle: str, timeout: float, proc: subprocess.Popen) -> None:
        """Return once `needle` has been written; 'precondition not reached' after `timeout` or at the end."""
        deadline = time.monotonic() + timeout
        while needle not in self.text:
            if self.closed or time.monotonic() > deadline:
                proc.poll()
                raise AssertionError(f"precondition not reached: {needle!r} never written (exit {proc.returncode}); "
                                     f"output so far:\n{self.text[-2000:]}")
            self._read(0.1)

    def drain(self) -> str:
        """Everything written so far; complete once the writer is frozen (`freeze`): nothing is in flight then."""
        self._read(0)
        return self.text

    def rest(self, timeout: float) -> str:
        """Everything, up to the end of the stream (the writer has exited)."""
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self._read(0.1)
        return self.text


def proc_state(pid: int) -> str | None:
    """The process's state letter from /proc (R, S, T stopped, Z ended, ...), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def freeze(pid: int, timeout: float = 60) -> bool:
    """SIGSTOP `pid` and wait until it is stopped: True, or False if it had ended (it can no longer be caught)."""
    try:
        os.kill(pid, signal.SIGSTOP)
    except ProcessLookupError:
        return False
    def stopped_or_ended() -> str | None:
        state = proc_state(pid)
        return "ended" if state in ("Z", None) else state if state in ("T", "t") else None

    return wait_until(f"process {pid} stopped", stopped_or_ended, timeout) != "ended"


def children(pid: int) -> list[int]:
    """Child processes started by `pid`'s main thread (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def group(pgid: int) -> list[int]:
    """The processes of process group `pgid` (a command started with `start_new_session=True`: its pid)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[2]) == pgid:
                    out.append(int(d.name))
            except (OSError, IndexError, ValueError):
                continue
    return out


def freeze_at(what: str, reached: Callable[[], object], pids: Callable[[], list[int]], proc: subprocess.Popen,
              holds: Callable[[], T | None], timeout: float = 300) -> T | None:
    """Freeze a command at a point it shows itself (a file it writes, a line it logs), known for sure.

    Waits for `reached()` (AssertionError "precondition not reached: WHAT" after `timeout` s or once `proc` has
    ended), freezes `pids()` (SIGSTOP, waited for), then asks `holds()` while nothing can move: its value when
    the point still holds (truthy: the processes stay frozen, for the test to signal or kill), else None once they are
    thawed (the command went past the point before the freeze took hold: the caller starts it again)."""
    wait_until(what, reached, timeout, alive=proc, every=0.002)
    frozen = [pid for pid in pids() if freeze(pid)]
    got = holds()
    if not got:
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        return None
    return got


# ----------------------------------------------------------------------------------------------------
# Headless Chromium (the report's and the docs site's browser tests)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def launch_chromium(playwright):
    """Debian's headless Chromium through playwright, with nothing that reaches the network on its own."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"])
