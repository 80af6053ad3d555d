"""Devices for every engine: `--device auto|cpu|cuda|cuda:N`, the AMP policy, CPU threads, seeding and
distributed initialisation when launched by `torchrun`.

An explicit CUDA device that is not there is an input error (exit 2), never a silent fallback to CPU.
AMP uses bf16 where the GPU supports it (Ampere and newer), else fp16; on CPU autocast is off.
"""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass

import torch

from wisecli.cli.errors import InputError, WorkFailed


def resolve_device(spec: str = "auto", *, sink=None) -> torch.device:
    """The torch device for `--device` (auto|cpu|cuda|cuda:N); `auto` says which it picked via `sink`."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        dev = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
        if sink is not None:
            sink.debug(f"device: {device_name(dev)} (auto)")
        return dev
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            why = ("this torch build has no CUDA" if torch.version.cuda is None
                   else "no CUDA device is visible (driver, CUDA_VISIBLE_DEVICES?)")
            raise InputError(f"--device {spec}: {why}", hint="use --device cpu or --device auto")
        index = 0
        if ":" in spec:
            try:
                index = int(spec.split(":", 1)[1])
            except ValueError:
                raise InputError(f"--device {spec}: bad device index", hint="for example --device cuda:0") from None
        count = torch.cuda.device_count()
        if not 0 <= index < count:
            raise InputError(f"--device {spec}: only {count} CUDA device(s) visible",
                             hint=f"use cuda:0 .. cuda:{count - 1}")
        return torch.device("cuda", index)
    raise InputError(f"unknown --device {spec!r}", hint="use auto, cpu, cuda or cuda:N")


def as_device(device: str | torch.device | None, *, sink=None) -> torch.device:
    """A torch.device from what an API caller passes: a device as it is, a spec string (or None for auto)
    through `resolve_device`. Every engine entry point takes either."""
    if isinstance(device, torch.device):
        return device
    return resolve_device(device or "auto", sink=sink)


def deterministic(seed: int, *, kernels: bool = False) -> torch.Generator:
    """Seed Python, numpy and torch (returns a torch generator seeded alike); with `kernels`, also ask torch
    for deterministic CUDA kernels (cuBLAS needs its workspace variable set before the first call)."""
    if kernels:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    return seed_everything(seed)


def device_name(device: torch.device) -> str:
    """A readable name: the GPU's model, or `cpu (N threads)`."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype on `device`: bf16 where the GPU supports it, else fp16; None on CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, enabled: bool = True):
    """Autocast context for inference and training; a no-op on CPU or when disabled."""
    dtype = amp_dtype(device)
    if not enabled or dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=dtype)


def set_threads(n: int | None = None) -> None:
    """Set torch's intra-op CPU threads when `n` is given."""
    if n:
        torch.set_num_threads(int(n))


@contextlib.contextmanager
def one_cpu_thread(device: torch.device, enabled: bool = True):
    """Run the block on one torch intra-op thread, restoring the count afterwards; a no-op on CUDA.

    Tiny batched ops (small MLP steps, r×r solves) lose more to thread hand-offs than they gain, by 5–30×
    when the cores are shared. Not thread-safe: torch's thread count is process-wide."""
    if device.type != "cpu" or not enabled:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def usable_cpus() -> int:
    """The CPU cores this process may really use: its affinity mask, capped by a cgroup CPU quota (cgroup v2
    `cpu.max`, v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us`), rounded up, at least 1. `os.cpu_count()` counts the
    host's cores, so a container limited to 2 cores on a 64-core host would start 64 OpenMP threads."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    quota = None
    try:
        with open("/sys/fs/cgroup/cpu.max") as fh:
            q, period = fh.read().split()[:2]
            if q != "max":
                quota = int(q) / int(period)
    except (OSError, ValueError):
        try:
            with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as fq, open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as fp:
                q, period = int(fq.read()), int(fp.read())
                if q > 0 and period > 0:
                    quota = q / period
        except (OSError, ValueError):
            pass
    if quota is not None:
        n = min(n, max(1, int(-(-quota // 1))))
    return max(1, n)


#: glibc mallopt parameters (malloc.h); the values restored after `cpu_compute`: glibc's dynamic mmap threshold
#: rises to the largest freed mmapped block up to 32 MiB (DEFAULT_MMAP_THRESHOLD_MAX) with the trim threshold at
#: twice it, which a torch process reaches at its first large free, so this is the state it would be in
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_RESTORE_MMAP_THRESHOLD, _RESTORE_TRIM_THRESHOLD = 32 << 20, 64 << 20
#: inside `cpu_compute`: blocks under 2 GiB come from the heap, and -1 turns trimming off (mallopt(3))
_KEEP_MMAP_THRESHOLD, _KEEP_TRIM_THRESHOLD = 2**31 - 1, -1


def _glibc_mallopt():
    """glibc's `mallopt` through ctypes, or None (musl, macOS, Windows)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.mallopt
        gnu = libc.gnu_get_libc_version  # glibc only
    except (OSError, AttributeError):
        return None
    del gnu
    fn.argtypes, fn.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return fn


