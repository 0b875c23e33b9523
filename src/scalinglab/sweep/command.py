"""Any trainer from a sweep: run a user's command per run and read its learning curve from what it writes.

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

Or no contract at all: `metrics = { stdout = 'REGEX' }`, `{ tensorboard = "{run_dir}/tb" }`, ... reads the curve
from the trainer's own output through the importers (`sweep/readers.py`). Such a run is finished when the command
exits 0 and its output holds at least one evaluation (a `finished.json` in the run folder then says so, so a
rerun collects it without running it again). It is restarted from scratch when interrupted: the earlier attempt's
files are moved to `RUN_DIR.attempt-K` first, so its points are replaced, not mixed in; unless the plan has
`resume = {...}` and the run folder holds a checkpoint, when the command is started again with `{resume}` = yes.
A plan can give `resume` to a contract trainer too; without it, a contract trainer resumes itself as above.
Tokens not logged are step × tokens per step (batch_size · n_ctx · grad_accum, or the plan's tokens_per_step).

Live: while the command runs, its curve is read every LIVE_POLL_S seconds (complete lines and events only) into
`curve.live.json`, which the sweep driver copies into the store; a tracker (`--tracker`) gets each new point.

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
from scalinglab.sweep.readers import STDOUT  # the trainer's stdout in the run folder

METRICS = "metrics.jsonl"
CONFIG = "config.json"
STDERR = "stderr.log"
EXTRA_KEYS = ("run_dir", "run_id", "metrics", "threads")
FINISHED = "finished.json"
LIVE = "curve.live.json"
LIVE_POLL_S = 2.0
OUTPUT_TAIL_LINES = 5
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


def check_template(template: str, config: Any, extra: tuple[str, ...] = ()) -> None:
    """Every {key} of `template` must be a key the run has (`extra`: the plan keys it set, e.g. resume);
    UserError naming the first one that is not."""
    cfg = config.model_dump(mode="json") if hasattr(config, "model_dump") else dict(config)
    have = set(template_values(cfg)) | set(EXTRA_KEYS) | set(extra)
    for _, keys in _fields(template):
        for k in keys:
            if k not in have:
                known = ", ".join(sorted(have))
                raise UserError(f"template key {{{k}}} is not set for this run (keys: {known})")


def render(template: str, values: dict[str, Any]) -> list[str]:
    """The argv of one run: the template's words with their {keys} filled in; a word that is just `{resume}`
    becomes the words of its value (none when it is empty)."""
    argv: list[str] = []
    for w, keys in _fields(template):
        if w == "{resume}":
            argv += shlex.split(str(values["resume"]))
        else:
            argv.append(w.format(**values) if keys else w)
    return argv


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


def tokens_per_step(task: dict[str, Any]) -> int:
    """Tokens one optimiser step trains on: the plan's tokens_per_step, else batch_size · n_ctx · grad_accum."""
    cfg = task["config"]
    return int(task.get("tokens_per_step") or cfg["batch_size"] * cfg["n_ctx"] * int(task.get("grad_accum") or 1))


def run_values(task: dict[str, Any], out: Path) -> dict[str, Any]:
    """What the template and the reader paths may use for this run (`{resume}` is set at launch)."""
    cfg = task["config"]
    values = {**template_values(cfg), "run_dir": str(out), "run_id": task["run_id"], "metrics": str(out / METRICS),
              "threads": str(cfg.get("threads") or 1)}
    for k in ("grad_accum", "tokens_per_step"):
        if task.get(k):
            values[k] = task[k]
    return values


