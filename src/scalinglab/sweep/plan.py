"""Sweep plans: a TOML file that describes a study once and expands into fully resolved TrainConfigs.

    name = "kaplan-n"
    corpus = "corpora/stdlib"        # relative to the plan file
    [train]                          # defaults for every run (any TrainConfig key)
    n_ctx = 128
    batch_size = 16
    steps = 2000
    [[grid]]                         # cartesian product of the list values; several [[grid]] tables add up
    n_layer = [2, 4]
    d_model = [64, 128, 256]
    [[run]]                          # single runs, explicit
    n_layer = 6
    d_model = 384

Study keys, usable in [train], [[grid]] (as lists) and [[run]], expanded before validation:
  n_params = 1e5          target non-embedding N; the shape (n_layer, d_model) is solved for it, see `solve_shape`
  aspect_ratio = 32       d_model / n_layer wanted with n_params (default 32)
  compute = 1e13          training FLOPs of the run (Table 1: 3·(2N + 2·n_layer·n_ctx·d_attn) per token);
                          sets `steps` = round(compute / (FLOPs per token · batch_size · n_ctx))
`data_tokens = [...]` (D-subsets) and `batch_size = [...]` (batch scans) are ordinary grid axes.
  cooldowns = [2e5, 0.5]  WSD cooldown branches of each run (`train/branches.py`): token counts (≥ 1) or fractions
                          of the run's tokens (< 1), each below the run's tokens; needs schedule = "wsd". A list,
                          never a grid axis. Each point adds a branch run (parent: the trunk; family "wsd-branches").
  lr = "sweep"            train each run at every LR of `lr_grid = [...]` (at least two; default: the paper's LR(N)
                          times 0.25, 0.5, 1, 2, 4); after the sweep the LR with the lowest final val loss joins
                          the table's family (default "main"), the others are family "lr-sweep" (`sweep/lr_sweep.py`).
  prune_at = [0.33]       with lr = "sweep": check the candidates at these fractions of their steps and stop those
                          whose forecast final loss cannot beat the best one's (stored as "pruned",
                          `sweep/prune.py`); off unless given, and `sweep --no-prune` ignores it. A list.

Resource keys, usable in the same places, ask a Ray cluster for what one run needs (`sweep --executor ray`;
they do not change the run id): num_cpus (default: the run's threads), num_gpus (a run asking for a GPU
lands on a node that has one), memory (bytes, or a size such as "8GiB").

Table keys (in [train], [[grid]] or [[run]], one value for the whole table, never a grid axis; not part of
the run id):
  family = "main"         the sub-study the runs belong to; fits and figures select on it ("main" is the
                          L(N)/L(C) family; the presets also use "batch-scan", "shape", "d-subsets",
                          "lr-schedules", "lstm", "universal"). A run named by two tables keeps the first
                          one's family; runs without one get the inferred family (`store.families`).
  command = "python train.py --n_layer {n_layer} ..."
                          train with your own program instead of scalinglab's trainer (`sweep.command`): the
                          template's {keys} are the run's config keys plus run_dir, run_id and metrics;
                          a template key the run lacks is an error here. A command plan needs no corpus.
Command keys (with `command`; one value per table, see `sweep/readers.py` and docs/how-to/any-trainer.md):
  metrics = "contract" | { stdout = 'REGEX' } | { log = PATH, pattern = 'REGEX' } | { tensorboard | hf_trainer |
            wandb | mlflow | csv | jsonl = PATH }     where the run's learning curve is read from
  resume = { checkpoint = "ckpt.pt", yes = "--resume", no = "" }   what {resume} in the command expands to
  grad_accum = 4 / tokens_per_step = 65536   tokens per step for a trainer that accumulates gradients (default
            batch_size · n_ctx); part of the run id, and usable in the command as {grad_accum}, {tokens_per_step}
A [reproduce] table (corpus settings, law jobs) is read by `scalinglab reproduce`; sweeps ignore it.

Every expanded run is validated as a TrainConfig; errors name the plan file, the line where we can
find it, the table and the key. The corpus is resolved to an absolute path relative to the plan file.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
import tomllib
from pydantic import BaseModel, ConfigDict, Field

from scalinglab.config import ModelConfig, TrainConfig
from scalinglab.errors import UserError
from scalinglab.sweep.cluster import RESOURCE_KEYS, check_resource

STUDY_KEYS = ("n_params", "aspect_ratio", "compute", "cooldowns", "lr_grid", "prune_at")
# How a run's FLOPs are counted (the same words in --dry-run, the stored result and `runs`)
FLOPS_EXACT = "exact"  # Kaplan Table 1: 6N + 6·n_layer·n_ctx·d_attn per token (scalinglab's trainer)
FLOPS_6N = "6N"  # 6·N·tokens (a command run whose trainer logs no FLOPs)
TABLE_KEYS = ("family", "command")  # describe the table's runs; one value per table, not in the run id
COMMAND_KEYS = ("metrics", "resume", "grad_accum", "tokens_per_step")  # with `command`, one value per table
LIST_KEYS = ("cooldowns", "lr_grid", "prune_at")  # keys whose value is a list, not a grid axis
BRANCH_FAMILY = "wsd-branches"  # the family of WSD cooldown branch runs (their trunks keep the table's)
DEFAULT_ASPECT_RATIO = 32.0
TRAIN_KEYS = tuple(TrainConfig.model_fields)
ALLOWED_KEYS = TRAIN_KEYS + STUDY_KEYS + RESOURCE_KEYS + TABLE_KEYS + COMMAND_KEYS


class PlanFile(BaseModel):
    """The top level of a plan file (tables are checked key by key in `load_plan`)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    corpus: str | None = None
    description: str = ""
    train: dict[str, Any] = Field(default_factory=dict)
    grid: list[dict[str, Any]] = Field(default_factory=list)
    run: list[dict[str, Any]] = Field(default_factory=list)
    reproduce: dict[str, Any] = Field(default_factory=dict)


