"""`wise nnls benchmark`: our batched solvers against the spec §7 peers, in one process on one machine.

Cases: ``nnls`` (batched BPP vs a `scipy.optimize.nnls` loop), ``path`` (lock-step homotopy vs
`sklearn.linear_model.lars_path(positive=True)` per column), ``front`` (``enum`` + greedy selection vs a numpy
brute force over subsets; r = 16 has no peer), ``select`` (hull greedy + LP bound vs the exact DP). Peers run on the
host CPU on ``peer_columns`` columns and are scaled per column; ours are synchronised, warmed up, and the median of
5 runs on CUDA (1 on CPU, except the ``nnls`` case: 5 quick, 3 full); the scipy loop is the median of up to 3 loops.
Data: a synthetic generator shaped like Urban (162 × r), Cuprite (188 × 12) and CBCL (361 × 49): Gaussian-sum
spectra plus a floor, sparse nonnegative abundances, 1 % noise (our choice).

Presets (ours): ``small`` is the quick CPU preset (seconds); ``urban``, ``cuprite``, ``cbcl`` and ``all`` are the
full §7 sizes for the GPU check. Speed-ups against scipy < 1.16 are marked not comparable (scipy/scipy#22884).
"""

from __future__ import annotations

import itertools
import os
import platform
import time

import numpy as np

from wisecli.runtime.device import timed

PRESETS = ("small", "urban", "cuprite", "cbcl", "all")


