"""Correlation-wise Smoothing (CS): fit, vectorised signatures, the streaming form and the model files.

Source: A. Netti, D. Tafani, M. Ott, M. Schulz, "Correlation-wise Smoothing: Lightweight Knowledge Extraction for
HPC Monitoring Data", IPDPS 2021, pp. 2-12, DOI 10.1109/IPDPS49936.2021.00010 (arXiv 2010.06186), and the facts
of the authors' reproduction scripts as summarised in the spec (steps 1-11 of specs/smooth.md §2).

Layout choice: arrays are time-major, ``(T, S)`` (one row per sample, one column per sensor), and batches of
equal-length series are ``(n, T, S)``; files are stored that way too. The maths is the spec's with S×T transposed.

Vectorised form. The spec's form gathers the normalised rows by π, takes prefix sums along time and applies the
nb×S block-averaging matrix M to the window means. M is linear and acts per sample, so we apply it *first*:
Y = N · M_πᵀ (T × nb, with M_π = M with its columns put back in original sensor order, which folds the gather into
the GEMM), then prefix sums of Y in float64 (P₀ = 0), avg = (P[e+1] − P[e−W+1])/W and der = (Y[e] − Y[e−W])/W for
all window ends at once. Same numbers (to rounding), one elementwise pass, one small GEMM, a scan over nb ≪ S
columns and two gathers; memory is bounded by processing window chunks with a W-sample overlap.

Quirks (``Quirks``): the reference scripts' behaviours Q1-Q9 (spec §2 table) are individually switchable; the
ones that live in this module are Q2 (floating-point block bounds) and Q4 (window count). The others live where
the data is read (Q5-Q7), in evaluation (Q1, Q8) and in the Lan baseline (Q9).

Choices where the spec is silent:
- A sensor is *constant* when its fitted max equals its min exactly; its correlations are set to 0 (+1), as the
  reference's NaN → 0 does, even when rounding in a mean would make a computed correlation finite.
- Several training series are concatenated in time for min, max and the correlation matrix (rows are samples;
  no window crosses a join there because fitting uses no windows).
- NaN samples are ignored by min/max and rows holding NaN are left out of the correlation.

Conventions (``--convention``; default ``scripts``). The engine follows the authors' Python reproduction
scripts (``scripts``). ``dcdb`` follows the CS operator of DCDB's Wintermute framework (the production C++ code by
the paper's first author, ``CSOperator.cpp``: ``convertToCorrelation``, ``computePermutation``, ``normalize``,
``getAvg``, ``getDer``, ``computeSignature``); side by side:

============== ====================================================== ======================================================
step           scripts (default)                                      dcdb
============== ====================================================== ======================================================
derivative     (N[e] − N[e−W])/W: the W differences ending at e, the  mean of the W−1 differences *inside* the window:
               sample before the window included                      (N[e] − N[e−W+1])/(W−1); 0 when W = 1
correlation    Pearson, NaN → 0, then C + 1 (range [0, 2])            cov/(σᵢσⱼ + 1e-5) with the 1/n covariance, no shift
walk score     (C+1)[π_{k−1}, j] · cv[j], cv = column mean of C + 1   C[π_{k−1}, j] · c̄[j], c̄ = mean off-diagonal
               with the diagonal included                             correlation of j; π₀ = argmax c̄
normalisation  (x − min)/(max − min + eps), eps 1e-4                  (x − min)/(max − min) (eps 0; a constant sensor → 0)
block bounds   exact integers (Q2 switches to float64)                DCDB's float32 L = S/nb, ⌊b·L⌋, ⌈(b+1)·L⌉, clamped to S
============== ====================================================== ======================================================

Not reproduced from DCDB (documented departures): DCDB stores readings as int64, so it truncates each normalised
value, each window mean and each block mean to an integer (with its default scaling factor 1e6 that moves a value
by at most a few units in 1e6; pass ``--scale 1000000`` to get DCDB's units); it resamples the training data with
cubic B-splines onto a uniform grid before the correlation (our inputs are already aligned samples); it keeps
min/max as integers; and its float32 block bounds may run past the last sensor (279 (S, B) pairs with S ≤ 4096,
B ∈ {5, 10, 20, 40, 200} read beyond the permutation vector), which we clamp to S. Ties go to the lowest index in
both conventions (DCDB's strict ``>`` over an ordered set).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from wisecli.cli.errors import InputError

ALL_QUIRKS = tuple(f"Q{i}" for i in range(1, 10))
QUIRK_TEXT = {
    "Q1": "min/max and order fitted on the whole dataset, test windows included",
    "Q2": "block bounds computed in floating point (spurious extra rows)",
    "Q3": "model export casts min/max with int()",
    "Q4": "floor((T-W)/step) windows (the last one may be lost)",
    "Q5": "sensors and labels aligned by row position, timestamps ignored",
    "Q6": "folder-per-node fit on the first sub-folder only",
    "Q7": "files, runs and gap segments concatenated; windows straddle joins",
    "Q8": "unseeded shuffle, identical folds across repeats, scores treated as independent",
    "Q9": "Lan baseline requires W divisible by 10",
}


@dataclass(frozen=True)
class Quirks:
    """Which reference-script behaviours are reproduced (default: none, i.e. ``fixed``)."""

    on: frozenset = field(default_factory=frozenset)

    @classmethod
    def parse(cls, spec: "str | Quirks | None") -> "Quirks":
        """``fixed`` | ``reference`` | a comma list such as ``Q2,Q4`` | ``reference,-Q1``."""
        if isinstance(spec, Quirks):
            return spec
        if spec is None or spec == "" or spec == "fixed":
            return cls(frozenset())
        on: set[str] = set()
        for part in str(spec).split(","):
            p = part.strip().upper()
            if p == "REFERENCE":
                on |= set(ALL_QUIRKS)
            elif p == "FIXED":
                continue
            elif p.startswith("-") and p[1:] in ALL_QUIRKS:
                on.discard(p[1:])
            elif p in ALL_QUIRKS:
                on.add(p)
            else:
                raise InputError(f"unknown quirk setting {part.strip()!r}",
                                 hint="use fixed, reference, or a list such as Q2,Q4 (Q1..Q9)")
        return cls(frozenset(on))

    def __contains__(self, q: str) -> bool:
        return q in self.on

    @property
    def name(self) -> str:
        if not self.on:
            return "fixed"
        if self.on == frozenset(ALL_QUIRKS):
            return "reference"
        return ",".join(sorted(self.on, key=lambda q: int(q[1:])))


FIXED = Quirks()
REFERENCE = Quirks(frozenset(ALL_QUIRKS))
CONVENTIONS = ("scripts", "dcdb")
CONVENTION_TEXT = {
    "scripts": "the authors' Python scripts: der = (N(e)-N(e-W))/W; walk by (C+1)*cv; eps 1e-4; exact block bounds",
    "dcdb": "DCDB Wintermute CS operator: der = mean of the W-1 differences inside the window; walk by the mean "
            "off-diagonal correlation; eps 0; float32 block bounds",
}
DCDB_CORR_EPS = 1e-5  # DCDB convertToCorrelation: cov_ij / (sqrt(cov_ii)·sqrt(cov_jj) + 0.00001)


def check_convention(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise InputError(f"unknown convention {convention!r}", hint="use scripts (default) or dcdb")
    return convention


# ----------------------------------------------------------------------------------------------------- fit
def correlation_matrix(X: np.ndarray, constant: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Pearson correlation of the sensor columns of ``X`` (T × S), float64, constant sensors → 0 (step 2)."""
    import torch

    x = torch.as_tensor(X, dtype=torch.float64).to(device)
    x = x[~torch.isnan(x).any(dim=1)]
    if x.shape[0] < 2:
        C = torch.zeros(X.shape[1], X.shape[1], dtype=torch.float64, device=x.device)
    else:
        xc = x - x.mean(dim=0, keepdim=True)
        cov = xc.T @ xc
        d = torch.sqrt(torch.diagonal(cov))
        C = (cov / d[:, None] / d[None, :]).clamp(-1.0, 1.0)
        C = torch.nan_to_num(C, nan=0.0, posinf=0.0, neginf=0.0)
    C = C.cpu().numpy().copy()
    C[constant, :] = 0.0
    C[:, constant] = 0.0
    return C