@dataclass
class RunSpec:
    """One expanded run of a plan."""

    run_id: str
    config: TrainConfig
    origin: str  # e.g. "grid 1", "run 2"
    study: dict[str, float] = field(default_factory=dict)  # targets it came from (n_params, compute, ...)
    resources: dict[str, float] = field(default_factory=dict)  # what it asks a Ray cluster for (num_gpus, ...)
    family: str | None = None  # the plan's tag (None: inferred when read)
    command: str | None = None  # a user trainer's command template (None: scalinglab's trainer)
    command_options: dict[str, Any] = field(default_factory=dict)  # its metrics, resume, grad_accum, tokens_per_step
    parent: str | None = None  # a WSD cooldown branch: the trunk's run id ...
    fork_step: int | None = None  # ... and the trunk step it starts from
    forks: list[int] = field(default_factory=list)  # a trunk: the steps its branches fork at
    lr_group: str | None = None  # `lr = "sweep"`: the runs of one size that differ only in LR share this ...
    lr_family: str | None = None  # ... and the best of them joins this family (`sweep/lr_sweep.py`)
    prune_at: tuple[float, ...] = ()  # fractions of its steps where a candidate may be pruned (`sweep/prune.py`)

    @property
    def shape(self) -> ModelConfig:
        return self.config.model()

    def summary(self, vocab_size: int) -> dict[str, Any]:
        """N, tokens and training FLOPs of the run (what --dry-run prints), in the convention its stored result will
        use: scalinglab's trainer counts Table 1's exact FLOPs (6N + the attention-context term per token); a command
        run without logged FLOPs is stored as 6·N·tokens (`sweep.command`), so that is what it is planned as."""
        from scalinglab.model.counting import count_model

        c = count_model(self.config.model(vocab_size))
        opts = self.command_options  # a command trainer that accumulates gradients trains more tokens per step
        per_step = opts.get("tokens_per_step") or self.config.tokens_per_step * opts.get("grad_accum", 1)
        tokens = self.config.total_steps * per_step
        per_token = c.flops_per_token_train_no_context if self.command else c.flops_per_token_train
        inherited = per_token * (self.fork_step or 0) * per_step
        return {
            "run_id": self.run_id, "origin": self.origin, "family": self.family, "arch": c.arch, "n_layer": c.n_layer,
            "d_model": c.d_model, "d_ff": c.d_ff, "n_heads": c.n_heads, "n_ctx": c.n_ctx,
            "batch_size": self.config.batch_size, "steps": self.config.total_steps, "seed": self.config.seed,
            "lr": self.config.lr, "n_params": c.n_params, "n_params_with_embeddings": c.n_params_with_embeddings,
            "tokens": tokens, "data_tokens": self.config.data_tokens, "flops": per_token * tokens,
            "flops_no_context": c.flops_per_token_train_no_context * tokens,
            "flops_convention": FLOPS_6N if self.command else FLOPS_EXACT,
            "own_flops": per_token * tokens - inherited, "parent": self.parent, "fork_step": self.fork_step,
            **{f"target_{k}": v for k, v in self.study.items()},
        }


