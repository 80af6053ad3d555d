"""Our side of `benchmark` (specs/translate.md §7), one process, one device, random tokens with a realistic
length mix (source lengths 5–60, target ≈ source ± 20 %):
(1) training target tokens/s of the 1-view baseline; (2) multi-view with the views stacked on the batch axis;
(3) multi-view done naively as two decoder passes; (4) beam-5 decoding of the baseline; (5) of the exported
primary path of a multi-view model; (6) the same-size `torch.nn.Transformer`, beam 5, no cache (`peers.py`).
Records: 2 vs 1, 2 vs 3, 5 vs 4, 4 vs 6 (`speedup` = peer seconds / ours); the summary holds tokens/s of every
row, the parameter counts and, on CUDA, MFU = 6·params·tokens/s over the bf16 matmul peak probed in the run.
CPU numbers do not gate (spec §7). `quick`: the micro preset, a few steps and sentences.
"""

from __future__ import annotations

import torch

from wisecli.runtime.results import BenchRecords


def _batch(n: int, vocab: int, gen: torch.Generator, dev):
    from .tokenizer import EOS

    src_len = torch.randint(5, 60, (n,), generator=gen)
    tgt_len = (src_len.float() * (0.8 + 0.4 * torch.rand(n, generator=gen))).long().clamp(min=3)
    S, T = int(src_len.max()) + 1, int(tgt_len.max()) + 1
    src = torch.zeros(n, S, dtype=torch.long)
    tin = torch.zeros(n, T, dtype=torch.long)
    tout = torch.zeros(n, T, dtype=torch.long)
    for i in range(n):
        s = torch.randint(4, vocab, (int(src_len[i]),), generator=gen)
        t = torch.randint(4, vocab, (int(tgt_len[i]),), generator=gen)
        src[i, : len(s)], src[i, len(s)] = s, EOS
        tout[i, : len(t)], tout[i, len(t)] = t, EOS
        tin[i, 0], tin[i, 1: len(t) + 1] = 1, t
    return src.to(dev), tin.to(dev), tout.to(dev)


def _naive_logits(model, src, tgt_in):
    """Multi-view logits with one decoder pass per view (row 3)."""
    mems, mask = model.encode(src)
    return [model._teacher(tgt_in, model.dec[0], [(model._route(v)[1], mems[v])], mask)[0] for v in range(len(mems))]


def _peak_tflops(dev) -> float | None:
    if dev.type != "cuda":
        return None
    from wisecli.runtime.device import timed

    a = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    _, s = timed(lambda: a @ a, dev, repeats=5, warmup=2)
    return 2 * 8192 ** 3 / s / 1e12


def run(device, quick: bool, *, arch: str = "base", steps: int = 50) -> BenchRecords:
    """The six rows and four records (module docstring)."""
    from wisecli.runtime.bench import race
    from wisecli.runtime.device import as_device, autocast, device_name, one_cpu_thread

    from .loss import multiview_loss
    from .model import Translator, export_view, model_config, parameter_count
    from .peers import NNTransformer
    from .predict import beam_search

    dev = as_device(device)
    if quick:
        arch, steps = "micro", 2
    vocab = 1000 if quick else 8000
    n_train, n_dec = (16, 4) if quick else (128, 200 if dev.type == "cuda" else 16)
    gen = torch.Generator().manual_seed(0)
    src, tin, tout = _batch(n_train, vocab, gen, dev)
    dsrc, _, _ = _batch(n_dec, vocab, gen, dev)
    ntok = int((tout != 0).sum())
    torch.manual_seed(0)
    base = Translator(model_config(arch, vocab, views=1)).to(dev)
    mv = Translator(model_config(arch, vocab, views=2)).to(dev)
    with one_cpu_thread(dev, enabled=quick):
        def trainer(model, naive=False):
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=dev.type == "cuda" or None)

            def go():
                for _ in range(steps):
                    opt.zero_grad(set_to_none=True)
                    with autocast(dev):
                        logits = _naive_logits(model, src, tin) if naive else model(src, tin)
                        loss, _ = multiview_loss(logits, tout)
                    loss.backward()
                    opt.step()
            return go

        r21 = race("train: multi-view (stacked) vs 1-view baseline", trainer(mv), trainer(base), device=dev,
                   peer_name="1-view baseline", repeats=1, warmup=1)
        r23 = race("train: multi-view stacked vs two decoder passes", trainer(mv), trainer(mv, naive=True),
                   device=dev, peer_name="multi-view, two passes", repeats=1, warmup=1)
        c1, st = export_view(mv.c, mv.state_dict())
        prim = Translator(c1).to(dev).eval()
        prim.load_state_dict(st)
        base.eval()
        peer = NNTransformer(model_config(arch, vocab, views=1)).to(dev).eval()

        def decoder(model):
            def go():
                with autocast(dev):
                    return beam_search(model, dsrc, beam=5)
            return go

        def peer_decode():
            with autocast(dev):
                return peer.beam(dsrc, beam=5)

        r54 = race("decode beam 5: multi-view primary vs baseline", decoder(prim), decoder(base), device=dev,
                   peer_name="baseline checkpoint", repeats=1, warmup=1)
        r46 = race("decode beam 5: ours (KV cache) vs nn.Transformer (no cache)", decoder(base), peer_decode,
                   device=dev, peer_name="torch.nn.Transformer, no cache", repeats=1, warmup=1)
    params = parameter_count(base)
    tps1 = ntok * steps / r21.peer_s
    peak = _peak_tflops(dev)
    summary = {"device": device_name(dev), "arch": arch, "steps": steps, "train_tgt_tokens": ntok,
               "tokens_per_s": {"1_baseline": tps1, "2_multiview": ntok * steps / r21.ours_s,
                                "3_multiview_two_passes": ntok * steps / r23.peer_s},
               "params": {"baseline": params, "multiview_training": parameter_count(mv),
                          "multiview_inference": parameter_count(prim)},
               "mfu_baseline": (6 * params * tps1 / (peak * 1e12)) if peak else None,
               "peak_bf16_tflops": peak}
    return BenchRecords([r21, r23, r54, r46], summary)
