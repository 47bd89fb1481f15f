"""Progress bars for long host-side work (rich), silent when disabled or not on a terminal."""

from __future__ import annotations

import sys


def progress_bar(enabled: bool = True, *, transient: bool = False):
    """A ``rich.progress.Progress`` context manager; disabled unless ``enabled`` and stderr is a
    terminal, so logs and CI output stay clean."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not (enabled and sys.stderr.isatty()),
        transient=transient,
    )
