"""The method itself: matrix-wise ℓ0-constrained sparse NNLS (Nadisic, Cohen, Vandaele, Gillis, Machine Learning;
arXiv 2011.11066), on arrays.

- `compute_fronts(A, B, ...)`: step 1, per-column error-vs-sparsity fronts (exact or approximate, `fronts.py`).
- `select(fronts, q, ...)`: step 2, one level per column under Σk ≤ q (MCKP, `select.py`).
- `solve(A, B, q=... | avg_nnz=...)`: both steps and the final X (r × n).
- `nnls_batched(A, B)`: dense NNLS of every column (`solver.py`).
- `global_topq`, `global_lambda`: the global heuristics `evaluate` compares against.
- fronts files: `save_fronts`, `load_fronts` (what `pareto` writes and `run --fronts` reads).

Choices where the spec is silent (ours): all-zero atoms are dropped before solving (their rows of X are 0) and
reported; with `kmax` < r the fronts hold levels 0..kmax only; `--front auto` picks `enum` when the subsets up to
`kmax` fit `enum_max_subsets` (r ≤ 20), else `bnb` (r ≤ 24) or `hybrid`; `enum_max_subsets` 0 means "by cost": the
most subsets whose enumeration over the n columns fits the device's work budget (`ENUM_WORK_BUDGET`, see
`auto_max_subsets`); a level is marked exact when enumerated, proven by branch and bound,
or equal to the dense NNLS error (no support does better); winners of every method are re-scored as ‖A x − b‖²
after an NNLS refit on their support, so all errors are computed the same way; `dp` reports the LP bound as
`lower_bound` and a zero gap (it is exact); `global-topq` ranks the coefficients of the normalised atoms.
"""

from __future__ import annotations

import math
import time
from math import comb
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wisecli.cli.errors import InputError
from wisecli.runtime.device import as_device

ENUM_WORK_BUDGET = {"cuda": 1e13, "cpu": 5e10}
"""Work units (see `enum_work`) that `--enum-max-subsets 0` lets an exact enumeration spend: about 0.5-2 ns a unit
on 2 CPU cores (r = 16, n = 150 faces: 1.9·10⁹ units, 1-4 s), so the CPU budget is one to two minutes there;
branch and bound is slower still on real data (r = 16 faces: about 0.5 s a column)."""
FRONT_METHODS = ("auto", "enum", "hybrid", "bnb", "union", "greedy", "backward", "homotopy")
SELECT_METHODS = ("auto", "dp", "greedy")
EVAL_METHODS = ("matrixwise-exact", "matrixwise-union", "columnwise-exact", "columnwise-nnomp",
                "columnwise-homotopy", "global-topq", "global-lambda", "nnls-dense")
ENUM_MAX_R = 20
DP_MAX_CELLS = 2 * 10**9



@dataclass
class Fronts:
    """Step-1 result. err/on_front/exact n×(kmax+1); mask n×(kmax+1)×r (bool); A the dictionary as given."""

    err: np.ndarray
    on_front: np.ndarray
    exact: np.ndarray
    mask: np.ndarray
    beta: np.ndarray
    A: np.ndarray
    method: str
    options: dict
    flagged: np.ndarray
    dense_err: np.ndarray
    seconds: float = 0.0
    coef: np.ndarray | None = None
    notes: list = field(default_factory=list)

    @property
    def kmax(self) -> int:
        return self.err.shape[1] - 1

    def exact_level_fraction(self) -> float:
        return float(self.exact.mean()) if self.exact.size else 1.0

    def certification(self) -> dict:
        """Whether every level of every front is proven optimal: {"certified": bool, "uncertified_levels": the
        levels k with a column not proven there, "uncertified_columns": how many columns have such a level}."""
        bad = ~np.asarray(self.exact, dtype=bool)
        return {"certified": not bool(bad.any()),
                "uncertified_levels": [int(k) for k in np.flatnonzero(bad.any(0))],
                "uncertified_columns": int(bad.any(1).sum())}

    def certification_warning(self) -> str | None:
        """One line for stderr when some level is not proven optimal (None when all are)."""
        c = self.certification()
        if c["certified"]:
            return None
        why = (f"branch and bound ran out of --bnb-time-limit {self.options.get('bnb_time_limit')} s"
               if self.method == "bnb" else f"--front {self.method} is not exact there")
        levels = ", ".join(map(str, c["uncertified_levels"]))
        return (f"not certified: {c['uncertified_columns']} of {self.err.shape[0]} columns hold levels that are the best "
                f"found, not proven optimal (levels {levels}; {why}); --front enum is exact (r ≤ {ENUM_MAX_R})")


