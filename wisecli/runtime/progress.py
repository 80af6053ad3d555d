"""Progress on stderr: a rich bar on a terminal; without one (stderr to a file, a cluster log) a plain line
`description: n/total` at most every 30 s, so long work still shows it is alive. `--no-progress`/`-q` hide both.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager

LOG_EVERY_S = 30.0


def enabled(no_progress: bool = False) -> bool:
    """Whether a progress bar would be drawn (stderr is a terminal and progress was not turned off)."""
    return not no_progress and sys.stderr.isatty()


@contextmanager
def progress(description: str, total: int | None, *, show: bool = True):
    """Yield `advance(n=1)`: a bar on a terminal, a line every 30 s otherwise; nothing when not `show`."""
    from wisecli.cli.common import shared

    if not show or shared("quiet"):
        yield lambda n=1: None
        return
    if not sys.stderr.isatty():
        state = {"n": 0, "last": time.monotonic()}

        def advance(n: int = 1) -> None:
            state["n"] += n
            now = time.monotonic()
            if now - state["last"] >= LOG_EVERY_S:
                state["last"] = now
                sys.stderr.write(f"{description}: {state['n']}/{total if total is not None else '?'}\n")
                sys.stderr.flush()

        yield advance
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