class _Live:
    """Reads the curve while the command runs: new points go to `curve.live.json` and the tracker hooks."""

    def __init__(self, task: dict[str, Any], out: Path, hooks: list | None):
        self.task, self.out, self.hooks, self.seen = task, out, hooks or [], {}

    def poll(self) -> None:
        try:
            points = current_points(self.task, self.out)
        except Exception:  # noqa: BLE001 - a source mid-write; the final read after exit reports real errors
            return
        new = [p for p in points if self.seen.get(p["step"]) != p.get("val_loss")]
        if not new:
            return
        from scalinglab.io import atomic_write_json, json_safe

        atomic_write_json(self.out / LIVE, json_safe({"points": points}), indent=None)
        for p in new:
            self.seen[p["step"]] = p.get("val_loss")
            for hook in self.hooks:
                hook({k: v for k, v in p.items() if k not in ("pf_days", "eval_losses") and v is not None})


def _launch(task: dict[str, Any], out: Path, values: dict[str, Any], live: _Live) -> tuple[int, str, float]:
    """Run the command once (to its end), reading its curve as it goes; returns (exit status, stderr tail, wall s)."""
    threads = values["threads"]
    argv = render(task["command"], values)
    metrics = out / METRICS
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "SCALINGLAB_METRICS": str(metrics), "SCALINGLAB_RUN_DIR": str(out),
           "SCALINGLAB_RUN_ID": task["run_id"], "SCALINGLAB_CONFIG": str(out / CONFIG),
           "SCALINGLAB_THREADS": threads, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    t0 = time.perf_counter()
    with (out / STDERR).open("ab") as err, (out / STDOUT).open("ab") as so:
        err.write(f"--- scalinglab: {shlex.join(argv)}\n".encode())
        err.flush()
        start = err.tell()
        try:
            proc = subprocess.Popen(argv, cwd=task.get("cwd") or None, env=env, stdout=so, stderr=err,
                                    stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent if sys.platform == "linux"
                                    else None)
        except OSError as e:
            return 127, f"cannot start {argv[0]!r}: {e.strerror or e}", time.perf_counter() - t0
        while True:
            try:
                rc = proc.wait(timeout=LIVE_POLL_S)
                break
            except subprocess.TimeoutExpired:
                live.poll()
    tail = (out / STDERR).read_bytes()[start:].decode("utf-8", errors="replace")
    return rc, " ".join(tail.split())[-STDERR_TAIL:], time.perf_counter() - t0


def _start_attempt(task: dict[str, Any], out: Path, spec, resume) -> str:
    """Prepare the run folder for one more attempt; returns what `{resume}` expands to.

    A contract trainer without `resume` resumes itself in place. Otherwise, without a checkpoint to resume from,
    the run starts from scratch: an earlier attempt's files are moved to RUN_DIR.attempt-K (nothing is deleted)."""
    if resume is not None and resume.has_checkpoint(out):
        return resume.yes
    if spec.reader != "contract" or resume is not None:
        keep = {CONFIG, "ray_attempts.jsonl",  # the sweep's own (sweep/cluster.py), and the tracker's open folder
                "tensorboard" if task.get("tracker") == "tensorboard" else CONFIG}
        left = [p for p in out.iterdir() if p.name not in keep]
        if left:
            k = 1
            while out.with_name(f"{out.name}.attempt-{k}").exists():
                k += 1
            aside = out.with_name(f"{out.name}.attempt-{k}")
            aside.mkdir()
            for p in left:
                p.rename(aside / p.name)
    return resume.no if resume is not None else ""


