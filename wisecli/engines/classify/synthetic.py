"""Synthetic data for tests, conformance examples and gates: seeded stroke glyphs.

Each class is a glyph of 3 straight strokes whose end points are drawn once per class from the class's seed; each
image jitters the end points (std 0.04 of the half-width), scales by U(0.85, 1.1), shifts by U(-0.08, 0.08) and
renders anti-aliased strokes (width 0.12) by distance to the segments, in torch. `upright=False` rotates each
glyph by a uniform angle in [0, 360). Images are uint8 (N, 1, S, S) (or 3 channels with `channels=3`).
"""

from __future__ import annotations

import math

import numpy as np
import torch


def glyph_templates(num_classes: int, seed: int = 0, strokes: int = 3) -> torch.Tensor:
    """(C, strokes, 2 ends, 2 coords) end points in [-0.7, 0.7]^2, one template per class."""
    g = torch.Generator().manual_seed(10_007 + seed)
    return (torch.rand(num_classes, strokes, 2, 2, generator=g) * 1.4 - 0.7)


def glyphs(n_per_class: int | list[int], num_classes: int = 10, size: int = 16, *, seed: int = 0,
           upright: bool = True, channels: int = 1, template_seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(X uint8 (N, channels, size, size), y int64 (N,)), classes in order, seeded."""
    counts = [n_per_class] * num_classes if isinstance(n_per_class, int) else list(n_per_class)
    y = torch.cat([torch.full((c,), i, dtype=torch.long) for i, c in enumerate(counts)])
    n = len(y)
    g = torch.Generator().manual_seed(seed)
    pts = glyph_templates(num_classes, template_seed)[y]  # (N, S, 2, 2)
    pts = pts + 0.04 * torch.randn(pts.shape, generator=g)
    pts = pts * (0.85 + 0.25 * torch.rand(n, 1, 1, 1, generator=g))
    pts = pts + (torch.rand(n, 1, 1, 2, generator=g) - 0.5) * 0.16
    if not upright:
        a = torch.rand(n, generator=g) * 2 * math.pi
        rot = torch.stack([torch.stack([a.cos(), -a.sin()], -1), torch.stack([a.sin(), a.cos()], -1)], -2)  # (N,2,2)
        pts = torch.einsum("nij,nsej->nsei", rot, pts)
    lin = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    yy, xx = torch.meshgrid(lin, lin, indexing="ij")
    grid = torch.stack([xx, yy], -1).reshape(1, 1, -1, 2)  # (1,1,P,2)
    a, b = pts[:, :, 0:1, :], pts[:, :, 1:2, :]  # (N,S,1,2)
    ab = b - a
    t = (((grid - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-8)).clamp(0, 1)  # (N,S,P)
    d = (grid - (a + t[..., None] * ab)).norm(dim=-1).amin(1)  # (N,P)
    aa = 2.0 / size
    img = (1 - ((d - 0.06) / aa).clamp(0, 1)).reshape(n, 1, size, size)
    x = (img * 255).round().to(torch.uint8).repeat(1, channels, 1, 1)
    return x.numpy(), y.numpy()


def write_folder(root, n_per_class: int = 3, num_classes: int = 3, size: int = 16, *, seed: int = 0,
                 suffix: str = ".png") -> list:
    """Write glyphs as a class folder `root/<class>/<i>.png` (RGB); returns the written paths."""
    from pathlib import Path

    from wisecli.runtime.io.images import write_image

    x, y = glyphs(n_per_class, num_classes, size, seed=seed, channels=3)
    paths = []
    for i, (img, c) in enumerate(zip(x, y)):
        p = Path(root) / f"class{c}" / f"img{i:04d}{suffix}"
        p.parent.mkdir(parents=True, exist_ok=True)
        write_image(p, img.transpose(1, 2, 0))
        paths.append(p)
    return paths
