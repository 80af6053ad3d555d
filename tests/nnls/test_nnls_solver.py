"""Batched NNLS against scipy.optimize.nnls per column, plus the KKT conditions (spec §9.2)."""

import numpy as np
import pytest
import torch
from scipy.optimize import nnls

from wisecli.engines.nnls.solver import nnls_gram, nnls_matrix


def _problem(r, n=200, seed=0):
    rng = np.random.default_rng(seed)
    m = max(3 * r, 40)
    A = rng.random((m, r))
    B = A @ (rng.random((r, n)) * (rng.random((r, n)) < 0.3)) + 0.3 * rng.standard_normal((m, n))
    return A, B


@pytest.mark.parametrize("method", ["bpp", "lh"])
@pytest.mark.parametrize("r", [6, 12, 49])
def test_matches_scipy_and_kkt(r, method):
    A, B = _problem(r)
    res = nnls_matrix(torch.tensor(A), torch.tensor(B), method=method)
    x = res.x.numpy()
    assert not res.flagged.any()
    assert (x >= 0).all()
    for j in range(B.shape[1]):
        _, rn = nnls(A, B[:, j])
        ours = np.sum((A @ x[j] - B[:, j]) ** 2)
        assert abs(ours - rn**2) <= 1e-9 * max(rn**2, 1e-12)
    G, C = A.T @ A, A.T @ B
    grad = C - G @ x.T  # c − Gx
    scale = np.linalg.norm(C, axis=0)
    zero, pos = x.T == 0, x.T > 0
    assert (np.where(zero, grad, -np.inf) <= 1e-9 * scale).all()
    assert (np.abs(np.where(pos, grad, 0)) <= 1e-9 * scale).all()


@pytest.mark.parametrize("method", ["bpp", "lh"])
def test_iteration_cap_flags_and_returns_feasible(method):
    A, B = _problem(49, n=50, seed=3)
    res = nnls_matrix(torch.tensor(A), torch.tensor(B), method=method, max_iter=1)
    assert res.flagged.any()
    assert (res.x >= 0).all() and torch.isfinite(res.x).all()
    full = nnls_matrix(torch.tensor(A), torch.tensor(B), method=method)
    assert not full.flagged.any()


def test_allowed_mask_restricts_support():
    A, B = _problem(12, n=30, seed=4)
    allowed = np.random.default_rng(0).random((30, 12)) < 0.5
    res = nnls_gram(torch.tensor(A.T @ A), torch.tensor(A.T @ B), allowed=torch.tensor(allowed))
    x = res.x.numpy()
    assert (x[~allowed] == 0).all()
    for j in range(30):
        S = np.flatnonzero(allowed[j])
        if S.size == 0:
            continue
        _, rn = nnls(A[:, S], B[:, j])
        assert abs(np.sum((A @ x[j] - B[:, j]) ** 2) - rn**2) <= 1e-9 * rn**2


def test_collinear_atoms_survive():
    A, B = _problem(6, n=40, seed=5)
    A = np.hstack([A, A[:, :1], np.zeros((A.shape[0], 1))])  # duplicate atom and an all-zero atom
    res = nnls_matrix(torch.tensor(A), torch.tensor(B))
    x = res.x.numpy()
    assert np.isfinite(x).all() and (x >= 0).all()
    for j in range(40):
        _, rn = nnls(A, B[:, j])
        assert abs(np.sum((A @ x[j] - B[:, j]) ** 2) - rn**2) <= 1e-8 * rn**2
