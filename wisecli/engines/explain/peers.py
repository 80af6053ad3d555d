"""The peers' side of the race (spec §7): the public RISE pattern of eclique/RISE — masks made one by one on the CPU
with scikit-image `resize` (order 1, mode reflect, no anti-aliasing) and a random crop, stacked, copied to the device,
and the model run in fp32 batches of 100 (`gpu_batch`), saliency = scores^T x masks / N / p1. Written from the
description; the same grid, p1 and sizes as ours. MC-RISE's loop peer paints K colours the same way.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def loop_masks(n: int, h: int, w: int, grid: int, keep: float, colors: int = 0, seed: int = 0) -> np.ndarray:
    """(n, K+1 or 1, h, w) float32 masks, one at a time on the CPU (the reference's `generate_masks`)."""
    from skimage.transform import resize

    rng = np.random.default_rng(seed)
    ch, cw = math.ceil(h / grid), math.ceil(w / grid)
    up = ((grid + 1) * ch, (grid + 1) * cw)
    out = np.empty((n, max(colors, 0) + 1, h, w), np.float32)
    for i in range(n):
        u = rng.random((grid, grid))
        dy, dx = rng.integers(0, ch), rng.integers(0, cw)
        if colors == 0:
            g = [(u < keep).astype(np.float32)]
        else:
            k = np.where(u < keep, 0, 1 + np.minimum(np.floor((u - keep) * colors / (1 - keep)), colors - 1))
            g = [(k == j).astype(np.float32) for j in range(colors + 1)]
        for j, gj in enumerate(g):
            out[i, j] = resize(gj, up, order=1, mode="reflect", anti_aliasing=False)[dy:dy + h, dx:dx + w]
    return out


def loop_saliency(model, x_in: torch.Tensor, masks: np.ndarray, keep: float, colors: torch.Tensor | None = None,
                  batch: int = 100) -> torch.Tensor:
    """The reference's forward: masks copied to the device, fp32 batches of `batch`, one image."""
    dev = x_in.device
    m = torch.from_numpy(masks).to(dev)
    n = len(m)
    preds = []
    with torch.inference_mode():
        for s in range(0, n, batch):
            mb = m[s:s + batch]
            if colors is None:
                xb = x_in[None] * mb[:, :1]
            else:
                xb = x_in[None] * mb[:, :1] + torch.einsum("nkhw,kc->nchw", mb[:, 1:], colors)
            preds.append(torch.softmax(model(xb).float(), -1))
        p = torch.cat(preds)                                        # (n, classes)
        flat = m.reshape(n, -1)
        if colors is None:
            return (p.T @ flat).reshape(p.shape[1], *masks.shape[-2:]) / n / keep
        return torch.einsum("nc,nkp->kcp", p, flat.reshape(n, m.shape[1], -1))
