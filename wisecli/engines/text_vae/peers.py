"""The peers' side of `benchmark` (spec §7), written plainly after the reference code's shape:
- `reference_step`: one TWR training step as ruizheliUOA/TWR-VAE runs it: padded batches through unpacked RNNs,
  batches in one fixed order, the TWR KL summed over the padded positions and divided by the padded length.
- `iw_nll_batch1`: jxhe/vae-lagging-encoder's `calc_iwnll` loop: one sentence at a time, its K samples in chunks.
- `reference_dialogue_step`: one dialogue TWR step as `dialogue_switchboard/train_swda.py` runs it: the
  recognition and prior networks called once per context position in a Python loop (padded positions
  included), the KL summed over positions, batch and dims and divided by the padded context length; z from
  q(z|x, c_T); batches in one fixed order.
"""

from __future__ import annotations

import math

import torch

from .loss import gaussian_kl
from .metrics import log_normal, log_std_normal
from .model import posterior, sample


def reference_step(model, opt, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    T = x.shape[1]
    full = torch.full_like(lengths, T)
    mu_t, lv_t = model.encode(x, lengths, packed=False)
    mu, lv = posterior(mu_t, lv_t, full, "last")
    z = sample(mu, lv)
    inp, tgt = x[:, :-1], x[:, 1:]
    e = model.drop(model.dec_emb(inp))
    e = torch.cat([e, z.unsqueeze(1).expand(-1, e.shape[1], -1)], -1)
    h = model.init(z).unsqueeze(0)
    out = model.dec_rnn(e, (h, h) if model.rnn_kind == "lstm" else h)[0]
    ce = torch.nn.functional.cross_entropy(model.out(out).transpose(1, 2), tgt, ignore_index=0, reduction="sum")
    loss = ce + gaussian_kl(mu_t, lv_t).sum() / T
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


@torch.no_grad()
def iw_nll_batch1(model, seqs: list[list[int]], k: int, chunk: int) -> torch.Tensor:
    dev = next(model.parameters()).device
    out = []
    for s in seqs:
        x = torch.tensor([s], device=dev)
        L = torch.tensor([len(s)], device=dev)
        mu_t, lv_t = model.encode(x, L)
        mu, lv = posterior(mu_t, lv_t, L, model.cfg["z_mode"])
        lws = []
        for c0 in range(0, k, chunk):
            c = min(chunk, k - c0)
            z = sample(mu, lv, c)
            ll = -model.decode_nll(x.expand(c, -1), L.expand(c), z)
            lws.append(ll + log_std_normal(z) - log_normal(z, mu.expand(c, -1), lv.expand(c, -1)))
        lw = torch.cat(lws)
        out.append(-(torch.logsumexp(lw, 0) - math.log(k)))
    return torch.stack(out)


def reference_dialogue_step(model, opt, batch: dict) -> torch.Tensor:
    """One reference-style TWR dialogue step on `model` (a `dialogue.DialogTWR`); same parameters as ours."""
    from .dialogue import gauss_kl

    cs, c = model.encode_context(batch["ctx"], batch["ctx_utt_len"], batch["ctx_len"], batch["floors"])
    x = model.encode_utts(batch["y"], batch["y_len"])
    mq, lq = model.recognition(x, c)
    z = mq + (0.5 * lq).exp() * torch.randn_like(mq)
    kl = cs.new_zeros(())
    for t in range(cs.shape[1]):  # the reference's per-position loop, pads included
        mq_t, lq_t = model.recognition(x, cs[:, t])
        mp_t, lp_t = model.prior(cs[:, t])
        kl = kl + gauss_kl(mq_t, lq_t, mp_t, lp_t).sum()
    loss = model.decode_nll(batch["y"], batch["y_len"], z, c).sum() + kl / cs.shape[1]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()