# ------------------------------------------------------------------------------------------------ helpers
def _prepare(A: np.ndarray, normalize: bool):
    """Drop all-zero atoms, normalise the rest: (A_used, kept indices, scale per kept atom, notes)."""
    A = np.asarray(A, dtype=np.float64)
    norms = np.linalg.norm(A, axis=0)
    keep = np.flatnonzero(norms > 0)
    notes = []
    if keep.size < A.shape[1]:
        notes.append(f"{A.shape[1] - keep.size} all-zero atom(s) excluded")
    if keep.size == 0:
        raise InputError("the dictionary has only all-zero atoms", hint="check the dictionary")
    scale = norms[keep] if normalize else np.ones(keep.size)
    An = A[:, keep] / scale
    G = An.T @ An
    rank = np.linalg.matrix_rank(G)
    if rank < keep.size:
        notes.append(f"collinear atoms (rank {rank} < {keep.size}): their joint subsets are infeasible")
    return An, keep, scale, notes


def enum_work(r: int, kmax: int, n: int) -> float:
    """Estimated work of `fronts.enum_levels` for sizes 1..kmax on n columns, in multiply-adds. It runs on the Gram
    form (G = AᵀA, C = AᵀB computed once), so m does not enter: per size k, the C(r, k) factorisations cost about k³
    each, and every (subset, column) pair two k×r-by-r GEMM rows plus the positivity mask and the max-reduction,
    about k·(r + 8)."""
    return float(sum(comb(r, k) * k * ((r + 8) * n + k * k) for k in range(1, kmax + 1)))


def auto_max_subsets(r: int, n: int, device_type: str) -> int:
    """What `enum_max_subsets` 0 stands for: the subset count of the largest size K whose enumeration of every
    subset with |S| ≤ K over n columns fits `ENUM_WORK_BUDGET` of the device (so `auto` enumerates when all sizes
    fit, and `hybrid` enumerates up to K)."""
    from .fronts import subset_count

    budget = ENUM_WORK_BUDGET["cuda" if device_type == "cuda" else "cpu"]
    K = 0
    while K < r and enum_work(r, K + 1, max(n, 1)) <= budget:
        K += 1
    return subset_count(r, K)


def _resolve_front(front: str, r: int, kmax: int, max_subsets: int) -> str:
    from .fronts import subset_count

    if front not in FRONT_METHODS:
        raise InputError(f"unknown --front '{front}'", hint=f"choose from {', '.join(FRONT_METHODS)}")
    if front == "enum" and r > ENUM_MAX_R:
        raise InputError(f"--front enum with r = {r} > {ENUM_MAX_R} atoms is out of reach (2^r subsets)",
                         hint="use --front hybrid (or bnb, or union)")
    if front != "auto":
        return front
    if r <= ENUM_MAX_R and subset_count(r, kmax) <= max_subsets:
        return "enum"
    return "bnb" if r <= 24 else "hybrid"


def _refit_levels(G, C, An_t, B_t, masks, method):
    """NNLS refit on each given support (masks n×L×r) and re-score as ‖A x − b‖² directly (fp64)."""
    import torch

    from .solver import nnls_gram

    n, L, r = masks.shape
    flat = masks.reshape(n * L, r)
    Cr = C.repeat_interleave(L, dim=1)
    x = nnls_gram(G, Cr, allowed=flat, method=method).x.reshape(n, L, r)
    err = torch.empty(n, L, dtype=C.dtype, device=C.device)
    for l in range(L):
        res = An_t @ x[:, l].T - B_t
        err[:, l] = (res * res).sum(0)
    return x, err


