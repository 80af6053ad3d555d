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

The MoCo v2 view ops (added for `contrastive`; Chen, Fan, Girshick, He, "Improved baselines with momentum
contrastive learning", arXiv 2003.04297; cutmix: Yun et al., ICCV 2019; mixup: Zhang et al., ICLR 2018).
They take floating images in [0, 1] (use `to_float`) and keep everything per sample on the device:

- `resized_crop(x, boxes, size)`: crop per-sample boxes (B, 4) = (x0, y0, w, h) in pixels (sub-pixel boxes
  allowed) and resize to size×size by `affine_grid`/`grid_sample` (bilinear, `align_corners=False`, border
  replicate): the sample positions are exactly those of OpenCV's `INTER_LINEAR` resize of the crop.
- `random_resized_crop(x, size, scale, ratio, generator)`: area fraction ~ U(scale), log aspect ~ U(log ratio);
  [choice] a box too large for the image is clipped to it (no 10-try rejection loop as torchvision: one draw,
  no host sync); its offset is uniform over the positions that keep it inside.
- `color_jitter(x, brightness, contrast, saturation, hue, p, generator)`: applied to each sample with
  probability p, factors ~ U(1 − s, 1 + s) (hue: an angle ~ U(−hue, hue)·2π); [choice] fixed order brightness,
  contrast, saturation, hue (torchvision permutes it), hue as a rotation of the chroma plane in YIQ (an affine
  map per sample, not HSV), clamped to [0, 1] after each; 1-channel images get brightness and contrast only.
- `grayscale(x, p, generator)`: ITU-R BT.601 luma 0.299 R + 0.587 G + 0.114 B, copied to the 3 channels.
- `gaussian_blur(x, sigma, p, generator)` / `blur_kernels(sigma, radius)`: per-sample σ (a tensor (B,) or a
  range (lo, hi) drawn uniformly), normalised 1-D kernels of radius ceil(3 σ_max) shared by the batch,
  applied as a grouped separable convolution with reflect padding.
- `cutmix(a, b, lam0, generator)`: a box of area fraction 1 − λ₀ of b pasted into a, centre uniform over the
  image, clipped to it; returns (mixed, λ) with λ the exact kept fraction of a after clipping.
- `mixup(a, b, lam)`: λ a + (1 − λ) b, λ a number or per sample.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

MODES = ("none", "basic", "rotate")
LUMA_601 = (0.299, 0.587, 0.114)


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


# ---------------------------------------------------------------- MoCo v2 view ops (contrastive)

def to_float(x: Tensor) -> Tensor:
    """uint8 (or floating) images as float32 in [0, 1]."""
    _check(x)
    return x.float() / 255.0 if not x.is_floating_point() else x


def _per_sample(value, b: int, x: Tensor) -> Tensor:
    if isinstance(value, Tensor):
        t = value.to(device=x.device, dtype=torch.float32).reshape(-1)
        return t.expand(b) if t.numel() == 1 else t
    return torch.full((b,), float(value), device=x.device)


def resized_crop(x: Tensor, boxes: Tensor, size: int) -> Tensor:
    """Crop boxes (B, 4) = (x0, y0, w, h) in pixels and resize each to size×size (bilinear)."""
    _check(x)
    b, c, h, w = x.shape
    xf = to_float(x)
    bx = boxes.to(device=x.device, dtype=torch.float32)
    x0, y0, bw, bh = bx.unbind(1)
    zeros = torch.zeros_like(x0)
    # output normalised u maps to input normalised (bw/W) u + (2 x0 + bw)/W − 1 (align_corners=False)
    row0 = torch.stack([bw / w, zeros, (2 * x0 + bw) / w - 1], dim=1)
    row1 = torch.stack([zeros, bh / h, (2 * y0 + bh) / h - 1], dim=1)
    grid = F.affine_grid(torch.stack([row0, row1], 1).to(xf.dtype), [b, c, size, size], align_corners=False)
    return F.grid_sample(xf, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_boxes(b: int, h: int, w: int, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3),
                 generator: torch.Generator | None = None, device=None) -> Tensor:
    """Random resized-crop boxes (B, 4) = (x0, y0, w, h) in pixels (see the module docstring)."""
    dev = generator.device if generator is not None else (device or "cpu")
    u = torch.rand(b, 4, generator=generator, device=dev)
    area = (scale[0] + (scale[1] - scale[0]) * u[:, 0]) * (h * w)
    logr = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[:, 1]
    r = torch.exp(logr)
    bw = torch.sqrt(area * r).clamp(1.0, float(w))
    bh = torch.sqrt(area / r).clamp(1.0, float(h))
    x0 = u[:, 2] * (w - bw)
    y0 = u[:, 3] * (h - bh)
    out = torch.stack([x0, y0, bw, bh], 1)
    return out if device is None else out.to(device, non_blocking=True)


def random_resized_crop(x: Tensor, size: int, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3),
                        generator: torch.Generator | None = None) -> Tensor:
    """A random resized crop per sample (MoCo v2: scale 0.2–1, ratio 3/4–4/3), float output in [0, 1]."""
    _check(x)
    b, _, h, w = x.shape
    return resized_crop(x, random_boxes(b, h, w, scale, ratio, generator, device=x.device), size)


