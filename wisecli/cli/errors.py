"""The error family every command raises; `main()` maps each to its exit code and a one-line message.

Exit codes (DESIGN.md): 0 ok, 1 the work failed, 2 usage/configuration/input error before work starts,
3 a batch finished but some items failed, 130 interrupted. Stdlib only, so engines may import it too.
"""

from __future__ import annotations


class WiseError(Exception):
    """A failure the user can act on: printed as `Error: message` and `Hint: hint`, never a traceback."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class InputError(WiseError):
    """Usage, configuration or input error found before the work starts (exit 2)."""

    exit_code = 2


class WorkFailed(WiseError):
    """The work itself failed (exit 1): out of memory, a solver that could not run, ..."""

    exit_code = 1


class OutputError(WorkFailed):
    """An output could not be written (disk full, read-only folder): exit 1, and a batch stops there."""


class PartialFailure(WiseError):
    """A batch finished but some items failed (exit 3); the records say which."""

    exit_code = 3


EXIT_INTERRUPTED = 130
