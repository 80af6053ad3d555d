"""Labelled synthetic data with known informative columns (spec §4), seeded and honest about what it is.

- `informative_classification`: scikit-learn `make_classification` (Guyon's Madelon design) with the
  informative columns first (`shuffle=False`), then a stored seeded column permutation, so the
  informative indices after the permutation are known.
- `noise_append_breast_cancer`: the 30 real breast-cancer columns plus i.i.d. N(0, 1) noise columns
  (d = 300 by default); a good selector ranks real columns above noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Synthetic:
    x: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    informative: list[int]          # column indices that carry the signal
    name: str


def informative_classification(seed: int = 0, n_samples: int = 1000, n_features: int = 100,
                               n_informative: int = 8, class_sep: float = 1.0) -> Synthetic:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=n_samples, n_features=n_features, n_informative=n_informative,
                               n_redundant=0, n_repeated=0, shuffle=False, class_sep=class_sep,
                               random_state=seed)
    perm = np.random.default_rng(seed).permutation(n_features)  # new column j holds old column perm[j]
    x = x[:, perm]
    informative = sorted(int(j) for j in np.where(perm < n_informative)[0])
    names = [f"inf{perm[j]}" if perm[j] < n_informative else f"noise{j}" for j in range(n_features)]
    return Synthetic(x, y, names, informative, f"make_classification, d={n_features}, {n_informative} informative")


def noise_append_breast_cancer(seed: int = 0, d_total: int = 300) -> Synthetic:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    n, d = data.data.shape
    noise = np.random.default_rng(seed).standard_normal((n, d_total - d))
    names = list(data.feature_names) + [f"noise{j}" for j in range(d_total - d)]
    return Synthetic(np.hstack([data.data, noise]), data.target, names, list(range(d)),
                     f"breast cancer + {d_total - d} synthetic noise columns")
