"""The logistic-bandit algorithms, vectorised over replicates (the batch dimension R): OFULog-r, ECOLog
(adaECOLog), GLM-UCB, GLOC, OL2M and TS-Laplace, plus the batched numerical pieces they share.

Every replicate plays in lock-step, so all of them hold the same number n of observations and the history is
a plain slice `X[:, :n]`: no masks are needed. Tensors stay on the device; nothing in a round reads a value back
to the host except, on CPU only, the early exit of the Newton loops (free there; on CUDA the fixed caps run).

Choices where the spec is silent or where we depart from it (also listed by `wise bandit info`):
- MLE: damped Newton from the previous estimate (0 at the start), the step length the largest of 1, ½, ¼, …, 2⁻¹⁰
  that satisfies Armijo (c = 1e-4); a full step is taken once the Newton step is below 1e-6 (the quadratic
  region, where rounding can hide the decrease); stop at step norm < 1e-8 or 25 iterations.
- Planner of OFULog-r: log-barrier interior point, barrier weights 1, 10⁻², …, 10⁻⁸ (`BARRIER_WEIGHTS`), up to 4
  Newton steps each and 8 at the last; before each new weight a predictor step along the central path's tangent
  (θ + (1 − w'/w)·(w∇²Φ)⁻¹x); steps backtrack (1, ½, …, 2⁻⁹) to stay strictly feasible and not increase the
  barrier objective (up to 100 ulp of rounding). On CPU a weight ends early once every program's Newton
  decrement over the weight is below 0.5 (10⁻³ at the last weight), so values are exact to ~1e-10 absolute (the
  duality gap m·10⁻⁸ dominates); on CUDA the fixed caps run. Where the ball's own maximiser S·x/‖x‖ meets the
  loss constraint, it is the answer, exactly (on CPU a round whose arms all do skips the barrier). Every round
  starts from the centre (θ̂, or the ball-constrained MLE on radius 0.999·S when ‖θ̂‖ ≥ 0.999·S) rather than
  the previous round's solution: a start near the boundary only costs steps. When the centre violates the loss
  constraint (the set C_t meets the ball nowhere, which the theory excludes), β is raised to 2·(L(centre) − L(θ̂))
  for that replicate and the event `empty_confidence_set` is counted. A numerically singular barrier Hessian
  gives that program a zero step (it keeps its feasible point) instead of stopping the batch.
- OFULog-r's confidence level, `beta_scale` (`--beta-scale`, default 1: the paper's β_t = (γ + γ²/λ)², which is
  the reference's formula too): C_t = {L_t(θ) − L_t(θ̂) ≤ s·β_t, ‖θ‖ ≤ S}. Finding (issue 18): with s = 1 the
  set is, in the demo setting, the whole ball for hundreds of rounds (β_t ≈ 5000 at t = 400, while a wrong arm
  is excluded only when its observations cost ~2.3 a pull in loss), so the exact planner's value is S·‖x‖ and
  OFULog-r keeps playing the longest arm: seed 0, T = 400, R = 8, OFULog-r 195.9 vs GLM-UCB 158.8 (not
  separated). The reference's figure does not show this because its planner (20 COBYLA steps from θ̂) stays
  near θ̂, a much smaller set than the one it states. Practice scales a confidence width by a tuned constant
  (LinUCB's α, Li et al. 2010, is the best-known case); we keep the paper's β_t as the default of `run` (the
  figure reproduction must be untuned) and give the scale as an option. The demo plays s = 0.01 (a radius ×0.1),
  chosen on seed 1, replicates 0–7, T = 400 before gating on seed 0 (s = 1, 0.3, 0.1, 0.03, 0.01, 0.001 gave
  189, 157, 59, 11, 6.5, 10 against GLM-UCB's 158); GLM-UCB, ECOLog, GLOC and OL2M keep their theory radii.
- Fixed arm sets: the MLE-based policies keep their history by arm (counts and reward sums over the K arms, the
  same loss summed by arm), so a round costs O(K), not O(t); varying and semi-synthetic arms keep one row an
  observation. The simulation runs under `torch.inference_mode`.
- Lazy refits (`lazy_every` N): after round 200 θ̂ is refitted every N rounds; in between H_t, L_t(θ̂) and β_t
  are recomputed at the stale θ̂ with the current data. It applies to every MLE-based algorithm (OFULog-r,
  GLM-UCB, TS-Laplace).
- ECOLog: the projected gradient steps in the whitened coordinates z = Ṽ^{1/2}θ are done in θ coordinates
  (the same iterates: θ ← Π_Ṽ(θ − η[(θ − θ_t) + Ṽ⁻¹∇ℓ])), so no matrix square root is needed; the
  cumulative-loss correction subtracts ½‖θ − θ̄‖²_Ṽ as the spec says (the reference subtracts ½‖θ − θ̄‖_Ṽ).
- Projection Π onto {‖θ‖ ≤ S} in the V metric: argmin (θ' − u)ᵀV(θ' − u) = (V + νI)⁻¹Vu with the smallest
  ν ≥ 0 giving ‖θ'‖ ≤ S, found by Newton on 1/‖θ(ν)‖ − 1/S (monotone from ν = 0, 40 steps) after one `eigh`.
- Ball arm set: every algorithm but OFULog-r samples θ̃ = c + r·M^{-1/2}z, z ~ N(0, I), from its ellipsoid
  {(θ − c)ᵀM(θ − c) ≤ r²} (TS-Laplace: c = θ̂, M = H_t, r = v) and plays θ̃/‖θ̃‖ (Gaussian, as the reference's
  `gaussian_sample_ellipsoid`).
"""

