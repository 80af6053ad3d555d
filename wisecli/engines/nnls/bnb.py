"""Exact whole-front branch and bound per column, after Nadisic, Vandaele, Gillis, Cohen, "Exact sparse
nonnegative least squares" (ICASSP 2020, *Arborescent*) and its biobjective extension (EUSIPCO 2021).

Node = (allowed set K, kept set F ⊆ K). NNLS on K (Lawson–Hanson, warm-started from the parent's solution) bounds
every descendant from below; its solution (support size s) is a feasible point for every level ≥ s. The node is
pruned when its error is ≥ the incumbent of every level in [|F|, s − 1]. Otherwise the removable candidates
(support atoms not in F) are ordered by increasing coefficient; child t removes c_t and keeps c_1..c_{t−1}, so every
subset is visited at most once; the search is depth-first. Incumbents start from an approximate front.

Our choices: per-column work is sequential numpy on the CPU (the search is data-dependent); columns are spread
over worker processes; a column past its time limit keeps its improved incumbents, and only the levels that no
open node can still improve (its parent's NNLS error, a lower bound, is not below the incumbent) are proven.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np


def _solve_ls(G, c, idx):
    try:
        return np.linalg.solve(G[np.ix_(idx, idx)], c[idx])
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(G[np.ix_(idx, idx)], c[idx], rcond=None)[0]


def nnls_lh(G: np.ndarray, c: np.ndarray, allowed: np.ndarray, x0: np.ndarray, tol: float,
            max_iter: int | None = None) -> tuple[np.ndarray, bool]:
    """Lawson–Hanson NNLS on the allowed atoms from the Gram form, warm-started at the feasible point x0.

    Returns (x, converged): converged is False when the iteration cap stopped it before the KKT conditions held,
    so x is feasible but its error is no lower bound."""
    r = c.shape[0]
    x = np.where(allowed, np.maximum(x0, 0), 0.0)
    P = x > 0
    for _ in range(max_iter if max_iter is not None else 3 * r + 10):
        idx = np.flatnonzero(P)
        z = np.zeros(r)
        if idx.size:
            z[idx] = _solve_ls(G, c, idx)
        neg = P & (z <= 0)
        if neg.any():
            alpha = np.min(x[neg] / (x[neg] - z[neg]))
            x = x + alpha * (z - x)
            leave = P & (x <= tol)
            x[leave] = 0.0
            P &= ~leave
            continue
        x = z
        w = c - G @ x
        w[P | ~allowed] = -np.inf
        j = int(np.argmax(w))
        if not w[j] > tol:
            return x, True
        P[j] = True
    return x, False


def _certified(best, open_nodes, kmax) -> np.ndarray:
    """Levels proven optimal while the nodes in `open_nodes` (bound, |F|) are unexplored: level k is proven when
    no open subtree that reaches size k (|F| ≤ k) has a lower bound below the incumbent of level k."""
    proven = np.ones(kmax + 1, dtype=bool)
    for bound, nf in open_nodes:
        if nf <= kmax:
            proven[nf:] &= ~(bound < best[nf:])
    return proven


def bnb_column(G, c, beta, kmax, err0, supp0, time_limit):
    """Exact front of one column: returns (err (kmax+1), support masks (kmax+1)×r, proven (kmax+1) bool, nodes).

    Each open node carries its parent's NNLS error as a lower bound, so a search stopped by `time_limit` still
    proves the levels no open subtree can improve. A node whose NNLS does not converge (even cold-started with a
    larger cap) gives no bound: the column is then proven nowhere (its levels stay best found)."""
    r = c.shape[0]
    tol = 1e-13 * max(np.abs(c).max(), np.abs(np.diag(G)).max(), 1e-300)
    best = err0.copy()
    bsup = supp0.copy()
    start = time.perf_counter()
    stack = [(np.diag(G) > 0, np.zeros(r, bool), np.zeros(r), 0.0)]
    nodes = 0
    sound = True
    while stack:
        if time.perf_counter() - start > time_limit:
            proven = _certified(best, [(b, int(F.sum())) for _, F, _, b in stack], kmax) if sound else \
                np.zeros(kmax + 1, dtype=bool)
            return best, bsup, proven, nodes
        K, F, xw, _ = stack.pop()
        nodes += 1
        x, ok = nnls_lh(G, c, K, xw, tol)
        if not ok:
            x, ok = nnls_lh(G, c, K, np.zeros(r), tol, max_iter=20 * r + 50)
        sound &= ok
        e = max(beta - 2 * c @ x + x @ G @ x, 0.0)
        supp = x > 0
        s = int(supp.sum())
        if s <= kmax:
            upd = e < best[s:]
            best[s:][upd] = e
            bsup[s:][upd] = supp
        lo, hi = int(F.sum()), min(s - 1, kmax)
        if lo > hi or (ok and np.all(e >= best[lo:hi + 1])):
            continue
        cand = np.flatnonzero(supp & ~F)
        cand = cand[np.argsort(x[cand], kind="stable")]
        children = []
        Fc = F.copy()
        for ct in cand:
            if Fc.sum() > hi:
                break
            Kc = K.copy()
            Kc[ct] = False
            xc = x.copy()
            xc[ct] = 0.0
            children.append((Kc, Fc.copy(), xc, e))
            Fc[ct] = True
        stack.extend(reversed(children))
    return best, bsup, np.full(kmax + 1, sound), nodes


def _run_chunk(args):
    G, C, beta, kmax, err0, supp0, time_limit = args
    out = [bnb_column(G, C[:, j], beta[j], kmax, err0[j], supp0[j], time_limit) for j in range(C.shape[1])]
    return (np.stack([o[0] for o in out]), np.stack([o[1] for o in out]),
            np.array([o[2] for o in out]), int(sum(o[3] for o in out)))


def bnb_fronts(G, C, beta, kmax, err0, supp0, *, time_limit: float = 1.0, workers: int | None = None):
    """Branch and bound for every column (numpy float64 inputs); err0/supp0: incumbent front (n×(kmax+1)[×r]).

    Returns (err, support, proven (n×(kmax+1) bool: the level is proven optimal), total nodes). ``workers`` > 1 spreads column chunks over processes.
    """
    n = C.shape[1]
    if workers is None:
        workers = min(os.cpu_count() or 1, 8) if n >= 256 else 1
    if workers <= 1 or n < 2 * workers:
        return _run_chunk((G, C, beta, kmax, err0, supp0, time_limit))
    parts = np.array_split(np.arange(n), workers * 4)
    jobs = [(G, C[:, p], beta[p], kmax, err0[p], supp0[p], time_limit) for p in parts if p.size]
    with ProcessPoolExecutor(workers) as ex:
        outs = list(ex.map(_run_chunk, jobs))
    return (np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs]),
            np.concatenate([o[2] for o in outs]), sum(o[3] for o in outs))
