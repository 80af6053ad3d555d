"""The peers' side of `wise spin benchmark`: Spirit (`pip install spirit`, its Python API: hex2d lattice, three
exchange shells, uniaxial anisotropy, LLG Heun at the same dt and damping, single-threaded CPU) when it imports,
and a plain NumPy Heun step with the J1–J3 + K_u stencil (the spec's fallback peer).

Spirit prints its banner on stdout (fd 1) and may write log files into the working folder: every Spirit call runs
with fd 1 pointed at stderr, inside a temporary folder that is removed afterwards, so `--json` stays clean.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

import numpy as np

from .model import HBAR, SHELLS


def spirit_available() -> bool:
    """Whether Spirit's Python package imports."""
    try:
        import spirit  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True


class NumpyHeun:
    """Heun LLG for J1–J3 + uniaxial K_u on an L × L periodic lattice, float32, plain NumPy rolls."""

    def __init__(self, J, Ku, axis=(0.0, 0.0, 1.0), alpha=0.3, dt=0.0005):
        self.J = [np.float32(j) for j in J]
        self.Ku = np.float32(Ku)
        self.n = np.asarray(axis, np.float32)[:, None, None]
        self.alpha, self.dt = np.float32(alpha), np.float32(dt)

    def field(self, S):
        h = np.zeros_like(S)
        for s in range(3):
            for d in SHELLS[s + 1]:
                h += self.J[s] * (np.roll(S, (-d[0], -d[1]), (1, 2)) + np.roll(S, (d[0], d[1]), (1, 2)))
        h += 2 * self.Ku * (S * self.n).sum(0, keepdims=True) * self.n
        return h

    def rhs(self, S):
        h = self.field(S)
        sxh = np.cross(S, h, axis=0)
        return -(sxh + self.alpha * np.cross(S, sxh, axis=0)) / np.float32(HBAR * (1 + self.alpha ** 2))

    def step(self, S):
        f0 = self.rhs(S)
        S1 = S + self.dt * f0
        S1 /= np.linalg.norm(S1, axis=0, keepdims=True)
        out = S + np.float32(0.5) * self.dt * (f0 + self.rhs(S1))
        return out / np.linalg.norm(out, axis=0, keepdims=True)


@contextlib.contextmanager
def _quiet_in(folder):
    """Run with fd 1 on stderr and the working folder `folder` (Spirit's banner and logs stay off stdout)."""
    sys.stdout.flush()
    saved, cwd = os.dup(1), os.getcwd()
    os.dup2(2, 1)
    os.chdir(folder)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.chdir(cwd)


_SPIRIT_CFG = """bravais_lattice hex2d
n_basis_cells {L} {L} 1
boundary_conditions 1 1 0
hamiltonian heisenberg_neighbours
n_neigh_shells_exchange 3
jij {J1} {J2} {J3}
n_neigh_shells_dmi 0
anisotropy_magnitude {Ku}
anisotropy_normal 0.0 0.0 1.0
mu_s 3.0
external_field_magnitude 0.0
external_field_normal 0 0 1
ddi_method 0
log_to_file 0
llg_output_any 0
llg_output_initial 0
llg_output_final 0
llg_dt {dt}
llg_damping {alpha}
llg_temperature 0
"""


class SpiritHeun:
    """Spirit's LLG Heun on an L × L periodic hex2d lattice with J1–J3 and K_u (dt in ps, as Spirit's llg_dt)."""

    def __init__(self, L, J, Ku, dt=0.0005, alpha=0.3):
        from spirit import configuration, state

        self._tmp = tempfile.TemporaryDirectory()
        with _quiet_in(self._tmp.name):
            with open("peer.cfg", "w") as fh:
                fh.write(_SPIRIT_CFG.format(L=L, J1=J[0], J2=J[1], J3=J[2], Ku=Ku, dt=dt, alpha=alpha))
            self.p = state.setup("peer.cfg", quiet=True)
            configuration.random(self.p)
        self.L = L

    def run(self, steps: int) -> None:
        """`steps` Heun steps."""
        from spirit import simulation

        with _quiet_in(self._tmp.name):
            simulation.start(self.p, simulation.METHOD_LLG, simulation.SOLVER_HEUN, n_iterations=int(steps),
                             n_iterations_log=10 ** 9)

    def close(self) -> None:
        """Free Spirit's state and the temporary folder."""
        from spirit import state

        with _quiet_in(self._tmp.name):
            state.delete(self.p)
        self._tmp.cleanup()
