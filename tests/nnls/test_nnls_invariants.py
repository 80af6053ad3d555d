"""Invariants of spec §9.5 and §9.1 on real data: exact fronts + DP solve the matrix-wise problem, so no other
method beats them at the same q; matrix-wise ≤ column-wise over the same front; evaluate respects q; the lfw
front with nmf:8 equals a scipy brute force."""

import itertools

import numpy as np
import pytest
from scipy.optimize import nnls

from wisecli.engines.nnls import algorithm, metrics
from wisecli.engines.nnls.data import faces, make_dictionary


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(5)
    A = rng.random((25, 6))
    B = A @ (rng.random((6, 60)) * (rng.random((6, 60)) < 0.5)) + 0.1 * rng.random((25, 60))
    return A, B


def test_exact_dp_is_a_lower_bound_for_every_method(problem):
    A, B = problem
    recs = metrics.evaluate(A, B, [1, 1.5, 3], device="cpu", select_method="dp")
    best = {r["avg_nnz"]: r["rel_error_pct"] for r in recs if r["method"] == "matrixwise-exact"}
    for r in recs:
        assert r["nnz"] <= r["q"] or r["method"] == "nnls-dense"
        if r["method"] != "nnls-dense":
            assert r["rel_error_pct"] >= best[r["avg_nnz"]] - 1e-9, r
    # the exact matrix-wise optimum equals a brute force over all level choices on a few columns
    small = B[:, :4]
    fr = algorithm.compute_fronts(A, small, front="enum", device="cpu")
    for q in range(0, 13):
        sel = algorithm.select(fr, q, "dp")
        brute = min(sum(fr.err[j, k] for j, k in enumerate(ks))
                    for ks in itertools.product(range(7), repeat=4) if sum(ks) <= q)
        assert sel.objective == pytest.approx(brute, rel=1e-12)


@pytest.mark.parametrize("front", ["enum", "union", "greedy", "homotopy", "backward"])
def test_matrixwise_beats_columnwise_on_the_same_front(problem, front):
    A, B = problem
    fr = algorithm.compute_fronts(A, B, front=front, device="cpu")
    n = B.shape[1]
    for k in (1, 2, 3):
        sel = algorithm.select(fr, k * n, "dp")
        assert sel.objective <= fr.err[:, k].sum() * (1 + 1e-12)
        gr = algorithm.select(fr, k * n, "greedy")
        assert gr.lower_bound <= sel.objective * (1 + 1e-12) and sel.objective <= gr.objective * (1 + 1e-12)


def test_solve_respects_budget_and_matches_selection(problem):
    A, B = problem
    res = algorithm.solve(A, B, avg_nnz=1.5, device="cpu")
    X = res["X"]
    assert (X != 0).sum() <= res["q"] and (X >= 0).all()
    sel = res["selection"]
    assert np.sum((A @ X - B) ** 2) == pytest.approx(sel.objective, rel=1e-9)


def test_zero_and_collinear_atoms_are_handled(problem):
    A, B = problem
    A2 = np.hstack([A, np.zeros((A.shape[0], 1)), A[:, :1] * 2.0])
    fr = algorithm.compute_fronts(A2, B, front="enum", device="cpu")
    assert any("all-zero" in n for n in fr.notes) and any("collinear" in n for n in fr.notes)
    ref = algorithm.compute_fronts(A, B, front="enum", device="cpu")
    # a duplicated atom cannot lower the exact front; the zero atom is never used
    np.testing.assert_allclose(fr.err[:, :7], ref.err, rtol=1e-9)
    assert not fr.mask[:, :, 6].any()


def test_lfw_nmf8_front_equals_scipy_brute_force():
    B = faces()[:, :30]
    A = make_dictionary("nmf:8", faces(), seed=0)
    fr = algorithm.compute_fronts(A, B, front="enum", device="cpu")
    ref = np.zeros_like(fr.err)
    ref[:, 0] = (B**2).sum(0)
    for k in range(1, 9):
        best = ref[:, k - 1].copy()
        for S in itertools.combinations(range(8), k):
            for j in range(B.shape[1]):
                best[j] = min(best[j], nnls(A[:, S], B[:, j])[1] ** 2)
        ref[:, k] = best
    np.testing.assert_allclose(fr.err, ref, rtol=1e-9)


def test_bnb_and_hybrid_through_the_api(problem):
    A, B = problem
    ex = algorithm.compute_fronts(A, B, front="enum", device="cpu")
    bb = algorithm.compute_fronts(A, B, front="bnb", device="cpu", bnb_time_limit=30)
    np.testing.assert_allclose(bb.err, ex.err, rtol=1e-9)
    assert bb.exact.all()
    hy = algorithm.compute_fronts(A, B, front="hybrid", device="cpu", enum_max_subsets=21)
    np.testing.assert_allclose(hy.err[:, :3], ex.err[:, :3], rtol=1e-9)
    assert hy.exact[:, :3].all()
    assert (hy.err >= ex.err * (1 - 1e-9)).all()


def test_fronts_file_roundtrip(problem, tmp_path):
    A, B = problem
    fr = algorithm.compute_fronts(A, B, device="cpu", with_coefficients=True)
    algorithm.save_fronts(tmp_path / "f.fronts.npz", fr)
    back = algorithm.load_fronts(tmp_path / "f.fronts.npz")
    np.testing.assert_array_equal(back.mask, fr.mask)
    np.testing.assert_array_equal(back.err, fr.err)
    assert back.coef.shape == (60, 7, 6)
    # coefficients reproduce the errors
    j, k = 3, 2
    x = fr.coef[j, k].astype(np.float64)
    assert np.sum((A @ x - B[:, j]) ** 2) == pytest.approx(fr.err[j, k], rel=1e-5)


@pytest.mark.parametrize("r", [6, 64, 70])
def test_support_bits_roundtrip(r):
    mask = np.random.default_rng(r).random((5, 3, r)) < 0.5
    bits = algorithm.mask_to_bits(mask)
    assert bits.dtype == (np.uint64 if r <= 64 else np.uint8)
    np.testing.assert_array_equal(algorithm.bits_to_mask(bits, r), mask)


def test_fp32_enumeration_and_lh_refits_give_the_same_fronts(problem):
    A, B = problem
    ref = algorithm.compute_fronts(A, B, front="enum", device="cpu")
    fp32 = algorithm.compute_fronts(A, B, front="enum", device="cpu", precision="fp32")
    lh = algorithm.compute_fronts(A, B, front="enum", device="cpu", nnls_solver="lh", normalize_atoms=False)
    np.testing.assert_allclose(fp32.err, ref.err, rtol=1e-12)
    np.testing.assert_allclose(lh.err, ref.err, rtol=1e-12)