def correlation_walk(C: np.ndarray) -> np.ndarray:
    """Steps 3-5: π₀ = argmax cv, then the unvisited j maximising (C+1)[π_{k-1}, j]·cv[j]; ties → lowest index.

    ``C`` is the plain correlation matrix (NaN already → 0). numpy's argmax returns the first maximum, which is
    the lowest index rule. Visited sensors are masked with −inf.
    """
    S = C.shape[0]
    A = C + 1.0
    cv = A.mean(axis=0)
    np.fill_diagonal(A, -1.0)
    G = A * cv[None, :]
    order = np.empty(S, dtype=np.int64)
    visited = np.zeros(S, dtype=bool)
    cur = int(np.argmax(cv))
    order[0] = cur
    visited[cur] = True
    for k in range(1, S):
        row = np.where(visited, -np.inf, G[cur])
        cur = int(np.argmax(row))
        order[k] = cur
        visited[cur] = True
    return order


def correlation_walk_torch(C: np.ndarray, device) -> np.ndarray:
    """The same walk on a torch device (used on CUDA for S ≥ 1024, where the S sequential steps amortise).

    torch.argmax on a 1-D tensor returns the first maximal index, so ties resolve to the lowest index as in numpy.
    """
    import torch

    A = torch.as_tensor(C, dtype=torch.float64, device=device) + 1.0
    cv = A.mean(dim=0)
    A.fill_diagonal_(-1.0)
    G = A * cv[None, :]
    S = G.shape[0]
    neg = torch.tensor(-math.inf, dtype=torch.float64, device=device)
    visited = torch.zeros(S, dtype=torch.bool, device=device)
    order = torch.empty(S, dtype=torch.int64, device=device)
    cur = torch.argmax(cv)
    order[0] = cur
    visited[cur] = True
    for k in range(1, S):
        cur = torch.argmax(torch.where(visited, neg, G[cur]))
        order[k] = cur
        visited[cur] = True
    return order.cpu().numpy()


