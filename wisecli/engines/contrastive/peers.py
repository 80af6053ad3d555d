"""The peers' side of `wise contrastive benchmark` (spec §7): scikit-learn brute-force cosine kNN and Lloyd
k-means (faiss `IndexFlatIP` / `Kmeans` when installed), a per-sample CPU augmentation pipeline (OpenCV +
numpy: crop-resize, flip, brightness/contrast/saturation, grayscale, blur) and per-sample CPU cutmix, as an
Un-Mix-style dataset would run them."""

from __future__ import annotations

import numpy as np


def sklearn_knn(bank: np.ndarray, queries: np.ndarray, k: int):
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k, algorithm="brute", metric="cosine", n_jobs=-1).fit(bank)
    return nn.kneighbors(queries)[1]


def sklearn_kmeans(x: np.ndarray, init: np.ndarray, iters: int):
    from sklearn.cluster import KMeans

    return KMeans(len(init), init=init, n_init=1, max_iter=iters, algorithm="lloyd").fit(x).labels_


def cpu_augment(images: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """Per-sample MoCo v2 view of uint8 (N, H, W, 3) images with OpenCV, one image at a time."""
    import cv2

    rng = np.random.default_rng(seed)
    n, h, w, _ = images.shape
    out = np.empty((n, size, size, 3), np.float32)
    for i in range(n):
        area = rng.uniform(0.2, 1.0) * h * w
        r = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        bw, bh = min(w, max(1, int(round(np.sqrt(area * r))))), min(h, max(1, int(round(np.sqrt(area / r)))))
        x0, y0 = rng.integers(0, w - bw + 1), rng.integers(0, h - bh + 1)
        img = cv2.resize(images[i, y0:y0 + bh, x0:x0 + bw], (size, size), interpolation=cv2.INTER_LINEAR)
        img = img.astype(np.float32) / 255
        if rng.random() < 0.5:
            img = img[:, ::-1]
        if rng.random() < 0.8:
            img = np.clip(img * rng.uniform(0.6, 1.4), 0, 1)
            m = img.mean()
            img = np.clip((img - m) * rng.uniform(0.6, 1.4) + m, 0, 1)
            g = img @ np.array([0.299, 0.587, 0.114], np.float32)
            img = np.clip((img - g[..., None]) * rng.uniform(0.6, 1.4) + g[..., None], 0, 1)
        if rng.random() < 0.2:
            g = img @ np.array([0.299, 0.587, 0.114], np.float32)
            img = np.repeat(g[..., None], 3, axis=2)
        if rng.random() < 0.5:
            img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.1, 2.0) * size / 224 + 1e-3)
        out[i] = img
    return out


def cpu_cutmix(a: np.ndarray, b: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample cutmix of float (N, H, W, C) arrays in a Python loop."""
    rng = np.random.default_rng(seed)
    n, h, w, _ = a.shape
    out, lam = a.copy(), np.empty(n, np.float32)
    for i in range(n):
        cut = np.sqrt(1 - rng.random())
        ch, cw = int(round(cut * h)), int(round(cut * w))
        cy, cx = rng.integers(h), rng.integers(w)
        y0, y1 = np.clip([cy - ch // 2, cy - ch // 2 + ch], 0, h)
        x0, x1 = np.clip([cx - cw // 2, cx - cw // 2 + cw], 0, w)
        out[i, y0:y1, x0:x1] = b[i, y0:y1, x0:x1]
        lam[i] = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    return out, lam
