"""Estimators of text-vae against oracles (spec §9 'Estimators', 'Counting', 'Masking', 'As-coded parity')."""

from __future__ import annotations

import math

import pytest
import torch

from wisecli.engines.text_vae import data as D
from wisecli.engines.text_vae.loss import gaussian_kl, scope_mask, twr_term
from wisecli.engines.text_vae.metrics import (active_units, as_coded, evaluate, iw_logweights, log_normal,
                                               mutual_information)
from wisecli.engines.text_vae.model import TextVAE, model_config, posterior
from wisecli.engines.text_vae.synthetic import lm_sentences


pytestmark = pytest.mark.usefixtures("one_torch_thread_module")


def _seqs(n=30, seed=1):
    s, _ = lm_sentences(n, seed=seed)
    v = D.Vocab.build([D.tokenize(x) for x in s])
    return v, D.encode_all(v, s, how="reference", max_len=50)[0]


def _model(vocab, kind="twr", z_mode="last", seed=0):
    torch.manual_seed(seed)
    return TextVAE(model_config(len(vocab), model=kind, emb=16, hidden=16, z_dim=4, z_mode=z_mode)).eval()


def test_gaussian_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu, lv = torch.randn(5, 7, generator=g, dtype=torch.float64), torch.randn(5, 7, generator=g, dtype=torch.float64)
    q = torch.distributions.Normal(mu, (0.5 * lv).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    want = torch.distributions.kl_divergence(q, p).sum(-1)
    assert torch.allclose(gaussian_kl(mu, lv), want, rtol=1e-12, atol=1e-12)  # float64: exact formula


@pytest.mark.parametrize("mode", ["mean", "sum"])
def test_mean_and_sum_posteriors_match_monte_carlo_moments(mode):
    g = torch.Generator().manual_seed(1)
    mu = torch.randn(2, 6, 3, generator=g, dtype=torch.float64)
    lv = torch.randn(2, 6, 3, generator=g, dtype=torch.float64) * 0.5
    L = torch.tensor([6, 4])
    m, v = posterior(mu, lv, L, mode)
    S = 200_000
    for b in range(2):
        n = int(L[b])
        z = mu[b, :n] + (0.5 * lv[b, :n]).exp() * torch.randn(S, n, 3, generator=g, dtype=torch.float64)
        agg = z.mean(1) if mode == "mean" else z.sum(1)
        # MC standard error of the mean ≈ sd/√S ≤ 0.01 here; 5 sd margins
        assert torch.allclose(agg.mean(0), m[b], atol=0.02)
        assert torch.allclose(agg.var(0), v[b].exp(), rtol=0.02)


class _LinearGaussian:
    """p(z) = N(0, 1), p(x|z) = N(w z + b, s²): a 'model' with decode_nll for iw_logweights."""

    def __init__(self, w, b, s):
        self.w, self.b, self.s = w, b, s

    def decode_nll(self, x, lengths, z):
        mean = self.w * z[:, 0] + self.b
        return 0.5 * (math.log(2 * math.pi * self.s ** 2) + (x[:, 0] - mean) ** 2 / self.s ** 2)


def test_iw_exact_with_the_true_posterior_and_close_with_the_prior():
    w, b, s = 1.5, 0.3, 0.7
    x = torch.tensor([[0.8], [-1.2], [2.0]], dtype=torch.float64)
    L = torch.ones(3, dtype=torch.long)
    exact = -0.5 * (torch.log(torch.tensor(2 * math.pi * (w * w + s * s), dtype=torch.float64))
                    + (x[:, 0] - b) ** 2 / (w * w + s * s))
    toy = _LinearGaussian(w, b, s)
    pm = (w * (x - b) / (w * w + s * s))
    pv = torch.full_like(pm, math.log(s * s / (w * w + s * s)))
    for k in (1, 7):
        lw = iw_logweights(toy, x, L, pm, pv, k, 3)
        est = torch.logsumexp(lw, 1) - math.log(k)
        assert torch.allclose(est, exact, atol=1e-10)  # every weight equals p(x): exact for any K
    g = torch.Generator().manual_seed(0)
    lw = iw_logweights(toy, x, L, torch.zeros_like(pm), torch.zeros_like(pv), 5000, 1000, g)
    est = torch.logsumexp(lw, 1) - math.log(5000)
    assert torch.allclose(est, exact, atol=0.05)


def test_iw_nll_is_below_the_elbo_nll_of_the_same_samples_on_a_trained_model():
    from wisecli.engines.text_vae.train import train_in_memory

    v, seqs = _seqs(120)
    m = train_in_memory(seqs, model_config(len(v), model="twr", emb=16, hidden=16, z_dim=4), steps=15,
                        batch_size=16, lr=1e-2)
    b = D.collate(seqs[:20])
    with torch.no_grad():
        mu_t, lv_t = m.encode(b["x"], b["lengths"])
        mu, lv = posterior(mu_t, lv_t, b["lengths"])
        lw = iw_logweights(m, b["x"], b["lengths"], mu, lv, 30, 10, torch.Generator().manual_seed(0))
    iw = -(torch.logsumexp(lw, 1) - math.log(30))
    elbo = -lw.mean(1)  # the ELBO estimate from the same samples: E_q[log p(x|z) + log p(z) − log q(z|x)]
    assert bool((iw <= elbo + 1e-4).all()) and bool((iw < elbo).any())


def _collapsed_pair(vocab):
    """A TWR model forced onto the prior with a decoder that ignores z, and the LM with the same decoder."""
    twr, lm = _model(vocab, "twr"), _model(vocab, "lm", seed=1)
    E = twr.cfg["emb"]
    with torch.no_grad():
        for p in twr.heads.parameters():
            p.zero_()
        twr.init.weight.zero_()
        twr.dec_rnn.weight_ih_l0[:, E:] = 0
        lm.dec_emb.load_state_dict(twr.dec_emb.state_dict())
        lm.out.load_state_dict(twr.out.state_dict())
        lm.dec_rnn.weight_ih_l0.copy_(twr.dec_rnn.weight_ih_l0[:, :E])
        for n in ("weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(lm.dec_rnn, n).copy_(getattr(twr.dec_rnn, n))
    return twr.eval(), lm.eval()


def test_a_collapsed_model_has_elbo_equal_iw_equal_lm_nll_and_no_mi_or_au():
    v, seqs = _seqs(40)
    twr, lm = _collapsed_pair(v)
    r = evaluate(twr, seqs, iw_samples=20, iw_chunk=7, elbo_samples=3)
    r_lm = evaluate(lm, seqs)
    # float32 sums of ~40 sentences × ~40 nats: 1e-4 relative is above rounding, far below any real gap
    assert r["nll_elbo"] == pytest.approx(r_lm["nll_elbo"], rel=1e-4)
    assert r["nll_iw"] == pytest.approx(r_lm["nll_iw"], rel=1e-4)
    assert r["kl"] == pytest.approx(0.0, abs=1e-6) and abs(r["mi"]) < 0.05 and r["au"] == 0


def test_active_units_on_a_hand_made_mu_matrix():
    mu = torch.tensor([[0.0, 1.0, 0.0, 5.0], [0.0, -1.0, 0.05, 5.0], [0.0, 0.0, 0.1, 5.0]])
    au, var = active_units(mu, 0.01)
    # unbiased variances: 0, 1, 0.0025, 0 → one dimension ≥ 0.01
    assert au == 1 and var[1] == pytest.approx(1.0) and var[2] == pytest.approx(0.0025)
    assert active_units(mu, 0.001)[0] == 2


def test_mutual_information_of_a_plain_loop():
    g = torch.Generator().manual_seed(3)
    mu, lv = torch.randn(7, 2, generator=g, dtype=torch.float64), torch.randn(7, 2, generator=g, dtype=torch.float64) * .3
    got = mutual_information(mu, lv, torch.Generator().manual_seed(5), chunk=3)
    z = mu + (0.5 * lv).exp() * torch.randn(mu.shape, generator=torch.Generator().manual_seed(5), dtype=mu.dtype)
    neg = sum(float(log_normal(z[i], mu[i], lv[i])) for i in range(7)) / 7
    lq = 0.0
    for i in range(7):
        terms = [float(log_normal(z[i], mu[j], lv[j])) for j in range(7)]
        mx = max(terms)
        lq += mx + math.log(sum(math.exp(t - mx) for t in terms)) - math.log(7)
    assert got == pytest.approx(neg - lq / 7, rel=1e-9)


def test_proper_ppl_counts_n_plus_1_and_as_coded_n_plus_2():
    v = D.Vocab.build([["a", "b", "c"]])
    lines = ["a b", "b c a", "c"]  # n = 2, 3, 1: Σ(n+1) = 9, Σ(n+2) = 12
    seqs, _ = D.encode_all(v, lines, how="whitespace", max_len=10)
    lm = _model(v, "lm")
    with torch.no_grad():
        nll = sum(float(lm.decode_nll(D.collate([s])["x"], torch.tensor([len(s)]), None)) for s in seqs)
    r = evaluate(lm, seqs)
    c = as_coded(lm, seqs)
    assert r["n_predicted_tokens"] == 9
    assert r["ppl_elbo"] == pytest.approx(math.exp(nll / 9), rel=1e-5)
    assert c["ppl"] == pytest.approx(math.exp(nll / 12), rel=1e-5)


def test_twr_term_ignores_padding_and_packed_equals_unpacked_on_unpadded_input():
    v, seqs = _seqs(10)
    m = _model(v)
    short = min(seqs, key=len)
    long = max(seqs, key=len)
    assert len(long) > len(short)
    with torch.no_grad():
        b1 = D.collate([short])
        r1 = twr_term(*m.encode(b1["x"], b1["lengths"]), b1["lengths"])
        b2 = D.collate([short, long])
        r2 = twr_term(*m.encode(b2["x"], b2["lengths"]), b2["lengths"])
        assert torch.allclose(r1[0], r2[0], atol=1e-5)
        same = [s for s in seqs if len(s) == len(short)][:3]
        b3 = D.collate(same)
        a = m.encode(b3["x"], b3["lengths"], packed=True)
        u = m.encode(b3["x"], b3["lengths"], packed=False)
        assert torch.allclose(a[0], u[0], atol=1e-5) and torch.allclose(a[1], u[1], atol=1e-5)


def test_kl_scope_last1_is_the_plain_kl_and_scopes_keep_round_t_p_positions():
    g = torch.Generator().manual_seed(0)
    mu, lv = torch.randn(3, 9, 4, generator=g), torch.randn(3, 9, 4, generator=g)
    L = torch.tensor([9, 5, 3])
    pm, pv = posterior(mu, lv, L, "last")
    assert torch.allclose(twr_term(mu, lv, L, "last1"), gaussian_kl(pm, pv), atol=1e-6)
    m = scope_mask(L, 9, "last50")
    assert m.sum(1).tolist() == [round(9 * .5), round(5 * .5), round(3 * .5)]
    assert bool(m[1, 4]) and not bool(m[1, 5])  # the kept positions end at the sentence's last one


def test_as_coded_equals_a_plain_restatement_of_the_reference_formulas():
    v, seqs = _seqs(70)
    m = _model(v)
    got = as_coded(m, seqs, batch_size=32, seed=0)
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    total = kl_total = 0.0
    with torch.no_grad():
        for k in range(0, len(order), 32):
            batch = [seqs[i] for i in order[k:k + 32]]
            T = max(len(s) for s in batch)
            x = torch.tensor([s + [0] * (T - len(s)) for s in batch])
            h, _ = m.enc_rnn(m.enc_emb(x))                       # unpacked over the padded batch
            mu, lv = m.heads(h).chunk(2, -1)
            kl = 0.0
            for b in range(len(batch)):
                for t in range(T):                               # pads included
                    kl += float(0.5 * (mu[b, t] ** 2 + lv[b, t].exp() - 1 - lv[b, t]).sum())
            kl /= T
            rec = float(m.decode_nll(x, torch.tensor([len(s) for s in batch]), mu[:, T - 1]).sum())
            total += rec + kl
            kl_total += kl
    words = sum(len(s) for s in seqs)
    assert got["nll"] == pytest.approx(total / len(seqs), rel=1e-5)
    assert got["ppl"] == pytest.approx(math.exp(total / words), rel=1e-4)
    assert got["kl"] == pytest.approx(kl_total / len(seqs), rel=1e-5)