def _gray(x: Tensor) -> Tensor:
    wts = torch.tensor(LUMA_601, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * wts).sum(1, keepdim=True)


def color_jitter(x: Tensor, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4,
                 hue: float = 0.1, p: float = 0.8, generator: torch.Generator | None = None) -> Tensor:
    """Per-sample colour jitter of float images in [0, 1] (module docstring); strength 0 is the identity."""
    _check(x)
    b, c = x.shape[:2]
    dev = _gen_device(generator, x)
    u = _on(torch.rand(b, 5, generator=generator, device=dev), x)
    on = (u[:, 4] < p).to(x.dtype)

    def factor(s: float, col: int) -> Tensor:
        f = 1.0 + s * (2 * u[:, col] - 1)
        return (on * f + (1 - on)).view(b, 1, 1, 1).to(x.dtype)

    out = x
    if brightness:
        out = (out * factor(brightness, 0)).clamp(0, 1)
    if contrast:
        g = _gray(out) if c == 3 else out
        mean = g.mean(dim=(1, 2, 3), keepdim=True)
        out = ((out - mean) * factor(contrast, 1) + mean).clamp(0, 1)
    if c != 3:
        return out
    if saturation:
        g = _gray(out)
        out = ((out - g) * factor(saturation, 2) + g).clamp(0, 1)
    if hue:
        theta = (hue * (2 * u[:, 3] - 1) * 2 * math.pi * on).to(x.dtype)
        yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
                           device=x.device, dtype=x.dtype)
        inv = torch.linalg.inv(yiq)
        cos, sin = torch.cos(theta), torch.sin(theta)
        rot = torch.zeros(b, 3, 3, device=x.device, dtype=x.dtype)
        rot[:, 0, 0] = 1
        rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
        m = inv @ rot @ yiq                                                   # (B, 3, 3)
        out = torch.einsum("bij,bjhw->bihw", m, out).clamp(0, 1)
    return out