def execute_command(task: dict[str, Any], hooks: list | None = None) -> dict[str, Any]:
    """Run (or resume, or collect the finished result of) one command run; never raises.

    `task` = {run_id, config (TrainConfig dict with threads), out_dir, command, cwd[, metrics, resume, grad_accum,
    tokens_per_step]}; `hooks` get each evaluation as it is read (a tracker)."""
    from scalinglab.io import atomic_write_json
    from scalinglab.sweep.readers import parse_metrics, parse_resume

    out = Path(task["out_dir"])
    wall = 0.0
    try:
        spec = parse_metrics(task.get("metrics"))
        resume = parse_resume(task["resume"]) if task.get("resume") else None
        out.mkdir(parents=True, exist_ok=True)
        if not _finished(out, spec):
            values = {**run_values(task, out), "resume": _start_attempt(task, out, spec, resume)}
            atomic_write_json(out / CONFIG, {**task["config"], "command": task["command"]})
            live = _Live(task, out, hooks)
            rc, tail, wall = _launch(task, out, values, live)
            if rc != 0:
                return _failed(task, f"command exited with status {rc}" + (f": {tail}" if tail else ""))
            live.poll()
        if spec.reader == "contract":
            return _contract_result(task, out, wall)
        result = reader_result(task, out, wall)
        atomic_write_json(out / FINISHED, {"exit_status": 0, "wall_s": result["wall_s"]})
        return result
    except MetricsError as e:
        return _failed(task, f"metrics: {e}")
    except (OSError, UserError, ValueError, KeyError) as e:
        return _failed(task, f"{type(e).__name__}: {' '.join(str(e).split())}"[:500])


def _finished(out: Path, spec) -> bool:
    """Whether the run folder holds a finished run (collected, never run again)."""
    if spec.reader == "contract":
        return any(r.get("final") for r in read_metrics(out / METRICS))
    return (out / FINISHED).is_file()


def _contract_result(task: dict[str, Any], out: Path, wall: float) -> dict[str, Any]:
    metrics = out / METRICS
    records = read_metrics(metrics)
    if not records:
        return _failed(task, f"command exited 0 but wrote no metrics to $SCALINGLAB_METRICS ({metrics})")
    if not any(r.get("final") for r in records):
        return _failed(task, 'command exited 0 without a final record ({"final": true, ...}) in '
                             f"{metrics.name}")
    return command_result(task, records, wall)


def _failed(task: dict[str, Any], reason: str) -> dict[str, Any]:
    return {"run_id": task["run_id"], "status": "failed", "reason": reason[:1000], "config": task["config"]}


def _complete_records(path: Path) -> list[dict]:
    """The JSON records of a metrics file's complete lines, read without touching it (live reads)."""
    if not path.is_file():
        return []
    data = path.read_bytes()
    out = []
    for line in data[:data.rfind(b"\n") + 1].splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def current_points(task: dict[str, Any], out: Path) -> list[dict]:
    """The curve as far as the run has written it (live; no final record needed)."""
    from scalinglab.sweep.readers import parse_metrics

    spec = parse_metrics(task.get("metrics"))
    if spec.reader == "contract":
        records = [r for r in _complete_records(out / METRICS) if not r.get("final")]
        n = _n_params(task["config"], records, {})
        return _with_flops(curve_points(records, tokens_per_step(task)), n)
    run = _read_run(task, out, spec)
    if run is None:
        return []
    from scalinglab.importers.schema import to_result

    try:
        return to_result(run)["curve"]
    except UserError:  # no loss yet
        return []


def _read_run(task: dict[str, Any], out: Path, spec):
    """The reader's ImportedRun for this run, its config replaced by the plan's (shape, tokens per step)."""
    from scalinglab.sweep.readers import read_run

    run = read_run(spec, out, task["run_id"], run_values(task, out))
    if run is None:
        return None
    cfg = task["config"]
    run.config = {k: cfg[k] for k in ("arch", "n_layer", "d_model", "d_ff", "d_attn", "n_heads", "n_ctx")
                  if cfg.get(k) is not None}
    run.config["batch_tokens"] = tokens_per_step(task)
    run.status, run.reason = "done", None
    return run


def _output_tail(out: Path) -> str:
    lines = [ln for ln in (out / STDOUT).read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()] \
        if (out / STDOUT).is_file() else []
    return " | ".join(lines[-OUTPUT_TAIL_LINES:]) or "(no output)"


