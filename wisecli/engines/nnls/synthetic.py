"""Synthetic data of the benchmark (our choice): Gaussian-sum spectra plus a floor, shaped like Urban (162 × r),
Cuprite (188 × 12) and CBCL (361 × 49), with sparse nonnegative abundances and 1 % noise. (The semi-synthetic
hyperspectral cube of the demo and `evaluate --dataset hsi` is `data.hsi`: it is built on real spectra.)"""

from __future__ import annotations

import numpy as np


def synthetic(m: int, r: int, n: int, seed: int = 0, density: float = 0.3):
    """A (m × r) Gaussian-sum spectra plus a floor, B = A X + 1 % noise with sparse nonnegative X."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, m)[:, None]
    A = 0.05 + sum(rng.random(r) * np.exp(-((t - rng.random(r)) ** 2) / (2 * (0.01 + 0.04 * rng.random(r)) ** 2))
                   for _ in range(4))
    X = rng.random((r, n)) * (rng.random((r, n)) < density)
    B = A @ X
    B += 0.01 * np.abs(B).mean() * rng.standard_normal(B.shape)
    return A, B
