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
