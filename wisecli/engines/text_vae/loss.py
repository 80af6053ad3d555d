"""The training objectives (spec §2.1–2.2), sum-reduced over the batch as the reference does.

- `twr`: Σ_batch [−log p(x|z) + R_TWR(x)], z ~ q of the decoded latent, R_TWR(x) = (1/|S|) Σ_{t∈S} KL_t over the
  kept positions S of sentence x (all its T_x = n + 2 positions, or the last round(T_x·p) of them for
  `kl_scope` lastP; at least one). **Ours:** the mean runs over the sentence's own positions; the reference
  divides a batch sum by the padded length, pads included.
- `vae`: Σ_batch [−log p(x|z) + β KL(q(z|x) ‖ N(0, I))] on the decoded latent only, β annealed by the caller.
- `lm`: Σ_batch −log p(x).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .model import posterior, sample

SCOPES = {"all": 1.0, "last75": 0.75, "last50": 0.5, "last25": 0.25, "last1": None}


def beta_at(step: int, kl_start: float, anneal_steps: int) -> float:
    """The annealed KL weight at global step `step` (0-based): linear from kl_start to 1, then 1."""
    if anneal_steps <= 0:
        return 1.0
    return min(1.0, kl_start + (1.0 - kl_start) * step / anneal_steps)


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) summed over the last dimension."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def scope_mask(lengths: Tensor, T: int, scope: str = "all") -> Tensor:
    """[B, T] bool: the positions whose KL the TWR term averages."""
    lengths = lengths.view(-1, 1)
    pos = torch.arange(T, device=lengths.device)[None, :]
    valid = pos < lengths
    p = SCOPES[scope]
    if p == 1.0:
        return valid
    keep = torch.ones_like(lengths) if p is None else torch.clamp(torch.round(lengths.double() * p).long(), min=1)
    return valid & (pos >= lengths - keep)


def twr_term(mu: Tensor, logvar: Tensor, lengths: Tensor, scope: str = "all") -> Tensor:
    """R_TWR per sentence [B]: the mean KL_t over the kept positions."""
    m = scope_mask(lengths.to(mu.device), mu.shape[1], scope).to(mu.dtype)
    return (gaussian_kl(mu, logvar) * m).sum(1) / m.sum(1)


def objective(model, x: Tensor, lengths: Tensor, *, beta: float = 1.0, kl_scope: str = "all",
              generator: torch.Generator | None = None) -> tuple[Tensor, dict]:
    """(the summed loss, per-sentence means {recon, kl, kl_twr, beta}) of one batch."""
    kind = model.kind
    if kind == "lm":
        rec = model.decode_nll(x, lengths, None)
        zero = rec.new_zeros(())
        return rec.sum(), {"recon": rec.mean(), "kl": zero, "kl_twr": zero}
    mu_t, lv_t = model.encode(x, lengths)
    mu, lv = posterior(mu_t, lv_t, lengths, model.cfg["z_mode"])
    z = sample(mu, lv, 1, generator)
    rec = model.decode_nll(x, lengths, z)
    kl = gaussian_kl(mu, lv)
    if kind == "twr":
        reg = twr_term(mu_t, lv_t, lengths, kl_scope)
        loss = (rec + reg).sum()
    else:
        reg = kl.new_zeros(())
        loss = (rec + beta * kl).sum()
    return loss, {"recon": rec.mean(), "kl": kl.mean().detach(), "kl_twr": reg.mean().detach()}
