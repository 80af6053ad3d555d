"""Step 1: per-column error-versus-sparsity Pareto fronts (Nadisic, Cohen, Vandaele, Gillis, "Matrix-wise
ℓ0-constrained sparse nonnegative least squares", Machine Learning; arXiv 2011.11066).

All columns run together on one device in float64 from G = AᵀA, C = AᵀB and β = ‖b‖². Every method records the
supports it visits into a per-size table (best error seen with exactly s atoms); `_finish` turns that into the
front: err[j,k] = best error with at most k atoms (a running minimum), on_front where it strictly drops, the
support bitmask of the winner. The caller re-scores winners as ‖A x − b‖² (see `api.compute_fronts`).

- ``enum``: exact. By the KKT conditions the NNLS solution on S equals the LS solution on a subset S′ ⊆ S where it
  is strictly positive, so e*(k) = min(β, min over |S| ≤ k with z_S = G_SS⁻¹c_S > 0 of β − c_Sᵀz_S). Each G_SS is
  factored once for all columns; a failed factorisation (collinear atoms) makes the subset infeasible.
- ``greedy``: NNOMP-like (Nguyen, Idier, Soussen, Djermoune, 2019): add the atom most correlated with the residual
  while that correlation is positive, NNLS-refit, drop zeros.
- ``backward``: after Peharz & Pernkopf's sNNLS (2012): from the dense NNLS solution drop the smallest coefficient,
  refit, repeat.
- ``homotopy``: the nonnegative ℓ1 path of ½‖Ax−b‖² + λ1ᵀx (positive LARS-lasso, Efron et al. 2004), lock-step
  over columns with support masks; every breakpoint support is NNLS-refitted (the ℓ1 coefficients are biased).
- ``union``: all supports the three visit, Pareto-filtered; it dominates each of them.
- ``hybrid``: ``enum`` up to size K, ``union`` above, plus the dense NNLS solution, exact at every k ≥ its size.
- ``bnb``: exact branch and bound per column (see `bnb.py`), with the ``union`` front as incumbent/fallback.

Our choices: a level is exact where it is enumerated, proven by branch and bound, or equals the dense NNLS error
(no support of any size does better). Approximate candidates are scored by NNLS refits only.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from math import comb

import torch

from .solver import inverse_factors, masked_solve, nnls_gram

REL_DROP = 1e-12


@dataclass
class Levels:
    """Best error and support seen with exactly s atoms (s = 0..kmax), per column; s = 0 is x = 0 (error β)."""

    err: torch.Tensor  # n×(kmax+1)
    mask: torch.Tensor  # n×(kmax+1)×r bool
    kmax: int
    flagged: torch.Tensor  # n bool: an iteration cap was hit

    @classmethod
    def empty(cls, beta: torch.Tensor, r: int, kmax: int) -> "Levels":
        n = beta.shape[0]
        err = torch.full((n, kmax + 1), float("inf"), dtype=beta.dtype, device=beta.device)
        err[:, 0] = beta
        mask = torch.zeros(n, kmax + 1, r, dtype=torch.bool, device=beta.device)
        return cls(err, mask, kmax, torch.zeros(n, dtype=torch.bool, device=beta.device))

    def add(self, cols: torch.Tensor, err: torch.Tensor, mask: torch.Tensor) -> None:
        """Offer candidate supports (one per listed column) with their errors; keep the best per size."""
        size = mask.sum(1)
        keep = size <= self.kmax
        cols, err, mask, size = cols[keep], err[keep], mask[keep], size[keep]
        better = err < self.err[cols, size]
        cols, err, mask, size = cols[better], err[better], mask[better], size[better]
        self.err[cols, size] = err
        self.mask[cols, size] = mask

    def merge(self, other: "Levels") -> None:
        """Keep the better entry per (column, size); ``other`` may cover fewer sizes (hybrid's enumeration)."""
        K = other.kmax + 1
        better = other.err < self.err[:, :K]
        self.err[:, :K] = torch.where(better, other.err, self.err[:, :K])
        self.mask[:, :K] = torch.where(better.unsqueeze(2), other.mask, self.mask[:, :K])
        self.flagged = self.flagged | other.flagged


def finish(levels: Levels) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Running minimum over sizes: (err at most k, winner mask, on_front)."""
    err = levels.err.clone()
    mask = levels.mask.clone()
    for k in range(1, levels.kmax + 1):
        worse = ~(err[:, k] < err[:, k - 1])
        err[:, k] = torch.where(worse, err[:, k - 1], err[:, k])
        mask[:, k] = torch.where(worse.unsqueeze(1), mask[:, k - 1], mask[:, k])
    on = torch.zeros_like(err, dtype=torch.bool)
    on[:, 0] = True
    on[:, 1:] = err[:, 1:] < err[:, :-1] * (1 - REL_DROP)
    return err, mask, on


def quad_error(G, C, beta, x):
    """‖Ax − b‖² = β − 2cᵀx + xᵀGx per column (x is n×r)."""
    return (beta - 2 * (C.T * x).sum(1) + ((x @ G) * x).sum(1)).clamp_min(0)


def subset_count(r: int, kmax: int) -> int:
    return sum(comb(r, k) for k in range(1, kmax + 1))


def subsets_of_size(r: int, k: int, device: torch.device) -> torch.Tensor:
    """All C(r, k) subsets of size k as sorted index rows, in `itertools.combinations` order (k·C(r, k) integers
    through `np.fromiter`: a list of a million tuples into `torch.tensor` cost 1-2 s of CPU at r = 25, k = 8)."""
    import numpy as np

    flat = np.fromiter(itertools.chain.from_iterable(itertools.combinations(range(r), k)), dtype=np.int64,
                       count=comb(r, k) * k)
    return torch.from_numpy(flat.reshape(-1, k)).to(device)


def enum_levels(G, C, beta, kmax, *, col_block: int = 32768, chunk_numbers: int | None = None,
                precision: torch.dtype = torch.float64, layout: str | None = None) -> Levels:
    """Exact best error per support size by enumerating every subset with |S| ≤ kmax.

    Per subset S and column: z = G_SS⁻¹c_S and w = L⁻¹c_S from the Cholesky factor L of G_SS; subsets with any
    z ≤ 0 are masked and the best cᵀz = ‖w‖² is max-reduced with its subset id. Winners are re-scored exactly by
    the caller, so the explicit inverses cost no accuracy in the reported errors. Two layouts of the same
    arithmetic (``layout`` None: ``scatter`` on CUDA, ``gather`` elsewhere):

    - ``scatter`` (CUDA): the factors of all G_SS of a size are computed once, with L⁻¹ and G_SS⁻¹ scattered into
      k×r rows, so a column block costs two large GEMMs against C (``chunk_numbers`` bounds chunk·k·block,
      halved on CUDA out-of-memory). It does r/k times the multiply-adds of the gather form and holds
      2·C(r, k)·k·r numbers at once (3.5 GB at r = 25, k = 8).
    - ``gather`` (CPU): subsets in chunks of about ``chunk_numbers`` / (k·block) (2^22 numbers by default); per
      chunk G_SS and c_S are gathered, factored and multiplied as batched k×k products. On one CPU thread it
      took 11 s where ``scatter`` took 25-34 s (lfw faces nmf:25, 50 columns, sizes ≤ 8), most of the
      difference page faults of the scattered tables; at sizes ≤ 7 on two threads 10.8 CPU-s against 12.9, and
      r = 16, n = 150 faces, all sizes: 2.5 against 2.3 CPU-s on two threads, 1.2 against 1.5 on one. Chunks of
      2^20 numbers were 2x slower on two threads (torch splits each small batched product) [measured on a
      loaded 2-core machine, issue 13.11].
    """
    r, n = C.shape
    dev = C.device
    if layout is None:
        layout = "scatter" if dev.type == "cuda" else "gather"
    if layout not in ("scatter", "gather"):
        raise ValueError(f"unknown enumeration layout {layout!r}")
    if chunk_numbers is None:
        chunk_numbers = (1 << 28) if dev.type == "cuda" else (1 << 23) if layout == "scatter" else (1 << 22)
    lv = Levels.empty(beta, r, kmax)
    Gp, Cp = G.to(precision), C.to(precision)
    cols = torch.arange(n, device=dev)
    for k in range(1, kmax + 1):
        subsets = subsets_of_size(r, k, dev)
        best_val = torch.full((n,), -float("inf"), dtype=precision, device=dev)
        best_id = torch.zeros(n, dtype=torch.long, device=dev)
        if layout == "gather":
            for s in range(0, n, col_block):
                e = min(n, s + col_block)
                Cb = Cp[:, s:e]
                chunk = max(1, chunk_numbers // (k * (e - s)))
                for i in range(0, subsets.shape[0], chunk):
                    S = subsets[i:i + chunk]
                    Linv, ok = inverse_factors(Gp[S.unsqueeze(2), S.unsqueeze(1)])
                    w = Linv @ Cb[S]  # chunk×k×block: L⁻¹c_S
                    z = Linv.transpose(1, 2) @ w  # G_SS⁻¹c_S
                    val = w.square_().sum(1)
                    pos = (z.amin(1) > 0) & ok.unsqueeze(1)
                    val.masked_fill_(~pos, -float("inf"))
                    vmax, arg = val.max(0)
                    upd = vmax > best_val[s:e]
                    best_val[s:e] = torch.where(upd, vmax, best_val[s:e])
                    best_id[s:e] = torch.where(upd, arg + i, best_id[s:e])
        else:
            Linv, ok = inverse_factors(Gp[subsets.unsqueeze(2), subsets.unsqueeze(1)])
            Ginv = Linv.transpose(1, 2) @ Linv
            # scatter the k×k blocks into k×r rows so one GEMM against C gives every subset's z and L⁻¹c_S
            where = subsets.unsqueeze(1).expand(-1, k, -1)
            Wz = torch.zeros(subsets.shape[0], k, r, dtype=Linv.dtype, device=dev).scatter_(2, where, Ginv)
            Wl = torch.zeros_like(Wz).scatter_(2, where, Linv)
            for s in range(0, n, col_block):
                e = min(n, s + col_block)
                Cb = Cp[:, s:e]
                chunk = max(1, chunk_numbers // (k * (e - s)))
                i = 0
                while i < subsets.shape[0]:
                    j = min(subsets.shape[0], i + chunk)
                    try:
                        z = (Wz[i:j].reshape(-1, r) @ Cb).reshape(j - i, k, e - s)
                        w = (Wl[i:j].reshape(-1, r) @ Cb).reshape(j - i, k, e - s)
                        val = w.square_().sum(1)  # c_Sᵀ G_SS⁻¹ c_S
                        pos = (z.amin(1) > 0) & ok[i:j].unsqueeze(1)
                        val.masked_fill_(~pos, -float("inf"))
                        vmax, arg = val.max(0)
                    except torch.OutOfMemoryError:
                        if chunk == 1:
                            raise
                        chunk = max(1, chunk // 2)
                        continue
                    upd = vmax > best_val[s:e]
                    best_val[s:e] = torch.where(upd, vmax, best_val[s:e])
                    best_id[s:e] = torch.where(upd, arg + i, best_id[s:e])
                    i = j
        found = torch.isfinite(best_val)
        mask = torch.zeros(n, r, dtype=torch.bool, device=dev)
        mask.scatter_(1, subsets[best_id], True)
        lv.add(cols[found], (beta.to(precision) - best_val)[found].to(beta.dtype), mask[found])
    return lv


def greedy_levels(G, C, beta, kmax, *, nnls_method: str = "bpp") -> Levels:
    """NNOMP-like forward selection, all columns in lock-step (atoms assumed normalised)."""
    r, n = C.shape
    dev = C.device
    lv = Levels.empty(beta, r, kmax)
    S = torch.zeros(n, r, dtype=torch.bool, device=dev)
    x = C.new_zeros(n, r)
    done = torch.zeros(n, dtype=torch.bool, device=dev)
    tol = 1e-13 * C.abs().amax(0)
    cols = torch.arange(n, device=dev)
    for _ in range(2 * kmax + 2):
        g = C.T - x @ G
        g = torch.where(S, torch.full_like(g, -float("inf")), g)
        gmax, j = g.max(1)
        done |= ~(gmax > tol) | (S.sum(1) >= kmax)
        act = cols[~done]
        if act.numel() == 0:
            break
        Sa = S[act].clone()
        Sa[torch.arange(act.numel(), device=dev), j[act]] = True
        res = nnls_gram(G, C[:, act], allowed=Sa, method=nnls_method)
        xa = res.x
        S[act] = xa > 0
        x[act] = xa
        lv.flagged[act] |= res.flagged
        lv.add(act, quad_error(G, C[:, act], beta[act], xa), xa > 0)
    return lv


def backward_levels(G, C, beta, kmax, *, x_dense=None, nnls_method: str = "bpp") -> Levels:
    """Backward elimination from the dense NNLS solution (smallest coefficient first), all columns in lock-step."""
    r, n = C.shape
    dev = C.device
    lv = Levels.empty(beta, r, kmax)
    if x_dense is None:
        x_dense = nnls_gram(G, C, method=nnls_method).x
    x = x_dense.clone()
    cols = torch.arange(n, device=dev)
    lv.add(cols, quad_error(G, C, beta, x), x > 0)
    for _ in range(r):
        S = x > 0
        act = cols[S.any(1)]
        if act.numel() == 0:
            break
        xa = x[act]
        i = torch.where(xa > 0, xa, torch.full_like(xa, float("inf"))).argmin(1)
        Sa = S[act].clone()
        Sa[torch.arange(act.numel(), device=dev), i] = False
        res = nnls_gram(G, C[:, act], allowed=Sa, method=nnls_method)
        x[act] = res.x
        lv.flagged[act] |= res.flagged
        lv.add(act, quad_error(G, C[:, act], beta[act], res.x), res.x > 0)
    return lv


@dataclass
class HomotopyPath:
    """Breakpoints per column: lambdas n×(T+1) (nan past the end), supp(x) at each breakpoint and the active set
    after it (T+1 × n × r; the support of x(λ) for λ in [λ_{t+1}, λ_t)), the end point x, finished flags."""

    lambdas: torch.Tensor
    supports: torch.Tensor
    active: torch.Tensor
    x: torch.Tensor
    finished: torch.Tensor


def homotopy_path(G, C, *, max_steps: int, record: bool = True, on_step=None) -> HomotopyPath:
    """Nonnegative ℓ1 path (positive LARS-lasso) for every column in lock-step.

    g = c − Gx; λ₀ = max c (x = 0 is optimal for λ ≥ λ₀; if λ₀ ≤ 0 the path is empty); S = {argmax c}.
    Direction d_S = G_SS⁻¹1; step γ = min(entry (λ − g_j)/(1 − G_jS d_S) for j ∉ S with a positive denominator,
    exit −x_i/d_i for i ∈ S with d_i < 0, λ). ``on_step(cols, active_set)`` sees every breakpoint's active set;
    ``supports`` records supp(x) at each breakpoint (as `lars_path` coefficients show it).
    """
    r, n = C.shape
    dev, dt = C.device, C.dtype
    x = C.new_zeros(n, r)
    lam, j0 = C.max(0)
    S = torch.zeros(n, r, dtype=torch.bool, device=dev)
    active = lam > 0
    S[active, j0[active]] = True
    lam = lam.clamp_min(0)
    ones = torch.ones(r, n, dtype=dt, device=dev)
    tiny = 1e-12 * (lam.abs() + 1)
    if on_step is not None:
        on_step(torch.arange(n, device=dev)[active], S[active])
    lams = [lam.clone()]
    sups = [x > 0] if record else []
    acts = [S.clone()] if record else []
    nan = torch.full((n,), float("nan"), dtype=dt, device=dev)
    for _ in range(max_steps):
        a = active.nonzero().squeeze(1)  # only the running columns do work
        if a.numel() == 0:
            break
        Sa, xa, la, ta = S[a], x[a], lam[a], tiny[a]
        d = masked_solve(G, ones[:, : a.numel()], Sa)
        denom = 1 - d @ G
        g = C[:, a].T - xa @ G
        ent = (la.unsqueeze(1) - g) / torch.where(denom > 1e-12, denom, torch.ones_like(denom))
        ent = torch.where(~Sa & (denom > 1e-12) & (ent > ta.unsqueeze(1)), ent, torch.full_like(ent, float("inf")))
        ext = torch.where(Sa & (d < 0), -xa / torch.where(d < 0, d, -torch.ones_like(d)),
                          torch.full_like(xa, float("inf")))
        ge, je = ent.min(1)
        gx, jx = ext.min(1)
        gamma = torch.minimum(torch.minimum(ge, gx), la)
        xa = torch.where(Sa, xa + gamma.unsqueeze(1) * d, xa)
        la = la - gamma
        ends = la <= ta  # λ reached 0: x is the NNLS solution
        is_exit = ~ends & (gx <= ge)
        is_entry = ~ends & ~is_exit
        rows = torch.arange(a.numel(), device=dev)
        Sa[rows[is_entry], je[is_entry]] = True
        Sa[rows[is_exit], jx[is_exit]] = False
        xa[rows[is_exit], jx[is_exit]] = 0
        la = torch.where(ends, torch.zeros_like(la), la)
        S[a], x[a], lam[a] = Sa, xa, la
        active[a] = ~ends
        lams.append(nan.index_copy(0, a, la))
        if record:
            sups.append(x > 0)
            acts.append(S.clone())
        if on_step is not None:
            on_step(a, Sa)
    x = x.clamp_min(0)
    return HomotopyPath(torch.stack(lams, 1), torch.stack(sups) if record else None,
                        torch.stack(acts) if record else None, x, ~active)


def homotopy_levels(G, C, beta, kmax, *, max_steps: int, nnls_method: str = "bpp") -> Levels:
    """Refit every breakpoint support of the positive ℓ1 path; columns that hit ``max_steps`` are flagged."""
    r, n = C.shape
    lv = Levels.empty(beta, r, kmax)

    def visit(cols, supp):
        keep = supp.sum(1) <= kmax
        cols, supp = cols[keep], supp[keep]
        if cols.numel() == 0:
            return
        res = nnls_gram(G, C[:, cols], allowed=supp, method=nnls_method)
        lv.flagged[cols] |= res.flagged
        lv.add(cols, quad_error(G, C[:, cols], beta[cols], res.x), res.x > 0)

    path = homotopy_path(G, C, max_steps=max_steps, record=False, on_step=visit)
    lv.flagged |= ~path.finished
    return lv


def union_levels(G, C, beta, kmax, *, max_steps: int, x_dense=None, nnls_method: str = "bpp") -> Levels:
    """Pareto union of greedy, backward and homotopy."""
    lv = greedy_levels(G, C, beta, kmax, nnls_method=nnls_method)
    lv.merge(backward_levels(G, C, beta, kmax, x_dense=x_dense, nnls_method=nnls_method))
    lv.merge(homotopy_levels(G, C, beta, kmax, max_steps=max_steps, nnls_method=nnls_method))
    return lv


def hybrid_k(r: int, max_subsets: int, kmax: int) -> int:
    """Largest K ≤ kmax whose cumulative subset count fits ``max_subsets``."""
    K = 0
    while K < kmax and subset_count(r, K + 1) <= max_subsets:
        K += 1
    return K