from __future__ import annotations

import math

import torch

ALGOS = ("ofulog-r", "ecolog", "glm-ucb", "gloc", "ol2m", "ts-laplace")
"""Algorithm ids, in their fixed order (the order also numbers their random streams)."""

BALL_OK = ("ecolog", "glm-ucb", "gloc", "ol2m", "ts-laplace")
"""Algorithms that play on the unit-ball arm set (OFULog-r's planning over the ball is non-convex)."""

MLE_ITERS = 25
MLE_TOL = 1e-8
BARRIER_WEIGHTS = tuple(10.0 ** -i for i in range(0, 9, 2))
BARRIER_STEPS = 4
BARRIER_FINAL_STEPS = 8
PLAN_BACKTRACK = 10
PLAN_DECREMENT = 1e-3
PLAN_DECREMENT_MID = 0.5
SECULAR_ITERS = 40


# --- the link and the loss -----------------------------------------------------------------------------
def mu(z: torch.Tensor) -> torch.Tensor:
    """The sigmoid μ(z) = 1/(1 + e^{−z})."""
    return torch.sigmoid(z)


def dmu(z: torch.Tensor) -> torch.Tensor:
    """μ̇(z) = μ(z)(1 − μ(z))."""
    s = torch.sigmoid(z)
    return s * (1 - s)


def softplus(z: torch.Tensor) -> torch.Tensor:
    """log(1 + e^z); torch's linear branch starts at z > 40, where the error is below e⁻⁴⁰."""
    return torch.nn.functional.softplus(z, beta=1.0, threshold=40.0)


def _flat(theta: torch.Tensor) -> torch.Tensor:
    """(R, …, d) → (R, M, d)."""
    return theta.reshape(theta.shape[0], -1, theta.shape[-1])


def _lam(lam, theta: torch.Tensor) -> torch.Tensor:
    lam = torch.as_tensor(lam, dtype=theta.dtype, device=theta.device)
    return lam.view(-1, 1) if lam.dim() == 1 else lam


def log_loss(theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor, lam, w=None) -> torch.Tensor:
    """Regularised log-loss L(θ) = Σ_s [w_s·softplus(x_sᵀθ) − y_s x_sᵀθ] + (λ/2)‖θ‖² for θ of shape (R, …, d),
    history X (R, n, d), y (R, n); λ a float or (R,). `w` (R, n) are counts when rows stand for repeated arms
    (y_s then the sum of their rewards: the same loss, summed by arm); None means one observation a row.
    Returns (R, …)."""
    th = _flat(theta)
    z = torch.bmm(th, X.transpose(1, 2))  # (R, M, n)
    sp = softplus(z) if w is None else w.unsqueeze(1) * softplus(z)
    val = (sp - y.unsqueeze(1) * z).sum(-1) + 0.5 * _lam(lam, th) * (th * th).sum(-1)
    return val.reshape(theta.shape[:-1])


def grad_hess(theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor, lam, hess: bool = True, XX=None, w=None):
    """Gradient (R, …, d) and Hessian (R, …, d, d) of `log_loss` at θ (R, …, d); `XX` (R, n, d·d) the outer
    products x_s x_sᵀ when the caller has them; `w` the row counts as in `log_loss`."""
    th = _flat(theta)
    R, M, d = th.shape
    z = torch.bmm(th, X.transpose(1, 2))
    p = torch.sigmoid(z)
    wp = p if w is None else w.unsqueeze(1) * p
    lam_t = _lam(lam, th).unsqueeze(-1) if torch.as_tensor(lam).dim() == 1 else _lam(lam, th)
    g = torch.bmm(wp - y.unsqueeze(1), X) + lam_t * th
    if not hess:
        return g.reshape(theta.shape), None
    if XX is None:
        XX = (X.unsqueeze(-1) * X.unsqueeze(-2)).reshape(R, -1, d * d)
    eye = torch.eye(d, dtype=theta.dtype, device=theta.device)
    H = torch.bmm(wp * (1 - p), XX).reshape(R, M, d, d) + lam_t.unsqueeze(-1) * eye
    return g.reshape(theta.shape), H.reshape(*theta.shape, d)


def _loss_grad_hess(theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor, lam: float, XX: torch.Tensor, w=None):
    """`log_loss`, and the gradient and Hessian of `grad_hess`, at θ (R, M, d) from one product X θ (the
    planner's inner loop; λ a float)."""
    R, M, d = theta.shape
    z = torch.bmm(theta, X.transpose(1, 2))  # (R, M, n)
    p = torch.sigmoid(z)
    sp = softplus(z)
    if w is not None:
        wu = w.unsqueeze(1)
        sp, wp = wu * sp, wu * p
    else:
        wp = p
    yz = y.unsqueeze(1)
    loss = (sp - yz * z).sum(-1) + (0.5 * lam) * (theta * theta).sum(-1)
    g = torch.bmm(wp - yz, X) + lam * theta
    H = torch.bmm(wp * (1 - p), XX).reshape(R, M, d, d) + lam * torch.eye(d, dtype=theta.dtype, device=theta.device)
    return loss, g, H


