"""Cosine distances in query blocks sized to the device's free memory: the one generator behind the
metrics (`metrics.evaluate_ranking`) and the AI City submission ranking (`submit.rank_top`)."""

from __future__ import annotations

import torch

from wisecli.runtime.device import as_device


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
    device = as_device(device)
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
