"""Ranking metrics with the candidate pool stated (specs/code-search.md §5).

Rank, pessimistic for ties: rank_i = 1 + #{j not true for i : s_ij ≥ s_i,true}; codes whose normalised hash equals
the true code's count as true. MRR = mean 1/rank; R@k = mean [rank ≤ k]; nDCG@10 = mean 1/log2(1 + rank) for
rank ≤ 10 (one relevant item). Pools: `all` (each query against every code) or N (a seeded shuffle cut into
consecutive chunks of N pairs; each query ranked among its chunk's N codes; a shorter final chunk is dropped and
reported). Ranks are computed on the device in chunks of queries: gather the true score, count the larger ones.
Intervals: bootstrap over queries (1,000 resamples, percentile 95 %).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

TIE_RULE = "pessimistic (rank = 1 + #{non-true codes with score >= the true code's})"


def ranks_from_scores(scores: Tensor, true_idx: Tensor, code_hash: Tensor | None = None) -> Tensor:
    """Ranks [Q] of the true code `true_idx[i]` in row i of `scores` [Q, N] (pessimistic ties; equal-hash
    codes count as true)."""
    t = scores.gather(1, true_idx[:, None])
    ge = scores >= t
    if code_hash is not None:
        ge &= code_hash[None, :] != code_hash[true_idx][:, None]
    else:
        ge[torch.arange(len(true_idx), device=scores.device), true_idx] = False
    return 1 + ge.sum(1)


def ranks_all(q: Tensor, c: Tensor, code_hash: Tensor | None = None, chunk: int = 1024) -> Tensor:
    """Pool `all`: query i's true code is c[i]; each query ranked against every code. Cosine scores (unit rows)."""
    out = []
    for a in range(0, len(q), chunk):
        s = q[a: a + chunk] @ c.T
        idx = torch.arange(a, min(a + chunk, len(q)), device=q.device)
        out.append(ranks_from_scores(s, idx, code_hash))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def chunk_pools(m: int, n: int, seed: int = 0) -> tuple[np.ndarray, int]:
    """Pool N: a seeded permutation of m pairs cut into [m // n, n] chunks; returns (chunks, dropped)."""
    perm = np.random.default_rng(seed).permutation(m)
    k = m // n
    return perm[: k * n].reshape(k, n), m - k * n


def ranks_matrix_pools(scores_fn, m: int, n: int, code_hash: Tensor | None = None, seed: int = 0,
                       device=None) -> tuple[Tensor, Tensor, int]:
    """Ranks with pool N: `scores_fn(qidx, cidx)` → [len(qidx), len(cidx)] scores. Returns (ranks, kept query
    indices, dropped)."""
    chunks, dropped = chunk_pools(m, n, seed)
    ranks, kept = [], []
    for ch in chunks:
        idx = torch.as_tensor(ch, device=device)
        s = scores_fn(idx, idx)
        h = code_hash[idx] if code_hash is not None else None
        ranks.append(ranks_from_scores(s, torch.arange(n, device=s.device), h))
        kept.append(idx)
    if not ranks:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), dropped
    return torch.cat(ranks), torch.cat(kept), dropped


def summary(ranks, ks=(1, 5, 10)) -> dict:
    """MRR, R@k, nDCG@10 of ranks (any array-like)."""
    r = np.asarray(torch.as_tensor(ranks).cpu(), dtype=np.float64)
    if r.size == 0:
        return {"mrr": float("nan"), **{f"r{k}": float("nan") for k in ks}, "ndcg10": float("nan"), "queries": 0}
    out = {"mrr": float(np.mean(1 / r))}
    for k in ks:
        out[f"r{k}"] = float(np.mean(r <= k))
    out["ndcg10"] = float(np.mean(np.where(r <= 10, 1 / np.log2(1 + r), 0.0)))
    out["queries"] = int(r.size)
    return out


def bootstrap(values, n: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of the mean of `values` over `n` resamples."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0 or n <= 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n, v.size))].mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def random_mrr(n: int) -> float:
    """Expected MRR of a uniformly random ranking of a pool of n (one true): H_n / n."""
    return sum(1 / k for k in range(1, n + 1)) / n if n > 0 else math.nan
