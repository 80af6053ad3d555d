"""Hamiltonian and field of `wise spin` against oracles: the analytic reference-state energies of spec §2.2, an
explicit neighbour-loop energy, central finite differences, and the two field implementations against each other."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wisecli.engines.spin.model import NN_ALL, RHOMBI, SHELLS, TRIANGLES, Hamiltonian, Lattice, Params, cart
from wisecli.engines.spin.synthetic import pinned_rows, random_state, reference

# §2.2 table: per-site coefficient of each parameter
TABLE = {  # J1, J2, J3, B1, K1, Y1 triangle, Y1 bond-pairs, Ku
    "fm": (-3, -3, -3, -3, -6, -12, -30, -1), "neel": (1.5, -3, 1.5, -0.75, -6, -3, -7.5, 0),
    "1q": (1, 1, -3, -3, -6, 4, 2, 0), "2q": (1, 1, -3, -1, -2, 0, -2, 0),
    "3q": (1, 1, -3, -1 / 3, -2 / 3, -4 / 3, -10 / 3, -1 / 3),
}
UNIT = [("J1", {"J": (1, 0, 0)}, 0), ("J2", {"J": (0, 1, 0)}, 1), ("J3", {"J": (0, 0, 1)}, 2), ("B1", {"B1": 1}, 3),
        ("K1", {"K1": 1}, 4), ("Y1t", {"Y1": 1, "three_site": "triangle"}, 5),
        ("Y1b", {"Y1": 1, "three_site": "bond-pairs"}, 6), ("Ku", {"Ku": 1}, 7)]


@pytest.mark.parametrize("state", list(TABLE))
def test_reference_energies_per_term(state):
    L = 12
    S = reference(state, L, L)[None]
    for name, kw, col in UNIT:
        ham = Hamiltonian(Lattice(L, L), Params(**kw))
        e = float(ham.energy(S)[0]) / L ** 2
        assert abs(e - TABLE[state][col]) < 1e-12, (state, name, e)  # fp64 sums of ±1 products: exact to rounding


@pytest.mark.parametrize("three_site", ["triangle", "bond-pairs"])
def test_m_point_splitting_random_parameters(three_site):
    rng = np.random.default_rng(1)
    L = 12
    states = torch.stack([reference(k, L, L) for k in ("1q", "2q", "3q")])
    for _ in range(5):
        J = tuple(rng.normal(0, 5, 3))
        B1, K1, Y1 = rng.normal(0, 1, 3)
        ham = Hamiltonian(Lattice(L, L), Params(J=J, B1=B1, K1=K1, Y1=Y1, three_site=three_site), batch=3)
        e = ham.energy(states) / L ** 2
        delta = B1 + 2 * K1 - 2 * Y1
        assert abs(float(e[1] - e[0]) - 2 * delta) < 1e-10
        assert abs(float(e[2] - e[0]) - 8 * delta / 3) < 1e-10


def loop_energy(S: np.ndarray, p: Params, boundary) -> float:
    """The Hamiltonian written as plain loops over sites and explicit neighbour lists (the oracle)."""
    _, L1, L2 = S.shape

    def site(m, n):
        if boundary[0] == "open" and not 0 <= m < L1:
            return None
        if boundary[1] == "open" and not 0 <= n < L2:
            return None
        return S[:, m % L1, n % L2]

    E = 0.0
    for m in range(L1):
        for n in range(L2):
            si = S[:, m, n]
            for s in range(3):
                for d in SHELLS[s + 1]:
                    sj = site(m + d[0], n + d[1])
                    if sj is not None:
                        E -= p.J[s] * si @ sj
                        if s == 0:
                            E -= p.B1 * (si @ sj) ** 2
                            x, y = cart(d)
                            r = math.hypot(x, y)
                            E -= p.D * np.array([-y / r, x / r, 0.0]) @ np.cross(si, sj)
            for dj, dk, dl in RHOMBI:
                v = [site(m + d[0], n + d[1]) for d in (dj, dk, dl)]
                if all(x is not None for x in v):
                    j, k, l_ = v
                    E -= 2 * p.K1 * ((si @ j) * (k @ l_) + (si @ l_) * (j @ k) - (si @ k) * (j @ l_))
            if p.three_site == "triangle":
                for dj, dk in TRIANGLES:
                    j, k = site(m + dj[0], n + dj[1]), site(m + dk[0], n + dk[1])
                    if j is not None and k is not None:
                        E -= 2 * p.Y1 * ((si @ j) * (j @ k) + (j @ si) * (si @ k) + (si @ k) * (k @ j))
            else:
                nbs = [site(m + d[0], n + d[1]) for d in NN_ALL]
                nbs = [x for x in nbs if x is not None]
                for a in range(len(nbs)):
                    for b in range(a + 1, len(nbs)):
                        E -= 2 * p.Y1 * (si @ nbs[a]) * (si @ nbs[b])
            ax = np.asarray(p.axis) / np.linalg.norm(p.axis)
            E -= p.Ku * (si @ ax) ** 2
            E -= p.mu_s * 0.05788381806 * np.asarray(p.B_T) @ si
    return E


PARAMS = dict(J=(-20.0, -3.0, 1.0), B1=0.6, K1=-0.2, Y1=0.05, Ku=0.3, axis=(0.2, 0.3, 1.0), B_T=(0.3, -1.0, 2.0), D=0.7)


@pytest.mark.parametrize("three_site", ["triangle", "bond-pairs"])
@pytest.mark.parametrize("boundary", [("periodic", "periodic"), ("open", "periodic"), ("open", "open")])
def test_rolls_match_neighbour_loop(three_site, boundary):
    p = Params(**PARAMS, three_site=three_site)
    S = random_state(1, 6, 6, generator=torch.Generator().manual_seed(3))
    e = float(Hamiltonian(Lattice(6, 6, boundary), p).energy(S)[0])
    assert abs(e - loop_energy(S[0].numpy(), p, boundary)) < 1e-10 * max(1.0, abs(e))


@pytest.mark.parametrize("three_site", ["triangle", "bond-pairs"])
@pytest.mark.parametrize("boundary", [("periodic", "periodic"), ("open", "periodic"), ("periodic", "open")])
def test_hand_field_equals_autograd_field(three_site, boundary):
    ps = [Params(**PARAMS, three_site=three_site), Params(J=(1.0, 2.0, 3.0), B1=-1.0, K1=0.5, Y1=-0.3,
                                                          three_site=three_site)]
    lat = Lattice(8, 6, boundary, pinned_rows(8, 6, 1))
    ham = Hamiltonian(lat, ps)
    S = random_state(2, 8, 6, generator=torch.Generator().manual_seed(4))
    diff = (ham.field(S) - ham.field_autograd(S)).abs().max()
    assert float(diff) < 1e-10  # fields are O(100) meV; fp64 rounding of O(100) terms is ~1e-13


@pytest.mark.parametrize("three_site", ["triangle", "bond-pairs"])
def test_field_is_minus_energy_gradient(three_site):
    p = Params(**PARAMS, three_site=three_site)
    ham = Hamiltonian(Lattice(6, 6, ("open", "periodic")), p)
    S = random_state(1, 6, 6, generator=torch.Generator().manual_seed(5))
    h = ham.field(S)
    eps = 1e-5
    rng = np.random.default_rng(0)
    for _ in range(12):
        c, m, n = int(rng.integers(3)), int(rng.integers(6)), int(rng.integers(6))
        Sp, Sm = S.clone(), S.clone()
        Sp[0, c, m, n] += eps
        Sm[0, c, m, n] -= eps
        fd = -(float(ham.energy(Sp)[0]) - float(ham.energy(Sm)[0])) / (2 * eps)
        # central differences: truncation O(eps²·E''') ~ 1e-9, rounding ~ 1e-16·|E|/eps ~ 1e-9
        assert abs(fd - float(h[0, c, m, n])) < 1e-6


def test_torque_zero_on_pinned_sites():
    from wisecli.engines.spin.algorithm import heun_step, llg_rhs

    lat = Lattice(16, 4, ("open", "periodic"), pinned_rows(16, 4, 2))
    ham = Hamiltonian(lat, Params(**PARAMS))
    S = random_state(1, 16, 4, generator=torch.Generator().manual_seed(6))
    f = llg_rhs(S, ham.field(S), 0.3, lat.free)
    assert float(f[..., lat.pinned].abs().max()) == 0.0
    assert float(f[..., ~lat.pinned].abs().max()) > 1.0
    S2 = heun_step(ham, S, 0.0005, 0.3)
    assert torch.equal(S2[..., lat.pinned], S[..., lat.pinned])
    tq = torch.cross(S, ham.field(S), dim=1).norm(dim=1) * lat.free
    assert float(tq[..., lat.pinned].max()) == 0.0
