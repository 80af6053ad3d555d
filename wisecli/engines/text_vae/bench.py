"""Our side of `benchmark` (spec §7): (1) training sentences/s, packed length buckets vs the reference-style step
(`peers.reference_step`); (2) IW-NLL at K = 500 (chunks of 100), batched over sentences vs the batch-1 loop;
(3) sampling sentences/s (ours alone); (4) dialogue training examples/s, ours (one batched Linear over all
context positions) vs the reference-style step (`peers.reference_dialogue_step`: the per-position Python loop,
padded positions included, fixed batch order). Synthetic sentences and dialogues (§4) with the spec's sizes
(LM: E 512, H 256, z 32; dialogue: E 200, H 300, z 200, batch 96) on CUDA; CPU: E = H = 64, z 8, K 50, few
sentences; quick: E = H = 16, z 4, K 8, a smoke run of the four cases.
Timed by `runtime.bench.race` (median of repeats)."""

from __future__ import annotations

import torch

from wisecli.runtime.bench import race
from wisecli.runtime.results import BenchRecords

from . import data as D
from .loss import objective
from .metrics import iw_logweights
from .model import TextVAE, model_config, posterior
from .peers import iw_nll_batch1, reference_dialogue_step, reference_step
from .predict import decode
from .synthetic import lm_sentences


def run(device, quick: bool, *, batches: int = 20, iw_sentences: int = 500) -> BenchRecords:
    from wisecli.runtime.device import as_device

    dev = as_device(device)
    small = quick or dev.type == "cpu"
    sents, _ = lm_sentences(300 if quick else (2000 if small else 20000), seed=1)
    vocab = D.Vocab.build([D.tokenize(s) for s in sents])
    seqs, _ = D.encode_all(vocab, sents, how="reference", max_len=50)
    size = dict(emb=16, hidden=16, z_dim=4) if quick else (dict(emb=64, hidden=64, z_dim=8) if small
                                                          else dict(emb=512, hidden=256, z_dim=32))
    n_b = 2 if quick else (5 if small else batches)
    bs = 8 if quick else 64
    K, C = (8, 4) if quick else ((50, 50) if small else (500, 100))
    n_iw = 2 if quick else (16 if small else iw_sentences)
    torch.manual_seed(1)
    model = TextVAE(model_config(len(vocab), model="twr", **size)).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, eps=1e-6, weight_decay=1e-5)
    loader = D.SentenceLoader(seqs, bs, seed=1)
    ours_b = [b for _, b in zip(range(n_b), loader)]
    fixed = [D.collate(seqs[i:i + bs]) for i in range(0, bs * n_b, bs)]
    n_sent = sum(int(b["x"].shape[0]) for b in ours_b)

    def ours_train():
        model.train()
        for b in ours_b:
            loss, _ = objective(model, b["x"].to(dev), b["lengths"].to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def peer_train():
        model.train()
        for b in fixed:
            reference_step(model, opt, b["x"].to(dev), b["lengths"].to(dev))

    recs = [race("train sentences", ours_train, peer_train, device=dev, peer_name="reference-style padded step",
                 repeats=1 if quick else 3, warmup=1, sentences=n_sent)]
    model.eval()
    iw = seqs[:n_iw]

    @torch.no_grad()
    def ours_iw():
        out = []
        for i in range(0, len(iw), 64):
            b = D.collate(iw[i:i + 64])
            x, L = b["x"].to(dev), b["lengths"].to(dev)
            mu_t, lv_t = model.encode(x, L)
            mu, lv = posterior(mu_t, lv_t, L, "last")
            out.append(torch.logsumexp(iw_logweights(model, x, L, mu, lv, K, C), 1))
        return torch.cat(out)

    recs.append(race(f"IW-NLL K={K}", ours_iw, lambda: iw_nll_batch1(model, iw, K, C), device=dev,
                     peer_name="batch-1 loop (calc_iwnll)", repeats=1, warmup=0, sentences=len(iw)))
    n_s = 4 if quick else 256
    recs.append(race("sampling", lambda: decode(model, torch.randn(n_s, size["z_dim"], device=dev), n_s), None,
                     device=dev, peer_name="", repeats=1, warmup=0, sentences=n_s))
    recs.append(_dialogue_race(dev, quick, small, n_b))
    return BenchRecords(recs, summary={"device": str(dev), "sizes": size, "iw_samples": K, "iw_chunk": C})


def _dialogue_race(dev, quick: bool, small: bool, n_b: int):
    """Dialogue training: our batched per-position recognition/prior vs the reference's per-position loop."""
    from . import dialogue as G
    from .synthetic import dialogue_examples

    recs, _ = dialogue_examples(200 if quick else (1000 if small else 5000), seed=1)
    ex = [G.Example(r["context"], G._alternating(len(r["context"])), r["response"]) for r in recs]
    vocab = G.build_vocab(ex)
    size = dict(emb=16, utt_hidden=16, ctx_hidden=16, z_dim=4) if quick else (
        dict(emb=64, utt_hidden=64, ctx_hidden=64, z_dim=8) if small else
        dict(emb=200, utt_hidden=300, ctx_hidden=300, z_dim=200))
    bs = 8 if quick else (32 if small else 96)
    torch.manual_seed(1)
    model = G.DialogTWR(G.dialogue_config(len(vocab), model="twr", **size)).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, eps=1e-6, weight_decay=1e-5)
    batches = [{k: v.to(dev) for k, v in G.collate(ex[i:i + bs], vocab).items()} for i in range(0, bs * n_b, bs)]
    n_ex = sum(int(b["y"].shape[0]) for b in batches)

    def ours():
        model.train()
        for b in batches:
            loss, _ = G.dialogue_objective(model, b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def peer():
        model.train()
        for b in batches:
            reference_dialogue_step(model, opt, b)

    return race("dialogue train examples", ours, peer, device=dev, peer_name="reference-style per-position loop",
                repeats=1 if quick else 3, warmup=1, sentences=n_ex)
