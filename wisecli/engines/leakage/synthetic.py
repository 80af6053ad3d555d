"""Built-in data with a planted private attribute (spec §4): `digits` (real, scikit-learn's bundled 8×8 digits)
and `shapes32` (synthetic 3×32×32). Both return float32 images in [0, 1], task labels, client ids and the
attribute s (1 for the clients that carry the planted property).

- `digits` [reconstructed]: samples dealt to `clients` clients at random (IID); even client ids carry the
  property: `thick` x' = max(x, ½·dilate(x)) with a plus-shaped 3×3 grey dilation (scipy `grey_dilation`),
  `patch` +0.25 on the top-left 2×2 corner, `gain` ×1.3 clipped to 1. The scikit-learn test part (20 % per
  class, fixed seed) is kept aside unplanted, for the global accuracy.
- `shapes32` [reconstructed]: class = one of 10 shapes (disk, square, triangle, cross, ring, diamond, bars,
  diagonal, frame, dot grid) in a random colour on a smooth background (Gaussian-filtered noise, σ = 3); the
  property = a brighter 16×16 patch (+0.3) at a random place. 20 % held out as the test part.
"""

from __future__ import annotations

import numpy as np

PLANTED = ("thick", "patch", "gain")


def plant(x: np.ndarray, kind: str) -> np.ndarray:
    """The planted property applied to images x (N, C, H, W) in [0, 1]."""
    if kind == "thick":
        from scipy.ndimage import grey_dilation

        plus = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)
        fp = np.zeros((1, 1, 3, 3), bool)
        fp[0, 0] = plus
        return np.maximum(x, 0.5 * grey_dilation(x, footprint=fp)).astype(np.float32)
    if kind == "patch":
        out = x.copy()
        out[..., :2, :2] = np.clip(out[..., :2, :2] + 0.25, 0, 1)
        return out
    if kind == "gain":
        return np.clip(x * 1.3, 0, 1).astype(np.float32)
    raise ValueError(kind)


def deal(n: int, clients: int, rng: np.random.Generator) -> np.ndarray:
    """IID client ids: a seeded permutation dealt round-robin."""
    out = np.empty(n, dtype=np.int64)
    out[rng.permutation(n)] = np.arange(n) % clients
    return out


def digits(clients: int = 10, planted: str = "thick", seed: int = 0) -> dict:
    """The digits audit set (see the module docstring): {X, y, s, client, X_test, y_test, classes}."""
    from wisecli.runtime.io.labeled import read_labeled

    lab = read_labeled("builtin:digits", val_fraction=0.0)
    X = lab.X.astype(np.float32) / 255.0
    test = lab.split["test"]
    train = np.sort(np.concatenate([lab.split[p] for p in lab.split if p != "test"]))
    rng = np.random.default_rng(seed)
    Xtr, ytr = X[train], lab.y[train]
    client = deal(len(train), clients, rng)
    s = (client % 2 == 0).astype(np.int64)
    Xtr[s == 1] = plant(Xtr[s == 1], planted)
    return {"X": Xtr, "y": ytr, "s": s, "client": client, "X_test": X[test], "y_test": lab.y[test],
            "classes": list(lab.classes)}


def _shape_mask(k: int, size: int, rng: np.random.Generator) -> np.ndarray:
    r = size * rng.uniform(0.22, 0.32)
    cy, cx = size / 2 + rng.uniform(-3, 3, 2)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    ad, ax = np.abs(dy), np.abs(dx)
    if k == 0:
        return dy ** 2 + dx ** 2 <= r ** 2
    if k == 1:
        return (ad <= r * 0.8) & (ax <= r * 0.8)
    if k == 2:
        return (dy <= r * 0.7) & (dy >= -r) & (ax <= (dy + r) * 0.6)
    if k == 3:
        return ((ad <= r * 0.25) & (ax <= r)) | ((ax <= r * 0.25) & (ad <= r))
    if k == 4:
        d = np.sqrt(dy ** 2 + dx ** 2)
        return (d <= r) & (d >= r * 0.6)
    if k == 5:
        return ad + ax <= r
    if k == 6:
        return (ad <= r) & (ax <= r) & ((np.floor((yy - cy + r) / (r / 2.5)) % 2) == 0)
    if k == 7:
        return (np.abs(dy - dx) <= r * 0.3) & (ad <= r) & (ax <= r)
    if k == 8:
        return (ad <= r) & (ax <= r) & ~((ad <= r * 0.6) & (ax <= r * 0.6))
    return (ad <= r) & (ax <= r) & (np.floor(yy / 4) % 2 == 0) & (np.floor(xx / 4) % 2 == 0)


def shapes32(n: int = 1000, clients: int = 10, seed: int = 0, size: int = 32) -> dict:
    """The synthetic audit set (see the module docstring): {X, y, s, client, X_test, y_test, classes}."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    total = int(round(n / 0.8))
    X = np.empty((total, 3, size, size), np.float32)
    y = rng.integers(0, 10, total)
    for i in range(total):
        bg = gaussian_filter(rng.standard_normal((3, size, size)), sigma=(0, 3, 3))
        bg = 0.35 + 0.15 * bg / (np.abs(bg).max() + 1e-9)
        m = _shape_mask(int(y[i]), size, rng)
        col = rng.uniform(0.5, 1.0, 3)
        img = np.where(m[None], col[:, None, None], bg)
        X[i] = img
    ntr = n
    client = deal(ntr, clients, rng)
    s = (client % 2 == 0).astype(np.int64)
    Xtr = X[:ntr]
    for i in np.flatnonzero(s):
        r, c = rng.integers(0, size - 16 + 1, 2)
        Xtr[i, :, r:r + 16, c:c + 16] += 0.3
    np.clip(Xtr, 0, 1, out=Xtr)
    return {"X": Xtr, "y": y[:ntr].astype(np.int64), "s": s, "client": client, "X_test": X[ntr:],
            "y_test": y[ntr:].astype(np.int64), "classes": [str(i) for i in range(10)]}
