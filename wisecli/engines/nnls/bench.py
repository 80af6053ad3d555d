"""`wise nnls benchmark`, our side: the batched solvers raced against the spec §7 peers (`peers.py`) with
`runtime.bench.race`, in one process on one machine.

Cases: ``nnls`` (batched BPP vs a `scipy.optimize.nnls` loop), ``path`` (lock-step homotopy vs
`sklearn.linear_model.lars_path(positive=True)` per column), ``front`` (``enum`` + greedy selection vs a numpy
brute force over subsets; r = 16 has no peer), ``select`` (hull greedy + LP bound vs the exact DP). Peers run on the
host CPU on ``peer_columns`` columns and are scaled per column; ours are synchronised, warmed up, and the median of
5 runs on CUDA (1 on CPU, except the ``nnls`` case: 5 quick, 3 full); the scipy loop is the median of up to 3 loops.
Data: `synthetic.synthetic`, shaped like Urban (162 × r), Cuprite (188 × 12) and CBCL (361 × 49).

Presets (ours): ``small`` is the quick CPU preset (seconds); ``urban``, ``cuprite``, ``cbcl`` and ``all`` are the
full §7 sizes for the GPU check. Speed-ups against scipy < 1.16 are marked not comparable (scipy/scipy#22884).
"""

from __future__ import annotations

import os
import platform

import numpy as np

from wisecli.runtime.bench import race, versions
from wisecli.runtime.results import BenchRecord

from . import peers
from .synthetic import synthetic

PRESETS = ("small", "urban", "cuprite", "cbcl", "all")
CASES = ("nnls", "path", "front", "select")


def _finish(rec: BenchRecord, m: int, r: int, n: int, p: int, extra: dict | None = None) -> BenchRecord:
    """Scale the peer's time from its `p` columns to our `n` and add the §7 record keys."""
    import torch

    rec.case = f"{rec.case} {m}×{r}, n={n}"
    per_col = None
    if rec.peer_s is not None:
        per_col = rec.peer_s / p
        rec.peer_s = per_col * n
    vers = versions()
    rec.extra = {"m": m, "r": r, "n": n, "ours_cols_per_s": n / rec.ours_s if rec.ours_s > 0 else None,
                 "peer_cols_per_s": None if not per_col else 1.0 / per_col,
                 "max_rel_diff": rec.extra.get("max_rel_diff"), "cpu": platform.processor() or platform.machine(),
                 "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "versions": vers,
                 **{k: v for k, v in rec.extra.items() if k != "max_rel_diff"}, **(extra or {})}
    return rec


def bench_nnls(dev, m, r, n, peer_columns, repeats) -> BenchRecord:
    """Batched BPP on all n columns against the scipy loop on `peer_columns` of them."""
    import torch

    from .solver import nnls_matrix

    A, B = synthetic(m, r, n, seed=r)
    At, Bt = torch.tensor(A, device=dev), torch.tensor(B, device=dev)
    p = min(peer_columns, n)

    def check(res, peer):
        x = res.x[:p].cpu().numpy()
        ours_obj = ((A @ x.T - B[:, :p]) ** 2).sum(0)
        peer_obj = np.array([rn**2 for _, rn in peer])
        return {"max_rel_diff": float(np.max(np.abs(ours_obj - peer_obj) / np.maximum(peer_obj, 1e-300))),
                "flagged": int(res.flagged.sum())}

    # the scipy loop is the median of up to 3 loops, as ours is a median (shared CPUs are noisy)
    rec = race("nnls", lambda: nnls_matrix(At, Bt), lambda: peers.scipy_nnls_loop(A, B[:, :p]), device=dev,
               peer_name="scipy.optimize.nnls loop", repeats=repeats, warmup=1, peer_repeats=min(repeats, 3),
               peer_warmup=0, check=check)
    major, minor = (int(v) for v in (versions()["scipy"] or "0.0").split(".")[:2])
    return _finish(rec, m, r, n, p, {"comparable": (major, minor) >= (1, 16)})


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


