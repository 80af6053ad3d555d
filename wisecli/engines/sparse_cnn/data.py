"""Data of `wise sparse-cnn`: MATLAB-style bicubic resizing (LR generation), the SR readers and built-in photos.

Bicubic [reconstructed, spec §4]: MATLAB `imresize` semantics: Keys' cubic with a = -0.5, the kernel widened by
1/scale when shrinking (antialias), output sample i (1-based) centred at u = i/scale + (1 - 1/scale)/2,
symmetric (mirror) borders, weights normalised to sum 1; separable, applied as two dense matrices in torch.
`F.interpolate(mode="bicubic")` and OpenCV's INTER_CUBIC use a = -0.75 and no antialias, so are not used.

SR data: a folder of HR images (png/jpg/tif, 8 or 16 bit, read with IMREAD_UNCHANGED), or `builtin:skimage-sr`
(scikit-image's sample photos; train/test split of spec §4). Grey is replicated to RGB, alpha dropped; HR is
mod-cropped to the scale; LR = bicubic(HR, 1/scale), made on the fly.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

SKIMAGE_TRAIN = ("astronaut", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "coins", "moon",
                 "text", "brick", "grass", "gravel", "stereo_motorcycle")
SKIMAGE_TEST = ("coffee", "camera", "page", "retina")


def cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel with parameter a (MATLAB: a = -0.5)."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return (((a + 2) * ax3 - (a + 3) * ax2 + 1) * (ax <= 1)
            + (a * ax3 - 5 * a * ax2 + 8 * a * ax - 4 * a) * ((ax > 1) & (ax <= 2)))


def contributions(in_len: int, out_len: int, scale: float, antialias: bool = True) -> np.ndarray:
    """The (out_len, in_len) resampling matrix of MATLAB's imresize along one axis."""
    width = 4.0
    if scale < 1 and antialias:
        def h(x):
            return scale * cubic(scale * x)
        width = width / scale
    else:
        h = cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    P = int(math.ceil(width)) + 2
    ind = left[:, None] + np.arange(P)[None, :]
    w = h(u[:, None] - ind)
    w = w / w.sum(1, keepdims=True)
    aux = np.concatenate([np.arange(1, in_len + 1), np.arange(in_len, 0, -1)])
    ind = aux[((ind - 1) % len(aux)).astype(np.int64)] - 1
    M = np.zeros((out_len, in_len))
    np.add.at(M, (np.repeat(np.arange(out_len), P), ind.ravel()), w.ravel())
    return M


@lru_cache(maxsize=64)
def _matrix(in_len: int, out_len: int, scale: float) -> np.ndarray:
    return contributions(in_len, out_len, scale)


def imresize(img: Tensor, scale: float | None = None, size: tuple[int, int] | None = None) -> Tensor:
    """MATLAB-style bicubic resize of (..., H, W) float images by `scale` (output ceil(H*scale)) or to `size`
    (then each axis' scale is out/in). No rounding or clipping (the caller quantises)."""
    H, W = img.shape[-2:]
    if size is None:
        size = (int(math.ceil(H * scale)), int(math.ceil(W * scale)))
    oh, ow = size
    sh = scale if scale is not None else oh / H
    sw = scale if scale is not None else ow / W
    Mh = torch.as_tensor(_matrix(H, oh, float(sh)), dtype=img.dtype, device=img.device)
    Mw = torch.as_tensor(_matrix(W, ow, float(sw)), dtype=img.dtype, device=img.device)
    return torch.einsum("oh,...hw,pw->...op", Mh, img, Mw)


def bicubic_macs(out_values: int) -> int:
    """Counted MACs of a bicubic resize: 16 per output value (spec §2.4)."""
    return 16 * out_values


def to_rgb(a: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """(H, W, 3) from grey (replicated) or RGBA (alpha dropped), with the warnings that applied."""
    notes = []
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
        notes.append("grey")
    elif a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
        notes.append("grey")
    elif a.shape[2] == 4:
        a = a[..., :3]
        notes.append("alpha")
    return a, notes


def read_image(path: Path) -> tuple[np.ndarray, int, list[str]]:
    """(RGB float32 in [0, 1], bit depth 8 or 16, notes) of an image file; unreadable: InputError."""
    import cv2

    from wisecli.cli.errors import InputError

    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.size == 0:
        raise InputError(f"cannot read image {path}", hint="give a PNG, JPEG, TIFF or BMP file")
    if raw.ndim == 3:
        raw = raw[..., ::-1] if raw.shape[2] == 3 else raw[..., [2, 1, 0, 3]] if raw.shape[2] == 4 else raw
    bits = 16 if raw.dtype == np.uint16 else 8
    a = raw.astype(np.float32) / (65535.0 if bits == 16 else 255.0)
    a, notes = to_rgb(a)
    return np.ascontiguousarray(a), bits, notes


def skimage_photo(name: str) -> np.ndarray:
    """A scikit-image sample photo as RGB float32 in [0, 1] (stereo_motorcycle: the left image)."""
    from skimage import data as skd

    a = getattr(skd, name)()
    if name == "stereo_motorcycle":
        a = a[0]
    a = np.asarray(a)
    a = a.astype(np.float32) / (65535.0 if a.dtype == np.uint16 else 255.0 if a.dtype == np.uint8 else 1.0)
    return to_rgb(a)[0]


def hr_images(source: str) -> list[tuple[str, np.ndarray]]:
    """[(name, HR RGB float)] of `builtin:skimage-sr[:train|test]` or an HR folder."""
    from wisecli.cli.errors import InputError

    if source.startswith("builtin:"):
        name, _, part = source[len("builtin:"):].partition(":")
        if name != "skimage-sr" or part not in ("", "train", "test"):
            raise InputError(f"unknown built-in SR data {source!r}", hint="use builtin:skimage-sr[:train|test]")
        names = SKIMAGE_TEST if part == "test" else SKIMAGE_TRAIN
        return [(n, skimage_photo(n)) for n in names]
    folder = Path(source)
    if not folder.is_dir():
        raise InputError(f"SR data not found: {source}", hint="give a folder of HR images or builtin:skimage-sr")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"))
    if not files:
        raise InputError(f"no images in {folder}", hint="PNG, JPEG, TIFF or BMP files")
    return [(p.stem, read_image(p)[0]) for p in files]


def mod_crop(a: np.ndarray, scale: int) -> np.ndarray:
    """HR cropped to a multiple of the scale (top-left kept)."""
    H, W = a.shape[:2]
    return a[: H - H % scale, : W - W % scale]


def make_lr(hr: Tensor, scale: int) -> Tensor:
    """LR = MATLAB bicubic(HR, 1/scale), quantised to 8 bits as a saved LR image would be."""
    return (imresize(hr, 1.0 / scale) * 255).round().clamp(0, 255) / 255
