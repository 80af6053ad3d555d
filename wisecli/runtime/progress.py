"""Rich progress bars on stderr, silent when stderr is not a terminal or with `--no-progress`."""

from __future__ import annotations

import sys
from contextlib import contextmanager


def enabled(no_progress: bool = False) -> bool:
    return not no_progress and sys.stderr.isatty()


@contextmanager
def progress(description: str, total: int | None, *, show: bool = True):
    """Yield `advance(n=1)`; draws a bar on stderr only when `show` and stderr is a terminal."""
    if not (show and sys.stderr.isatty()):
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
