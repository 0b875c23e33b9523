"""The one progress bar of long work (corpus preparation, training, sweeps): rich on a terminal, else log lines.

`enabled`: True = a bar, False = none, None = a bar only when the stream is a terminal. Without a bar, `log`
passes its lines to `fallback` (or drops them), so piped output stays quiet and line-oriented.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import IO


class Progress:
    """A rich bar: label, bar, done/total (or %), elapsed, ETA and a free `info` field; `log` prints above it."""

    def __init__(self, label: str, total: float | None, *, enabled: bool | None = None, completed: float = 0,
                 count: bool = True, transient: bool = True, stream: IO[str] | None = None,
                 fallback: Callable[[str], None] | None = None):
        self.fallback = fallback
        self.bar = None
        stream = stream or sys.stderr
        if stream.isatty() if enabled is None else enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                SpinnerColumn,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as Bar

            done = MofNCompleteColumn() if count else TaskProgressColumn()
            self.bar = Bar(SpinnerColumn(), TextColumn(f"[bold]{label}"), BarColumn(), done, TimeElapsedColumn(),
                           TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                           console=Console(file=stream), transient=transient)
            self.task = self.bar.add_task(label, total=total, completed=completed, info="")
            self.bar.start()

    def log(self, message: str) -> None:
        if self.bar is not None:
            self.bar.console.print(message)
        elif self.fallback is not None:
            self.fallback(message)

    def advance(self, n: float = 1) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, n)

    def update(self, completed: float, info: str | None = None) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=completed, **({"info": info} if info else {}))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