def compute_fronts(A, B, *, front: str = "auto", kmax: int | None = None, device="auto",
                   enum_max_subsets: int | None = None, bnb_time_limit: float = 1.0, max_steps: int | None = None,
                   normalize_atoms: bool = True, precision: str = "fp64", nnls_solver: str = "bpp",
                   ridge: float = 0.0, with_coefficients: bool = False, workers: int | None = None,
                   col_block: int = 32768, progress=None) -> Fronts:
    """Per-column error-versus-sparsity fronts of B (m × n) on A (m × r), spec §2.2."""
    import torch

    from . import fronts as F
    from .bnb import bnb_fronts
    from .solver import nnls_gram

    t0 = time.perf_counter()
    dev = as_device(device)
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    if A.shape[0] != B.shape[0]:
        raise InputError(f"row mismatch: dictionary has {A.shape[0]} rows, data has {B.shape[0]}",
                         hint="A must be m × r with the m rows of B")
    An, keep, scale, notes = _prepare(A, normalize_atoms)
    r_full, r = A.shape[1], An.shape[1]
    kmax = r if not kmax else int(kmax)
    if not 1 <= kmax <= r_full:
        raise InputError(f"--kmax {kmax} must be in 1..{r_full}", hint="kmax is at most the number of atoms")
    kmax = min(kmax, r)
    if not enum_max_subsets:
        enum_max_subsets = auto_max_subsets(r, B.shape[1], dev.type)
    method = _resolve_front(front, r, kmax, enum_max_subsets)
    if not max_steps:
        max_steps = 4 * r
    if precision not in ("fp64", "fp32"):
        raise InputError(f"unknown --precision '{precision}'", hint="fp64 or fp32")
    if nnls_solver not in ("bpp", "lh"):
        raise InputError(f"unknown --nnls-solver '{nnls_solver}'", hint="bpp or lh")
    n = B.shape[1]
    An_t = torch.tensor(An, device=dev)
    G = An_t.T @ An_t
    if ridge > 0:
        G = G + ridge * torch.eye(r, dtype=G.dtype, device=dev)
    errs, ons, exs, masks, flags, denses, coefs = [], [], [], [], [], [], []
    for s in range(0, n, col_block):
        e = min(n, s + col_block)
        B_t = torch.tensor(B[:, s:e], device=dev)
        C = An_t.T @ B_t
        beta = (B_t * B_t).sum(0)
        dense = nnls_gram(G, C, method=nnls_solver)
        dense_err = ((An_t @ dense.x.T - B_t) ** 2).sum(0)
        kwargs = dict(max_steps=max_steps, nnls_method=nnls_solver)
        K = kmax
        if method == "enum":
            lv = F.enum_levels(G, C, beta, kmax, precision=torch.float32 if precision == "fp32" else torch.float64)
        elif method == "hybrid":
            K = F.hybrid_k(r, enum_max_subsets, kmax)
            lv = F.union_levels(G, C, beta, kmax, x_dense=dense.x, **kwargs)
            if K:
                lv.merge(F.enum_levels(G, C, beta, K))
        elif method in ("union", "bnb"):
            lv = F.union_levels(G, C, beta, kmax, x_dense=dense.x, **kwargs)
        elif method == "greedy":
            lv = F.greedy_levels(G, C, beta, kmax, nnls_method=nnls_solver)
        elif method == "backward":
            lv = F.backward_levels(G, C, beta, kmax, x_dense=dense.x, nnls_method=nnls_solver)
        else:
            lv = F.homotopy_levels(G, C, beta, kmax, **kwargs)
        lv.add(torch.arange(e - s, device=dev), dense_err, dense.x > 0)
        flagged = lv.flagged | dense.flagged
        _, mask, _ = F.finish(lv)
        proven = torch.zeros(e - s, kmax + 1, dtype=torch.bool, device=dev)
        if method == "bnb":
            err0, _, _ = F.finish(lv)
            eb, sb, pr, _ = bnb_fronts(G.cpu().numpy(), C.cpu().numpy(), beta.cpu().numpy(), kmax,
                                       err0.cpu().numpy(), mask.cpu().numpy(), time_limit=bnb_time_limit,
                                       workers=workers)
            mask = torch.tensor(sb, device=dev)
            proven = torch.tensor(pr, device=dev)
        x, err = _refit_levels(G, C, An_t, B_t, mask, nnls_solver)
        # running minimum again after re-scoring (ties within round-off keep the smaller support)
        for k in range(1, kmax + 1):
            worse = ~(err[:, k] < err[:, k - 1])
            err[:, k] = torch.where(worse, err[:, k - 1], err[:, k])
            x[:, k] = torch.where(worse.unsqueeze(1), x[:, k - 1], x[:, k])
        on = torch.ones_like(err, dtype=torch.bool)
        on[:, 1:] = err[:, 1:] < err[:, :-1] * (1 - F.REL_DROP)
        exact = err <= dense_err.unsqueeze(1) * (1 + 1e-9) + 1e-300
        if method == "enum":
            exact[:] = True
        elif method == "hybrid":
            exact[:, : K + 1] = True
        elif method == "bnb":
            exact |= proven
        exact[:, 0] = True
        errs.append(err.cpu().numpy())
        ons.append(on.cpu().numpy())
        exs.append(exact.cpu().numpy())
        masks.append((x > 0).cpu().numpy())
        flags.append(flagged.cpu().numpy())
        denses.append(dense_err.cpu().numpy())
        if with_coefficients:
            coefs.append(x.cpu().numpy())
        if progress is not None:
            progress(e, n)
    err = np.concatenate(errs)
    mk = np.concatenate(masks)
    mask_full = np.zeros((n, kmax + 1, r_full), dtype=bool)
    mask_full[:, :, keep] = mk
    coef = None
    if with_coefficients:
        coef = np.zeros((n, kmax + 1, r_full), dtype=np.float32)
        coef[:, :, keep] = np.concatenate(coefs) / scale
    options = dict(front=front, kmax=kmax, enum_max_subsets=enum_max_subsets, bnb_time_limit=bnb_time_limit,
                   max_steps=max_steps, normalize_atoms=normalize_atoms, precision=precision,
                   nnls_solver=nnls_solver, ridge=ridge)
    return Fronts(err, np.concatenate(ons), np.concatenate(exs), mask_full, (B**2).sum(0), A, method, options,
                  np.concatenate(flags), np.concatenate(denses), time.perf_counter() - t0, coef, notes)


