"""Any trainer from a sweep: run a user's command per run and read its learning curve through a metrics contract.

A plan with `command = "python train.py --n_layer {n_layer} --d_model {d_model} --out {run_dir}"` (in [train],
a [[grid]] or a [[run]]) trains each run with that program instead of scalinglab's own trainer, through the
same local and Ray executors. The template is split like a shell line (`shlex`), then each word's {keys} are
filled from the run's config (any TrainConfig key with a value: n_layer, d_model, n_ctx, batch_size, steps,
lr, seed, corpus, ...) and run_dir, run_id, metrics, threads. It runs in the plan file's folder, without a shell.

The contract (what the command must do):
  * append one JSON object per line to the file `$SCALINGLAB_METRICS` for each evaluation:
      {"step": 100, "tokens": 204800, "loss": 4.21}   step and loss are required (loss = held-out loss in
      nats/token; "val_loss" is accepted too); tokens defaults to step·batch_size·n_ctx; optional: flops,
      train_loss, lr, wall_s, noise_scale, eval_losses ({name: loss}), n_params
  * when it has finished, append a final record: {"final": true, ...} with optionally loss (else the last
    evaluation's), n_params (non-embedding; else counted from the config's Transformer shape),
    n_params_with_embeddings, flops, status ("done" or "diverged") and reason;
  * exit 0. A non-zero exit marks the run failed with the exit status and the tail of its stderr.
  * resume itself: a run that was interrupted is started again with the same arguments in the same run_dir
    (keep checkpoints there); records it writes again for a step replace the earlier ones.
Also set for the command: SCALINGLAB_RUN_DIR, SCALINGLAB_RUN_ID, SCALINGLAB_CONFIG (the run's config.json),
SCALINGLAB_THREADS and OMP_NUM_THREADS/MKL_NUM_THREADS (the cores the sweep gives the run).

A run folder whose metrics already hold a final record is finished: it is recorded, never run again, so a
sweep killed between a run's end and its store write loses nothing. FLOPs a command does not report are
6·N·tokens (the paper's C ≈ 6NBS), and the result says which convention was used.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import string
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from scalinglab.errors import UserError

METRICS = "metrics.jsonl"
CONFIG = "config.json"
STDERR = "stderr.log"
EXTRA_KEYS = ("run_dir", "run_id", "metrics", "threads")
STDERR_TAIL = 400  # characters of stderr kept in a failed run's reason
OPTIONAL_POINT_KEYS = ("train_loss", "lr", "wall_s", "noise_scale")


class MetricsError(Exception):
    """The metrics file breaks the contract (the run is marked failed with this message)."""


# ----------------------------------------------------------------------------------------------------
# the template


def _fields(template: str) -> list[tuple[str, list[str]]]:
    """(word, its {keys}) for each shell word of the template; UserError on quoting or brace errors."""
    try:
        words = shlex.split(template)
    except ValueError as e:
        raise UserError(f"cannot split the command like a shell line: {e}") from None
    if not words:
        raise UserError("the command is empty")
    out = []
    for w in words:
        try:
            keys = [name for _, name, _, _ in string.Formatter().parse(w) if name is not None]
        except ValueError as e:
            raise UserError(f"bad {{...}} in {w!r}: {e} (write {{{{ and }}}} for literal braces)") from None
        if any(k == "" or k.isdigit() for k in keys):
            raise UserError(f"{w!r}: template keys must be names, e.g. {{n_layer}}")
        out.append((w, [k.split(".")[0].split("[")[0] for k in keys]))
    return out


def template_values(config: dict[str, Any]) -> dict[str, Any]:
    """What a template may use: the config's keys that have a value (the extras are added per run)."""
    return {k: v for k, v in config.items() if v is not None and v != ""}


def check_template(template: str, config: Any) -> None:
    """Every {key} of `template` must be a key the run has; UserError naming the first one that is not."""
    cfg = config.model_dump(mode="json") if hasattr(config, "model_dump") else dict(config)
    have = set(template_values(cfg)) | set(EXTRA_KEYS)
    for _, keys in _fields(template):
        for k in keys:
            if k not in have:
                known = ", ".join(sorted(have))
                raise UserError(f"template key {{{k}}} is not set for this run (keys: {known})")


def render(template: str, values: dict[str, Any]) -> list[str]:
    """The argv of one run: the template's words with their {keys} filled in."""
    return [w.format(**values) if keys else w for w, keys in _fields(template)]


