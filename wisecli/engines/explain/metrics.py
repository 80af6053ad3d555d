"""Saliency metrics (spec §5): deletion and insertion as in eclique/RISE `evaluation.py` (Petsiuk et al. 2018),
colour deletion for MC-RISE maps [reconstructed], and the pointing game (Zhang et al., ECCV 2016, as in
facebookresearch/TorchRay `benchmark/pointing_game.py`).

Deletion/insertion: class c = the top-1 class of the clean image, score = its probability. Pixels are ranked by
the saliency of c, descending, stable (ties to the lower index; the reference's flipped argsort leaves them
open). A step changes all channels of `step` pixels; `step="auto"` keeps the reference's 224 steps at any size
(step = ceil(H·W/224)). Deletion goes from the image to zeros in the model's input space (the mean colour);
insertion from the blurred image (per-channel 11x11 kernel = Gaussian-filtered impulse, σ = 5, zero padding
5, in input space) back to the image. AUC = (Σ s_i − s_0/2 − s_n/2)/n. Ours ranks once and composes a chunk of
steps at once (`rank < t·step`), one batched forward per chunk; the reference edits one step at a time.

Colour deletion [reconstructed]: for colour k the pixels are painted c_k (input space) in ascending S_{c,k}
order (the most harmful place first), same steps and AUC; lower is better, compared with random orders.

Pointing game: the point is the arg-max of the class map resized to the original image (ties: the first
index); a hit when a pixel of the union of the class's boxes lies at Euclidean distance strictly below the
tolerance (15 px). Box pixels: integer columns x0..x1 and rows y0..y1, inclusive, clipped to the image.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

N_REF_STEPS = 224


def blur_kernel(klen: int = 11, nsig: float = 5.0) -> np.ndarray:
    """The reference's `gkern`: scipy `gaussian_filter` of a klen x klen unit impulse (sums to 1)."""
    from scipy.ndimage import gaussian_filter

    inp = np.zeros((klen, klen))
    inp[klen // 2, klen // 2] = 1
    return gaussian_filter(inp, nsig)


def blur(x: Tensor, klen: int = 11, nsig: float = 5.0) -> Tensor:
    """Per-channel convolution with `blur_kernel`, zero padding klen//2 (the insertion substrate)."""
    C = x.shape[1]
    k = torch.from_numpy(blur_kernel(klen, nsig)).to(x.device, torch.float32)
    w = k.expand(C, 1, klen, klen).contiguous()
    return torch.nn.functional.conv2d(x.float(), w, padding=klen // 2, groups=C)


def auto_step(h: int, w: int) -> int:
    return math.ceil(h * w / N_REF_STEPS)


def auc(scores) -> float:
    """Trapezoid on [0, 1] of s_0..s_n: (Σ s − s_0/2 − s_n/2)/n."""
    s = np.asarray(scores, dtype=np.float64)
    return float((s.sum() - s[0] / 2 - s[-1] / 2) / (len(s) - 1))


def rank_of(saliency: Tensor, descending: bool = True) -> Tensor:
    """Rank of each pixel (0 = first changed), stable: ties to the lower flat index."""
    flat = saliency.reshape(-1).float()
    order = torch.sort(-flat if descending else flat, stable=True).indices
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order), device=order.device)
    return rank


def causal_curve(prob_fn, start: Tensor, finish: Tensor, rank: Tensor, cls: int, step: int,
                 chunk: int = 64) -> Tensor:
    """Scores s_0..s_n of class `cls` as pixels move from `start` (C, H, W) to `finish` in `rank` order, `step`
    pixels a step; `prob_fn(x) -> (n, classes)` probabilities. One batched forward per chunk of steps."""
    C, H, W = start.shape
    hw = H * W
    n_steps = (hw + step - 1) // step
    out = []
    s0, f0 = start.reshape(C, hw), finish.reshape(C, hw)
    for t0 in range(0, n_steps + 1, chunk):
        t = torch.arange(t0, min(n_steps + 1, t0 + chunk), device=start.device)
        moved = rank[None, :] < (t[:, None] * step)                     # (T, HW)
        x = torch.where(moved[:, None, :], f0[None], s0[None]).reshape(len(t), C, H, W)
        out.append(prob_fn(x)[:, cls].float())
    return torch.cat(out)


