"""The `scalinglab` app as a click command, for tools that read click apps (the docs' CLI reference, mkdocs-click).

typer builds the click command on demand; building it here once lets the reference be generated from the same
app the entry point runs, so the documented options cannot drift from the real ones.
"""

from __future__ import annotations

import typer

from scalinglab.cli.app import app

command = typer.main.get_command(app)
