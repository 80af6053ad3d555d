"""Data of text-vae: the reference tokeniser, the vocabulary and its checkpoint form, hash splits, the offline
corpora (pydoc always; gettext from a catalogue the test writes), length buckets and the β schedule."""

from __future__ import annotations

import pytest
import torch

from wisecli.engines.text_vae import data as D
from wisecli.engines.text_vae.synthetic import TOPICS, lm_sentences
from wisecli.engines.text_vae.train import beta_at


def test_reference_tokeniser():
    assert D.tokenize("It's John's dog... Really?! Yes, ok.") == \
        ["it", "'s", "john", "'s", "dog", ".", "really", "?", "!", "yes", ",", "ok", "."]
    assert D.tokenize("A  B\tc", "whitespace") == ["A", "B", "c"]


def test_vocabulary_ids_caps_and_round_trip():
    v = D.Vocab.build([["b", "a", "b"], ["c", "b", "a"], ["d"]], min_count=1, max_vocab=6)
    assert v.itos[:4] == ["<pad>", "<unk>", "<s>", "</s>"] and v.itos[4:] == ["b", "a"]  # by count, ties by word
    assert v.encode(["a", "zz"]) == [2, 5, 1, 3] and v.decode([2, 5, 1, 3, 4]) == "a <unk>"
    assert D.Vocab.build([["x", "x", "y"]], min_count=2).itos[4:] == ["x"]
    w = D.Vocab.from_state(v.state())
    assert w.itos == v.itos and v.state().dtype == torch.uint8


def test_encode_all_drops_and_counts_long_and_empty_lines():
    v = D.Vocab.build([["a", "b"]])
    seqs, dropped = D.encode_all(v, ["a b", "a b a b a", "  "], how="whitespace", max_len=3)
    assert seqs == [[2, 4, 5, 3]] and dropped == 2


def test_hash_splits_are_deterministic_and_near_their_shares():
    s, _ = lm_sentences(4000, seed=7)
    s = list(dict.fromkeys(s))
    parts = [D.split_of(x) for x in s]
    assert parts == [D.split_of(x) for x in s]
    assert 0.75 < parts.count("train") / len(s) < 0.85 and 0.07 < parts.count("test") / len(s) < 0.13
    tr, va = D.hash_valid(s, 5.0)
    assert len(tr) + len(va) == len(s) and 0.03 < len(va) / len(s) < 0.07
    assert D.split_of("The  cat.") == D.split_of("the cat.")  # normalised


def test_pydoc_corpus_and_gettext_messages_from_a_written_catalogue(tmp_path, monkeypatch):
    docs = D.python_docs()
    assert len(docs) > 500 and all(4 <= len(D.tokenize(x)) <= 25 for x in docs)
    from wisecli.runtime.io import gettext as G

    lc = tmp_path / "xx" / "LC_MESSAGES"
    lc.mkdir(parents=True)
    G.write_mo(lc / "demo.mo", [("Cannot open the file %s for reading", "x"), ("_Save the current document", "y"),
                                ("Hi", "z"), ("Cannot open the file %s for reading", "x")])
    monkeypatch.setattr(G, "LOCALE_DIRS", (tmp_path,))
    monkeypatch.setattr(G.languages, "__defaults__", ((tmp_path,),))
    monkeypatch.setattr(G.catalogs, "__defaults__", ((tmp_path,),))
    msgs = D.gettext_messages()
    assert msgs == ["Cannot open the file for reading", "Save the current document"]


def test_bucket_order_depends_on_epoch_only():
    lengths = [len(x.split()) for x in lm_sentences(500, seed=3)[0]]
    a, b = D.BucketSampler(lengths, 32, seed=1), D.BucketSampler(lengths, 32, seed=1)
    a.set_epoch(3)
    b.set_epoch(3)
    assert a.batches() == b.batches()
    b.set_epoch(4)
    assert a.batches() != b.batches()
    assert sorted(i for bt in a.batches() for i in bt) == list(range(500)) and len(a) == len(a.batches())


def test_beta_schedule_and_synthetic_factors():
    assert beta_at(0, 0.1, 10) == pytest.approx(0.1) and beta_at(5, 0.1, 10) == pytest.approx(0.55)
    assert beta_at(10, 0.1, 10) == 1.0 and beta_at(3, 0.1, 0) == 1.0
    s, f = lm_sentences(200, seed=1)
    assert all(5 <= len(x.split()) <= 21 for x in s) and set(f["topic"]) == set(range(len(TOPICS)))
    assert lm_sentences(20, seed=1) == lm_sentences(20, seed=1)