def correlation_walk_dcdb(X: np.ndarray, constant: np.ndarray) -> np.ndarray:
    """DCDB's ``convertToCorrelation`` + ``computePermutation`` on the sensor columns of ``X`` (T × S).

    C_ij = cov_ij/(σᵢσⱼ + 1e-5) off the diagonal (1/n covariance), c̄_i = mean of C_ij over j ≠ i (stored on the
    diagonal by DCDB), π₀ = argmax c̄, then the unvisited j maximising c̄[j]·C[π_{k−1}, j]; ties → lowest index.
    Rows holding NaN are left out; a constant sensor's correlations are exactly 0 (as DCDB computes them in exact
    arithmetic: its covariance row is 0).
    """
    x = np.asarray(X, dtype=np.float64)
    x = x[~np.isnan(x).any(axis=1)]
    S = x.shape[1]
    if S == 1:
        return np.zeros(1, dtype=np.int64)
    if x.shape[0] < 1:
        C = np.zeros((S, S))
    else:
        xc = x - x.mean(axis=0, keepdims=True)
        cov = xc.T @ xc / x.shape[0]
        sd = np.sqrt(np.diagonal(cov))
        C = cov / (sd[:, None] * sd[None, :] + DCDB_CORR_EPS)
    C[constant, :] = 0.0
    C[:, constant] = 0.0
    np.fill_diagonal(C, 0.0)
    cbar = C.sum(axis=1) / (S - 1)
    G = C * cbar[None, :]
    order = np.empty(S, dtype=np.int64)
    visited = np.zeros(S, dtype=bool)
    cur = int(np.argmax(cbar))
    order[0] = cur
    visited[cur] = True
    for k in range(1, S):
        cur = int(np.argmax(np.where(visited, -np.inf, G[cur])))
        order[k] = cur
        visited[cur] = True
    return order


