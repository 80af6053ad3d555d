"""Selection metrics (spec §5): the refit protocol, stability over seeds, and recovery.

- Jaccard |A∩B|/|A∪B| and the Kuncheva index (r·d − k²)/(k·(d − k)), r = |A∩B| (Kuncheva, "A stability
  index for feature selection", AIAP 2007), averaged over all seed pairs; Kuncheva is undefined (None) at
  k = d and k = 0.
- The refit (`logreg`): scikit-learn `LogisticRegression(max_iter=3000)` on the top-k training columns,
  standardised on the training split, scored on the test split.
"""

from __future__ import annotations

import itertools
import time
import warnings

import numpy as np


def jaccard(a, b) -> float:
    a, b = set(a), set(b)
    return len(a & b) / len(a | b) if a | b else 1.0


def kuncheva(a, b, d: int) -> float | None:
    a, b = set(a), set(b)
    k = len(a)
    if len(b) != k:
        raise ValueError("Kuncheva's index compares sets of equal size")
    if k == 0 or k >= d:
        return None
    r = len(a & b)
    return (r * d - k * k) / (k * (d - k))


def stability(rankings: list[np.ndarray], k: int, d: int) -> dict:
    """Mean Jaccard and Kuncheva of the top-k sets over all pairs of rankings (None with fewer than 2)."""
    tops = [list(np.asarray(r)[:k]) for r in rankings]
    pairs = list(itertools.combinations(range(len(tops)), 2))
    if not pairs:
        return {"jaccard_mean": None, "kuncheva_mean": None}
    jac = [jaccard(tops[i], tops[j]) for i, j in pairs]
    kun = [kuncheva(tops[i], tops[j], d) for i, j in pairs]
    return {"jaccard_mean": float(np.mean(jac)),
            "kuncheva_mean": None if kun[0] is None else float(np.mean(kun))}


def recall_at_k(ranking, informative, k: int) -> float:
    return len(set(np.asarray(ranking)[:k].tolist()) & set(informative)) / len(informative)


def refit_logreg(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                 cols) -> dict:
    """Accuracy and balanced accuracy of a logistic regression on columns `cols` (train-split scaling)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.preprocessing import StandardScaler

    from wisecli.runtime.device import one_blas_thread

    t0 = time.perf_counter()
    cols = np.asarray(cols)
    scaler = StandardScaler().fit(x_train[:, cols])
    with warnings.catch_warnings(), one_blas_thread():
        warnings.simplefilter("ignore")
        clf = LogisticRegression(max_iter=3000).fit(scaler.transform(x_train[:, cols]), y_train)
    pred = clf.predict(scaler.transform(x_test[:, cols]))
    return {"accuracy": float(np.mean(pred == y_test)),
            "balanced_accuracy": float(balanced_accuracy_score(y_test, pred)),
            "refit_seconds": time.perf_counter() - t0}


def default_k_grid(d: int) -> list[int]:
    """Powers of two below d, plus d."""
    ks, k = [], 1
    while k < d:
        ks.append(k)
        k *= 2
    return ks + [d]