@dataclass
class Plan:
    """A loaded plan: its name, source file, corpus and expanded runs (unique by run id)."""

    name: str
    path: Path
    corpus: Path | None
    runs: list[RunSpec]
    duplicates: int = 0
    description: str = ""
    reproduce: dict[str, Any] = field(default_factory=dict)  # the [reproduce] table, as written

    @classmethod
    def from_dict(cls, d: dict[str, Any], base_dir: str | Path = ".", name: str = "plan.toml") -> Plan:
        """A plan from a dict shaped like a plan file (name, corpus, train, grid, run); a relative corpus is
        relative to `base_dir`."""
        return plan_from_dict(d, Path(base_dir) / name)

    @property
    def families(self) -> dict[str, str | None]:
        return {r.run_id: r.family for r in self.runs}

    @property
    def vocab_size(self) -> int:
        from scalinglab.data.corpus import Corpus

        corpora = {str(r.config.corpus) for r in self.runs if r.config.corpus}
        return max(Corpus.open(c).vocab_size for c in corpora) if corpora else 2


# --------------------------------------------------------------------------------------------------
# shapes for a target N


def _n_params(n_layer: int, d_model: int, base: dict[str, Any]) -> int | None:
    """Exact non-embedding N of a candidate shape, None when the shape is invalid (e.g. heads)."""
    from scalinglab.model.counting import n_params_closed_form

    try:
        shape = ModelConfig(
            arch=base.get("arch", "transformer"), n_layer=n_layer, d_model=d_model, d_ff=base.get("d_ff"),
            d_attn=base.get("d_attn"), n_heads=base.get("n_heads"), n_ctx=int(base.get("n_ctx", 128)), vocab_size=2,
        )
    except (pydantic.ValidationError, ValueError):
        return None
    return n_params_closed_form(shape)


def d_model_grid(limit: int) -> list[int]:
    """Widths considered: multiples of 8 up to 64 (tiny models), of 16 up to 256 (one or few heads), then
    of 64 (whole heads of width 64, the paper's head size)."""
    tiny = list(range(8, min(64, limit) + 1, 8))
    small = list(range(80, min(256, limit) + 1, 16))
    big = list(range(320, limit + 1, 64))
    return tiny + small + big


