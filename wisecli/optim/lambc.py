"""LAMBC and LAMB: layer-wise adaptive moments with a clipped trust ratio, written with `_foreach_` ops.

LAMBC (Fong, Chen, Chen, arXiv 2011.13584; public code `jeffrey-fong/LAMBC` `lamb_optim/lambc.py`) is LAMB
with the per-layer trust ratio ‖w‖/‖u‖ clipped from above. Per tensor p ("layer") with gradient g:

    m ← β1·m + (1−β1)·g ;  v ← β2·v + (1−β2)·g²      (no bias correction: paper v3, as the public code)
    u ← m/(√v + ε) + λ·p                              (the L2 term is added before the norm)
    τ ← ‖p‖/‖u‖ (1 when either norm is 0) ;  τ ← min(τ, c)     (LAMB: no min)
    p ← p − η·τ·u

Defaults follow the public code's README and `main.py`: β = (0.9, 0.999), ε = 1e-6, λ = 0, c = 1.0 (the
constructor's own default there is 10). Only the upper clip, as upstream since commit 505465f.

Options (all off by default, so the default is the public rule):
- `clip_low`: a lower bound too (two-sided, DeepSpeed `FusedLamb` style [0.01, 10]); it also applies to the
  τ = 1 of a zero-norm tensor, exactly as the upper bound does (a zero-norm tensor gets clamp(1, lo, c)).
- `bias_correction`: Adam's m/(1−β1^t), v/(1−β2^t) (t counted per tensor, reset by `reset_state`).
- `decoupled_decay`: λ is not added to u; instead p ← p·(1 − η·λ) before the update (AdamW style), so the
  decay is not scaled by τ and does not enter ‖u‖.
- `exclude_1d`: tensors with one dimension (biases, norm scales) get τ = 1 and no weight decay (timm's
  convention; the public code adapts every tensor).

Quirks of the public code that are NOT copied: a new optimizer (m, v reset) every epoch and a constant lr
(`--faithful` in the engine restores both; `reset_state()` is the reset); `--clip` parsed as `type=bool`;
one `.item()` per tensor per step.

Implementation: tensors are grouped by (device, dtype); m, v and u come from `_foreach_` ops; the norms from
`torch._foreach_norm` in fp32; τ = where(both > 0, ‖p‖/‖u‖, 1).clamp(lo, hi) is computed on the device and
the update is `_foreach_addcmul_(p, u, −η·τ_i)` (m uses `_foreach_lerp_`, one pass). There is no `.item()` and no host
sync in `step`; `lr` may be a float or a 0-d tensor (on the device or the CPU). `compile_step=True` runs the
per-group update through `torch.compile` (a float lr is then passed as a cached 0-d device tensor, refilled when
a schedule changes it, so the compiled graph is not re-specialised for each lr).

`step()` returns (and keeps in `self.last_stats`) a dict of 0-d device tensors: `lambc_tau_min`,
`lambc_tau_med` (the lower median), `lambc_tau_max` over the adapted tensors (after clipping) and
`lambc_clipped`, the fraction of adapted tensors whose raw ratio was clipped (by either bound). With no
adapted tensor they are NaN (and `lambc_clipped` 0). The training loop ignores `step`'s return value, so an
engine reads `optimizer.last_stats` after each step.
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch
from torch import Tensor
from torch.optim import Optimizer

STAT_KEYS = ("lambc_tau_min", "lambc_tau_med", "lambc_tau_max", "lambc_clipped")


def _bound(value, name: str) -> float | None:
    """None or a positive float; None / inf / 'none' mean no bound."""
    if value is None:
        return None
    if isinstance(value, str):
        if value.strip().lower() in ("none", "inf", "infinity", "off"):
            return None
        value = float(value)
    value = float(value)
    if math.isinf(value) and value > 0:
        return None
    if not value > 0 or math.isnan(value):
        raise ValueError(f"{name} must be positive (or None for no bound), got {value}")
    return value


def _lambc_group_update(params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor],
                        exp_avg_sqs: list[Tensor], steps: list[Tensor], adapt: list[bool], *, lr, beta1: float,
                        beta2: float, eps: float, weight_decay: float, lo: float | None, hi: float | None,
                        bias_correction: bool, decoupled_decay: bool) -> tuple[Tensor, Tensor]:
    """One LAMBC update of tensors that share a device and dtype; returns (τ after clipping, clipped flag)
    as 1-D tensors over the adapted tensors of this group (float32, on the device)."""
    device = params[0].device
    torch._foreach_add_(steps, 1.0)
    torch._foreach_lerp_(exp_avgs, grads, 1.0 - beta1)       # m ← β1·m + (1−β1)·g in one pass
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1.0 - beta2)

    denom = torch._foreach_sqrt(exp_avg_sqs)
    if bias_correction:
        # per-tensor t as device tensors, no host sync: bc = 1 − β^t = −expm1(t·log β), accurate in fp32
        # (1 − 0.999^t in fp32 arithmetic loses 4 digits at t = 1)
        cdt = torch.float64 if params[0].dtype == torch.float64 else torch.float32
        bc1 = [-torch.expm1(s.to(cdt) * math.log(beta1)) if beta1 > 0 else torch.ones((), dtype=cdt, device=device)
               for s in steps]
        bc2_sqrt = [torch.sqrt(-torch.expm1(s.to(cdt) * math.log(beta2))) if beta2 > 0
                    else torch.ones((), dtype=cdt, device=device) for s in steps]
        torch._foreach_div_(denom, bc2_sqrt)
        torch._foreach_add_(denom, eps)
        update = torch._foreach_div(exp_avgs, denom)
        torch._foreach_div_(update, bc1)
    else:
        torch._foreach_add_(denom, eps)
        update = torch._foreach_div(exp_avgs, denom)

    idx = [i for i, a in enumerate(adapt) if a]
    rest = [i for i, a in enumerate(adapt) if not a]
    p_ad = [params[i] for i in idx]
    u_ad = [update[i] for i in idx]
    if weight_decay != 0.0 and idx and not decoupled_decay:
        torch._foreach_add_(u_ad, p_ad, alpha=weight_decay)   # u ← u + λ·p, inside the norm
    neg_lr = -lr.to(device=device, dtype=torch.float32) if isinstance(lr, Tensor) else -float(lr)
    if idx:
        ndtype = torch.float64 if params[0].dtype == torch.float64 else torch.float32   # fp32 at least
        w_norm = torch.stack(torch._foreach_norm(p_ad, 2, dtype=ndtype))
        u_norm = torch.stack(torch._foreach_norm(u_ad, 2, dtype=ndtype))
        raw = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, torch.ones_like(w_norm))
        tau = raw.clamp(min=lo, max=hi) if (lo is not None or hi is not None) else raw
        clipped = (tau != raw).to(torch.float32)
        scale = (tau * neg_lr).to(params[0].dtype)
        tau = tau.to(torch.float32)
        if weight_decay != 0.0 and decoupled_decay:
            # p ← p·(1 − η·λ) (AdamW style: τ used the norm before the decay, as AdamW decays first)
            factor = 1.0 + neg_lr * weight_decay
            torch._foreach_mul_(p_ad, factor.to(params[0].dtype) if isinstance(factor, Tensor) else factor)
        # p ← p + (−η·τ)·u in one pass per tensor (foreach has no fast path for per-tensor 0-d scalars)
        torch._foreach_addcmul_(p_ad, u_ad, list(scale.unbind(0)))
    else:
        tau = torch.empty(0, device=device, dtype=torch.float32)
        clipped = torch.empty(0, device=device, dtype=torch.float32)
    if rest:
        p_rest = [params[i] for i in rest]
        u_rest = [update[i] for i in rest]
        if isinstance(neg_lr, Tensor):
            torch._foreach_addcmul_(p_rest, u_rest, [neg_lr.to(params[0].dtype)] * len(rest))
        else:
            torch._foreach_add_(p_rest, u_rest, alpha=neg_lr)
    return tau, clipped


class LAMBC(Optimizer):
    """LAMB with the trust ratio clipped from above (`clip`); `clip=None` (or inf) is LAMB. See the module
    docstring for the rule, the options and what `step()` returns."""

    def __init__(self, params, lr=0.01, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, clip=1.0,
                 clip_low=None, bias_correction=False, decoupled_decay=False, exclude_1d=False,
                 compile_step=False):
        if not isinstance(lr, Tensor) and not 0.0 <= float(lr):
            raise ValueError(f"invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"invalid eps: {eps}")
        betas = tuple(float(b) for b in betas)
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"invalid betas: {betas} (each in [0, 1))")
        if not 0.0 <= weight_decay:
            raise ValueError(f"invalid weight_decay: {weight_decay}")
        hi = _bound(clip, "clip")
        lo = _bound(clip_low, "clip_low")
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"clip_low {lo} is above clip {hi}")
        defaults = dict(lr=lr, betas=betas, eps=float(eps), weight_decay=float(weight_decay), clip=hi,
                        clip_low=lo, bias_correction=bool(bias_correction), decoupled_decay=bool(decoupled_decay),
                        exclude_1d=bool(exclude_1d))
        super().__init__(params, defaults)
        self.compile_step = bool(compile_step)
        self._update = _lambc_group_update
        if self.compile_step:
            self._update = torch.compile(_lambc_group_update, dynamic=False)
        self.last_stats: dict[str, Tensor] | None = None

    def _lr_tensor(self, key: int, device: torch.device, value: float) -> Tensor:
        """A 0-d device tensor holding a float lr, refilled (a kernel, no sync) when the schedule changes it,
        so a compiled step is not re-specialised for every new lr."""
        cache = self.__dict__.setdefault("_lr_cache", {})
        old = cache.get((key, device))
        if old is None:
            cache[(key, device)] = (value, torch.full((), value, dtype=torch.float32, device=device))
        elif old[0] != value:
            old[1].fill_(value)
            cache[(key, device)] = (value, old[1])
        return cache[(key, device)][1]

    def _state_for(self, p: Tensor) -> dict:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        elif state["step"].device != p.device:  # a state_dict loaded on another device keeps `step` there
            state["step"] = state["step"].to(p.device)
        return state

    @torch.no_grad()
    def reset_state(self) -> None:
        """Zero m, v and the step count of every tensor (the public code builds a new optimizer each epoch)."""
        for state in self.state.values():
            for key in ("exp_avg", "exp_avg_sq", "step"):
                if key in state:
                    state[key].zero_()

    @torch.no_grad()
    def step(self, closure=None) -> dict[str, Tensor]:
        if closure is not None:
            with torch.enable_grad():
                closure()
        taus: list[Tensor] = []
        flags: list[Tensor] = []
        for group in self.param_groups:
            buckets: dict[tuple, list] = defaultdict(lambda: ([], [], [], [], [], []))
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("LAMBC does not support sparse gradients")
                st = self._state_for(p)
                b = buckets[(p.device, p.dtype)]
                b[0].append(p)
                b[1].append(p.grad)
                b[2].append(st["exp_avg"])
                b[3].append(st["exp_avg_sq"])
                b[4].append(st["step"])
                b[5].append(not (group["exclude_1d"] and p.ndim <= 1))
            beta1, beta2 = group["betas"]
            for (params, grads, m, v, steps, adapt) in buckets.values():
                lr = group["lr"]
                if self.compile_step and not isinstance(lr, Tensor):
                    lr = self._lr_tensor(id(group), params[0].device, float(lr))
                tau, clipped = self._update(
                    params, grads, m, v, steps, adapt, lr=lr, beta1=beta1, beta2=beta2, eps=group["eps"],
                    weight_decay=group["weight_decay"], lo=group["clip_low"], hi=group["clip"],
                    bias_correction=group["bias_correction"], decoupled_decay=group["decoupled_decay"])
                taus.append(tau)
                flags.append(clipped)
        first = next((p for g in self.param_groups for p in g["params"]), None)
        self.last_stats = _stats(taus, flags, first.device if first is not None else torch.device("cpu"))
        return self.last_stats


def _stats(taus: list[Tensor], flags: list[Tensor], default_device: torch.device) -> dict[str, Tensor]:
    if not taus:
        nan = torch.full((), float("nan"), device=default_device)
        return {"lambc_tau_min": nan, "lambc_tau_med": nan.clone(), "lambc_tau_max": nan.clone(),
                "lambc_clipped": torch.zeros((), device=default_device)}
    device = taus[0].device
    tau = torch.cat([t.to(device) for t in taus])
    flag = torch.cat([f.to(device) for f in flags])
    if tau.numel() == 0:
        nan = torch.full((), float("nan"), device=device)
        return {"lambc_tau_min": nan, "lambc_tau_med": nan.clone(), "lambc_tau_max": nan.clone(),
                "lambc_clipped": torch.zeros((), device=device)}
    return {"lambc_tau_min": tau.min(), "lambc_tau_med": tau.median(), "lambc_tau_max": tau.max(),
            "lambc_clipped": flag.mean()}


class LAMB(LAMBC):
    """LAMB (You et al. 2019) as in the LAMBC code: LAMBC without the clip (`clip=None`)."""

    def __init__(self, params, **kw):
        if "clip" in kw and _bound(kw["clip"], "clip") is not None:
            raise ValueError("LAMB has no clip; use LAMBC(clip=...)")
        kw["clip"] = None
        super().__init__(params, **kw)


class ResetOnEpoch(torch.utils.data.Sampler):
    """A sampler wrapper for `--faithful` LAMBC: `set_epoch(epoch)` (which the trainer calls at the start of
    every epoch, on every rank, also after `--resume`) first calls `optimizer.reset_state()` and then the
    wrapped sampler's own `set_epoch` if it has one (a `DistributedSampler`). Iteration and `len` are the
    wrapped sampler's. The public code builds a new optimizer every epoch; this is that reset."""

    def __init__(self, sampler, optimizer):
        self.sampler = sampler
        self.optimizer = optimizer

    def __iter__(self):
        return iter(self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)

    def set_epoch(self, epoch: int) -> None:
        self.optimizer.reset_state()
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
