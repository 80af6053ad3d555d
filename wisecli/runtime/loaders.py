"""In-memory training batches for data held as device tensors (image sets and tables that fit the device):
no DataLoader workers, no host-to-device copies per step.

`EpochSampler` draws a seeded permutation per epoch (the trainer calls `set_epoch` on every rank, so a resumed
run sees the same batches) and gives each rank its slice of every global batch under DDP. The last incomplete
batch is dropped when `drop_last`, else only when it would hold fewer than max(2, world) samples (BatchNorm
needs 2). `on_epoch` callbacks run in `set_epoch` (classify's `--faithful` optimizer reset).
"""

from __future__ import annotations

import torch
from torch import Tensor


class EpochSampler:
    """Index batches of a seeded permutation per epoch; this rank's slice of each global batch."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1, *, drop_last: bool = False):
        self.n, self.batch, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.drop_last = drop_last
        self.epoch = 1
        self.on_epoch: list = []

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        for fn in self.on_epoch:
            fn(self.epoch)

    def batches(self) -> list[Tensor]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g)
        b = min(self.batch, self.n)
        out = []
        for s in range(0, self.n, b):
            idx = perm[s:s + b]
            if out and (len(idx) < max(2, self.world) or (self.drop_last and len(idx) < b)):
                break
            per = len(idx) // self.world
            out.append(idx[self.rank * per:(self.rank + 1) * per] if self.world > 1 else idx)
        return out

    def __len__(self) -> int:
        return len(self.batches())


class TensorLoader:
    """Batches (x, y) of tensors held on the device, in the sampler's order."""

    def __init__(self, x: Tensor, y: Tensor, sampler: EpochSampler):
        self.x, self.y, self.sampler = x, y, sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        for idx in self.sampler.batches():
            i = idx.to(self.x.device)
            yield self.x[i], self.y[i]
