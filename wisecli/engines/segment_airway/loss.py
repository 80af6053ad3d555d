"""General Union loss (GUL) and its ablations (Zheng et al., IEEE TMI 2021, §II-C; spec §2.2).

    L = 1 − (Σ w (p+σ)^0.7 g + 1) / (Σ w (αp + βg) + 1),   σ = 1e-4, β = 1 − α,

with p = sigmoid(logit), g ∈ {0,1} and w = d·g + (1 − g). The denominator is the weighted Tversky union
TP + αFP + βFN; with w ≡ 1 the loss is the root-Tversky loss. Sums are in fp32 and run over the whole batch
(`reduce="batch"`) or per sample, then averaged (`reduce="sample"`).

The weight d (reconstructed; the paper's maps are unpublished) comes from q = ((e+1)/(e_max+1))^0.5 and
d = 1 − m·q, m = (1−2α)/(1−α). Two distance maps e, chosen by `loss.dist_mode` (spec §2.2):
- `skeleton` (default): e = distance of a foreground voxel to the GT skeleton S in finest-spacing units,
  e_max per case (precomputed with the case cache): d = 1 − m/√(e_max+1) on the centreline, α/β at the
  widest wall.
- `nearest` (the variant of the public nnU-Net port, jeytseloh/bmey4-fyp-airway-seg `general_union.py`):
  e = min(distance to S, distance to the nearest background voxel), i.e. the Euclidean distance transform
  of G ∖ S, in finest-spacing units (0 on S, 1 for a non-skeleton voxel touching the background at the
  finest spacing), and e_max is the maximum over each patch's foreground after augmentation (`patch_q`).
  The weight is then highest on the centreline and just inside the wall, lowest halfway between. The port
  works in voxel units and takes one maximum over the whole batch; ours keeps the default's units and takes
  it per patch (per sample), as the spec words it.
"""

from __future__ import annotations

import numpy as np
import torch

SIGMA = 1e-4
ROOT = 0.7


def distance_weight(q: torch.Tensor, alpha: float) -> torch.Tensor:
    """d = 1 − m·q with m = (1 − 2α)/(1 − α) (spec §2.2)."""
    m = (1.0 - 2.0 * alpha) / (1.0 - alpha)
    return 1.0 - m * q.float()


def union_weight(q: torch.Tensor | None, g: torch.Tensor, alpha: float) -> torch.Tensor:
    """w = d·g + (1 − g); w ≡ 1 when no q map is given."""
    if q is None:
        return torch.ones_like(g, dtype=torch.float32)
    return distance_weight(q, alpha) * g + (1.0 - g)


def _sums(x: torch.Tensor, reduce: str) -> torch.Tensor:
    return x.flatten(1).sum(1) if reduce == "sample" else x.sum()


def general_union_loss(logit: torch.Tensor, g: torch.Tensor, q: torch.Tensor | None = None, *,
                       alpha: float = 0.1, reduce: str = "batch") -> torch.Tensor:
    """GUL of logits against a binary label `g` with an optional q map (same shape)."""
    p = torch.sigmoid(logit.float())
    g = g.float()
    w = union_weight(q, g, alpha)
    num = _sums(w * (p + SIGMA).pow(ROOT) * g, reduce) + 1.0
    den = _sums(w * (alpha * p + (1.0 - alpha) * g), reduce) + 1.0
    return (1.0 - num / den).mean()


def dice_loss(logit, g, reduce: str = "batch"):
    """Soft Dice 1 − (2Σpg + 1)/(Σp + Σg + 1) (Milletari et al. 2016), the paper's baseline."""
    p, g = torch.sigmoid(logit.float()), g.float()
    return (1.0 - (2 * _sums(p * g, reduce) + 1) / (_sums(p, reduce) + _sums(g, reduce) + 1)).mean()


def tversky_loss(logit, g, alpha: float = 0.05, reduce: str = "batch"):
    """Tversky loss 1 − (TP + 1)/(TP + αFP + βFN + 1) (Salehi et al. 2017), α = 0.05 as in the paper."""
    p, g = torch.sigmoid(logit.float()), g.float()
    tp = _sums(p * g, reduce)
    den = tp + alpha * _sums(p * (1 - g), reduce) + (1 - alpha) * _sums((1 - p) * g, reduce)
    return (1.0 - (tp + 1) / (den + 1)).mean()


LOSSES = ("gul", "root-tversky", "dice", "tversky")


def segmentation_loss(name: str, logit, g, q, alpha: float, reduce: str = "batch"):
    if name == "gul":
        return general_union_loss(logit, g, q, alpha=alpha, reduce=reduce)
    if name == "root-tversky":
        return general_union_loss(logit, g, None, alpha=alpha, reduce=reduce)
    if name == "dice":
        return dice_loss(logit, g, reduce)
    if name == "tversky":
        return tversky_loss(logit, g, 0.05, reduce)
    raise ValueError(f"unknown loss {name!r}")


def group_loss(logit_enc, logit_dec, g, q, *, name: str = "gul", alpha: float = 0.1,
               enc_weight: float = 1.0, reduce: str = "batch"):
    """Group supervision: loss(dec) + enc_weight · loss(enc) (spec §2.2)."""
    loss = segmentation_loss(name, logit_dec, g, q, alpha, reduce)
    if logit_enc is not None and enc_weight:
        loss = loss + enc_weight * segmentation_loss(name, logit_enc, g, q, alpha, reduce)
    return loss


DIST_MODES = ("skeleton", "nearest")


def skeleton_q(label: np.ndarray, skeleton: np.ndarray, spacing_zyx) -> np.ndarray:
    """q = ((e+1)/(e_max+1))^0.5 on the foreground (0 elsewhere), as float16; e = distance to the nearest
    skeleton voxel in units of the finest spacing (scipy EDT with anisotropic sampling)."""
    from scipy import ndimage

    q = np.zeros(label.shape, np.float16)
    fg = label > 0
    if not fg.any():
        return q
    sp = np.asarray(spacing_zyx, float)
    if skeleton.any():
        e = ndimage.distance_transform_edt(~(skeleton > 0), sampling=sp) / sp.min()
    else:
        e = ndimage.distance_transform_edt(fg, sampling=sp) / sp.min()
    ef = e[fg]
    q[fg] = np.sqrt((ef + 1.0) / (ef.max() + 1.0)).astype(np.float16)
    return q


def nearest_e(label: np.ndarray, skeleton: np.ndarray, spacing_zyx) -> np.ndarray:
    """e of `loss.dist_mode=nearest` on the foreground (0 elsewhere), as float16: the distance of each
    foreground voxel to the nearest skeleton or background voxel (EDT of G ∖ S) in finest-spacing units."""
    from scipy import ndimage

    fg = label > 0
    sp = np.asarray(spacing_zyx, float)
    inner = fg & ~(skeleton > 0)
    if not inner.any():
        return np.zeros(label.shape, np.float16)
    e = ndimage.distance_transform_edt(inner, sampling=sp) / sp.min()
    return e.astype(np.float16)


def patch_q(e: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """q = ((e+1)/(e_max+1))^0.5 on the foreground of each patch (0 elsewhere), e_max the largest e on that
    patch's foreground: the per-patch normalisation of `loss.dist_mode=nearest`. Shapes (B, 1, D, H, W)."""
    e = e.float() * g
    e_max = e.flatten(1).amax(1).view(-1, *([1] * (e.dim() - 1)))
    return torch.sqrt((e + 1.0) / (e_max + 1.0)) * g