def concat_fronts(parts: list[Fronts]) -> Fronts:
    """Join column chunks (same A and options) into one Fronts."""
    f0 = parts[0]
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
    coef = cat("coef") if f0.coef is not None else None
    return Fronts(cat("err"), cat("on_front"), cat("exact"), cat("mask"), cat("beta"), f0.A, f0.method, f0.options,
                  cat("flagged"), cat("dense_err"), sum(p.seconds for p in parts), coef, f0.notes)


# ------------------------------------------------------------------------------------------ fronts files
def mask_to_bits(mask: np.ndarray) -> np.ndarray:
    """Support masks (..., r) → uint64 bitmasks (r ≤ 64) or packed bits (..., ceil(r/8)) beyond."""
    r = mask.shape[-1]
    if r <= 64:
        w = (np.uint64(1) << np.arange(r, dtype=np.uint64))
        return (mask.astype(np.uint64) * w).sum(-1, dtype=np.uint64)
    return np.packbits(mask, axis=-1, bitorder="little")


def bits_to_mask(bits: np.ndarray, r: int) -> np.ndarray:
    """The inverse of `mask_to_bits`: bitmasks (or packed bits) → bool support masks (..., r)."""
    if bits.dtype == np.uint64:
        return ((bits[..., None] >> np.arange(r, dtype=np.uint64)) & np.uint64(1)).astype(bool)
    return np.unpackbits(bits, axis=-1, count=r, bitorder="little").astype(bool)


def fronts_arrays(fr: Fronts) -> dict:
    """The arrays of a fronts file (`{stem}.fronts.npz`), as `save_npz` takes them."""
    import json

    arrays = dict(err=fr.err, on_front=fr.on_front, exact=fr.exact, support=mask_to_bits(fr.mask), beta=fr.beta,
                  A=fr.A, dense_err=fr.dense_err, flagged=fr.flagged, method=np.array(fr.method),
                  options=np.array(json.dumps(fr.options)), seconds=np.array(fr.seconds))
    if fr.coef is not None:
        arrays["coef"] = fr.coef
    return arrays


def save_fronts(path, fr: Fronts) -> Path:
    """Write `fr` as a fronts file, atomically; returns its path."""
    from wisecli.runtime.io.atomic import save_npz

    return save_npz(path, **fronts_arrays(fr))