# ----------------------------------------------------------------------------------------------------
# the metrics file


def read_metrics(path: Path) -> list[dict]:
    """The records of a metrics file (none when it does not exist); a line that is not a JSON object raises
    MetricsError naming its line. A last line cut off by a kill is dropped first (`_mend_last_line`)."""
    from scalinglab.io import jsonl_objects

    if not path.is_file():
        return []
    _mend_last_line(path)
    try:
        return [rec for _, rec in jsonl_objects(path)]
    except UserError as e:
        raise MetricsError(str(e).replace(f"{path}: ", f"{path.name} ")) from None


def _mend_last_line(path: Path) -> None:
    """A last line without its newline: a record cut off mid-write is removed (the rerun writes it again), a
    complete one gets its newline (so the next record starts on its own line)."""
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1
    try:
        json.loads(data[cut:])
        complete = True
    except ValueError:
        complete = False
    with path.open("r+b") as f:
        if complete:
            f.seek(0, os.SEEK_END)
            f.write(b"\n")
        else:
            f.truncate(cut)


def _number(rec: dict, key: str, where: str, required: bool = False) -> float | None:
    v = rec.get(key)
    if v is None:
        if required:
            raise MetricsError(f"{where} has no {key!r}")
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise MetricsError(f"{where}: {key} must be a number (got {v!r})")
    return float(v)


def curve_points(records: list[dict], tokens_per_step: int) -> list[dict]:
    """Evaluation points by step (a record written again for a step replaces the earlier one)."""
    points: dict[int, dict] = {}
    for i, rec in enumerate(records, 1):
        if rec.get("final") and "step" not in rec:
            continue
        where = f"metrics record {i}"
        step = _number(rec, "step", where, required=True)
        loss = _number(rec, "loss", where) if "loss" in rec else _number(rec, "val_loss", where)
        if loss is None:
            raise MetricsError(f"{where} has no 'loss'")
        if step < 0 or step != int(step):
            raise MetricsError(f"{where}: step must be a whole number ≥ 0 (got {rec['step']!r})")
        tokens = _number(rec, "tokens", where)
        p = {"step": int(step), "tokens": int(tokens if tokens is not None else step * tokens_per_step),
             "val_loss": loss if math.isfinite(loss) else None, "flops": _number(rec, "flops", where)}
        for k in OPTIONAL_POINT_KEYS:
            p[k] = _number(rec, k, where)
        if isinstance(rec.get("eval_losses"), dict):
            p["eval_losses"] = rec["eval_losses"]
        points[p["step"]] = p
    return [points[s] for s in sorted(points)]


