"""Racing ours against a peer (every `benchmark` verb) and the versions of the stack (benchmarks, checkpoints,
`run.json` and `wise doctor` all report them).

`race()` times both sides with `runtime.device.timed` (median of repeats after warm-ups, synchronised on
CUDA) in one process, so the ratio compares like with like on the same machine at the same moment.
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Callable
from importlib import metadata
from typing import Any

from wisecli.runtime.results import BenchRecord

_STACK = ("torch", "numpy", "scipy", "monai", "SimpleITK", "opencv-python-headless", "scikit-image",
          "scikit-learn", "typer", "rich")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    """Python, wisecli and the stack's package versions (None for a package that is not installed); a fresh dict
    each call. Looked up once a process: the 11 `importlib.metadata` look-ups cost ≈ 14 ms, and `train` writes a
    checkpoint (with these versions) every epoch: 95 writes, ≈ 1.3 CPU-s, in the segment-airway demo recipe."""
    return dict(_versions_once())


@functools.lru_cache(maxsize=1)
def _versions_once() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version(), "wisecli": _version("wisecli")}
    for name in _STACK:
        out[name] = _version(name)
    return out


def race(case: str, ours: Callable[[], Any], peer: Callable[[], Any] | None, *, device, peer_name: str,
         repeats: int = 3, warmup: int = 1, peer_repeats: int | None = None, peer_warmup: int | None = None,
         check: Callable[[Any, Any], dict] | None = None, **extra: Any) -> BenchRecord:
    """Time `ours()` and `peer()` on `device` and return the record; `check(ours_out, peer_out)` may add
    agreement figures (max error, equal rankings) to it. A peer that takes tens of seconds can be timed
    once (`peer_repeats=1, peer_warmup=0`); `peer=None` records ours alone."""
    import torch

    from wisecli.runtime.device import device_name, timed

    device = torch.device(device)
    ours_out, ours_s = timed(ours, device, repeats=repeats, warmup=warmup)
    peer_out, peer_s = None, None
    if peer is not None:
        peer_out, peer_s = timed(peer, device, repeats=repeats if peer_repeats is None else peer_repeats,
                                 warmup=warmup if peer_warmup is None else peer_warmup)
    if check is not None and peer is not None:
        extra.update(check(ours_out, peer_out))
    return BenchRecord(case=case, ours_s=ours_s, peer_s=peer_s, peer=peer_name, device=device_name(device),
                       extra=extra)
