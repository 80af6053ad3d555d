"""Batched nonnegative least squares over all columns at once, in torch (CPU or CUDA).

Every solver here works from the Gram form only: G = AᵀA (r×r, shared), C = AᵀB (r×n); it minimises
½xᵀGx − cᵀx over x ≥ 0 for every column c of C, in lock-step. A passive-set mask p (n×r) selects the free
variables; each step solves the fixed-shape masked system (G ⊙ ppᵀ + diag(1 − p)) z = c ⊙ p with one batched
`cholesky_ex` (the trick of the vmap-able optax NNLS, google-deepmind/optax#1155), so shapes never depend on the
data. A factorisation that fails (collinear atoms in the passive set) falls back to a pseudo-inverse solve for
that column only.

Methods:
- ``bpp`` (default): block principal pivoting, Kim & Park, "Fast nonnegative matrix factorization: an active-set-
  like method and comparisons", SIAM J. Sci. Comput. 33 (2011), with the Júdice–Pires single-pivot backup rule
  (Júdice & Pires 1994) after three exchanges that do not reduce the number of infeasible variables.
- ``lh``: Lawson & Hanson, *Solving Least Squares Problems* (1974), ch. 23, run as a state machine so all columns
  advance one solve per iteration (add the most violated index, or back-track towards a negative solution).

Choices where the papers are silent (ours): infeasibility is tested against a tolerance of 1e-13 times the
column's scale (max |c|, max diag G) to stop fp64 round-off from cycling; BPP columns that still reach the
iteration cap (BPP may cycle in floating point on ill-conditioned dictionaries) are re-solved by Lawson–Hanson;
a column that reaches the cap there too keeps the best feasible iterate seen and is flagged, never raising. An optional
``allowed`` mask restricts each column to a subset of atoms (refits on a support, branch-and-bound nodes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class NNLSResult:
    """x (n×r) ≥ 0, flagged (n, bool: hit the iteration cap), iterations used."""

    x: torch.Tensor
    flagged: torch.Tensor
    iterations: int


def masked_solve(G: torch.Tensor, C: torch.Tensor, mask: torch.Tensor, rhs_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Solve G_SS z_S = c_S per column with S = mask[j] (z = 0 off S); returns z (n×r).

    Builds (G ⊙ ppᵀ + diag(1 − p)) z = c ⊙ p for all columns in one batch; columns whose Cholesky factorisation
    fails (singular G_SS) are solved with a pseudo-inverse instead.
    """
    n, r = mask.shape
    p = mask.to(G.dtype)
    M = G.unsqueeze(0) * (p.unsqueeze(2) * p.unsqueeze(1))
    M.diagonal(dim1=1, dim2=2).add_(1.0 - p)
    rhs = (C.T * p).unsqueeze(2)
    L, info = torch.linalg.cholesky_ex(M)
    z = torch.cholesky_solve(rhs, L).squeeze(2)
    bad = info != 0
    if bool(bad.any()):
        z[bad] = (torch.linalg.pinv(M[bad], hermitian=True) @ rhs[bad]).squeeze(2)
    return z * p


