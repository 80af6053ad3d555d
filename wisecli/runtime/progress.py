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
def progress(description: str, total: int | None, *, show: bool = True, eta: bool = False):
    """Yield `advance(n=1)`: a bar on a terminal (done/total and time left), a line every 30 s otherwise; nothing
    when not `show`. With `eta` and a known total, the plain line also gives the elapsed time and the time left
    at the mean rate so far (`windows: 12/96, 3 min 10 s elapsed, about 22 min left`)."""
    from wisecli.cli.common import shared

    if not show or shared("quiet"):
        yield lambda n=1: None
        return
    if not sys.stderr.isatty():
        state = {"n": 0, "last": time.monotonic()}
        start = state["last"]

        def advance(n: int = 1) -> None:
            state["n"] += n
            now = time.monotonic()
            if now - state["last"] >= LOG_EVERY_S:
                state["last"] = now
                line = f"{description}: {state['n']}/{total if total is not None else '?'}"
                if eta and total:
                    line += eta_text(state["n"], total, now - start)
                sys.stderr.write(line + "\n")
                sys.stderr.flush()

        yield advance
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


def _duration(s: float) -> str:
    s = int(round(s))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def eta_text(done: int, total: int, elapsed: float) -> str:
    """`, 3 min 10 s elapsed, about 22 min 5 s left`: the time left at the mean rate so far."""
    text = f", {_duration(elapsed)} elapsed"
    if 0 < done < total:
        text += f", about {_duration(elapsed * (total - done) / done)} left"
    return text