def _can_stop(device: torch.device) -> bool:
    return device.type == "cpu"


# --- MLE --------------------------------------------------------------------------------------------------
def fit_mle(X: torch.Tensor, y: torch.Tensor, lam, theta0: torch.Tensor, *, radius: float | None = None,
            iters: int = MLE_ITERS, tol: float = MLE_TOL, w=None):
    """argmin L(θ) (optionally over ‖θ‖ ≤ radius, by projected Newton: each step solves the Newton model on the
    ball). Damped Newton from θ0 (R, d); `w` row counts as in `log_loss`; returns (θ (R, d), converged (R,))."""
    theta = theta0.clone()
    R, d = theta.shape
    alphas = 2.0 ** -torch.arange(11, dtype=theta.dtype, device=theta.device)
    converged = torch.zeros(R, dtype=torch.bool, device=theta.device)
    for _ in range(iters):
        g, H = grad_hess(theta, X, y, lam, w=w)
        if radius is None:
            step = torch.linalg.solve(H, g.unsqueeze(-1)).squeeze(-1)
        else:
            target = ball_solve(H, (H @ theta.unsqueeze(-1)).squeeze(-1) - g, radius)
            step = theta - target
        snorm = step.norm(dim=-1)
        converged = converged | (snorm < tol)
        cand = theta.unsqueeze(1) - alphas.view(1, -1, 1) * step.unsqueeze(1)  # (R, J, d)
        Lc = log_loss(cand, X, y, lam, w)
        L0 = log_loss(theta, X, y, lam, w)
        slope = (g * step).sum(-1)
        ok = Lc <= (L0 - 1e-4 * slope).unsqueeze(1) - 1e-4 * (alphas.view(1, -1) - 1) * slope.unsqueeze(1)
        ok[:, 0] |= snorm < 1e-6
        has = ok.any(1)
        first = torch.argmax(ok.to(torch.int8), dim=1)
        alpha = torch.where(has, alphas[first], torch.zeros_like(snorm))
        alpha = torch.where(converged, torch.zeros_like(alpha), alpha)
        theta = theta - alpha.unsqueeze(-1) * step
        if _can_stop(theta.device) and bool(converged.all()):
            break
    return theta, converged


# --- linear algebra ---------------------------------------------------------------------------------------
def sherman_morrison(Ainv: torch.Tensor, x: torch.Tensor, w) -> torch.Tensor:
    """(A + w·x xᵀ)⁻¹ from A⁻¹ (R, d, d), x (R, d), w a float or (R,)."""
    w = torch.as_tensor(w, dtype=Ainv.dtype, device=Ainv.device)
    if w.dim() == 1:
        w = w.view(-1, 1, 1)
    Ax = (Ainv @ x.unsqueeze(-1))  # (R, d, 1)
    denom = 1 + w * (x.unsqueeze(-2) @ Ax)
    return Ainv - w * (Ax @ Ax.transpose(-1, -2)) / denom


def ball_solve(A: torch.Tensor, b: torch.Tensor, radius: float, iters: int = SECULAR_ITERS, eig=None) -> torch.Tensor:
    """θ = (A + νI)⁻¹ b with the smallest ν ≥ 0 such that ‖θ‖ ≤ radius (A symmetric positive definite, (R, d, d);
    b (R, d)): the minimiser of ½θᵀAθ − bᵀθ over the ball. Newton on φ(ν) = 1/‖θ(ν)‖ − 1/radius, which is
    concave and increasing, so it climbs monotonically from ν = 0 to the root."""
    lam, Q = torch.linalg.eigh(A) if eig is None else eig
    c = (Q.transpose(-1, -2) @ b.unsqueeze(-1)).squeeze(-1)
    c2 = c * c
    nu = torch.zeros_like(lam[..., 0])
    tiny = torch.finfo(A.dtype).tiny
    for _ in range(iters):
        den = lam + nu.unsqueeze(-1)
        n2 = (c2 / den**2).sum(-1).clamp(min=tiny)
        dn2 = -2 * (c2 / den**3).sum(-1)
        phi = n2.rsqrt() - 1.0 / radius
        dphi = -0.5 * n2.pow(-1.5) * dn2
        nu = torch.where(phi < 0, (nu - phi / dphi.clamp(min=tiny)).clamp(min=0), nu)
        if _can_stop(A.device) and bool((phi > -1e-15 / radius).all()):
            break
    return (Q @ (c / (lam + nu.unsqueeze(-1))).unsqueeze(-1)).squeeze(-1)


def project_ball(u: torch.Tensor, V: torch.Tensor, radius: float, mode: str = "ball", eig=None) -> torch.Tensor:
    """Π(u): the point of {‖θ‖ ≤ radius} nearest u in the V metric (`mode` ball); `rescale` is the reference's
    rule, θ = radius·u/‖u‖ even inside the ball."""
    if mode == "rescale":
        return radius * u / u.norm(dim=-1, keepdim=True).clamp(min=torch.finfo(u.dtype).tiny)
    inside = (u.norm(dim=-1) <= radius).unsqueeze(-1)
    if _can_stop(u.device) and bool(inside.all()):
        return u
    proj = ball_solve(V, (V @ u.unsqueeze(-1)).squeeze(-1), radius, eig=eig)
    return torch.where(inside, u, proj)


