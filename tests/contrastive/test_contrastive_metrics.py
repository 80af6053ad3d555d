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
