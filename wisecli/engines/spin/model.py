"""The lattice and the Hamiltonian of `wise spin`: classical unit spins on a triangular monolayer.

Spins are a `(B, 3, L1, L2)` tensor (B systems of one lattice); site (m, n) sits at r = m·a1 + n·a2 with
a1 = a(1, 0), a2 = a(½, √3/2) (axial coordinates; axis -2 is m, axis -1 is n). Every term is a fixed set of
`torch.roll` shifts and elementwise products; an open axis zeroes, with a site mask, every pair, rhombus or
triangle that crosses its edge (so a roll's wrap-around never counts).

E = − Σ_s J_s Σ_⟨ij⟩s S_i·S_j − B1 Σ_⟨ij⟩1 (S_i·S_j)²
    − 2K1 Σ_rhombi [(S_i·S_j)(S_k·S_l) + (S_i·S_l)(S_j·S_k) − (S_i·S_k)(S_j·S_l)]
    − 2Y1 Σ_triangles [(S_i·S_j)(S_j·S_k) + (S_j·S_i)(S_i·S_k) + (S_i·S_k)(S_k·S_j)]     (three_site="triangle")
    or − 2Y1 Σ_i Σ_{b<b'} (S_i·S_b)(S_i·S_b')  over the 15 pairs of NN bonds at i           (three_site="bond-pairs")
    − K_u Σ_i (S_i·n̂)² − μ_s μ_B Σ_i B·S_i − Σ_⟨ij⟩1 D_ij·(S_i×S_j)

each pair, rhombus and triangle counted once; meV. DMI (off by default, D = 0) is interfacial, our choice where
the spec names none: D_ij = D (ẑ × r̂_ij) for NN bonds, r̂_ij the in-plane unit vector from i to j.

The field h = −∂E/∂S comes two ways that must agree: `field_autograd` (autograd of `energy`, the definition) and
`field` (the hand-written stencil: each cluster's gradient with respect to each of its vertices, evaluated at the
cluster's origin and rolled back onto the vertex). Parameters are per system (shape (B,)), so a parameter sweep is
one batched run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field as dfield

import torch

MU_B = 0.05788381806  # meV / T
HBAR = 0.6582119569  # meV · ps
K_B = 0.08617333262  # meV / K

SHELLS = {1: ((1, 0), (0, 1), (-1, 1)), 2: ((1, 1), (2, -1), (-1, 2)), 3: ((2, 0), (0, 2), (-2, 2))}
RHOMBI = (((1, 0), (1, 1), (0, 1)), ((0, -1), (1, -2), (1, -1)), ((-1, 1), (-2, 1), (-1, 0)))
TRIANGLES = (((1, 0), (0, 1)), ((1, 0), (1, -1)))
NN_ALL = SHELLS[1] + tuple((-a, -b) for a, b in SHELLS[1])
TERMS = ("J1", "J2", "J3", "B1", "K1", "Y1", "Ku", "zeeman", "D")
THREE_SITE = ("triangle", "bond-pairs")


def cart(d: tuple[int, int]) -> tuple[float, float]:
    """The in-plane Cartesian vector (units of a) of an axial offset."""
    return d[0] + 0.5 * d[1], math.sqrt(3) / 2 * d[1]


class Lattice:
    """An L1 × L2 triangular lattice with a boundary per axis (`periodic` or `open`) and a pinned-site mask."""

    def __init__(self, L1: int, L2: int, boundary=("periodic", "periodic"), pinned=None, *, device="cpu",
                 dtype=torch.float64):
        self.L1, self.L2 = int(L1), int(L2)
        self.boundary = tuple(boundary)
        self.device, self.dtype = torch.device(device), dtype
        self.pinned = (torch.zeros(self.L1, self.L2, dtype=torch.bool, device=self.device) if pinned is None
                       else torch.as_tensor(pinned, dtype=torch.bool, device=self.device))
        self.free = (~self.pinned).to(dtype)
        self._inside: dict = {}

    @property
    def n_sites(self) -> int:
        return self.L1 * self.L2

    def to(self, device=None, dtype=None) -> "Lattice":
        """A copy on another device or dtype."""
        return Lattice(self.L1, self.L2, self.boundary, self.pinned.to(device or self.device),
                       device=device or self.device, dtype=dtype or self.dtype)

    def inside(self, d: tuple[int, int]):
        """Mask (L1, L2) of sites i whose neighbour i + d exists (None when every one does: periodic)."""
        if d in self._inside:
            return self._inside[d]
        mask = None
        for axis, (L, b) in enumerate(zip((self.L1, self.L2), self.boundary)):
            if b == "open" and d[axis] != 0:
                idx = torch.arange(L, device=self.device) + d[axis]
                ok = ((idx >= 0) & (idx < L)).to(self.dtype)
                ok = ok[:, None] if axis == 0 else ok[None, :]
                mask = ok if mask is None else mask * ok
        if mask is not None:
            mask = mask.expand(self.L1, self.L2).contiguous()
        self._inside[d] = mask
        return mask

    def cluster(self, *offsets):
        """Mask of origins whose whole cluster (origin plus `offsets`) exists; None when all do."""
        mask = None
        for d in offsets:
            m = self.inside(d)
            if m is not None:
                mask = m if mask is None else mask * m
        return mask


def nb(x, d):
    """The value at i + d for every site i (periodic roll; open edges are masked by the caller)."""
    return torch.roll(x, shifts=(-d[0], -d[1]), dims=(-2, -1))


_nb = nb


def back(x, d):
    """Move a value computed at the origin i onto site i + d (the inverse of `nb`)."""
    return torch.roll(x, shifts=(d[0], d[1]), dims=(-2, -1))


def dot(a, b):
    return (a * b).sum(-3)


def _masked(x, mask):
    return x if mask is None else x * mask


def _sum(x):
    return x.sum((-2, -1))


@dataclass
class Params:
    """Hamiltonian parameters (meV, T, μ_B); every scalar may be a list with one value per system."""

    J: tuple = (0.0, 0.0, 0.0)
    B1: object = 0.0
    K1: object = 0.0
    Y1: object = 0.0
    Ku: object = 0.0
    axis: tuple = (0.0, 0.0, 1.0)
    mu_s: object = 3.0
    B_T: tuple = (0.0, 0.0, 0.0)
    D: object = 0.0
    three_site: str = "triangle"
    extra: dict = dfield(default_factory=dict)

    def delta(self):
        """Δ = B1 + 2K1 − 2Y1: the higher-order splitting of the M-point states (§2.2)."""
        return float(self.B1) + 2 * float(self.K1) - 2 * float(self.Y1)


class Hamiltonian:
    """E(S) per system, its terms, and the field, for one lattice and B parameter sets."""

    def __init__(self, lattice: Lattice, params, batch: int = 1):
        self.lat = lattice
        self.params = params if isinstance(params, (list, tuple)) else [params] * batch
        self.B = len(self.params)
        if any(p.three_site not in THREE_SITE for p in self.params):
            raise ValueError("three_site must be triangle or bond-pairs")
        if len({p.three_site for p in self.params}) > 1:
            raise ValueError("one three_site convention per batch")
        self.three_site = self.params[0].three_site
        dev, dt = lattice.device, lattice.dtype

        def col(get):
            return torch.tensor([float(get(p)) for p in self.params], device=dev, dtype=dt)

        self.J = [col(lambda p, s=s: p.J[s]) for s in range(3)]
        self.B1, self.K1, self.Y1, self.Ku = col(lambda p: p.B1), col(lambda p: p.K1), col(lambda p: p.Y1), col(lambda p: p.Ku)
        self.D = col(lambda p: p.D)
        axis = torch.tensor([list(map(float, p.axis)) for p in self.params], device=dev, dtype=dt)
        self.axis = axis / axis.norm(dim=1, keepdim=True).clamp_min(1e-300)
        self.zeeman = torch.tensor([[float(p.mu_s) * MU_B * float(b) for b in p.B_T] for p in self.params],
                                   device=dev, dtype=dt)  # μ_s μ_B B, meV
        act = lambda t: bool((t != 0).any())  # noqa: E731 - which terms to evaluate (decided once, on the host)
        self.active = {"J1": act(self.J[0]), "J2": act(self.J[1]), "J3": act(self.J[2]), "B1": act(self.B1),
                       "K1": act(self.K1), "Y1": act(self.Y1), "Ku": act(self.Ku), "zeeman": act(self.zeeman),
                       "D": act(self.D)}
        self._dmi = []
        for d in SHELLS[1]:
            x, y = cart(d)
            r = math.hypot(x, y)
            self._dmi.append((d, torch.tensor([-y / r, x / r, 0.0], device=dev, dtype=dt)))  # ẑ × r̂

    def to(self, device=None, dtype=None) -> "Hamiltonian":
        """The same Hamiltonian on another device or dtype."""
        return Hamiltonian(self.lat.to(device, dtype), self.params)

    @staticmethod
    def _c(t):
        return t[:, None, None]

    @staticmethod
    def _v(t):
        return t[:, :, None, None]

    # ---------------------------------------------------------------------------------------------- energy
    def energy_terms(self, S, all_terms: bool = False) -> dict:
        """Each term's energy, shape (B,), meV (terms whose parameters are all zero are left out unless
        `all_terms`)."""
        lat, c, out = self.lat, self._c, {}
        on = (lambda k: True) if all_terms else (lambda k: self.active[k])  # noqa: E731
        for s in range(3):
            if on(f"J{s + 1}"):
                e = sum(_sum(_masked(dot(S, nb(S, d)), lat.inside(d))) for d in SHELLS[s + 1])
                out[f"J{s + 1}"] = -self.J[s] * e
        if on("B1"):
            e = sum(_sum(_masked(dot(S, nb(S, d)) ** 2, lat.inside(d))) for d in SHELLS[1])
            out["B1"] = -self.B1 * e
        if on("K1"):
            e = 0
            for dj, dk, dl in RHOMBI:
                Sj, Sk, Sl = nb(S, dj), nb(S, dk), nb(S, dl)
                q = dot(S, Sj) * dot(Sk, Sl) + dot(S, Sl) * dot(Sj, Sk) - dot(S, Sk) * dot(Sj, Sl)
                e = e + _sum(_masked(q, lat.cluster(dj, dk, dl)))
            out["K1"] = -2 * self.K1 * e
        if on("Y1"):
            e = 0
            if self.three_site == "triangle":
                for dj, dk in TRIANGLES:
                    Sj, Sk = nb(S, dj), nb(S, dk)
                    a, b, g = dot(S, Sj), dot(Sj, Sk), dot(S, Sk)
                    e = e + _sum(_masked(a * b + a * g + g * b, lat.cluster(dj, dk)))
            else:
                ds = [_masked(dot(S, nb(S, d)), lat.inside(d)) for d in NN_ALL]
                v = sum(ds)
                e = _sum((v * v - sum(d * d for d in ds)) / 2)
            out["Y1"] = -2 * self.Y1 * e
        if on("Ku"):
            out["Ku"] = -self.Ku * _sum((S * self._v(self.axis)).sum(-3) ** 2)
        if on("zeeman"):
            out["zeeman"] = -_sum((S * self._v(self.zeeman)).sum(-3))
        if on("D"):
            e = 0
            for d, dvec in self._dmi:
                cr = torch.cross(S, nb(S, d), dim=-3)
                e = e + _sum(_masked((cr * dvec[None, :, None, None]).sum(-3), lat.inside(d)))
            out["D"] = -self.D * e
        if not out:
            out["J1"] = S.new_zeros(S.shape[0])
        return out

    def energy(self, S):
        """Total energy per system, shape (B,), meV."""
        return sum(self.energy_terms(S).values())

    def field_autograd(self, S):
        """h = −∂E/∂S by autograd of `energy` (exactly consistent with it)."""
        with torch.enable_grad():
            x = S.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.energy(x).sum(), x)
        return -g

    # ---------------------------------------------------------------------------------------------- field
    def field(self, S):
        """h = −∂E/∂S by the hand-written stencil (the fast path; equal to `field_autograd`)."""
        lat, c, v = self.lat, self._c, self._v
        g = torch.zeros_like(S)  # the gradient ∂E/∂S
        memo: dict = {}

        def nb(x, d):  # S at i + d, each shift rolled once per call  # noqa: F811
            if x is not S:
                return _nb(x, d)
            if d not in memo:
                memo[d] = _nb(S, d)
            return memo[d]

        if self.active["J1"] or self.active["J2"] or self.active["J3"]:
            for s in range(3):
                if not self.active[f"J{s + 1}"]:
                    continue
                acc = 0
                for d in SHELLS[s + 1] + tuple((-a, -b) for a, b in SHELLS[s + 1]):
                    m = lat.inside(d)
                    acc = acc + (nb(S, d) if m is None else nb(S, d) * m)
                g = g - c(self.J[s])[:, None] * acc
        if self.active["B1"]:
            acc = 0
            for d in NN_ALL:
                Sj = nb(S, d)
                acc = acc + _masked(dot(S, Sj), lat.inside(d))[:, None] * Sj
            g = g - 2 * c(self.B1)[:, None] * acc
        if self.active["K1"]:
            k = -2 * c(self.K1)
            for dj, dk, dl in RHOMBI:
                Sj, Sk, Sl = nb(S, dj), nb(S, dk), nb(S, dl)
                m = lat.cluster(dj, dk, dl)
                ij, ik, il = dot(S, Sj), dot(S, Sk), dot(S, Sl)
                jk, jl, kl = dot(Sj, Sk), dot(Sj, Sl), dot(Sk, Sl)
                w = k if m is None else k * m
                u = lambda x: (w * x)[:, None]  # noqa: E731
                g = g + u(kl) * Sj + u(jk) * Sl - u(jl) * Sk
                g = g + back(u(kl) * S + u(il) * Sk - u(ik) * Sl, dj)
                g = g + back(u(ij) * Sl + u(il) * Sj - u(jl) * S, dk)
                g = g + back(u(ij) * Sk + u(jk) * S - u(ik) * Sj, dl)
        if self.active["Y1"]:
            k = -2 * c(self.Y1)
            if self.three_site == "triangle":
                for dj, dk in TRIANGLES:
                    Sj, Sk = nb(S, dj), nb(S, dk)
                    m = lat.cluster(dj, dk)
                    a, b, gg = dot(S, Sj), dot(Sj, Sk), dot(S, Sk)
                    w = k if m is None else k * m
                    u = lambda x: (w * x)[:, None]  # noqa: E731
                    g = g + u(b + gg) * Sj + u(a + b) * Sk
                    g = g + back(u(b + gg) * S + u(a + gg) * Sk, dj)
                    g = g + back(u(a + gg) * Sj + u(a + b) * S, dk)
            else:
                Ss = [nb(S, d) for d in NN_ALL]
                ds = [_masked(dot(S, Sj), lat.inside(d)) for d, Sj in zip(NN_ALL, Ss)]
                vsum = sum(ds)
                for d, Sj, db in zip(NN_ALL, Ss, ds):
                    m = lat.inside(d)
                    w = k * (vsum - db) if m is None else k * (vsum - db) * m
                    g = g + w[:, None] * Sj + back(w[:, None] * S, d)
        if self.active["Ku"]:
            n = v(self.axis)
            g = g - 2 * c(self.Ku)[:, None] * (S * n).sum(-3, keepdim=True) * n
        if self.active["zeeman"]:
            g = g - v(self.zeeman)
        if self.active["D"]:
            for d, dvec in self._dmi:
                m = lat.inside(d)
                w = -c(self.D)[:, None] if m is None else -c(self.D)[:, None] * m[None, None]
                dv = dvec[None, :, None, None].expand_as(S)
                g = g + w * torch.cross(nb(S, d), dv, dim=-3)
                g = g + back(w * torch.cross(dv, S, dim=-3), d)
        return -g

    def torque(self, S, h=None):
        """max_i |S_i × h_i| over free sites, per system (B,)."""
        h = self.field(S) if h is None else h
        t = torch.cross(S, h, dim=-3).norm(dim=-3) * self.lat.free
        return t.flatten(1).amax(1)
