"""Atomic writes: every output is written to a temporary sibling and renamed into place, so an
interrupted run never leaves a half-written file and `--skip-existing` can resume it.

The temporary name keeps the output's suffixes (`.case.tmp-123.nii.gz`), because SimpleITK, OpenCV and numpy
choose the format from the extension.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from wisecli.cli.errors import InputError


def _suffixes(name: str) -> str:
    base = name.lstrip(".")
    return "." + base.split(".", 1)[1] if "." in base else ""


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = _suffixes(path.name)
    stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
    tmp = path.with_name(f".{stem}.tmp-{os.getpid()}{suffix}")
    try:
        yield tmp
        if tmp.is_dir():
            if path.exists():
                import shutil

                shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: Path | str, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def write_text(path: Path | str, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: Path | str, obj: Any, indent: int | None = 2) -> Path:
    from wisecli.cli.output import dumps

    return write_text(path, dumps(obj, indent=indent) + "\n")


def save_npy(path: Path | str, array) -> Path:
    import numpy as np

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.asarray(array))
    return Path(path)


def save_npz(path: Path | str, compressed: bool = True, **arrays) -> Path:
    import numpy as np

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            (np.savez_compressed if compressed else np.savez)(fh, **arrays)
    return Path(path)


def save_figure(fig, path: Path | str, *, dpi: int = 100, **savefig_kw) -> Path:
    """Write a matplotlib figure as PNG atomically and close it (every `--plot`/`--preview` picture)."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png", **savefig_kw)
    finally:
        plt.close(fig)
    return Path(path)


def refuse_existing(path: Path | str, overwrite: bool) -> None:
    """A single-file output (`-o FILE`) that exists is refused unless `--overwrite`."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(f"output exists: {path}", hint="pass --overwrite to replace it, or choose another -o")