def solve_shape(n_params: float, aspect_ratio: float = DEFAULT_ASPECT_RATIO, base: dict[str, Any] | None = None
                ) -> tuple[int, int]:
    """(n_layer, d_model) whose exact non-embedding N is closest to `n_params` at about `aspect_ratio`.

    Candidates are every n_layer with every width of `d_model_grid`. Among shapes whose aspect ratio
    d_model/n_layer is within a factor √2 of the target, the one with N closest (in log) wins, ties going
    to the closer aspect. When that best N is more than 25% off (very small N, where widths are coarse),
    N wins over the aspect: the shape minimising |ln N/N*| + ½·|ln a/a*|. An n_layer (or d_model) fixed in
    `base` is kept and only the other one is solved.
    """
    base = dict(base or {})
    if not (n_params > 0 and math.isfinite(n_params)):
        raise UserError(f"n_params must be a positive number (got {n_params!r})")
    if not (aspect_ratio > 0 and math.isfinite(aspect_ratio)):
        raise UserError(f"aspect_ratio must be a positive number (got {aspect_ratio!r})")
    fixed_l, fixed_d = base.get("n_layer"), base.get("d_model")
    d_limit = max(64, int(math.sqrt(n_params / 4)) + 64)  # 12·1·d² ≥ N bounds d for one layer, with slack
    widths = [fixed_d] if fixed_d else d_model_grid(d_limit)
    layers = [fixed_l] if fixed_l else range(1, 257)
    cands: list[tuple[float, float, int, int]] = []
    for n_layer in layers:
        for d in widths:
            n = _n_params(n_layer, d, base)
            if n is None:
                continue
            cands.append((abs(math.log(n / n_params)), abs(math.log((d / n_layer) / aspect_ratio)), n_layer, d))
    if not cands:
        raise UserError(f"no valid shape for n_params={n_params:g} with {base}")
    if fixed_l or fixed_d:
        best = min(cands)
    else:
        near = [c for c in cands if c[1] <= math.log(math.sqrt(2)) + 1e-12]
        best = min(near) if near else None
        if best is None or best[0] > math.log(1.25):
            best = min(cands, key=lambda c: c[0] + 0.5 * c[1])
    return best[2], best[3]


# --------------------------------------------------------------------------------------------------
# loading


def _line_of(text: str, table: str | None, index: int, key: str | None) -> int | None:
    """1-based line of `key` in the index-th `[table]`/`[[table]]` (None: top level), if we can find it."""
    header = re.compile(r"^\s*\[\[?\s*([^\]\s]+)\s*\]\]?")
    keyre = re.compile(rf"^\s*{re.escape(key)}\s*=") if key else None
    current, seen, header_line = None, -1, None
    for i, line in enumerate(text.splitlines(), 1):
        m = header.match(line)
        if m:
            current = m.group(1)
            if current == table:
                seen += 1
                if seen == index:
                    header_line = i
                    if keyre is None:
                        return i
            continue
        in_target = (table is None and current is None) or (current == table and seen == index)
        if in_target and keyre is not None and keyre.match(line):
            return i
    return header_line


class _Where:
    """Builds 'plan.toml line 12: [[grid]] #2: key: problem' messages."""

    def __init__(self, path: Path, text: str):
        self.path, self.text = path, text

    def error(self, table: str | None, index: int, key: str | None, msg: str) -> UserError:
        line = _line_of(self.text, table, index, key)
        where = f"{self.path.name}" + (f" line {line}" if line else "")
        tname = {None: "", "train": "[train]: ", "grid": f"[[grid]] #{index + 1}: ", "run": f"[[run]] #{index + 1}: "}[table]
        return UserError(f"{where}: {tname}{key + ': ' if key else ''}{msg}")