# ----------------------------------------------------------------------------------------------------
# one run


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the command gets SIGKILL when its worker dies, so a killed sweep leaves no orphan writing the run."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _launch(task: dict[str, Any], out: Path, metrics: Path) -> tuple[int, str, float]:
    """Run the command once (to its end); returns (exit status, stderr tail, wall seconds)."""
    cfg = task["config"]
    threads = str(cfg.get("threads") or 1)
    values = {**template_values(cfg), "run_dir": str(out), "run_id": task["run_id"], "metrics": str(metrics),
              "threads": threads}
    argv = render(task["command"], values)
    env = {**os.environ, "SCALINGLAB_METRICS": str(metrics), "SCALINGLAB_RUN_DIR": str(out),
           "SCALINGLAB_RUN_ID": task["run_id"], "SCALINGLAB_CONFIG": str(out / CONFIG),
           "SCALINGLAB_THREADS": threads, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    t0 = time.perf_counter()
    with (out / STDERR).open("ab") as err, (out / "stdout.log").open("ab") as so:
        err.write(f"--- scalinglab: {shlex.join(argv)}\n".encode())
        err.flush()
        start = err.tell()
        try:
            rc = subprocess.run(argv, cwd=task.get("cwd") or None, env=env, stdout=so, stderr=err,
                                stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent if sys.platform == "linux"
                                else None).returncode
        except OSError as e:
            return 127, f"cannot start {argv[0]!r}: {e.strerror or e}", time.perf_counter() - t0
    tail = (out / STDERR).read_bytes()[start:].decode("utf-8", errors="replace")
    return rc, " ".join(tail.split())[-STDERR_TAIL:], time.perf_counter() - t0


def execute_command(task: dict[str, Any]) -> dict[str, Any]:
    """Run (or resume, or collect the finished result of) one command run; never raises.

    `task` = {run_id, config (TrainConfig dict with threads), out_dir, command, cwd}."""
    from scalinglab.io import atomic_write_json

    out = Path(task["out_dir"])
    metrics = out / METRICS
    wall = 0.0
    try:
        out.mkdir(parents=True, exist_ok=True)
        records = read_metrics(metrics)
        if not any(r.get("final") for r in records):
            atomic_write_json(out / CONFIG, {**task["config"], "command": task["command"]})
            rc, tail, wall = _launch(task, out, metrics)
            if rc != 0:
                return _failed(task, f"command exited with status {rc}" + (f": {tail}" if tail else ""))
            records = read_metrics(metrics)
            if not records:
                return _failed(task, f"command exited 0 but wrote no metrics to $SCALINGLAB_METRICS ({metrics})")
            if not any(r.get("final") for r in records):
                return _failed(task, 'command exited 0 without a final record ({"final": true, ...}) in '
                                     f"{metrics.name}")
        return command_result(task, records, wall)
    except MetricsError as e:
        return _failed(task, f"metrics: {e}")
    except (OSError, UserError, ValueError, KeyError) as e:
        return _failed(task, f"{type(e).__name__}: {' '.join(str(e).split())}"[:500])


def _failed(task: dict[str, Any], reason: str) -> dict[str, Any]:
    return {"run_id": task["run_id"], "status": "failed", "reason": reason[:1000], "config": task["config"]}


def command_result(task: dict[str, Any], records: list[dict], wall_s: float) -> dict[str, Any]:
    """The result dict (as `run_training` returns it) of a command run from its metrics records."""
    from scalinglab.config import TrainConfig
    from scalinglab.model.counting import PF_DAY, count_model

    cfg = task["config"]
    tc = TrainConfig.model_validate(cfg)
    final = [r for r in records if r.get("final")][-1]
    curve = curve_points(records, tc.tokens_per_step)
    if not curve:
        raise MetricsError("the metrics hold a final record but no evaluation (step, loss)")
    vocab = final.get("vocab_size")
    counted = count_model(tc.model(int(vocab) if isinstance(vocab, int) and vocab > 1 else 2))
    n = _number(final, "n_params", "final record") or next(
        (p for p in (_number(r, "n_params", "metrics record") for r in records) if p), None) or counted.n_params
    n_emb = _number(final, "n_params_with_embeddings", "final record") or (counted.n_params_with_embeddings
                                                                           if vocab else None)
    convention = "reported" if all(p["flops"] is not None for p in curve) else "6N"
    for p in curve:
        if p["flops"] is None:
            p["flops"] = 6.0 * n * p["tokens"]
        p["pf_days"] = p["flops"] / PF_DAY
    last = curve[-1]
    loss = _number(final, "loss", "final record") if "loss" in final else _number(final, "val_loss", "final record")
    loss = last["val_loss"] if loss is None else loss
    status = final.get("status", "done")
    if status not in ("done", "diverged"):
        raise MetricsError(f"final record: status must be 'done' or 'diverged' (got {status!r})")
    if status == "done" and (loss is None or not math.isfinite(loss)):
        status = "diverged"
    flops = _number(final, "flops", "final record") or last["flops"]
    finite = [p for p in curve if p["val_loss"] is not None]
    best = min(finite, key=lambda p: p["val_loss"]) if finite else None
    return {
        "run_id": task["run_id"], "status": status,
        "reason": final.get("reason") or (None if status == "done" else "the final loss is not finite"),
        "trainer": "command", "command": task["command"], "flops_convention": convention,
        "steps": int(_number(final, "steps", "final record") or last["step"]),
        "tokens": int(_number(final, "tokens", "final record") or last["tokens"]),
        "n_params": int(n), "n_params_with_embeddings": int(n_emb) if n_emb else None,
        "val_loss": loss if loss is not None and math.isfinite(loss) else None,
        "best_val_loss": best["val_loss"] if best else None, "best_step": best["step"] if best else None,
        "train_loss": last.get("train_loss"), "noise_scale": last.get("noise_scale"), "lr": last.get("lr"),
        "eval_losses": last.get("eval_losses") or {}, "flops": flops, "pf_days": flops / PF_DAY,
        "wall_s": _number(final, "wall_s", "final record") or wall_s, "threads": cfg.get("threads"),
        "config": cfg, "curve": curve,
    }