@dataclass
class Model:
    """A fitted CS model: sensor names (original order), order π, per-sensor min and max, and the defaults."""

    sensors: list[str]
    order: np.ndarray
    fmin: np.ndarray
    fmax: np.ndarray
    eps: float = 1e-4
    blocks: int = 20
    window: int = 60
    step: int = 10
    scale: float = 1.0
    quirks: Quirks = FIXED
    constant_sensors: list[str] = field(default_factory=list)
    fit_info: dict = field(default_factory=dict)
    convention: str = "scripts"

    @property
    def n_sensors(self) -> int:
        return len(self.sensors)


def fit(series: "list[np.ndarray] | np.ndarray", sensors: list[str] | None = None, *, blocks: int = 20,
        window: int = 60, step: int = 10, eps: float | None = None, scale: float = 1.0, quirks=None,
        device: str = "cpu", convention: str = "scripts") -> Model:
    """Steps 1-5 on one or more (T × S) training series (concatenated in time), in the authors' scripts'
    convention or DCDB's (``convention``; ``eps`` None: 1e-4 for scripts, 0 for dcdb)."""
    check_convention(convention)
    if eps is None:
        eps = 0.0 if convention == "dcdb" else 1e-4
    if isinstance(series, np.ndarray):
        series = [series] if series.ndim == 2 else list(series)
    X = np.concatenate([np.asarray(s, dtype=np.float64) for s in series], axis=0)
    if X.ndim != 2 or X.shape[0] < 1:
        raise InputError("no training samples to fit on", hint="give at least one non-empty input")
    S = X.shape[1]
    sensors = list(sensors) if sensors is not None else [f"s{i}" for i in range(S)]
    if len(sensors) != S:
        raise InputError(f"{len(sensors)} sensor names for {S} columns")
    with np.errstate(all="ignore"):
        fmin = np.nanmin(X, axis=0) if X.shape[0] else np.zeros(S)
        fmax = np.nanmax(X, axis=0) if X.shape[0] else np.zeros(S)
    if np.isnan(fmin).any():
        bad = [sensors[i] for i in np.flatnonzero(np.isnan(fmin))]
        raise InputError(f"sensors with no numeric value in the training data: {', '.join(bad[:10])}",
                         hint="drop them with --exclude (all-NaN sensors are dropped when reading files)")
    constant = fmax == fmin
    if convention == "dcdb":
        order = correlation_walk_dcdb(X, constant)
    else:
        C = correlation_matrix(X, constant, device)
        if str(device).startswith("cuda") and S >= 1024:
            order = correlation_walk_torch(C, device)
        else:
            order = correlation_walk(C)
    return Model(sensors=sensors, order=order, fmin=fmin, fmax=fmax, eps=float(eps), blocks=int(blocks),
                 window=int(window), step=int(step), scale=float(scale), quirks=Quirks.parse(quirks),
                 constant_sensors=[sensors[i] for i in np.flatnonzero(constant)],
                 fit_info={"rows": int(X.shape[0]), "inputs": len(series)}, convention=convention)


