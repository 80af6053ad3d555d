"""The peers' side of the race: the reference implementation (`logbexp`, when importable) or our plain
re-implementation of its rounds (`loop`): one replicate, NumPy/SciPy, the reference's update rules.

- OFULog-r round: 5 undamped Newton steps of the λ_t-regularised MLE, then per arm one scipy COBYLA program
  (`maxiter=20`, constraints L(θ) − L(θ̂) ≤ β and ‖θ‖ ≤ S², as the reference has it), argmax.
- ECOLog round: projected gradient steps in whitened coordinates with `scipy.linalg.sqrtm` of Ṽ per call, as
  the reference does, and a bounded scalar search for the projection multiplier.
"""

from __future__ import annotations

import math

import numpy as np


def _sig(z):
    return 1 / (1 + np.exp(-z))


def _loss(theta, X, y, lam):
    z = X @ theta
    return float(np.sum(np.logaddexp(0, z) - y * z) + lam / 2 * theta @ theta)


def ofulogr_loop(arms: np.ndarray, theta_star: np.ndarray, U: np.ndarray, S: float, delta: float, rounds: int,
                 first_arm: int = 0) -> np.ndarray:
    """Play `rounds` rounds of the reference-style OFULog-r on one replicate; returns the chosen arm indices."""
    from scipy.optimize import NonlinearConstraint, minimize
    from scipy.stats import chi2

    K, d = arms.shape
    X, y, chosen = [], [], []
    theta_hat = np.zeros(d)
    H = d * np.eye(d)
    for t in range(rounds):
        if t == 0:
            k = first_arm
        else:
            Xa, ya = np.array(X), np.array(y)
            lam = d * math.log(2 + len(y))
            logdet = np.linalg.slogdet(H)[1]
            ratio = math.log(chi2(d).cdf(2 * lam) / chi2(d).cdf(lam))
            common = math.log(1 / delta) + 0.5 * logdet - 0.5 * d * math.log(lam) + ratio
            g = min(math.sqrt(lam) * (0.5 + S) + 2 / math.sqrt(lam) * common, math.sqrt(lam) * S + common)
            beta = (g + g * g / lam) ** 2
            L_hat = _loss(theta_hat, Xa, ya, lam)
            vals = []
            for a in arms:
                cons = [NonlinearConstraint(lambda th: _loss(th, Xa, ya, lam) - L_hat, 0, beta),
                        NonlinearConstraint(lambda th: np.linalg.norm(th), 0, S**2)]
                res = minimize(lambda th: -a @ th, x0=theta_hat, method="COBYLA", constraints=cons,
                               options={"maxiter": 20})
                vals.append(a @ res.x)
            k = int(np.argmax(vals))
        x = arms[k]
        r = float(U[t] < _sig(x @ theta_star))
        X.append(x)
        y.append(r)
        chosen.append(k)
        Xa, ya = np.array(X), np.array(y)
        lam = d * math.log(2 + len(y))
        for _ in range(5):
            p = _sig(Xa @ theta_hat)
            grad = lam * theta_hat + Xa.T @ (p - ya)
            H = (Xa * (p * (1 - p))[:, None]).T @ Xa + lam * np.eye(d)
            theta_hat = theta_hat - np.linalg.solve(H, grad)
    return np.array(chosen)


def ecolog_loop(arms: np.ndarray, theta_star: np.ndarray, U: np.ndarray, S: float, delta: float,
                rounds: int) -> np.ndarray:
    """Play `rounds` rounds of the reference-style adaECOLog on one replicate; returns the chosen arms."""
    from scipy.linalg import sqrtm
    from scipy.optimize import minimize_scalar

    K, d = arms.shape
    V, Vinv, theta, cum, c = np.eye(d), np.eye(d), np.zeros(d), 0.0, 1
    chosen = []

    def project(z, Vh, Vhi):  # nearest z' to z with ‖Vh⁻¹ z'‖ ≤ S (bounded scalar search on the multiplier)
        if np.linalg.norm(Vhi @ z) <= S:
            return z
        Vi = Vhi @ Vhi

        def gap(nu):
            zz = np.linalg.solve(np.eye(d) + nu * Vi, z)
            return (np.linalg.norm(Vhi @ zz) - S) ** 2
        nu = minimize_scalar(gap, bounds=(0, 1000), method="bounded").x
        return np.linalg.solve(np.eye(d) + nu * Vi, z)

    def descend(theta0, x, r):
        Vh = np.real(sqrtm(V))
        Vhi = np.real(np.linalg.inv(sqrtm(V)))
        eta = 0.75 / (0.25 + 1 / (1 + S / 2))
        steps = int((1 / 0.75) * math.ceil((9 / 4 + S / 8) * math.log(S * c)))
        z0 = Vh @ theta0
        z = z0.copy()
        for _ in range(max(steps, 1)):
            th = Vhi @ z
            m = _sig(x @ th)
            gl = (m - r) if r is not None else (2 * m - 1)
            z = project(z - eta * ((z - z0) + gl * (Vhi @ x)), Vh, Vhi)
        return Vhi @ z

    for t in range(rounds):
        gamma = 0.5 + 2 * math.log(2 * math.sqrt(1 + c / 4) / delta)
        rad = math.sqrt(max(2 * S * S + (1 + S) ** 2 * gamma + cum, 0))
        ucb = _sig(arms @ theta) + rad * np.sqrt(np.einsum("kd,de,ke->k", arms, Vinv, arms))
        k = int(np.argmax(ucb))
        c += 1
        x = arms[k]
        r = float(U[t] < _sig(x @ theta_star))
        new = descend(theta, x, r)
        bar = descend(new, x, None)
        dn = (new - bar) @ V @ (new - bar)
        s = _sig(x @ new) * (1 - _sig(x @ new))
        V = V + s * np.outer(x, x)
        Vinv = np.linalg.inv(V)

        def loss(th):
            z = x @ th
            return np.logaddexp(0, z) - r * z
        cum += 2 * (1 + S) * (loss(bar) - loss(new)) - 0.5 * dn
        theta = new
        chosen.append(k)
    return np.array(chosen)
