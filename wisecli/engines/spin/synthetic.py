"""Initial spin states: the reference states of spec §2.2 (FM, Néel, 1Q, 2Q, 3Q), random states and the
rotational-domain wall of §2.4, as `(B, 3, L1, L2)` tensors of unit spins.

M-point signs: s_1 = (−1)^m, s_2 = (−1)^n, s_3 = (−1)^{m+n}. The wall lies along a2 (lines of constant m):
left half S = e_a s_a, right half S = e_b s_b. A wall along a1 or a1−a2 is the same wall along a2 with the mode
labels permuted by the lattice symmetry that maps that line onto a2 (a1 ↔ a2 mirror: s1 ↔ s2; the basis change
(a1, a1 − a2): s1 ↔ s3); the engine simulates it in that frame and says so in run.json (`frame`).
"""

from __future__ import annotations

import math

import torch

STATES = ("random", "fm", "1q", "2q", "3q", "neel", "wall", "file")
M_POINT = ("1q", "2q", "3q", "wall")
WALL_LINES = ("a2", "a1", "a1-a2")
WALL_MODE_MAP = {"a2": {1: 1, 2: 2, 3: 3}, "a1": {1: 2, 2: 1, 3: 3}, "a1-a2": {1: 3, 2: 2, 3: 1}}


def signs(L1: int, L2: int, device="cpu", dtype=torch.float64):
    """The three M-point sign patterns, shape (3, L1, L2)."""
    m = torch.arange(L1, device=device)[:, None]
    n = torch.arange(L2, device=device)[None, :]
    s1 = (1 - 2 * (m % 2)).expand(L1, L2)
    s2 = (1 - 2 * (n % 2)).expand(L1, L2)
    s3 = (1 - 2 * ((m + n) % 2))
    return torch.stack([s1, s2, s3]).to(dtype)


def reference(kind: str, L1: int, L2: int, *, axis=(0.0, 0.0, 1.0), device="cpu", dtype=torch.float64):
    """One reference state (3, L1, L2): fm (along `axis`), neel (120° in-plane), 1q, 2q, 3q."""
    s = signs(L1, L2, device, dtype)
    S = torch.zeros(3, L1, L2, device=device, dtype=dtype)
    if kind == "fm":
        a = torch.tensor(axis, device=device, dtype=dtype)
        S[:] = (a / a.norm())[:, None, None]
    elif kind == "neel":
        m = torch.arange(L1, device=device)[:, None]
        n = torch.arange(L2, device=device)[None, :]
        phi = (2 * math.pi / 3) * ((m - n) % 3).to(dtype)
        S[0], S[1] = torch.cos(phi), torch.sin(phi)
    elif kind in ("1q", "2q", "3q"):
        k = int(kind[0])
        for i in range(k):
            S[i] = s[i] / math.sqrt(k)
    else:
        raise ValueError(f"unknown reference state {kind}")
    return S


def random_state(B: int, L1: int, L2: int, *, generator=None, device="cpu", dtype=torch.float64):
    """B uniformly random unit-spin states."""
    S = torch.randn(B, 3, L1, L2, generator=generator, dtype=torch.float64).to(device=device, dtype=dtype)
    return S / S.norm(dim=1, keepdim=True)


def add_noise(S, sigma: float, *, generator=None, free=None):
    """Gaussian noise of std `sigma` on each component, renormalised; pinned sites (free = 0) untouched."""
    if sigma <= 0:
        return S
    noise = torch.randn(S.shape, generator=generator, dtype=torch.float64).to(S.device, S.dtype)
    if free is not None:
        noise = noise * free
    out = S + sigma * noise
    return out / out.norm(dim=1, keepdim=True)


def wall(L_perp: int, L_par: int, modes=(1, 2), *, e_a=(1.0, 0.0, 0.0), e_b=(0.0, 1.0, 0.0), device="cpu",
         dtype=torch.float64):
    """The wall set-up along a2: left half e_a s_a, right half e_b s_b; shape (3, L_perp, L_par)."""
    s = signs(L_perp, L_par, device, dtype)
    ea = torch.tensor(e_a, device=device, dtype=dtype)
    eb = torch.tensor(e_b, device=device, dtype=dtype)
    half = L_perp // 2
    S = torch.empty(3, L_perp, L_par, device=device, dtype=dtype)
    S[:, :half] = ea[:, None, None] * s[modes[0] - 1, :half]
    S[:, half:] = eb[:, None, None] * s[modes[1] - 1, half:]
    return S


def uniform_mode(L_perp: int, L_par: int, mode: int, e=(1.0, 0.0, 0.0), *, device="cpu", dtype=torch.float64):
    """The whole strip in one mode, S = e s_mode (the reference energies E_a, E_b of σ)."""
    s = signs(L_perp, L_par, device, dtype)[mode - 1]
    return torch.tensor(e, device=device, dtype=dtype)[:, None, None] * s


def pinned_rows(L_perp: int, L_par: int, rows: int, device="cpu"):
    """Mask (L_perp, L_par) with `rows` pinned rows of constant m at each end."""
    p = torch.zeros(L_perp, L_par, dtype=torch.bool, device=device)
    if rows > 0:
        p[:rows] = True
        p[-rows:] = True
    return p
