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


def xaitk_available() -> bool:
    """Whether `xaitk-saliency` (not a dependency; `pip install xaitk-saliency`) can be raced."""
    from importlib.util import find_spec

    return find_spec("xaitk_saliency") is not None and find_spec("smqtk_classifier") is not None


def xaitk_mcrise(box, x01: torch.Tensor, n: int, grid: int, keep: float, colors, seed: int = 0,
                 batch: int = 100) -> np.ndarray:
    """XAITK's `MCRISEStack` (spec §7 peer `xaitk`, same N, grid, keep probability and palette) on one image
    `x01` (C, H, W) in [0, 1]: its numpy masks and uint8 composites on the CPU, our model behind smqtk's
    `ClassifyImage` (images stacked in fp32 batches of `batch`, copied to the model's device, softmax).
    Returns its [K, classes, H, W] maps (its own weighting and rescaling, §2.5: not comparable in value)."""
    from smqtk_classifier.interfaces.classify_image import ClassifyImage
    from xaitk_saliency.impls.gen_image_classifier_blackbox_sal.mc_rise import MCRISEStack

    labels = list(range(len(box.classes)))

    class _Box(ClassifyImage):
        def get_labels(self):
            return labels

        def get_config(self):
            return {}

        def classify_images(self, img_iter):
            def flush(buf):
                x = torch.from_numpy(np.stack(buf)).to(box.device).permute(0, 3, 1, 2).float() / 255.0
                with torch.inference_mode():
                    p = torch.softmax(box(box.to_input(x)).float(), -1).cpu().numpy()
                return [dict(zip(labels, row)) for row in p]
            buf = []
            for img in img_iter:
                buf.append(np.asarray(img))
                if len(buf) == batch:
                    yield from flush(buf)
                    buf = []
            if buf:
                yield from flush(buf)

    img = (x01.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    stack = MCRISEStack(n=n, s=grid, p1=keep, fill_colors=[list(c) for c in colors], seed=seed, threads=0)
    return stack(img, _Box())