def grayscale(x: Tensor, p: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    """ITU-R 601 grayscale of 3-channel images with probability p per sample (kept 3 channels)."""
    _check(x)
    if x.shape[1] != 3:
        return x
    dev = _gen_device(generator, x)
    on = _on(torch.rand(x.shape[0], generator=generator, device=dev) < p, x)
    return torch.where(on[:, None, None, None], _gray(x).expand_as(x), x)


def blur_kernels(sigma: Tensor, radius: int) -> Tensor:
    """Normalised 1-D Gaussian kernels (B, 2 radius + 1), one per σ."""
    t = torch.arange(-radius, radius + 1, device=sigma.device, dtype=torch.float32)
    k = torch.exp(-0.5 * (t[None, :] / sigma.float()[:, None].clamp_min(1e-6)) ** 2)
    return k / k.sum(1, keepdim=True)


def gaussian_blur(x: Tensor, sigma=(0.1, 2.0), p: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """Gaussian blur with a per-sample σ (a tensor (B,) or a range drawn uniformly), applied with probability p."""
    _check(x)
    b, c, h, w = x.shape
    dev = _gen_device(generator, x)
    u = _on(torch.rand(b, 2, generator=generator, device=dev), x)
    if isinstance(sigma, Tensor):
        sig = _per_sample(sigma, b, x)
        radius = int(math.ceil(3 * float(sigma.max())))
    else:
        lo, hi = float(sigma[0]), float(sigma[1])
        sig = lo + (hi - lo) * u[:, 0]
        radius = int(math.ceil(3 * hi))
    radius = max(1, min(radius, (min(h, w) - 1)))
    k = blur_kernels(sig, radius).to(x.dtype)                                  # (B, K)
    kk = k.repeat_interleave(c, 0)                                             # (B C, K)
    y = x.reshape(1, b * c, h, w)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="reflect"), kk[:, None, None, :], groups=b * c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="reflect"), kk[:, None, :, None], groups=b * c)
    y = y.reshape(b, c, h, w)
    on = (u[:, 1] < p)[:, None, None, None]
    return torch.where(on, y, x)


def cutmix_boxes(b: int, h: int, w: int, lam0: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Integer boxes (B, 4) = (y0, y1, x0, x1) of area fraction 1 − λ₀ around a uniform centre, clipped."""
    dev = lam0.device
    g = generator.device if generator is not None else dev
    u = _on(torch.rand(b, 2, generator=generator, device=g), lam0)
    cut = torch.sqrt((1 - lam0.float()).clamp(0, 1))
    ch, cw = torch.round(cut * h), torch.round(cut * w)
    cy, cx = torch.floor(u[:, 0] * h), torch.floor(u[:, 1] * w)
    y0 = (cy - torch.div(ch, 2, rounding_mode="floor")).clamp(0, h)
    y1 = (cy - torch.div(ch, 2, rounding_mode="floor") + ch).clamp(0, h)
    x0 = (cx - torch.div(cw, 2, rounding_mode="floor")).clamp(0, w)
    x1 = (cx - torch.div(cw, 2, rounding_mode="floor") + cw).clamp(0, w)
    return torch.stack([y0, y1, x0, x1], 1).long()


def cutmix(a: Tensor, b: Tensor, lam0=None, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Paste a box of b (area fraction 1 − λ₀, λ₀ ~ U(0, 1) when None) into a; returns (mixed, λ) with λ (B,)
    the exact fraction of a's pixels kept after clipping the box to the image."""
    _check(a)
    n, _, h, w = a.shape
    if lam0 is None:
        dev = _gen_device(generator, a)
        lam0 = _on(torch.rand(n, generator=generator, device=dev), a)
    lam0 = _per_sample(lam0, n, a)
    box = cutmix_boxes(n, h, w, lam0, generator)
    rows = torch.arange(h, device=a.device)
    cols = torch.arange(w, device=a.device)
    inside = ((rows[None, :, None] >= box[:, 0, None, None]) & (rows[None, :, None] < box[:, 1, None, None]) &
              (cols[None, None, :] >= box[:, 2, None, None]) & (cols[None, None, :] < box[:, 3, None, None]))
    mixed = torch.where(inside[:, None], b, a)
    lam = 1 - inside.flatten(1).float().mean(1)
    return mixed, lam


def mixup(a: Tensor, b: Tensor, lam) -> Tensor:
    """λ a + (1 − λ) b with λ a number or a per-sample tensor (B,)."""
    _check(a)
    lam = _per_sample(lam, a.shape[0], a).to(a.dtype).view(-1, 1, 1, 1)
    return lam * a + (1 - lam) * b
