"""Fronts against brute force with scipy nnls, bnb against enum, hybrid exactness, homotopy against lars_path
(spec §9.1, §9.3, §9.5 union dominance)."""

import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import nnls
from sklearn.linear_model import lars_path

from wisecli.engines.nnls.bnb import bnb_fronts
from wisecli.engines.nnls.fronts import (backward_levels, enum_levels, finish, greedy_levels, homotopy_levels,
                                         homotopy_path, hybrid_k, union_levels)

# one torch and one BLAS thread for the whole module (conftest's fixture; issue 13.11): on a shared 2-core machine
# these small problems and CLI runs spent up to 5x their CPU time in thread hand-offs; nothing asserted depends on it
pytestmark = pytest.mark.usefixtures("one_thread_module")


def _data(m, r, n, seed):
    rng = np.random.default_rng(seed)
    A = rng.random((m, r))
    A /= np.linalg.norm(A, axis=0)
    B = A @ (rng.random((r, n)) * (rng.random((r, n)) < 0.4)) + 0.2 * rng.random((m, n))
    return A, B


def _gram(A, B):
    return torch.tensor(A.T @ A), torch.tensor(A.T @ B), torch.tensor((B**2).sum(0))


def brute_front(A, B, kmax):
    """err[j, k] = min over |S| ≤ k of scipy's NNLS residual² on A[:, S]."""
    n = B.shape[1]
    err = np.zeros((n, kmax + 1))
    err[:, 0] = (B**2).sum(0)
    for k in range(1, kmax + 1):
        best = err[:, k - 1].copy()
        for S in itertools.combinations(range(A.shape[1]), k):
            for j in range(n):
                best[j] = min(best[j], nnls(A[:, S], B[:, j])[1] ** 2)
        err[:, k] = best
    return err


@pytest.fixture(scope="module")
def small():
    A, B = _data(30, 6, 50, 0)
    return A, B, brute_front(A, B, 6)


@pytest.mark.parametrize("layout", [None, "gather", "scatter"])
def test_enum_equals_brute_force(small, layout):
    A, B, bf = small
    # small chunks and column blocks so that both layouts (CPU's gather, CUDA's scatter) cross chunk and block edges
    kw = {} if layout is None else dict(layout=layout, chunk_numbers=300, col_block=16)
    err, mask, on = finish(enum_levels(*_gram(A, B), 6, **kw))
    np.testing.assert_allclose(err.numpy(), bf, rtol=1e-9)
    # the recorded support reproduces the error
    for j in range(0, 50, 7):
        for k in range(1, 7):
            S = np.flatnonzero(mask[j, k].numpy())
            assert len(S) <= k
            assert abs(nnls(A[:, S], B[:, j])[1] ** 2 - bf[j, k]) <= 1e-9 * bf[j, k]
    # on_front marks strict drops only
    e = err.numpy()
    np.testing.assert_array_equal(on.numpy()[:, 1:], e[:, 1:] < e[:, :-1] * (1 - 1e-12))


def test_approximate_fronts_are_upper_bounds_and_union_dominates(small):
    A, B, bf = small
    G, C, beta = _gram(A, B)
    parts = {
        "greedy": finish(greedy_levels(G, C, beta, 6))[0].numpy(),
        "backward": finish(backward_levels(G, C, beta, 6))[0].numpy(),
        "homotopy": finish(homotopy_levels(G, C, beta, 6, max_steps=24))[0].numpy(),
    }
    union = finish(union_levels(G, C, beta, 6, max_steps=24))[0].numpy()
    for e in parts.values():
        assert (e >= bf * (1 - 1e-9)).all()
        assert (union <= e * (1 + 1e-12)).all()
    np.testing.assert_allclose(union, np.minimum.reduce(list(parts.values())), rtol=1e-12)
    # the dense NNLS solution is reached: the last level equals the unconstrained NNLS error
    np.testing.assert_allclose(union[:, -1], bf[:, -1], rtol=1e-9)


