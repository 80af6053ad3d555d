"""Overlays of saliency maps, drawn with numpy and written through `runtime.io.images.write_image` (atomic), so a
batch does not pay for matplotlib. Maps are normalised only here (the `.npy` keep probability units).

- RISE `<stem>.c<class>.png`: the image and a heat map (black-red-yellow-white ramp of the map scaled to its
  min..max), alpha 0.5.
- MC-RISE `<stem>.c<class>.colors.png`: one panel per colour side by side; a diverging map (blue < 0 < red,
  white at 0) with symmetric limits ±max|S| over the colours of the class, blended with the gray image, and a
  swatch of the colour as a bar on top of each panel (the panel's "title").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _heat(v: np.ndarray) -> np.ndarray:
    v = np.clip(v, 0, 1)[..., None]
    r = np.clip(3 * v, 0, 1)
    g = np.clip(3 * v - 1, 0, 1)
    b = np.clip(3 * v - 2, 0, 1)
    return np.concatenate([r, g, b], -1)


def _diverging(v: np.ndarray) -> np.ndarray:
    """v in [-1, 1] -> blue (−1) .. white (0) .. red (+1)."""
    v = np.clip(v, -1, 1)[..., None]
    pos, neg = np.clip(v, 0, 1), np.clip(-v, 0, 1)
    r = 1 - neg
    g = 1 - pos - neg
    b = 1 - pos
    return np.concatenate([r, g, b], -1)


def _rgb(img8: np.ndarray) -> np.ndarray:
    img = img8.astype(np.float32) / 255
    return np.repeat(img, 3, -1) if img.shape[-1] == 1 else img


def _scale_up(a: np.ndarray, min_side: int = 128) -> np.ndarray:
    f = max(1, int(np.ceil(min_side / min(a.shape[:2]))))
    return np.repeat(np.repeat(a, f, 0), f, 1) if f > 1 else a


def overlay_rise(path: Path, img8: np.ndarray, sal: np.ndarray) -> Path:
    from wisecli.runtime.io.images import write_image

    lo, hi = float(sal.min()), float(sal.max())
    heat = _heat((sal - lo) / (hi - lo) if hi > lo else np.zeros_like(sal))
    out = 0.5 * _rgb(img8) + 0.5 * heat
    return write_image(path, _scale_up((out * 255).round().astype(np.uint8)))


def overlay_mcrise(path: Path, img8: np.ndarray, sal_k: np.ndarray, colors) -> Path:
    """`sal_k` (K, H, W) of one class."""
    from wisecli.runtime.io.images import write_image

    lim = float(np.abs(sal_k).max()) or 1.0
    gray = _rgb(img8).mean(-1, keepdims=True)
    h, w = sal_k.shape[1:]
    bar = max(2, h // 8)
    panels = []
    for s, c in zip(sal_k, colors):
        p = 0.7 * _diverging(s / lim) + 0.3 * gray
        sw = np.broadcast_to(np.asarray(c, np.float32) / 255, (bar, w, 3))
        sep = np.ones((h + bar, 1, 3), np.float32) * 0.5
        panels += [np.concatenate([sw, p], 0), sep]
    out = np.concatenate(panels[:-1], 1)
    return write_image(path, _scale_up((np.clip(out, 0, 1) * 255).round().astype(np.uint8)))
