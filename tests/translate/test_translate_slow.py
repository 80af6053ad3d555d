"""Claim gates (spec §9, CPU, `slow`): synthetic pairs, the `micro` preset, seed 1, one CPU thread.

- Learning: in 150 updates the training loss (mean of the last 10-update interval against the first) falls by
  at least 50 %.
- Multi-view mechanism: 2 views, 300 updates on 2,000 pairs: the auxiliary path's held-out teacher-forced token
  accuracy is at least 0.8× the primary's, while α = β = 0 (no auxiliary CE, no KL) leaves it at most 0.5× (the
  intermediate layer becomes a decodable view only through the method); the exported primary model has the
  baseline's keys and shapes.

Batches: 1,024 tokens for the learning gate, 512 for the multi-view gate (the spec leaves the size open).
Vocabulary: 500 BPE ids for the learning gate; 2,000 for the multi-view gate, which on these pairs gives whole
words (1,730 ids, 1.00 tokens per word) — the spec leaves the vocabulary open, and the thresholds are the spec's.

Why word tokens (FINDING, measured on this machine with a script of the same seed, data, lr 3e-3, warm-up 30 and
512-token batches, evaluated every 100 updates; the test's 10-update loader intervals shuffle the buckets
differently, so its own values differ a little and show in the assertion messages when a gate fails):
with 500 ids a target word is 2.8 BPE pieces, and the pieces after a word's first are predictable from the target
prefix alone. With α = β = 0 the auxiliary cross-attention never gets a gradient (it stays at its random init), so
the auxiliary path is a source-blind language model of the shared decoder: 0.16, 0.33, 0.41, 0.44, 0.46, 0.47,
0.48 token accuracy after 100…900 updates, while the primary reaches 0.20, 0.36, 0.46, 0.55, 0.62, 0.67, 0.76 —
ratios 0.83, 0.94, 0.87, 0.80, 0.72, 0.69, 0.63. The gate's 0.5× then needs a primary above 0.96 (thousands of
updates, far over the test budget): at 300 updates the half did not separate (0.87×; it was an xfail). With
whole-word tokens the language model alone predicts little (the next word is the source's content), so the same
measure separates at the spec's 300 updates: α = β = 0 gives primary/aux 0.479/0.138 (0.29×, 0.19× at 400),
and α = β = 1 gives 0.483/0.464 (0.96×). Both halves pass in this test (2026-12-06, loaded 2-core machine).

Measured again after the dropout fix (attention probabilities and the FFN's ReLU no longer drop, as in fairseq;
model.py) with fused AdamW, same seeds and sizes (2026-12-06, load 17–20 on 2 cores, one thread): learning gate
last/first interval 0.453 (the old model 0.462), 18–21 CPU-s (the old model 25 CPU-s, side by side); multi-view
α = β = 1: primary/aux 0.535/0.531 (0.99×), 29–33 CPU-s; α = β = 0: 0.536/0.136 (0.25×), 15–16 CPU-s (the step
runs the primary path alone). The multi-view run cannot stand in for the learning gate: its training loss falls
to 0.623 of the first interval in 150 updates (the KL term grows from 0.02 to 0.09 while the CEs fall).
"""

from __future__ import annotations

import pytest
import torch
from conftest import beside_worker

from wisecli.engines.translate.data import encode_pairs, hash_split
from wisecli.engines.translate.demo import train_in_memory
from wisecli.engines.translate.metrics import token_accuracy
from wisecli.engines.translate.model import Translator, export_view, model_config
from wisecli.engines.translate.synthetic import pairs
from wisecli.engines.translate.tokenizer import learn_bpe
from wisecli.runtime.device import one_cpu_thread

pytestmark = pytest.mark.slow
CPU = torch.device("cpu")


def _data(vocab: int):
    s, t = pairs(2300, seed=1)
    ts, tt, vs, vt = hash_split(s, t, percent=10)
    tok = learn_bpe(ts + tt, vocab)
    train, _ = encode_pairs(tok, ts[:2000], tt[:2000], 256)
    valid, _ = encode_pairs(tok, vs, vt, 256)
    return tok, train, valid


@pytest.fixture(scope="module")
def data():
    return _data(500)


@pytest.fixture(scope="module")
def words():
    return _data(2000)


def _train(data, steps, max_tokens, **kw):
    tok, train, _ = data
    cfg = {"arch": "micro", "vocab": tok.vocab_size, "views": 2, "lr": 3e-3, "warmup": 30, "max_tokens": max_tokens,
           **kw}
    with one_cpu_thread(CPU):
        return train_in_memory(train, cfg, CPU, budget_s=None, max_steps=steps, seed=1, interval=10)


def _learning(data):
    _, _, hist, steps = _train(data, 150, 1024)
    return steps, [h["train_loss"] for h in hist]


def _control(words):
    _, _, valid = words
    off, _, _, _ = _train(words, 300, 512, kl_alpha=0.0, aux_weight=0.0)
    with one_cpu_thread(CPU):
        return token_accuracy(off, valid, CPU)


@pytest.fixture(scope="module")
def beside(data, words):
    """The learning gate's and the α = β = 0 control's trainings in one forked process on the second core, while
    the mechanism gate trains here (first in this module): each run is one thread, so side by side the module
    takes ~35 s less wall time for the same ~63 CPU-s (the spec's 75 s is wall time on 2 cores); the worker is
    `conftest.beside_worker`."""
    with beside_worker() as submit:
        yield {"learning": submit(_learning, data), "control": submit(_control, words)}


@pytest.mark.usefixtures("beside")
def test_multi_view_mechanism_gate(words):
    tok, _, valid = words
    assert tok.vocab_size < 2000  # the merges ran out: every word of the grammar is one id
    model, mc, _, _ = _train(words, 300, 512)
    with one_cpu_thread(CPU):
        primary, aux = token_accuracy(model, valid, CPU)
    assert aux >= 0.8 * primary, (primary, aux)
    c1, state = export_view(mc, model.state_dict())
    base = Translator(model_config("micro", mc["vocab"], views=1)).state_dict()
    assert {k: v.shape for k, v in state.items()} == {k: v.shape for k, v in base.items()}


def test_learning_gate(beside):
    steps, losses = beside["learning"].get(timeout=900)
    assert steps == 150
    assert losses[-1] <= 0.5 * losses[0], [round(v, 2) for v in losses]


def test_multi_view_gate_without_the_method_leaves_the_aux_view_undecodable(beside):
    primary0, aux0 = beside["control"].get(timeout=900)
    assert aux0 <= 0.5 * primary0, (primary0, aux0)
