"""CS engine against a plain per-window implementation of spec steps 1-11 written here (the oracle)."""

import math

import numpy as np
import pytest
import torch

from wisecli.engines.smooth import algorithm as A

# one torch and one BLAS thread for the whole module (conftest's fixture; issue 13.11): nothing asserted depends on it
pytestmark = pytest.mark.usefixtures("one_thread_module")


# ------------------------------------------------------------------ the oracle: steps 1-11, one window at a time
def plain_fit(X):
    """X: S × T. Returns (π, fmin, fmax) with numpy's corrcoef and a plain Python walk."""
    S = X.shape[0]
    fmin, fmax = X.min(axis=1), X.max(axis=1)
    with np.errstate(all="ignore"):
        C = np.corrcoef(X) if S > 1 else np.array([[1.0]])
    C = np.atleast_2d(C)
    C = np.where(np.isnan(C), 0.0, C)
    const = fmax == fmin
    C[const, :] = 0.0
    C[:, const] = 0.0
    C = C + 1.0
    cv = [sum(C[i, j] for i in range(S)) / S for j in range(S)]
    for i in range(S):
        C[i, i] = -1.0
    order = [max(range(S), key=lambda j: (cv[j], -j))]
    while len(order) < S:
        prev = order[-1]
        best, bestv = None, None
        for j in range(S):
            if j in order:
                continue
            v = C[prev, j] * cv[j]
            if bestv is None or v > bestv:
                best, bestv = j, v
        order.append(best)
    return order, fmin, fmax


def plain_signature(X, order, fmin, fmax, e, W, B, float_bounds=False, eps=1e-4):
    S = X.shape[0]
    win = X[:, e - W:e + 1]
    N = np.clip((win - fmin[:, None]) / (fmax - fmin + eps)[:, None], 0, 1)
    N = N[order]
    a = [sum(N[s, 1:]) / W for s in range(S)]
    d = [sum(N[s, k + 1] - N[s, k] for k in range(W)) / W for s in range(S)]
    nb = min(B, S)
    avg, der = [], []
    for b in range(nb):
        if float_bounds:
            L = S / nb
            lo, hi = math.floor(b * L), math.ceil((b + 1) * L)
        else:
            lo, hi = (b * S) // nb, -((-(b + 1) * S) // nb)
        hi = min(hi, S)
        avg.append(sum(a[lo:hi]) / (hi - lo))
        der.append(sum(d[lo:hi]) / (hi - lo))
    return np.array(avg + der)


def plain_all(X, W, step, B, reference):
    order, fmin, fmax = plain_fit(X)
    T = X.shape[1]
    ends, e = [], W
    nwin = (T - W) // step if reference else None
    while e <= T - 1 and (nwin is None or len(ends) < nwin):
        ends.append(e)
        e += step
    return order, np.array([plain_signature(X, order, fmin, fmax, e, W, B, reference) for e in ends])


def data(S, T, seed=0):
    rng = np.random.default_rng(seed)
    lat = np.cumsum(rng.normal(size=(3, T)), axis=1)
    X = rng.normal(size=(S, 3)) @ lat + rng.normal(size=(S, T)) * 0.5
    X = X * rng.uniform(1, 1e3, size=(S, 1)) + rng.uniform(0, 100, size=(S, 1))
    if S >= 7:
        X[3] = 42.0  # a constant sensor
    return X


@pytest.mark.parametrize("mode", ["fixed", "reference"])
@pytest.mark.parametrize("S,B,W,step", [(1, 5, 4, 1), (7, 5, 6, 3), (7, 200, 5, 2), (20, 20, 8, 4),
                                        (64, 40, 10, 7), (164, 20, 12, 5), (164, 200, 3, 1)])
def test_parity_with_plain_loop(S, B, W, step, mode):
    X = data(S, 120 if S > 100 else 90, seed=S + B)
    order, want = plain_all(X, W, step, B, mode == "reference")
    m = A.fit(X.T, quirks=mode, blocks=B, window=W, step=step)
    assert list(m.order) == order
    got = A.signatures(m, X.T, precision="fp64")
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_s164_b20_differs_between_modes():
    X = data(164, 60, seed=1).T
    fixed = A.signatures(A.fit(X, window=5, step=5, blocks=20), X)
    ref = A.signatures(A.fit(X, window=5, step=5, blocks=20, quirks="reference"), X)
    assert fixed.shape == ref.shape
    assert np.abs(fixed - ref).max() > 1e-6
    assert A.block_bounds(164, 20)[15][0] == 123 and A.block_bounds(164, 20, A.REFERENCE)[15][0] == 122


def test_walk_hand_checked_tie_and_constant():
    # s0 and s1 identical (a tie everywhere), s2 anti-correlated with them, s3 constant, s4 independent-ish.
    t = np.arange(8.0)
    s0 = np.array([0, 1, 0, 2, 0, 3, 0, 4.0])
    X = np.stack([s0, s0.copy(), -s0, np.full(8, 5.0), np.array([1, 0, 0, 1, 1, 0, 0, 1.0])], axis=1)
    C = np.corrcoef(np.delete(X, 3, axis=1).T)
    # hand computation of cv = column means of C+1 with the constant row/column at 1
    full = np.ones((5, 5))
    idx = [0, 1, 2, 4]
    full[np.ix_(idx, idx)] = C + 1
    cv = full.mean(axis=0)
    # r = corr(s0, s4) ≈ 0.169; cv = (6+r)/5 for s0, s1 and s4 (a three-way tie), (4−r)/5 for s2, 1 for s3.
    assert cv[0] == cv[1] and abs(cv[4] - cv[0]) < 1e-12 and cv[0] > cv[3] > cv[2]
    # By hand: π0 = 0 (tie → lowest index). From s0: s1 scores 2·cv1, s4 (1+r)·cv4, s3 1·1, s2 0 → s1.
    # From s1: s4 (1+r)·cv4 ≈ 1.44 beats s3 (1.0) and s2 (0) → s4. From s4: s3 1.0 beats s2 (1−r)·cv2 ≈ 0.64 → s3.
    m = A.fit(X)
    assert list(m.order) == [0, 1, 4, 3, 2]
    assert m.constant_sensors == ["s3"]
    order_np = A.correlation_walk(A.correlation_matrix(X, m.fmax == m.fmin))
    order_t = A.correlation_walk_torch(A.correlation_matrix(X, m.fmax == m.fmin), "cpu")
    assert list(order_np) == list(order_t) == list(m.order)
    assert list(m.order) == plain_fit(X.T)[0]
    _ = t


