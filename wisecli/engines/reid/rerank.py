"""k-reciprocal re-ranking in torch, sparse, on the device (Zhong et al., CVPR 2017).

Same definition as `peers.re_ranking` (spec §5), computed without per-item loops:
- D by one GEMM over all N = Q + G items (squared Euclidean, each row divided by its maximum);
- the (k1+1) nearest of every item by a stable sort in row blocks (stable, so ties order as numpy's argsort);
- reciprocity by gathering the N x (k1+1) neighbour lists and testing membership; the round(k1/2) expansion
  sets likewise, with the "more than 2/3 inside R(i, k1)" test as a padded N x (k1+1) x (k/2+1) x (k1+1)
  comparison in row blocks;
- V as a sparse COO matrix (unique (row, column) pairs, weights exp(-D) normalised per row); local query
  expansion as a sparse product A @ V with A_ij = 1/k2 for j in N(i, k2);
- the Jaccard min-sum S(q, g) = sum_k min(V_qk, V_gk) by joining non-zeros on their column: sort the gallery
  non-zeros by column, expand each query non-zero against its column segment (`repeat_interleave`) and
  `scatter_add` the minima into the Q x G block; the work is proportional to sum over columns of nnz^2.
Memory: the N^2 fp32 distance (0.70 GB at N = 13,257).  Blocks halve on out-of-memory, with a warning.
"""

from __future__ import annotations

import warnings

import torch


def _pairwise_sq(feats: torch.Tensor) -> torch.Tensor:
    sq = (feats * feats).sum(1)
    d = sq[:, None] + sq[None, :] - 2.0 * (feats @ feats.T)
    return d.clamp_min_(0.0)


def _neighbours(dist: torch.Tensor, k: int, block: int) -> torch.Tensor:
    """The k nearest of every row (self included), ordered as a stable ascending sort."""
    out = []
    for s in range(0, dist.shape[0], block):
        out.append(torch.sort(dist[s:s + block], dim=1, stable=True).indices[:, :k])
    return torch.cat(out)


def _reciprocal_mask(nn: torch.Tensor) -> torch.Tensor:
    """mask[i, a] = True when i is among the neighbours of nn[i, a] (rows of `nn` hold the lists)."""
    idx = torch.arange(nn.shape[0], device=nn.device)
    return (nn[nn] == idx[:, None, None]).any(-1)


def re_ranking(qf: torch.Tensor, gf: torch.Tensor, k1: int = 20, k2: int = 6, lambda_value: float = 0.3,
               block: int = 2048, fast: bool = False) -> torch.Tensor:
    """Final Q x G distance after k-reciprocal re-ranking (float32, on the features' device)."""
    while True:
        try:
            return _re_ranking(qf, gf, k1, k2, lambda_value, block, fast)
        except torch.OutOfMemoryError:
            if block <= 16:
                raise
            block //= 2
            torch.cuda.empty_cache()
            warnings.warn(f"re-ranking ran out of GPU memory; retrying with blocks of {block} rows", stacklevel=2)


