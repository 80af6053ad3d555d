"""Engine tests: baselines against plain references, stability indices against hand-computed values,
the label encoding and the table checks."""

from __future__ import annotations

import numpy as np
import pytest

from wisecli.cli.errors import InputError
from wisecli.engines.select_features.peers import rank_l1, rank_mi, rank_random, rank_rfe_lr
from wisecli.engines.select_features.data import encode_labels, impute
from wisecli.engines.select_features.metrics import default_k_grid, jaccard, kuncheva, stability
from wisecli.engines.select_features.synthetic import informative_classification, noise_append_breast_cancer


def _toy(seed=0, n=150, d=8):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = (2 * x[:, 2] - 1.5 * x[:, 5] + 0.2 * rng.standard_normal(n) > 0).astype(int)
    return x, y


def test_mi_ranks_by_sklearn_scores():
    from sklearn.feature_selection import mutual_info_classif

    x, y = _toy()
    scores = mutual_info_classif(x, y, random_state=1)
    ref = sorted(range(x.shape[1]), key=lambda j: (-scores[j], j))
    assert rank_mi(x, y, 1).tolist() == ref
    assert set(ref[:2]) == {2, 5}


def test_rfe_ranking_matches_a_plain_elimination_loop():
    from sklearn.linear_model import LogisticRegression

    x, y = _toy(d=6)
    remaining, eliminated = list(range(6)), []
    while len(remaining) > 1:  # the slow reference: drop the smallest |coef| one at a time
        coef = np.abs(LogisticRegression(max_iter=2000).fit(x[:, remaining], y).coef_).sum(0)
        eliminated.append(remaining.pop(int(np.argmin(coef))))
    ref = remaining + eliminated[::-1]
    assert rank_rfe_lr(x, y, 0).tolist() == ref


def test_l1_entry_order_puts_signal_first_and_is_a_permutation():
    x, y = _toy(d=10)
    r = rank_l1(x, y, 0)
    assert sorted(r.tolist()) == list(range(10))
    assert set(r[:2].tolist()) == {2, 5}
    # multiclass path (saga) on digits-like data also gives a permutation
    from sklearn.datasets import load_wine

    w = load_wine()
    xs = (w.data - w.data.mean(0)) / w.data.std(0)
    assert sorted(rank_l1(xs, w.target, 0).tolist()) == list(range(13))


def test_random_is_seeded_permutation():
    x, y = _toy()
    assert rank_random(x, y, 3).tolist() == rank_random(x, y, 3).tolist()
    assert rank_random(x, y, 3).tolist() != rank_random(x, y, 4).tolist()


def test_stability_indices_known_values():
    assert jaccard([1, 2, 3], [2, 3, 4]) == pytest.approx(2 / 4)
    # Kuncheva: r=2, k=3, d=10 -> (2*10 - 9) / (3 * 7)
    assert kuncheva([1, 2, 3], [2, 3, 4], 10) == pytest.approx(11 / 21)
    assert kuncheva([1, 2, 3], [1, 2, 3], 10) == pytest.approx(1.0)
    assert kuncheva([0, 1], [0, 1], 2) is None
    r = [np.array([0, 1, 2, 3]), np.array([0, 1, 3, 2]), np.array([1, 0, 2, 3])]
    s = stability(r, 2, 4)
    assert s["jaccard_mean"] == pytest.approx(1.0) and s["kuncheva_mean"] == pytest.approx(1.0)
    s = stability(r, 3, 4)
    # top-3 sets {0,1,2},{0,1,3},{0,1,2}: Jaccards 2/4, 1, 2/4
    assert s["jaccard_mean"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    assert stability(r, 4, 4)["kuncheva_mean"] is None


def test_k_grid():
    assert default_k_grid(64) == [1, 2, 4, 8, 16, 32, 64]
    assert default_k_grid(30) == [1, 2, 4, 8, 16, 30]


def test_label_encoding_sorted_and_checks():
    y, classes = encode_labels(["b", "a", "c", "a"], "t", "y")
    assert classes == ["a", "b", "c"] and y.tolist() == [1, 0, 2, 0]
    y, classes = encode_labels(["10", "9", "10"], "t", "y")  # numeric order, not text order
    assert classes == ["9", "10"] and y.tolist() == [1, 0, 1]
    with pytest.raises(InputError, match="only one class"):
        encode_labels(["a", "a"], "t", "y")
    with pytest.raises(InputError, match="regression"):
        encode_labels([str(v) for v in np.linspace(0, 1, 60)], "t", "y")
    with pytest.raises(InputError, match="missing"):
        encode_labels(["a", "", "b"], "t", "y")


def test_impute_uses_training_statistics():
    tr = np.array([[1.0, np.nan], [3.0, 4.0], [np.inf, 8.0]])
    te = np.array([[np.nan, np.nan]])
    a, b = impute(tr, te, how="mean")
    assert a[2, 0] == 2.0 and a[0, 1] == 6.0 and b.tolist() == [[2.0, 6.0]]
    a, b = impute(tr, te, how="median")
    assert b.tolist() == [[2.0, 6.0]]


def test_synthetic_informative_indices_are_the_signal():
    s = informative_classification(0)
    assert s.x.shape == (1000, 100) and len(s.informative) == 8
    # the informative columns separate the classes; the rest are pure noise
    diff = np.abs(s.x[s.y == 0].mean(0) - s.x[s.y == 1].mean(0))
    noise = np.setdiff1d(np.arange(100), s.informative)
    assert diff[noise].max() < 0.25
    assert all(s.feature_names[j].startswith("inf") for j in s.informative)
    nb = noise_append_breast_cancer(0)
    assert nb.x.shape == (569, 300) and nb.informative == list(range(30))


def test_stacked_mlp_refit_is_independent_of_its_stack_mates():
    """A refit's result does not depend on the other models stacked with it, nor on its zero padding."""
    import torch
    from sklearn.datasets import load_breast_cancer

    from wisecli.engines.select_features.data import split_arrays as _split_arrays
    from wisecli.engines.select_features.refit import refit_mlp_stacked

    b = load_breast_cancer()
    x_tr, y_tr, x_te, y_te = _split_arrays(b.data, b.target)
    kw = dict(n_classes=2, device=torch.device("cpu"), max_epochs=15, patience=100)
    alone = refit_mlp_stacked(x_tr, y_tr, x_te, y_te, [[0, 7, 22]], init_seeds=[5], **kw)
    stacked = refit_mlp_stacked(x_tr, y_tr, x_te, y_te, [list(range(30)), [0, 7, 22], [3]], init_seeds=[1, 5, 2], **kw)
    assert stacked[1]["accuracy"] == alone[0]["accuracy"]
    assert stacked[1]["balanced_accuracy"] == alone[0]["balanced_accuracy"]
    assert stacked[0]["accuracy"] > 0.8  # all 30 columns, 15 short epochs (majority class: 0.63)
    assert stacked[2]["accuracy"] < stacked[0]["accuracy"]  # one weak column does worse
