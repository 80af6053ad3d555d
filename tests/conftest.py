"""Shared test helpers: `run_wise` runs the real `main()` in-process with captured streams, so exit
codes, stdout and stderr are exactly what the installed `wise` script gives."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


class _Stream(io.StringIO):
    def __init__(self, tty: bool = False):
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty

    @property
    def buffer(self):  # some writers want bytes
        return _ByteView(self)


class _ByteView:
    def __init__(self, text):
        self.text = text

    def write(self, data: bytes):
        self.text.write(data.decode("utf-8", "replace"))

    def flush(self):
        pass


def run_wise(*args: str, input: str | None = None) -> tuple[int, str, str]:
    """Run `wise ARGS...`; returns (exit_code, stdout, stderr)."""
    from wisecli.main import main

    out, err = _Stream(), _Stream()
    old = sys.stdin, sys.stdout, sys.stderr
    sys.stdin = io.StringIO(input or "")
    sys.stdout, sys.stderr = out, err
    try:
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # a library calling sys.exit
            code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.stdin, sys.stdout, sys.stderr = old
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def wise():
    return run_wise


def pytest_collection_modifyitems(config, items):
    import importlib.util

    has_cuda = False
    if importlib.util.find_spec("torch") is not None:
        import torch

        has_cuda = torch.cuda.is_available()
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