def _objective(G: torch.Tensor, C: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """½xᵀGx − cᵀx per column (x is n×r)."""
    return 0.5 * ((x @ G) * x).sum(1) - (C.T * x).sum(1)


def nnls_gram(
    G: torch.Tensor,
    C: torch.Tensor,
    *,
    allowed: torch.Tensor | None = None,
    method: str = "bpp",
    max_iter: int | None = None,
    block: int | None = None,
) -> NNLSResult:
    """Solve min ½xᵀGx − cᵀx, x ≥ 0 (x_i = 0 where not allowed) for every column of C (r×n).

    ``block`` bounds the columns solved together (memory n_b·r² per step); default keeps that under ~64 M
    numbers. Returns x as n×r (row per column of C).
    """
    r, n = C.shape
    if allowed is None:
        allowed = torch.ones(n, r, dtype=torch.bool, device=C.device)
    if max_iter is None:
        max_iter = 5 * r + 50
    if block is None:
        block = max(1, (1 << 26) // max(1, r * r))
    if method not in ("bpp", "lh"):
        raise ValueError(f"unknown NNLS method {method!r}")
    xs, flags, its = [], [], 0
    for s in range(0, n, block):
        e = min(n, s + block)
        fn = _bpp if method == "bpp" else _lh
        x, f, it = fn(G, C[:, s:e], allowed[s:e], max_iter)
        if method == "bpp" and bool(f.any()):
            # BPP can cycle on ill-conditioned Gram matrices in floating point: Lawson–Hanson, which decreases
            # the objective monotonically, takes over those columns
            xl, fl, itl = _lh(G, C[:, s:e][:, f], allowed[s:e][f], max_iter)
            x[f], f[f.clone()] = xl, fl
            it = max(it, itl)
        xs.append(x)
        flags.append(f)
        its = max(its, it)
    if not xs:
        return NNLSResult(C.new_zeros(0, r), torch.zeros(0, dtype=torch.bool, device=C.device), 0)
    return NNLSResult(torch.cat(xs), torch.cat(flags), its)


def _tolerance(G: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    scale = torch.maximum(C.abs().amax(0), G.diagonal().abs().max().expand(C.shape[1]))
    return 1e-13 * scale


def _bpp(G, C, allowed, max_iter):
    """Block principal pivoting with the Júdice–Pires backup, lock-step over the columns still running."""
    r, n = C.shape
    dev = C.device
    tol_all = _tolerance(G, C).unsqueeze(1)
    F = torch.zeros(n, r, dtype=torch.bool, device=dev)
    ninf = torch.full((n,), r + 1, dtype=torch.long, device=dev)
    pcount = torch.full((n,), 3, dtype=torch.long, device=dev)
    done = torch.zeros(n, dtype=torch.bool, device=dev)
    best_x = C.new_zeros(n, r)
    best_obj = C.new_zeros(n)
    idx = torch.arange(r, device=dev)
    it = 0
    for it in range(1, max_iter + 1):
        a = (~done).nonzero().squeeze(1)
        if a.numel() == 0:
            break
        Ca, Fa, al, tol = C[:, a], F[a], allowed[a], tol_all[a]
        x = masked_solve(G, Ca, Fa)
        y = x @ G - Ca.T  # gradient Gx − c; zero on F up to round-off
        infeas = ((Fa & (x < -tol)) | (~Fa & (y < -tol))) & al
        nv = infeas.sum(1)
        fin = nv == 0
        xp = x.clamp_min(0) * al
        obj = _objective(G, Ca, xp)
        better = (obj < best_obj[a]) | fin
        best_x[a] = torch.where(better.unsqueeze(1), xp, best_x[a])
        best_obj[a] = torch.where(better, obj, best_obj[a])
        done[a] = fin
        fewer = nv < ninf[a]
        pc = pcount[a]
        full_flip = fewer | (pc >= 1)
        ninf[a] = torch.where(fewer, nv, ninf[a])
        pcount[a] = torch.where(fewer, torch.full_like(pc, 3), torch.where(pc >= 1, pc - 1, pc))
        last = torch.where(infeas, idx, torch.full_like(idx, -1)).amax(1)
        single = torch.zeros_like(infeas)
        rows = (~full_flip & ~fin).nonzero().squeeze(1)
        single[rows, last[rows]] = True
        flip = (infeas & full_flip.unsqueeze(1)) | single
        F[a] = Fa ^ flip
    return best_x, ~done, it


def _lh(G, C, allowed, max_iter):
    """Lawson–Hanson active set, one passive-set solve per iteration for every column still running."""
    r, n = C.shape
    dev = C.device
    tol_all = _tolerance(G, C).unsqueeze(1)
    P = torch.zeros(n, r, dtype=torch.bool, device=dev)
    X = C.new_zeros(n, r)
    done = torch.zeros(n, dtype=torch.bool, device=dev)
    it = 0
    for it in range(1, max_iter + 1):
        a = (~done).nonzero().squeeze(1)
        if a.numel() == 0:
            break
        Ca, Pa, al, tol, x = C[:, a], P[a], allowed[a], tol_all[a], X[a]
        z = masked_solve(G, Ca, Pa)
        neg = Pa & (z <= 0)
        feasible = ~neg.any(1)
        # back-track: x + α(z − x) with the largest α keeping x ≥ 0; indices reaching 0 leave P
        ratio = torch.where(neg, x / (x - z).clamp_min(1e-300), torch.full_like(x, float("inf")))
        alpha = ratio.amin(1, keepdim=True).clamp(0, 1)
        xb = x + alpha * (z - x)
        stay = (~feasible).unsqueeze(1)
        leave = stay & Pa & (xb <= tol)
        x = torch.where(stay, torch.where(leave, torch.zeros_like(xb), xb), z)
        Pa = Pa & ~leave
        w = Ca.T - x @ G
        w = torch.where(~Pa & al, w, torch.full_like(w, -float("inf")))
        wmax, jmax = w.max(1)
        fin = feasible & (wmax <= tol.squeeze(1))
        add = (feasible & ~fin).nonzero().squeeze(1)
        Pa[add, jmax[add]] = True
        P[a], X[a], done[a] = Pa, x, fin
    return X.clamp_min(0) * allowed, ~done, it


def nnls_matrix(A: torch.Tensor, B: torch.Tensor, **kw) -> NNLSResult:
    """Dense NNLS of every column of B on dictionary A (both float64 on one device); x is n×r."""
    return nnls_gram(A.T @ A, A.T @ B, **kw)