def _re_ranking(qf, gf, k1, k2, lambda_value, block, fast):
    device = qf.device
    Q = qf.shape[0]
    feats = torch.cat([qf, gf]).float()
    N = feats.shape[0]
    prev = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = bool(fast)
    try:
        dist = _pairwise_sq(feats)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev
    dist /= dist.amax(1, keepdim=True)
    half = round(k1 / 2)  # half to even, as numpy's around in the reference
    nn = _neighbours(dist, k1 + 1, block)
    nn_half = nn[:, : half + 1]
    recip = _reciprocal_mask(nn)                                   # N x (k1+1): R(i, k1)
    recip_half = (nn_half[nn_half] == torch.arange(N, device=device)[:, None, None]).any(-1)  # R(j, k1/2)

    # Expansion: candidate j = nn[i, a] in R(i, k1) adds R(j, k1/2) when |R(j) ∩ R(i)| > 2/3 |R(j)|.
    rows, cols = [], []
    for s in range(0, N, max(1, block // 8)):
        e = min(N, s + max(1, block // 8))
        nb, rb = nn[s:e], recip[s:e]                                # B x (k1+1)
        cand_sets = nn_half[nb]                                     # B x (k1+1) x (h+1)
        cand_valid = recip_half[nb]                                 # B x (k1+1) x (h+1)
        inside = ((cand_sets[..., None] == nb[:, None, None, :]) & rb[:, None, None, :]).any(-1) & cand_valid
        accept = (inside.sum(-1) * 3 > 2 * cand_valid.sum(-1)) & rb      # B x (k1+1)
        B = e - s
        r_idx = torch.arange(s, e, device=device)
        own = torch.where(rb, nb, -1)
        extra = torch.where(cand_valid & accept[..., None], cand_sets, -1).reshape(B, -1)
        members = torch.cat([own, extra], dim=1)
        keep = members >= 0
        rows.append(r_idx[:, None].expand_as(members)[keep])
        cols.append(members[keep])
    rows, cols = torch.cat(rows), torch.cat(cols)
    key = torch.unique(rows * N + cols)                              # sorted, unique (row, col)
    rows, cols = key // N, key % N
    w = torch.exp(-dist[rows, cols])
    row_sum = torch.zeros(N, device=device).index_add_(0, rows, w)
    w = w / row_sum[rows]
    V = torch.sparse_coo_tensor(torch.stack([rows, cols]), w, (N, N), check_invariants=False).coalesce()

    if k2 > 1:
        a_rows = torch.arange(N, device=device).repeat_interleave(k2)
        a_cols = nn[:, :k2].reshape(-1)  # k2 <= k1 (checked by the caller), so N(i, k2) is a prefix
        A = torch.sparse_coo_tensor(torch.stack([a_rows, a_cols]), torch.full((N * k2,), 1.0 / k2, device=device),
                                    (N, N), check_invariants=False).coalesce()
        with warnings.catch_warnings():  # torch routes COO x COO through its (beta-labelled) CSR kernels
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            V = torch.sparse.mm(A, V).coalesce()

    idx, val = V.indices(), V.values()
    q_sel = idx[0] < Q
    g_sel = ~q_sel
    jac = _min_sum(idx[0][q_sel], idx[1][q_sel], val[q_sel], idx[0][g_sel] - Q, idx[1][g_sel], val[g_sel],
                   Q, N - Q, device)
    jaccard = 1.0 - jac / (2.0 - jac)
    return (1.0 - lambda_value) * jaccard + lambda_value * dist[:Q, Q:]


def _min_sum(q_rows, q_cols, q_vals, g_rows, g_cols, g_vals, Q, G, device, chunk: int = 1 << 24):
    """S[q, g] = sum_k min(Vq[q, k], Vg[g, k]) by joining the non-zeros of both on their column."""
    order = torch.argsort(g_cols, stable=True)
    g_rows, g_cols, g_vals = g_rows[order], g_cols[order], g_vals[order]
    n_cols = int(torch.maximum(q_cols.max(), g_cols.max()).item()) + 1 if len(g_cols) else 1
    counts = torch.bincount(g_cols, minlength=n_cols)
    starts = torch.cumsum(counts, 0) - counts
    per_q = counts[q_cols]                                            # pairs each query non-zero makes
    S = torch.zeros(Q * G, device=device, dtype=torch.float32)
    cum = torch.cumsum(per_q, 0)
    s = 0
    while s < len(q_cols):
        base = cum[s - 1] if s > 0 else torch.zeros((), dtype=cum.dtype, device=device)
        e = int(torch.searchsorted(cum, base + chunk, right=True).item())
        e = max(e, s + 1)
        pq = per_q[s:e]
        rep = torch.repeat_interleave(torch.arange(s, e, device=device), pq)
        offs = torch.arange(len(rep), device=device) - torch.repeat_interleave(torch.cumsum(pq, 0) - pq, pq)
        g_pos = starts[q_cols[rep]] + offs
        m = torch.minimum(q_vals[rep], g_vals[g_pos])
        S.index_add_(0, q_rows[rep] * G + g_rows[g_pos], m)
        s = e
    return S.view(Q, G)
