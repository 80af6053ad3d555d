"""Plain numpy references: the peers `benchmark` races and the oracles the tests compare against.

Written from the formulas of the spec (§5) in the style of the public evaluation code (torchreid
`eval_market1501`, fast-reid): a full CPU argsort of the distance matrix, then a Python loop over queries.  The
re-ranking reference is k-reciprocal encoding (Zhong et al., "Re-ranking Person Re-identification with
k-reciprocal Encoding", CVPR 2017) over a dense (Q+G)^2 array, one query at a time, as the public code does.
Slow on purpose: this is what the torch versions in `metrics.py` and `rerank.py` must equal and beat.
"""

from __future__ import annotations

import numpy as np


def cosine_distance(qf: np.ndarray, gf: np.ndarray) -> np.ndarray:
    """d = 1 - cos for every query/gallery pair (float32)."""
    q = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    g = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    return (1.0 - q @ g.T).astype(np.float32)


def evaluate(distmat: np.ndarray, q_ids, g_ids, q_cams, g_cams, max_rank: int = 50) -> dict:
    """CMC, mAP (standard and official AP) and mINP with one loop over queries (VeRi-776 junk rule)."""
    q_ids, g_ids = np.asarray(q_ids), np.asarray(g_ids)
    q_cams, g_cams = np.asarray(q_cams), np.asarray(g_cams)
    indices = np.argsort(distmat, axis=1, kind="stable")
    cmc_sum = np.zeros(max_rank)
    ap_s, ap_o, inps = [], [], []
    for qi in range(len(q_ids)):
        order = indices[qi]
        junk = ((g_ids[order] == q_ids[qi]) & (g_cams[order] == q_cams[qi])) | (g_ids[order] == -1)
        matches = (g_ids[order] == q_ids[qi])[~junk].astype(np.int64)
        if matches.sum() == 0:
            continue
        cmc = matches.cumsum()
        cmc[cmc > 1] = 1
        cmc_row = cmc[:max_rank].astype(np.float64)
        if len(cmc_row) < max_rank:
            cmc_row = np.concatenate([cmc_row, np.full(max_rank - len(cmc_row), cmc_row[-1])])
        cmc_sum += cmc_row
        hit_ranks = np.flatnonzero(matches) + 1
        n = len(hit_ranks)
        precision = np.arange(1, n + 1) / hit_ranks
        ap_s.append(precision.mean())
        official = 0.0
        for i, r in enumerate(hit_ranks, start=1):
            p_prev = (i - 1) / (r - 1) if r > 1 else 1.0
            official += 0.5 * (p_prev + i / r)
        ap_o.append(official / n)
        inps.append(n / hit_ranks[-1])
    nv = len(ap_s)
    d = max(nv, 1)
    return {"mAP_standard": float(np.sum(ap_s) / d), "mAP_official": float(np.sum(ap_o) / d),
            "mINP": float(np.sum(inps) / d), "cmc": (cmc_sum / d).tolist(), "num_queries": len(q_ids),
            "num_valid_queries": nv}


def re_ranking(qf: np.ndarray, gf: np.ndarray, k1: int = 20, k2: int = 6, lambda_value: float = 0.3) -> np.ndarray:
    """k-reciprocal re-ranking, dense, per item; returns the Q x G final distance (float32).

    D = squared Euclidean distance over all N = Q + G items, each row divided by its maximum; N(i, k) = the k
    nearest (i included, stable order); R(i, k1) = reciprocal neighbours; expansion by R(j, round(k1/2)) when
    more than 2/3 of it lies in R(i, k1); V_ij = exp(-D_ij) normalised over the expanded set; local expansion
    over N(i, k2); Jaccard d_J = 1 - S/(2 - S), S = sum_k min(V_qk, V_gk); final (1-lambda) d_J + lambda D.
    """
    Q = len(qf)
    feats = np.concatenate([qf, gf]).astype(np.float32)
    N = len(feats)
    sq = (feats ** 2).sum(1)
    dist = np.maximum(sq[:, None] + sq[None, :] - 2.0 * feats @ feats.T, 0.0)
    dist = (dist / dist.max(axis=1, keepdims=True)).astype(np.float32)
    initial_rank = np.argsort(dist, axis=1, kind="stable")
    V = np.zeros((N, N), dtype=np.float32)
    half = int(np.around(k1 / 2))
    for i in range(N):
        forward = initial_rank[i, : k1 + 1]
        backward = initial_rank[forward, : k1 + 1]
        reciprocal = forward[np.any(backward == i, axis=1)]
        expanded = reciprocal
        for cand in reciprocal:
            c_forward = initial_rank[cand, : half + 1]
            c_backward = initial_rank[c_forward, : half + 1]
            c_recip = c_forward[np.any(c_backward == cand, axis=1)]
            if len(np.intersect1d(c_recip, reciprocal)) > 2.0 / 3.0 * len(c_recip):
                expanded = np.append(expanded, c_recip)
        expanded = np.unique(expanded)
        w = np.exp(-dist[i, expanded])
        V[i, expanded] = w / w.sum()
    if k2 > 1:
        V = np.stack([V[initial_rank[i, :k2]].mean(axis=0) for i in range(N)]).astype(np.float32)
    jaccard = np.zeros((Q, N), dtype=np.float32)
    for i in range(Q):
        cols = np.flatnonzero(V[i])
        s = np.minimum(V[i, cols][None, :], V[:, cols]).sum(axis=1)
        jaccard[i] = 1.0 - s / (2.0 - s)
    final = (1.0 - lambda_value) * jaccard + lambda_value * dist[:Q]
    return final[:, Q:].astype(np.float32)
