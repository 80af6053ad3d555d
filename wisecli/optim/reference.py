"""`ReferenceLAMBC`: the public LAMBC loop written plainly, one tensor at a time, `.item()` and all.

This is the shape of `jeffrey-fong/LAMBC`'s `lamb_optim/lambc.py` (re-written, not copied): for every
parameter, update m and v, form u = m/(√v + ε) + λ·p, take τ = ‖p‖/‖u‖ as a Python float (1 when a norm is
0), clip it, and add −η·τ·u. It is the oracle of the tests for the foreach `LAMBC` and the "looping peer" of
the benchmark. It takes the same options as `LAMBC` (`clip_low`, `bias_correction`, `decoupled_decay`,
`exclude_1d`) so every mode has an oracle; with the defaults it is the public rule.

`step()` returns the list of τ (Python floats, after clipping) of the adapted tensors, as the public code
returns its `trust_list`.
"""

from __future__ import annotations

import math

import torch
from torch.optim import Optimizer


class ReferenceLAMBC(Optimizer):
    def __init__(self, params, lr=0.01, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, clip=1.0,
                 clip_low=None, bias_correction=False, decoupled_decay=False, exclude_1d=False):
        if clip is not None and math.isinf(float(clip)):
            clip = None
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, clip=clip, clip_low=clip_low,
                        bias_correction=bias_correction, decoupled_decay=decoupled_decay, exclude_1d=exclude_1d)
        super().__init__(params, defaults)

    def reset_state(self):
        self.state.clear()

    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None:
            with torch.enable_grad():
                closure()
        trust_list = []
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                state["step"] += 1
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)

                m, v = exp_avg, exp_avg_sq
                if group["bias_correction"]:
                    m = m / (1 - beta1 ** state["step"])
                    v = v / (1 - beta2 ** state["step"])
                adam_step = m / (v.sqrt() + group["eps"])

                adapt = not (group["exclude_1d"] and p.dim() <= 1)
                lr = float(group["lr"])
                if not adapt:
                    p.add_(adam_step, alpha=-lr)
                    continue

                weight_norm = p.pow(2).sum().sqrt()
                if group["weight_decay"] != 0 and not group["decoupled_decay"]:
                    adam_step = adam_step + group["weight_decay"] * p
                adam_norm = adam_step.pow(2).sum().sqrt()
                if weight_norm.item() == 0 or adam_norm.item() == 0:
                    trust_ratio = 1.0
                else:
                    trust_ratio = (weight_norm / adam_norm).item()
                if group["clip"] is not None and trust_ratio > group["clip"]:
                    trust_ratio = group["clip"]
                if group["clip_low"] is not None and trust_ratio < group["clip_low"]:
                    trust_ratio = group["clip_low"]
                if group["weight_decay"] != 0 and group["decoupled_decay"]:
                    p.mul_(1 - lr * group["weight_decay"])
                p.add_(adam_step, alpha=-lr * trust_ratio)
                trust_list.append(trust_ratio)
        return trust_list
