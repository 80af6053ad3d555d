"""Metric toy cases of spec §9, each against a hand value or a plain oracle."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from wisecli.cli.errors import InputError
from wisecli.engines.fas import metrics as M


def _recs(scores, labels, types, subjects=None):
    return [{"score": s, "label": l, "attack_type": t if l == 0 else None,
             "subject": subjects[i] if subjects else f"s{i}"} for i, (s, l, t) in
            enumerate(zip(scores, labels, types))]


def test_worst_case_apcer_differs_from_pooled():
    s = np.r_[np.full(10, 0.1), np.r_[np.full(5, 0.9), np.full(5, 0.1)], np.full(10, 0.9)]
    y = np.r_[np.zeros(20, int), np.ones(10, int)]
    sp = ["print"] * 10 + ["replay"] * 10 + ["bona_fide"] * 10
    r = M.error_rates(s, y, sp, 0.5)
    assert r["apcer_per_species"] == {"print": 0.0, "replay": 0.5}
    assert r["apcer"] == 0.5 and r["apcer_pooled_info"] == 0.25
    assert r["bpcer"] == 0.0 and r["acer"] == 0.25


def test_interpolated_eer_four_points():
    # bona fide 0.3, 0.7, 0.9; attack 0.5. FAR−FRR goes 2/3 → −1/3 between t = 0.5 and 0.7: α = 2/3.
    e, tau = M.eer([0.3, 0.7, 0.9, 0.5], [1, 1, 1, 0])
    assert e == pytest.approx(1 / 3)
    assert tau == pytest.approx(0.5 + 2 / 3 * 0.2)


def test_eer_separable_and_flat():
    e, tau = M.eer([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0])
    assert e == 0.0 and tau == pytest.approx(0.5)  # the centre of the zero stretch (0.2, 0.8]
    rates = M.error_rates([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0], ["b", "b", "print", "print"], tau)
    assert rates["acer"] == 0.0


def _stale_reference_search(s, y):
    """The reference's defect: BPCER computed once before the loop and never updated."""
    thresholds = np.unique(s)
    bpcer = np.mean(s[y == 1] < thresholds[0])
    best, best_t = None, None
    for t in thresholds:
        apcer = np.mean(s[y == 0] >= t)
        d = abs(apcer - bpcer)  # stale bpcer
        if best is None or d < best:
            best, best_t = d, t
    return best_t


def test_threshold_search_updates_bpcer():
    rng = np.random.default_rng(0)
    s = np.r_[rng.normal(0.7, 0.1, 50), rng.normal(0.4, 0.1, 49), 0.95]  # one attack scores high
    y = np.r_[np.ones(50, int), np.zeros(50, int)]
    e, tau = M.eer(s, y)
    stale = _stale_reference_search(s, y)
    assert abs(stale - tau) > 0.02
    # at our τ FAR and FRR meet; brute-force check over a fine grid
    grid = np.linspace(0, 1.2, 4001)
    far, frr = M.far_frr(s, y, grid)
    assert abs(grid[np.argmin(np.abs(far - frr))] - tau) < 0.02
    ours = M.error_rates(s, y, ["a"] * 100, tau)["acer"]
    theirs = M.error_rates(s, y, ["a"] * 100, stale)["acer"]
    assert ours < theirs


def test_auc_is_mann_whitney_with_ties():
    rng = np.random.default_rng(1)
    s = rng.integers(0, 5, 60).astype(float)  # many ties
    y = rng.integers(0, 2, 60)
    bf, at = s[y == 1], s[y == 0]
    pairs = (bf[:, None] > at[None, :]).sum() + 0.5 * (bf[:, None] == at[None, :]).sum()
    assert M.auc(s, y) == pytest.approx(pairs / (bf.size * at.size))
    assert M.auc(s, y) == pytest.approx(roc_auc_score(y, s))


def test_bpcer_at_apcer_brute_force():
    rng = np.random.default_rng(2)
    s = np.r_[rng.normal(0.7, 0.15, 40), rng.normal(0.4, 0.15, 60)]
    y = np.r_[np.ones(40, int), np.zeros(60, int)]
    sp = ["bf"] * 40 + ["print"] * 30 + ["replay"] * 30
    best = 1.0
    for t in np.r_[np.unique(s), np.inf]:
        r = M.error_rates(s, y, sp, t)
        if r["apcer"] <= 0.05:
            best = min(best, r["bpcer"])
    assert M.bpcer_at_apcer(s, y, sp, 0.05)[0] == pytest.approx(best)


def test_cross_hter_uses_dev_threshold_not_test_eer():
    rng = np.random.default_rng(3)
    dev = _recs(np.r_[rng.normal(0.8, 0.05, 30), rng.normal(0.5, 0.05, 30)], [1] * 30 + [0] * 30,
                [None] * 30 + ["print"] * 30)
    # the target domain is shifted: with its own EER threshold it would look nearly perfect
    ts = np.r_[rng.normal(0.55, 0.05, 30), rng.normal(0.3, 0.05, 30)]
    test = _recs(ts, [1] * 30 + [0] * 30, [None] * 30 + ["replay"] * 30)
    out = M.evaluate_scores(test, dev, cross=True, compat=True)
    _, tau_dev = M.eer([r["score"] for r in dev], [r["label"] for r in dev])
    assert out["threshold"] == pytest.approx(tau_dev)
    assert out["hter"] == pytest.approx(M.hter(ts, [1] * 30 + [0] * 30, tau_dev))
    assert out["hter"] > 0.3
    assert out["compat"]["hter_target_eer"] < 0.1
    assert "optimistic" in out["compat"]["note"]


def test_evaluate_keys_and_single_class_errors():
    recs = _recs([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0], [None, None, "print", "replay"])
    out = M.evaluate_scores(recs, recs)
    for k in ("threshold", "threshold_rule", "apcer", "apcer_per_species", "bpcer", "acer", "eer", "auc", "bpcer20",
              "bpcer100", "hter", "apcer_pooled_info", "level", "n_bona_fide", "n_attack"):
        assert k in out
    assert out["acer"] == 0.0 and out["auc"] == 1.0
    with pytest.raises(InputError):
        M.evaluate_scores(recs[:2], recs)
    with pytest.raises(InputError):
        M.evaluate_scores(recs, [])
    with pytest.raises(InputError):
        M.evaluate_scores(recs, recs[2:])
    assert M.evaluate_scores(recs, None, threshold="fixed:0.85")["bpcer"] == 0.5


def test_absent_species_warns_and_is_left_out():
    dev = _recs([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0], [None, None, "print", "replay"])
    test = _recs([0.9, 0.8, 0.2], [1, 1, 0], [None, None, "print"])
    warnings = []
    out = M.evaluate_scores(test, dev, warn=warnings.append)
    assert set(out["apcer_per_species"]) == {"print"} and "replay" in warnings[0]


def test_frame_level_and_bootstrap():
    recs = [{"score": 0.8, "label": 1, "subject": "a", "frames": [{"score": 0.7}, {"score": 0.9}]},
            {"score": 0.2, "label": 0, "attack_type": "print", "subject": "b",
             "frames": [{"score": 0.1}, {"score": 0.3}]}]
    out = M.evaluate_scores(recs, recs, level="frame", bootstrap=50)
    assert out["n_bona_fide"] == 2 and out["n_attack"] == 2
    assert out["bootstrap"]["unit"] == "subject"
