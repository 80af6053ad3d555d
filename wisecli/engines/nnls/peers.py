"""The peers' side of `wise nnls benchmark` (spec §7): the public or plain references our batched solvers race.

- `scipy_nnls_loop`: `scipy.optimize.nnls` column by column (never pass `atol`: scipy/scipy#21484);
- `lars_loop`: `sklearn.linear_model.lars_path(method='lasso', positive=True)` per column, with the precomputed Gram
  (its α is our λ / m);
- `brute_front_numpy`: numpy brute force over all subsets, vectorised over columns (the exact front, no refit);
- `dp_select`: the exact MCKP dynamic programme (what the hull greedy with its LP bound is compared against).
"""

from __future__ import annotations

import itertools

import numpy as np


def scipy_nnls_loop(A, B) -> list:
    """`scipy.optimize.nnls(A, b)` for every column b of B: a list of (x, residual norm)."""
    from scipy.optimize import nnls

    return [nnls(A, B[:, j]) for j in range(B.shape[1])]


def lars_loop(A, B, G, C) -> list:
    """The positive-lasso path of every column with `lars_path` (Gram G = AᵀA, C = AᵀB given): the alphas."""
    from sklearn.linear_model import lars_path

    return [lars_path(A, B[:, j], Gram=G, Xy=C[:, j], method="lasso", positive=True)[0] for j in range(B.shape[1])]


def brute_front_numpy(A, B, kmax):
    """Peer: numpy brute force over all subsets, vectorised over columns (exact front, no refit)."""
    G, C, beta = A.T @ A, A.T @ B, (B**2).sum(0)
    r, n = C.shape
    err = np.empty((n, kmax + 1))
    err[:, 0] = beta
    for k in range(1, kmax + 1):
        best = err[:, k - 1].copy()
        for S in itertools.combinations(range(r), k):
            S = list(S)
            try:
                z = np.linalg.solve(G[np.ix_(S, S)], C[S])
            except np.linalg.LinAlgError:
                continue
            ok = (z > 0).all(0)
            val = beta - (C[S] * z).sum(0)
            best = np.where(ok & (val < best), val, best)
        err[:, k] = best
    return err


def dp_select(err, on_front, q):
    """The exact selection (dynamic programme over columns) under Σk ≤ q."""
    from .select import select_levels

    return select_levels(err, on_front, q, "dp")
