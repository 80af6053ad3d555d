"""What a run will need and what the machine has, so that a configuration that cannot fit is refused before it
starts (exit 2 with settings that fit) instead of being killed by the kernel half-way, silently.

- `available_bytes(device)`: CUDA: free memory of the card (`torch.cuda.mem_get_info`). CPU: `MemAvailable`
  of /proc/meminfo, lowered to what the cgroup (v2 `memory.max`, v1 `memory.limit_in_bytes`) still allows:
  in a container or a CI job that limit, not the host's memory, is what the OOM killer enforces. None where
  neither can be read (then nothing is refused).
- `saved_bytes(fn, *args)`: the bytes autograd keeps for the backward pass of `fn(*args)` (unique storages
  seen by `saved_tensors_hooks`), run on the device and under the autocast the run uses. Activation memory
  grows linearly with the voxels (or pixels, tokens) of a batch, so a small probe gives bytes per voxel.
"""

from __future__ import annotations

from pathlib import Path

import torch


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_room() -> int | None:
    """What the cgroup limit leaves (limit − usage), v2 then v1; None without a finite limit."""
    for limit, usage in (("memory.max", "memory.current"), ("memory/memory.limit_in_bytes",
                                                            "memory/memory.usage_in_bytes")):
        lim = _read_int(Path("/sys/fs/cgroup") / limit)
        if lim is not None and lim < 1 << 60:
            return max(lim - (_read_int(Path("/sys/fs/cgroup") / usage) or 0), 0)
    return None


def available_bytes(device: torch.device) -> int | None:
    """Memory a new allocation can still get on `device` (see the module docstring), or None if unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    room = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                room = int(line.split()[1]) * 1024
    except OSError:
        pass
    cg = _cgroup_room()
    if cg is not None:
        room = cg if room is None else min(room, cg)
    return room


def saved_bytes(fn, *args, exclude=()) -> int:
    """Bytes of the unique storages autograd saves while running `fn(*args)` (the activation memory that lives
    until the backward pass), leaving out the storages of the `exclude` tensors (a model's parameters, which
    do not grow with the batch). The output is dropped."""
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in skip:
            seen[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*args)
    return sum(seen.values())


def gib(n: float) -> str:
    """`n` bytes as GiB with one decimal (0.1 at least)."""
    return f"{max(n / 2**30, 0.1):.1f} GiB"
