"""LARS (You, Gitman, Ginsburg 2017, "Large Batch Training of Convolutional Networks"), with `_foreach_` ops.

Per tensor p with gradient g, global lr γ, momentum μ, weight decay β, trust coefficient η:

    d ← g + β·p
    λ ← η·‖p‖/(‖g‖ + β·‖p‖)   (1 when ‖p‖ or ‖g‖ is 0)
    b ← μ·b + λ·d ;  p ← p − γ·b

as in the paper's Algorithm 1 with γ placed as PyTorch's SGD places it (equal to the paper's at constant lr;
timm's `Lars` with `trust_clip=False` does the same). `exclude_1d` (on by default, as
SimCLR/BYOL do) gives one-dimensional tensors (biases, norm scales) λ = 1 and no weight decay, so they take
plain SGD-momentum steps. Norms in fp32 on the device, no host sync; `lr` may be a 0-d tensor. `step()`
returns (and keeps in `last_stats`) `lars_trust_min/med/max` over the adapted tensors, as 0-d tensors.

Note on sizes: with η = 0.001 the step of an adapted tensor is γ·0.001 of its norm, so LARS wants a global
lr well above SGD's (the paper scales it with the batch, e.g. 2–30 for ResNet-50 at 8k–32k).
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import Tensor
from torch.optim import Optimizer


class LARS(Optimizer):
    """Layer-wise adaptive rate scaling with heavy-ball momentum; see the module docstring."""

    def __init__(self, params, lr=0.1, momentum=0.9, weight_decay=5e-4, eta=0.001, exclude_1d=True,
                 nesterov=False):
        if not isinstance(lr, Tensor) and not 0.0 <= float(lr):
            raise ValueError(f"invalid learning rate: {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"invalid momentum: {momentum} (in [0, 1))")
        if not 0.0 <= weight_decay:
            raise ValueError(f"invalid weight_decay: {weight_decay}")
        if not eta > 0.0:
            raise ValueError(f"invalid eta: {eta} (must be positive)")
        if nesterov and momentum == 0.0:
            raise ValueError("nesterov needs a momentum")
        super().__init__(params, dict(lr=lr, momentum=float(momentum), weight_decay=float(weight_decay),
                                      eta=float(eta), exclude_1d=bool(exclude_1d), nesterov=bool(nesterov)))
        self.last_stats: dict[str, Tensor] | None = None

    @torch.no_grad()
    def step(self, closure=None) -> dict[str, Tensor]:
        if closure is not None:
            with torch.enable_grad():
                closure()
        trusts: list[Tensor] = []
        for group in self.param_groups:
            buckets: dict[tuple, list] = defaultdict(lambda: ([], [], [], []))
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("LARS does not support sparse gradients")
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                b = buckets[(p.device, p.dtype)]
                b[0].append(p)
                b[1].append(p.grad)
                b[2].append(state["momentum_buffer"])
                b[3].append(not (group["exclude_1d"] and p.ndim <= 1))
            for params, grads, bufs, adapt in buckets.values():
                trusts.append(_lars_group(params, grads, bufs, adapt, lr=group["lr"], momentum=group["momentum"],
                                          weight_decay=group["weight_decay"], eta=group["eta"],
                                          nesterov=group["nesterov"]))
        trust = torch.cat([t.to(trusts[0].device) for t in trusts]) if trusts else torch.empty(0)
        if trust.numel() == 0:
            nan = torch.full((), float("nan"), device=trust.device)
            self.last_stats = {"lars_trust_min": nan, "lars_trust_med": nan.clone(), "lars_trust_max": nan.clone()}
        else:
            self.last_stats = {"lars_trust_min": trust.min(), "lars_trust_med": trust.median(),
                               "lars_trust_max": trust.max()}
        return self.last_stats


def _lars_group(params, grads, bufs, adapt, *, lr, momentum, weight_decay, eta, nesterov) -> Tensor:
    device, dtype = params[0].device, params[0].dtype
    idx = [i for i, a in enumerate(adapt) if a]
    d = list(grads)
    p_ad = [params[i] for i in idx]
    g_ad = [grads[i] for i in idx]
    neg_lr = -lr.to(device=device, dtype=torch.float32) if isinstance(lr, Tensor) else -float(lr)
    if idx:
        ndtype = torch.float64 if dtype == torch.float64 else torch.float32   # fp32 at least
        w_norm = torch.stack(torch._foreach_norm(p_ad, 2, dtype=ndtype))
        g_norm = torch.stack(torch._foreach_norm(g_ad, 2, dtype=ndtype))
        trust = torch.where((w_norm > 0) & (g_norm > 0), eta * w_norm / (g_norm + weight_decay * w_norm),
                            torch.ones_like(w_norm))
        d_ad = torch._foreach_add(g_ad, p_ad, alpha=weight_decay) if weight_decay else [g.clone() for g in g_ad]
        torch._foreach_mul_(d_ad, list(trust.to(dtype).unbind(0)))
        for k, i in enumerate(idx):
            d[i] = d_ad[k]
        trust = trust.to(torch.float32)
    else:
        trust = torch.empty(0, device=device, dtype=torch.float32)
    # b ← μ·b + λ·d  (γ applied at the update, so a changing lr does not rescale the stored momentum twice)
    torch._foreach_mul_(bufs, momentum)
    torch._foreach_add_(bufs, d)
    step = torch._foreach_add(d, bufs, alpha=momentum) if nesterov else [b.clone() for b in bufs]
    torch._foreach_mul_(step, neg_lr.to(dtype) if isinstance(neg_lr, Tensor) else neg_lr)
    torch._foreach_add_(params, step)
    return trust
