"""Where a command run's learning curve comes from (`metrics` in a plan), and how it resumes (`resume`).

    metrics = "contract"                                   the default: JSON lines in $SCALINGLAB_METRICS (command.py)
    metrics = { stdout = 'step (?P<step>\\d+): .* val loss (?P<loss>[\\d.]+)' }        regex(es) on the command's stdout
    metrics = { log = "{run_dir}/train.log", pattern = '...' }                      regex(es) on a log file
    metrics = { tensorboard = "{run_dir}/tb" }       TensorBoard event files
    metrics = { hf_trainer = "{run_dir}" }           the HF Trainer's trainer_state.json (latest checkpoint's while it runs)
    metrics = { wandb = "{run_dir}/wandb" }          W&B offline run files
    metrics = { mlflow = "{run_dir}/mlruns" }        an MLflow store (folder, SQLite file or URI)
    metrics = { csv = "{run_dir}/log.csv" }          a CSV (or `jsonl = ...`) long table
    optional with any reader: map = { loss = "eval/loss", tokens = "train/tokens" }   canonical key -> the source's name
                              run = "NAME"           which run of a source holding several (default: the one whose
                                                     name contains the run id, else the only one)

Every reader is the importer of that format (`importers.read_source`), so a sweep and `scalinglab import` of the
same files see the same points. A path is a template like the command ({run_dir}, {run_id}, config keys); a relative
one is relative to the run folder. A path outside the run folder must exist when the plan is loaded.

    resume = { checkpoint = "ckpt.pt", yes = "--init_from=resume", no = "" }

`{resume}` in the command becomes `yes` when a file matching `checkpoint` (a glob in the run folder) exists, else
`no`; a `{resume}` word that expands to nothing is dropped, one with spaces becomes several words.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from scalinglab.errors import UserError

FILE_READERS = {"log": "log", "tensorboard": "tensorboard", "hf_trainer": "hf-trainer", "wandb": "wandb",
                "mlflow": "mlflow", "csv": "csv", "jsonl": "jsonl"}  # reader key -> importer format
READERS = ("contract", "stdout", *FILE_READERS)
OPTIONS = ("pattern", "map", "run")
STDOUT = "stdout.log"
_OUTSIDE = "\x00run_dir\x00"  # stands for the run folder while checking paths at plan load


class MetricsSpec(BaseModel):
    """The `metrics` value of a plan table: one reader and its options (validated once, at plan load)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stdout: str | list[str] | None = None
    log: str | None = None
    pattern: str | list[str] | None = None
    tensorboard: str | None = None
    hf_trainer: str | None = None
    wandb: str | None = None
    mlflow: str | None = None
    csv: str | None = None
    jsonl: str | None = None
    map: dict[str, str] = Field(default_factory=dict)
    run: str | None = None

    @property
    def reader(self) -> str:
        return next((k for k in READERS[1:] if getattr(self, k) is not None), "contract")

    @property
    def patterns(self) -> list[str] | None:
        p = self.stdout if self.reader == "stdout" else self.pattern
        return None if p is None else ([p] if isinstance(p, str) else list(p))

    @property
    def format(self) -> str:
        return FILE_READERS.get(self.reader, "log")


