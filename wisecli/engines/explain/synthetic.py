"""Demo canvases with a known answer [reconstructed] (spec §4).

"Two-colour digits": a 32x32 black RGB canvas with two real digits (from `builtin:digits` or `builtin:mnist5k`),
each up-sampled to 12x12 (bilinear) and put at random non-overlapping places (two different
quadrants of the canvas, at a random offset of 0-4 px inside each, so a small-cnn learns in seconds); one is painted red, the other green
(stroke intensity x colour, with a mild per-canvas jitter of the colour's strength and a little noise). The label is
the **red** digit; the green one is a distractor of another class. Train and test canvases draw from disjoint digit
images (the reader's train and test parts). The truth is known: the red digit's box (pointing game) and "painting
the red digit green lowers the score" (MC-RISE).

"photos": 8 classes = 8 scikit-image sample photos, 48x48 random crops (train crops from the top 60 % of each
photo's rows, test crops from the bottom 40 %); only deletion/insertion apply.
"""

from __future__ import annotations

import numpy as np

SIZE = 32
DIGIT = 12
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "retina", "hubble_deep_field", "immunohistochemistry",
          "colorwheel")


def _digits(source: str, part: str):
    from wisecli.runtime.io.labeled import read_labeled

    data = read_labeled(f"builtin:{source}:{part}")
    X = np.asarray(data.X)
    if X.ndim == 4:
        X = X[:, 0]
    return X.astype(np.float32) / 255.0, np.asarray(data.y)


def _up(d: np.ndarray) -> np.ndarray:
    import torch

    t = torch.from_numpy(d)[None, None]
    return torch.nn.functional.interpolate(t, size=(DIGIT, DIGIT), mode="bilinear", align_corners=False)[0, 0].numpy()


def canvases(n: int, *, source: str = "digits", part: str = "train", seed: int = 0) -> dict:
    """{"x": (n, 3, 32, 32) float32 in [0, 1], "y": (n,) red digit's class, "red_box": (n, 4) x0, y0, x1, y1
    inclusive, "red_mask": (n, 32, 32) bool stroke pixels of the red digit, "classes"}."""
    X, Y = _digits(source, part)
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 3, SIZE, SIZE), np.float32)
    y = np.zeros(n, np.int64)
    boxes = np.zeros((n, 4), np.int64)
    strokes = np.zeros((n, SIZE, SIZE), bool)
    for i in range(n):
        a = int(rng.integers(len(X)))
        others = np.flatnonzero(Y != Y[a])
        b = int(others[rng.integers(len(others))])
        qr, qg = rng.choice(4, 2, replace=False)              # two different quadrants, jittered inside
        (ry, rx), (gy, gx) = [(16 * (q // 2) + int(rng.integers(0, 16 - DIGIT + 1)),
                               16 * (q % 2) + int(rng.integers(0, 16 - DIGIT + 1))) for q in (qr, qg)]
        red, green = _up(X[a]), _up(X[b])
        sr, sg = rng.uniform(0.75, 1.0, 2)
        x[i, 0, ry:ry + DIGIT, rx:rx + DIGIT] = np.maximum(x[i, 0, ry:ry + DIGIT, rx:rx + DIGIT], red * sr)
        x[i, 1, gy:gy + DIGIT, gx:gx + DIGIT] = np.maximum(x[i, 1, gy:gy + DIGIT, gx:gx + DIGIT], green * sg)
        y[i] = Y[a]
        boxes[i] = (rx, ry, rx + DIGIT - 1, ry + DIGIT - 1)
        strokes[i, ry:ry + DIGIT, rx:rx + DIGIT] = red > 0.3
    x = np.clip(x + rng.normal(0, 0.02, x.shape).astype(np.float32), 0, 1)
    return {"x": x, "y": y, "red_box": boxes, "red_mask": strokes, "classes": [str(c) for c in range(10)]}


def photo_crops(n: int, *, part: str = "train", seed: int = 0, size: int = 48) -> dict:
    """{"x": (n, 3, size, size) float32, "y", "classes"}: crops of the 8 sample photos (see the docstring)."""
    from skimage import data as skdata

    rng = np.random.default_rng(seed)
    imgs = []
    for name in PHOTOS:
        im = np.asarray(getattr(skdata, name)())
        im = np.repeat(im[..., None], 3, -1) if im.ndim == 2 else im[..., :3]
        imgs.append(im.astype(np.float32) / (255.0 if im.max() > 1 else 1.0))
    x = np.zeros((n, 3, size, size), np.float32)
    y = rng.integers(0, len(PHOTOS), n)
    for i in range(n):
        im = imgs[y[i]]
        h, w = im.shape[:2]
        cut = int(0.6 * h)
        r0, r1 = (0, cut - size) if part == "train" else (cut, h - size)
        r = int(rng.integers(r0, max(r0 + 1, r1)))
        c = int(rng.integers(0, w - size))
        x[i] = im[r:r + size, c:c + size].transpose(2, 0, 1)
    return {"x": x, "y": y.astype(np.int64), "classes": list(PHOTOS)}
