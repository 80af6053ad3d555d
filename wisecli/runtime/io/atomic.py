"""Atomic writes: every output is written to a temporary sibling and renamed into place, so an
interrupted run never leaves a half-written file and `--skip-existing` can resume it.

The temporary name keeps the output's suffixes (`.case.tmp-123.nii.gz`), because SimpleITK, OpenCV and numpy
choose the format from the extension.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from wisecli.cli.errors import InputError, OutputError

_FS_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO}


def _suffixes(name: str) -> str:
    base = name.lstrip(".")
    return "." + base.split(".", 1)[1] if "." in base else ""


def _write_failed(path: Path, exc: OSError) -> OutputError:
    return OutputError(f"cannot write {path}: {exc.strerror or exc}",
                       hint="free some disk space or choose another output folder (-o)"
                       if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "check the folder exists and is writable")


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` when the block succeeds. An OSError of
    the file system (full disk, read-only folder) becomes an OutputError naming `path` (exit 1)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_failed(path, exc) from None
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
    except BaseException as exc:
        if tmp.is_dir():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        else:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:  # a read-only file system refuses even that; nothing was written there
                pass
        if isinstance(exc, OSError) and exc.errno in _FS_ERRORS:
            raise _write_failed(path, exc) from None
        raise


@contextmanager
def open_atomic(path: Path | str, mode: str = "w", **open_kw) -> Iterator[IO]:
    """Open a temporary sibling of `path` for streamed writing (CSV rows, JSONL records); on success it is
    flushed, synced and renamed over `path`, on failure removed. Text mode defaults to UTF-8."""
    if "b" not in mode:
        open_kw.setdefault("encoding", "utf-8")
        open_kw.setdefault("newline", "")
    with atomic_path(path) as tmp:
        with open(tmp, mode, **open_kw) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


def write_bytes(path: Path | str, data: bytes) -> Path:
    """Write `data` to `path` atomically (synced before the rename)."""
    with open_atomic(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_text(path: Path | str, text: str) -> Path:
    """Write UTF-8 text to `path` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: Path | str, obj: Any, indent: int | None = 2) -> Path:
    """Write `obj` as JSON atomically; NaN and infinities become null (JSON has neither)."""
    from wisecli.cli.output import dumps

    return write_text(path, dumps(obj, indent=indent) + "\n")


def save_npy(path: Path | str, array) -> Path:
    """Write one array as `.npy` atomically."""
    import numpy as np

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.asarray(array))
    return Path(path)


def save_npz(path: Path | str, compressed: bool = True, **arrays) -> Path:
    """Write named arrays as `.npz` (compressed by default) atomically."""
    import numpy as np

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            (np.savez_compressed if compressed else np.savez)(fh, **arrays)
    return Path(path)


def refuse_existing(path: Path | str, overwrite: bool) -> None:
    """A single-file output (`-o FILE`) that exists is refused unless `--overwrite`."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(f"output exists: {path}", hint="pass --overwrite to replace it, or choose another -o")


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks (checkpoint and data fingerprints in records)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
