"""The typer app and the one error mechanism every command shares.

Commands live in sibling modules (count.py, corpus.py, ...) and register themselves on `app`.
`main()` runs the app without click's standalone mode so that every kind of bad input, whether a usage
error, a validation error or a `UserError` from the library, ends as exit status 2 with one line on stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

try:  # recent typer ships its own copy of click
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older typer on top of click
    from click.exceptions import NoArgsIsHelpError, UsageError

from scalinglab import __version__
from scalinglab.errors import RunDiverged, UserError

Abort = typer.Abort

app = typer.Typer(
    name="scalinglab",
    help="Scaling laws for neural language models: train, fit, plan and report (Kaplan et al., 2020).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"scalinglab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Scaling laws for neural language models: train, fit, plan and report."""


def fail(message: str, code: int = 2) -> None:
    """Print one line on stderr and exit; the single way commands report bad input."""
    line = " ".join(str(message).split())
    typer.echo(f"error: {line}", err=True)
    raise SystemExit(code)


def pydantic_message(err: Any) -> str:
    """First problem of a pydantic ValidationError as one line naming the field."""
    try:
        first = err.errors()[0]
    except Exception:  # pragma: no cover - defensive
        return str(err).splitlines()[0]
    loc = ".".join(str(p) for p in first.get("loc", ()) if p != "__root__")
    msg = first.get("msg", "invalid value")
    msg = msg.removeprefix("Value error, ")
    value = first.get("input")
    shown = "" if isinstance(value, dict) or value is None else f" (got {value!r})"
    return f"{loc}: {msg}{shown}" if loc else f"{msg}{shown}"


def emit_json(obj: Any, dest: str | None = None) -> None:
    """Write `obj` as JSON to stdout (one line) or atomically to the file `dest`."""
    if dest in (None, "-"):
        typer.echo(json.dumps(obj, allow_nan=False))
    else:
        from scalinglab.io import atomic_write_json

        atomic_write_json(Path(dest), obj)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `scalinglab` command."""
    import pydantic

    # Register the commands (each module adds itself to `app`).
    import scalinglab.cli.commands  # noqa: F401

    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="scalinglab", standalone_mode=False)
    except NoArgsIsHelpError as e:  # `scalinglab corpus` with nothing after it
        typer.echo(e.ctx.get_help() if e.ctx else str(e))
        raise SystemExit(0) from None
    except UsageError as e:
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
    raise SystemExit(rv if isinstance(rv, int) else 0)
