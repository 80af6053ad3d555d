"""Training pieces: the cached P x K loader, the step and validate callables for the shared trainer
(`wisecli.runtime.trainer.fit`), the BoT learning-rate schedule, and a plain in-memory loop for the demo.

Schedule (BoT, spec §2.5): Adam, lr = base * warm(e) * 0.1^(#milestones <= e), with a linear warm-up from
base/10 over `warmup_epochs`; it is set per epoch.  The demo trains in memory (no run folder, nothing
written), with the same step, so it is the same training the `train` verb runs.  Epochs are 1-based, as in
the trainer, for the sampler's seed.
"""

from __future__ import annotations

import torch

from wisecli.runtime.device import autocast

from .data import augment
from .loss import reid_losses
from .sampler import PKSampler


class CachedPKLoader:
    """P x K batches (uint8 images, id labels, viewpoint labels) from tensors cached in memory or on the GPU."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, viewpoints: torch.Tensor, sampler: PKSampler):
        self.images, self.labels, self.viewpoints, self.sampler = images, labels, viewpoints, sampler

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        for idx in self.sampler:
            i = torch.as_tensor(idx, device=self.images.device)
            yield self.images[i], self.labels[i.to(self.labels.device)], self.viewpoints[i.to(self.labels.device)]


def lr_at(epoch: int, base: float, warmup: int, milestones: tuple[int, ...]) -> float:
    """BoT schedule for 0-based `epoch`."""
    warm = 1.0 if warmup <= 0 or epoch >= warmup else 0.1 + 0.9 * epoch / warmup
    return base * warm * 0.1 ** sum(epoch >= m for m in milestones)


def make_step(num_classes: int, *, vp_weight: float, amp: bool, device: torch.device, seed: int,
              supervised: bool = True):
    """step(model, batch) -> (loss, metrics) for the trainer: augment on the device, forward, losses
    (the viewpoint loss only when `supervised`)."""
    gen = torch.Generator(device=device).manual_seed(seed)

    def step(model, batch):
        x, ids, vp = batch
        x, vp = augment(x.to(device), vp.to(device), num_classes, gen)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            out = model(x)
        return reid_losses(out, ids.to(device), vp if supervised else None, vp_weight=vp_weight)

    return step


def train_in_memory(model, loader: CachedPKLoader, step, *, epochs: int, lr: float, weight_decay: float,
                    warmup: int, milestones: tuple[int, ...], device: torch.device) -> list[dict]:
    """The demo's loop: Adam, BoT schedule, one dict of mean losses per epoch."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    history = []
    model.to(device)
    for epoch in range(1, epochs + 1):
        for g in opt.param_groups:
            g["lr"] = lr_at(epoch - 1, lr, warmup, milestones)
        loader.set_epoch(epoch)
        model.train()
        sums, n = {}, 0
        for batch in loader:
            loss, parts = step(model, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += 1
            for k, v in {"loss": float(loss.detach()), **parts}.items():
                sums[k] = sums.get(k, 0.0) + v
        history.append({"epoch": epoch, **{k: v / max(n, 1) for k, v in sums.items()}})
    model.eval()
    return history
