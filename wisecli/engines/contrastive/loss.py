"""InfoNCE against a queue of negatives with per-row masking, and CLIM's mixed loss (spec §2.3, §2.5).

InfoNCE (van den Oord et al. 2018; MoCo, He et al. CVPR 2020): for a query q, its positive key k+ and queue
keys {k_m}, all unit vectors, with temperature tau,

    NCE(q, k+) = -log( exp(q.k+/tau) / (exp(q.k+/tau) + sum_m exp(q.k_m/tau)) ).

A queue entry whose stored image index is the anchor i or its positive j is removed from that row's negatives
(a positive must not also be a negative, spec §2.6). L_mix = lam NCE(q(x~), k_i) + (1 - lam) NCE(q(x~), k_j).
All functions return per-sample losses (B,) so the caller weights and averages them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def queue_mask(queue_idx: Tensor, *anchors: Tensor) -> Tensor:
    """(B, K) True where queue entry m holds the image of any of the given per-row indices (B,) each."""
    mask = torch.zeros(anchors[0].shape[0], queue_idx.shape[0], dtype=torch.bool, device=queue_idx.device)
    for a in anchors:
        mask |= queue_idx[None, :] == a.to(queue_idx.device)[:, None]
    return mask


def info_nce(q: Tensor, k_pos: Tensor, queue: Tensor, tau: float, mask: Tensor | None = None) -> Tensor:
    """Per-sample InfoNCE (B,) of queries q (B, D) with positives k_pos (B, D) against queue (K, D)."""
    pos = (q * k_pos).sum(1, keepdim=True)
    neg = q @ queue.T.to(q.dtype)
    if mask is not None:
        neg = neg.masked_fill(mask, float("-inf"))
    logits = torch.cat([pos, neg], 1).float() / tau
    return -F.log_softmax(logits, dim=1)[:, 0]


def mixed_nce(q_mix: Tensor, k_i: Tensor, k_j: Tensor, lam: Tensor, queue: Tensor, tau: float,
              mask: Tensor | None = None) -> Tensor:
    """Per-sample lam NCE(q~, k_i) + (1 - lam) NCE(q~, k_j)."""
    lam = lam.to(q_mix.dtype).float()
    return lam * info_nce(q_mix, k_i, queue, tau, mask) + (1 - lam) * info_nce(q_mix, k_j, queue, tau, mask)
