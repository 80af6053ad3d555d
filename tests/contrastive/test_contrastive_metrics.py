"""The cached linear probe against scikit-learn and the stratified label subsets (spec §9 test 7)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wisecli.engines.contrastive.metrics import fit_logreg, linear_probe, stratified_subset
from wisecli.engines.contrastive.synthetic import vmf_clusters


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny L-BFGS steps lose to thread hand-offs on shared cores
    yield
    torch.set_num_threads(old)


def test_logreg_matches_sklearn_and_the_probe_is_within_one_point():
    from sklearn.linear_model import LogisticRegression

    x, y = vmf_clusters(900, 6, 16, seed=3, kappa=6.0)
    xtr, ytr, xte, yte = x[:600], y[:600], x[600:], y[600:]
    mu, sd = xtr.mean(0), xtr.std(0)
    ztr, zte = (xtr - mu) / sd, (xte - mu) / sd
    l2 = 1e-3
    W, b = fit_logreg(ztr, ytr, 6, l2)
    ref = LogisticRegression(C=1.0 / (l2 * len(ytr)), max_iter=1000).fit(ztr.numpy(), ytr.numpy())
    ours = (zte @ W.T + b).argmax(1).numpy()
    theirs = ref.predict(zte.numpy())
    assert (ours == theirs).mean() >= 0.99  # same convex objective; near-boundary rows may differ
    probe = linear_probe(xtr, ytr, xte, yte, seed=0)
    best = LogisticRegression(C=1.0 / (probe["l2"] * len(ytr)), max_iter=2000).fit(ztr.numpy(), ytr.numpy())
    assert abs(probe["top1"] - best.score(zte.numpy(), yte.numpy())) <= 0.01
    assert 0 <= probe["top1"] <= probe["top5"] <= 1


def test_label_subsets_are_stratified_with_at_least_one_per_class():
    y = np.repeat(np.arange(10), [500, 300, 200, 100, 50, 20, 10, 5, 2, 1])
    for frac in (0.01, 0.1):
        idx = stratified_subset(y, frac, seed=0)
        counts = np.bincount(y[idx], minlength=10)
        assert counts.min() >= 1
        full = np.bincount(y, minlength=10)
        assert np.all(counts == np.maximum(1, np.round(frac * full).astype(int)))
        assert len(np.unique(idx)) == len(idx)
    assert not np.array_equal(stratified_subset(y, 0.1, 0), stratified_subset(y, 0.1, 1))
    assert np.array_equal(stratified_subset(y, 0.1, 2), stratified_subset(y, 0.1, 2))


def _tiny_model():
    from wisecli.engines.contrastive.model import MoCo

    torch.manual_seed(0)
    return MoCo(arch="monai-resnet18", in_channels=1, image_size=16, n_bank=8, queue=4, k=2, width=0.0625).eval()


def test_augmented_probe_equals_a_plain_sgd_loop_on_frozen_features():
    """With identity views and one full batch, MoCo's probe is full-batch SGD (momentum 0.9, lr x 0.1 at 60 % and
    80 % of the epochs) of softmax regression on frozen features: checked against a float64 loop written here."""
    from wisecli.engines.contrastive.metrics import linear_augmented

    m = _tiny_model()
    g = torch.Generator().manual_seed(5)
    X = torch.randint(0, 256, (24, 1, 16, 16), generator=g, dtype=torch.uint8)
    y = torch.arange(24) % 3
    lp = linear_augmented(m, X, y, X, y, device=torch.device("cpu"), seed=7, epochs=5, lr=1.0, batch=64,
                          views=m.eval_view)
    assert lp["lr_schedule"] == pytest.approx([1.0, 1.0, 1.0, 0.1, 0.01])
    with torch.no_grad():
        F_ = m.encoder_q.backbone(m.eval_view(X)).double().numpy()
    W = (torch.randn(3, F_.shape[1], generator=torch.Generator().manual_seed(7)) * 0.01).double().numpy()
    b = np.zeros(3)
    bw, bb = np.zeros_like(W), np.zeros_like(b)
    Y = np.eye(3)[y.numpy()]
    for lr in (1.0, 1.0, 1.0, 0.1, 0.01):
        z = F_ @ W.T + b
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        gw, gb = (p - Y).T @ F_ / len(Y), (p - Y).mean(0)
        bw, bb = 0.9 * bw + gw, 0.9 * bb + gb  # torch's SGD: the first buffer is the gradient itself
        W, b = W - lr * bw, b - lr * bb
    # float32 against float64 over five steps on O(1) features: 1e-4 relative holds on any BLAS
    np.testing.assert_allclose(lp["weight"].double().numpy(), W, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(lp["bias"].double().numpy(), b, rtol=1e-4, atol=1e-5)
    acc = float(((F_ @ W.T + b).argmax(1) == y.numpy()).mean())
    assert lp["top1"] == pytest.approx(acc, abs=1 / 24 + 1e-9)


def test_augmented_probe_keeps_the_backbone_frozen_and_uses_mocos_schedule():
    from wisecli.engines.contrastive.metrics import linear_augmented

    m = _tiny_model()
    before = {k: v.clone() for k, v in m.encoder_q.backbone.state_dict().items()}
    g = torch.Generator().manual_seed(6)
    X = torch.randint(0, 256, (20, 1, 16, 16), generator=g, dtype=torch.uint8)
    y = torch.arange(20) % 4
    lp = linear_augmented(m, X, y, X, y, device=torch.device("cpu"), seed=0, epochs=10, batch=8)
    assert lp["lr_schedule"] == pytest.approx([30.0] * 6 + [3.0] * 2 + [0.3] * 2)  # 60 and 80 of 100, scaled
    for k, v in m.encoder_q.backbone.state_dict().items():
        assert torch.equal(v, before[k]), k  # weights and BN running statistics untouched (eval mode)
    assert 0 <= lp["top1"] <= lp["top5"] <= 1