def load_fronts(path) -> Fronts:
    """Read a fronts file written by `pareto`; anything else is an input error naming the file."""
    import json

    path = Path(path)
    try:
        z = np.load(path, allow_pickle=False)
        A = z["A"]
        return Fronts(z["err"], z["on_front"], z["exact"], bits_to_mask(z["support"], A.shape[1]), z["beta"], A,
                      str(z["method"]), json.loads(str(z["options"])), z["flagged"], z["dense_err"],
                      float(z["seconds"]), z["coef"] if "coef" in z.files else None)
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"{path}: not a fronts file written by 'wise nnls pareto' ({exc})",
                         hint="create it with 'wise nnls pareto'") from None


# ----------------------------------------------------------------------------------------------- step 2
def budget(n: int, r: int, *, nnz: int | None = None, avg_nnz: float | None = None) -> int:
    """Total budget q from --nnz or --avg-nnz (exactly one), checked against 0 ≤ q ≤ n·r."""
    if (nnz is None) == (avg_nnz is None):
        raise InputError("give exactly one of --nnz and --avg-nnz", hint="for example --avg-nnz 2")
    value = float(nnz if nnz is not None else avg_nnz)
    if not math.isfinite(value):
        raise InputError(f"budget {value} is not a finite number", hint="give --nnz Q or --avg-nnz R as numbers")
    q = int(nnz) if nnz is not None else int(round(value * n))
    if not 0 <= q <= n * r:
        raise InputError(f"budget q = {q} out of range 0..{n * r} (n = {n} columns, r = {r} atoms)",
                         hint="lower --nnz / --avg-nnz")
    return q


def select(fronts: Fronts, q: int, method: str = "auto", dp_max_cells: int = DP_MAX_CELLS):
    """Step 2: choose a level per column (`select.Selection`); seconds are added as `.seconds`."""
    from .select import select_levels

    if method not in SELECT_METHODS:
        raise InputError(f"unknown --select '{method}'", hint=f"choose from {', '.join(SELECT_METHODS)}")
    t0 = time.perf_counter()
    sel = select_levels(fronts.err, fronts.on_front, q, method, dp_max_cells)
    sel.seconds = time.perf_counter() - t0
    return sel


def coefficients(fronts: Fronts, B, k: np.ndarray, *, device="auto", nnls_solver: str = "bpp") -> np.ndarray:
    """X (r × n) from the chosen level of each column: NNLS refit on its support, in the atoms' own scale."""
    import torch

    from .solver import nnls_gram

    dev = as_device(device)
    A = np.asarray(fronts.A, dtype=np.float64)
    n = B.shape[1]
    supp = fronts.mask[np.arange(n), k]  # n×r
    norms = np.linalg.norm(A, axis=0)
    keep = norms > 0
    An = np.where(keep, A / np.where(keep, norms, 1), 0)
    At = torch.tensor(An[:, keep], device=dev)
    Bt = torch.tensor(np.asarray(B, dtype=np.float64), device=dev)
    x = nnls_gram(At.T @ At, At.T @ Bt, allowed=torch.tensor(supp[:, keep], device=dev), method=nnls_solver).x
    X = np.zeros((A.shape[1], n))
    X[keep] = x.cpu().numpy().T / norms[keep, None]
    return X


def rel_error(A, X, B) -> float:
    """‖AX − B‖_F / ‖B‖_F (the paper's metric, a fraction)."""
    return float(np.linalg.norm(A @ X - B) / max(np.linalg.norm(B), 1e-300))