@pytest.mark.parametrize("r", [6, 10])
def test_bnb_equals_enum(r):
    A, B = _data(40, r, 40, r)
    G, C, beta = _gram(A, B)
    ee = finish(enum_levels(G, C, beta, r))[0].numpy()
    e0, m0, _ = finish(union_levels(G, C, beta, r, max_steps=4 * r))
    eb, sb, proven, nodes = bnb_fronts(G.numpy(), C.numpy(), beta.numpy(), r, e0.numpy(), m0.numpy(),
                                       time_limit=30.0, workers=1)
    assert proven.all()
    np.testing.assert_allclose(eb, ee, rtol=1e-9)


def test_bnb_time_limit_keeps_incumbent():
    A, B = _data(40, 10, 5, 9)
    G, C, beta = _gram(A, B)
    e0, m0, _ = finish(union_levels(G, C, beta, 10, max_steps=40))
    eb, sb, proven, _ = bnb_fronts(G.numpy(), C.numpy(), beta.numpy(), 10, e0.numpy(), m0.numpy(),
                                   time_limit=0.0, workers=1)
    assert not proven.any()
    assert (eb <= e0.numpy()).all()


def test_hybrid_levels_exact_up_to_k(small):
    A, B, bf = small
    G, C, beta = _gram(A, B)
    K = hybrid_k(6, 21, 6)  # C(6,1)+C(6,2) = 21
    assert K == 2
    lv = enum_levels(G, C, beta, K)
    np.testing.assert_allclose(finish(lv)[0].numpy(), bf[:, : K + 1], rtol=1e-9)


def test_homotopy_matches_lars_path():
    A, B = _data(40, 12, 20, 7)
    G, C = A.T @ A, A.T @ B
    path = homotopy_path(torch.tensor(G), torch.tensor(C), max_steps=48)
    m = A.shape[0]
    assert path.finished.all()
    for j in range(20):
        alphas, _, coefs = lars_path(A, B[:, j], Gram=G, Xy=C[:, j], method="lasso", positive=True)
        lam = path.lambdas[j].numpy()
        lam = lam[~np.isnan(lam)]
        assert len(lam) == len(alphas)
        np.testing.assert_allclose(lam, alphas * m, rtol=1e-8, atol=1e-10)
        for t in range(len(alphas)):
            np.testing.assert_array_equal(path.supports[t, j].numpy(), coefs[:, t] != 0)
        # at λ = 0 the path ends at the NNLS solution (sklearn's last coefficients drift by ~1e-3 there, so
        # scipy is the oracle for the end point)
        np.testing.assert_allclose(path.x[j].numpy(), nnls(A, B[:, j])[0], rtol=1e-8, atol=1e-10)


@pytest.mark.gpu
def test_cpu_and_gpu_fronts_agree():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA")
    A, B = _data(60, 12, 300, 11)
    cpu = finish(enum_levels(*_gram(A, B), 12))[0]
    gpu = finish(enum_levels(*(t.cuda() for t in _gram(A, B)), 12))[0].cpu()
    np.testing.assert_allclose(gpu.numpy(), cpu.numpy(), rtol=1e-10)


@pytest.mark.gpu
@pytest.mark.parametrize("front", ["enum", "union", "hybrid"])
def test_cpu_and_gpu_api_fronts_and_selection_agree(front):
    from wisecli.engines.nnls import algorithm

    A, B = _data(60, 12, 300, 12)
    cpu = algorithm.compute_fronts(A, B, front=front, device="cpu", enum_max_subsets=300)
    gpu = algorithm.compute_fronts(A, B, front=front, device="cuda", enum_max_subsets=300)
    np.testing.assert_allclose(gpu.err, cpu.err, rtol=1e-10)
    for q in (300, 600, 900):
        sc, sg = algorithm.select(cpu, q, "dp"), algorithm.select(gpu, q, "dp")
        np.testing.assert_array_equal(sc.k, sg.k)
        assert sg.objective == pytest.approx(sc.objective, rel=1e-10)
    x_cpu, _ = algorithm.nnls_batched(A, B, device="cpu")
    x_gpu, _ = algorithm.nnls_batched(A, B, device="cuda")
    np.testing.assert_allclose(x_gpu, x_cpu, rtol=1e-8, atol=1e-10)