def synthetic(m: int, r: int, n: int, seed: int = 0, density: float = 0.3):
    """A (m × r) Gaussian-sum spectra plus a floor, B = A X + 1 % noise with sparse nonnegative X."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, m)[:, None]
    A = 0.05 + sum(rng.random(r) * np.exp(-((t - rng.random(r)) ** 2) / (2 * (0.01 + 0.04 * rng.random(r)) ** 2))
                   for _ in range(4))
    X = rng.random((r, n)) * (rng.random((r, n)) < density)
    B = A @ X
    B += 0.01 * np.abs(B).mean() * rng.standard_normal(B.shape)
    return A, B


def _versions() -> dict:
    import scipy
    import sklearn
    import torch

    return {"scipy": scipy.__version__, "sklearn": sklearn.__version__, "torch": torch.__version__,
            "numpy": np.__version__}


def _record(case, m, r, n, ours_s, peer_s_per_col, max_rel_diff, dev, extra=None):
    import torch

    from wisecli.runtime.device import device_name

    vers = _versions()
    peer_s = None if peer_s_per_col is None else peer_s_per_col * n
    rec = {"case": case, "m": m, "r": r, "n": n, "ours_s": round(ours_s, 5),
           "peer_s": None if peer_s is None else round(peer_s, 5),
           "ours_cols_per_s": n / ours_s if ours_s > 0 else None,
           "peer_cols_per_s": None if not peer_s_per_col else 1.0 / peer_s_per_col,
           "speedup": None if peer_s is None else round(peer_s / ours_s, 2),
           "max_rel_diff": max_rel_diff, "device": device_name(dev), "cpu": platform.processor() or platform.machine(),
           "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "versions": vers}
    if case == "nnls":
        major, minor = (int(v) for v in vers["scipy"].split(".")[:2])
        rec["comparable"] = (major, minor) >= (1, 16)
    rec.update(extra or {})
    return rec


def bench_nnls(dev, m, r, n, peer_columns, repeats):
    import torch
    from scipy.optimize import nnls

    from .solver import nnls_matrix

    A, B = synthetic(m, r, n, seed=r)
    At, Bt = torch.tensor(A, device=dev), torch.tensor(B, device=dev)
    res, ours_s = timed(lambda: nnls_matrix(At, Bt), dev, repeats, warmup=1)
    p = min(peer_columns, n)
    runs = []
    for _ in range(min(repeats, 3)):  # the median of up to 3 loops, as ours is a median (shared CPUs are noisy)
        t0 = time.perf_counter()
        peer = [nnls(A, B[:, j]) for j in range(p)]
        runs.append((time.perf_counter() - t0) / p)
    per_col = float(np.median(runs))
    x = res.x[:p].cpu().numpy()
    ours_obj = ((A @ x.T - B[:, :p]) ** 2).sum(0)
    peer_obj = np.array([rn**2 for _, rn in peer])
    diff = float(np.max(np.abs(ours_obj - peer_obj) / np.maximum(peer_obj, 1e-300)))
    return _record("nnls", m, r, n, ours_s, per_col, diff, dev, {"flagged": int(res.flagged.sum())})


def path_kkt(G, c, lams, active) -> float:
    """Largest violation of the positive-lasso path conditions at our breakpoints, relative to λ₀: on each segment
    x_S(λ) = G_SS⁻¹(c_S − λ1) must stay ≥ 0 and every inactive g_j = c_j − G_jS x_S must stay ≤ λ."""
    worst = 0.0
    for t in range(len(lams) - 1):
        S = np.flatnonzero(active[t])
        if S.size == 0:
            continue
        lam = lams[t + 1]
        x = np.zeros(c.size)
        x[S] = np.linalg.solve(G[np.ix_(S, S)], c[S] - lam)
        g = np.delete(c - G @ x, S)
        worst = max(worst, -x[S].min(), (g - lam).max() if g.size else 0.0)
    return worst / max(lams[0], 1e-300)


def bench_path(dev, m, r, n, peer_columns, repeats):
    import torch
    from sklearn.linear_model import lars_path

    from .fronts import homotopy_path

    A, B = synthetic(m, r, n, seed=r + 1)
    A = A / np.linalg.norm(A, axis=0)
    At, Bt = torch.tensor(A, device=dev), torch.tensor(B, device=dev)
    G = At.T @ At
    path, ours_s = timed(lambda: homotopy_path(G, At.T @ Bt, max_steps=4 * r, record=False), dev, repeats,
                         warmup=1)
    p = min(peer_columns, n)
    Gn, C = A.T @ A, A.T @ B[:, :p]
    t0 = time.perf_counter()
    peer = [lars_path(A, B[:, j], Gram=Gn, Xy=C[:, j], method="lasso", positive=True)[0] for j in range(p)]
    per_col = (time.perf_counter() - t0) / p
    lam = path.lambdas[:p].cpu().numpy()
    diffs = []
    for j, alphas in enumerate(peer):
        ours = lam[j][~np.isnan(lam[j])]
        t = min(len(ours), len(alphas))
        ref = alphas[:t] * m
        diffs.append(np.max(np.abs(ours[:t] - ref) / np.maximum(ref.max(), 1e-300)))
    steps = float(np.mean([len(a) - 1 for a in peer]))
    q = min(p, 50)
    check = homotopy_path(G, At.T @ Bt[:, :q], max_steps=4 * r, record=True)
    lq, aq = check.lambdas.cpu().numpy(), check.active.cpu().numpy()
    kkt = max(path_kkt(Gn, C[:, j], lq[j][~np.isnan(lq[j])], aq[:, j]) for j in range(q))
    return _record("path", m, r, n, ours_s, per_col, float(max(diffs)), dev,
                   {"breakpoints_mean": steps, "kkt_rel": kkt,
                    "note": "max_rel_diff: breakpoints vs lars_path (sklearn drifts on ill-conditioned A); "
                            "kkt_rel: our path conditions"})


def brute_front_numpy(A, B, kmax):
    """Peer: numpy brute force over all subsets, vectorised over columns (exact front, no refit)."""
    G, C, beta = A.T @ A, A.T @ B, (B**2).sum(0)
    r, n = C.shape
    err = np.empty((n, kmax + 1))
    err[:, 0] = beta
    for k in range(1, kmax + 1):
        best = err[:, k - 1].copy()
        for S in itertools.combinations(range(r), k):
            S = list(S)
            try:
                z = np.linalg.solve(G[np.ix_(S, S)], C[S])
            except np.linalg.LinAlgError:
                continue
            ok = (z > 0).all(0)
            val = beta - (C[S] * z).sum(0)
            best = np.where(ok & (val < best), val, best)
        err[:, k] = best
    return err


def bench_front(dev, m, r, n, peer_columns, repeats, peer=True):
    import torch

    from .fronts import enum_levels, finish
    from .select import select_levels

    A, B = synthetic(m, r, n, seed=r + 2)
    A = A / np.linalg.norm(A, axis=0)
    At, Bt = torch.tensor(A, device=dev), torch.tensor(B, device=dev)

    def ours():
        G, C = At.T @ At, At.T @ Bt
        err, mask, on = finish(enum_levels(G, C, (Bt * Bt).sum(0), r))
        errn, onn = err.cpu().numpy(), on.cpu().numpy()
        return errn, select_levels(errn, onn, 2 * n, "greedy")

    (err, _), ours_s = timed(ours, dev, repeats, warmup=1)
    per_col, diff = None, None
    if peer:
        p = min(peer_columns, n)
        t0 = time.perf_counter()
        ref = brute_front_numpy(A, B[:, :p], r)
        per_col = (time.perf_counter() - t0) / p
        diff = float(np.max(np.abs(err[:p] - ref) / np.maximum(ref, 1e-300)))
    return _record("front", m, r, n, ours_s, per_col, diff, dev)


def bench_select(dev, m, r, n, peer_columns, repeats):
    import torch

    from .fronts import enum_levels, finish
    from .select import select_levels

    A, B = synthetic(m, r, n, seed=r + 3)
    A = A / np.linalg.norm(A, axis=0)
    At, Bt = torch.tensor(A, device=dev), torch.tensor(B, device=dev)
    err, _, on = finish(enum_levels(At.T @ At, At.T @ Bt, (Bt * Bt).sum(0), r))
    err, on = err.cpu().numpy(), on.cpu().numpy()
    t0 = time.perf_counter()
    sel = select_levels(err, on, 2 * n, "greedy")
    ours_s = time.perf_counter() - t0
    p = min(peer_columns, n)
    t0 = time.perf_counter()
    dp = select_levels(err[:p], on[:p], 2 * p, "dp")
    per_col = (time.perf_counter() - t0) / p
    gr = select_levels(err[:p], on[:p], 2 * p, "greedy")
    diff = float((gr.objective - dp.objective) / max(dp.objective, 1e-300))
    return _record("select", m, r, n, ours_s, per_col, diff, dev,
                   {"gap_rel": sel.gap / max(sel.objective, 1e-300), "note": "max_rel_diff: greedy vs DP objective"})


def run_benchmark(device="auto", quick=False, preset="all", n=None, peer_columns=2000,
                  cases=("nnls", "path", "front", "select")) -> list[dict]:
    from wisecli.cli.errors import InputError

    from .api import _device

    dev = _device(device)
    if preset not in PRESETS:
        raise InputError(f"unknown --preset '{preset}'", hint=f"choose from {', '.join(PRESETS)}")
    bad = [c for c in cases if c not in ("nnls", "path", "front", "select")]
    if bad:
        raise InputError(f"unknown case '{bad[0]}'", hint="cases: nnls, path, front, select")
    if quick:
        preset = "small"
    repeats = 5 if dev.type == "cuda" else 1
    if preset == "small":
        nn = n or 2000
        pc = min(peer_columns, 200)
        plan = [("nnls", 162, 6, nn), ("nnls", 361, 49, nn), ("path", 361, 49, nn // 10),
                ("front", 162, 6, nn), ("front", 162, 12, nn), ("select", 162, 12, nn * 5)]
    else:
        pc = peer_columns
        big = {"urban": [("nnls", 162, 6, 10**5), ("front", 162, 6, 94249), ("select", 162, 6, 94249)],
               "cuprite": [("front", 188, 12, 47750)],
               "cbcl": [("nnls", 361, 49, 10**5), ("path", 361, 49, 10**5)]}
        big["all"] = big["urban"] + [("front", 162, 12, 94249), ("front16", 162, 16, 10**5),
                                    ("select", 162, 12, 94249)] + big["cbcl"] + big["cuprite"]
        plan = [(c, m, r, n or nn) for c, m, r, nn in big[preset]]
    out = []
    for case, m, r, nn in plan:
        base = "front" if case == "front16" else case
        if base not in cases:
            continue
        if case == "nnls":  # under a second on CPU: a median of 5 (quick) or 3 (full) even there
            out.append(bench_nnls(dev, m, r, nn, pc, 5 if preset == "small" else max(repeats, 3)))
        elif case == "path":
            out.append(bench_path(dev, m, r, nn, min(pc, 500), repeats))
        elif case == "front":
            out.append(bench_front(dev, m, r, nn, min(pc, 2000), repeats))
        elif case == "front16":
            out.append(bench_front(dev, m, r, nn, pc, repeats, peer=False))
        else:
            out.append(bench_select(dev, m, r, nn, pc, repeats))
    return out