def _check_keys(entry: dict[str, Any], table: str, index: int, where: _Where, lists: bool) -> None:
    for k, v in entry.items():
        if k not in ALLOWED_KEYS:
            close = difflib.get_close_matches(k, ALLOWED_KEYS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise where.error(table, index, k, f"unknown key{hint}")
        if k in COMMAND_KEYS:
            _check_command_key(k, v, table, index, where)
            continue
        if isinstance(v, dict):
            raise where.error(table, index, k, "expected a value, got a table")
        if k in TABLE_KEYS:
            _check_table_key(k, v, table, index, where)
            continue
        if isinstance(v, list) and k not in LIST_KEYS:
            if not lists:
                raise where.error(table, index, k, "lists belong in a [[grid]] table")
            if not v:
                raise where.error(table, index, k, "empty list: the grid would have no runs")


def _check_table_key(key: str, value: Any, table: str, index: int, where: _Where) -> None:
    from scalinglab.store.families import check_family

    if isinstance(value, list):
        raise where.error(table, index, key, f"{key} describes the whole table, it is not a grid axis")
    if key == "family":
        try:
            check_family(value)
        except ValueError as e:
            raise where.error(table, index, key, str(e)) from None
    elif not isinstance(value, str) or not value.strip():
        raise where.error(table, index, key, f"expected the command line as a string (got {value!r})")


def _check_command_key(key: str, value: Any, table: str, index: int, where: _Where) -> None:
    """metrics, resume, grad_accum, tokens_per_step: one valid value for the table."""
    from scalinglab.sweep.readers import parse_metrics, parse_resume

    try:
        if key == "metrics":
            parse_metrics(value)
        elif key == "resume":
            parse_resume(value)
        elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"expected a positive whole number, one per table (got {value!r})")
    except UserError as e:
        raise where.error(table, index, key, str(e)) from None


def load_plan(path: str | Path, run_id_fn=None) -> Plan:
    """Read, validate and expand a plan file; every problem is one UserError naming file, line and key."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"plan file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
        raw = tomllib.loads(text)
    except UnicodeDecodeError as e:
        raise UserError(f"plan {p} is not UTF-8 text: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"plan {p} is not valid TOML: {e}") from None
    return plan_from_dict(raw, p, text, run_id_fn)


def plan_from_dict(raw: dict[str, Any], path: str | Path = "plan.toml", text: str = "", run_id_fn=None) -> Plan:
    """Validate and expand a plan given as the dict its TOML parses to (`Plan.from_dict`); a relative corpus
    is relative to `path`'s folder, and errors name `path` (with a line number when `text` is its source)."""
    from scalinglab.store.db import run_id_for

    run_id_fn = run_id_fn or run_id_for
    p = Path(path)
    if not isinstance(raw, dict):
        raise UserError(f"{p.name}: a plan is a table (dict) of name, corpus, [train], [[grid]], [[run]]")
    where = _Where(p, text)
    try:
        pf = PlanFile.model_validate(raw)
    except pydantic.ValidationError as e:
        first = e.errors()[0]
        loc = [str(x) for x in first["loc"]]
        table = loc[0] if loc and loc[0] in ("train", "grid", "run") else None
        index = int(loc[1]) if table in ("grid", "run") and len(loc) > 1 and loc[1].isdigit() else 0
        key = loc[0] if table is None and loc else None
        msg = first["msg"]
        if first["type"] == "missing":
            raise UserError(f"{p.name}: missing top-level key {loc[-1]!r}") from None
        if first["type"] == "extra_forbidden" and table is None:
            msg = "unknown top-level key (expected name, corpus, description, [train], [[grid]], [[run]], [reproduce])"
        raise where.error(table, index, key, msg) from None
    if not pf.grid and not pf.run:
        raise UserError(f"{p.name}: the plan has no [[grid]] or [[run]] tables, so no runs")
    _check_keys(pf.train, "train", 0, where, lists=False)
    base_dir = p.resolve().parent
    plan_corpus = (base_dir / pf.corpus).resolve() if pf.corpus else None

    specs: list[RunSpec] = []
    for table, entries in (("grid", pf.grid), ("run", pf.run)):
        for index, entry in enumerate(entries):
            _check_keys(entry, table, index, where, lists=table == "grid")
            axes = [(k, v) for k, v in entry.items() if isinstance(v, list) and k not in LIST_KEYS]
            fixed = {k: v for k, v in entry.items() if k not in dict(axes)}
            for combo in itertools.product(*(v for _, v in axes)):
                point = {**fixed, **dict(zip((k for k, _ in axes), combo, strict=True))}
                if {**pf.train, **point}.get("lr") == "sweep" or "lr_grid" in {**pf.train, **point}:
                    specs += _lr_sweep_specs(pf.train, point, table, index, where, base_dir, plan_corpus, run_id_fn)
                    continue
                if "prune_at" in point:
                    raise where.error(table, index, "prune_at", 'prune_at needs lr = "sweep" (it prunes LR candidates)')
                trunk = _resolve(pf.train, point, table, index, where, base_dir, plan_corpus, run_id_fn)
                specs += [trunk, *_branch_specs(trunk, {**pf.train, **point}.get("cooldowns"), table, index, where,
                                                run_id_fn)]
    unique = _merge_duplicates(specs)
    _check_corpora(unique.values(), p)
    return Plan(pf.name, p, plan_corpus, list(unique.values()), len(specs) - len(unique), pf.description,
                pf.reproduce)