def weighted_norm(x: torch.Tensor, Minv: torch.Tensor) -> torch.Tensor:
    """‖x_k‖_{M⁻¹} for arms x (R, K, d) and M⁻¹ (R, d, d): (R, K)."""
    return torch.einsum("rkd,rde,rke->rk", x, Minv, x).clamp(min=0).sqrt()


# --- confidence radii (the formulas of spec §2.2–2.4) -------------------------------------------------------
def chi2_log_ratio(d: int, lam: float) -> float:
    """log(F_d(2λ)/F_d(λ)), F_d the χ²_d CDF = P(d/2, x/2), the regularised lower incomplete gamma function
    (`torch.special.gammainc`: no scipy.stats import, which costs a second of start-up). A host float."""
    a = torch.tensor(d / 2, dtype=torch.float64)
    x_hi, x_lo = torch.tensor(lam, dtype=torch.float64), torch.tensor(lam / 2, dtype=torch.float64)
    # log(P(λ)/P(λ/2)) = log1p((Q(λ/2) − Q(λ))/P(λ/2)): no cancellation when both are near 1
    diff = torch.special.gammaincc(a, x_lo) - torch.special.gammaincc(a, x_hi)
    return float(torch.log1p(diff / torch.special.gammainc(a, x_lo)))


def ofulogr_beta(logdet_H: torch.Tensor, lam: float, d: int, S: float, delta: float) -> torch.Tensor:
    """β_t = (γ + γ²/λ)², γ = min(γ₁, γ₂) of OFULog-r (spec §2.2), for logdet H_t of shape (R,)."""
    common = math.log(1 / delta) + 0.5 * logdet_H - 0.5 * d * math.log(lam) + chi2_log_ratio(d, lam)
    g1 = math.sqrt(lam) * (0.5 + S) + (2 / math.sqrt(lam)) * common
    g2 = math.sqrt(lam) * S + common
    g = torch.minimum(g1, g2)
    return (g + g * g / lam) ** 2


def ecolog_radius(c: int, lam: float, S: float, delta: float, cum_loss: torch.Tensor) -> torch.Tensor:
    """r of ECOLog at round counter c: r² = 2λS² + (1+S)²γ_c + cum_loss (floored at 0)."""
    gamma = math.sqrt(lam) / 2 + (2 / math.sqrt(lam)) * math.log(2 * math.sqrt(1 + c / (4 * lam)) / delta)
    return (2 * lam * S * S + (1 + S) ** 2 * gamma + cum_loss).clamp(min=0).sqrt()


def glmucb_radius(logdet_V: torch.Tensor, lam: float, d: int, S: float, delta: float) -> torch.Tensor:
    """ρ of GLM-UCB: ¼κ·√(2 log(1/δ) + logdet V − d log λ) + √λ·S, κ = 1/μ̇(S)."""
    kappa = 1.0 / float(dmu(torch.tensor(S, dtype=torch.float64)))
    inner = (2 * math.log(1 / delta) + logdet_V - d * math.log(lam)).clamp(min=0)
    return 0.25 * kappa * inner.sqrt() + math.sqrt(lam) * S


def gloc_radius(B: torch.Tensor, S: float, delta: float) -> torch.Tensor:
    """GLOC's radius (Jun et al. 2017, Thm 1 as the reference writes it), k = μ̇(S), B the OCO regret bound."""
    k = float(dmu(torch.tensor(S, dtype=torch.float64)))
    r2 = 1 + (4 / k) * B
    r2 = r2 + 8 * (S / k) ** 2 * torch.log(2 * torch.sqrt(1 + 2 * B / k + 4 * (S / k) ** 4 / delta**2) / delta)
    return r2.sqrt()


def ol2m_radius(logdet_V: torch.Tensor, c: int, lam: float, d: int, S: float, delta: float) -> torch.Tensor:
    """OL2M's radius (Zhang et al. 2016, Thm 1 as the reference writes it) at counter c."""
    beta = 0.5 / (1 + math.exp(S))
    tau = math.log(4 * math.log(c + 1) * c * c / delta)
    r2 = 8 * S + lam * S * S + (8 / beta + 16 * S / 3) * tau + (2 / beta) * (logdet_V - d * math.log(lam))
    return r2.clamp(min=0).sqrt()


# --- the OFULog-r planner ---------------------------------------------------------------------------------
def _plan_accept(theta, step, alphas, arms, X, y, lam, bL, S2, w, f0, wts=None):
    """(R, K, J) mask: θ − α_j·step strictly feasible with a lower barrier objective than f0 (barrier weight w,
    history row counts `wts`)."""
    dt = theta.dtype
    J = alphas.numel()
    cand = theta.unsqueeze(2) - alphas.view(1, 1, J, 1) * step.unsqueeze(2)  # (R, K, J, d)
    c1 = bL.unsqueeze(-1) - log_loss(cand, X, y, lam, wts)
    ok = c1 > 0
    fc = -(arms.unsqueeze(2) * cand).sum(-1) - w * torch.log(c1.clamp(min=torch.finfo(dt).tiny))
    if S2 is not None:
        c2 = S2 - (cand * cand).sum(-1)
        ok = ok & (c2 > 0)
        fc = fc - w * torch.log(c2.clamp(min=torch.finfo(dt).tiny))
    # "no increase" up to rounding (100 ulp of f): a centred program's tiny steps are not refused for noise
    slack = 100 * torch.finfo(dt).eps * (f0.abs() + 1)
    return ok & (torch.where(ok, fc, torch.full_like(fc, float("inf"))) <= (f0 + slack).unsqueeze(-1))


