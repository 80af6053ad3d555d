"""LLG dynamics and energy minimisation for `wise spin` (spec §2.3).

LLG, time in ps: dS/dt = −[S × h + α S × (S × h)] / (ħ(1 + α²)), h = −∂E/∂S in meV. Pinned spins keep their
value (their torque is zeroed).

- `heun`: predictor–corrector, renormalised after each stage (default, T = 0 only).
- `sib`: the semi-implicit midpoint scheme of Mentink et al. (J. Phys.: Condens. Matter 22, 176001 (2010)):
  written as dS/dt = S × A, A = −(h' + α S × h')/(ħ(1+α²)), h' = h + ξ, each stage is the exact Cayley rotation
  of S_n with the step's A (first at S_n, then at the predicted midpoint), so |S| = 1 by construction.
  Temperature: ξ Gaussian, constant over the step, ⟨ξ_a ξ_b⟩ = 2 α k_B T ħ / dt δ_ab per site, the
  fluctuation–dissipation variance of the Gilbert equation in these units **[reconstructed]** (μ_s cancels
  because h is an energy); the stationary state of a free spin is the Langevin magnetisation (tested).
- Minimisation: `lbfgs` on unconstrained v with S = v/|v| (history 50, strong Wolfe line search; pinned sites
  are not variables), restarted from the renormalised v until max|S × h| < max_torque; `damped`: LLG with
  α = 1 and no precession term (a relaxation fallback).
- Time-step check: ω_max = max_i|h_i|/ħ over the initial state and a random state of the same size; the run is
  refused when ω_max·dt > 0.2 (`stability` returns the number; the api refuses).
"""

from __future__ import annotations

import torch

from .model import HBAR, K_B

INTEGRATORS = ("heun", "sib")
MINIMIZERS = ("lbfgs", "damped")


def _cross(a, b):
    return torch.cross(a, b, dim=-3)


def _unit(S):
    return S / S.norm(dim=-3, keepdim=True)


def llg_rhs(S, h, alpha, free):
    """dS/dt of the LLG equation (ps⁻¹), zero on pinned sites; `alpha` a tensor (B,) or a float."""
    a = alpha[:, None, None, None] if torch.is_tensor(alpha) else alpha
    sxh = _cross(S, h)
    return -(sxh + a * _cross(S, sxh)) / (HBAR * (1 + a * a)) * free


def heun_step(ham, S, dt, alpha):
    """One Heun step (predictor, corrector, renormalised after each)."""
    free = ham.lat.free
    f0 = llg_rhs(S, ham.field(S), alpha, free)
    S1 = _unit(S + dt * f0)
    f1 = llg_rhs(S1, ham.field(S1), alpha, free)
    return torch.where(ham.lat.pinned, S, _unit(S + 0.5 * dt * (f0 + f1)))


def cayley(S, a):
    """The x' solving x' = x + a × (x + x') (a rotation of x, |x'| = |x|)."""
    a2 = (a * a).sum(-3, keepdim=True)
    ax = (a * S).sum(-3, keepdim=True)
    return ((1 - a2) * S + 2 * _cross(a, S) + 2 * ax * a) / (1 + a2)


def _A(S, h, alpha):
    a = alpha[:, None, None, None] if torch.is_tensor(alpha) else alpha
    return -(h + a * _cross(S, h)) / (HBAR * (1 + a * a))


def sib_step(ham, S, dt, alpha, noise=None):
    """One semi-implicit (SIB) step; `noise` is the stochastic field ξ (meV) for this step, or None."""
    free = ham.lat.free
    h = ham.field(S)
    if noise is not None:
        h = h + noise
    A = _A(S, h, alpha) * free
    Sp = cayley(S, -0.5 * dt * A)
    mid = _unit(0.5 * (S + Sp))
    h = ham.field(mid)
    if noise is not None:
        h = h + noise
    A = _A(mid, h, alpha) * free
    return torch.where(ham.lat.pinned, S, cayley(S, -0.5 * dt * A))


