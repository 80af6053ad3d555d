"""Decoding of text-vae: beam 1 is greedy, a wide beam finds the exhaustive best length-normalised sentence."""

from __future__ import annotations

import itertools

import pytest
import torch

from wisecli.engines.text_vae import data as D
from wisecli.engines.text_vae.model import TextVAE, model_config
from wisecli.engines.text_vae.predict import beam_decode, decode


pytestmark = pytest.mark.usefixtures("one_torch_thread_module")


def _tiny(kind="twr", vocab=6):
    torch.manual_seed(3)
    return TextVAE(model_config(vocab, model=kind, emb=8, hidden=8, z_dim=3, dropout=0.0)).eval()


def test_beam_one_is_greedy():
    m = _tiny(vocab=12)
    z = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    assert beam_decode(m, z, 5, beam=1, max_tokens=7) == decode(m, z, 5, max_tokens=7)
    lm = _tiny("lm", vocab=12)
    assert beam_decode(lm, None, 2, beam=1, max_tokens=5) == decode(lm, None, 2, max_tokens=5)


def _score(m, z, seq):
    """Σ log p of `seq` (ids, maybe ending in </s>) under the model with the decoder's banned ids masked."""
    state, tok, total = None, torch.tensor([D.BOS]), 0.0
    with torch.no_grad():
        for t in seq:
            logits, state = m.step_logits(tok, z, state)
            logits[:, [D.PAD, D.BOS, D.UNK]] = -float("inf")
            total += float(torch.log_softmax(logits, -1)[0, t])
            tok = torch.tensor([t])
    return total


def test_a_wide_beam_finds_the_exhaustive_best():
    m = _tiny(vocab=6)  # words 4, 5 and </s>: 3 choices a step
    z = torch.randn(1, 3, generator=torch.Generator().manual_seed(1))
    T = 4
    cands = []
    for n in range(0, T):
        for words in itertools.product([4, 5], repeat=n):
            seq = list(words) + [D.EOS]
            cands.append((_score(m, z, seq) / len(seq), list(words)))
    for words in itertools.product([4, 5], repeat=T):
        cands.append((_score(m, z, list(words)) / T, list(words)))
    best = max(cands)[1]
    assert beam_decode(m, z, 1, beam=81, max_tokens=T) == [best]