def reader_result(task: dict[str, Any], out: Path, wall_s: float) -> dict[str, Any]:
    """The result dict of a run whose curve comes from a reader (`metrics = {...}`): the importer's record for the
    curve (N, tokens and FLOPs resolved as an import resolves them) with the run's own config."""
    from scalinglab.importers.schema import to_result
    from scalinglab.sweep.readers import parse_metrics

    spec = parse_metrics(task.get("metrics"))
    run = _read_run(task, out, spec)
    if spec.reader == "stdout" and (run is None or not _has_loss(run)):
        raise MetricsError(f"no metrics matched {' or '.join(spec.patterns)} in stdout; its last lines: "
                           f"{_output_tail(out)}")
    if run is None or not _has_loss(run):
        from scalinglab.sweep.readers import source_path

        where = source_path(spec, out, run_values(task, out))
        raise MetricsError(f"command exited 0 but its {spec.reader} output {where} holds no evaluation (step, loss)"
                           + ("; map the loss with metrics.map = { loss = NAME }" if run is not None else ""))
    rec = to_result(run)
    curve = rec["curve"]
    finite = [p for p in curve if p["val_loss"] is not None and math.isfinite(p["val_loss"])]
    best = min(finite, key=lambda p: p["val_loss"]) if finite else None
    loss = curve[-1]["val_loss"]
    done = loss is not None and math.isfinite(loss)
    return {
        **{k: v for k, v in rec.items() if k not in ("config", "import")},
        "run_id": task["run_id"], "status": "done" if done else "diverged",
        "reason": None if done else "the final loss is not finite", "trainer": "command",
        "command": task["command"], "metrics_reader": {**rec["import"], "reader": spec.reader},
        "flops_convention": rec["import"]["flop_convention"], "best_val_loss": best["val_loss"] if best else None,
        "best_step": best["step"] if best else None, "wall_s": rec.get("wall_s") or wall_s,
        "threads": task["config"].get("threads"), "config": task["config"],
    }


def _has_loss(run) -> bool:
    import pandas as pd

    df = run.curve
    return "loss" in df.columns and "step" in df.columns and bool(pd.to_numeric(df["loss"], errors="coerce").notna().any())


def _n_params(cfg: dict[str, Any], records: list[dict], final: dict) -> float:
    """N: the final record's, else one an evaluation record gave, else counted from the config's shape."""
    from scalinglab.config import TrainConfig
    from scalinglab.model.counting import count_model

    vocab = final.get("vocab_size")
    counted = count_model(TrainConfig.model_validate(cfg).model(int(vocab) if isinstance(vocab, int) and vocab > 1
                                                                 else 2))
    return _number(final, "n_params", "final record") or next(
        (p for p in (_number(r, "n_params", "metrics record") for r in records) if p), None) or counted.n_params


def _with_flops(curve: list[dict], n: float) -> list[dict]:
    """Points with FLOPs (6·N·tokens where the command reported none) and PF-days."""
    from scalinglab.model.counting import PF_DAY

    for p in curve:
        if p["flops"] is None:
            p["flops"] = 6.0 * n * p["tokens"]
        p["pf_days"] = p["flops"] / PF_DAY
    return curve


def command_result(task: dict[str, Any], records: list[dict], wall_s: float) -> dict[str, Any]:
    """The result dict (as `run_training` returns it) of a command run from its metrics records."""
    from scalinglab.config import TrainConfig
    from scalinglab.model.counting import PF_DAY, count_model

    cfg = task["config"]
    tc = TrainConfig.model_validate(cfg)
    final = [r for r in records if r.get("final")][-1]
    curve = curve_points(records, tokens_per_step(task))
    if not curve:
        raise MetricsError("the metrics hold a final record but no evaluation (step, loss)")
    vocab = final.get("vocab_size")
    counted = count_model(tc.model(int(vocab) if isinstance(vocab, int) and vocab > 1 else 2))
    n = _n_params(cfg, records, final)
    n_emb = _number(final, "n_params_with_embeddings", "final record") or (counted.n_params_with_embeddings
                                                                           if vocab else None)
    convention = "reported" if all(p["flops"] is not None for p in curve) else "6N"
    _with_flops(curve, n)
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
