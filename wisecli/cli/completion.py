"""Shell completion scripts for `wise`, generated from the app (bash, zsh, fish).

The scripts call back into `wise` with `_WISE_COMPLETE=complete_<shell>`, so they always offer the
registered methods, verbs and options of the installed version. Regenerate the committed copies with
`python -m wisecli.cli.completion completions/`; a test fails when they drift.
"""

from __future__ import annotations

import sys
from pathlib import Path

FILES = {"bash": "wise.bash", "zsh": "_wise", "fish": "wise.fish"}


def script(shell: str) -> str:
    """The completion script for `shell` (bash, zsh or fish)."""
    from typer._completion_shared import get_completion_script

    return get_completion_script(prog_name="wise", complete_var="_WISE_COMPLETE", shell=shell).strip() + "\n"


def write_all(folder: Path) -> list[Path]:
    """Write every shell's script into `folder`; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for shell, name in FILES.items():
        path = folder / name
        path.write_text(script(shell))
        out.append(path)
    return out


if __name__ == "__main__":  # pragma: no cover
    for p in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "completions")):
        print(p)
