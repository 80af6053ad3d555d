"""Batched nonnegative least squares over all columns at once, in torch (CPU or CUDA).

Every solver here works from the Gram form only: G = AᵀA (r×r, shared), C = AᵀB (r×n); it minimises
½xᵀGx − cᵀx over x ≥ 0 for every column c of C, in lock-step (float64 throughout). A passive-set mask p (n×r)
selects the free variables; each step solves G_SS z_S = c_S for every column's S at once, in one of two ways:

- ``table`` (small r): the inverses G_SS⁻¹ of all 2^r subsets are computed once per call, zero-padded to r×r and
  indexed by the subset's bitmask, so every iteration is a gather by bitmask plus one batched mat-vec — no
  factorisation in the loop. For BPP a second table holds G_SS⁻¹ rows on S and G·G_SS⁻¹ − I rows off S, so the
  same one mat-vec yields x on F and the gradient Gx − c off F, exactly what the infeasibility test reads. Used when
  r ≤ 12 and 2^r ≤ 4n (the table then costs about one loop iteration). The inverses come from the same batched
  inverse Cholesky factors as the ``enum`` front (`inverse_factors`).
- ``compact`` (otherwise): each row lists its passive atoms first, then dummy atoms that index an identity block
  appended to G, so one gather builds the fixed-shape system G_SS ⊕ I (the padding trick of the vmap-able optax
  NNLS, google-deepmind/optax#1155), only k×k with k = the largest passive set in the batch, not r×r; one batched
  `cholesky_ex` per iteration. With sparse solutions (k ≪ r) the cubic cost falls by (k/r)³. Rows are sorted by
  |S| and padded per group: on CUDA 4 equal buckets (from 256 rows; at 361×49, n = 500: 4 buckets 43 ms, 2: 55 ms,
  1: 73 ms, 8: 46 ms), on CPU chunks of ~2¹⁹ numbers, which keep a chunk's systems in cache (at 361×49,
  n = 20 000, one thread: 1.2 s against 2.0 s with 4 buckets).

Grouping identical passive sets (Kim & Park; Van Benthem & Keenan), measured on the benchmark data: at 361×49
(n = 500) BPP's first solve has one distinct set (F = {c > 0}, all 49 atoms) and every later one has as many sets
as running columns; at 162×6 there are ≤ 64 sets, which the table already exploits. So we keep only the case that
pays: when all running columns share one set, it is factored once with the columns as a matrix right-hand side.
A G_SS whose factorisation fails or has a pivot² ≤ r·ε·max diag(G) (collinear atoms) is solved with its
pseudo-inverse, eigenvalues below that same cut dropped (scale-aware; the same rule in both ways; the explicit
inverse of a nearly singular G_SS would otherwise be garbage).

Loop overhead: BPP's first iteration is done in closed form (F = ∅ gives x = 0, gradient −c). Finished columns
stay in the working set (frozen, so their answer is the iterate at which they finished) until at most half of it
still runs, then the set is compacted; so there is one host sync per iteration and a handful of gathers per
halving instead of a boolean re-index of all state every step. The n×k×k systems live in a workspace reused
across iterations (fresh multi-megabyte tensors cost more in page faults than the factorisation).

CPU threads: torch's batched LAPACK factors one small matrix at a time on one core, and a parallel region per
tiny op loses more to fork/join than it gains (on a shared machine each waits for a descheduled worker: we measured
20–50× slowdowns with 2 threads under load). So the solver runs on one intra-op thread, and when the problem holds
at least THREAD_MIN_NUMBERS numbers of r×r systems per thread it splits the columns into one block per thread and
solves the blocks in a thread pool (torch releases the GIL); each block's columns iterate independently, so the
answer is the one-thread answer up to round-off. At 361×49, n = 20 000 on 2 cores: 0.70 s against 1.2 s.

Methods:
- ``bpp`` (default): block principal pivoting, Kim & Park, "Fast nonnegative matrix factorization: an active-set-
  like method and comparisons", SIAM J. Sci. Comput. 33 (2011), with the Júdice–Pires single-pivot backup rule
  (Júdice & Pires 1994) after three exchanges that do not reduce the number of infeasible variables.
- ``lh``: Lawson & Hanson, *Solving Least Squares Problems* (1974), ch. 23, run as a state machine so all columns
  advance one solve per iteration (add the most violated index, or back-track towards a negative solution).

Choices where the papers are silent (ours): infeasibility is tested against a tolerance of 1e-13 times the
column's scale (max |c|, max diag G) to stop fp64 round-off from cycling; BPP columns that still reach the
iteration cap (BPP may cycle in floating point on ill-conditioned dictionaries) are re-solved by Lawson–Hanson;
a column that reaches the cap there too keeps its last iterate, which is feasible and the best seen (Lawson–Hanson
decreases the objective monotonically), and is flagged, never raising. An optional ``allowed`` mask restricts each
column to a subset of atoms (refits on a support, branch-and-bound nodes).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from wisecli.runtime.device import one_cpu_thread

TABLE_MAX_R = 12
SERIAL_MAX_NUMBERS = 1 << 22
THREAD_MIN_NUMBERS = 1 << 20
COMPACT_MIN_NUMBERS = 1 << 14
BUCKET_MIN_ROWS = 256
CHUNK_NUMBERS = 1 << 19
CHUNK_MIN_ROWS = 64
SIZE_BUCKETS = 4


@dataclass
class NNLSResult:
    """x (n×r) ≥ 0, flagged (n, bool: hit the iteration cap), iterations used."""

    x: torch.Tensor
    flagged: torch.Tensor
    iterations: int


def inverse_factors(M: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse Cholesky factors L⁻¹ of a batch of symmetric matrices M (s×k×k), and ok (s,): whether the
    factorisation succeeded (L⁻¹ is the identity where it failed). M⁻¹ = L⁻ᵀL⁻¹."""
    L, info = torch.linalg.cholesky_ex(M)
    ok = info == 0
    eye = torch.eye(M.shape[-1], dtype=M.dtype, device=M.device)
    Linv = torch.linalg.solve_triangular(torch.where(ok[:, None, None], L, eye), eye.expand_as(L), upper=False)
    return Linv, ok


