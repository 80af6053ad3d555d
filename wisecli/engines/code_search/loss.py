"""Contrastive losses over a batch of (query, code) pairs (specs/code-search.md §2.3).

s_ij = cos(q_i, c_j). `hardest` (COSEA's "most similar negative"; the max-of-hinges form of VSE++, Faghri et al.
2018): L = mean_i max(0, δ − s_ii + max_{j≠i, c_j ≢ c_i} s_ij), δ = 0.2; `same[i, j]` marks pairs that are not
negatives (the true code, in-batch duplicates by normalised-code hash, the same query). Other forms:
`hardest-softmax` −log e^{s_ii/τ}/(e^{s_ii/τ} + e^{max_j s_ij/τ}); `infonce` (all in-batch negatives, τ = 0.05);
`hinge-sum` Σ_j max(0, δ − s_ii + s_ij) / (B−1); `hinge-random` one random negative per row (CoaCor, δ 0.05).
`symmetric` adds the code→query direction. `extra` (the `--negatives queue` memory: detached code embeddings of
earlier batches, with their hashes) adds negatives to each query's row for every form but `hinge-random`
(entries with the true code's hash are excluded); the code→query direction stays in-batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

LOSSES = ("hardest", "hardest-softmax", "infonce", "hinge-sum", "hinge-random")


def not_negative(code_hash: Tensor, query_hash: Tensor | None = None) -> Tensor:
    """[B, B] True where j is no negative for i: the diagonal, same code hash, same query hash."""
    same = code_hash[:, None] == code_hash[None, :]
    if query_hash is not None:
        same = same | (query_hash[:, None] == query_hash[None, :])
    return same | torch.eye(len(code_hash), dtype=torch.bool, device=code_hash.device)


def _one_way(s: Tensor, same: Tensor, kind: str, margin: float, tau: float, gen=None) -> Tensor:
    pos = s.diagonal()
    neg = s.masked_fill(same, float("-inf"))
    has = ~same.all(1)
    if kind == "hardest":
        hard = neg.amax(1)
        return torch.where(has, (margin - pos + hard).clamp_min(0), torch.zeros_like(pos)).mean()
    if kind == "hardest-softmax":
        hard = torch.where(has, neg.amax(1), torch.full_like(pos, float("-inf")))
        logits = torch.stack([pos, hard], 1) / tau
        return (torch.logsumexp(logits, 1) - pos / tau).mean()
    if kind == "infonce":
        logits = torch.cat([pos[:, None], neg], 1) / tau
        return (torch.logsumexp(logits, 1) - pos / tau).mean()
    if kind == "hinge-sum":
        h = (margin - pos[:, None] + s).clamp_min(0).masked_fill(same, 0.0)
        return (h.sum(1) / (~same).sum(1).clamp_min(1)).mean()
    if kind == "hinge-random":
        w = (~same).float()
        w = torch.where(has[:, None], w, torch.ones_like(w))
        j = torch.multinomial(w, 1, generator=gen).squeeze(1)
        sj = s.gather(1, j[:, None]).squeeze(1)
        return torch.where(has, (margin - pos + sj).clamp_min(0), torch.zeros_like(pos)).mean()
    raise ValueError(f"unknown loss {kind!r}")


def contrastive(q: Tensor, c: Tensor, same: Tensor, kind: str = "hardest", margin: float = 0.2, tau: float = 0.05,
                symmetric: bool = False, extra: Tensor | None = None, extra_same: Tensor | None = None) -> Tensor:
    """The batch loss of unit query vectors `q` [B, d] and code vectors `c` [B, d]; `extra` [K, d] more negatives
    with `extra_same` [B, K] marking those that are no negative (the true code's hash)."""
    s = (q @ c.T).float()
    if extra is not None and len(extra) and kind != "hinge-random":
        B = len(q)
        full = torch.cat([s, (q @ extra.T).float()], 1)
        fsame = torch.cat([same, extra_same], 1)
        # the positive stays at column i: _one_way reads the diagonal of the first B columns
        loss = _one_way_wide(full, fsame, B, kind, margin, tau)
    else:
        loss = _one_way(s, same, kind, margin, tau)
    if symmetric:
        loss = (loss + _one_way(s.T, same.T, kind, margin, tau)) / 2
    return loss


def _one_way_wide(s: Tensor, same: Tensor, B: int, kind: str, margin: float, tau: float) -> Tensor:
    """`_one_way` for a [B, B + K] score matrix whose first B columns are the batch's codes."""
    pos = s[:, :B].diagonal()
    neg = s.masked_fill(same, float("-inf"))
    has = ~same.all(1)
    if kind == "hardest":
        return torch.where(has, (margin - pos + neg.amax(1)).clamp_min(0), torch.zeros_like(pos)).mean()
    if kind == "hardest-softmax":
        hard = torch.where(has, neg.amax(1), torch.full_like(pos, float("-inf")))
        return (torch.logsumexp(torch.stack([pos, hard], 1) / tau, 1) - pos / tau).mean()
    if kind == "infonce":
        return (torch.logsumexp(torch.cat([pos[:, None], neg], 1) / tau, 1) - pos / tau).mean()
    if kind == "hinge-sum":
        h = (margin - pos[:, None] + s).clamp_min(0).masked_fill(same, 0.0)
        return (h.sum(1) / (~same).sum(1).clamp_min(1)).mean()
    raise ValueError(f"unknown loss {kind!r}")
