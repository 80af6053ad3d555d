"""Re-ID ranking metrics on the device, vectorised over queries (no per-query loop).

Protocol (VeRi-776 = Market-1501): for query q, gallery items with id = id_q and camera = cam_q are junk, and so
are id -1 distractors; the rest is ranked by ascending distance, stably (ties by gallery index).  Junk entries are
set to +inf and zeroed in the match matrix, so they sort last and leave the ranks of the valid items unchanged.
Queries with no valid match are excluded from every mean and counted (`num_valid_queries`), never averaged as
zeros (the habit of `evaluate_gpu.py` in layumi/Person_reID_baseline_pytorch, which we do not copy).

From the sorted match matrix m (rows: queries, columns: ranks r = 1..G) and its cumulative sum c (evaluated at
the hits only):
- CMC@k = mean over valid queries of [c_k > 0];
- AP_standard = (1/n_q) sum_{r: m_r = 1} c_r / r (torchreid `eval_market1501`, fast-reid);
- AP_official = (1/n_q) sum_i (p_i^- + i / r_i) / 2 with p_i^- = (i-1)/(r_i-1), or 1 when r_i = 1: the trapezoid
  rule of the Market-1501/VeRi Matlab `compute_AP.m`;
- mINP = mean_q n_q / r_{n_q} (Ye et al., "Deep Learning for Person Re-identification", TPAMI 2021; fast-reid).
The distance is d = 1 - cos of L2-normalised embeddings (same order as squared Euclidean distance).
Queries are processed in blocks sized to the free memory of the device.
"""

from __future__ import annotations

import math
import torch


