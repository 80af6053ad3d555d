"""Run folders and output folders: the one rule every `train` (and every verb writing into `-o FOLDER`) keeps.

- A new or empty folder is used as it is.
- An existing folder with files in it is refused unless `--resume` (continue from its `checkpoints/last.pt`)
  or `--overwrite` (empty it first); the two together are a usage error.
- `--resume` on a folder without `last.pt` starts afresh (a job script can always pass it).
- A folder this call created is removed again when the work fails before writing anything into it, so a
  failed run leaves no empty `-o` folder behind (`made_dir`).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from wisecli.cli.errors import InputError, OutputError


def _has_files(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def prepare_run_dir(path: Path | str, *, resume: bool = False, overwrite: bool = False,
                    is_main: bool = True) -> Path:
    """Check `path` against the rule above and return it (created on rank 0); refusals are exit 2."""
    path = Path(path)
    if resume and overwrite:
        raise InputError("--resume and --overwrite exclude each other",
                         hint="--resume continues the run in the folder, --overwrite starts it again")
    if path.exists() and not path.is_dir():
        raise InputError(f"run folder is a file: {path}", hint="give a folder for -o")
    if _has_files(path) and not (resume or overwrite):
        held = " (it already holds a run)" if last_checkpoint(path) is not None else ""
        raise InputError(f"run folder exists and is not empty: {path}{held}",
                         hint="pass --resume to continue it, --overwrite to start again, or choose another -o")
    if is_main:
        try:
            if overwrite and path.is_dir():
                shutil.rmtree(path)
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot prepare run folder {path}: {exc.strerror or exc}",
                              hint="check that it is writable, or choose another -o") from None
    return path


def last_checkpoint(run_dir: Path | str) -> Path | None:
    """`checkpoints/last.pt` of a run folder, or None when there is none to resume from."""
    p = Path(run_dir) / "checkpoints" / "last.pt"
    return p if p.is_file() else None


@contextmanager
def made_dir(path: Path | str) -> Iterator[Path]:
    """Create `path` (and parents) for the block; if the block fails, remove what this call created and
    is still empty, so no empty output folder is left behind."""
    path = Path(path)
    created = []
    p = path
    while not p.exists():
        created.append(p)
        p = p.parent
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create folder {path}: {exc.strerror or exc}",
                          hint="check that the parent folder exists and is writable, or choose another -o") from None
    try:
        yield path
    except BaseException:
        for folder in created:  # deepest first
            try:
                folder.rmdir()
            except OSError:
                break
        raise
