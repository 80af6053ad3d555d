"""Task metrics: top-k accuracy; SR PSNR and SSIM on Y (spec §5).

Y = 16 + 65.481 R + 128.553 G + 24.966 B (BT.601, RGB in [0, 1]); `scale` pixels cropped at each border; the
output rounded to 8 bits; peak 255. SSIM: Gaussian window sigma 1.5 truncated at 3.5 sigma (11 x 11, as
scikit-image), K1 0.01, K2 0.03, L 255, population covariances, the mean over the valid (unpadded) interior,
which is what `skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255)` averages.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def topk_correct(logits: Tensor, y: Tensor, k: int) -> Tensor:
    """Per-sample 1/0: the label is among the k highest logits."""
    k = min(k, logits.shape[1])
    return (logits.topk(k, dim=1).indices == y[:, None]).any(1).float()


def y_channel(rgb: Tensor) -> Tensor:
    """BT.601 luma in [16, 235] of RGB (..., 3, H, W) in [0, 1]."""
    r, g, b = rgb.unbind(-3)
    return 16.0 + 65.481 * r + 128.553 * g + 24.966 * b


def quantise(rgb: Tensor) -> Tensor:
    """Round RGB in [0, 1] to 8 bits (the saved output)."""
    return (rgb.clamp(0, 1) * 255).round() / 255


def psnr_y(sr: Tensor, hr: Tensor, crop: int) -> Tensor:
    """PSNR (dB) on Y of (B, 3, H, W) images with `crop` border pixels removed; per image."""
    a, b = y_channel(quantise(sr).double()), y_channel(hr.double())
    if crop:
        a, b = a[..., crop:-crop, crop:-crop], b[..., crop:-crop, crop:-crop]
    mse = ((a - b) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(255.0 ** 2 / mse)


def _gauss(sigma: float = 1.5, truncate: float = 3.5) -> Tensor:
    r = int(truncate * sigma + 0.5)
    x = torch.arange(-r, r + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def ssim_y(sr: Tensor, hr: Tensor, crop: int) -> Tensor:
    """SSIM on Y (per image), scikit-image's Gaussian form (see the module docstring)."""
    a, b = y_channel(quantise(sr).double()), y_channel(hr.double())
    if crop:
        a, b = a[..., crop:-crop, crop:-crop], b[..., crop:-crop, crop:-crop]
    a, b = a[:, None], b[:, None]
    g = _gauss().to(a.device).tolist()
    n = len(g)

    def filt(t):
        # the separable valid Gaussian filter as n shifted, weighted sums per axis: the same float64 sums as a
        # conv2d, about 3x cheaper on CPU (float64 convs take ATen's slow im2col path; SSIM of the held-out
        # photos was a third of an SR evaluation)
        H, W = t.shape[-2:]
        o = sum(g[k] * t[..., k:H - n + 1 + k, :] for k in range(n))
        return sum(g[k] * o[..., k:W - n + 1 + k] for k in range(n))

    ua, ub = filt(a), filt(b)
    vaa, vbb, vab = filt(a * a) - ua ** 2, filt(b * b) - ub ** 2, filt(a * b) - ua * ub
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * ua * ub + c1) * (2 * vab + c2)) / ((ua ** 2 + ub ** 2 + c1) * (vaa + vbb + c2))
    return s.flatten(1).mean(1)


def mean_std(values) -> tuple[float, float]:
    """Mean and population std of a list of numbers."""
    v = [float(x) for x in values]
    m = sum(v) / len(v)
    return m, math.sqrt(sum((x - m) ** 2 for x in v) / len(v))
