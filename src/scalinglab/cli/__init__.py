"""Command-line interface: `scalinglab COMMAND`. Each command is a few lines over a library function."""

from scalinglab.cli.app import app, main

__all__ = ["app", "main"]