# ------------------------------------------------------------------------------------------ signatures
def block_bounds(S: int, blocks: int, quirks: Quirks = FIXED, convention: str = "scripts") -> list[tuple[int, int]]:
    """Step 10: block b covers sorted rows [start, stop) with nb = min(B, S).

    Fixed: exact integers ⌊b·S/nb⌋ and ⌈(b+1)·S/nb⌉. Q2: the reference's floating-point L = S/nb, ⌊b·L⌋, ⌈(b+1)·L⌉.
    ``convention="dcdb"``: DCDB's float32 ``_blockLen = (float)S/(float)nb``, ⌊L·b⌋, ⌈L·(b+1)⌉ (clamped to S).
    """
    nb = min(int(blocks), S)
    out = []
    if convention == "dcdb":
        L = np.float32(S) / np.float32(nb)
        for b in range(nb):
            out.append((int(np.floor(L * np.float32(b))), min(S, int(np.ceil(L * np.float32(b + 1))))))
    elif "Q2" in quirks:
        L = S / nb
        for b in range(nb):
            out.append((math.floor(b * L), min(S, math.ceil((b + 1) * L))))
    else:
        for b in range(nb):
            out.append((b * S // nb, -((-(b + 1) * S) // nb)))
    return out


def block_matrix(S: int, blocks: int, quirks: Quirks = FIXED, convention: str = "scripts") -> np.ndarray:
    """The nb × S averaging matrix M over *sorted* rows (overlapping rows counted in both blocks)."""
    bounds = block_bounds(S, blocks, quirks, convention)
    M = np.zeros((len(bounds), S))
    for b, (lo, hi) in enumerate(bounds):
        M[b, lo:hi] = 1.0 / (hi - lo)
    return M


def window_ends(T: int, window: int, step: int, quirks: Quirks = FIXED) -> np.ndarray:
    """Window end samples e = W + step·v. Fixed: every e ≤ T−1. Q4: the reference's ⌊(T−W)/step⌋ windows."""
    if T <= window:
        return np.zeros(0, dtype=np.int64)
    n = (T - window) // step if "Q4" in quirks else (T - 1 - window) // step + 1
    return window + step * np.arange(n, dtype=np.int64)


def feature_names(model: Model, blocks: int | None = None, mode: str = "split") -> list[str]:
    """Spec §2: sorted sensor names when B > S, else ``signature-block{i}``; ``-avg``/``-der`` in split mode."""
    B = model.blocks if blocks is None else blocks
    S = model.n_sensors
    base = [model.sensors[i] for i in model.order] if B > S else [f"signature-block{i}" for i in range(min(B, S))]
    if mode == "split":
        return [f"{b}-avg" for b in base] + [f"{b}-der" for b in base]
    return list(base)


def norm_range(model: Model) -> np.ndarray:
    """The min-max denominator max − min + eps; where it is 0 (a constant sensor with eps 0, DCDB's convention),
    1, as DCDB's ``normalize`` does (the clipped value is then 0 either way)."""
    rng = model.fmax - model.fmin + model.eps
    return np.where(rng > 0, rng, 1.0)


def signatures(model: Model, X, *, window: int | None = None, step: int | None = None,
               blocks: int | None = None, mode: str = "split", scale: float | None = None,
               precision: str = "fp64", device: str = "cpu", quirks=None, ends=None,
               chunk_elems: int = 1 << 25, return_tensor: bool = False):
    """CS signatures of every window of ``X`` ((T, S) or (n, T, S); numpy or torch) at once.

    Returns (windows × 2nb) for ``mode='split'``, complex (windows × nb) for ``'complex'``, (windows × nb) for
    ``'real'``; with a batch, a leading n. ``ends`` overrides the window ends (sample indices ≥ W).
    """
    import torch

    W = model.window if window is None else int(window)
    st = model.step if step is None else int(step)
    B = model.blocks if blocks is None else int(blocks)
    sc = model.scale if scale is None else float(scale)
    q = model.quirks if quirks is None else Quirks.parse(quirks)
    dtype = torch.float64 if precision == "fp64" else torch.float32
    dev = torch.device(device)
    x = X if isinstance(X, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(X))
    squeeze = x.dim() == 2
    if squeeze:
        x = x.unsqueeze(0)
    n, T, S = x.shape
    e = np.asarray(window_ends(T, W, st, q) if ends is None else ends, dtype=np.int64)
    dcdb = model.convention == "dcdb"
    M = block_matrix(S, B, q, model.convention)
    Mpi = np.zeros_like(M)
    Mpi[:, model.order] = M  # M acts on sorted rows; M_π acts on the original sensor order
    Mt = torch.as_tensor(Mpi.T.copy(), dtype=dtype, device=dev)
    lo = torch.as_tensor(model.fmin, dtype=dtype, device=dev)
    rng = torch.as_tensor(norm_range(model), dtype=dtype, device=dev)
    nb = M.shape[0]
    avg = torch.empty(n, len(e), nb, dtype=dtype, device=dev)
    der = torch.empty(n, len(e), nb, dtype=dtype, device=dev)
    per = max(1, chunk_elems // max(1, n * S * max(1, st)))  # windows per chunk
    for c0 in range(0, len(e), per):
        ce = e[c0:c0 + per]
        t0, t1 = int(ce[0]) - W, int(ce[-1]) + 1
        xs = x[:, t0:t1].to(device=dev, dtype=dtype, non_blocking=True)
        N = ((xs - lo) / rng).clamp_(0.0, 1.0)
        Y = N @ Mt  # (n, t1−t0, nb)
        P = torch.zeros(n, Y.shape[1] + 1, nb, dtype=torch.float64, device=dev)
        torch.cumsum(Y, dim=1, dtype=torch.float64, out=P[:, 1:])
        rel = torch.as_tensor(ce - t0, device=dev)
        avg[:, c0:c0 + len(ce)] = ((P[:, rel + 1] - P[:, rel - W + 1]) / W).to(dtype)
        if not dcdb:
            der[:, c0:c0 + len(ce)] = (Y[:, rel] - Y[:, rel - W]) / W
        elif W > 1:  # DCDB: the W−1 differences inside the window
            der[:, c0:c0 + len(ce)] = (Y[:, rel] - Y[:, rel - W + 1]) / (W - 1)
        else:
            der[:, c0:c0 + len(ce)] = 0.0
    if sc != 1.0:
        avg *= sc
        der *= sc
    if mode == "split":
        out = torch.cat([avg, der], dim=2)
    elif mode == "complex":
        out = torch.complex(avg, der)
    elif mode == "real":
        out = avg
    else:
        raise ValueError(f"unknown mode {mode!r}")
    if squeeze:
        out = out[0]
    return out if return_tensor else out.cpu().numpy()


class Stream:
    """Streaming CS: push one raw sample (S values) at a time; a signature every ``step`` samples once W+1 exist.

    A ring buffer holds the last W+1 normalised, sorted rows; a float64 running sum of the last W rows is updated
    per sample and recomputed from the buffer every 65 536 samples, so rounding cannot accumulate.
    """

    RESYNC = 65536

    def __init__(self, model: Model, *, window: int | None = None, step: int | None = None,
                 blocks: int | None = None, mode: str = "split", scale: float | None = None):
        self.m = model
        self.W = model.window if window is None else int(window)
        self.step = model.step if step is None else int(step)
        B = model.blocks if blocks is None else int(blocks)
        self.M = block_matrix(model.n_sensors, B, model.quirks, model.convention)
        self.mode = mode
        self.scale = model.scale if scale is None else float(scale)
        self.buf = np.zeros((self.W + 1, model.n_sensors))
        self.sum = np.zeros(model.n_sensors)
        self.t = 0  # samples seen
        self.rng = norm_range(model)

    def push(self, row) -> "np.ndarray | None":
        """Add sample t; return the signature of the window ending at t when t = W + step·v, else None."""
        W = self.W
        r = np.clip((np.asarray(row, dtype=np.float64) - self.m.fmin) / self.rng, 0.0, 1.0)[self.m.order]
        t = self.t
        self.buf[t % (W + 1)] = r
        self.sum += r
        if t >= W:
            self.sum -= self.buf[(t - W) % (W + 1)]
        self.t += 1
        if t % self.RESYNC == 0 and t >= W:
            idx = [(t - k) % (W + 1) for k in range(W)]
            self.sum = self.buf[idx].sum(axis=0)
        if t < W or (t - W) % self.step:
            return None
        a = self.M @ (self.sum / W) * self.scale
        if self.m.convention != "dcdb":
            d = self.M @ ((r - self.buf[(t - W) % (W + 1)]) / W) * self.scale
        elif W > 1:  # DCDB: the W−1 differences inside the window
            d = self.M @ ((r - self.buf[(t - W + 1) % (W + 1)]) / (W - 1)) * self.scale
        else:
            d = np.zeros(self.M.shape[0])
        if self.mode == "split":
            return np.concatenate([a, d])
        if self.mode == "complex":
            return a + 1j * d
        return a

# ------------------------------------------------------------------------------------------- model files
# Our JSON (``wise-smooth/1``) and the DCDB Wintermute layout (export/import). Our JSON keeps min/max as
# full-precision floats (Python's shortest repr round-trips exactly). DCDB layout, from the authors' scripts:
# ``{"<S>": {"<k>": {"idx": "<original index>", "min": "<int>", "max": "<int>"}}}`` with k the sorted position and
# every value a string; sensors match by position. Q3 (reference) casts min/max with ``int()`` (truncation, so
# sensors in [0, 1] collapse); fixed writes ⌊min⌋ and ⌈max⌉ and warns when that widens a sensor's range by more
# than 1 %. Every JSON writer is strict: a non-finite min/max is refused before anything is written.
FORMAT = "wise-smooth/1"


def to_dict(m: Model) -> dict:
    """The model as our JSON document (``wise-smooth/1``)."""
    from wisecli.runtime.bench import versions

    info = dict(m.fit_info)
    info.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    info.setdefault("versions", {k: v for k, v in versions().items() if k in ("python", "wisecli", "numpy", "torch")})
    return {"format": FORMAT, "sensors": list(m.sensors), "order": [int(i) for i in m.order],
            "min": [float(v) for v in m.fmin], "max": [float(v) for v in m.fmax], "eps": m.eps,
            "blocks": m.blocks, "window": m.window, "step": m.step, "scale": m.scale, "quirks": m.quirks.name,
            "constant_sensors": list(m.constant_sensors), "convention": m.convention, "fit": info}


def check_finite(m: Model, source: str = "model") -> None:
    """A model with a non-finite min, max, eps or scale is refused (JSON has no NaN/inf, and such a model
    would normalise every window to NaN): an InputError naming the sensors, never a file with ``Infinity``."""
    bad = [m.sensors[i] for i in np.flatnonzero(~(np.isfinite(m.fmin) & np.isfinite(m.fmax)))]
    if bad:
        raise InputError(f"{source}: non-finite min/max for sensor(s) {', '.join(bad[:10])}",
                         hint="the data hold inf values: fix or blank those cells (or leave the sensors out "
                              "with --exclude)")
    for name, v in (("eps", m.eps), ("scale", m.scale)):
        if not math.isfinite(v):
            raise InputError(f"{source}: {name} is {v}", hint=f"give a finite --{name}")


def save(m: Model, path: Path) -> Path:
    """Write the model JSON atomically (strict JSON: a non-finite value is refused by ``check_finite``)."""
    from wisecli.runtime.io.atomic import write_json

    check_finite(m, str(path))
    return write_json(path, to_dict(m), indent=1)


def from_dict(d: dict, source: str = "model") -> Model:
    """A Model from our JSON document; anything else is an InputError naming ``source``."""
    if not isinstance(d, dict):
        raise InputError(f"{source}: not a model", hint="give a model.json written by `wise smooth fit`")
    if d.get("format") != FORMAT:
        if is_dcdb(d):
            raise InputError(f"{source}: a DCDB model, not ours", hint="convert it: wise smooth fit --import-dcdb")
        raise InputError(f"{source}: unknown model format {d.get('format')!r}",
                         hint=f"expected {FORMAT!r} from `wise smooth fit`")
    try:
        S = len(d["sensors"])
        order = np.asarray(d["order"], dtype=np.int64)
        fmin, fmax = np.asarray(d["min"], dtype=np.float64), np.asarray(d["max"], dtype=np.float64)
        if sorted(order.tolist()) != list(range(S)) or len(fmin) != S or len(fmax) != S:
            raise ValueError("inconsistent sizes")
        return Model(sensors=list(d["sensors"]), order=order, fmin=fmin, fmax=fmax, eps=float(d["eps"]),
                     blocks=int(d["blocks"]), window=int(d["window"]), step=int(d["step"]),
                     scale=float(d.get("scale", 1.0)), quirks=Quirks.parse(d.get("quirks", "fixed")),
                     constant_sensors=list(d.get("constant_sensors", [])), fit_info=dict(d.get("fit", {})),
                     convention=check_convention(d.get("convention", "scripts")))
    except InputError as exc:
        raise InputError(f"{source}: {exc.message}", hint="refit it with `wise smooth fit`") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{source}: broken model file ({exc})", hint="refit it with `wise smooth fit`") from None


def load(path: Path) -> Model:
    """Read a model.json written by ``fit`` (exit 2 for a missing, unreadable or foreign file)."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such model file", hint="fit one with `wise smooth fit ... -o model.json`") from None
    except IsADirectoryError:
        raise InputError(f"{path}: a folder, not a model file", hint="give the model.json written by `wise smooth fit`") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the model ({exc.strerror})", hint="check the path and its permissions") from None
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        raise InputError(f"{path}: unknown model format (not JSON)",
                         hint="give a model.json written by `wise smooth fit`") from None
    return from_dict(d, str(path))


def is_dcdb(d) -> bool:
    """Whether ``d`` looks like the DCDB layout ``{"<S>": {...}}``."""
    return isinstance(d, dict) and len(d) == 1 and next(iter(d)).isdigit() and isinstance(next(iter(d.values())), dict)


def to_dcdb(m: Model, warn=None) -> dict:
    """DCDB layout; Q3 reproduces the reference's int() cast."""
    entries = {}
    widened = []
    for k, i in enumerate(m.order):
        lo, hi = float(m.fmin[i]), float(m.fmax[i])
        if "Q3" in m.quirks:
            a, b = int(lo), int(hi)
        else:
            a, b = math.floor(lo), math.ceil(hi)
            if (b - a) > 1.01 * (hi - lo) and (b - a) - (hi - lo) > 0:
                widened.append(m.sensors[i])
        entries[str(k)] = {"idx": str(int(i)), "min": str(a), "max": str(b)}
    if widened and warn:
        warn(f"DCDB export rounds min/max to integers: range widened by more than 1% for {len(widened)} "
             f"sensor(s): {', '.join(widened[:5])}")
    return {str(m.n_sensors): entries}


def from_dcdb(d: dict, sensors: list[str] | None = None, source: str = "DCDB model", **defaults) -> Model:
    """A Model from the DCDB layout (sensors by position; names ``s0…`` unless given)."""
    if not is_dcdb(d):
        raise InputError(f"{source}: not a DCDB CS model", hint='expected {"<S>": {"<k>": {"idx", "min", "max"}}}')
    (S_txt, entries), = d.items()
    S = int(S_txt)
    try:
        order = np.empty(S, dtype=np.int64)
        fmin, fmax = np.empty(S), np.empty(S)
        for k in range(S):
            e = entries[str(k)]
            i = int(e["idx"])
            order[k], fmin[i], fmax[i] = i, float(e["min"]), float(e["max"])
        if sorted(order.tolist()) != list(range(S)):
            raise ValueError("idx values are not a permutation")
    except (KeyError, ValueError, TypeError) as exc:
        raise InputError(f"{source}: broken DCDB model ({exc})", hint="export it again") from None
    names = list(sensors) if sensors is not None else [f"s{i}" for i in range(S)]
    if len(names) != S:
        raise InputError(f"{source}: {S} sensors in the DCDB model, {len(names)} names given",
                         hint="DCDB models match sensors by position")
    return Model(sensors=names, order=order, fmin=fmin, fmax=fmax,
                 constant_sensors=[names[i] for i in range(S) if fmin[i] == fmax[i]],
                 fit_info={"imported": source}, **defaults)
