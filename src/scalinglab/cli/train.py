"""`scalinglab train`: one training run with learning curve, noise scale, per-position loss and resume.

The run's options are generated from `TrainConfig` (one `--flag` per field, with its type, default and
description), so they are declared once, in config.py, and validated once, by pydantic. A run can also come from
a file: `--config run.toml` (flat TrainConfig keys, or a `[train]` table; a run folder's config.json works too),
with `--set key=value` on top. Precedence: file < flags < --set.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from pathlib import Path
from typing import Annotated, Any

import tomllib
import typer

from scalinglab.cli.core import emit_json, new_app, pydantic_message
from scalinglab.cli.options import JsonFlag
from scalinglab.errors import UserError

app = new_app()

# Flags whose spelling predates the generated options (kept so existing commands keep working).
FLAG_NAMES = {"tie_embeddings": "--tie-embeddings/--untie-embeddings"}


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def _option_type(annotation: Any) -> type:
    """The command-line type of a field: its scalar type, else text that pydantic parses (literals, unions)."""
    args = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else ()
    members = [a for a in args if a is not type(None)] if args else [annotation]
    if len(members) == 1 and members[0] in (bool, int, float, str):
        return members[0]
    return str


def _default_text(field: Any, decl: str) -> str:
    """What click would show as the default, had the option a default of its own (None means 'not given')."""
    if field.is_required():
        return "[required unless --config sets it]"
    if field.default is None:
        return ""
    if isinstance(field.default, bool):  # the flag that is in effect: --untie-embeddings, --no-early-stop
        return f"[default: {decl.split('/')[0 if field.default else 1].lstrip('-')}]"
    return f"[default: {field.default}]"


def _generated_options() -> list[inspect.Parameter]:
    """One keyword parameter per TrainConfig field; None means 'not given' (the model's default applies)."""
    from scalinglab.config import TrainConfig

    params = []
    for name, field in TrainConfig.model_fields.items():
        typ = _option_type(field.annotation)
        decl = FLAG_NAMES.get(name) or (f"{_flag(name)}/--no-{name.replace('_', '-')}" if typ is bool else _flag(name))
        option = typer.Option(decl, help=f"{field.description or ''}  {_default_text(field, decl)}".rstrip(),
                              show_default=False)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                        annotation=Annotated[typ | None, option]))
    return params


def _own_options(
    out: Annotated[str, typer.Option("--out", help="Run folder: config.json, metrics.jsonl, checkpoint.pt, "
                                     "result.json.")],
    config: Annotated[str | None, typer.Option(
        "--config", help="Run settings from a TOML file (TrainConfig keys, flat or under [train]) or a run's "
        "config.json; flags and --set override it.")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="KEY=VALUE for any TrainConfig key (VALUE read as TOML: 3e-4, true, \"log\"); repeatable; "
        "overrides flags and --config.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a run with a different config in --out.")]
    = False,
    db: Annotated[str | None, typer.Option("--db", help="Also record the run in this SQLite results store.")] = None,
    tracker: Annotated[str | None, typer.Option("--tracker", help="Also log every eval and the config to mlflow | "
                                                "tensorboard | wandb (the `track` extra).")] = None,
    json_: JsonFlag = False,
) -> None:
    """The options of `train` that are not run settings."""


def _read_config(path: str) -> dict[str, Any]:
    """TrainConfig keys from a TOML or JSON file; a relative corpus is relative to the file, as in plan files."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"--config file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
        data = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"--config {p} is not valid {'JSON' if p.suffix == '.json' else 'TOML'}: {e}") from None
    if not isinstance(data, dict):
        raise UserError(f"--config {p}: expected a table of TrainConfig keys")
    if set(data) == {"train"} and isinstance(data["train"], dict):
        data = data["train"]
    corpus = data.get("corpus")
    if isinstance(corpus, str) and not Path(corpus).expanduser().is_absolute():
        data = {**data, "corpus": str((p.parent / corpus).resolve())}
    return data


def _parse_sets(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text  # a bare word: log, cosine, auto, a path
        out[key.strip()] = value
    return out


def train_config(given: dict[str, Any], config: str | None = None, sets: list[str] | None = None):
    """The run's TrainConfig from --config, the generated flags (`given`, None = not given) and --set items."""
    import pydantic

    from scalinglab.config import TrainConfig

    flags = {k: v for k, v in given.items() if v is not None}
    overrides = _parse_sets(sets or [])
    from_file = _read_config(config) if config else {}
    values = {**from_file, **flags, **overrides}
    # name each problem where the value came from: --flag, --set key, or the config file's key
    names = ({k: _flag(k) for k in TrainConfig.model_fields} | {k: f"{config}: {k}" for k in from_file}
             | {k: _flag(k) for k in flags} | {k: f"--set {k}" for k in overrides})
    try:
        return TrainConfig(**values)
    except pydantic.ValidationError as e:
        raise UserError(pydantic_message(e, names)) from None


def train(**options: Any) -> None:
    """Train one model; rerun the same command to resume after an interruption.

    Exit status: 0 when the run finished (also when it stopped early), 2 on bad input, 3 when it
    diverged (NaN/inf or blown-up loss; the JSON line is still printed, with status "diverged").
    """
    own = {k: options.pop(k) for k in ("out", "config", "set_", "overwrite", "db", "tracker", "json_")}
    cfg = train_config(options, own["config"], own["set_"])
    from scalinglab.trackers import check_tracker, train_tracked

    check_tracker(own["tracker"])
    out = own["out"]
    result = train_tracked(cfg, out, own["tracker"], overwrite=own["overwrite"])
    from scalinglab.train.distributed import Ranks, end_rank

    if Ranks.from_env().is_main:  # under torchrun, rank 0 records and reports the run
        _record_and_report(result, out, own["db"], own["json_"])
    if result["status"] == "diverged":
        from scalinglab.errors import RunDiverged

        raise RunDiverged(result.get("reason") or "loss diverged")
    end_rank(0)  # a finished torchrun rank leaves without interpreter finalization (train/distributed.py)


def _record_and_report(result: dict, out: str, db: str | None, json_: bool) -> None:
    if db:
        from scalinglab.store.db import record_result

        record_result(db, result, plan=None)
    if json_:
        emit_json({k: v for k, v in result.items() if k not in ("curve", "config")})
    else:
        typer.echo(_summary(result, out))


def _summary(result: dict, out: str) -> str:
    def f(x, spec: str = ".4f") -> str:
        return "n/a" if x is None else format(x, spec)

    return (f"{result['status']}{' (early stop)' if result.get('early_stopped') else ''}: {result['steps']} steps, "
            f"{result['tokens']:,} tokens, N={result['n_params']:,}, val loss {f(result['val_loss'])} "
            f"(best {f(result['best_val_loss'])} at step {result['best_step']}), "
            f"B_simple {f(result['noise_scale'], '.3g')} tokens, {result['tokens_per_s']:,.0f} tokens/s -> {out}")


def _signature() -> inspect.Signature:
    """corpus and out first (as `train --help` always listed them), then the run settings, then the rest."""
    generated = _generated_options()
    own = list(inspect.signature(_own_options, eval_str=True).parameters.values())
    own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
    return inspect.Signature([generated[0], own[0], *generated[1:], *own[1:]])


train.__signature__ = _signature()  # type: ignore[attr-defined]
train.__annotations__ = {p.name: p.annotation for p in train.__signature__.parameters.values()}
app.command("train")(train)