def bench_path(dev, m, r, n, peer_columns, repeats) -> BenchRecord:
    """Lock-step homotopy on all columns against `lars_path(positive=True)` per column (timed once)."""
    import torch

    from .fronts import homotopy_path

    A, B = synthetic(m, r, n, seed=r + 1)
    A = A / np.linalg.norm(A, axis=0)
    At, Bt = torch.tensor(A, device=dev), torch.tensor(B, device=dev)
    G = At.T @ At
    p = min(peer_columns, n)
    Gn, C = A.T @ A, A.T @ B[:, :p]

    def check(path, peer):
        lam = path.lambdas[:p].cpu().numpy()
        diffs = []
        for j, alphas in enumerate(peer):
            ours = lam[j][~np.isnan(lam[j])]
            t = min(len(ours), len(alphas))
            ref = alphas[:t] * m
            diffs.append(np.max(np.abs(ours[:t] - ref) / np.maximum(ref.max(), 1e-300)))
        return {"max_rel_diff": float(max(diffs)), "breakpoints_mean": float(np.mean([len(a) - 1 for a in peer]))}

    rec = race("path", lambda: homotopy_path(G, At.T @ Bt, max_steps=4 * r, record=False),
               lambda: peers.lars_loop(A, B[:, :p], Gn, C), device=dev, peer_name="sklearn lars_path(positive=True)",
               repeats=repeats, warmup=1, peer_repeats=1, peer_warmup=0, check=check)
    q = min(p, 50)
    path = homotopy_path(G, At.T @ Bt[:, :q], max_steps=4 * r, record=True)
    lq, aq = path.lambdas.cpu().numpy(), path.active.cpu().numpy()
    kkt = max(path_kkt(Gn, C[:, j], lq[j][~np.isnan(lq[j])], aq[:, j]) for j in range(q))
    return _finish(rec, m, r, n, p, {"kkt_rel": kkt,
                                     "note": "max_rel_diff: breakpoints vs lars_path (sklearn drifts on "
                                             "ill-conditioned A); kkt_rel: our path conditions"})


def bench_front(dev, m, r, n, peer_columns, repeats, peer=True) -> BenchRecord:
    """`enum` fronts + greedy selection against the numpy brute force (timed once; none for r = 16)."""
    import torch

    from .fronts import enum_levels, finish
    from .select import select_levels

    A, B = synthetic(m, r, n, seed=r + 2)
    A = A / np.linalg.norm(A, axis=0)
    At, Bt = torch.tensor(A, device=dev), torch.tensor(B, device=dev)
    p = min(peer_columns, n)

    def ours():
        G, C = At.T @ At, At.T @ Bt
        err, mask, on = finish(enum_levels(G, C, (Bt * Bt).sum(0), r))
        errn, onn = err.cpu().numpy(), on.cpu().numpy()
        return errn, select_levels(errn, onn, 2 * n, "greedy")

    def check(out, ref):
        return {"max_rel_diff": float(np.max(np.abs(out[0][:p] - ref) / np.maximum(ref, 1e-300)))}

    rec = race("front", ours, (lambda: peers.brute_front_numpy(A, B[:, :p], r)) if peer else None, device=dev,
               peer_name="numpy brute force" if peer else "none", repeats=repeats, warmup=1, peer_repeats=1,
               peer_warmup=0, check=check)
    return _finish(rec, m, r, n, p)


def bench_select(dev, m, r, n, peer_columns, repeats) -> BenchRecord:
    """Hull greedy + LP bound on all columns against the exact DP on `peer_columns` (each timed once)."""
    import torch

    from .fronts import enum_levels, finish
    from .select import select_levels

    A, B = synthetic(m, r, n, seed=r + 3)
    A = A / np.linalg.norm(A, axis=0)
    At, Bt = torch.tensor(A, device=dev), torch.tensor(B, device=dev)
    err, _, on = finish(enum_levels(At.T @ At, At.T @ Bt, (Bt * Bt).sum(0), r))
    err, on = err.cpu().numpy(), on.cpu().numpy()
    p = min(peer_columns, n)

    def check(sel, dp):
        gr = select_levels(err[:p], on[:p], 2 * p, "greedy")
        return {"max_rel_diff": float((gr.objective - dp.objective) / max(dp.objective, 1e-300)),
                "gap_rel": sel.gap / max(sel.objective, 1e-300)}

    rec = race("select", lambda: select_levels(err, on, 2 * n, "greedy"),
               lambda: peers.dp_select(err[:p], on[:p], 2 * p), device=dev, peer_name="exact DP", repeats=1,
               warmup=0, check=check)
    return _finish(rec, m, r, n, p, {"note": "max_rel_diff: greedy vs DP objective"})


def run_benchmark(device, quick=False, preset="all", n=None, peer_columns=2000, cases=CASES) -> list[BenchRecord]:
    """The races of `preset` (`small` when `quick`) restricted to `cases`, on `device` (a torch.device)."""
    from wisecli.cli.errors import InputError

    if preset not in PRESETS:
        raise InputError(f"unknown --preset '{preset}'", hint=f"choose from {', '.join(PRESETS)}")
    bad = [c for c in cases if c not in CASES]
    if bad or not cases:
        raise InputError(f"unknown case '{bad[0]}'" if bad else "no case given", hint="cases: nnls, path, front, select")
    if quick:
        preset = "small"
    dev = device
    repeats = 5 if dev.type == "cuda" else 1
    if preset == "small":
        nn = n or 2000
        pc = min(peer_columns, 200)
        plan = [("nnls", 162, 6, nn), ("nnls", 361, 49, nn), ("path", 361, 49, max(1, nn // 10)),
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
