"""Data on the device for `wise classify`: the reader is `wisecli.runtime.io.labeled.read_labeled` (folder, CSV,
.npz, `builtin:`); this module turns a `Labeled` set into tensors, fits the one normalisation, makes the stratified
validation split when the data has none, and serves in-memory batches (one uint8 device tensor, spec §7).

Choices [reconstructed]:
- Normalisation: per channel (images, on x/255) or per feature (feature vectors) mean and std over the train part;
  stored in the checkpoint (`normalize`) and used by predict/evaluate. A std under 1e-6 is taken as 1.
- No validation part in the data and no `--val`: a stratified `val_fraction` (10 %) of train, at least one image of
  each class with 2 or more, seeded; recorded in `split.json`.
- The loader (`runtime.loaders`) draws a seeded permutation per epoch (`set_epoch`), drops the last incomplete
  batch only when it would be smaller than 2 (BatchNorm), and gives each rank its slice of the global batch.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import Tensor

from wisecli.cli.errors import InputError


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train index, val index): `fraction` of each class (rounded, at least 1 of a class with >= 2)."""
    rng = np.random.default_rng(seed)
    tr, va = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        k = int(round(fraction * len(idx)))
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        else:
            k = 0
        va.append(idx[:k])
        tr.append(idx[k:])
    return np.sort(np.concatenate(tr)), np.sort(np.concatenate(va))


def as_tensor(x: np.ndarray) -> Tensor:
    """The raw data as a tensor (uint8 images stay uint8; features float32)."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    return t if t.dtype == torch.uint8 else t.float()


def to_float(x: Tensor) -> Tensor:
    """uint8 images to [0, 1] floats; features as they are."""
    return x.float() / 255 if x.dtype == torch.uint8 else x.float()


def fit_normalize(x: Tensor, kind: str) -> dict:
    """{"mean": [...], "std": [...]} per channel (images) or per feature."""
    xf = to_float(x)
    dims = (0, 2, 3) if kind == "image" else (0,)
    mean = xf.mean(dim=dims)
    std = xf.std(dim=dims) if xf.shape[0] > 1 else torch.ones_like(mean)
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    return {"mean": mean.tolist(), "std": std.tolist()}


def normalizer(norm: dict, kind: str, device) -> callable:
    """x (uint8 or float, on device) -> normalised float."""
    mean = torch.tensor(norm["mean"], device=device)
    std = torch.tensor(norm["std"], device=device)
    if kind == "image":
        mean, std = mean.view(1, -1, 1, 1), std.view(1, -1, 1, 1)

    def apply(x: Tensor) -> Tensor:
        return (to_float(x) - mean) / std

    return apply


def match_input(x: Tensor, kind: str, channels: int, size: int | None) -> Tensor:
    """Images converted to the model's channels (RGB -> gray by the mean, gray -> RGB by repetition) and size
    (bilinear, on floats; uint8 comes back as uint8). Features must have the model's dimension."""
    if kind != "image":
        if x.ndim != 2 or (size is not None and x.shape[1] != size):
            raise InputError(f"features have {x.shape[-1]} columns, the model takes {size}",
                             hint="give features with the columns the model was trained on")
        return x
    if x.ndim != 4:
        raise InputError(f"images of shape {tuple(x.shape)} for an image model", hint="give images, not features")
    was_u8 = x.dtype == torch.uint8
    if x.shape[1] != channels:
        if channels == 1:
            x = x.float().mean(1, keepdim=True)
        elif x.shape[1] == 1:
            x = x.repeat(1, channels, 1, 1)
        else:
            raise InputError(f"images have {x.shape[1]} channels, the model takes {channels}", hint="convert them")
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = torch.nn.functional.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False,
                                            antialias=True)
    if was_u8 and x.dtype != torch.uint8:
        x = x.round().clamp(0, 255).to(torch.uint8)
    return x


@contextlib.contextmanager
def cpu_threads(device, n: int):
    """Run the block with `n` torch intra-op threads on the CPU (0: leave torch's count), restored afterwards.
    Small nets on a shared CPU train 5-20x faster on one thread than on contended ones (the demo and gates use 1)."""
    if device.type != "cpu" or n <= 0:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def load_data(source, cfg: dict, seed: int, *, part: str | None = None):
    """`read_labeled` with the settings of `cfg` (an InputError names the bad file)."""
    from wisecli.runtime.io.labeled import read_labeled

    imb = cfg.get("data.imbalance")
    return read_labeled(str(source), image_size=None if cfg.get("image_size") in (None, "", 0) else int(cfg["image_size"]),
                        layout=cfg.get("layout", "nchw"), seed=seed,
                        imbalance=None if imb in (None, "", "none") else float(imb),
                        val_fraction=float(cfg.get("val_fraction", 0.1)))