def _pinv_atol(G: torch.Tensor) -> torch.Tensor:
    """Singularity cut, r·ε·max diag(G) (relative to the dictionary's scale): a G_SS with a Cholesky pivot² at or
    below it is treated as singular, and its pseudo-inverse drops eigenvalues below it."""
    return G.shape[0] * torch.finfo(G.dtype).eps * G.diagonal().abs().max()


def _subset_masks(r: int, device: torch.device) -> torch.Tensor:
    """All 2^r subsets as boolean masks, row id = bitmask (bit i = atom i)."""
    return (torch.arange(1 << r, device=device).unsqueeze(1) >> torch.arange(r, device=device)) & 1 == 1


def subset_table(G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """W (2^r×r×r): W[id] = G_SS⁻¹ zero-padded to r×r for the subset S with bitmask id (bit i = atom i), the
    pseudo-inverse where G_SS is singular; W[0] = 0. Also returns the subsets as masks (2^r×r bool)."""
    P = _subset_masks(G.shape[0], G.device)
    p = P.to(G.dtype)
    pp = p.unsqueeze(2) * p.unsqueeze(1)
    M = G * pp
    M.diagonal(dim1=1, dim2=2).add_(1.0 - p)  # G_SS ⊕ I
    Linv, ok = inverse_factors(M)
    W = Linv.transpose(1, 2) @ Linv
    atol = _pinv_atol(G)
    bad = ~ok | (Linv.diagonal(dim1=1, dim2=2).square() * atol >= 1).any(1)  # a pivot² ≤ atol
    if bool(bad.any()):
        W[bad] = torch.linalg.pinv(M[bad], hermitian=True, atol=atol, rtol=0.0)
    return W.mul_(pp), P


class _Workspace:
    """Reused storage for the n×k×k systems: a fresh multi-megabyte tensor per iteration costs the CPU more in
    page faults than the factorisation itself (we measured 2×), so the buffers grow once and are viewed."""

    def __init__(self):
        self.bufs: dict = {}

    def extended(self, G: torch.Tensor, k: int) -> torch.Tensor:
        """G ⊕ I_k (the dummy atoms of `_padded_solve`), built once per k."""
        key = ("extended", k)
        if key not in self.bufs:
            self.bufs[key] = torch.block_diag(G, torch.eye(k, dtype=G.dtype, device=G.device))
        return self.bufs[key]

    def get(self, name: str, shape: tuple[int, ...], like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        numel = 1
        for d in shape:
            numel *= d
        buf = self.bufs.get(name)
        if buf is None or buf.numel() < numel:
            buf = self.bufs[name] = torch.empty(numel, dtype=dtype, device=like.device)
        return buf[:numel].view(shape)


def _compact_solve(G, Ct, mask, atol, work: _Workspace, chunks: bool | None = None) -> torch.Tensor:
    """z (n×r) with z_S = G_SS⁻¹ c_S, S = mask[j], zero off S; Ct is n×r. Systems are k×k, k = max |S|, grouped in
    cache-sized chunks (``chunks``, the default on CPU) or in 4 buckets (the default on CUDA)."""
    n, r = mask.shape
    z = Ct.new_zeros(n, r)
    k = int(mask.sum(1).max()) if n else 0
    if k == 0:
        return z
    if bool((mask == mask[:1]).all()):
        # one passive set shared by every column (typically BPP's first solve, F = {c > 0}): one factorisation
        # with the columns as a matrix right-hand side
        S = mask[0].nonzero().squeeze(1)
        GS, rhs = G[S.unsqueeze(1), S], Ct[:, S].T
        L, info = torch.linalg.cholesky_ex(GS)
        if int(info) == 0 and bool((L.diagonal().square() > atol).all()):
            z[:, S] = torch.cholesky_solve(rhs, L).T
        else:
            z[:, S] = (torch.linalg.pinv(GS, hermitian=True, atol=atol, rtol=0.0) @ rhs).T
        return z
    if Ct.device.type == "cpu" if chunks is None else chunks:
        return _chunked_solve(G, Ct, mask, atol, work, z)
    if n >= BUCKET_MIN_ROWS:
        # sizes vary (at 361×49 from ~15 to ~40): factor in size buckets, largest first (so the workspace is
        # sized once), each padded only to its own largest set
        size, perm = mask.sum(1).sort(descending=True)
        cuts = [n * i // SIZE_BUCKETS for i in range(SIZE_BUCKETS + 1)]
        ks = size[torch.tensor(cuts[:-1], device=mask.device)].tolist()
        for a, b, kb in zip(cuts, cuts[1:], ks):
            if kb:
                rows = perm[a:b]
                z[rows] = _padded_solve(G, Ct[rows], mask[rows], kb, atol, work)
        return z
    return _padded_solve(G, Ct, mask, k, atol, work)


def _chunked_solve(G, Ct, mask, atol, work: _Workspace, z) -> torch.Tensor:
    """The CPU form of `_compact_solve`: rows sorted by |S| (largest first) and cut into chunks of about
    CHUNK_NUMBERS numbers of k×k systems, each padded only to its own largest set, so that a chunk's systems,
    factors and gather indices stay in cache (at 361×49, n = 20 000: 2× faster than 4 buckets of 5 000)."""
    n = mask.shape[0]
    size, perm = mask.sum(1).sort(descending=True)
    sizes = size.tolist()
    a = 0
    while a < n and sizes[a]:
        k = sizes[a]
        b = min(n, a + max(CHUNK_MIN_ROWS, CHUNK_NUMBERS // (k * k)))
        rows = perm[a:b]
        z[rows] = _padded_solve(G, Ct[rows], mask[rows], k, atol, work)
        a = b
    return z


def _padded_solve(G, Ct, mask, k, atol, work: _Workspace) -> torch.Tensor:
    """The k×k systems (G_SS ⊕ I) of `_compact_solve`, one batched Cholesky; k ≥ every |S|.

    Each row lists its passive atoms first, in order, then the dummy atoms r, r+1, …: indices into G ⊕ I_k, so one
    gather builds G_SS ⊕ I and the padded right-hand side, with no masking passes."""
    n, r = mask.shape
    R = r + k
    slot = torch.where(mask, mask.cumsum(1) - 1, k)  # a passive atom's place in its row; k: dropped
    order = (torch.arange(r, R + 1, device=G.device).expand(n, k + 1).clone()
             .scatter_(1, slot, torch.arange(r, device=G.device).expand(n, r))[:, :k])
    flat = torch.add((order * R).unsqueeze(2), order.unsqueeze(1), out=work.get("idx", (n, k, k), G, torch.long))
    M = torch.index_select(work.extended(G, k).flatten(), 0, flat.flatten(),
                           out=work.get("M", (n * k * k,), G, G.dtype)).view(n, k, k)
    rhs = torch.nn.functional.pad(Ct, (0, k)).gather(1, order).unsqueeze(2)
    L, info = torch.linalg.cholesky_ex(M, out=(work.get("L", (n, k, k), G, G.dtype).mT,
                                               work.get("info", (n,), G, torch.int32)))
    zk = torch.linalg.solve_triangular(L.mT, torch.linalg.solve_triangular(L, rhs, upper=False), upper=True)
    bad = (info != 0) | (L.diagonal(dim1=1, dim2=2).square() <= atol).any(1)
    if bool(bad.any()):
        zk[bad] = torch.linalg.pinv(M[bad], hermitian=True, atol=atol, rtol=0.0) @ rhs[bad]
    return Ct.new_zeros(n, R).scatter_(1, order, zk.squeeze(2))[:, :r]


def masked_solve(G: torch.Tensor, C: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Solve G_SS z_S = c_S per column with S = mask[j] (z = 0 off S); C is r×n, returns z (n×r).

    Columns whose Cholesky factorisation fails (singular G_SS) get the pseudo-inverse solution instead.
    """
    return _compact_solve(G, C.T, mask, _pinv_atol(G), _Workspace())


class _Systems:
    """The passive-set solves of one `nnls_gram` call: the subset table when it pays, else compact Cholesky."""

    def __init__(self, G: torch.Tensor, n: int, how: str):
        r = G.shape[0]
        if how == "auto":
            how = "table" if r <= TABLE_MAX_R and (1 << r) <= 4 * n else "compact"
        self.G, self.atol = G, _pinv_atol(G)
        self.table = self.mixed = None
        if how == "table":
            self.table, P = subset_table(G)
            # rows of G_SS⁻¹ on S and of G·G_SS⁻¹ − I off S: one mat-vec gives BPP's x_S and gradient Gx − c
            self.mixed = torch.where(P.unsqueeze(2), self.table,
                                     G @ self.table - torch.eye(r, dtype=G.dtype, device=G.device))
        self.bit = 1 << torch.arange(r, device=G.device)

    def solve(self, Ct: torch.Tensor, mask: torch.Tensor, work: _Workspace) -> torch.Tensor:
        """z (n×r): z_S = G_SS⁻¹ c_S, zero off S = mask[j]."""
        if self.table is None:
            return _compact_solve(self.G, Ct, mask, self.atol, work)
        W = self.table.index_select(0, (mask * self.bit).sum(1))
        return torch.bmm(W, Ct.unsqueeze(2)).squeeze(2)

    def solve_mixed(self, Ct: torch.Tensor, mask: torch.Tensor, work: _Workspace) -> torch.Tensor:
        """v (n×r): z_S on S = mask[j] and the gradient (Gz − c)_i off S, what BPP tests for infeasibility."""
        if self.mixed is None:
            x = _compact_solve(self.G, Ct, mask, self.atol, work)
            return torch.where(mask, x, torch.addmm(Ct, x, self.G, beta=-1))
        V = self.mixed.index_select(0, (mask * self.bit).sum(1))
        return torch.bmm(V, Ct.unsqueeze(2)).squeeze(2)


def nnls_gram(
    G: torch.Tensor,
    C: torch.Tensor,
    *,
    allowed: torch.Tensor | None = None,
    method: str = "bpp",
    max_iter: int | None = None,
    block: int | None = None,
    systems: str = "auto",
) -> NNLSResult:
    """Solve min ½xᵀGx − cᵀx, x ≥ 0 (x_i = 0 where not allowed) for every column of C (r×n).

    ``block`` bounds the columns solved together (memory n_b·r² per step); default keeps that under ~64 M
    numbers. ``systems`` picks how passive-set systems are solved: ``auto``, ``table`` or ``compact`` (module
    docstring); all give the same answer up to round-off. Returns x as n×r (row per column of C).
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
    if systems not in ("auto", "table", "compact"):
        raise ValueError(f"unknown systems {systems!r}")
    if n == 0:
        return NNLSResult(C.new_zeros(0, r), torch.zeros(0, dtype=torch.bool, device=C.device), 0)
    threads = 1 if C.device.type != "cpu" else max(1, min(torch.get_num_threads(), n * r * r // THREAD_MIN_NUMBERS))
    if threads > 1:
        block = min(block, -(-n // threads))
    spans = [(s, min(n, s + block)) for s in range(0, n, block)]
    fn = _bpp if method == "bpp" else _lh
    with one_cpu_thread(C.device):
        sysm = _Systems(G, n, systems)

        def solve(span, work: _Workspace):
            s, e = span
            x, f, it = fn(sysm, work, G, C[:, s:e], allowed[s:e], max_iter)
            if method == "bpp" and bool(f.any()):
                # BPP can cycle on ill-conditioned Gram matrices in floating point: Lawson–Hanson, which
                # decreases the objective monotonically, takes over those columns
                xl, fl, itl = _lh(sysm, work, G, C[:, s:e][:, f], allowed[s:e][f], max_iter)
                x[f], f[f.clone()] = xl, fl
                it = max(it, itl)
            return x, f, it

        if threads == 1:
            work = _Workspace()
            out = [solve(span, work) for span in spans]
        else:
            # CPU: batched LAPACK factors one matrix at a time on one core, so independent column blocks run in
            # threads (torch releases the GIL), each on one intra-op thread (OpenMP's count is per thread)
            def worker(span):
                torch.set_num_threads(1)
                return solve(span, _Workspace())

            with ThreadPoolExecutor(threads) as pool:
                out = list(pool.map(worker, spans))
    xs, flags, its = zip(*out)
    return NNLSResult(torch.cat(xs), torch.cat(flags), max(its))


def _tolerance(G: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    scale = torch.maximum(C.abs().amax(0), G.diagonal().abs().max().expand(C.shape[1]))
    return 1e-13 * scale


class _WorkingSet:
    """Per-column loop state; finished columns are dropped (and their answers stored) once at most half runs."""

    def __init__(self, n: int, r: int, like: torch.Tensor, **state: torch.Tensor):
        self.cols = torch.arange(n, device=like.device)
        self.width = r * r
        self.out = like.new_zeros(n, r)
        self.flagged = torch.ones(n, dtype=torch.bool, device=like.device)
        self.state = state

    def step(self, done: torch.Tensor, answer) -> bool:
        """Compact when the running count has halved, storing ``answer()`` (n×r) of the finished columns.
        Returns False when nothing runs any more."""
        running = done.numel() - int(done.sum())
        if running == 0 or (running <= done.numel() // 2 and done.numel() * self.width >= COMPACT_MIN_NUMBERS):
            fin = done.nonzero().squeeze(1)
            self.out[self.cols[fin]] = answer()[fin]
            self.flagged[self.cols[fin]] = False
            keep = (~done).nonzero().squeeze(1)
            self.cols = self.cols[keep]
            self.state = {k: v[keep] for k, v in self.state.items()}
        return running > 0

    def finish(self, answer: torch.Tensor) -> None:
        """Store the answers of the columns still in the set (their flag stays set unless ``done`` says so)."""
        self.out[self.cols] = answer


def _bpp(sysm, work, G, C, allowed, max_iter):
    """Block principal pivoting with the Júdice–Pires backup, lock-step over the working set."""
    r, n = C.shape
    dev = C.device
    idx = torch.arange(r, device=dev)
    Ct = C.T.contiguous()
    # −tol where the atom is allowed, −∞ where not: v < ntol is then "infeasible and allowed"
    ntol = torch.where(allowed, -_tolerance(G, C).unsqueeze(1), -float("inf"))
    # iteration 1 in closed form: F = ∅ gives x = 0 and gradient −c, so every allowed c_i > tol is infeasible,
    # their count falls from r + 1, and all of them enter F
    F = -Ct < ntol
    nv = F.sum(1)
    ws = _WorkingSet(n, r, C, Ct=Ct, al=allowed, ntol=ntol, F=F, ninf=nv,
                     pcount=torch.full((n,), 3, dtype=torch.long, device=dev), done=nv == 0, v=C.new_zeros(n, r))
    it = 1
    while it < max_iter and ws.step(ws.state["done"], lambda: _answer(ws.state)):
        it += 1
        st = ws.state
        F, done = st["F"], st["done"]
        v = sysm.solve_mixed(st["Ct"], F, work)  # x on F, gradient Gx − c off F (≈ 0 on F, so not needed there)
        infeas = v < st["ntol"]
        nv = infeas.sum(1)
        st["v"] = torch.where(done.unsqueeze(1), st["v"], v)  # a finished column keeps its answer (F is frozen)
        done = done | (nv == 0)
        # Kim & Park: exchange every infeasible variable while their number falls, or up to three times after
        # it last fell; otherwise Júdice–Pires: only the largest infeasible index
        # (pcount: 3 when the count fell, else one less; a full exchange while it is ≥ 0)
        fewer = nv < st["ninf"]
        st["ninf"] = torch.minimum(nv, st["ninf"])
        st["pcount"] = pcount = torch.where(fewer, 3, st["pcount"] - 1)
        full = pcount >= 0
        if bool((full | done).all()):
            flip = infeas & ~done.unsqueeze(1)
        else:
            last = torch.where(infeas, idx, -1).amax(1)
            flip = infeas & (full.unsqueeze(1) | (idx == last.unsqueeze(1))) & ~done.unsqueeze(1)
        st["F"], st["done"] = F ^ flip, done
    ws.finish(_answer(ws.state))
    ws.flagged[ws.cols] = ~ws.state["done"]
    return ws.out, ws.flagged, it


def _answer(st: dict) -> torch.Tensor:
    """BPP's x from its state: v on the passive set F, clamped at 0, zero where not allowed."""
    return (st["v"] * st["F"]).clamp_min(0) * st["al"]


def _lh(sysm, work, G, C, allowed, max_iter):
    """Lawson–Hanson active set, one passive-set solve per iteration for every column of the working set."""
    r, n = C.shape
    dev = C.device
    idx = torch.arange(r, device=dev)
    ws = _WorkingSet(n, r, C, Ct=C.T.contiguous(), al=allowed, tol=_tolerance(G, C).unsqueeze(1),
                     P=torch.zeros(n, r, dtype=torch.bool, device=dev), x=C.new_zeros(n, r),
                     done=torch.zeros(n, dtype=torch.bool, device=dev))
    it = 0
    for it in range(1, max_iter + 1):
        st = ws.state
        Ct, P, x, tol, done = st["Ct"], st["P"], st["x"], st["tol"], st["done"]
        z = sysm.solve(Ct, P, work)
        neg = P & (z <= 0)
        feasible = ~neg.any(1)
        # back-track: x + α(z − x) with the largest α keeping x ≥ 0; indices reaching 0 leave P
        ratio = torch.where(neg, x / (x - z).clamp_min(1e-300), torch.full_like(x, float("inf")))
        alpha = ratio.amin(1, keepdim=True).clamp(0, 1)
        xb = x + alpha * (z - x)
        stay = (~feasible).unsqueeze(1)
        leave = stay & P & (xb <= tol)
        xn = torch.where(stay, torch.where(leave, torch.zeros_like(xb), xb), z)
        Pn = P & ~leave
        w = torch.addmm(Ct, xn, G, beta=1, alpha=-1)  # c − Gx
        w = torch.where(~Pn & st["al"], w, torch.full_like(w, -float("inf")))
        wmax, jmax = w.max(1)
        fin = feasible & (wmax <= tol.squeeze(1))
        Pn = Pn | ((idx == jmax.unsqueeze(1)) & (feasible & ~fin).unsqueeze(1))
        frozen = done.unsqueeze(1)
        st["x"], st["P"] = torch.where(frozen, x, xn), torch.where(frozen, P, Pn)
        st["done"] = done = done | fin
        if not ws.step(done, lambda: st["x"].clamp_min(0) * st["al"]):
            break
    ws.finish(ws.state["x"].clamp_min(0) * ws.state["al"])
    ws.flagged[ws.cols] = ~ws.state["done"]
    return ws.out, ws.flagged, it


def nnls_matrix(A: torch.Tensor, B: torch.Tensor, **kw) -> NNLSResult:
    """Dense NNLS of every column of B on dictionary A (both float64 on one device); x is n×r. The Gram
    products are small GEMMs too, so they follow the same one-thread rule as the solver loop."""
    (m, r), n = A.shape, B.shape[1]
    with one_cpu_thread(A.device, m * n + n * r * r < SERIAL_MAX_NUMBERS):
        At = A.T.contiguous()
        return nnls_gram(At @ A, At @ B, **kw)
