"""Synthetic data for tests and benchmarks (spec §4).

- `vmf_clusters(n, classes, dim, seed)`: unit vectors around `classes` random mean directions with uneven
  sizes (weights ∝ 1, 2, ..., C) and uneven spreads (concentration varied ×3 between classes), so tails overlap
  and plain nearest neighbours near boundaries pick wrong-class points. Sampling is "vMF-like": the mean
  plus isotropic Gaussian noise of std 1/sqrt(kappa) per dimension, normalised (not Wood's exact sampler).
- `random_images(n, channels, size, device, seed)`: uint8 batches for throughput only.
"""

from __future__ import annotations

import numpy as np
import torch


def vmf_clusters(n: int = 2000, classes: int = 10, dim: int = 32, seed: int = 0,
                 kappa: float = 8.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(points (n, dim) float32 unit rows, labels (n,) int64)."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=(classes, dim))
    mu /= np.linalg.norm(mu, axis=1, keepdims=True)
    w = np.arange(1, classes + 1, dtype=float)
    y = rng.choice(classes, size=n, p=w / w.sum())
    kap = kappa * np.linspace(0.5, 1.5, classes)[rng.permutation(classes)]
    x = mu[y] + rng.normal(size=(n, dim)) / np.sqrt(kap[y])[:, None]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64))


def random_images(n: int, channels: int = 3, size: int = 32, device="cpu", seed: int = 0) -> torch.Tensor:
    """uint8 (n, channels, size, size) noise images on `device`."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8).to(device)
