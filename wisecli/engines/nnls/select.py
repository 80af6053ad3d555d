"""Step 2: pick one front level per column minimising the total error under Σ k_j ≤ q — a multiple-choice
knapsack (MCKP), as in Nadisic et al., "Matrix-wise ℓ0-constrained sparse NNLS" (Machine Learning).

- ``dp`` (exact): D_j(b) = min_k D_{j−1}(b − k) + err[j,k] over on-front levels k, b ≤ min(q, Σ_{i≤j} kmax_i),
  uint8 back-pointers (n·(q+1) bytes), O(n·q·(r+1)).
- ``greedy``: the lower convex hull of each column's (k, err) points gives segments (Δk, Δe); all segments are
  sorted by Δe/Δk and taken while they fit (hull slopes increase, so each column's come out in order), then the
  leftover budget is filled by repeatedly applying the upgrade (to any on-front level) with the largest error drop.
- LP lower bound (Sinha & Zoltners 1979, the LP relaxation of MCKP): the hull greedy with the first segment that
  does not fit taken fractionally; LP ≤ OPT ≤ greedy, and greedy is optimal when no fractional segment remains.

Our choice: ``auto`` is ``dp`` when n·(q+1) ≤ dp_max_cells, else ``greedy`` with its certified gap. Everything
here is numpy on the host: the fronts are small (n×(r+1)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Selection:
    k: np.ndarray  # chosen level per column
    objective: float  # Σ err[j, k_j]
    lower_bound: float  # LP bound (dp: equal to the objective)
    gap: float
    method: str


def hull_segments(err: np.ndarray, on_front: np.ndarray):
    """Lower convex hull of each column's on-front points by gift wrapping from k = 0, vectorised over columns.

    Returns (col, k_from, k_to, de) for every hull segment, ordered by column then k.
    """
    n, K1 = err.shape
    e = np.where(on_front, err, np.inf)
    cur = np.zeros(n, dtype=np.int64)
    ks = np.arange(K1)
    cols, kf, kt, de = [], [], [], []
    rows = np.arange(n)
    for _ in range(K1 - 1):
        ecur = err[rows, cur]
        dk = ks[None, :] - cur[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            slope = np.where(dk > 0, (e - ecur[:, None]) / dk, np.inf)
        slope = np.where(np.isfinite(slope) & (slope < 0), slope, np.inf)
        smin = slope.min(1)
        live = np.isfinite(smin)
        if not live.any():
            break
        # farthest point attaining the minimum slope (collinear points merge into one segment)
        tie = slope <= smin[:, None] * (1 - 1e-12) + 0.0
        tie &= np.isfinite(slope)
        nxt = np.where(tie, ks[None, :], -1).max(1)
        r_ = rows[live]
        cols.append(r_)
        kf.append(cur[live])
        kt.append(nxt[live])
        de.append(err[r_, nxt[live]] - err[r_, cur[live]])
        cur = np.where(live, nxt, cur)
    if not cols:
        z = np.zeros(0, dtype=np.int64)
        return z, z, z, np.zeros(0)
    cols, kf, kt, de = (np.concatenate(a) for a in (cols, kf, kt, de))
    order = np.lexsort((kf, cols))
    return cols[order], kf[order], kt[order], de[order]


def sorted_segments(err: np.ndarray, on_front: np.ndarray):
    """Hull segments and their order by gain per atom (best first). Slopes are made non-decreasing within each
    column (a running maximum) so round-off can never order a column's later segment before an earlier one."""
    cols, kf, kt, de = hull_segments(err, on_front)
    dk = kt - kf
    slope = de / np.maximum(dk, 1)
    same = np.zeros(cols.size, dtype=bool)
    same[1:] = cols[1:] == cols[:-1]
    for _ in range(err.shape[1]):
        fixed = np.where(same[1:], np.maximum(slope[1:], slope[:-1]), slope[1:])
        if np.array_equal(fixed, slope[1:]):
            break
        slope[1:] = fixed
    order = np.lexsort((kf, cols, slope))
    return cols, kf, kt, de, dk, order


