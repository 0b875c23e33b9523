"""The one error mechanism every command shares, and the helpers command modules use.

Command modules (count.py, corpus.py, ...) each own a typer app; cli/app.py imports them and adds them to the
root app. `run(app, argv)` runs an app without click's standalone mode so that every kind of bad input, whether a
usage error, a validation error or a `UserError` from the library, ends as exit status 2 with one line on stderr.
Anything else is a bug, not bad input: exit status 1 and one line naming the command, the function that raised and
the error, with the way to see the traceback (`--debug` anywhere on the command line, or SCALINGLAB_DEBUG=1).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer

try:  # recent typer ships its own copy of click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older typer on top of click
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError

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


DEBUG_ENV = "SCALINGLAB_DEBUG"
DEBUG_FLAG = "--debug"


def debug_requested(argv: list[str]) -> tuple[bool, list[str]]:
    """Whether the user asked for tracebacks (`--debug` before any `--`, or SCALINGLAB_DEBUG set to anything but
    0/false/no/empty), and argv without the flag (any command accepts it, wherever it is written)."""
    end = argv.index("--") if "--" in argv else len(argv)
    flag = DEBUG_FLAG in argv[:end]
    rest = [a for i, a in enumerate(argv) if not (i < end and a == DEBUG_FLAG)]
    env = os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")
    return flag or env, rest


def internal_error_line(err: BaseException, argv: list[str], command: Any) -> str:
    """One line for an unexpected exception: the command, the innermost scalinglab function it passed through, the
    error, and how to get the traceback."""
    import traceback

    frames = [f for f in traceback.extract_tb(err.__traceback__) if f"{os.sep}scalinglab{os.sep}" in f.filename]
    where = ""
    if frames:
        f = frames[-1]
        module = f.filename.rsplit(f"{os.sep}scalinglab{os.sep}", 1)[1].removesuffix(".py").replace(os.sep, ".")
        where = f" in scalinglab.{module}.{f.name}"
    message = " ".join(str(err).split())[:300]
    name = " ".join(["scalinglab", *_command_path(command, argv)])
    return (f"{name} failed{where}: {type(err).__name__}" + (f": {message}" if message else "")
            + f" (an internal error, not bad input; rerun with {DEBUG_FLAG} or {DEBUG_ENV}=1 for the traceback)")


def _command_path(command: Any, argv: list[str]) -> list[str]:
    """The (sub)command names at the start of argv that `command` (a click group) knows."""
    path = []
    for a in argv:
        sub = getattr(command, "commands", {}).get(a)
        if sub is None:
            if a.startswith("-"):
                continue
            break
        path.append(a)
        command = sub
    return path


def run(app: typer.Typer, argv: list[str] | None = None) -> None:
    """Run `app` on `argv` (default: sys.argv) and exit with its status; bad input → one stderr line, exit 2;
    an unexpected exception → one stderr line, exit 1 (the traceback with --debug or SCALINGLAB_DEBUG=1)."""
    import pydantic

    command = typer.main.get_command(app)
    debug, argv = debug_requested(list(sys.argv[1:] if argv is None else argv))
    try:
        rv = command.main(args=argv, prog_name="scalinglab", standalone_mode=False)
    except NoArgsIsHelpError as e:  # `scalinglab corpus` with nothing after it
        typer.echo(e.ctx.get_help() if e.ctx else str(e))
        raise SystemExit(0) from None
    except UsageError as e:
        fail(e.format_message().replace("Value error, ", ""))
    except ClickException as e:  # a file option click could not open, ...: bad input too
        fail(e.format_message())
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
    except Exception as e:  # noqa: BLE001 - a bug: one line by default, the traceback when asked for
        if debug:
            raise
        typer.echo(f"error: {internal_error_line(e, argv, command)}", err=True)
        raise SystemExit(1) from None
    if rv == 130:  # typer turns Ctrl-C inside a command into Exit(130), which non-standalone mode returns
        typer.echo("interrupted", err=True)
    raise SystemExit(rv if isinstance(rv, int) else 0)
