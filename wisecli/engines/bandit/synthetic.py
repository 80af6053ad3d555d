"""Environments (spec §2.6, §4): the κ ↔ ‖θ*‖ mapping, arm sets, and the common random numbers.

Common random numbers: replicate r draws everything from numpy generators seeded by SeedSequence([seed, r]) (the
environment: θ* direction, arm sets, one uniform U_t per round) and SeedSequence([seed, r, 1 + i]) for the
algorithm with index i in `algorithm.ALGOS` (its first random arm, its Gaussian draws). So every algorithm sees
the same arms and the same noise (reward = 1{U_t < μ(x_tᵀθ*)}), replicate r's curve depends neither on R nor on
the algorithms run beside it, and a CPU and a CUDA run see identical inputs (drawn on the host in float64).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

ARM_SETS = ("fixed", "varying", "ball")
ENVS = ("synthetic", "breast-cancer", "wine", "digits")
KAPPA_MIN = 4 * math.cosh(0.5) ** 2
"""The smallest κ = 1/μ̇(S) with S ≥ 1 (‖θ*‖ = S − 1 ≥ 0): 4cosh²(½) ≈ 4.54."""


def s_from_kappa(kappa: float) -> float:
    """S with 1/μ̇(S) = κ: μ̇(S) = 1/(4cosh²(S/2)), so S = 2·arccosh(√κ/2)."""
    return 2 * math.acosh(math.sqrt(kappa) / 2)


def kappa_from_s(S: float) -> float:
    """κ = 1/μ̇(S) = 4cosh²(S/2)."""
    return 4 * math.cosh(S / 2) ** 2


def theta_norm_from_kappa(kappa: float) -> float:
    """‖θ*‖ = S − 1 for the reference's convention S = ‖θ*‖ + 1."""
    return s_from_kappa(kappa) - 1


def ball_points(rng: np.random.Generator, shape: tuple, d: int) -> np.ndarray:
    """Points uniform in the unit ball: Gaussian direction × U^{1/d} radius."""
    g = rng.standard_normal((*shape, d))
    g /= np.linalg.norm(g, axis=-1, keepdims=True)
    return g * rng.random((*shape, 1)) ** (1.0 / d)


@dataclass
class Env:
    """The tensors every algorithm shares: θ* (R, d); arms (R, K, d) for `fixed`, (R, T, K, d) for `varying`
    (None for `ball`); U (R, T); the best mean per round (R, T); the algorithms' random draws by name."""

    theta_star: torch.Tensor
    arms: torch.Tensor | None
    U: torch.Tensor
    best: torch.Tensor
    arm_set: str
    info: dict
    replicates: list[int]
    algo_rand: dict = field(default_factory=dict)

    def arms_at(self, t: int) -> torch.Tensor | None:
        """The arm set of round t (0-based)."""
        if self.arms is None:
            return None
        return self.arms if self.arm_set == "fixed" else self.arms[:, t]


def env_rng(seed: int, r: int) -> np.random.Generator:
    """Replicate r's environment generator."""
    return np.random.default_rng(np.random.SeedSequence([seed, r]))


def algo_rng(seed: int, r: int, algo_index: int) -> np.random.Generator:
    """Replicate r's generator for the algorithm with index `algo_index` in ALGOS."""
    return np.random.default_rng(np.random.SeedSequence([seed, r, 1 + algo_index]))


def make_env(*, dim: int, arms: int, theta_norm: float, S: float, arm_set: str, horizon: int, seed: int,
             replicates: list[int], theta_direction: str = "ones", pool: np.ndarray | None = None,
             pool_theta: np.ndarray | None = None, dtype=torch.float64, device="cpu", delta: float = 0.05,
             kappa: float | None = None) -> Env:
    """Draw the environment of each replicate in `replicates` (a list of replicate ids). With `pool` (N, d) the
    arms are K rows drawn without replacement every round (semi-synthetic, §4) and θ* = `pool_theta`."""
    d, K, T = dim, arms, horizon
    thetas, arm_list, Us = [], [], []
    for r in replicates:
        rng = env_rng(seed, r)
        if pool_theta is not None:
            th = np.asarray(pool_theta, dtype=np.float64)
        elif theta_direction == "random":
            g = rng.standard_normal(d)
            th = theta_norm * g / np.linalg.norm(g)
        else:
            th = theta_norm * np.ones(d) / math.sqrt(d)
        if pool is not None:
            idx = np.stack([rng.choice(len(pool), size=K, replace=False) for _ in range(T)])
            a = pool[idx]
        elif arm_set == "fixed":
            a = ball_points(rng, (K,), d)
        elif arm_set == "varying":
            a = ball_points(rng, (T, K), d)
        else:
            a = None
        thetas.append(th)
        arm_list.append(a)
        Us.append(rng.random(T))
    theta_star = torch.as_tensor(np.stack(thetas), dtype=dtype, device=device)
    U = torch.as_tensor(np.stack(Us), dtype=dtype, device=device)
    kind = "varying" if pool is not None else arm_set
    if kind == "ball":
        arms_t = None
        best_mean = torch.sigmoid(theta_star.norm(dim=-1))
        best = best_mean.unsqueeze(-1).expand(-1, T).contiguous()
        kstar = 1 / (best_mean * (1 - best_mean))
        kmax = kstar
    else:
        arms_t = torch.as_tensor(np.stack(arm_list), dtype=dtype, device=device)
        if kind == "fixed":
            z = torch.einsum("rkd,rd->rk", arms_t, theta_star)
            best_z = z.max(-1).values
            best = torch.sigmoid(best_z).unsqueeze(-1).expand(-1, T).contiguous()
            kmax = (1 / _dmu(z)).max(-1).values
        else:
            z = torch.einsum("rtkd,rd->rtk", arms_t, theta_star)
            best_z = z.max(-1).values
            best = torch.sigmoid(best_z)
            kmax = (1 / _dmu(z)).amax((-1, -2))
            best_z = best_z.mean(-1)
        kstar = 1 / _dmu(best_z) if kind == "fixed" else (1 / _dmu(z.max(-1).values)).mean(-1)
    info = {"kappa": kappa if kappa is not None else kappa_from_s(S), "S": S, "theta_norm": theta_norm,
            "kappa_star": kstar.cpu().tolist(), "kappa_arms_max": kmax.cpu().tolist()}
    return Env(theta_star=theta_star, arms=arms_t, U=U, best=best, arm_set=kind, info=info,
               replicates=list(replicates))


def _dmu(z: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(z)
    return s * (1 - s)


def algo_draws(*, algo_index: int, seed: int, replicates: list[int], arms: int, horizon: int, dim: int,
               dtype=torch.float64, device="cpu") -> dict:
    """The algorithm's random draws: `first_arm` (R,) uniform over all K arms (round 1 of OFULog-r) and
    `normal` (R, T, d) standard normals (TS and ball sampling)."""
    first, normal = [], []
    for r in replicates:
        rng = algo_rng(seed, r, algo_index)
        first.append(int(rng.integers(0, max(arms, 1))))
        normal.append(rng.standard_normal((horizon, dim)))
    return {"first_arm": torch.as_tensor(first, dtype=torch.long, device=device),
            "normal": torch.as_tensor(np.stack(normal), dtype=dtype, device=device)}
