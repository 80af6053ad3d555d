"""The peers' side of `wise spin benchmark`: a plain NumPy Heun step with the J1–J3 + K_u stencil (the spec's
fallback peer when Spirit is not importable). Spirit's Python API (`pip install spirit`) is reported as missing
when it cannot be imported; driving it is not implemented yet (see the README).
"""

from __future__ import annotations

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
