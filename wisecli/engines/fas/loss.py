"""Losses of the four supervision modes of Yu et al., "Revisiting Pixel-Wise Supervision for Face
Anti-Spoofing" (T-BIOM 2021).

* `binary`: BCE-with-logits on one logit per face (bona fide = 1).
* `binary-mask`: per-cell BCE-with-logits against the face-region mask (zeros for attacks); `aux_binary` adds
  that weight times a binary BCE (as PixBiS, George & Marcel, ICB 2019).
* `depth-map`: MSE + contrastive depth loss (CDL) 1:1 (CDCN, Yu et al., CVPR 2020). CDL convolves prediction
  and target with eight fixed 3×3 kernels (+1 at one neighbour, −1 at the centre) and averages the MSEs. The
  convolution is *valid* (no padding), so the border adds no artificial contrast [reconstructed]. The kernels are
  a registered buffer, built once (the reference rebuilt them from NumPy every step).
* `pyramid`: Σ_s w_s·ℓ(AvgPool_s P, AvgPool_s G) / Σ_s w_s over output sizes s that divide the map size, pool
  kernel = stride = map/s [reconstructed: the paper's scales and weights could not be verified]. For masks ℓ is
  BCE between pooled *probabilities* and pooled soft targets, clamped to [1e-6, 1 − 1e-6] and computed in fp32
  outside autocast (BCE-with-logits is invalid after pooling); for depth ℓ is MSE, with CDL added at the finest
  level only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wisecli.cli.errors import InputError

EPS = 1e-6


def parse_pyramid(map_size: int, scales, weights=None) -> tuple[list[int], list[float]]:
    """Validate pyramid output sizes (each must divide `map_size`) and non-negative weights (default all 1)."""
    if isinstance(scales, str):
        try:
            scales = [int(s) for s in scales.split(",") if s.strip()]
        except ValueError:
            raise InputError(f"--pyramid-scales must be integers, got {scales!r}",
                             "give output sizes such as 32,16,8,4,2,1") from None
    scales = [int(s) for s in scales]
    if not scales:
        raise InputError("--pyramid-scales is empty", "give output sizes such as 32,16,8,4,2,1")
    for s in scales:
        if s < 1 or map_size % s != 0:
            divisors = ",".join(str(d) for d in range(map_size, 0, -1) if map_size % d == 0)
            raise InputError(f"pyramid scale {s} does not divide the map size {map_size}",
                             f"use divisors of {map_size}: {divisors}")
    if len(set(scales)) != len(scales):
        raise InputError(f"pyramid scales repeat: {scales}", "list each output size once")
    if weights is None or weights == "":
        weights = [1.0] * len(scales)
    elif isinstance(weights, str):
        try:
            weights = [float(w) for w in weights.split(",") if w.strip()]
        except ValueError:
            raise InputError(f"--pyramid-weights must be numbers, got {weights!r}", "e.g. 1,1,1,1,1,1") from None
    weights = [float(w) for w in weights]
    if len(weights) != len(scales):
        raise InputError(f"{len(weights)} pyramid weights for {len(scales)} scales",
                         "give one weight per scale, or leave --pyramid-weights out for all 1")
    if any(w < 0 or w != w for w in weights):
        raise InputError(f"pyramid weights must be non-negative, got {weights}", "use weights >= 0")
    if sum(weights) <= 0:
        raise InputError("pyramid weights sum to 0", "give at least one positive weight")
    return scales, weights


def pool_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Average-pool a (B, 1, S, S) map to size² with kernel = stride = S/size."""
    k = x.shape[-1] // size
    return x if k == 1 else F.avg_pool2d(x, k, k)


class ContrastDepthLoss(nn.Module):
    """CDL (Yu et al., CVPR 2020): mean over 8 neighbour-minus-centre kernels of MSE(K∗P, K∗G)."""

    def __init__(self):
        super().__init__()
        k = torch.zeros(8, 1, 3, 3)
        offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
        for n, (dy, dx) in enumerate(offsets):
            k[n, 0, 1 + dy, 1 + dx] = 1.0
            k[n, 0, 1, 1] = -1.0
        self.register_buffer("kernels", k, persistent=False)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        k = self.kernels.to(pred.dtype)
        return F.mse_loss(F.conv2d(pred, k), F.conv2d(target.to(pred.dtype), k))


