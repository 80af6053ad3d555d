"""MCKP selection: DP against brute force, LP ≤ DP ≤ greedy, the certified gap (spec §9.4)."""

import itertools

import numpy as np
import pytest

from wisecli.engines.nnls.select import hull_segments, lp_curve, select_levels

# one torch and one BLAS thread for the whole module (conftest's fixture; issue 13.11): on a shared 2-core machine
# these small problems and CLI runs spent up to 5x their CPU time in thread hand-offs; nothing asserted depends on it
pytestmark = pytest.mark.usefixtures("one_thread_module")


def _fronts(n, r, seed):
    rng = np.random.default_rng(seed)
    drops = rng.random((n, r)) * (rng.random((n, r)) < 0.8)
    err = np.concatenate([np.full((n, 1), 0.0), -np.cumsum(drops, 1)], 1) + drops.sum(1, keepdims=True) + 0.1
    on = np.ones_like(err, bool)
    on[:, 1:] = err[:, 1:] < err[:, :-1] * (1 - 1e-12)
    return err, on


def brute(err, on, q):
    n = err.shape[0]
    best = np.inf
    levels = [np.flatnonzero(on[j]) for j in range(n)]
    for ks in itertools.product(*levels):
        if sum(ks) <= q:
            best = min(best, sum(err[j, k] for j, k in enumerate(ks)))
    return best


@pytest.mark.parametrize("seed", range(6))
def test_dp_equals_brute_force_and_bounds(seed):
    rng = np.random.default_rng(100 + seed)
    n, r = int(rng.integers(1, 7)), int(rng.integers(1, 4))
    err, on = _fronts(n, r, seed)
    for q in range(0, n * r + 1):
        opt = brute(err, on, q)
        dp = select_levels(err, on, q, "dp")
        gr = select_levels(err, on, q, "greedy")
        assert dp.k.sum() <= q and gr.k.sum() <= q
        assert on[np.arange(n), dp.k].all() and on[np.arange(n), gr.k].all()
        assert dp.objective == pytest.approx(opt, rel=1e-12, abs=1e-12)
        assert dp.objective == pytest.approx(err[np.arange(n), dp.k].sum())
        lp = gr.lower_bound
        assert lp <= dp.objective + 1e-12 <= gr.objective + 2e-12
        cols, kf, kt, de = hull_segments(err, on)
        largest = -de.min() if de.size else 0.0
        assert gr.objective - lp <= largest + 1e-12
        if gr.gap <= 1e-15:
            assert gr.objective == pytest.approx(dp.objective, abs=1e-12)


def test_no_fractional_segment_means_greedy_is_optimal():
    err, on = _fronts(5, 3, 42)
    full = int(sum(np.flatnonzero(on[j]).max() for j in range(5)))
    gr = select_levels(err, on, full, "greedy")
    assert gr.gap == 0.0
    assert gr.objective == pytest.approx(err.min(1).sum())


def test_hull_is_convex_and_below_points():
    err, on = _fronts(40, 8, 3)
    cols, kf, kt, de = hull_segments(err, on)
    for j in range(40):
        s = cols == j
        slopes = de[s] / (kt[s] - kf[s])
        assert (np.diff(slopes) > 0).all()
        # every on-front point lies on or above the hull
        xs = np.concatenate([[0], kt[s]])
        ys = err[j, xs]
        for k in np.flatnonzero(on[j]):
            assert err[j, k] >= np.interp(k, xs, ys) - 1e-12
    assert lp_curve(err, on, [0])[0] == pytest.approx(err[:, 0].sum())


def test_auto_switches_to_greedy_by_cells():
    err, on = _fronts(30, 4, 5)
    assert select_levels(err, on, 40, "auto", dp_max_cells=10).method == "greedy"
    assert select_levels(err, on, 40, "auto").method == "dp"