def solve(A, B, *, q: int | None = None, avg_nnz: float | None = None, fronts: Fronts | None = None,
          select_method: str = "auto", dp_max_cells: int = DP_MAX_CELLS, device="auto", **front_kw) -> dict:
    """Both steps: X (r × n) with at most q nonzeros in the whole matrix minimising ‖AX − B‖_F²."""
    t0 = time.perf_counter()
    B = np.asarray(B, dtype=np.float64)
    if fronts is None:
        fronts = compute_fronts(A, B, device=device, **front_kw)
    A = fronts.A
    n, r = B.shape[1], A.shape[1]
    q = budget(n, r, nnz=q, avg_nnz=avg_nnz)
    notes = list(fronts.notes)
    dense_support = int(fronts.mask[:, -1].sum())
    if q >= dense_support and fronts.kmax == r:
        notes.append(f"q = {q} ≥ total dense NNLS support {dense_support}: the dense NNLS solution is returned")
    sel = select(fronts, q, select_method, dp_max_cells)
    X = coefficients(fronts, B, sel.k, device=device, nnls_solver=fronts.options.get("nnls_solver", "bpp"))
    nnz = int((X != 0).sum())
    assert nnz <= q, f"selection broke the budget: {nnz} > {q}"
    bn = max(float(np.sqrt(fronts.beta.sum())), 1e-300)
    return {
        "X": X, "k": sel.k, "q": q, "nnz": nnz, "avg_nnz": nnz / n, "rel_error": rel_error(A, X, B),
        "nnls_rel_error": float(np.sqrt(fronts.dense_err.sum()) / bn), "fronts": fronts, "selection": sel,
        "k_hist": {int(v): int(c) for v, c in zip(*np.unique(sel.k, return_counts=True))},
        "notes": notes, "seconds": time.perf_counter() - t0,
    }


def nnls_batched(A, B, *, device="auto", method: str = "bpp", max_iter: int | None = None):
    """Dense NNLS of every column of B: (X r × n, flagged columns)."""
    import torch

    from .solver import nnls_gram

    dev = as_device(device)
    At = torch.tensor(np.asarray(A, dtype=np.float64), device=dev)
    Bt = torch.tensor(np.asarray(B, dtype=np.float64), device=dev)
    res = nnls_gram(At.T @ At, At.T @ Bt, method=method, max_iter=max_iter)
    return res.x.cpu().numpy().T, res.flagged.cpu().numpy()


# ------------------------------------------------------------------------------------ global heuristics
def global_topq(A, B, q, device="auto"):
    """Dense NNLS, keep the q largest entries (normalised atoms), refit on that support."""
    X, _ = nnls_batched(A, B, device=device)
    norms = np.linalg.norm(A, axis=0)
    score = (X * norms[:, None]).ravel()
    keep = np.zeros(X.size, dtype=bool)
    if q > 0:
        order = np.argsort(-score, kind="stable")[:q]
        keep[order[score[order] > 0]] = True
    return _refit_on(A, B, keep.reshape(X.shape), device)


def _refit_on(A, B, support, device):
    """X = NNLS of each column on its support (support r × n bool)."""
    import torch

    from .solver import nnls_gram

    dev = as_device(device)
    At = torch.tensor(np.asarray(A, dtype=np.float64), device=dev)
    Bt = torch.tensor(np.asarray(B, dtype=np.float64), device=dev)
    x = nnls_gram(At.T @ At, At.T @ Bt, allowed=torch.tensor(support.T, device=dev)).x
    return x.cpu().numpy().T


def global_lambda(A, B, q, device="auto", max_steps=None):
    """One λ for all columns (bisected on the positive-lasso paths so total nnz ≤ q), then an NNLS refit."""
    import torch

    from .fronts import homotopy_path

    dev = as_device(device)
    norms = np.linalg.norm(A, axis=0)
    An = A / np.where(norms > 0, norms, 1)
    At = torch.tensor(An, device=dev)
    Bt = torch.tensor(np.asarray(B, dtype=np.float64), device=dev)
    path = homotopy_path(At.T @ At, At.T @ Bt, max_steps=max_steps or 4 * A.shape[1])
    lams = torch.nan_to_num(path.lambdas, nan=-1.0).cpu().numpy()  # n×(T+1)
    act = path.active.cpu().numpy()  # (T+1)×n×r
    n = B.shape[1]
    cols = np.arange(n)

    def support_at(lam):
        t = (lams > lam).sum(1) - 1
        s = np.zeros((n, A.shape[1]), dtype=bool)
        ok = t >= 0
        s[ok] = act[t[ok], cols[ok]]
        return s

    hi = float(lams.max()) if lams.size else 0.0
    if hi <= 0:
        return np.zeros((A.shape[1], n))
    lo = hi * 1e-12
    best = support_at(hi)
    if support_at(lo).sum() <= q:
        best = support_at(lo)
    else:
        for _ in range(80):
            mid = np.sqrt(lo * hi)
            s = support_at(mid)
            if s.sum() <= q:
                hi, best = mid, s
            else:
                lo = mid
    return _refit_on(A, B, best.T, device)
