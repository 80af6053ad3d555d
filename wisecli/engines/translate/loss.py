"""The multi-view loss: L = CE_ε(y|P) + β·CE_ε(y|A) + α·Σ_t ½[KL(p_t‖q_t) + KL(q_t‖p_t)] / n_tok.

- CE_ε is cross-entropy against (1−ε)·one-hot + ε/V (label smoothing over the whole vocabulary, as fairseq's
  `label_smoothed_cross_entropy` with ε/V per class); every term is summed over non-pad target tokens and
  divided by n_tok, the batch's target token count (all-reduced under DDP, and multiplied back by the world size
  because DDP averages the gradients).
- One fp32 log-softmax per view, shared by CE and KL.
- `kl_mode`: `sym` (gradients into both views), `sym-detach` (each direction treats the other distribution as a
  constant), `primary-teacher` (KL(sg(p)‖q) only: nothing flows into the primary path through the KL term).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

KL_MODES = ("sym", "sym-detach", "primary-teacher")


def smoothed_ce(lp: Tensor, target: Tensor, eps: float) -> Tensor:
    """Σ over non-pad positions of the label-smoothed cross-entropy; `lp` [B, T, V] log-probabilities."""
    mask = target != 0
    nll = -lp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    smooth = -lp.mean(-1)
    return (((1.0 - eps) * nll + eps * smooth) * mask).sum()


def kl_sum(lp_p: Tensor, lp_q: Tensor, mask: Tensor) -> Tensor:
    """Σ_t KL(p_t ‖ q_t) over positions where `mask` holds."""
    kl = (lp_p.exp() * (lp_p - lp_q)).sum(-1)
    return (kl * mask).sum()


def consistency(lp_p: Tensor, lp_q: Tensor, mask: Tensor, mode: str = "sym") -> Tensor:
    """Σ_t of the KL consistency term in `mode` (see the module docstring)."""
    if mode == "sym":  # KL(p‖q) + KL(q‖p) = Σ (p − q)(log p − log q): one pass instead of two
        return 0.5 * (((lp_p.exp() - lp_q.exp()) * (lp_p - lp_q)).sum(-1) * mask).sum()
    if mode == "sym-detach":
        return 0.5 * (kl_sum(lp_p.detach(), lp_q, mask) + kl_sum(lp_q.detach(), lp_p, mask))
    if mode == "primary-teacher":
        return kl_sum(lp_p.detach(), lp_q, mask)
    raise ValueError(f"kl_mode must be one of {KL_MODES}, not {mode!r}")


def _global_tokens(n: Tensor) -> tuple[Tensor, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        n = n.clone()
        dist.all_reduce(n)
        return n, dist.get_world_size()
    return n, 1


def multiview_loss(logits: list[Tensor], target: Tensor, *, eps: float = 0.1, alpha: float = 1.0,
                   beta: float = 1.0, kl_mode: str = "sym") -> tuple[Tensor, dict[str, Tensor]]:
    """The loss of one batch and its parts {ce_primary, ce_aux, kl, tgt_tokens} (detached tensors, per token).
    One logits tensor: the baseline's CE_ε alone."""
    mask = target != 0
    n_local = mask.sum()
    n, world = _global_tokens(n_local.float())
    n = n.clamp(min=1.0)
    lps = [F.log_softmax(x.float(), -1) for x in logits]
    ce_p = smoothed_ce(lps[0], target, eps) / n
    loss = ce_p
    zero = torch.zeros((), device=target.device)
    ce_a, kl = zero, zero
    if len(lps) > 1:
        ce_a = smoothed_ce(lps[1], target, eps) / n
        kl = consistency(lps[0], lps[1], mask, kl_mode) / n
        loss = loss + beta * ce_a + alpha * kl
    parts = {"ce_primary": ce_p.detach() * world, "ce_aux": ce_a.detach() * world, "kl": kl.detach() * world,
             "tgt_tokens": n_local.float() / target.shape[0]}
    return loss * world, parts
