"""The FM-module (feature mask module) and the task network it sits in front of.

Source: Liao, Latty, Yang, "Feature Selection Using Batch-Wise Attenuation and Feature Mask Normalization",
IJCNN 2021 (arXiv 2010.13631). For a mini-batch {x_i}:

    z_i = g(x_i)                       per-sample mask logits (the mask network)
    z̄   = (1/B) Σ_i z_i                batch-wise attenuation
    m   = softmax(z̄)                   feature-mask normalisation: m_j > 0, Σ m_j = 1
    x̃_i = s · (m ⊙ x_i)                masked input, s = 1 (default) or d
    ŷ_i = f(x̃_i)                       the task network, trained jointly on cross-entropy

After training the mask is read out over the whole training split (`readout`), never from one batch.

Choices where the paper is silent (spec §2): the `mlp` mask net keeps a LeakyReLU on its last layer as
in the google-research re-implementation; the `tanh` mask net has H = 64 hidden units with W2 ~ U(0.9, 1.1),
which makes the first mask nearly uniform; the default task net is d → 256 → 128 → C with ReLU and no
normalisation layer. The mean, the softmax and the read-out always run in fp32, because m_j ≈ 1/d and bf16's
8-bit mantissa would fill the ranking with ties; g and f may run under autocast.
"""

from __future__ import annotations

import torch
from torch import nn


class MlpMaskNet(nn.Module):
    """g(x) = LReLU(W3 LReLU(W2 LReLU(W1 x))) with widths d → 128 → 64 → d and slope 0.2."""

    def __init__(self, d: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(d, 128), nn.LeakyReLU(0.2),
            nn.Linear(128, 64), nn.LeakyReLU(0.2),
            nn.Linear(64, d), nn.LeakyReLU(0.2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TanhMaskNet(nn.Module):
    """g(x) = W2 tanh(W1 x + b1) + b2 with Glorot-uniform W1, b1 = 0, W2 ~ U(0.9, 1.1), b2 = 0."""

    def __init__(self, d: int, hidden: int = 64):
        super().__init__()
        self.hidden = nn.Linear(d, hidden)
        self.out = nn.Linear(hidden, d)
        nn.init.xavier_uniform_(self.hidden.weight)
        nn.init.zeros_(self.hidden.bias)
        nn.init.uniform_(self.out.weight, 0.9, 1.1)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.hidden(x)))


def make_mask_net(kind: str, d: int, hidden: int = 64) -> nn.Module:
    if kind == "mlp":
        return MlpMaskNet(d)
    if kind == "tanh":
        return TanhMaskNet(d, hidden)
    raise ValueError(f"unknown mask net {kind!r} (mlp|tanh)")


def make_task_net(kind: str, d: int, n_classes: int, hidden: tuple[int, ...] = (256, 128)) -> nn.Module:
    """`mlp`: d → hidden… → C with ReLU; `linear`: softmax regression d → C."""
    if kind == "linear":
        return nn.Linear(d, n_classes)
    if kind != "mlp":
        raise ValueError(f"unknown task net {kind!r} (mlp|linear)")
    layers: list[nn.Module] = []
    width = d
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)


def mask_from_logits(z: torch.Tensor) -> torch.Tensor:
    """Batch-wise attenuation then normalisation, in fp32: m = softmax(mean_i z_i)."""
    if not torch.is_autocast_enabled(z.device.type):  # nothing to switch off (the CPU path): no context to enter
        return torch.softmax(z.float().mean(dim=0), dim=0)
    with torch.autocast(device_type=z.device.type, enabled=False):
        return torch.softmax(z.float().mean(dim=0), dim=0)


class FMSelector(nn.Module):
    """Mask network g, task network f and the mask scale s (1 or d), trained as one model."""

    def __init__(self, mask_net: nn.Module, task_net: nn.Module, d: int, mask_scale: float = 1.0):
        super().__init__()
        self.mask_net = mask_net
        self.task_net = task_net
        self.d = d
        self.mask_scale = float(mask_scale)

    def batch_mask(self, x: torch.Tensor) -> torch.Tensor:
        """The mask of this mini-batch (used while training)."""
        return mask_from_logits(self.mask_net(x))

    def masked(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """x̃ = s · (m ⊙ x), in fp32."""
        return (x.float() * m) * self.mask_scale

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits; the mask is this batch's unless a fixed `mask` (the read-out) is given."""
        m = self.batch_mask(x) if mask is None else mask
        return self.task_net(self.masked(x, m)).float()


@torch.no_grad()
def readout_logits(mask_net: nn.Module, x: torch.Tensor, *, chunk: int = 4096, amp: bool = False) -> torch.Tensor:
    """z̄_full: the exact mean of g(x) over all rows of `x`, summed chunk by chunk in fp32, then divided by n.

    `amp=True` runs g under bf16 autocast (the sum stays fp32)."""
    total = torch.zeros(x.shape[1], dtype=torch.float32, device=x.device)
    for start in range(0, x.shape[0], chunk):
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=amp):
            z = mask_net(x[start:start + chunk])
        total += z.float().sum(dim=0)
    return total / x.shape[0]


def readout_mask(mask_net: nn.Module, x: torch.Tensor, *, chunk: int = 4096, amp: bool = False) -> torch.Tensor:
    """m = softmax(z̄_full), the selection scores (spec §2 step 7)."""
    was_training = mask_net.training
    if was_training:  # eval() walks the modules: skipped when already there (validate runs in eval mode)
        mask_net.eval()
    try:
        return torch.softmax(readout_logits(mask_net, x, chunk=chunk, amp=amp), dim=0)
    finally:
        if was_training:
            mask_net.train()


def rank_features(scores: torch.Tensor) -> torch.Tensor:
    """Column indices by score, descending; equal scores go by the lower column index (a stable sort)."""
    return torch.argsort(-scores.detach().float().cpu(), stable=True)


def default_k(scores: torch.Tensor) -> int:
    """k_default = #{j : m_j ≥ 1/d}: the features weighted above uniform (at least 1)."""
    d = scores.numel()
    return max(1, int((scores.detach().float().cpu() >= 1.0 / d).sum()))


def mask_entropy(scores: torch.Tensor) -> float:
    """Shannon entropy of the mask in nats (log d for a uniform mask)."""
    p = scores.detach().float().clamp_min(1e-30)
    return float(-(p * p.log()).sum())
