"""Shared test helpers: `run_wise` runs the real `main()` in-process with captured streams, so exit
codes, stdout and stderr are exactly what the installed `wise` script gives."""

from __future__ import annotations

import contextlib
import io
import signal
import sys
import warnings
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


@pytest.fixture(autouse=True)
def _sigint_kept(request):
    """Ctrl-C must still work after every test. A test whose code leaves SIGINT ignored or blocked in this process
    is named by a warning, and the handler is put back: every later subprocess would inherit it (in one full
    run, every method's interrupt test then saw its `wise` ignore Ctrl-C)."""
    before = signal.getsignal(signal.SIGINT)
    yield
    handler = signal.getsignal(signal.SIGINT)
    blocked = signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    if handler is not before or blocked:
        warnings.warn(f"{request.node.nodeid} left SIGINT {'blocked' if blocked else handler!r}; restored")
        signal.signal(signal.SIGINT, before)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@pytest.fixture
def one_torch_thread():
    """The test on one torch CPU thread, restored afterwards (`pytestmark = pytest.mark.usefixtures(
    "one_torch_thread")` for a whole module): batched small problems lose 5-30x to thread hand-offs on shared
    cores. One conftest.py for the whole suite: a second one under tests/ would shadow this module's name."""
    import torch

    from wisecli.runtime.device import one_cpu_thread

    with one_cpu_thread(torch.device("cpu")):
        yield


@pytest.fixture(scope="module")
def one_torch_thread_module():
    """`one_torch_thread` for a whole module, its module-scoped fixtures included (`pytestmark =
    pytest.mark.usefixtures("one_torch_thread_module")`): the micro models of translate and text-vae spent 3-10x
    their CPU time in thread hand-offs on two threads (the translate resume test: 27 CPU-s against 2)."""
    import torch

    from wisecli.runtime.device import one_cpu_thread

    with one_cpu_thread(torch.device("cpu")):
        yield


@pytest.fixture(scope="module")
def one_thread_module():
    """`one_torch_thread_module` and one numpy/scipy BLAS thread (`runtime.device.one_blas_thread`) for a whole
    module: nnls's small Gram problems, NMF dictionaries and numpy oracles spent 70 CPU-s on two threads of a loaded
    2-core machine where one thread of each took 56, with the same results (issue 13.11) [measured]."""
    import torch

    from wisecli.runtime.device import one_blas_thread, one_cpu_thread

    with one_cpu_thread(torch.device("cpu")), one_blas_thread():
        yield


@pytest.fixture
def broken_compile(monkeypatch):
    """torch.compile replaced by a compiler whose compiled function raises "no compiler here" when called;
    yields the keyword options of each compile call."""
    import torch

    calls: list[dict] = []

    def broken(fn, **kw):
        calls.append(kw)

        def run(*a, **k):
            raise RuntimeError("no compiler here")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    return calls


@pytest.fixture
def wise():
    return run_wise


def pytest_collection_modifyitems(config, items):
    import importlib.util

    # `last`: after the other tests of its folder, so that work it started beside them (`beside_session`) overlaps
    late = [i for i in items if i.get_closest_marker("last")]
    for item in late:
        items.remove(item)
        ends = [k for k, other in enumerate(items) if other.path.parent == item.path.parent]
        items.insert(ends[-1] + 1 if ends else len(items), item)

    has_cuda = False
    if importlib.util.find_spec("torch") is not None:
        import torch

        has_cuda = torch.cuda.is_available()
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


def conformance_module(test_file: str):
    """The `conformance.py` beside `test_file`, loaded under a name of its own (`conformance_<pkg>`): every
    method has a module called `conformance`, so `from conformance import ...` would get whichever method's
    folder pytest put first on sys.path."""
    import importlib.util

    path = Path(test_file).with_name("conformance.py")
    name = f"conformance_{path.parent.name}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


def copy_images(sources, folder: Path, corrupt: int | None = None, suffix: str = ".png") -> list[str]:
    """The conformance `batch` inputs: `sources` copied into `folder` as img0.png, img1.png, ...; with
    `corrupt=i` image i is random bytes instead (an item error: exit 3, the other outputs kept)."""
    import os
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    inputs = []
    for i, src in enumerate(sources):
        dst = folder / f"img{i}{suffix}"
        if corrupt == i:
            dst.write_bytes(os.urandom(2048))
        else:
            shutil.copyfile(src, dst)
        inputs.append(str(dst))
    return inputs


@contextlib.contextmanager
def beside_worker():
    """One forked worker process for a slow module's independent CPU-bound work, run on the second core while
    this process runs the other tests: `with beside_worker() as submit: yield {"a": submit(fn, *args), ...}` in a
    module-scoped fixture, and `.get(timeout=...)` each AsyncResult in the test that checks it (the worker's
    exception is raised there). The house rule for a method's tests is wall time on the 2-core CI machine; each
    side is one thread, so the work is done side by side for about the same CPU time.

    `fn` must be a module-level function (results and arguments are pickled; the fork already has the arguments'
    modules). The worker runs torch and BLAS (threadpoolctl) on one thread each. Leaving the `with` terminates
    the worker, also with results nobody fetched (a test deselected with -k)."""
    import multiprocessing as mp

    with mp.get_context("fork").Pool(1, initializer=_one_thread_worker) as pool:
        yield lambda fn, *args: pool.apply_async(fn, args)


@pytest.fixture(scope="session")
def beside_session():
    """`beside_worker` for the whole session, for work that should overlap a whole folder rather than one module:
    `start(key, fn, *args)` submits once per key and returns the AsyncResult, so a folder's first module starts
    it and a test marked `last` (run after the other tests of its folder: `pytest_collection_modifyitems` above)
    collects it."""
    jobs: dict = {}
    with beside_worker() as submit:
        def start(key, fn, *args):
            if key not in jobs:
                jobs[key] = submit(fn, *args)
            return jobs[key]

        yield start


def _one_thread_worker():
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(limits=1)  # kept for the worker's life: nothing restores it


def run_ranks(worker, folder, world: int = 2) -> None:
    """Run `worker(rank, folder)` on `world` forked CPU processes with the torch.distributed environment set
    (gloo, one thread each); the trainer joins the group from that environment. Forked ranks reuse this
    process's imports: seconds instead of tens of seconds for fresh interpreters on 2 busy cores."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_rank_main, args=(worker, port, world, str(folder)), nprocs=world, join=True,
                       start_method="fork")


def _rank_main(rank, worker, port, world, folder):
    import os

    import torch
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    worker(rank, folder)
    if dist.is_initialized():
        dist.destroy_process_group()