def noise_sigma(alpha, temperature_K, dt):
    """Std of each component of ξ (meV) for one step of length dt (ps): sqrt(2 α k_B T ħ / dt)."""
    return (2 * alpha * K_B * temperature_K * HBAR / dt) ** 0.5


def stability(ham, S, dt, generator=None) -> float:
    """ω_max·dt with ω_max = max_i |h_i|/ħ over `S` and a random state of the same size (§2.3)."""
    from .synthetic import random_state

    R = random_state(S.shape[0], S.shape[-2], S.shape[-1], generator=generator, device=S.device, dtype=S.dtype)
    hmax = max(float(ham.field(S).norm(dim=-3).max()), float(ham.field(R).norm(dim=-3).max()))
    return hmax / HBAR * dt


def damped_step(ham, S, dt):
    """One step of the pure-damping flow dS/dt = −S × (S × h)/ħ (α = 1, no precession), Heun."""
    free = ham.lat.free

    def f(X):
        h = ham.field(X)
        return -_cross(X, _cross(X, h)) / HBAR * free

    f0 = f(S)
    S1 = _unit(S + dt * f0)
    return _unit(S + 0.5 * dt * (f0 + f(S1)))


def minimize(ham, S, *, max_torque: float = 1e-6, max_iter: int = 20000, method: str = "lbfgs",
             history: int = 50, dt: float = 0.002, callback=None):
    """Relax S (B, 3, L1, L2) to a local energy minimum: returns (S, iterations, max torque (B,) tensor).

    `lbfgs` minimises the sum of the B systems' energies over v (S = v/|v|, free sites only) with torch's L-BFGS
    (strong Wolfe), in rounds of up to 500 iterations that restart from the renormalised spins, until every
    system's max |S × h| is below `max_torque` (meV) or `max_iter` iterations are spent. `damped` integrates the
    damping-only flow with Heun at `dt` (ps). `callback(S, it)` is called after each round (lbfgs) or every 500
    steps (damped)."""
    free = ham.lat.free
    pinned = ham.lat.pinned
    S = _unit(S.detach().clone())
    it = 0
    if method == "damped":
        while it < max_iter:
            for _ in range(min(500, max_iter - it)):
                S = damped_step(ham, S, dt)
                it += 1
            tq = ham.torque(S)
            if callback is not None:
                callback(S, it)
            if float(tq.max()) < max_torque:
                break
        return S, it, ham.torque(S)
    return _lbfgs(ham, S, max_torque=max_torque, max_iter=max_iter, history=history, callback=callback)


def _bdot(a, b):
    return (a * b).sum((1, 2, 3))