def mask_bce_prob(prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE between probabilities and soft targets, clamped, always fp32 and outside autocast."""
    with torch.autocast(device_type=prob.device.type, enabled=False):
        p = prob.float().clamp(EPS, 1 - EPS)
        return F.binary_cross_entropy(p, target.float())


class FASLoss(nn.Module):
    """The loss of one supervision mode; returns (loss, per-term metrics)."""

    def __init__(self, supervision: str, *, map_size: int = 32, pyramid_base: str = "binary-mask",
                 scales=None, weights=None, aux_binary: float = 0.0):
        super().__init__()
        self.supervision = supervision
        self.base = pyramid_base if supervision == "pyramid" else supervision
        self.aux_binary = float(aux_binary) if supervision != "binary" else 0.0
        self.cdl = ContrastDepthLoss()
        if supervision == "pyramid":
            self.scales, self.weights = parse_pyramid(map_size, scales if scales is not None else
                                                      [s for s in (32, 16, 8, 4, 2, 1) if map_size % s == 0],
                                                      weights)
        else:
            self.scales, self.weights = [], []

    def pyramid_terms(self, pred_map: torch.Tensor, target: torch.Tensor) -> list[torch.Tensor]:
        """ℓ at each level (finest first as given), before weighting."""
        finest = max(self.scales)
        terms = []
        if self.base == "depth-map":
            for s in self.scales:
                p, g = pool_to(pred_map, s), pool_to(target.to(pred_map.dtype), s)
                t = F.mse_loss(p, g)
                if s == finest:
                    t = t + self.cdl(p, g)
                terms.append(t)
        else:
            prob = torch.sigmoid(pred_map.float())
            for s in self.scales:
                terms.append(mask_bce_prob(pool_to(prob, s), pool_to(target.float(), s)))
        return terms

    def forward(self, out: dict, label: torch.Tensor, target: torch.Tensor | None = None):
        label = label.float()
        metrics: dict[str, float] = {}
        if self.supervision == "binary":
            loss = F.binary_cross_entropy_with_logits(out["logit"].float(), label)
            metrics["loss_binary"] = float(loss.detach())
            return loss, metrics
        pred = out["map"]
        if self.supervision == "pyramid":
            terms = self.pyramid_terms(pred, target)
            w = torch.tensor(self.weights, device=pred.device, dtype=torch.float32)
            loss = (torch.stack([t.float() for t in terms]) * w).sum() / w.sum()
            for s, t in zip(self.scales, terms):
                metrics[f"loss_level_{s}"] = float(t.detach())
        elif self.supervision == "binary-mask":
            loss = F.binary_cross_entropy_with_logits(pred.float(), target.float())
            metrics["loss_mask"] = float(loss.detach())
        else:
            mse = F.mse_loss(pred, target.to(pred.dtype))
            cdl = self.cdl(pred, target)
            loss = (mse + cdl).float()
            metrics["loss_mse"], metrics["loss_cdl"] = float(mse.detach()), float(cdl.detach())
        if self.aux_binary > 0 and out.get("logit") is not None:
            b = F.binary_cross_entropy_with_logits(out["logit"].float(), label)
            metrics["loss_binary"] = float(b.detach())
            loss = loss + self.aux_binary * b
        return loss, metrics


def map_scores(pred_map: torch.Tensor, kind: str, score_mask: torch.Tensor) -> torch.Tensor:
    """Per-face score (spec §2.4): mean of the predicted map (probabilities for masks, ReLU output for depth) over
    the cells of the *binarised* face mask (threshold 0.5; the reference left its normaliser soft)."""
    m = pred_map.float()
    if kind == "mask":
        m = torch.sigmoid(m)
    sel = (score_mask >= 0.5).to(m.dtype)
    if sel.dim() == 2:
        sel = sel.expand(m.shape[0], 1, *sel.shape)
    denom = sel.sum(dim=(1, 2, 3)).clamp_min(1.0)
    return (m * sel).sum(dim=(1, 2, 3)) / denom