def _merge_duplicates(specs: list[RunSpec]) -> dict[str, RunSpec]:
    """Runs by id: the first table naming a run keeps it, with its family (e.g. a shape scan whose aspect-32
    point is a main-family run leaves that run in "main"); an untagged first takes a later table's tag."""
    unique: dict[str, RunSpec] = {}
    for s in specs:
        first = unique.setdefault(s.run_id, s)
        if first.family is None:
            first.family = s.family
    return unique


def _resolve(defaults: dict, point: dict, table: str, index: int, where: _Where, base_dir: Path,
             plan_corpus: Path | None, run_id_fn) -> RunSpec:
    """Merge defaults and one grid point / run, expand the study keys, validate as a TrainConfig."""
    cfg = {**defaults, **point}
    family, command = cfg.pop("family", None), cfg.pop("command", None)
    options = {k: cfg.pop(k) for k in COMMAND_KEYS if k in cfg}
    study: dict[str, float] = {}
    aspect = cfg.pop("aspect_ratio", None)
    n_target = cfg.pop("n_params", None)
    compute = cfg.pop("compute", None)
    cfg.pop("cooldowns", None)  # expanded into branch runs by `_branch_specs`
    cfg.pop("lr_grid", None)  # expanded into one run per LR by `_lr_sweep_specs`
    cfg.pop("prune_at", None)  # read by `_lr_sweep_specs`

    def bad(key: str, msg: str) -> UserError:
        if key not in point and key in defaults:
            return where.error("train", 0, key, msg)
        return where.error(table, index, key, msg)

    resources = _pop_resources(cfg, bad)
    _check_study_numbers(n_target, aspect, compute, bad)
    if n_target is not None:
        _solve_n_params(cfg, point, float(n_target), aspect, study, bad)
    if compute is not None:
        if "steps" in point or "tokens" in point:
            raise bad("compute", "give compute or steps/tokens in one table, not both")
        cfg.pop("tokens", None)
        cfg["steps"] = 1  # placeholder so the shape validates; replaced by `_steps_for_compute`
    cfg["corpus"] = _corpus_of(cfg, base_dir, plan_corpus, command, where)
    tc = _validate_config(cfg, defaults, point, table, index, where)
    if compute is not None:
        tc = _steps_for_compute(tc, float(compute))
        study["compute"] = float(compute)
    # make the shape explicit so the stored config says exactly what ran
    shape = tc.model()
    tc = tc.model_copy(update={"d_ff": shape.d_ff, "d_attn": shape.d_attn, "n_heads": shape.n_heads})
    where_from = f"{table} {index + 1}"
    if command is None:
        if options:
            raise bad(next(iter(options)), "is for a command plan (set `command`)")
        return RunSpec(run_id_fn(tc), tc, where_from, study, resources, family)
    _check_command(command, options, tc, bad)
    sizes = {k: options[k] for k in ("grad_accum", "tokens_per_step") if k in options}
    rid = run_id_fn(tc, command=command, extra=sizes) if sizes else run_id_fn(tc, command=command)
    return RunSpec(rid, tc, where_from, study, resources, family, command, options)


