"""The baselines of spec §5, each returning a full ranking (column indices, best first).

- `mi`: mutual information (Kraskov-style kNN estimator, scikit-learn `mutual_info_classif`), ranked.
- `rfe-lr`: recursive feature elimination with a logistic regression (Guyon et al., Machine Learning 2002),
  one feature (d ≤ 100) or ceil(0.02·d) features per step; ties inside an eliminated chunk by column index.
- `l1`: entry order along the L1-logistic regularisation path (Tibshirani 1996; path grid
  C = l1_min_c · logspace(0, 3, 20)): a feature's rank is the first C where any class coefficient is non-zero,
  ties (and features that never enter) by |coef| at the largest C, then by index. liblinear for two
  classes, saga for more; the path is warm-started.
- `random`: a seeded permutation.
`all` (every feature, one accuracy) has no ranking and is handled by `evaluate`.
All inputs are already standardised on the training split.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

BASELINES = ("mi", "rfe-lr", "l1", "random", "all")


def _order(primary: np.ndarray, secondary: np.ndarray | None = None) -> np.ndarray:
    """Indices sorted by `primary` ascending, then `secondary` ascending, then column index."""
    idx = np.arange(len(primary))
    keys = (idx,) if secondary is None else (idx, secondary)
    return np.lexsort(keys + (primary,))


def rank_mi(x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.feature_selection import mutual_info_classif

    return _order(-mutual_info_classif(x, y, random_state=seed))


def rank_rfe_lr(x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.feature_selection import RFE
    from sklearn.linear_model import LogisticRegression

    d = x.shape[1]
    step = 1 if d <= 100 else math.ceil(0.02 * d)
    from wisecli.runtime.device import one_blas_thread

    # one BLAS thread: the peer at its best on small GEMMs (0.22 instead of 2.0 CPU-s on the quick set, same ranking)
    with warnings.catch_warnings(), one_blas_thread():
        warnings.simplefilter("ignore")
        rfe = RFE(LogisticRegression(max_iter=2000), n_features_to_select=1, step=step).fit(x, y)
    return _order(rfe.ranking_.astype(float))


def rank_l1(x: np.ndarray, y: np.ndarray, seed: int, n_c: int = 20) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import l1_min_c

    binary = len(np.unique(y)) == 2
    cs = l1_min_c(x, y, loss="log") * np.logspace(0, 3, n_c)
    model = LogisticRegression(l1_ratio=1.0, solver="liblinear" if binary else "saga", warm_start=True,
                               max_iter=1000, tol=1e-3, random_state=seed)
    d = x.shape[1]
    entry = np.full(d, np.inf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, c in enumerate(cs):
            model.set_params(C=c).fit(x, y)
            active = np.any(model.coef_ != 0, axis=0)
            entry[active & ~np.isfinite(entry)] = i
    last = np.abs(model.coef_).max(axis=0)
    return _order(entry, -last)


def rank_random(x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(x.shape[1])


RANKERS = {"mi": rank_mi, "rfe-lr": rank_rfe_lr, "l1": rank_l1, "random": rank_random}