def _safe_solve(A: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A⁻¹b batched; a program whose matrix is numerically singular (a barrier Hessian whose slacks underflowed)
    gets a zero step instead of stopping the whole batch (it then keeps its feasible point)."""
    x, info = torch.linalg.solve_ex(A, b.unsqueeze(-1))
    x = x.squeeze(-1)
    bad = (info != 0).unsqueeze(-1) | ~torch.isfinite(x)
    return torch.where(bad, torch.zeros_like(x), x)


def plan(arms: torch.Tensor, X: torch.Tensor, y: torch.Tensor, lam: float, L_hat: torch.Tensor,
         beta: torch.Tensor, centre: torch.Tensor, S: float | None, w=None):
    """max_{θ ∈ C} x_kᵀθ for every arm: C = {L(θ) − L_hat ≤ β, ‖θ‖ ≤ S} (S None: no ball). arms (R, K, d),
    centre (R, d) strictly feasible, `w` the history's row counts (see `log_loss`). Returns (values (R, K),
    θ (R, K, d)).

    Where the ball's own maximiser S·x/‖x‖ satisfies the loss constraint it is the answer, exactly (the loss
    constraint does not bind); the barrier iterations answer the other arms. On CPU the loop leaves a barrier
    weight as soon as every program's Newton decrement over the weight is below `PLAN_DECREMENT_MID`
    (`PLAN_DECREMENT` at the last weight: centred to ~1e-11 in value), and skips
    the barrier altogether when no arm needs it; on CUDA the fixed caps run (no host sync)."""
    R, K, d = arms.shape
    dt, dev = arms.dtype, arms.device
    cpu = _can_stop(dev)
    eye = torch.eye(d, dtype=dt, device=dev)
    alphas = 2.0 ** -torch.arange(PLAN_BACKTRACK, dtype=dt, device=dev)
    bL = (beta + L_hat).view(R, 1)
    S2 = None if S is None else S * S
    ball_theta = inside = None
    if S is not None:
        ball_theta = S * arms / arms.norm(dim=-1, keepdim=True).clamp(min=torch.finfo(dt).tiny)
        inside = log_loss(ball_theta, X, y, lam, w) <= bL  # (R, K)
        if cpu and bool(inside.all()):
            return (arms * ball_theta).sum(-1), ball_theta
    theta = centre.unsqueeze(1).expand(R, K, d).clone()
    XX = (X.unsqueeze(-1) * X.unsqueeze(-2)).reshape(R, -1, d * d)
    schedule = [(bw, BARRIER_STEPS) for bw in BARRIER_WEIGHTS[:-1]] + [(BARRIER_WEIGHTS[-1], BARRIER_FINAL_STEPS)]

    def barrier(th, bw):
        s1 = bL - log_loss(th, X, y, lam, w)  # (R, K), > 0 inside
        f0 = -(arms * th).sum(-1) - bw * torch.log(s1)
        s2 = None
        if S2 is not None:
            s2 = S2 - (th * th).sum(-1)
            f0 = f0 - bw * torch.log(s2)
        return s1, s2, f0

    def take(th, step, bw, f0, try_full=True):
        """θ − α·step, α the first acceptable of 1, ½, ¼, … (0 if none): on CPU the full step is tried alone
        first (`try_full`; often enough taken once centred); the same answer as the whole list at once."""
        alpha = None
        if cpu and try_full:
            better = _plan_accept(th, step, alphas[:1], arms, X, y, lam, bL, S2, bw, f0, w)
            if bool(better.all()):
                alpha = torch.ones_like(f0)
        if alpha is None:
            better = _plan_accept(th, step, alphas, arms, X, y, lam, bL, S2, bw, f0, w)
            has = better.any(-1)
            first = torch.argmax(better.to(torch.int8), dim=-1)
            alpha = torch.where(has, alphas[first], torch.zeros_like(f0))
        return th - alpha.unsqueeze(-1) * step

    hess = prev_bw = None
    for bw, steps in schedule:
        if hess is not None:
            # predictor along the central path: θ(w') ≈ θ(w) + (1 − w'/w)·(w∇²Φ)⁻¹x, the tangent at w
            pred = _safe_solve(hess, arms) * (1 - bw / prev_bw)
            theta = take(theta, -pred, bw, barrier(theta, bw)[2], try_full=False)  # often overshoots
        prev_bw = bw
        for _ in range(steps):
            Lth, g, H = _loss_grad_hess(theta, X, y, lam, XX, w)
            s1 = bL - Lth
            f0 = -(arms * theta).sum(-1) - bw * torch.log(s1)
            s2 = None
            if S2 is not None:
                s2 = S2 - (theta * theta).sum(-1)
                f0 = f0 - bw * torch.log(s2)
            grad = -arms + bw * g / s1.unsqueeze(-1)
            hess = bw * (H / s1[..., None, None] + g.unsqueeze(-1) * g.unsqueeze(-2) / (s1 * s1)[..., None, None])
            if s2 is not None:
                grad = grad + bw * 2 * theta / s2.unsqueeze(-1)
                hess = hess + bw * (2 * eye / s2[..., None, None]
                                    + 4 * theta.unsqueeze(-1) * theta.unsqueeze(-2) / (s2 * s2)[..., None, None])
            step = _safe_solve(hess, grad)
            theta = take(theta, step, bw, f0)
            # Newton decrement λ² = ∇ᵀH⁻¹∇ (over the weight: the scale-free centrality of the barrier problem)
            if cpu and bool(((grad * step).sum(-1) < bw * (PLAN_DECREMENT if bw == BARRIER_WEIGHTS[-1]
                                                            else PLAN_DECREMENT_MID)).all()):
                break
    if ball_theta is not None:
        theta = torch.where(inside.unsqueeze(-1), ball_theta, theta)
    values = (arms * theta).sum(-1)
    return values, theta


# --- the policies -------------------------------------------------------------------------------------------
class Policy:
    """One algorithm over R replicates in lock-step. `choose(arms, t)` → arm indices (R,) (or, for the ball,
    `choose_ball(t)` → unit vectors (R, d)); `update(x, y)` after the rewards. `events` counts per replicate."""

    name = ""

    def __init__(self, R: int, d: int, T: int, S: float, delta: float, rand: dict, cfg: dict,
                 dtype: torch.dtype, device: torch.device):
        self.R, self.d, self.T, self.S, self.delta = R, d, T, S, delta
        self.rand, self.cfg, self.dtype, self.device = rand, cfg, dtype, device
        self.n = 0
        self.events: dict[str, torch.Tensor] = {}
        self.eye = torch.eye(d, dtype=dtype, device=device).expand(R, d, d)

    def count(self, name: str, mask: torch.Tensor) -> None:
        """Add a per-replicate event count."""
        prev = self.events.get(name)
        inc = mask.to(torch.int64)
        self.events[name] = inc if prev is None else prev + inc

    def ellipsoid(self):
        """(centre (R, d), M (R, d, d), radius (R,)) of the confidence ellipsoid (ball sampling)."""
        raise NotImplementedError

    def choose_ball(self, t: int) -> torch.Tensor:
        """Sample θ̃ in the ellipsoid (Gaussian), play θ̃/‖θ̃‖."""
        c, M, r = self.ellipsoid()
        Lc = torch.linalg.cholesky(M)
        z = self.rand["normal"][:, t]
        dev = torch.linalg.solve_triangular(Lc.transpose(-1, -2), z.unsqueeze(-1), upper=True).squeeze(-1)
        th = c + r.unsqueeze(-1) * dev
        return th / th.norm(dim=-1, keepdim=True).clamp(min=torch.finfo(th.dtype).tiny)


class _MLEPolicy(Policy):
    """Shared history and MLE for OFULog-r, GLM-UCB and TS-Laplace.

    The history is X (R, n, d), y (R, n), one row an observation; on a fixed arm set (`bind_arms`) it is kept by
    arm instead, X = the K arms, w (R, K) the pull counts and y (R, K) the reward sums: the same loss, gradient
    and Hessian (summed by arm), at a cost that no longer grows with t."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.X = torch.zeros(self.R, self.T, self.d, dtype=self.dtype, device=self.device)
        self.Y = torch.zeros(self.R, self.T, dtype=self.dtype, device=self.device)
        self.W = None
        self.theta_hat = torch.zeros(self.R, self.d, dtype=self.dtype, device=self.device)

    def bind_arms(self, arms: torch.Tensor) -> None:
        """Keep the history by arm: `arms` (R, K, d) is the arm set of every round."""
        self.X = arms
        self.Y = torch.zeros(arms.shape[:2], dtype=self.dtype, device=self.device)
        self.W = torch.zeros_like(self.Y)

    def lam(self) -> float:
        return float(self.d)

    def refit_due(self) -> bool:
        every = int(self.cfg.get("lazy_every", 1))
        return self.n <= 200 or every <= 1 or self.n % every == 0

    def record(self, x, y) -> None:
        if self.W is not None:
            hit = (self.X == x.unsqueeze(1)).all(-1).to(self.dtype)  # (R, K): the played arm (x is one of them)
            hit = hit * (hit.cumsum(-1) == 1)  # the first of identical arms
            self.W = self.W + hit
            self.Y = self.Y + hit * y.unsqueeze(-1)
        else:
            self.X[:, self.n] = x
            self.Y[:, self.n] = y
        self.n += 1

    def hist(self):
        """(X, y, w) of the loss (see `log_loss`): w None for one row an observation."""
        if self.W is not None:
            return self.X, self.Y, self.W
        return self.X[:, :self.n], self.Y[:, :self.n], None

    def refit(self) -> None:
        if self.refit_due():
            X, Y, W = self.hist()
            self.theta_hat, conv = fit_mle(X, Y, self.lam(), self.theta_hat, w=W)
            self.count("newton_not_converged", ~conv)