def _check_command(command: str, options: dict[str, Any], tc: TrainConfig, bad) -> None:
    """The template's keys exist for this run, {resume} comes with `resume`, and the reader's path fills in."""
    from scalinglab.sweep import readers
    from scalinglab.sweep.command import EXTRA_KEYS, check_template, template_values

    extra = tuple(k for k in ("resume", "grad_accum", "tokens_per_step") if k in options)
    try:
        check_template(command, tc, extra)
    except UserError as e:
        raise bad("command", str(e)) from None
    if "resume" in options and "{resume}" not in command:
        raise bad("resume", "the command has no {resume} for it to fill in")
    values = {**template_values(tc.model_dump(mode="json")), **{k: options[k] for k in extra if k != "resume"},
              **{k: k for k in EXTRA_KEYS if k != "run_dir"}}
    try:
        readers.check_source(readers.parse_metrics(options.get("metrics")), values)
    except UserError as e:
        raise bad("metrics", str(e)) from None


def _pop_resources(cfg: dict, bad) -> dict[str, Any]:
    """Take the Ray resource keys out of `cfg` (they are not part of the run id), each checked."""
    resources = {}
    for key in RESOURCE_KEYS:
        if key in cfg:
            try:
                resources[key] = check_resource(key, cfg.pop(key))
            except ValueError as e:
                raise bad(key, str(e)) from None
    return resources


def _check_study_numbers(n_target: Any, aspect: Any, compute: Any, bad) -> None:
    """The study keys are positive finite numbers, and aspect_ratio only comes with n_params."""
    for key, val in (("n_params", n_target), ("aspect_ratio", aspect), ("compute", compute)):
        if val is not None and (isinstance(val, bool) or not isinstance(val, int | float) or not val > 0
                                or not math.isfinite(val)):
            raise bad(key, f"must be a positive number (got {val!r})")
    if aspect is not None and n_target is None:
        raise bad("aspect_ratio", "needs n_params (the shape is solved from the two)")


def _solve_n_params(cfg: dict, point: dict, n_target: float, aspect: Any, study: dict[str, float], bad) -> None:
    """Set `cfg`'s n_layer and d_model to the shape solved for `n_target` (a size fixed in the table is kept)."""
    if "n_layer" in point and "d_model" in point:
        raise bad("n_params", "give n_params or both n_layer and d_model, not all three")
    base = {k: v for k, v in cfg.items() if k in ("arch", "d_ff", "d_attn", "n_heads", "n_ctx")}
    for k in ("n_layer", "d_model"):  # a size fixed in this table (not the defaults) is kept
        if k in point:
            base[k] = point[k]
    try:
        n_layer, d_model = solve_shape(n_target, float(aspect or DEFAULT_ASPECT_RATIO), base)
    except UserError as e:
        raise bad("n_params", str(e)) from None
    cfg.update(n_layer=n_layer, d_model=d_model)
    study["n_params"] = n_target
    if aspect is not None:
        study["aspect_ratio"] = float(aspect)


def _corpus_of(cfg: dict, base_dir: Path, plan_corpus: Path | None, command: str | None, where: _Where) -> str:
    """The run's corpus as an absolute path: its own (relative to the plan file), else the plan's; a command
    run may have none (a user trainer brings its own data)."""
    if cfg.get("corpus") is not None:
        return str((base_dir / str(cfg["corpus"])).resolve())
    if plan_corpus is not None:
        return str(plan_corpus)
    if command is not None:
        return ""
    raise where.error(None, 0, None, "no corpus: set `corpus = \"DIR\"` at the top of the plan")


def _validate_config(cfg: dict, defaults: dict, point: dict, table: str, index: int, where: _Where) -> TrainConfig:
    """`cfg` as a TrainConfig; the first validation error names the table the bad key came from."""
    try:
        return TrainConfig.model_validate(cfg)
    except pydantic.ValidationError as e:
        first = e.errors()[0]
        key = ".".join(str(x) for x in first["loc"]) or None
        msg = first["msg"].removeprefix("Value error, ")
        shown = first.get("input")
        got = "" if isinstance(shown, dict) or shown is None else f" (got {shown!r})"
        in_defaults = key is not None and key not in point and key in defaults
        tbl, idx = ("train", 0) if in_defaults else (table, index)
        raise where.error(tbl, idx, key, f"{msg}{got}") from None


