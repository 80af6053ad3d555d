"""Faults while writing (CONTRACT.md §4-§5, issue 12 §6): every verb whose example writes into tmp/out is run
with its output inside (a) a read-only folder and (b) a tiny, full file system. Each must be exit 1 with one
`Error:` line (+ `Hint:`), no traceback, no 0-byte file and no temporary file (`.*.tmp-*`) left there. For
verbs with --skip-existing, a rerun on a normal disk into a copy of what was left must complete every
output (no output left incomplete is skipped).

As root with a working `mount -t tmpfs`, (a) is a read-only tmpfs and (b) a 16 KiB tmpfs filled to the last
byte. Otherwise (a) is a chmod 0o555 folder and (b) an injected ENOSPC on Python-level writes of files under
the folder; (b) is skipped, with the reason, when the writer is out of the injection's reach (native code).
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conformance_kit import (TMP_NAME, VERB_IDS, VERB_PAIRS, error_problems, examples_of, out_location,
                             run_in, snapshot, stderr_summary, verbs_of)


def _can_mount() -> bool:
    if os.environ.get("WISE_SUITE_NO_MOUNT") or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False
    return shutil.which("mount") is not None


@contextlib.contextmanager
def tmpfs(where: Path, options: str):
    where.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    if proc.returncode != 0:
        raise OSError(f"mount failed: {proc.stderr.decode(errors='replace').strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _fill(folder: Path) -> Path:
    filler = folder / "filler.bin"
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        try:
            while True:
                fh.write(b"\0")
        except OSError:
            pass
    return filler


@contextlib.contextmanager
def readonly_folder(base: Path):
    ro = base / "ro"
    if _can_mount():
        try:
            with tmpfs(ro, "ro,size=16k"):
                yield ro
            return
        except OSError:
            pass
    ro.mkdir(parents=True, exist_ok=True)
    ro.chmod(0o555)
    try:
        yield ro
    finally:
        ro.chmod(0o755)


@contextlib.contextmanager
def full_folder(base: Path, monkeypatch):
    """(folder, injected): a full tmpfs, or a folder whose Python-level writes raise ENOSPC."""
    full = base / "full"
    if _can_mount():
        try:
            with tmpfs(full, "size=16k"):
                _fill(full)
                yield full, False
            return
        except OSError:
            pass
    full.mkdir(parents=True, exist_ok=True)
    inject_enospc(full, monkeypatch)
    yield full, True


def inject_enospc(folder: Path, monkeypatch) -> None:
    """Writes of files opened under `folder` through open()/io.open()/os.open() raise ENOSPC."""
    root = str(folder.resolve())
    fds: set[int] = set()

    def under(path) -> bool:
        try:
            return os.path.abspath(os.fspath(path)).startswith(root)
        except TypeError:
            return False

    def enospc(*_a, **_k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    real_open, real_os_open, real_write = builtins.open, os.open, os.write

    def fake_open(file, mode="r", *a, **k):
        fh = real_open(file, mode, *a, **k)
        if any(c in mode for c in "wax+") and under(file):
            fh.write = enospc
            if hasattr(fh, "writelines"):
                fh.writelines = enospc
        return fh

    def fake_os_open(path, flags, *a, **k):
        fd = real_os_open(path, flags, *a, **k)
        if flags & (os.O_WRONLY | os.O_RDWR) and under(path):
            fds.add(fd)
        return fd

    def fake_write(fd, data):
        if fd in fds:
            enospc()
        return real_write(fd, data)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    monkeypatch.setattr(os, "write", fake_write)


def _relocated(ex, verb, folder: Path) -> tuple[list[str], Path]:
    argv = ex.example(verb)
    where = out_location(ex.tmp, argv)
    new = list(argv)
    target = None
    for i in where:
        name = Path(argv[i]).name
        new[i] = str(folder / name)
        target = target or folder / name
    return new, target


def _leftovers(folder: Path, ignore=("filler.bin",)) -> list[str]:
    bad = []
    for rel, size in snapshot(folder).items():
        name = Path(rel.rstrip("/")).name
        if name in ignore or rel.endswith("/"):
            continue
        if TMP_NAME.match(name):
            bad.append(f"temporary file {rel}")
        elif size == 0:
            bad.append(f"0-byte file {rel}")
    return bad


def _needs_out(ex, verb):
    written = ex.clean_run(verb)
    if not any(k == "out" or k.startswith(("out/", "out.")) for k in written) or not out_location(ex.tmp, ex.example(verb)):
        return False
    return True


@pytest.mark.parametrize("method, verb", VERB_PAIRS, ids=VERB_IDS)
def test_read_only_output_folder(method, verb, tmp_path_factory, tmp_path):
    ex = examples_of(method, tmp_path_factory)
    if not _needs_out(ex, verb):
        return  # the example writes nothing into tmp/out
    with readonly_folder(tmp_path) as ro:
        argv, _ = _relocated(ex, verb, ro)
        code, out, err = run_in(ex.tmp, method, [verb, *argv], timeout=60)
        problems = error_problems(code, out, err, expect=1, stdout_empty=False) + _leftovers(ro)
    ex.restore()
    assert not problems, f"wise {method} {verb} into a read-only folder: {problems}  [stderr: {stderr_summary(err)}]"


@pytest.mark.parametrize("method, verb", VERB_PAIRS, ids=VERB_IDS)
def test_full_disk(method, verb, tmp_path_factory, tmp_path, monkeypatch):
    ex = examples_of(method, tmp_path_factory)
    if not _needs_out(ex, verb):
        return
    clean = {k for k in ex.clean_run(verb) if k == "out" or k.startswith(("out/", "out."))}
    left_copy = tmp_path / "left"
    with full_folder(tmp_path, monkeypatch) as (full, injected):
        argv, target = _relocated(ex, verb, full)
        code, out, err = run_in(ex.tmp, method, [verb, *argv], timeout=60)
        monkeypatch.undo()
        if injected and code == 0:
            pytest.skip("ENOSPC injection cannot reach this verb's writer (native code); run as root for a tmpfs")
        problems = error_problems(code, out, err, expect=1, stdout_empty=False) + _leftovers(full)
        shutil.copytree(full, left_copy, ignore=shutil.ignore_patterns("filler.bin"))
    ex.restore()
    assert not problems, f"wise {method} {verb} on a full disk: {problems}  [stderr: {stderr_summary(err)}]"

    cmd = verbs_of(method)[verb]
    if not any("--skip-existing" in p.opts for p in cmd.params):
        return
    # rerun on a normal disk into what was left, with --skip-existing: every output must be complete
    argv, _ = _relocated(ex, verb, left_copy)
    code, out, err = run_in(ex.tmp, method, [verb, *argv, "--skip-existing"], timeout=120)
    ex.restore()
    assert code == 0, f"rerun with --skip-existing exits {code}: {stderr_summary(err)}"
    final = snapshot(left_copy)
    clean_sizes = ex.clean_run(verb)
    missing = sorted(clean - set(final))
    empty = sorted(k for k, size in final.items() if size == 0 and clean_sizes.get(k, 1) > 0)
    assert not missing and not empty, (f"after the rerun with --skip-existing: missing {missing}, "
                                       f"incomplete (0-byte) outputs that were skipped {empty}")
