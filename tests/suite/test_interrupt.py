"""Ctrl-C in the middle of a batch (issue 12 §6): `wise <m> <batch verb>` runs as a subprocess (stderr to a file,
not a terminal); once a first output exists under tmp/out it gets SIGINT and must exit 130 with an
`Interrupted.` line and no traceback. A rerun with --skip-existing then finishes the batch: exit 0 and every
output of a clean run present.

To make sure the batch is still running when the signal comes, the subprocess (`python -m wisecli`, through
runpy) sleeps 1 s after each rename into tmp/out: atomic writes rename their temporary file into place. It starts
with Ctrl-C as a terminal gives it (SIGINT handled, not blocked): an ignored or blocked SIGINT is inherited from
the pytest process, where an earlier test's library code may have left it so (`tests/conftest.py` reports that).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from conformance_kit import (METHOD_NAMES, TMP_NAME, conformance, run_in, snapshot, stderr_summary)

SLOW_RENAMES = r"""
import os, runpy, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
OUT = os.path.abspath(sys.argv.pop(1))
def _slow(fn):
    def wrapped(src, dst, *a, **k):
        r = fn(src, dst, *a, **k)
        if os.path.abspath(os.fspath(dst)).startswith(OUT):
            time.sleep(1.0)
        return r
    return wrapped
os.replace, os.rename = _slow(os.replace), _slow(os.rename)
runpy.run_module("wisecli", run_name="__main__", alter_sys=True)
"""


def _outputs(folder):
    return {k: v for k, v in snapshot(folder).items() if not TMP_NAME.match(k.rsplit("/", 1)[-1]) and not k.endswith("/")}


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_sigint_mid_batch_then_resume(method, tmp_path):
    mod = conformance(method)
    work = tmp_path / "work"
    work.mkdir()
    argv = mod.batch(work)
    if argv is None:
        return  # no batch verb
    argv = [str(a) for a in argv]
    out = work / "out"
    err_file, out_file = tmp_path / "stderr.txt", tmp_path / "stdout.txt"
    with open(err_file, "wb") as ferr, open(out_file, "wb") as fout:
        proc = subprocess.Popen([sys.executable, "-c", SLOW_RENAMES, str(out), method, *argv], cwd=work,
                                stdin=subprocess.DEVNULL, stdout=fout, stderr=ferr)
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline and proc.poll() is None and not (out.is_dir() and _outputs(out)):
                time.sleep(0.02)
            if proc.poll() is not None:
                pytest.fail(f"the batch ended (exit {proc.returncode}) before a first output appeared under tmp/out: "
                            f"{stderr_summary(err_file.read_text(errors='replace'))}", pytrace=False)
            assert out.is_dir() and _outputs(out), "no output under tmp/out after 60 s"
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    err = err_file.read_text(errors="replace")
    assert code == 130, f"exit {code} after SIGINT, expected 130: {stderr_summary(err)}"
    assert "Traceback" not in err, f"traceback after SIGINT: {stderr_summary(err)}"
    assert "Interrupted." in err.splitlines(), f"no 'Interrupted.' line on stderr: {err[-500:]!r}"
    left_tmp = [k for k in snapshot(out) if TMP_NAME.match(k.rsplit("/", 1)[-1])]
    assert not left_tmp, f"temporary files left after SIGINT: {left_tmp}"

    code, stdout, err = run_in(work, method, [*argv, "--skip-existing"], timeout=120)
    assert code == 0, f"rerun with --skip-existing exits {code}: {stderr_summary(err)}"
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    code, _, err = run_in(clean_dir, method, [str(a) for a in mod.batch(clean_dir)], timeout=120)
    assert code == 0, f"the clean batch exits {code}: {stderr_summary(err)}"
    missing = sorted(set(_outputs(clean_dir / "out")) - set(_outputs(out)))
    assert not missing, f"outputs missing after the rerun with --skip-existing: {missing}"
    empty = sorted(k for k, size in _outputs(out).items() if size == 0 and _outputs(clean_dir / "out").get(k, 0) > 0)
    assert not empty, f"0-byte outputs after the rerun: {empty}"
