"""runtime.bleu against sacreBLEU 2.6.0: the spec's anchor values (measured with sacreBLEU, so they hold on
machines without it), a plain re-derivation of corpus BLEU for untokenised text, and sacrebleu itself on 200
lines where it is installed (never downloaded)."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from wisecli.cli.errors import InputError
from wisecli.runtime import bleu as B

REFS = [["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
        ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."]]
SYS = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
DE_H = ["Die Datei konnte nicht geöffnet werden.", "Ungültige Option »--foo«", "Kein Speicher mehr"]
DE_R = [["Die Datei kann nicht geöffnet werden.", "Ungültige Option »--foo«.", "Speicher erschöpft"]]


def test_sacrebleu_readme_anchor():
    b = B.corpus_bleu(SYS, REFS)
    assert b["score"] == pytest.approx(48.53, abs=0.01) and b["bp"] == pytest.approx(0.943, abs=0.001)
    assert [round(p, 1) for p in b["precisions"]] == [82.4, 50.0, 45.5, 37.5]
    assert B.corpus_chrf(SYS, REFS)["score"] == pytest.approx(59.73, abs=0.01)
    assert B.corpus_chrf(SYS, REFS, word_order=2)["score"] == pytest.approx(59.15, abs=0.01)
    assert B.corpus_bleu(SYS, REFS[:1])["score"] == pytest.approx(45.07, abs=0.01)
    assert B.corpus_chrf(SYS, REFS[:1])["score"] == pytest.approx(50.04, abs=0.01)


def test_short_anchors():
    h, r = ["Die Datei wurde nicht gefunden."], [["Datei nicht gefunden."]]
    assert B.corpus_bleu(h, r)["score"] == pytest.approx(32.47, abs=0.01)
    assert B.corpus_chrf(h, r)["score"] == pytest.approx(76.26, abs=0.01)
    cat = B.corpus_bleu(["the cat"], [["the cat sat on the mat"]])
    assert cat["score"] == pytest.approx(0.0, abs=0.01) and cat["bp"] == pytest.approx(math.exp(-2), abs=1e-3)
    assert B.corpus_chrf(["the cat"], [["the cat sat on the mat"]])["score"] == pytest.approx(27.25, abs=0.01)


def test_tokeniser_anchors():
    want = {"13a": 47.16, "intl": 69.55, "none": 30.12}
    for tok, value in want.items():
        assert B.corpus_bleu(DE_H, DE_R, tokenize_name=tok)["score"] == pytest.approx(value, abs=0.01), tok
    assert B.corpus_chrf(DE_H, DE_R)["score"] == pytest.approx(77.00, abs=0.01)
    assert B.tokenize_13a("a &amp; b, 3.5 x-y 3-4 it's.") == "a & b , 3.5 x-y 3 - 4 it's ."
    assert B.tokenize_intl("»--foo«.") == "» - - foo « ."


def _plain_bleu(hyps, refs):
    """Corpus BLEU for whitespace tokens, single reference, written from Papineni et al. with exp smoothing."""
    c = r = 0
    match, tot = [0] * 4, [0] * 4
    for h, ref in zip(hyps, refs):
        h, ref = h.split(), ref.split()
        c, r = c + len(h), r + len(ref)
        for n in range(1, 5):
            hg = Counter(tuple(h[i:i + n]) for i in range(len(h) - n + 1))
            rg = Counter(tuple(ref[i:i + n]) for i in range(len(ref) - n + 1))
            match[n - 1] += sum(min(k, rg[g]) for g, k in hg.items())
            tot[n - 1] += sum(hg.values())
    logs, k = 0.0, 1
    for m, t in zip(match, tot):
        if m == 0:
            k *= 2
            logs += math.log(1.0 / (k * t))
        else:
            logs += math.log(m / t)
    bp = 1.0 if c >= r else math.exp(1 - r / c)
    return 100 * bp * math.exp(logs / 4)


def _random_corpus(n, seed):
    rng = random.Random(seed)
    words = "der die das Haus Datei nicht gefunden werden kann the a file cannot be opened , . ! ( ) « » 3.5 x-y".split()
    hyps = [" ".join(rng.choice(words) for _ in range(rng.randint(4, 14))) for _ in range(n)]
    refs = [" ".join(rng.choice(words) for _ in range(rng.randint(4, 14))) for _ in range(n)]
    return hyps, refs


def test_matches_a_plain_rederivation():
    hyps, refs = _random_corpus(60, 3)
    assert B.corpus_bleu(hyps, [refs], tokenize_name="none")["score"] == pytest.approx(_plain_bleu(hyps, refs),
                                                                                      abs=1e-9)


def test_agrees_with_sacrebleu_on_200_lines():
    sacrebleu = pytest.importorskip("sacrebleu")
    hyps, refs = _random_corpus(200, 7)
    refs2 = _random_corpus(200, 8)[1]
    for tok in ("13a", "intl", "none"):
        ours = B.corpus_bleu(hyps, [refs, refs2], tokenize_name=tok)["score"]
        theirs = sacrebleu.corpus_bleu(hyps, [refs, refs2], tokenize=tok).score
        assert ours == pytest.approx(theirs, abs=0.01), tok
    for wo in (0, 2):
        assert B.corpus_chrf(hyps, [refs, refs2], word_order=wo)["score"] == pytest.approx(
            sacrebleu.corpus_chrf(hyps, [refs, refs2], word_order=wo).score, abs=0.01)
    for h, r in zip(hyps[:20], refs[:20]):
        assert B.sentence_bleu(h, [r]) == pytest.approx(sacrebleu.sentence_bleu(h, [r]).score, abs=0.01)
    doc = B.score(hyps, [refs], backend="sacrebleu")
    assert doc["backend"] == "sacrebleu" and doc["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")


def test_score_document_signatures_and_errors(monkeypatch):
    doc = B.score(SYS, REFS, backend="builtin")
    assert doc["bleu_signature"] == "nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:builtin"
    assert doc["chrf_signature"] == "nrefs:2|case:mixed|eff:yes|nc:6|nw:0|space:no|version:builtin"
    assert doc["n_sentences"] == 3 and doc["bleu"] == pytest.approx(48.53, abs=0.01)
    with pytest.raises(InputError, match="reference set 1 has 2"):
        B.score(SYS, [REFS[0][:2]], backend="builtin")
    monkeypatch.setattr(B, "sacrebleu_available", lambda: False)
    with pytest.raises(InputError, match="needs sacrebleu") as exc:
        B.score(SYS, REFS, tokenize_name="zh")
    assert "wisecli[mt]" in exc.value.hint


def test_compound_split_and_bootstrap():
    assert B.compound_split("Ost-West Handel") == "Ost ##AT##-##AT## West Handel"
    hyps, refs = _random_corpus(40, 11)
    res = B.paired_bootstrap(hyps, refs, [refs], samples=100)  # B is the reference itself: always better
    assert res["p_value"] == pytest.approx(1 / 101) and res["bleu_b"] == pytest.approx(100.0)
    same = B.paired_bootstrap(hyps, hyps, [refs], samples=50)
    assert same["p_value"] == 1.0 and same["delta"] == 0.0
