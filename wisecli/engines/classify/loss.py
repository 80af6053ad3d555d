"""Losses of `wise classify`: CE, focal (Lin et al. 2017, gamma 2), class-balanced (Cui et al. 2019, beta 0.999)
and the class-wise difficulty-balanced (CDB) loss (Sinha, Ohashi, Nakamura, ACCV 2020; `hitachi-rd-cv/CDB-loss`).

CDB: with validation accuracy A_c, difficulty d_c = 1 - A_c, w_c = d_c^tau normalised to sum(w) = C; the loss of
a sample is -w_y log softmax(f(x))_y, reduced by a plain batch mean (`cdb_reduction="mean"`, the CIFAR-LT script)
or divided by sum_i w_{y_i} (`"weighted-mean"`, the ImageNet-LT script). Training starts from d = 1 (epoch 1 is CE).

Dynamic tau with b = max A_c / (min A_c + 0.01) has two forms in the public code:
- `"dynamic"` = 2 sigmoid(b - 1) (ImageNet-LT `CDBSoftmaxLoss.py`): ~1 when classes are equally hard, up to 2 as
  they spread. OUR DEFAULT [reconstructed]: it is the form that follows the paper's motivation.
- `"dynamic-sigmoid"` = sigmoid(b) (the CIFAR-LT/EGTEA scripts that were run): 1.000 for A in [0.1, 0.9].
- a number fixes tau.
Open cases [reconstructed]: a class at 100 % accuracy gets w = 0, floored at `min_weight` (default 0: as the repo);
all classes at 100 % (NaN in the repo) gives uniform weights and `all_solved=True` (the caller warns).

Class-balanced: w_c = (1 - beta) / (1 - beta^n_c) normalised to sum(w) = C, applied to CE, plain batch mean.
Focal: -(1 - p_y)^gamma log p_y, plain batch mean (the CDB repo's focal baseline is broken as shipped).
All computations stay on the device; nothing calls `.item()`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOSSES = ("ce", "focal", "class-balanced", "cdb")
TAU_FORMS = ("dynamic", "dynamic-sigmoid")


def parse_tau(tau) -> str | float:
    """`"dynamic"`, `"dynamic-sigmoid"` or a finite number >= 0; anything else raises ValueError."""
    if isinstance(tau, str):
        t = tau.strip().lower()
        if t in TAU_FORMS:
            return t
        try:
            tau = float(t)
        except ValueError:
            raise ValueError(f"--tau {tau!r}: give dynamic, dynamic-sigmoid or a number >= 0") from None
    value = float(tau)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"--tau {tau!r}: give dynamic, dynamic-sigmoid or a number >= 0")
    return value


def cdb_tau(acc: Tensor, tau: str | float) -> Tensor:
    """tau for per-class accuracies `acc` (C,): a 0-d tensor on acc's device."""
    tau = parse_tau(tau)
    acc = acc.float()
    if isinstance(tau, float):
        return torch.full((), tau, device=acc.device)
    b = acc.max() / (acc.min() + 0.01)
    return 2 * torch.sigmoid(b - 1) if tau == "dynamic" else torch.sigmoid(b)


def cdb_weights(acc: Tensor, tau: str | float, min_weight: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
    """(w (C,) with sum C, tau 0-d, all_solved 0-d bool) from per-class accuracies `acc` in [0, 1]."""
    acc = acc.float().clamp(0, 1)
    c = acc.numel()
    t = cdb_tau(acc, tau)
    d = 1 - acc
    w = d.pow(t)
    if min_weight > 0:
        w = w.clamp_min(min_weight)
    total = w.sum()
    solved = total <= 0
    w = torch.where(solved, torch.ones_like(w), w * c / total.clamp_min(1e-30))
    return w, t, solved


class CDBLoss(nn.Module):
    """The CDB loss with its class weights as a buffer (renewed by `update(acc)` after each validation, restored
    from `checkpoint_extra` on resume). Starts from d = 1: uniform weights, so the first epoch is CE."""

    def __init__(self, num_classes: int, tau: str | float = "dynamic", reduction: str = "mean",
                 min_weight: float = 0.0):
        super().__init__()
        if reduction not in ("mean", "weighted-mean"):
            raise ValueError(f"cdb_reduction must be mean or weighted-mean, not {reduction!r}")
        self.tau, self.reduction, self.min_weight = parse_tau(tau), reduction, float(min_weight)
        self.register_buffer("weights", torch.ones(num_classes))
        self.register_buffer("last_tau", torch.ones(()))
        self.register_buffer("all_solved", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def update(self, acc: Tensor) -> None:
        """Renew the weights in place from per-class validation accuracies (C,)."""
        w, t, solved = cdb_weights(acc.to(self.weights.device), self.tau, self.min_weight)
        self.weights.copy_(w)
        self.last_tau.copy_(t)
        self.all_solved.copy_(solved)

    def forward(self, logits: Tensor, y: Tensor) -> Tensor:
        logp = F.log_softmax(logits.float(), dim=-1).gather(-1, y[:, None]).squeeze(-1)
        w = self.weights[y]
        if self.reduction == "mean":
            return -(w * logp).mean()
        return -(w * logp).sum() / w.sum()


class FocalLoss(nn.Module):
    """Focal loss -(1 - p_y)^gamma log p_y, batch mean."""

    def __init__(self, gamma: float = 2.0):
        super().__init__()
        self.gamma = float(gamma)

    def forward(self, logits: Tensor, y: Tensor) -> Tensor:
        logp = F.log_softmax(logits.float(), dim=-1).gather(-1, y[:, None]).squeeze(-1)
        return (-(1 - logp.exp()).pow(self.gamma) * logp).mean()


def class_balanced_weights(counts, beta: float = 0.999) -> Tensor:
    """Cui et al.'s weights (1 - beta) / (1 - beta^n_c), normalised to sum C (a class with n = 0 gets 0)."""
    n = torch.as_tensor(counts, dtype=torch.float64)
    eff = (1 - beta ** n) / (1 - beta)
    w = torch.where(n > 0, 1.0 / eff.clamp_min(1e-12), torch.zeros_like(n))
    return (w * n.numel() / w.sum()).float()


class WeightedCE(nn.Module):
    """CE with fixed class weights, plain batch mean of w_y * CE (class-balanced)."""

    def __init__(self, weights: Tensor):
        super().__init__()
        self.register_buffer("weights", torch.as_tensor(weights, dtype=torch.float32))

    def forward(self, logits: Tensor, y: Tensor) -> Tensor:
        logp = F.log_softmax(logits.float(), dim=-1).gather(-1, y[:, None]).squeeze(-1)
        return -(self.weights[y] * logp).mean()


class CELoss(nn.Module):
    """Plain cross-entropy (fp32 log-softmax)."""

    def forward(self, logits: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(logits.float(), y)


def build_loss(name: str, num_classes: int, *, counts=None, tau="dynamic", reduction="mean", min_weight=0.0,
               gamma: float = 2.0, beta: float = 0.999) -> nn.Module:
    """The loss module for `--loss` (ce, focal, class-balanced, cdb)."""
    if name == "ce":
        return CELoss()
    if name == "focal":
        return FocalLoss(gamma)
    if name == "class-balanced":
        return WeightedCE(class_balanced_weights(counts if counts is not None else [1] * num_classes, beta))
    if name == "cdb":
        return CDBLoss(num_classes, tau, reduction, min_weight)
    raise ValueError(f"unknown loss {name!r}")
