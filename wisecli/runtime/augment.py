"""Batched image augmentation as torch ops on the data's device, seeded by a `torch.Generator`.

Every op takes a batch `x` of shape (B, C, H, W) (uint8 or floating) and returns a new batch of the same
shape and dtype; nothing leaves the device and nothing syncs with the host. Random draws come from
`generator` (on the CPU or on x's device; draws made on another device are moved to x's device), so a run
is repeatable for a given generator state.

- `random_crop(x, padding, generator)`: zero-pad by `padding` on every side, then crop H×W at a random
  offset per sample (the CIFAR recipe, padding 4 at 32 px).
- `random_flip(x, generator)`: mirror left-right with probability 1/2 per sample.
- `rotate(x, degrees)`: counter-clockwise as displayed (row 0 at the top), about the image centre. `degrees`
  is a number or a per-sample tensor (B,). Multiples of 90° on square images use `torch.rot90` (exact); other
  angles `grid_sample` (bilinear, zeros outside, `align_corners=False`). With a per-sample tensor the samples
  at multiples of 90° are taken from exact `rot90`s, selected on the device. uint8 input is rotated in fp32
  and rounded back.
- `augment(x, mode, generator)`: `none` (x itself), `basic` (crop with padding round(H/8), at least 1, then
  flip; meant for natural images: on digits a flip changes the class of some glyphs), `rotate` (a uniform
  random angle in [0°, 360°) per sample).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

MODES = ("none", "basic", "rotate")


def _check(x: Tensor) -> None:
    if x.ndim != 4:
        raise ValueError(f"augment ops take a (B, C, H, W) batch, got shape {tuple(x.shape)}")


def _on(t: Tensor, x: Tensor) -> Tensor:
    return t if t.device == x.device else t.to(x.device, non_blocking=True)


def _gen_device(generator: torch.Generator | None, x: Tensor) -> torch.device:
    return generator.device if generator is not None else x.device


def random_crop(x: Tensor, padding: int, generator: torch.Generator | None = None) -> Tensor:
    """Pad by `padding` (zeros) and crop back to H×W at a random offset per sample."""
    _check(x)
    padding = int(padding)
    if padding < 0:
        raise ValueError("padding must be >= 0")
    if padding == 0 or x.shape[0] == 0:
        return x.clone()
    b, c, h, w = x.shape
    xp = F.pad(x, (padding, padding, padding, padding))
    dev = _gen_device(generator, x)
    oy = _on(torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=dev), x)
    ox = _on(torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=dev), x)
    rows = oy[:, None] + torch.arange(h, device=x.device)[None, :]          # (B, H)
    cols = ox[:, None] + torch.arange(w, device=x.device)[None, :]          # (B, W)
    bi = torch.arange(b, device=x.device)[:, None, None]
    out = xp.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]]    # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


def random_flip(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Mirror each sample left-right with probability 1/2."""
    _check(x)
    dev = _gen_device(generator, x)
    mask = _on(torch.rand(x.shape[0], generator=generator, device=dev) < 0.5, x)
    return torch.where(mask[:, None, None, None], x.flip(-1), x)


def _rotate_grid(x: Tensor, degrees: Tensor) -> Tensor:
    """Bilinear rotation by per-sample `degrees` (B,) with zero fill; fp32 maths, x's dtype back."""
    b, c, h, w = x.shape
    xf = x.float() if not x.is_floating_point() else x
    theta = degrees.to(device=x.device, dtype=torch.float32) * (math.pi / 180.0)
    cos, sin = torch.cos(theta), torch.sin(theta)
    # affine_grid maps output coords (x right, y down, normalised) to input coords; a counter-clockwise
    # rotation on screen by θ samples the input at R(θ)·(x, y) with y pointing down:
    #   x_in =  cos·x − sin·y·(h/w) ,  y_in = sin·x·(w/h) + cos·y   (aspect-corrected for non-square images)
    zeros = torch.zeros_like(cos)
    row0 = torch.stack([cos, -sin * (h / w), zeros], dim=1)
    row1 = torch.stack([sin * (w / h), cos, zeros], dim=1)
    mat = torch.stack([row0, row1], dim=1).to(xf.dtype)
    grid = F.affine_grid(mat, [b, c, h, w], align_corners=False)
    out = F.grid_sample(xf, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if not x.is_floating_point():
        info = torch.iinfo(x.dtype)
        out = out.round().clamp(info.min, info.max).to(x.dtype)
    return out


def rotate(x: Tensor, degrees) -> Tensor:
    """Rotate counter-clockwise by `degrees` (a number or a per-sample tensor); exact at multiples of 90°
    on square images."""
    _check(x)
    b, _, h, w = x.shape
    if not isinstance(degrees, Tensor):
        deg = float(degrees)
        k = round(deg / 90.0)
        if abs(deg - 90.0 * k) < 1e-9 and (h == w or k % 2 == 0):
            return torch.rot90(x, k % 4, dims=(-2, -1)).contiguous()
        return _rotate_grid(x, torch.full((b,), deg, device=x.device))
    deg = degrees.to(x.device).reshape(-1).to(torch.float32)
    if deg.numel() == 1:
        deg = deg.expand(b)
    if deg.numel() != b:
        raise ValueError(f"rotate: {deg.numel()} angles for a batch of {b}")
    out = _rotate_grid(x, deg)
    if h != w:
        return out
    k = torch.round(deg / 90.0)
    exact = (deg - 90.0 * k).abs() < 1e-4
    kk = torch.remainder(k, 4).to(torch.long)
    for r in range(4):
        sel = (exact & (kk == r))[:, None, None, None]
        out = torch.where(sel, torch.rot90(x, r, dims=(-2, -1)), out)
    return out


def augment(x: Tensor, mode: str, generator: torch.Generator | None = None) -> Tensor:
    """Apply the named augmentation (`none`, `basic`, `rotate`) to a batch."""
    if mode not in MODES:
        raise ValueError(f"unknown augment mode {mode!r}; use one of {', '.join(MODES)}")
    _check(x)
    if mode == "none":
        return x
    if mode == "basic":
        padding = max(1, round(x.shape[-2] / 8))
        return random_flip(random_crop(x, padding, generator), generator)
    dev = _gen_device(generator, x)
    angles = _on(torch.rand(x.shape[0], generator=generator, device=dev) * 360.0, x)
    return rotate(x, angles)
