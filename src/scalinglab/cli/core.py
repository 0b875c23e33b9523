"""The one error mechanism every command shares, and the helpers command modules use.

Command modules (count.py, corpus.py, ...) each own a typer app; cli/app.py imports them and adds them to the
root app. `run(app, argv)` runs an app without click's standalone mode so that every kind of bad input, whether a
usage error, a validation error or a `UserError` from the library, ends as exit status 2 with one line on stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer

try:  # recent typer ships its own copy of click
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older typer on top of click
    from click.exceptions import NoArgsIsHelpError, UsageError

from scalinglab.errors import RunDiverged, UserError

Abort = typer.Abort


def new_app(**settings: Any) -> typer.Typer:
    """A typer app with the settings every scalinglab (sub-)app shares: plain help, no completion, no rich tracebacks."""
    return typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None, **settings)


def fail(message: str, code: int = 2) -> None:
    """Print one line on stderr and exit; the single way commands report bad input."""
    line = " ".join(str(message).split())
    typer.echo(f"error: {line}", err=True)
    raise SystemExit(code)


def pydantic_message(err: Any, names: Mapping[str, str] | None = None) -> str:
    """The first problem of a pydantic ValidationError as one line naming the field (spelt as in `names`, e.g. the
    command-line flag it came from). The errors of one value against each member of a union are joined."""
    try:
        errors = err.errors()
        first = errors[0]
    except Exception:  # pragma: no cover - defensive
        return str(err).splitlines()[0]
    loc = tuple(p for p in first.get("loc", ()) if p != "__root__")
    msgs = [first.get("msg", "invalid value").removeprefix("Value error, ")]
    union = [e for e in errors[1:] if tuple(e.get("loc", ()))[:-1] == loc[:-1] and e.get("input") == first.get("input")]
    if len(loc) > 1 and union:  # `lr: float | "auto"` reports one error per member; the member names end the loc
        loc = loc[:-1]
        msgs = [m.split(",")[0] for m in msgs + [e["msg"] for e in union]]
        msgs = [msgs[0]] + [m.removeprefix("Input should be ") for m in msgs[1:]]
    parts = [str(p) for p in loc]
    if parts and names:
        parts[0] = names.get(parts[0], parts[0])
    value = first.get("input")
    shown = "" if isinstance(value, dict) or value is None else f" (got {value!r})"
    msg = " or ".join(dict.fromkeys(msgs))
    return f"{'.'.join(parts)}: {msg}{shown}" if parts else f"{msg}{shown}"


def emit_json(obj: Any, dest: str | None = None) -> None:
    """Write `obj` as JSON to stdout (one line) or atomically to the file `dest`."""
    if dest in (None, "-"):
        typer.echo(json.dumps(obj, allow_nan=False))
    else:
        from scalinglab.io import atomic_write_json

        atomic_write_json(Path(dest), obj)


def run(app: typer.Typer, argv: list[str] | None = None) -> None:
    """Run `app` on `argv` (default: sys.argv) and exit with its status; bad input → one stderr line, exit 2."""
    import pydantic

    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="scalinglab", standalone_mode=False)
    except NoArgsIsHelpError as e:  # `scalinglab corpus` with nothing after it
        typer.echo(e.ctx.get_help() if e.ctx else str(e))
        raise SystemExit(0) from None
    except UsageError as e:
        fail(e.format_message().replace("Value error, ", ""))
    except Abort:
        typer.echo("aborted", err=True)
        raise SystemExit(130) from None
    except UserError as e:
        fail(str(e), e.exit_code)
    except pydantic.ValidationError as e:
        fail(pydantic_message(e))
    except RunDiverged as e:
        fail(f"run diverged: {e}", e.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise SystemExit(130) from None
    except BrokenPipeError:
        sys.stderr.close()
        raise SystemExit(1) from None
    if rv == 130:  # typer turns Ctrl-C inside a command into Exit(130), which non-standalone mode returns
        typer.echo("interrupted", err=True)
    raise SystemExit(rv if isinstance(rv, int) else 0)
