"""Common corruptions (Hendrycks & Dietterich 2019) in torch on float images in [0, 1] (B, C, H, W), seeded by
a `torch.Generator`; severities 1-5 with the constants of `hendrycks/robustness` `make_cifar_c.py`:

| name | constant per severity 1..5 | operation |
|---|---|---|
| gaussian_noise | sigma .04 .06 .08 .09 .10 | x + N(0, sigma^2) |
| shot_noise | lambda 500 250 100 75 50 | Poisson(x lambda) / lambda |
| impulse_noise | amount .01 .02 .03 .05 .07 | salt and pepper per element (skimage `s&p`, half each) |
| gaussian_blur | sigma .4 .6 .7 .8 1 | separable Gaussian, edge padding, radius ceil(4 sigma) (skimage) |
| contrast | c .75 .5 .4 .3 .15 | (x - mean) c + mean, the mean over C, H, W |
| brightness | c .05 .1 .15 .2 .3 | HSV value + c, clipped; done as x * clip(v + c) / v, which keeps H and S exactly |
| jpeg_compression | quality 80 65 58 50 40 | OpenCV JPEG encode/decode per image (on the CPU) |

Every result is clipped to [0, 1]. Choice [reconstructed]: the CIFAR constants are used at every image size (the
ImageNet-C ones are for 224 px); JPEG leaves the device (there is no JPEG codec in torch).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

CONSTANTS = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot_noise": (500, 250, 100, 75, 50),
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "jpeg_compression": (80, 65, 58, 50, 40),
}
CORRUPTIONS = tuple(CONSTANTS)


def _randn(x: Tensor, g: torch.Generator | None) -> Tensor:
    return torch.randn(x.shape, generator=g, device=g.device if g is not None else x.device).to(x.device)


def _rand(x: Tensor, g: torch.Generator | None) -> Tensor:
    return torch.rand(x.shape, generator=g, device=g.device if g is not None else x.device).to(x.device)


def gaussian_kernel(sigma: float) -> Tensor:
    radius = max(1, int(math.ceil(4 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of (B, C, H, W) with edge-replicating padding and radius ceil(4 sigma): scikit-image's
    `filters.gaussian` (mode 'nearest', truncate 4), which make_cifar_c.py calls."""
    k = gaussian_kernel(sigma).to(x)
    r = (k.numel() - 1) // 2
    c = x.shape[1]
    mode = "replicate"
    y = F.pad(x, (r, r, 0, 0), mode=mode)
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = F.pad(y, (0, 0, r, r), mode=mode)
    return F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _jpeg(x: Tensor, quality: int) -> Tensor:
    import cv2
    import numpy as np

    arr = (x.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = np.empty_like(arr)
    for i, img in enumerate(arr):
        ok, buf = cv2.imencode(".jpg", img if img.shape[2] == 3 else img[..., 0], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        dec = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        out[i] = dec.reshape(img.shape)
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(x.device, x.dtype) / 255


def corrupt(x: Tensor, name: str, severity: int, generator: torch.Generator | None = None) -> Tensor:
    """`x` (B, C, H, W) float in [0, 1] corrupted by `name` at `severity` (1-5)."""
    if name not in CONSTANTS:
        raise ValueError(f"unknown corruption {name!r}")
    if not 1 <= int(severity) <= 5:
        raise ValueError(f"severity must be 1-5, not {severity}")
    c = CONSTANTS[name][int(severity) - 1]
    x = x.float()
    if name == "gaussian_noise":
        y = x + c * _randn(x, generator)
    elif name == "shot_noise":
        rate = (x.clamp(0, 1) * c)
        if generator is not None:
            y = torch.poisson(rate.to(generator.device), generator=generator).to(x.device) / c
        else:
            y = torch.poisson(rate) / c
    elif name == "impulse_noise":
        u = _rand(x, generator)
        salt = _rand(x, generator) < 0.5
        hit = u < c
        y = torch.where(hit & salt, torch.ones_like(x), torch.where(hit, torch.zeros_like(x), x))
    elif name == "gaussian_blur":
        y = gaussian_blur(x, c)
    elif name == "contrast":
        m = x.mean(dim=(1, 2, 3), keepdim=True)
        y = (x - m) * c + m
    elif name == "brightness":
        v = x.amax(dim=1, keepdim=True)
        nv = (v + c).clamp(0, 1)
        y = torch.where(v > 0, x * nv / v.clamp_min(1e-12), nv.expand_as(x))
    else:
        y = _jpeg(x, c)
    return y.clamp(0, 1)


def parse_corruptions(spec: str | None) -> list[str]:
    """`all`, one name or a comma list -> names; unknown names raise ValueError."""
    if not spec:
        return []
    names = list(CORRUPTIONS) if spec.strip() == "all" else [s.strip() for s in spec.split(",") if s.strip()]
    bad = [n for n in names if n not in CONSTANTS]
    if bad:
        raise ValueError(f"unknown corruption {bad[0]!r}")
    return names