def _lbfgs(ham, S, *, max_torque, max_iter, history, callback=None, max_rot: float = 0.3):
    """Batched L-BFGS over the spins (one history and one step length per system).

    Variables: the free spins; the step S + α d is renormalised (S = v/|v|), so the gradient is the tangent part
    −(h − (S·h)S). The line search is backtracking Armijo on the energy, where a change below the float64
    resolution of E (1e-13·|E| + 1e-12 meV) counts as no increase, so the solver keeps converging on the
    accurate gradients once energy differences drown in rounding (torch's L-BFGS stalls there, near 1e-5 meV).
    The first step and any step that would turn a spin by more than `max_rot` rad are shortened."""
    free = ham.lat.free
    B = S.shape[0]
    view = (B, 1, 1, 1)

    def grad(X):
        h = ham.field(X)
        return -(h - (X * h).sum(1, keepdim=True) * X) * free

    E = ham.energy(S)
    g = grad(S)
    mem_s, mem_y, mem_r = [], [], []
    it = 0
    tq = g.norm(dim=1).amax((1, 2))
    while it < max_iter:
        if float(tq.max()) < max_torque:
            break
        q = g.clone()
        alphas = []
        for s_, y_, r_ in reversed(list(zip(mem_s, mem_y, mem_r))):
            a = r_ * _bdot(s_, q)
            alphas.append(a)
            q = q - a.view(view) * y_
        if mem_s:
            gamma = _bdot(mem_s[-1], mem_y[-1]) / _bdot(mem_y[-1], mem_y[-1]).clamp_min(1e-300)
            q = q * gamma.view(view)
        else:
            q = q / g.norm(dim=1, keepdim=True).amax((2, 3), keepdim=True).clamp_min(1e-300) * 0.1
        for (s_, y_, r_), a in zip(zip(mem_s, mem_y, mem_r), reversed(alphas)):
            b = r_ * _bdot(y_, q)
            q = q + (a - b).view(view) * s_
        d = -q
        gd = _bdot(g, d)
        bad = gd >= 0  # not a descent direction: restart that system with steepest descent
        if bool(bad.any()):
            sd = -g / g.norm(dim=1, keepdim=True).amax((2, 3), keepdim=True).clamp_min(1e-300) * 0.1
            d = torch.where(bad.view(view), sd, d)
            gd = _bdot(g, d)
        step = d.norm(dim=1).amax((1, 2))
        alpha = torch.clamp(max_rot / step.clamp_min(1e-300), max=1.0)
        done = tq < max_torque
        alpha = torch.where(done, torch.zeros_like(alpha), alpha)
        tol = 1e-13 * E.abs() + 1e-12
        for _ in range(30):
            Sn = _unit(S + alpha.view(view) * d)
            En = ham.energy(Sn)
            ok = (En <= E + 1e-4 * alpha * gd + tol) | done
            if bool(ok.all()):
                break
            alpha = torch.where(ok, alpha, alpha * 0.5)
        gn = grad(Sn)
        s_new, y_new = Sn - S, gn - g
        sy = _bdot(s_new, y_new)
        keep = sy > 1e-300
        if bool(keep.any()):
            mem_s.append(s_new * keep.view(view))
            mem_y.append(y_new * keep.view(view))
            mem_r.append(torch.where(keep, 1 / sy.clamp_min(1e-300), torch.zeros_like(sy)))
            if len(mem_s) > history:
                mem_s.pop(0), mem_y.pop(0), mem_r.pop(0)
        S, E, g = Sn, En, gn
        tq = g.norm(dim=1).amax((1, 2))
        it += 1
        if not bool(torch.isfinite(E).all()):
            break
        if callback is not None and it % 100 == 0:
            callback(S, it)
    return S, it, tq


def integrate(ham, S, *, integrator: str = "heun", dt: float = 0.0005, alpha=0.3, steps: int = 1000,
              temperature_K: float = 0.0, every: int = 1000, generator=None, callback=None, start: int = 0,
              step_fn=None):
    """Integrate the LLG equation for `steps` steps of `dt` ps from step `start`; `callback(S, step)` every
    `every` steps and at the end (its truthy return stops the run); `step_fn` replaces the step (a compiled
    one). Returns the final S."""
    sigma = None
    if temperature_K > 0:
        a = alpha if not torch.is_tensor(alpha) else alpha
        sigma = noise_sigma(a, temperature_K, dt)
        if torch.is_tensor(sigma):
            sigma = sigma[:, None, None, None]
    step = start
    end = start + steps
    while step < end:
        if integrator == "heun":
            S = heun_step(ham, S, dt, alpha) if step_fn is None else step_fn(S, dt, alpha)
        else:
            xi = None
            if sigma is not None:
                gdev = generator.device if generator is not None else S.device
                xi = torch.randn(S.shape, generator=generator, device=gdev, dtype=S.dtype).to(S.device) * sigma
            S = sib_step(ham, S, dt, alpha, xi) if step_fn is None else step_fn(S, dt, alpha, xi)
        step += 1
        if callback is not None and (step % every == 0 or step == end):
            if callback(S, step):
                break
    return S
