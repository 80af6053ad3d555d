"""Batched NNLS against scipy.optimize.nnls per column, plus the KKT conditions (spec §9.2)."""

import numpy as np
import pytest
import torch
from scipy.optimize import nnls

from wisecli.engines.nnls.solver import nnls_gram, nnls_matrix

# one torch and one BLAS thread for the whole module (conftest's fixture; issue 13.11): on a shared 2-core machine
# these small problems and CLI runs spent up to 5x their CPU time in thread hand-offs; nothing asserted depends on it
pytestmark = pytest.mark.usefixtures("one_thread_module")


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


def _reference_solve(G, C, mask):
    """Plain per-column reference: z_S = pinv(G_SS) c_S, zero off S."""
    z = np.zeros(mask.shape)
    for j, row in enumerate(mask):
        S = np.flatnonzero(row)
        if S.size:
            z[j, S] = np.linalg.pinv(G[np.ix_(S, S)], hermitian=True) @ C[S, j]
    return z


@pytest.mark.parametrize("shared", [False, True])
def test_fast_passive_set_solves_equal_the_plain_solve(shared, monkeypatch):
    """Subset table and compact k×k Cholesky (cache-sized chunks, made small here so there are five, and size
    buckets: n ≥ 256; the one-shared-set shortcut) against a per-column pinv."""
    from wisecli.engines.nnls import solver
    from wisecli.engines.nnls.solver import BUCKET_MIN_ROWS, _compact_solve, _pinv_atol, _Systems, _Workspace

    monkeypatch.setattr(solver, "CHUNK_NUMBERS", 1)  # chunks of CHUNK_MIN_ROWS rows

    n = BUCKET_MIN_ROWS + 44
    A, B = _problem(7, n=n, seed=6)
    A[:, 3] = 0.0  # an all-zero atom: G_SS singular whenever S holds it
    G, C = A.T @ A, A.T @ B
    rng = np.random.default_rng(1)
    mask = rng.random((n, 7)) < rng.random((n, 1))  # passive-set sizes from 0 to 7
    mask[0] = False  # an empty passive set
    if shared:
        mask[:] = mask[5]
    ref = _reference_solve(G, C, mask)
    Gt, Ct, mt = torch.tensor(G), torch.tensor(C), torch.tensor(mask)
    table = _Systems(Gt, n, "table")
    assert table.table is not None
    z_table = table.solve(Ct.T.contiguous(), mt, _Workspace()).numpy()
    scale = np.abs(ref).max()
    assert np.abs(z_table - ref).max() <= 1e-10 * scale
    assert (z_table[~mask] == 0).all()
    for chunks in (True, False):  # CPU's cache-sized chunks and CUDA's size buckets, both run here
        z_compact = _compact_solve(Gt, Ct.T, mt, _pinv_atol(Gt), _Workspace(), chunks=chunks).numpy()
        assert np.abs(z_compact - ref).max() <= 1e-10 * scale
        assert (z_compact[~mask] == 0).all()


@pytest.mark.parametrize("method", ["bpp", "lh"])
def test_table_and_compact_paths_agree_with_collinear_atoms_and_allowed(method):
    A, B = _problem(8, n=150, seed=7)
    A = np.hstack([A, A[:, :1], np.zeros((A.shape[0], 1))])  # r = 10: a duplicate atom and an all-zero atom
    G, C = torch.tensor(A.T @ A), torch.tensor(A.T @ B)
    allowed = torch.tensor(np.random.default_rng(2).random((150, 10)) < 0.7)
    for al in (None, allowed):
        t = nnls_gram(G, C, allowed=al, method=method, systems="table")
        c = nnls_gram(G, C, allowed=al, method=method, systems="compact")
        assert not t.flagged.any() and not c.flagged.any()
        xt, xc = t.x.numpy(), c.x.numpy()
        if al is not None:
            assert (xt[~al.numpy()] == 0).all() and (xc[~al.numpy()] == 0).all()
        ot = ((A @ xt.T - B) ** 2).sum(0)
        oc = ((A @ xc.T - B) ** 2).sum(0)
        assert np.abs(ot - oc).max() <= 1e-10 * oc.max()
        # away from the duplicated pair the solutions are unique, so the coefficients agree too
        assert np.abs(xt[:, 1:8] - xc[:, 1:8]).max() <= 1e-8 * np.abs(xc).max()


def test_column_blocks_in_threads_equal_one_thread():
    """On CPU, large problems are split into column blocks solved in threads; every column's iterations are its
    own, so the answer equals the one-thread solve up to round-off (a chunk's padding and its batch of right-hand
    sides change the rounding, not the passive sets), and the thread count is restored."""
    from wisecli.engines.nnls.solver import THREAD_MIN_NUMBERS

    r = 49
    n = 2 * THREAD_MIN_NUMBERS // (r * r) + 10
    A, B = _problem(r, n=n, seed=3)
    G, C = torch.tensor(A.T @ A), torch.tensor(A.T @ B)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = nnls_gram(G, C)
        torch.set_num_threads(2)
        two = nnls_gram(G, C)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(old)
    assert torch.equal(one.x > 0, two.x > 0) and torch.equal(one.flagged, two.flagged)
    assert (one.x - two.x).abs().max() <= 1e-10 * one.x.abs().max()
    _, rn = nnls(A, B[:, -1])
    assert abs(((A @ two.x[-1].numpy() - B[:, -1]) ** 2).sum() - rn**2) <= 1e-9 * rn**2
