"""Training losses of the BoT head plus the viewpoint loss (spec §2.4).

L = CE(logits; label smoothing 0.1) + batch-hard triplet(f_t; margin 0.3) + lambda_vp CE(viewpoint).
Batch-hard triplet (Hermans et al., "In Defense of the Triplet Loss", 2017): for each anchor, the farthest
positive and the nearest negative in the batch by Euclidean distance; hinge with the margin.
The viewpoint CE counts only labelled images (label -1 = unlabelled); a batch with none reports loss_vp = 0
and vp_acc = 0 so every step returns the same keys (rare with SPAN's labels: about 1/3 of VeRi is labelled, so
a 64-image batch almost surely holds some).  Without viewpoint supervision, pass vp_labels=None.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def batch_hard_triplet(feats: torch.Tensor, labels: torch.Tensor, margin: float = 0.3) -> torch.Tensor:
    """Mean over anchors of relu(max_pos d - min_neg d + margin); anchors without positives or negatives skip."""
    d = torch.cdist(feats.float(), feats.float()).clamp_min(1e-12)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=feats.device)
    pos = same & ~eye
    neg = ~same
    hardest_pos = d.masked_fill(~pos, float("-inf")).amax(1)
    hardest_neg = d.masked_fill(~neg, float("inf")).amin(1)
    ok = pos.any(1) & neg.any(1)
    if not ok.any():
        return feats.sum() * 0.0
    return F.relu(hardest_pos[ok] - hardest_neg[ok] + margin).mean()


def reid_losses(out: dict, ids: torch.Tensor, vp_labels: torch.Tensor | None, *, smoothing: float = 0.1,
                margin: float = 0.3, vp_weight: float = 1.0) -> tuple[torch.Tensor, dict]:
    """Total loss and its parts (loss_id, loss_tri, loss_vp, vp_acc) for one batch."""
    loss_id = F.cross_entropy(out["logits"].float(), ids, label_smoothing=smoothing)
    loss_tri = batch_hard_triplet(out["f_t"], ids, margin)
    total = loss_id + loss_tri
    parts = {"loss_id": float(loss_id.detach()), "loss_tri": float(loss_tri.detach())}
    if out.get("vp_logits") is not None and vp_labels is not None:
        labelled = vp_labels >= 0
        logits = out["vp_logits"].float()[labelled]
        if labelled.any():
            loss_vp = F.cross_entropy(logits, vp_labels[labelled])
            total = total + vp_weight * loss_vp
            parts["loss_vp"] = float(loss_vp.detach())
            parts["vp_acc"] = float((logits.argmax(1) == vp_labels[labelled]).float().mean())
        else:  # a batch without labelled images: same keys every step (the trainer averages them)
            parts["loss_vp"], parts["vp_acc"] = 0.0, 0.0
    return total, parts
