"""GPU checks (spec §9; skipped without CUDA; not run in this session): `tiny` on synthetic pairs for 3,000
updates reaches BLEU ≥ 90 on held-out pairs, and fp32 greedy outputs on CPU and GPU agree on 50 sentences."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.gpu


def test_tiny_reaches_bleu_90_and_cpu_gpu_greedy_agree():
    from wisecli.engines.translate.data import encode_pairs, hash_split
    from wisecli.engines.translate.demo import _score, train_in_memory
    from wisecli.engines.translate.model import Translator, export_view
    from wisecli.engines.translate.predict import beam_search
    from wisecli.engines.translate.data import collate
    from wisecli.engines.translate.synthetic import pairs
    from wisecli.engines.translate.tokenizer import learn_bpe

    dev = torch.device("cuda")
    s, t = pairs(24000, seed=1)
    ts, tt, vs, vt = hash_split(s, t, percent=3, cap=500)
    tok = learn_bpe(ts + tt, 2000)
    train, _ = encode_pairs(tok, ts, tt, 256)
    cfg = {"arch": "tiny", "vocab": tok.vocab_size, "views": 2, "lr": 1e-3, "warmup": 400, "max_tokens": 4096}
    model, mc, _, _ = train_in_memory(train, cfg, dev, budget_s=None, max_steps=3000, interval=500)
    test = list(zip(vs, vt))[:500]
    _, bleu, _ = _score(model, mc, tok, test, dev, 5)
    assert bleu >= 90, bleu
    c1, st = export_view(mc, model.state_dict())
    gpu = Translator(c1).to(dev).eval()
    gpu.load_state_dict(st)
    cpu = Translator(c1).eval()
    cpu.load_state_dict(st)
    valid, _ = encode_pairs(tok, vs[:50], vt[:50], 256)
    src = collate(valid)["src"]
    a = [h[0][0] for h in beam_search(gpu, src.to(dev), beam=1)]
    b = [h[0][0] for h in beam_search(cpu, src, beam=1)]
    assert a == b  # fp32 on both devices (TF32 off by default for matmuls)


def test_compiled_training_follows_the_eager_run(tmp_path):
    """`--compile` on CUDA: 40 updates of `micro` give the eager run's losses (bf16 autocast: 2 % relative) and
    no fallback warning."""
    import json

    from conftest import run_wise

    from wisecli.engines.translate.synthetic import pairs

    s, t = pairs(600, seed=3)
    (tmp_path / "a.en").write_text("\n".join(s) + "\n")
    (tmp_path / "a.xx").write_text("\n".join(t) + "\n")
    losses = {}
    for flag in ("--compile", "eager"):
        code, out, err = run_wise("translate", "train", "-o", str(tmp_path / flag), "--src", str(tmp_path / "a.en"),
                                  "--tgt", str(tmp_path / "a.xx"), "--arch", "micro", "--max-steps", "40",
                                  "--eval-every", "20", "--valid-max", "8", "--valid-beam", "1", "--device", "cuda",
                                  "--no-progress", *([flag] if flag == "--compile" else []), "--json")
        assert code == 0 and "torch.compile failed" not in err, err
        losses[flag] = [json.loads(x)["train_loss"] for x in
                        (tmp_path / flag / "metrics.jsonl").read_text().splitlines()]
    assert losses["--compile"] == pytest.approx(losses["eager"], rel=0.02)