def _block_size(num_gallery: int, device: torch.device) -> int:
    """Queries per block: about 24 bytes per (query, gallery) pair for the sort, its indices and the cumsums."""
    per_row = max(1, num_gallery) * 24
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        budget = free // 4
    else:
        budget = 256 * 2**20
    return int(max(1, min(4096, budget // per_row)))


def distance_blocks(qf=None, gf=None, *, distmat=None, device: torch.device | str = "cpu", fast: bool = False,
                    block: int | None = None):
    """Yield (start, B x G distance block) over the queries: d = 1 - cos of the L2-normalised features, computed
    block by block on `device` (TF32 GEMM only with `fast`), or the rows of a given Q x G `distmat`."""
    device = torch.device(device)
    if distmat is None:
        qn = torch.nn.functional.normalize(torch.as_tensor(qf, device=device).float(), dim=1)
        gn = torch.nn.functional.normalize(torch.as_tensor(gf, device=device).float(), dim=1)
        Q, G = qn.shape[0], gn.shape[0]
    else:
        distmat = torch.as_tensor(distmat, device=device)
        Q, G = distmat.shape
    bs = block or _block_size(G, device)
    prev = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = bool(fast)
    try:
        for s in range(0, Q, bs):
            yield s, (1.0 - qn[s:s + bs] @ gn.T) if distmat is None else distmat[s:s + bs]
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev


def rank_block(dist: torch.Tensor, q_ids: torch.Tensor, g_ids: torch.Tensor, q_cams: torch.Tensor,
               g_cams: torch.Tensor, max_rank: int) -> dict[str, torch.Tensor]:
    """Per-query metrics for one block of queries: dist is B x G; returns tensors of length B.

    After the stable sort only the hits are touched: their (row, rank) pairs come from `nonzero` (row-major, so
    ranks ascend within a row) and the hit's index i within its row is c_r at that rank."""
    B, G = dist.shape
    junk = ((g_ids[None, :] == q_ids[:, None]) & (g_cams[None, :] == q_cams[:, None])) | (g_ids[None, :] == -1)
    d = dist.float().masked_fill(junk, math.inf)
    order = torch.sort(d, dim=1, stable=True).indices
    match = (g_ids[order] == q_ids[:, None]) & ~torch.gather(junk, 1, order)
    rows, cols = match.nonzero(as_tuple=True)
    r = (cols + 1).double()
    n = torch.bincount(rows, minlength=B)
    starts = torch.cumsum(n, 0) - n
    i = (torch.arange(len(rows), device=dist.device) - starts[rows] + 1).double()
    zeros = torch.zeros(B, dtype=torch.float64, device=dist.device)
    safe_n = n.clamp_min(1).double()
    ap_std = zeros.index_add(0, rows, i / r) / safe_n
    p_prev = torch.where(r > 1, (i - 1) / (r - 1).clamp_min(1), torch.ones_like(r))
    ap_off = zeros.index_add(0, rows, 0.5 * (p_prev + i / r)) / safe_n
    valid = n > 0
    first = torch.where(valid, r[starts.clamp_max(max(len(r) - 1, 0))] if len(r) else zeros, zeros).long()
    last = torch.where(valid, r[(starts + n - 1).clamp(0, max(len(r) - 1, 0))] if len(r) else zeros, zeros)
    inp = n.double() / last.clamp_min(1)
    hits = valid[:, None] & (first[:, None] <= torch.arange(1, max_rank + 1, device=dist.device)[None, :])
    return {"valid": valid, "ap_standard": ap_std, "ap_official": ap_off, "inp": inp, "hits": hits,
            "num_matches": n, "first_hit": first}


def evaluate_ranking(q_ids, g_ids, q_cams, g_cams, *, qf: torch.Tensor | None = None,
                     gf: torch.Tensor | None = None, distmat: torch.Tensor | None = None, max_rank: int = 50,
                     device: torch.device | str = "cpu", fast: bool = False, block: int | None = None,
                     on_query=None) -> dict:
    """CMC@1..max_rank, mAP (standard and official), mINP over valid queries.

    Give either features (`qf`, `gf`; cosine distance, computed block by block on `device`) or a Q x G distance
    matrix (`distmat`, e.g. after re-ranking).  `on_query(index, record)` receives each query's record as soon as
    its block is done (streams `--per-query`).
    """
    device = torch.device(device)
    as_t = lambda x: torch.as_tensor(x, dtype=torch.long, device=device)  # noqa: E731
    q_ids, g_ids, q_cams, g_cams = as_t(q_ids), as_t(g_ids), as_t(q_cams), as_t(g_cams)
    Q = len(q_ids)
    hits_sum = torch.zeros(max_rank, dtype=torch.float64, device=device)
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # ap_std, ap_off, inp, valid
    for s, dist in distance_blocks(qf, gf, distmat=distmat, device=device, fast=fast, block=block):
        r = rank_block(dist, q_ids[s:s + len(dist)], g_ids, q_cams[s:s + len(dist)], g_cams, max_rank)
        v = r["valid"]
        hits_sum += (r["hits"] & v[:, None]).sum(0)
        sums += torch.stack([(r["ap_standard"] * v).sum(), (r["ap_official"] * v).sum(),
                             (r["inp"] * v).sum(), v.sum().double()])
        if on_query is not None:
            _emit(on_query, s, r)
    ap_s, ap_o, inp, nv = sums.tolist()
    nv = int(nv)
    denom = max(nv, 1)
    cmc = (hits_sum / denom).tolist()
    return {"mAP_standard": ap_s / denom, "mAP_official": ap_o / denom, "mINP": inp / denom,
            "cmc": cmc, "num_queries": Q, "num_valid_queries": nv}


def _emit(on_query, start: int, r: dict) -> None:
    """Per-query records of one block, in query order."""
    cols = {k: r[k].tolist() for k in ("valid", "ap_standard", "ap_official", "inp", "num_matches", "first_hit")}
    for i in range(len(cols["valid"])):
        valid = cols["valid"][i]
        on_query(start + i, {"valid": valid, "num_matches": cols["num_matches"][i],
                             "first_hit": cols["first_hit"][i] if valid else None,
                             "ap_standard": cols["ap_standard"][i] if valid else None,
                             "ap_official": cols["ap_official"][i] if valid else None,
                             "inp": cols["inp"][i] if valid else None})


def summarise(raw: dict, *, ap_mode: str = "standard", ranks=(1, 5, 10)) -> dict:
    """The `evaluate` document: headline mAP by `ap_mode`, both modes, R1/R5, CMC at `ranks`, counts."""
    cmc = raw["cmc"]
    out = {"mAP": raw[f"mAP_{ap_mode}"], "ap_mode": ap_mode, "mAP_standard": raw["mAP_standard"],
           "mAP_official": raw["mAP_official"], "R1": cmc[0], "R5": cmc[4] if len(cmc) > 4 else cmc[-1],
           "cmc": {str(k): cmc[k - 1] for k in ranks if k <= len(cmc)}, "mINP": raw["mINP"],
           "num_queries": raw["num_queries"], "num_valid_queries": raw["num_valid_queries"]}
    return out