class ResumeSpec(BaseModel):
    """The `resume` value: what `{resume}` expands to with and without a checkpoint in the run folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    checkpoint: str = Field(min_length=1, description="glob, relative to the run folder, of the trainer's checkpoint")
    yes: str = Field(min_length=1, description="{resume} when a checkpoint exists")
    no: str = ""

    def has_checkpoint(self, run_dir: Path) -> bool:
        return next(run_dir.glob(self.checkpoint), None) is not None

    def value(self, run_dir: Path) -> str:
        return self.yes if self.has_checkpoint(run_dir) else self.no


def _first_error(e: pydantic.ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err["loc"])
    return f"{loc}: {err['msg']}" if loc else err["msg"]


def parse_metrics(value: Any) -> MetricsSpec:
    """`metrics` as written in a plan -> a MetricsSpec; a UserError naming the problem."""
    from scalinglab.importers.schema import CONFIG_KEYS, CURVE_KEYS

    if value == "contract" or value is None:
        return MetricsSpec()
    if isinstance(value, MetricsSpec):
        return value
    if not isinstance(value, dict):
        raise UserError(f'expected "contract" or a table such as {{ stdout = \'REGEX\' }} (got {value!r})')
    unknown = [k for k in value if k not in READERS[1:] and k not in OPTIONS]
    if unknown:
        raise UserError(f"unknown reader {unknown[0]!r}; choose one of: {', '.join(READERS)}")
    named = [k for k in READERS[1:] if k in value]
    if len(named) != 1:
        raise UserError(f"name exactly one reader ({', '.join(READERS[1:])}); got "
                        f"{', '.join(named) if named else 'none'}")
    try:
        spec = MetricsSpec.model_validate(value)
    except pydantic.ValidationError as e:
        raise UserError(_first_error(e)) from None
    if "pattern" in value and spec.reader != "log":
        raise UserError(f"pattern is for the log reader (the {spec.reader} reader does not use it)")
    if spec.reader == "log" and spec.pattern is None:
        raise UserError("the log reader needs pattern = 'REGEX' (named groups step and loss)")
    if spec.patterns is not None:
        from scalinglab.importers.logs import compile_patterns

        compile_patterns(spec.patterns)
    bad = [k for k in spec.map if k not in CURVE_KEYS and k not in CONFIG_KEYS]
    if bad:
        raise UserError(f"map: {bad[0]!r} is not a canonical key ({', '.join(CURVE_KEYS)})")
    if spec.reader in FILE_READERS and spec.reader != "log":
        from scalinglab.importers import need

        need(spec.format)
    return spec


def parse_resume(value: Any) -> ResumeSpec:
    if not isinstance(value, dict):
        raise UserError(f'expected a table such as {{ checkpoint = "ckpt.pt", yes = "--resume", no = "" }} '
                        f"(got {value!r})")
    try:
        return ResumeSpec.model_validate(value)
    except pydantic.ValidationError as e:
        raise UserError(_first_error(e)) from None


def source_path(spec: MetricsSpec, run_dir: Path, values: dict[str, Any]) -> str:
    """The reader's source for one run: its path template filled in, relative to the run folder (URIs as given)."""
    if spec.reader == "stdout":
        return str(run_dir / STDOUT)
    raw = getattr(spec, spec.reader)
    try:
        text = raw.format(**{**values, "run_dir": str(run_dir)})
    except KeyError as e:
        raise UserError(f"metrics: {spec.reader} path {raw!r}: key {{{e.args[0]}}} is not set for this run") from None
    except (ValueError, IndexError) as e:
        raise UserError(f"metrics: {spec.reader} path {raw!r}: {e}") from None
    if "://" in text:
        return text
    return str(run_dir / text)  # an absolute path stays as it is


def check_source(spec: MetricsSpec, values: dict[str, Any]) -> None:
    """At plan load: the path template fills in, and a path outside the run folder exists."""
    if spec.reader in ("contract", "stdout"):
        return
    text = source_path(spec, Path(_OUTSIDE), values)
    if text.startswith(_OUTSIDE):
        return
    path = re.sub(r"^sqlite:/+", "/", text) if text.startswith("sqlite:") else text
    if "://" not in path and not Path(path).exists():
        raise UserError(f"metrics: {spec.reader} path {path} is outside the run folder and does not exist")


def read_run(spec: MetricsSpec, run_dir: Path, run_id: str, values: dict[str, Any]):
    """The ImportedRun of this run from its reader's source, or None while the source does not exist yet."""
    from scalinglab.importers import read_source

    source = source_path(spec, run_dir, values)
    if "://" not in source and not Path(source).exists():
        return None
    runs = read_source(source, spec.format, dict(spec.map), spec.patterns)
    return pick_run(runs, spec.run or run_id, source, explicit=spec.run is not None)


def pick_run(runs: list, name: str, source: str, explicit: bool = False):
    """The run named `name` (its key or name contains it), else the only run; None when there is none yet."""
    if not runs:
        return None
    named = [r for r in runs if name in r.key or name in str(r.source.get("name") or "")]
    if len(named) == 1:
        return named[0]
    if len(runs) == 1 and not explicit:
        return runs[0]
    keys = ", ".join(sorted(r.key for r in runs)[:5])
    raise UserError(f"{source} holds {len(runs)} runs ({keys}) and {'none' if not named else 'several'} named "
                    f"{name!r}; give metrics.run = NAME or name the run after {{run_id}}")
