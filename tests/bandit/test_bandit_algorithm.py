"""Engine units against oracles: the MLE against scipy L-BFGS-B, the planner against scipy SLSQP, the radius
formulas against plain transcriptions, Sherman–Morrison against `torch.linalg.inv`, the projections against
their KKT conditions, the κ mapping against its closed form (float64, tiny sizes)."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from scipy.stats import chi2

from wisecli.engines.bandit import algorithm as alg
from wisecli.engines.bandit import synthetic as syn


def _history(rng, n, d, theta=None, separable=False):
    X = syn.ball_points(rng, (n,), d)
    th = rng.standard_normal(d) * 2 if theta is None else theta
    if separable:
        y = (X @ th > 0).astype(float)
    else:
        y = (rng.random(n) < 1 / (1 + np.exp(-X @ th))).astype(float)
    return X, y


def _np_loss(th, X, y, lam):
    z = X @ th
    return np.sum(np.logaddexp(0, z) - y * z) + lam / 2 * th @ th


def _np_grad(th, X, y, lam):
    return X.T @ (1 / (1 + np.exp(-X @ th)) - y) + lam * th


@pytest.mark.parametrize("separable", [False, True])
def test_mle_equals_scipy_lbfgsb(separable):
    rng = np.random.default_rng(1)
    for d, n in [(2, 30), (3, 60)]:
        X, y = _history(rng, n, d, separable=separable)
        lam = 0.5
        ours, conv = alg.fit_mle(torch.tensor(X)[None], torch.tensor(y)[None], lam, torch.zeros(1, d, dtype=torch.float64))
        assert bool(conv.all())
        ref = minimize(lambda t: (_np_loss(t, X, y, lam), _np_grad(t, X, y, lam)), np.zeros(d), jac=True,
                       method="L-BFGS-B", options={"gtol": 1e-13, "ftol": 1e-16, "maxiter": 10000})
        # strongly convex (λ = 0.5): |θ − θ*| ≤ ‖∇L‖/λ; scipy stops at ‖∇L‖ ~1e-10, so 1e-8 is its accuracy
        assert np.abs(ours[0].numpy() - ref.x).max() < 1e-8
        assert np.abs(_np_grad(ours[0].numpy(), X, y, lam)).max() < 1e-9


def test_mle_ball_constrained_is_kkt():
    rng = np.random.default_rng(2)
    X, y = _history(rng, 40, 2, theta=np.array([6.0, 6.0]), separable=True)
    lam, rho = 0.01, 1.5
    th, _ = alg.fit_mle(torch.tensor(X)[None], torch.tensor(y)[None], lam, torch.zeros(1, 2, dtype=torch.float64),
                        radius=rho)
    t = th[0].numpy()
    g = _np_grad(t, X, y, lam)
    assert abs(np.linalg.norm(t) - rho) < 1e-9
    # KKT on the sphere: ∇L = −ν θ with ν ≥ 0
    nu = -(g @ t) / (t @ t)
    assert nu > 0 and np.abs(g + nu * t).max() < 1e-7


def _plan_group(rng, d, n, R, S=3.0):
    Xs, ys = zip(*[_history(rng, n, d) for _ in range(R)])
    X, y = torch.tensor(np.stack(Xs)), torch.tensor(np.stack(ys))
    lam = float(d)
    th_hat, _ = alg.fit_mle(X, y, lam, torch.zeros(R, d, dtype=torch.float64))
    th_hat = torch.where(th_hat.norm(dim=-1, keepdim=True) > 0.9 * S, th_hat * 0.9 * S / th_hat.norm(dim=-1, keepdim=True), th_hat)
    L_hat = alg.log_loss(th_hat, X, y, lam)  # θ̂ may be shrunk: L_hat is then its loss, still a valid centre
    beta = torch.tensor(rng.uniform(0.3, 4.0, R))
    arms = torch.tensor(syn.ball_points(rng, (R, 1), d))
    return arms, X, y, lam, L_hat, beta, th_hat, S


def test_planner_equals_slsqp_and_is_feasible():
    rng = np.random.default_rng(3)
    worst = 0.0
    for d, n in [(2, 5), (2, 50), (3, 20), (3, 50)]:
        arms, X, y, lam, L_hat, beta, centre, S = _plan_group(rng, d, n, 25)
        vals, th = alg.plan(arms, X, y, lam, L_hat, beta, centre, S)
        Lth = alg.log_loss(th, X, y, lam)
        assert bool((Lth - L_hat.unsqueeze(-1) <= beta.unsqueeze(-1) + 1e-9).all())
        assert bool((th.norm(dim=-1) <= S + 1e-9).all())
        assert bool((vals[:, 0] >= (arms[:, 0] * centre).sum(-1) - 1e-12).all())
        for r in range(arms.shape[0]):
            Xn, yn, a = X[r].numpy(), y[r].numpy(), arms[r, 0].numpy()
            cons = [{"type": "ineq", "fun": lambda t: float(beta[r] + L_hat[r]) - _np_loss(t, Xn, yn, lam)},
                    {"type": "ineq", "fun": lambda t: S * S - t @ t}]
            res = minimize(lambda t: -a @ t, centre[r].numpy(), jac=lambda t: -a, method="SLSQP", constraints=cons,
                           options={"ftol": 1e-15, "maxiter": 1000})
            ref = -res.fun
            worst = max(worst, abs(float(vals[r, 0]) - ref) / max(1.0, abs(ref)))
    assert worst < 1e-6


def test_planner_value_increases_with_beta():
    rng = np.random.default_rng(4)
    arms, X, y, lam, L_hat, beta, centre, S = _plan_group(rng, 2, 20, 8)
    v1, _ = alg.plan(arms, X, y, lam, L_hat, beta, centre, S)
    v2, _ = alg.plan(arms, X, y, lam, L_hat, beta * 2, centre, S)
    assert bool((v2 >= v1 - 1e-9).all()) and bool((v2 > v1).any())


def test_radius_formulas_equal_plain_transcriptions():
    d, S, delta = 3, 4.0, 0.05
    ld = torch.tensor([2.5], dtype=torch.float64)
    lam = d * math.log(2 + 17)
    ratio = math.log(chi2(d).cdf(2 * lam) / chi2(d).cdf(lam))
    g1 = math.sqrt(lam) * (0.5 + S) + (2 / math.sqrt(lam)) * (math.log(1 / delta) + 0.5 * 2.5 - d / 2 * math.log(lam) + ratio)
    g2 = math.sqrt(lam) * S + math.log(1 / delta) + ratio + 0.5 * 2.5 - d / 2 * math.log(lam)
    g = min(g1, g2)
    assert float(alg.ofulogr_beta(ld, lam, d, S, delta)) == pytest.approx((g + g * g / lam) ** 2, rel=1e-12)
    c, cl = 7, torch.tensor([0.3], dtype=torch.float64)
    gam = 0.5 + 2 * math.log(2 * math.sqrt(1 + c / 4) / delta)
    assert float(alg.ecolog_radius(c, 1.0, S, delta, cl)) == pytest.approx(math.sqrt(2 * S * S + (1 + S) ** 2 * gam + 0.3), rel=1e-12)
    kap = 1 / (1 / (1 + math.exp(-S)) * (1 - 1 / (1 + math.exp(-S))))
    rho = kap / 4 * math.sqrt(2 * math.log(1 / delta) + 2.5 - d * math.log(d)) + math.sqrt(d) * S
    assert float(alg.glmucb_radius(ld, float(d), d, S, delta)) == pytest.approx(rho, rel=1e-12)
    k, B = 1 / kap, 3.0
    r2 = 1 + 4 / k * B + 8 * (S / k) ** 2 * math.log(2 * math.sqrt(1 + 2 * B / k + 4 * (S / k) ** 4 / delta**2) / delta)
    assert float(alg.gloc_radius(torch.tensor([B], dtype=torch.float64), S, delta)) == pytest.approx(math.sqrt(r2), rel=1e-12)
    beta = 0.5 / (1 + math.exp(S))
    tau = math.log(4 * math.log(c + 1) * c * c / delta)
    r2 = 8 * S + d * S * S + (8 / beta + 16 * S / 3) * tau + (2 / beta) * (2.5 - d * math.log(d))
    assert float(alg.ol2m_radius(ld, c, float(d), d, S, delta)) == pytest.approx(math.sqrt(r2), rel=1e-12)


def test_sherman_morrison_equals_inverse():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(5, 3, 3, generator=g, dtype=torch.float64)
    A = A @ A.transpose(-1, -2) + torch.eye(3, dtype=torch.float64)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    w = torch.rand(5, generator=g, dtype=torch.float64)
    ours = alg.sherman_morrison(torch.linalg.inv(A), x, w)
    ref = torch.linalg.inv(A + w.view(-1, 1, 1) * x.unsqueeze(-1) * x.unsqueeze(-2))
    assert (ours - ref).abs().max() < 1e-10  # well-conditioned (eigenvalues ≥ 1): rounding is ~1e-15


def test_ball_projection_kkt_and_interior_unchanged():
    g = torch.Generator().manual_seed(1)
    V = torch.randn(6, 3, 3, generator=g, dtype=torch.float64)
    V = V @ V.transpose(-1, -2) + 0.1 * torch.eye(3, dtype=torch.float64)
    u = torch.randn(6, 3, generator=g, dtype=torch.float64) * 4
    S = 2.0
    p = alg.project_ball(u, V, S)
    for r in range(6):
        if float(u[r].norm()) <= S:
            assert torch.equal(p[r], u[r])
        else:
            assert abs(float(p[r].norm()) - S) < 1e-10
            gr = V[r] @ (p[r] - u[r])  # gradient of ½(θ−u)ᵀV(θ−u); KKT: gr = −ν θ, ν ≥ 0
            nu = -float(gr @ p[r]) / S**2
            assert nu >= 0 and float((gr + nu * p[r]).abs().max()) < 1e-8
    inside = u / u.norm(dim=-1, keepdim=True) * 1.0
    assert torch.equal(alg.project_ball(inside, V, S), inside)  # §2.8 #6: no rescaling inside the ball
    resc = alg.project_ball(inside, V, S, mode="rescale")
    assert torch.allclose(resc.norm(dim=-1), torch.full((6,), S, dtype=torch.float64))


def test_kappa_mapping():
    S = syn.s_from_kappa(400)
    assert S == pytest.approx(5.987, abs=1e-3)
    assert syn.theta_norm_from_kappa(400) == pytest.approx(4.987, abs=1e-3)
    assert 1 / float(alg.dmu(torch.tensor(S, dtype=torch.float64))) == pytest.approx(400, rel=1e-10)
    assert syn.kappa_from_s(S) == pytest.approx(400, rel=1e-12)


def test_history_by_arm_equals_one_row_an_observation():
    """A fixed arm set's history kept by arm (counts w, reward sums y) gives the same loss, gradient, Hessian, MLE
    and optimistic values as one row an observation (sums regrouped: equal to rounding, 1e-9)."""
    rng = np.random.default_rng(5)
    R, K, d, n = 3, 6, 2, 40
    arms = torch.tensor(syn.ball_points(rng, (R, K), d))
    idx = torch.tensor(rng.integers(0, K, (R, n)))
    X = arms[torch.arange(R).unsqueeze(-1), idx]  # (R, n, d)
    y = torch.tensor((rng.random((R, n)) < 0.4).astype(float))
    w = torch.zeros(R, K, dtype=torch.float64).scatter_add_(1, idx, torch.ones(R, n, dtype=torch.float64))
    ys = torch.zeros(R, K, dtype=torch.float64).scatter_add_(1, idx, y)
    th = torch.tensor(rng.standard_normal((R, 4, d)))
    lam = 1.7
    assert torch.allclose(alg.log_loss(th, X, y, lam), alg.log_loss(th, arms, ys, lam, w), rtol=0, atol=1e-9)
    g1, H1 = alg.grad_hess(th, X, y, lam)
    g2, H2 = alg.grad_hess(th, arms, ys, lam, w=w)
    assert (g1 - g2).abs().max() < 1e-9 and (H1 - H2).abs().max() < 1e-9
    t1, _ = alg.fit_mle(X, y, lam, torch.zeros(R, d, dtype=torch.float64))
    t2, _ = alg.fit_mle(arms, ys, lam, torch.zeros(R, d, dtype=torch.float64), w=w)
    assert (t1 - t2).abs().max() < 1e-9
    L_hat = alg.log_loss(t1, X, y, lam)
    beta = torch.full((R,), 2.0, dtype=torch.float64)
    v1, _ = alg.plan(arms, X, y, lam, L_hat, beta, t1, 3.0)
    v2, _ = alg.plan(arms, arms, ys, lam, L_hat, beta, t1, 3.0, w=w)
    assert (v1 - v2).abs().max() < 1e-7  # each to ~1e-9 of the optimum (duality gap 2e-8)
