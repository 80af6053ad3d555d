"""Metrics against scikit-learn and hand binning; corruptions against scikit-image (spec §5, §9)."""

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

from wisecli.engines.classify import metrics as M
from wisecli.engines.classify.corruptions import CORRUPTIONS, corrupt, gaussian_blur


def _data(n=200, c=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g) * 2
    y = torch.randint(0, c, (n,), generator=g)
    logits[torch.arange(n), y] += 1.0
    return torch.log_softmax(logits, 1), y


def test_accuracies_and_f1_match_sklearn():
    logp, y = _data()
    pred = logp.argmax(1)
    assert M.balanced_accuracy(y, pred, 5) == pytest.approx(balanced_accuracy_score(y, pred), abs=1e-6)
    assert M.macro_f1(y, pred, 5) == pytest.approx(f1_score(y, pred, average="macro"), abs=1e-6)
    assert M.accuracy(y, pred) == pytest.approx(float((y == pred).float().mean()))


def test_ece_top15_matches_hand_binning():
    logp, y = _data(500)
    p = logp.exp().numpy()
    conf, pred = p.max(1), p.argmax(1)
    ece = 0.0
    edges = np.linspace(0, 1, 16)
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs((pred[m] == y.numpy()[m]).mean() - conf[m].mean())
    assert M.ece_top15(logp, y) == pytest.approx(ece, abs=1e-6)


def test_nll_brier_by_hand():
    logp, y = _data(50)
    p = logp.exp().numpy()
    assert M.nll(logp, y) == pytest.approx(-np.mean(np.log(p[np.arange(50), y.numpy()])), rel=1e-5)
    oh = np.eye(5)[y.numpy()]
    assert M.brier(logp, y) == pytest.approx(((p - oh) ** 2).sum(1).mean(), rel=1e-5)


def test_auroc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    neg, pos = rng.integers(0, 5, 40).astype(float), rng.integers(2, 8, 30).astype(float)
    want = roc_auc_score(np.r_[np.zeros(40), np.ones(30)], np.r_[neg, pos])
    assert M.auroc(torch.tensor(neg), torch.tensor(pos)) == pytest.approx(want, abs=1e-9)


def test_shot_groups_and_invariance_error():
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    pred = torch.tensor([0, 0, 1, 0, 0, 0])
    g = M.shot_groups(y, pred, [150, 50, 5], 3)
    assert g == {"many": 1.0, "medium": 0.5, "few": 0.0}
    z = torch.tensor([[3.0, 4.0]])
    assert M.invariance_error(z, z) == 0.0
    assert M.invariance_error(z, torch.tensor([[3.0, 0.0]])) == pytest.approx(0.8)


def test_corruptions_are_seeded_bounded_and_grow_with_severity():
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    for name in CORRUPTIONS:
        a = corrupt(x, name, 3, torch.Generator().manual_seed(1))
        b = corrupt(x, name, 3, torch.Generator().manual_seed(1))
        assert torch.equal(a, b) and a.shape == x.shape and a.min() >= 0 and a.max() <= 1, name
    d1 = (corrupt(x, "gaussian_noise", 1, torch.Generator().manual_seed(1)) - x).abs().mean()
    d5 = (corrupt(x, "gaussian_noise", 5, torch.Generator().manual_seed(1)) - x).abs().mean()
    assert d5 > d1


def test_blur_matches_skimage_and_brightness_keeps_hue():
    from skimage.color import rgb2hsv
    from skimage.filters import gaussian

    x = torch.rand(1, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    want = gaussian(x[0].permute(1, 2, 0).numpy().astype(np.float64), sigma=0.7, channel_axis=-1, mode="nearest",
                    truncate=4.0)
    got = gaussian_blur(x, 0.7)[0].permute(1, 2, 0).numpy()
    assert np.abs(got - want).max() < 1e-5  # float32 convolution vs float64 scipy
    b = corrupt(x * 0.5, "brightness", 2)
    h0 = rgb2hsv((x * 0.5)[0].permute(1, 2, 0).numpy())
    h1 = rgb2hsv(b[0].permute(1, 2, 0).numpy())
    assert np.abs(h1[..., 2] - np.clip(h0[..., 2] + 0.1, 0, 1)).max() < 1e-5
    assert np.abs(h1[..., 1] - h0[..., 1]).max() < 1e-4
