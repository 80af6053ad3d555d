"""CDB, focal, class-balanced and CE losses against hand computations (spec §2.2, §9)."""

import math

import pytest
import torch
import torch.nn.functional as F

from wisecli.engines.classify.loss import (CDBLoss, FocalLoss, build_loss, cdb_tau, cdb_weights,
                                           class_balanced_weights, parse_tau)

ACC = torch.linspace(0.1, 0.9, 9)


def test_tau_forms_on_the_spec_example():
    # b = 0.9 / 0.11 = 8.18; 2 sigma(b - 1) = 1.998; sigma(b) = 0.9997
    assert float(cdb_tau(ACC, "dynamic")) == pytest.approx(1.998, abs=5e-4)
    assert float(cdb_tau(ACC, "dynamic-sigmoid")) == pytest.approx(1.000, abs=5e-4)
    assert float(cdb_tau(ACC, 0.5)) == 0.5


def test_tau_parse_refuses_bad_values():
    for bad in ("fast", "-1", "nan", "inf", -0.5):
        with pytest.raises(ValueError):
            parse_tau(bad)
    assert parse_tau("2") == 2.0 and parse_tau("dynamic") == "dynamic"


def test_weights_sum_to_c_and_follow_difficulty():
    w, t, solved = cdb_weights(ACC, "dynamic")
    assert float(w.sum()) == pytest.approx(9, rel=1e-5)
    d = (1 - ACC) ** float(t)
    assert torch.allclose(w, d / d.sum() * 9, rtol=1e-5)
    assert not bool(solved)
    assert bool((w[:-1] > w[1:]).all())  # harder classes weigh more


def test_all_solved_gives_uniform_weights_and_min_weight_floors():
    w, _, solved = cdb_weights(torch.ones(4), "dynamic")
    assert bool(solved) and torch.equal(w, torch.ones(4))
    w, _, _ = cdb_weights(torch.tensor([1.0, 0.5, 0.5]), 1.0)
    assert float(w[0]) == 0.0
    w, _, _ = cdb_weights(torch.tensor([1.0, 0.5, 0.5]), 1.0, min_weight=0.1)
    assert float(w[0]) == pytest.approx(0.1 * 3 / 1.1, rel=1e-5)


def test_reductions_match_by_hand_and_epoch_one_is_ce():
    torch.manual_seed(0)
    logits, y = torch.randn(7, 3), torch.tensor([0, 1, 2, 2, 1, 0, 0])
    loss = CDBLoss(3, "dynamic")
    assert float(loss(logits, y)) == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-6)  # d = 1: CE
    loss.update(torch.tensor([0.9, 0.5, 0.2]))
    w = loss.weights
    nll = -F.log_softmax(logits, 1)[torch.arange(7), y]
    by_hand = sum(float(w[y[i]] * nll[i]) for i in range(7))
    assert float(loss(logits, y)) == pytest.approx(by_hand / 7, rel=1e-5)
    loss2 = CDBLoss(3, "dynamic", reduction="weighted-mean")
    loss2.update(torch.tensor([0.9, 0.5, 0.2]))
    assert float(loss2(logits, y)) == pytest.approx(by_hand / sum(float(w[c]) for c in y), rel=1e-5)


def test_cdb_weights_survive_state_dict():
    a = CDBLoss(3)
    a.update(torch.tensor([0.9, 0.5, 0.2]))
    b = CDBLoss(3)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.weights, b.weights)


def test_focal_and_class_balanced_by_hand():
    logits, y = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0])
    p = F.softmax(logits, 1)[:, 0]
    want = float((-(1 - p) ** 2 * p.log()).mean())
    assert float(FocalLoss(2.0)(logits, y)) == pytest.approx(want, rel=1e-6)
    w = class_balanced_weights([100, 10], 0.999)
    e = [(1 - 0.999 ** n) / (1 - 0.999) for n in (100, 10)]
    inv = [1 / v for v in e]
    assert w.tolist() == pytest.approx([2 * v / sum(inv) for v in inv], rel=1e-5)
    cb = build_loss("class-balanced", 2, counts=[100, 10])
    ce = F.cross_entropy(logits, y, reduction="none")
    assert float(cb(logits, y)) == pytest.approx(float((w[y] * ce).mean()), rel=1e-6)
    assert math.isclose(float(build_loss("ce", 2)(logits, y)), float(ce.mean()), rel_tol=1e-6)
