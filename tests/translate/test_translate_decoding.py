"""Beam search: beam 1 is a plain greedy loop written here (full recomputation, no cache), the cached and
uncached beams agree, a batch decodes as its sentences one by one, the input order is kept and no special
token comes out."""

from __future__ import annotations

import pytest
import torch

from wisecli.engines.translate.model import Translator, model_config
from wisecli.engines.translate.predict import Translation, beam_search
from wisecli.engines.translate.tokenizer import BOS, EOS, PAD, UNK, learn_bpe


pytestmark = pytest.mark.usefixtures("one_torch_thread_module")


V = 300


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(1)
    m = Translator(model_config("micro", V, views=1)).eval()
    with torch.no_grad():  # a sharper random model: distinct argmaxes, EOS reachable
        m.embed.weight.mul_(3.0)
    return m


def _src(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.zeros(len(lengths), max(lengths) + 1, dtype=torch.long)
    for i, n in enumerate(lengths):
        src[i, :n] = torch.randint(4, V, (n,), generator=g)
        src[i, n] = EOS
    return src


def _greedy(model, src_row):
    n = int((src_row != 0).sum()) - 1
    maxlen = int(1.2 * n + 10)
    src = src_row[: n + 1][None]
    toks, total = [BOS], 0.0
    with torch.no_grad():
        for t in range(maxlen):
            lp = model(src, torch.tensor([toks]))[0][0, -1].float().log_softmax(-1)
            lp[[PAD, BOS, UNK]] = float("-inf")
            if t + 1 >= maxlen:
                keep = lp[EOS].item()
                lp[:] = float("-inf")
                lp[EOS] = keep
            nxt = int(lp.argmax())
            total += lp[nxt].item()
            toks.append(nxt)
            if nxt == EOS:
                break
    return toks[1:-1] if toks[-1] == EOS else toks[1:], total / (len(toks) - 1)


def test_beam_one_is_greedy(model):
    src = _src([5, 9, 3, 12])
    res = beam_search(model, src, beam=1)
    for i in range(4):
        ids, score = _greedy(model, src[i])
        assert res[i][0][0] == ids
        assert res[i][0][1] == pytest.approx(score, abs=1e-4)


def test_cached_and_uncached_beams_agree(model):
    src = _src([6, 11, 4], seed=2)
    a = beam_search(model, src, beam=5, nbest=3)
    b = beam_search(model, src, beam=5, nbest=3, use_cache=False)
    for ha, hb in zip(a, b):
        assert [h[0] for h in ha] == [h[0] for h in hb]
        for x, y in zip(ha, hb):
            assert x[1] == pytest.approx(y[1], abs=1e-5)


def test_batched_equals_one_by_one_and_no_specials(model):
    lengths = [5, 2, 9, 4, 1]
    src = _src(lengths, seed=3)
    batched = beam_search(model, src, beam=3)
    for i, n in enumerate(lengths):
        alone = beam_search(model, src[i: i + 1, : n + 1], beam=3)
        assert alone[0][0][0] == batched[i][0][0]
        assert alone[0][0][1] == pytest.approx(batched[i][0][1], abs=1e-4)
        assert not {PAD, BOS, UNK, EOS} & set(batched[i][0][0])
        assert batched[i][0][2] <= int(1.2 * n + 10)


def test_translation_keeps_order_empty_lines_and_flags_truncation(model):
    tok = learn_bpe(["the dog sees a cat", "a cat sees the dog"] * 3, V)
    doc = {"config": {"train": {"max_len": 8}}}
    tr = Translation(model, tok, doc, torch.device("cpu"), beam=3, batch_tokens=40)
    lines = ["the dog", "", "a cat sees the dog and the dog sees a cat again and again", "cat", "the dog"]
    recs = tr.translate(lines)
    assert [r["src"] for r in recs] == lines
    assert recs[1]["hyp"] == "" and recs[1]["status"] == "ok"
    assert recs[2]["status"] == "truncated"
    assert recs[0]["hyp"] == recs[4]["hyp"]  # the same line in another batch gives the same translation
    alone = [Translation(model, tok, doc, torch.device("cpu"), beam=3).translate([x])[0]["hyp"] for x in lines]
    assert [r["hyp"] for r in recs] == alone