def lp_curve(err: np.ndarray, on_front: np.ndarray, budgets: np.ndarray) -> np.ndarray:
    """LP lower bound of the total error for every budget in ``budgets`` (from the sorted hull segments)."""
    cols, kf, kt, de, dk, order = sorted_segments(err, on_front)
    ck = np.concatenate([[0], np.cumsum(dk[order])])
    ce = np.concatenate([[0.0], np.cumsum(de[order])])
    base = err[:, 0].sum()
    return base + np.interp(np.asarray(budgets, float), ck, ce)


def select_greedy(err: np.ndarray, on_front: np.ndarray, q: int) -> Selection:
    n = err.shape[0]
    cols, kf, kt, de, dk, order = sorted_segments(err, on_front)
    cum = np.cumsum(dk[order])
    taken = int(np.searchsorted(cum, q, side="right"))
    k = np.zeros(n, dtype=np.int64)
    tk = order[:taken]
    np.maximum.at(k, cols[tk], kt[tk])
    used = int(cum[taken - 1]) if taken else 0
    base = float(err[:, 0].sum() + de[tk].sum())
    lower = None  # no fractional segment: the greedy is optimal
    if taken < order.size:
        s = order[taken]
        lower = base + (q - used) / dk[s] * de[s]
    left = q - used
    rows = np.arange(n)
    e = np.where(on_front, err, np.inf)
    while left > 0:
        extra = np.arange(err.shape[1])[None, :] - k[:, None]
        gain = np.where((extra > 0) & (extra <= left), err[rows, k][:, None] - e, -np.inf)
        j, lvl = np.unravel_index(int(np.argmax(gain)), gain.shape)
        if not gain[j, lvl] > 0:
            break
        left -= lvl - k[j]
        k[j] = lvl
    obj = float(err[rows, k].sum())
    lower = obj if lower is None else min(lower, obj)
    return Selection(k, obj, lower, obj - lower, "greedy")


def select_dp(err: np.ndarray, on_front: np.ndarray, q: int) -> Selection:
    n, K1 = err.shape
    kmax_col = np.array([int(np.flatnonzero(on_front[j]).max()) for j in range(n)]) if n else np.zeros(0, int)
    bp = np.zeros((n, q + 1), dtype=np.uint8)
    D = np.zeros(1)
    cap = 0
    for j in range(n):
        new_cap = min(q, cap + int(kmax_col[j]))
        Dext = np.concatenate([D, np.full(new_cap - cap, D[-1])]) if new_cap > cap else D
        best = np.full(new_cap + 1, np.inf)
        arg = np.zeros(new_cap + 1, dtype=np.uint8)
        for kk in np.flatnonzero(on_front[j]):
            if kk > new_cap:
                break
            cand = np.full(new_cap + 1, np.inf)
            cand[kk:] = Dext[: new_cap + 1 - kk] + err[j, kk]
            better = cand < best
            best[better] = cand[better]
            arg[better] = kk
        bp[j, : new_cap + 1] = arg
        D, cap = best, new_cap
    k = np.zeros(n, dtype=np.int64)
    b = cap
    for j in range(n - 1, -1, -1):
        k[j] = bp[j, b]
        b -= k[j]
    obj = float(err[np.arange(n), k].sum())
    return Selection(k, obj, obj, 0.0, "dp")


def select_levels(err, on_front, q: int, method: str = "auto", dp_max_cells: int = 2 * 10**9) -> Selection:
    """Choose k_j per column with Σ k_j ≤ q minimising Σ err[j, k_j] (err n×(kmax+1), non-increasing rows)."""
    err = np.asarray(err, dtype=np.float64)
    on_front = np.asarray(on_front, dtype=bool)
    if method == "auto":
        method = "dp" if err.shape[0] * (q + 1) <= dp_max_cells else "greedy"
    if method == "dp":
        sel = select_dp(err, on_front, q)
        sel.lower_bound = min(sel.lower_bound, float(lp_curve(err, on_front, [q])[0]))
        return sel
    return select_greedy(err, on_front, q)