def deletion_insertion(prob_fn, image: Tensor, saliency: Tensor, cls: int, step: int, *, chunk: int = 64,
                       which=("deletion", "insertion")) -> dict:
    """{"deletion": curve, "insertion": curve} (tensors) for one image (C, H, W) in input space."""
    rank = rank_of(saliency)
    out = {}
    if "deletion" in which:
        out["deletion"] = causal_curve(prob_fn, image, torch.zeros_like(image), rank, cls, step, chunk)
    if "insertion" in which:
        out["insertion"] = causal_curve(prob_fn, blur(image[None])[0], image, rank, cls, step, chunk)
    return out


def color_deletion(prob_fn, image: Tensor, saliency_k: Tensor, color: Tensor, cls: int, step: int,
                   chunk: int = 64) -> Tensor:
    """Scores as pixels are painted `color` (C,) in ascending order of S_{c,k}."""
    rank = rank_of(saliency_k, descending=False)
    finish = color[:, None, None].expand_as(image).to(image)
    return causal_curve(prob_fn, image, finish, rank, cls, step, chunk)


def random_saliency(shape, seed: int, device="cpu") -> Tensor:
    g = torch.Generator().manual_seed(int(seed))
    return torch.rand(shape, generator=g).to(device)


# ------------------------------------------------------------------------------------------ pointing game

def box_mask(boxes, h: int, w: int) -> np.ndarray:
    """Union of boxes (x0, y0, x1, y1) in pixels, inclusive, clipped to (h, w)."""
    m = np.zeros((h, w), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        c0, c1 = max(0, int(math.floor(x0))), min(w - 1, int(math.ceil(x1)))
        r0, r1 = max(0, int(math.floor(y0))), min(h - 1, int(math.ceil(y1)))
        if c1 >= c0 and r1 >= r0:
            m[r0:r1 + 1, c0:c1 + 1] = True
    return m


def pointing_hit(point_yx, mask: np.ndarray, tolerance: float = 15.0) -> bool:
    """True when a pixel of `mask` lies strictly within `tolerance` of the (float) point."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return False
    d2 = (ys - float(point_yx[0])) ** 2 + (xs - float(point_yx[1])) ** 2
    return bool((d2 < float(tolerance) ** 2).any())


def max_point(saliency: np.ndarray, size_hw: tuple[int, int] | None = None) -> tuple[int, int]:
    """Arg-max (row, col) of the map resized (bilinear) to `size_hw`, ties to the first flat index."""
    s = np.asarray(saliency, dtype=np.float32)
    if size_hw is not None and tuple(size_hw) != s.shape:
        t = torch.from_numpy(s)[None, None]
        s = torch.nn.functional.interpolate(t, size=tuple(size_hw), mode="bilinear", align_corners=False)[0, 0].numpy()
    i = int(np.argmax(s))
    return divmod(i, s.shape[1])


def pointing_summary(hits: list[tuple[str, bool]]) -> dict:
    """{"overall": hit rate, "mean_per_class": TorchRay's mean of per-class rates, "n"}."""
    if not hits:
        return {"overall": None, "mean_per_class": None, "n": 0}
    per: dict[str, list[bool]] = {}
    for c, h in hits:
        per.setdefault(str(c), []).append(bool(h))
    return {"overall": float(np.mean([h for _, h in hits])),
            "mean_per_class": float(np.mean([np.mean(v) for v in per.values()])), "n": len(hits)}


def bootstrap_ci(values, n_boot: int = 1000, seed: int = 0) -> list[float] | None:
    """95 % percentile bootstrap interval of the mean."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if len(v) < 2:
        return None
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), (n_boot, len(v)))].mean(1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]
