"""`runtime.bleu.nltk_sentence_bleu`: NLTK's sentence BLEU, smoothing methods 0, 3 and 7, without nltk.

The method-7 values are nltk 3.10.4's, measured and quoted in specs/text-vae.md §5 and §2.4 (weights 1/3)."""

from __future__ import annotations

import math

import pytest

from wisecli.runtime.bleu import nltk_sentence_bleu

W3 = (1 / 3, 1 / 3, 1 / 3)


@pytest.mark.parametrize("ref,hyp,value", [
    ("i do n't know what you mean", "i do n't know", 0.478969),
    ("yes i think so", "i think so too", 0.686387),
    ("what time is it", "it is five o'clock", 0.255648),
    ("hello", "hello there", 0.263059),
    ("a b c d e f", "a b c d e f", 1.153888),
])
def test_method7_matches_nltk_values(ref, hyp, value):
    assert nltk_sentence_bleu([ref.split()], hyp.split(), weights=W3, smoothing=7) == pytest.approx(value, abs=1e-6)


def test_method7_exceeds_one_on_identical_short_sentences():
    # §2.4: 1.0140 for identical 3-4-token sentences (the order-5 precision is 0 there)
    for s in ("a b c", "a b c d"):
        assert nltk_sentence_bleu([s.split()], s.split(), weights=W3, smoothing=7) == pytest.approx(1.0140, abs=1e-4)
    # analytically: (4/3 · 10/9 · 19/27)^(1/3)
    assert nltk_sentence_bleu([["x", "y", "z"]], ["x", "y", "z"], weights=W3, smoothing=7) == \
        pytest.approx((4 / 3 * 10 / 9 * 19 / 27) ** (1 / 3), rel=1e-12)


def test_method3_is_in_unit_interval_and_matches_a_hand_value():
    # hyp "the cat sat" vs ref "the cat is here": p1 2/3, p2 1/2, p3 0 -> 1/(2·1); BP exp(1-4/3)
    v = nltk_sentence_bleu([["the", "cat", "is", "here"]], ["the", "cat", "sat"], weights=W3, smoothing=3)
    want = math.exp(1 - 4 / 3) * (2 / 3 * 1 / 2 * 1 / 2) ** (1 / 3)
    assert v == pytest.approx(want, rel=1e-12)
    for ref, hyp in [("a b c d e f g", "a b c d e f g"), ("a b", "c d"), ("a b c", "a b d e f g h")]:
        assert 0 <= nltk_sentence_bleu([ref.split()], hyp.split(), smoothing=3) <= 1


def test_no_unigram_match_is_zero_and_unknown_method_refused():
    assert nltk_sentence_bleu([["a"]], ["b"], smoothing=7) == 0.0
    with pytest.raises(ValueError):
        nltk_sentence_bleu([["a"]], ["a"], smoothing=2)