def _steps_for_compute(tc: TrainConfig, compute: float) -> TrainConfig:
    """`tc` with the steps that spend `compute` training FLOPs (Table 1 FLOPs per token, at least one step)."""
    from scalinglab.model.counting import flops_per_token_train

    per_step = flops_per_token_train(tc.model()) * tc.tokens_per_step
    steps = max(1, round(compute / per_step))
    return tc.model_copy(update={"steps": steps, "tokens": None})


def _lr_sweep_specs(defaults: dict, point: dict, table: str, index: int, where: _Where, base_dir: Path,
                    plan_corpus: Path | None, run_id_fn) -> list[RunSpec]:
    """One run per LR of an `lr = "sweep"` point, grouped so that the best one joins the table's family."""
    from scalinglab.model.counting import count_model
    from scalinglab.sweep import lr_sweep

    merged = {**defaults, **point}
    tbl, idx = ("train", 0) if "lr_grid" not in point and "lr_grid" in defaults else (table, index)
    if merged.get("lr") != "sweep":
        raise where.error(tbl, idx, "lr_grid", 'lr_grid needs lr = "sweep"')
    if merged.get("cooldowns") is not None:
        raise where.error(table, index, "cooldowns", 'tune the LR (lr = "sweep") and branch cooldowns in separate tables')
    try:
        grid = lr_sweep.check_grid(merged.get("lr_grid"))
    except ValueError as e:
        raise where.error(tbl, idx, "lr_grid", str(e)) from None
    base = _resolve(defaults, {**point, "lr": "auto"}, table, index, where, base_dir, plan_corpus, run_id_fn)
    if grid is None:
        grid = lr_sweep.default_grid(count_model(base.config.model()).n_params)
    try:
        prune_at = lr_sweep.check_prune_at(merged.get("prune_at"))
    except ValueError as e:
        raise where.error(*(("train", 0) if "prune_at" not in point else (table, index)), "prune_at", str(e)) from None
    specs = []
    for lr in grid:
        s = _resolve(defaults, {**point, "lr": lr}, table, index, where, base_dir, plan_corpus, run_id_fn)
        s.family, s.lr_group, s.lr_family = lr_sweep.FAMILY, base.run_id, base.family or "main"
        s.prune_at = prune_at
        specs.append(s)
    return specs


def _branch_specs(trunk: RunSpec, cooldowns: Any, table: str, index: int, where: _Where, run_id_fn) -> list[RunSpec]:
    """The WSD cooldown branches of `trunk` (none without `cooldowns`); the trunk learns its fork steps."""
    if cooldowns is None:
        return []
    from scalinglab.train.branches import plan_branches

    if trunk.command is not None:
        raise where.error(table, index, "cooldowns", "cooldown branches need scalinglab's trainer, not a command run")
    if not isinstance(cooldowns, list) or not cooldowns:
        raise where.error(table, index, "cooldowns", f"expected a non-empty list of token counts or fractions "
                          f"(got {cooldowns!r})")
    try:
        found = plan_branches(trunk.config, cooldowns)
    except ValueError as e:
        raise where.error(table, index, "cooldowns", str(e)) from None
    trunk.forks = sorted({b.fork_step for b in found})
    return [RunSpec(run_id_fn(b.config), b.config, f"{trunk.origin} cooldown {b.tokens:,} tokens",
                    {**trunk.study, "cooldown_tokens": float(b.tokens)}, dict(trunk.resources), family=BRANCH_FAMILY,
                    parent=trunk.run_id, fork_step=b.fork_step) for b in found]


def _check_corpora(specs, plan_path: Path) -> None:
    from scalinglab.data.corpus import Corpus

    for corpus in sorted({s.config.corpus for s in specs if s.config.corpus}):
        try:
            Corpus.open(corpus)
        except UserError as e:
            raise UserError(f"{plan_path.name}: corpus: {e}") from None
