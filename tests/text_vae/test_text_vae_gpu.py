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
    assert len(recs) == 3 and all(r.ours_s > 0 for r in recs)
