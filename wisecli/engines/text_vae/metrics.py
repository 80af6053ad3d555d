"""Honest evaluation of text VAEs (spec §5) and the reference's numbers (`as-coded`, §2.4), in eval mode.

A sentence of n words has n + 1 predicted tokens. q(z|x) is the posterior of the latent the decoder consumes
(`model.posterior`).
- ELBO = E_q log p(x|z) − KL(q ‖ N(0, I)) with `elbo_samples` samples; NLL_ELBO = −ELBO.
- IW-NLL = −log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x), K = `iw_samples` drawn in chunks of `iw_chunk`, by
  logsumexp, batched over sentences (each batch is expanded to B × chunk rows: one decoder pass per chunk),
  as jxhe/vae-lagging-encoder's `calc_iwnll` without its batch-1 loop.
- PPL = exp(Σ NLL / Σ(n + 1)) for both; `lm` has the exact NLL (ELBO = IW = NLL, KL = MI = AU = 0).
- KL = mean KL(q ‖ p); `kl_twr` = mean R_TWR over all positions.
- MI (He et al. 2019) = E_x E_q log q(z|x) − E_x E_q log q(z), the aggregate posterior q(z) over the **whole**
  evaluation set (one sample per sentence, chunked); a slightly negative value is reported as measured.
  **Ours:** E_q log q(z|x) is estimated with the same sample as log q(z) (He et al.'s `calc_mi` uses the
  closed-form entropy): the same expectation with less noise, and exactly 0 for a collapsed posterior
  (the closed form left ±0.2 nats of Monte Carlo noise on 40 sentences).
- AU = #{d : Var_x E_q[z_d|x] ≥ `au_delta`} with the unbiased variance (`calc_au`); `au_var` the variances.
- as-coded (the reference's evaluation, reproduced only on request): sentences in length order, batches of
  `batch_size`, the encoder run unpacked over the padded batch; recon at z = μ of the padded last position
  (`last`; `mean`/`sum` over all padded positions); KL = Σ_batch Σ_padded-t KL_t / T_pad (pads included; the
  plain VAE: the KL of the decoded latent); NLL = (Σ recon + Σ KL) / #sentences; PPL = exp(same / Σ(n + 2));
  MI = He et al.'s estimator inside each batch, averaged over batches (capped at log batch size).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .data import collate
from .loss import gaussian_kl, twr_term
from .model import posterior, sample

LOG2PI = math.log(2 * math.pi)


def log_normal(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; μ, diag σ²) summed over the last dimension."""
    return -0.5 * (LOG2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


def log_std_normal(z: Tensor) -> Tensor:
    return -0.5 * (LOG2PI + z.pow(2)).sum(-1)


def _batches(seqs: list[list[int]], batch_size: int):
    """(original indices, collated batch) in length order."""
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    for k in range(0, len(order), batch_size):
        idx = order[k:k + batch_size]
        yield idx, collate([seqs[i] for i in idx])


def iw_logweights(model, x: Tensor, lengths: Tensor, mu: Tensor, lv: Tensor, k: int, chunk: int,
                  generator=None) -> Tensor:
    """log p(x|z_k) + log p(z_k) − log q(z_k|x) for K samples: [B, K], chunk by chunk."""
    B = x.shape[0]
    out = []
    done = 0
    while done < k:
        c = min(chunk, k - done)
        z = sample(mu, lv, c, generator)                                   # [B·c, z]
        ll = -model.decode_nll(x.repeat_interleave(c, 0), lengths.repeat_interleave(c, 0), z)
        lw = ll + log_std_normal(z) - log_normal(z, mu.repeat_interleave(c, 0), lv.repeat_interleave(c, 0))
        out.append(lw.view(B, c))
        done += c
    return torch.cat(out, 1)


def mutual_information(mu: Tensor, lv: Tensor, generator=None, chunk: int = 1024) -> float:
    """He et al.'s MI over all rows of (μ, log σ²) [N, z]: one sample per row, aggregate posterior over all N."""
    N, d = mu.shape
    if N < 2:
        return 0.0
    z = sample(mu, lv, 1, generator)
    neg_ent = log_normal(z, mu, lv).mean()
    logq = []
    for i in range(0, N, chunk):
        zi = z[i:i + chunk, None, :]                                       # [c, 1, d]
        lq = log_normal(zi, mu[None], lv[None])                            # [c, N]
        logq.append(torch.logsumexp(lq, 1) - math.log(N))
    return float(neg_ent - torch.cat(logq).mean())


def active_units(mu: Tensor, delta: float = 0.01) -> tuple[int, list[float]]:
    """(#dims with unbiased Var_x μ_d ≥ delta, the variances)."""
    if mu.shape[0] < 2:
        return 0, [0.0] * mu.shape[1]
    var = mu.var(0, unbiased=True)
    return int((var >= delta).sum()), [float(v) for v in var]


@torch.no_grad()
def evaluate(model, seqs: list[list[int]], *, iw_samples: int = 500, iw_chunk: int = 100, elbo_samples: int = 10,
             au_delta: float = 0.01, batch_size: int = 64, seed: int = 1, device=None, unk_id: int = 1,
             with_iw: bool = True) -> dict:
    """The proper metrics of `model` on encoded sentences (see the module docstring)."""
    device = device or next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(int(seed))
    model.eval()
    n_sent = len(seqs)
    n_tok = sum(len(s) - 1 for s in seqs)
    n_unk = sum(sum(1 for t in s if t == unk_id) for s in seqs)
    rec_sum = kl_sum = twr_sum = elbo_sum = iw_sum = 0.0
    mus, lvs = [], []
    per = [None] * n_sent
    for idx, b in _batches(seqs, batch_size):
        x, L = b["x"].to(device), b["lengths"].to(device)
        if model.kind == "lm":
            nll = model.decode_nll(x, L, None)
            s = float(nll.sum())
            rec_sum += s
            elbo_sum += s
            iw_sum += s
            for j, i in enumerate(idx):
                per[i] = float(nll[j])
            continue
        mu_t, lv_t = model.encode(x, L)
        mu, lv = posterior(mu_t, lv_t, L, model.cfg["z_mode"])
        mus.append(mu)
        lvs.append(lv)
        z = sample(mu, lv, elbo_samples, gen)
        rec = model.decode_nll(x.repeat_interleave(elbo_samples, 0), L.repeat_interleave(elbo_samples, 0), z)
        rec = rec.view(-1, elbo_samples).mean(1)
        kl = gaussian_kl(mu, lv)
        rec_sum += float(rec.sum())
        kl_sum += float(kl.sum())
        twr_sum += float(twr_term(mu_t, lv_t, L, "all").sum())
        elbo_sum += float((rec + kl).sum())
        if with_iw:
            lw = iw_logweights(model, x, L, mu, lv, iw_samples, iw_chunk, gen)
            nll_iw = -(torch.logsumexp(lw, 1) - math.log(iw_samples))
            iw_sum += float(nll_iw.sum())
            for j, i in enumerate(idx):
                per[i] = float(nll_iw[j])
    out = {"n_sentences": n_sent, "n_predicted_tokens": n_tok, "unk_rate": n_unk / max(1, n_tok),
           "nll_elbo": elbo_sum / n_sent, "ppl_elbo": math.exp(elbo_sum / n_tok),
           "recon": rec_sum / n_sent, "kl": kl_sum / n_sent, "kl_twr": twr_sum / n_sent}
    if with_iw or model.kind == "lm":
        out.update(nll_iw=iw_sum / n_sent, ppl_iw=math.exp(iw_sum / n_tok))
    if model.kind == "lm":
        out.update(mi=0.0, au=0, au_var=[])
    else:
        mu, lv = torch.cat(mus), torch.cat(lvs)
        out["mi"] = mutual_information(mu, lv, gen)
        out["au"], out["au_var"] = active_units(mu, au_delta)
    return out


@torch.no_grad()
def as_coded(model, seqs: list[list[int]], *, batch_size: int = 64, seed: int = 1) -> dict:
    """The reference's LM numbers (§2.4 items 1–3): not a bound, labelled as such wherever shown."""
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(int(seed))
    model.eval()
    num = kl_tot = 0.0
    mis = []
    words = sum(len(s) for s in seqs)  # non-pad ids, <s> and </s> included (one too many per sentence)
    for _, b in _batches(seqs, batch_size):
        x, L = b["x"].to(device), b["lengths"].to(device)
        if model.kind == "lm":
            num += float(model.decode_nll(x, L, None).sum())
            continue
        B, T = x.shape
        full = torch.full_like(L, T)
        mu_t, lv_t = model.encode(x, L, packed=False)
        mu, lv = posterior(mu_t, lv_t, full, model.cfg["z_mode"])
        rec = model.decode_nll(x, L, mu)
        if model.kind == "twr":
            kl_b = float(gaussian_kl(mu_t, lv_t).sum()) / T
        else:
            kl_b = float(gaussian_kl(mu, lv).sum())
        num += float(rec.sum()) + kl_b
        kl_tot += kl_b
        mis.append(mutual_information(mu, lv, gen))
    n = len(seqs)
    return {"nll": num / n, "ppl": math.exp(num / words), "kl": kl_tot / n,
            "mi": sum(mis) / len(mis) if mis else 0.0, "label": "as-coded (the reference's formulas): not a bound"}
