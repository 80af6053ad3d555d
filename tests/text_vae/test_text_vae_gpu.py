"""GPU check (spec §9): CPU and GPU ELBO on a fixed batch agree (fp32), and the benchmark runs on CUDA."""

from __future__ import annotations

import pytest
import torch

from wisecli.engines.text_vae import data as D
from wisecli.engines.text_vae.model import TextVAE, model_config, posterior
from wisecli.engines.text_vae.loss import gaussian_kl
from wisecli.engines.text_vae.synthetic import lm_sentences

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_cpu_and_gpu_elbo_agree_in_fp32():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    s, _ = lm_sentences(64, seed=1)
    v = D.Vocab.build([D.tokenize(x) for x in s])
    seqs, _ = D.encode_all(v, s, how="reference", max_len=50)
    torch.manual_seed(0)
    m = TextVAE(model_config(len(v), emb=64, hidden=64, z_dim=8)).eval()
    b = D.collate(seqs)
    eps = torch.randn(len(seqs), 8)
    out = []
    for dev in ("cpu", "cuda"):
        mm = m.to(dev)
        x, L = b["x"].to(dev), b["lengths"].to(dev)
        with torch.no_grad():
            mu_t, lv_t = mm.encode(x, L)
            mu, lv = posterior(mu_t, lv_t, L)
            z = mu + (0.5 * lv).exp() * eps.to(dev)
            out.append(float((mm.decode_nll(x, L, z) + gaussian_kl(mu, lv)).mean()))
    assert abs(out[0] - out[1]) <= 1e-4 * abs(out[0])


def test_benchmark_quick_on_cuda():
    from wisecli.engines.text_vae import api

    recs = api.benchmark(device="cuda", quick=True)
    assert [r.case for r in recs][-1] == "dialogue train examples"
    assert len(recs) == 4 and all(r.ours_s > 0 for r in recs)


def test_cpu_and_gpu_dialogue_bound_agree_in_fp32():
    from wisecli.engines.text_vae import dialogue as G
    from wisecli.engines.text_vae.synthetic import dialogue_examples

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    recs, _ = dialogue_examples(64, seed=1)
    ex = [G.Example(r["context"], G._alternating(len(r["context"])), r["response"]) for r in recs]
    v = G.build_vocab(ex)
    torch.manual_seed(0)
    m = G.DialogTWR(G.dialogue_config(len(v), emb=32, utt_hidden=32, ctx_hidden=32, z_dim=8)).eval()
    outs = []
    for dev in ("cpu", "cuda"):
        b = {k: t.to(dev) for k, t in G.collate(ex, v).items()}
        mm = m.to(dev)
        with torch.no_grad():
            cs, c = mm.encode_context(b["ctx"], b["ctx_utt_len"], b["ctx_len"], b["floors"])
            x = mm.encode_utts(b["y"], b["y_len"])
            mq, lq = mm.recognition(x, cs)
            mp, lp = mm.prior(cs)
            twr = G.twr_dialogue_term(mq, lq, mp, lp, b["ctx_len"])
            rec = mm.decode_nll(b["y"], b["y_len"], G.last_of(mq, b["ctx_len"]), c)
            outs.append(float((rec + twr).mean()))
    assert abs(outs[0] - outs[1]) <= 1e-4 * abs(outs[0])