def test_walk_cpu_and_torch_agree_random():
    X = data(64, 400, seed=3).T
    m = A.fit(X)
    C = A.correlation_matrix(X, m.fmax == m.fmin)
    assert list(A.correlation_walk_torch(C, "cpu")) == list(A.correlation_walk(C))


def test_fp32_torch_and_batch_and_modes():
    X = data(20, 300, seed=4).T
    m = A.fit(X, window=10, step=3, blocks=5)
    ref = A.signatures(m, X)
    f32 = A.signatures(m, X, precision="fp32")
    assert f32.dtype == np.float32
    np.testing.assert_allclose(f32, ref, atol=1e-6)
    both = A.signatures(m, np.stack([X, X[::-1].copy()]))
    np.testing.assert_allclose(both[0], ref, atol=1e-13)
    np.testing.assert_allclose(both[1], A.signatures(m, X[::-1].copy()), atol=1e-13)
    c = A.signatures(m, X, mode="complex", scale=1e9)
    np.testing.assert_allclose(c.real, ref[:, :5] * 1e9, rtol=1e-12)
    np.testing.assert_allclose(c.imag, ref[:, 5:] * 1e9, rtol=1e-12)
    np.testing.assert_allclose(A.signatures(m, X, mode="real"), ref[:, :5])
    # chunking over windows gives the same numbers
    np.testing.assert_allclose(A.signatures(m, X, chunk_elems=200), ref, atol=1e-13)


def test_feature_names():
    X = data(7, 50).T
    m = A.fit(X, sensors=[f"n{i}" for i in range(7)], blocks=20)
    names = A.feature_names(m)
    assert names[:7] == [f"n{i}-avg" for i in m.order] and len(names) == 14
    m.blocks = 5
    assert A.feature_names(m)[0] == "signature-block0-avg" and len(A.feature_names(m, mode="complex")) == 5


def test_streaming_equals_batch_row_for_row():
    X = data(12, 10_000, seed=5).T
    m = A.fit(X, window=25, step=3, blocks=5)
    batch = A.signatures(m, X)
    st = A.Stream(m)
    st.RESYNC = 1000  # exercise the periodic recomputation too
    rows = [s for s in (st.push(r) for r in X) if s is not None]
    assert len(rows) == len(batch)
    np.testing.assert_allclose(np.array(rows), batch, rtol=0, atol=1e-12)


def test_q4_window_count():
    T, W, step = 99, 10, 3  # T−1−W = 88 = 29·3 + 1
    assert len(A.window_ends(T, W, step)) == 30
    assert len(A.window_ends(T, W, step, A.REFERENCE)) == 29
    assert A.window_ends(T, W, step)[-1] == 97
    assert len(A.window_ends(100, 10, 1)) == len(A.window_ends(100, 10, 1, A.REFERENCE)) == 90


def test_q2_float_bounds():
    # The spec's 623 pairs count every float bound that differs from the exact one; in 132 of them only the
    # last bound overshoots S, which slicing clamps (no extra row), so 491 pairs change the rows of a block.
    raw = eff = 0
    for S in range(1, 4097):
        for B in (5, 10, 20, 40, 200):
            nb, L = min(B, S), S / min(B, S)
            raw += any(math.floor(b * L) != b * S // nb or math.ceil((b + 1) * L) != -((-(b + 1) * S) // nb)
                       for b in range(nb))
            eff += A.block_bounds(S, B) != A.block_bounds(S, B, A.Quirks.parse("Q2"))
    assert raw == 623 and eff == 491
    # the fixed bounds are exact: every row is covered, consecutive blocks overlap by at most one row
    for S, B in ((164, 20), (7, 5), (4096, 40)):
        bb = A.block_bounds(S, B)
        assert bb[0][0] == 0 and bb[-1][1] == S and all(0 <= b0[1] - b1[0] <= 1 for b0, b1 in zip(bb, bb[1:]))


def test_quirks_parse():
    assert A.Quirks.parse("reference").name == "reference"
    assert A.Quirks.parse("reference,-Q1").on == frozenset(A.ALL_QUIRKS) - {"Q1"}
    assert A.Quirks.parse("q4,Q2").name == "Q2,Q4"
    from wisecli.cli.errors import InputError
    with pytest.raises(InputError):
        A.Quirks.parse("Q10")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_numpy_fp64():
    X = data(64, 5000, seed=7).T
    m = A.fit(X, window=30, step=2, blocks=20)
    ref = A.signatures(m, X)
    np.testing.assert_allclose(A.signatures(m, X, device="cuda", precision="fp32"), ref, atol=1e-6)
    np.testing.assert_allclose(A.signatures(m, X, device="cuda", precision="fp64"), ref, atol=1e-12)
    C = A.correlation_matrix(X, m.fmax == m.fmin)
    assert list(A.correlation_walk_torch(C, "cuda")) == list(m.order)