class OFULogR(_MLEPolicy):
    """OFULog-r (Abeille, Faury, Calauzènes 2021) with the exact batched planner; β_t times `beta_scale`."""

    name = "ofulog-r"

    def lam(self) -> float:
        return self.d * math.log(2 + self.n)

    def choose(self, arms: torch.Tensor, t: int) -> torch.Tensor:
        if self.n == 0:
            return self.rand["first_arm"]
        X, Y, W = self.hist()
        lam = self.lam()
        S = self.S if self.cfg.get("norm_constraint", True) else None
        _, H = grad_hess(self.theta_hat, X, Y, lam, w=W)
        beta = ofulogr_beta(torch.linalg.slogdet(H)[1], lam, self.d, self.S, self.delta)
        beta = beta * float(self.cfg.get("beta_scale", 1.0))
        L_hat = log_loss(self.theta_hat, X, Y, lam, W)
        centre = self.theta_hat
        if S is not None:
            inner = 0.999 * S
            outside = self.theta_hat.norm(dim=-1) >= inner
            if device_any(outside):
                cb, _ = fit_mle(X, Y, lam, self.theta_hat * (inner / self.theta_hat.norm(dim=-1, keepdim=True)
                                                              .clamp(min=inner)), radius=inner, w=W)
                centre = torch.where(outside.unsqueeze(-1), cb, self.theta_hat)
        gap = log_loss(centre, X, Y, lam, W) - L_hat
        empty = gap >= beta
        self.count("empty_confidence_set", empty)
        beta = torch.where(empty, 2 * gap, beta)
        values, _ = plan(arms, X, Y, lam, L_hat, beta, centre, S, w=W)
        return values.argmax(-1)

    def update(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.record(x, y)
        self.refit()


def device_any(mask: torch.Tensor) -> bool:
    """`mask.any()` on CPU (free); True on CUDA (no host sync: the masked branch always runs there)."""
    return bool(mask.any()) if mask.device.type == "cpu" else True


class GLMUCB(_MLEPolicy):
    """GLM-UCB (Filippi et al. 2010): MLE centre, κ-scaled bonus in the Gram metric."""

    name = "glm-ucb"

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        lam = self.lam()
        self.V = lam * self.eye.clone()
        self.Vinv = self.eye.clone() / lam

    def ellipsoid(self):
        r = glmucb_radius(torch.linalg.slogdet(self.V)[1], self.lam(), self.d, self.S, self.delta)
        return self.theta_hat, self.V, r

    def choose(self, arms, t):
        c, _, r = self.ellipsoid()
        ucb = mu((arms * c.unsqueeze(1)).sum(-1)) + r.unsqueeze(-1) * weighted_norm(arms, self.Vinv)
        return ucb.argmax(-1)

    def update(self, x, y):
        self.V = self.V + x.unsqueeze(-1) * x.unsqueeze(-2)
        self.Vinv = sherman_morrison(self.Vinv, x, 1.0)
        self.record(x, y)
        self.refit()


class TSLaplace(_MLEPolicy):
    """Thompson sampling from the Laplace approximation N(θ̂, v²H⁻¹), λ = d."""

    name = "ts-laplace"

    def ellipsoid(self):
        X, Y, W = self.hist()
        _, H = grad_hess(self.theta_hat, X, Y, self.lam(), w=W)
        v = float(self.cfg.get("ts_scale", 1.0))
        return self.theta_hat, H, torch.full((self.R,), v, dtype=self.dtype, device=self.device)

    def sample(self, t):
        c, M, r = self.ellipsoid()
        Lc = torch.linalg.cholesky(M)
        z = self.rand["normal"][:, t]
        dev = torch.linalg.solve_triangular(Lc.transpose(-1, -2), z.unsqueeze(-1), upper=True).squeeze(-1)
        return c + r.unsqueeze(-1) * dev

    def choose(self, arms, t):
        th = self.sample(t)
        return (arms * th.unsqueeze(1)).sum(-1).argmax(-1)

    def update(self, x, y):
        self.record(x, y)
        self.refit()


class ECOLog(Policy):
    """adaECOLog (Faury et al. 2022): one projected online Newton-like update per round, data-dependent radius."""

    name = "ecolog"

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.lam = 1.0
        self.V = self.lam * self.eye.clone()
        self.Vinv = self.eye.clone() / self.lam
        self.theta = torch.zeros(self.R, self.d, dtype=self.dtype, device=self.device)
        self.cum_loss = torch.zeros(self.R, dtype=self.dtype, device=self.device)
        self.c = 1

    def ellipsoid(self):
        return self.theta, self.V, ecolog_radius(self.c, self.lam, self.S, self.delta, self.cum_loss)

    def choose(self, arms, t):
        c, _, r = self.ellipsoid()
        ucb = mu((arms * c.unsqueeze(1)).sum(-1)) + r.unsqueeze(-1) * weighted_norm(arms, self.Vinv)
        self.c += 1
        return ucb.argmax(-1)

    def choose_ball(self, t):
        x = super().choose_ball(t)
        self.c += 1
        return x

    def _descend(self, x, y) -> torch.Tensor:
        """Projected gradient descent on ½‖θ − θ_t‖²_Ṽ + ℓ(θ; x, y) (y None: the reward-free gradient
        (2μ − 1)x) in the whitened geometry, from θ_t."""
        S = self.S
        eta = 0.75 / (0.25 + 1 / (1 + S / 2))
        steps = int(math.floor((1 / 0.75) * math.ceil((9 / 4 + S / 8) * math.log(max(S * self.c, 1.0 + 1e-12)))))
        theta0 = self.theta
        th = theta0.clone()
        Vx = (self.Vinv @ x.unsqueeze(-1)).squeeze(-1)
        eig = torch.linalg.eigh(self.V) if self.cfg.get("projection", "ball") == "ball" else None
        for _ in range(max(steps, 1)):
            m = mu((th * x).sum(-1))
            gl = (m - y) if y is not None else (2 * m - 1)
            th = th - eta * ((th - theta0) + gl.unsqueeze(-1) * Vx)
            th = project_ball(th, self.V, S, self.cfg.get("projection", "ball"), eig=eig)
        return th

    def update(self, x, y):
        # the counter c was advanced at choose time, as the reference does at pull
        theta_new = self._descend(x, y)
        theta_bar = self._descend_bar(theta_new, x)
        diff = theta_new - theta_bar
        disc = torch.einsum("rd,rde,re->r", diff, self.V, diff)
        sens = dmu((theta_new * x).sum(-1))
        sens_bar = dmu((theta_bar * x).sum(-1))
        self.count("ecolog_condition", sens_bar / sens > 2)

        def loss(th):
            z = (th * x).sum(-1)
            return softplus(z) - y * z

        self.cum_loss = self.cum_loss + 2 * (1 + self.S) * (loss(theta_bar) - loss(theta_new)) - 0.5 * disc
        self.theta = theta_new
        self.V = self.V + sens.view(-1, 1, 1) * x.unsqueeze(-1) * x.unsqueeze(-2)
        self.Vinv = sherman_morrison(self.Vinv, x, sens)

    def _descend_bar(self, theta_new, x):
        """θ̄ from the new estimate (as the reference's `fit_online_logistic_estimate_bar(current_estimate=θ)`)."""
        keep = self.theta
        self.theta = theta_new
        try:
            return self._descend(x, None)
        finally:
            self.theta = keep


class GLOC(Policy):
    """GLOC (Jun et al. 2017): online Newton step iterate θ as the centre, OCO-regret-based radius."""

    name = "gloc"

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.lam = float(self.d)
        self.k = float(dmu(torch.tensor(self.S, dtype=torch.float64)))
        self.V = self.lam * self.eye.clone()
        self.Vinv = self.eye.clone() / self.lam
        self.theta = torch.zeros(self.R, self.d, dtype=self.dtype, device=self.device)
        self.B = torch.full((self.R,), 2 * self.k * self.S**2 * self.lam, dtype=self.dtype, device=self.device)

    def ellipsoid(self):
        return self.theta, self.V, gloc_radius(self.B, self.S, self.delta)

    def choose(self, arms, t):
        c, _, r = self.ellipsoid()
        ucb = mu((arms * c.unsqueeze(1)).sum(-1)) + r.unsqueeze(-1) * weighted_norm(arms, self.Vinv)
        return ucb.argmax(-1)

    def update(self, x, y):
        self.V = self.V + x.unsqueeze(-1) * x.unsqueeze(-2)  # at pull time, before the learning step
        self.Vinv = sherman_morrison(self.Vinv, x, 1.0)
        grad = (mu((self.theta * x).sum(-1)) - y).unsqueeze(-1) * x
        self.B = self.B + (0.5 / self.k) * torch.einsum("rd,rde,re->r", grad, self.Vinv, grad)
        u = self.theta - (self.Vinv @ grad.unsqueeze(-1)).squeeze(-1) / self.k
        self.theta = project_ball(u, self.V, self.S, self.cfg.get("projection", "ball"))


class OL2M(Policy):
    """OL2M (Zhang et al. 2016): online estimate with a β-scaled Gram matrix."""

    name = "ol2m"

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.lam = float(self.d)
        self.beta = 0.5 / (1 + math.exp(self.S))
        self.V = self.lam * self.eye.clone()
        self.Vinv = self.eye.clone() / self.lam
        self.theta = torch.zeros(self.R, self.d, dtype=self.dtype, device=self.device)
        self.c = 1

    def ellipsoid(self):
        r = ol2m_radius(torch.linalg.slogdet(self.V)[1], self.c, self.lam, self.d, self.S, self.delta)
        return self.theta, self.V, r

    def choose(self, arms, t):
        c, _, r = self.ellipsoid()
        return (mu((arms * c.unsqueeze(1)).sum(-1)) + r.unsqueeze(-1) * weighted_norm(arms, self.Vinv)).argmax(-1)

    def update(self, x, y):
        self.V = self.V + (self.beta / 2) * x.unsqueeze(-1) * x.unsqueeze(-2)
        self.Vinv = sherman_morrison(self.Vinv, x, self.beta / 2)
        self.c += 1
        grad = (mu((self.theta * x).sum(-1)) - y).unsqueeze(-1) * x
        u = self.theta - (self.Vinv @ grad.unsqueeze(-1)).squeeze(-1)
        self.theta = project_ball(u, self.V, self.S, self.cfg.get("projection", "ball"))


POLICIES = {"ofulog-r": OFULogR, "ecolog": ECOLog, "glm-ucb": GLMUCB, "gloc": GLOC, "ol2m": OL2M,
            "ts-laplace": TSLaplace}
