"""The byte-level BPE: exact round trips (gettext-like text and random Unicode), deterministic merges, a
checkpoint round trip under weights_only=True, and the merges against a plain quadratic re-count."""

from __future__ import annotations

import random
import unicodedata
from collections import Counter

import torch

from wisecli.engines.translate.synthetic import pairs
from wisecli.engines.translate.tokenizer import OFFSET, ByteBPE, learn_bpe

GETTEXT_LIKE = ["do a trivial merge only", "nur einen trivialen Merge durchführen", "Datei »foo« nicht gefunden.",
                "Ungültige Option -- „x“", "l'option n'est pas valide", "Não foi possível abrir o arquivo"]


def _random_text(rng: random.Random) -> str:
    pools = ["abcXYZ äöüß", "東京都の天気は晴れ", "🙂🚀👍🏽", "e\u0301a\u0308", "\u00a0\t  \u3000", "0123456789",
             ".,;:!?«»„“—-_'\"()[]", "Ελληνικά кириллица עברית"]
    return "".join(rng.choice(rng.choice(pools)) for _ in range(rng.randint(0, 40)))


def test_round_trip_is_exact():
    rng = random.Random(0)
    texts = GETTEXT_LIKE + [_random_text(rng) for _ in range(300)] + ["", " ", "  a  b  ", "\t\tx\n"]
    tok = learn_bpe(texts * 3, 600)
    assert tok.vocab_size > OFFSET + 256
    for t in texts:
        ids = tok.encode(t)
        assert all(OFFSET <= i < tok.vocab_size for i in ids)
        assert tok.decode(ids) == unicodedata.normalize("NFC", t)
        assert "".join(tok.chunks(t)) == unicodedata.normalize("NFC", t)


def test_merges_are_deterministic_and_a_plain_recount_agrees():
    src, tgt = pairs(300, seed=5)
    a, b = learn_bpe(src + tgt, 420), learn_bpe(list(reversed(src + tgt)), 420)
    assert a.merges == b.merges
    # plain reference: recount every pair from scratch after each merge, pick the most frequent (ties: smallest)
    words = Counter()
    for t in src + tgt:
        words.update(a.chunks(t))
    seqs = {w: [x + OFFSET for x in w.encode()] for w in words}
    for k, merge in enumerate(a.merges[:40]):
        counts = Counter()
        for w, s in seqs.items():
            for p in zip(s, s[1:]):
                counts[p] += words[w]
        best = min(counts, key=lambda p: (-counts[p], p))
        assert best == merge, k
        new = OFFSET + 256 + k
        for w, s in seqs.items():
            out, i = [], 0
            while i < len(s):
                if i < len(s) - 1 and (s[i], s[i + 1]) == merge:
                    out.append(new)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            seqs[w] = out


def test_state_survives_a_weights_only_load(tmp_path):
    tok = learn_bpe(GETTEXT_LIKE * 5, 400)
    torch.save({"tokenizer": tok.state()}, tmp_path / "t.pt")
    back = ByteBPE.from_state(torch.load(tmp_path / "t.pt", weights_only=True)["tokenizer"])
    assert back.merges == tok.merges and back.fingerprint() == tok.fingerprint()
    for t in GETTEXT_LIKE:
        assert back.encode(t) == tok.encode(t)


def test_sentencepiece_round_trip_specials_determinism_and_checkpoint(tmp_path):
    """The optional unigram tokenizer: exact round trip on NFC text (byte fallback covers unseen characters),
    our special ids, the same model from the same data, and a weights_only checkpoint round trip."""
    import pytest

    pytest.importorskip("sentencepiece")
    from wisecli.engines.translate.tokenizer import BOS, EOS, PAD, UNK, SentencePiece, learn_sentencepiece, \
        tokenizer_from_state

    rng = random.Random(1)
    src, tgt = pairs(300, seed=2)
    tok = learn_sentencepiece(src + tgt + GETTEXT_LIKE * 3, 400)
    assert 260 < tok.vocab_size <= 400
    assert [tok._sp.id_to_piece(i) for i in (PAD, BOS, EOS, UNK)] == ["<pad>", "<s>", "</s>", "<unk>"]
    texts = GETTEXT_LIKE + [_random_text(rng) for _ in range(200)] + ["", " ", "  a  b  ", "\t\tx"]
    for t in texts:
        ids = tok.encode(t)
        assert all(i > UNK for i in ids)  # no unknown: unseen characters fall back to bytes
        assert tok.decode([BOS, *ids, EOS, PAD]) == unicodedata.normalize("NFC", t), repr(t)
    again = learn_sentencepiece(src + tgt + GETTEXT_LIKE * 3, 400)
    assert again.fingerprint() == tok.fingerprint()
    torch.save({"tokenizer": tok.state()}, tmp_path / "t.pt")
    back = tokenizer_from_state(torch.load(tmp_path / "t.pt", weights_only=True)["tokenizer"])
    assert isinstance(back, SentencePiece) and back.fingerprint() == tok.fingerprint()
    assert [back.encode(t) for t in GETTEXT_LIKE] == [tok.encode(t) for t in GETTEXT_LIKE]
    # a frequent word is one piece, not its bytes
    assert len(tok.encode(src[0].split()[0])) < len(src[0].split()[0].encode())