@contextlib.contextmanager
def cpu_compute(device: torch.device, threads: int | None = None, *, keep_freed_memory: bool = True):
    """Settings for long CPU compute (3D convolutions of a sliding window), restored afterwards; a no-op on CUDA.
    Yields the thread count used.

    - torch's intra-op threads = `threads`, else min(torch's current count, `usable_cpus()`): never more threads
      than cores (on a 2-core cgroup of a large host torch starts one OpenMP thread per host core, and the
      threads then spin and yield in the kernel), never more than the user asked for (OMP_NUM_THREADS).
    - `keep_freed_memory` (glibc only): freed blocks stay in the heap instead of going back to the kernel
      (`mallopt`: M_MMAP_THRESHOLD at 2 GiB − 1, M_TRIM_THRESHOLD −1, i.e. no trimming: with the trim threshold at
      1 GiB a 128³ window's ≈ 2.7 GB of activations went back at its end and were faulted in again by the next,
      ≈ 1 s of system time a window of 13.6 CPU-s; 0.00 s and 12.2–13.1 CPU-s without trimming, issue 13 point 7
      [measured, 2-core EPYC, 2 threads]). Every activation of a 128³ window is 8–270 MB,
      above glibc's mmap threshold, so each op's output was a fresh `mmap` whose pages the kernel zeroes on first
      touch: WingsNet spent 20–25 % of its user time in the kernel (64³ window, one thread: 0.30 s system for
      1.32 s user; 0.01 s with the heap kept) [measured]. On exit the thresholds go to the values glibc's
      dynamic threshold reaches in a torch process (mmap 32 MiB, trim 64 MiB; glibc cannot report the old ones,
      and its dynamic raising stays off afterwards) and `malloc_trim` gives the kept memory back.

    Not thread-safe: the thread count and the allocator settings are process-wide."""
    if device.type != "cpu":
        yield torch.get_num_threads()
        return
    old = torch.get_num_threads()
    n = int(threads) if threads else min(old, usable_cpus())
    mallopt = _glibc_mallopt() if keep_freed_memory else None
    if n != old:
        torch.set_num_threads(n)
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, _KEEP_MMAP_THRESHOLD)
        mallopt(_M_TRIM_THRESHOLD, _KEEP_TRIM_THRESHOLD)
    try:
        yield n
    finally:
        if n != old:
            torch.set_num_threads(old)
        if mallopt is not None:
            import ctypes

            mallopt(_M_MMAP_THRESHOLD, _RESTORE_MMAP_THRESHOLD)
            mallopt(_M_TRIM_THRESHOLD, _RESTORE_TRIM_THRESHOLD)
            try:
                ctypes.CDLL(None).malloc_trim(0)
            except (OSError, AttributeError):  # pragma: no cover
                pass


def one_blas_thread():
    """A `with` block whose numpy/scipy BLAS runs on one thread (threadpoolctl), for small GEMMs such as a
    logistic regression's n × k products (k ≤ a few hundred) or a small NMF. On a loaded 2-core machine the
    second OpenBLAS thread spins waiting for work: MNIST-5k, k = 50, 81 L-BFGS iterations took 0.16 CPU-s on one
    thread and 13 on two, with identical results [measured]. Nothing changes outside the block."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy and torch; return a CPU torch generator with the same seed."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover
        pass
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on CPU): timings must include it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int = 1, warmup: int = 0):
    """(last output, median wall seconds of `repeats` synchronised calls after `warmup` untimed ones): the timing
    of every `benchmark` verb. One call misleads on a shared CPU, and the first pays for CUDA context and kernels."""
    import statistics
    import time

    for _ in range(warmup):
        fn()
    ts, out = [], None
    for _ in range(max(1, repeats)):
        sync(device)
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        ts.append(time.perf_counter() - t0)
    return out, statistics.median(ts)


@dataclass
class DistInfo:
    """This process's place in a torchrun job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    is_main: bool = True
    enabled: bool = False


def init_distributed(device_spec: str = "auto") -> tuple[DistInfo, torch.device]:
    """Join the process group torchrun set up (gloo on CPU, nccl on CUDA); single process otherwise."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), resolve_device(device_spec)
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    spec = (device_spec or "auto").lower()
    use_cuda = torch.cuda.is_available() and spec != "cpu"
    if use_cuda:
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return DistInfo(rank, world, local, rank == 0, True), device


def oom_guard(fn, *, option_hint: str):
    """Run `fn()`; turn a CUDA out-of-memory into a one-line error naming the option to lower."""
    try:
        return fn()
    except torch.OutOfMemoryError:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise WorkFailed("out of GPU memory", hint=f"lower {option_hint}") from None


def _flushing_denormals() -> bool:
    """Whether this thread's CPU flushes subnormal float results to zero now (torch has no getter: probe it)."""
    return bool((torch.tensor([1e-38], dtype=torch.float32) * 1e-3).item() == 0.0)


@contextlib.contextmanager
def flush_denormals(device: torch.device, enabled: bool = True):
    """Run the block with subnormal floats flushed to zero on the CPU (`torch.set_flush_denormal`), restoring
    the previous mode afterwards; a no-op on CUDA, when disabled, or where the CPU cannot (no SSE3).

    Training small nets on the CPU drifts Adam's moments and some activations into the subnormal range
    (|x| < 1.2e-38), where x86 arithmetic runs many times slower; flushing them changes values only below
    that magnitude (select-features: scores bit-identical on digits and MNIST-5k, 8-9 % less CPU time a fit
    [measured, issue 13.4]). The mode is the calling thread's, so it covers the torch ops of a block
    that runs on one intra-op thread (`one_cpu_thread`); worker threads keep theirs. Keep the block to the
    arithmetic: a module imported under it may cache the flushed limits (numpy's `finfo` then reports a zero
    smallest subnormal, with a UserWarning, for the rest of the process). Not thread-safe."""
    if device.type != "cpu" or not enabled:
        yield
        return
    before = _flushing_denormals()
    if before or not torch.set_flush_denormal(True):
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
