"""Empirical V-information per layer (spec §2.2): cross-fitted probes, the prior baseline, bootstrap CIs.

Definitions (Xu, Zhao, Song, Stewart, Ermon, "A theory of usable information under computational constraints",
ICLR 2020): H_V(s|∅) = inf_f E[−log₂ f[∅](s)], H_V(s|X) = inf_f E[−log₂ f[X](s)], I_V(X→s) = H_V(s|∅) − H_V(s|X).
Estimator (reconstructed, as the spec says):

- Families: `linear` = L2-regularised multinomial logistic regression on standardised sketch(X) (binary s: one
  logit, sigmoid, the parametrisation scikit-learn uses, so a strength C means the same there and here);
  `quadratic` = the same on [sketch(X), sketch'(X⊙X)] (a second, independently seeded sketch); `forest` =
  scikit-learn RandomForestClassifier (300 trees, CPU), its probabilities floored at 1e-3 and renormalised
  [reconstructed: a forest gives 0 probabilities, log 0 is not an estimate]. `mlp` = one hidden layer of 128
  ReLU units on the standardised linear sketch, scikit-learn MLPClassifier's objective (mean CE + alpha(‖W1‖² +
  ‖W2‖²)/(2 n_train), alpha = 1, the logistic families' C = 1 convention), full-batch Adam (lr 1e-2, ≤ 500 steps)
  batched over layers × {attribute, control} × outer folds, early stopping on one inner fold of the training
  part (grouped by client when groups exist, about a quarter): the step with the lowest inner-fold CE is kept
  [reconstructed: the spec says "weight decay, early stopping on an inner split"; alpha is fixed, not
  cross-validated, to keep one training per problem]. Its output layer starts at the training part's prior
  (W2 = 0, b2 = log prior), so step 0 is f[∅] and early stopping cannot keep a probe worse than the prior on the
  inner fold (a random start read -0.01 bits with a CI excluding 0 on independent data; prior start -0.001).
  A problem still improving at the last step is flagged `status: warn` (separable data: the CE keeps falling).
- The logistic objective per problem is mean CE + ||w||² / (2 C n_train) (no penalty on the intercept): the
  minimiser is scikit-learn's `LogisticRegression(C=C)`. All problems of one strength (datasets = layers ×
  {attribute, control} × outer folds × (inner folds + refit)) are solved together: binary s by batched Newton
  (IRLS, one (d+1)-square solve per problem and step, per-problem backtracking, warm-started along the
  strength path from strong to weak); more classes by ONE L-BFGS (strong Wolfe) on the sum of the
  objectives (separable, so the joint minimiser is each problem's own).
  fp64 (the problems are small; the held-out losses then match scikit-learn to 1e-3 bits). A problem whose
  final gradient max-norm exceeds 1e-4 is flagged `status: warn` for its layer.
- Cross-fitting: `folds` outer folds grouped by client when groups exist (no client on both sides), else
  stratified by s; the strength is chosen per outer fold by an inner (grouped) `min(4, #train groups)`-fold CV
  on log-loss over C ∈ {1e-4, ..., 10} with the one-standard-error rule [reconstructed]: the strongest C whose
  per-client (else per-item) inner-CV loss is within one standard error of the paired differences from the
  best C; with few clients a lucky weak C otherwise overfits client identity and the permutation control
  reads -0.1 bits (measured on the digits demo). The chosen strength is refitted on the whole training part.
- Standardisation [reconstructed]: each feature column is centred and scaled with the mean and standard
  deviation of all observations (labels unused), once per layer.
- Prior: the training part's class frequencies with a Jeffreys +½ count [reconstructed: an absent class would
  otherwise make the baseline infinite; the effect is ≤ 1/(2n) in probability].
- Î_V = mean over all held-out items of log₂ f[X](s) − log₂ prior(s); 95 % percentile bootstrap over items
  (1000 resamples, seeded). Raw and clipped at 0 are both reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

STRENGTHS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
FAMILIES = ("linear", "quadratic", "mlp", "forest")
LN2 = math.log(2.0)


# ------------------------------------------------------------------------------------------------ folds

def outer_folds(s: np.ndarray, groups: np.ndarray | None, folds: int, seed: int) -> np.ndarray:
    """(n,) fold index: grouped (whole groups, balanced by size, seeded order) when `groups` is given, else
    stratified by s (seeded)."""
    rng = np.random.default_rng(seed)
    n = len(s)
    out = np.empty(n, dtype=np.int64)
    if groups is not None:
        ug = np.unique(groups)
        # stratify groups by their majority attribute so every fold sees every class where possible
        major = np.array([np.bincount(s[groups == g]).argmax() for g in ug])
        order = []
        for c in np.unique(major):
            order.extend(rng.permutation(ug[major == c]).tolist())
        for i, g in enumerate(order):
            out[groups == g] = i % folds
        return out
    for c in np.unique(s):
        idx = rng.permutation(np.flatnonzero(s == c))
        out[idx] = (np.arange(len(idx)) + rng.integers(folds)) % folds
    return out


def check_folds(s: np.ndarray, groups: np.ndarray | None, folds: int) -> None:
    """InputError when the data cannot be cross-fitted (spec §8): one class, fewer groups than folds, fewer
    than 10 observations of a class per fold."""
    from wisecli.cli.errors import InputError

    classes, counts = np.unique(s, return_counts=True)
    if len(classes) < 2:
        raise InputError("the private attribute has one class only: there is nothing to leak",
                         hint="check --attribute; it needs at least two values")
    if groups is not None and len(np.unique(groups)) < folds:
        raise InputError(f"{len(np.unique(groups))} clients (groups) but --folds {folds}: grouped folds need at "
                         "least one client per fold", hint="lower --folds or add clients (--clients)")
    if counts.min() < 10 * folds:
        raise InputError(f"attribute class {classes[counts.argmin()]!r} has {counts.min()} observations: fewer "
                         f"than 10 per fold ({folds} folds)", hint="raise --n-obs or lower --folds")


# ------------------------------------------------------------------------------------------------ probes

def _standardise(X: Tensor) -> Tensor:
    mu = X.mean(dim=-2, keepdim=True)
    sd = X.std(dim=-2, keepdim=True)
    return (X - mu) / torch.where(sd > 1e-12, sd, torch.ones_like(sd))


def _logits(X: Tensor, W: Tensor, b: Tensor, binary: bool) -> Tensor:
    """X (G, n, d), W (G, Q, d, k), b (G, Q, k) -> (G, Q, n, K) with a zero column first when binary."""
    z = torch.einsum("gnd,gqdk->gqnk", X, W) + b[:, :, None, :]
    if binary:
        z = torch.cat([torch.zeros_like(z), z], dim=-1)
    return z


def fit_logistic(X: Tensor, y: Tensor, masks: Tensor, C: float, K: int, max_iter: int = 500,
                 tol: float = 1e-7) -> tuple[Tensor, Tensor, Tensor]:
    """Batched L2 logistic regressions. X (G, n, d) features, y (G, n) labels in 0..K-1, masks (Q, n) bool:
    problem (g, q) trains on the items masks[q] of dataset g with strength C. Returns (W (G, Q, d, k),
    b (G, Q, k), final gradient max-norm per problem (G, Q)); k = 1 when K == 2."""
    G, n, d = X.shape
    Q = masks.shape[0]
    binary = K == 2
    k = 1 if binary else K
    Wb = torch.zeros(G, Q, d + 1, k, dtype=X.dtype, device=X.device, requires_grad=True)
    m = masks.to(X.dtype)
    cnt = m.sum(dim=1).clamp_min(1.0)  # (Q,)
    onehot = torch.nn.functional.one_hot(y, K).to(X.dtype)  # (G, n, K)

    def objective() -> Tensor:
        W, b = Wb[:, :, :d], Wb[:, :, d]
        z = _logits(X, W, b, binary)
        ce = -(torch.log_softmax(z, dim=-1) * onehot[:, None]).sum(-1)  # (G, Q, n)
        data = (ce * m).sum(-1) / cnt
        pen = (W ** 2).sum(dim=(-1, -2)) / (2.0 * C * cnt)
        return (data + pen).sum()

    opt = torch.optim.LBFGS([Wb], lr=1.0, max_iter=max_iter, history_size=20, tolerance_grad=tol,
                            tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    opt.step(closure)
    Wb.grad = None
    loss = objective()
    (g,) = torch.autograd.grad(loss, Wb)
    gmax = g.abs().amax(dim=(-1, -2))
    Wd = Wb.detach()
    return Wd[:, :, :d], Wd[:, :, d], gmax


def _hessians(Xt: Tensor, w: Tensor, budget: int = 1 << 21) -> Tensor:
    """(G, Q, d, d) X^T diag(w_q) X for every dataset g and problem q, in chunks of problems so the weighted copy
    of X stays within `budget` entries (large temporaries cost page faults: seconds of system time on CPU)."""
    G, n, d = Xt.shape
    Q = w.shape[1]
    step = max(1, budget // max(1, G * n * d))
    out = torch.empty(G, Q, d, d, dtype=Xt.dtype, device=Xt.device)
    for i in range(0, Q, step):
        wx = Xt[:, None] * w[:, i:i + step, :, None]
        out[:, i:i + step] = wx.transpose(-1, -2) @ Xt[:, None]
    return out


def fit_logistic_newton(X: Tensor, y: Tensor, masks: Tensor, C: float, init: Tensor | None = None,
                        max_iter: int = 50, tol: float = 1e-9) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Binary s: the same problems as `fit_logistic` (sigmoid parametrisation) solved by batched Newton (IRLS)
    with a per-problem backtracking line search, warm-started from `init` (G, Q, d+1). Returns (W (G, Q, d, 1),
    b (G, Q, 1), gradient max-norm in mean-loss units (G, Q), the stacked solution for the next warm start)."""
    G, n, d = X.shape
    Xt = torch.cat([X, torch.ones(G, n, 1, dtype=X.dtype, device=X.device)], dim=-1)  # (G, n, d+1)
    m = masks.to(X.dtype)[None]  # (1, Q, n)
    cnt = m.sum(-1).clamp_min(1.0)  # (1, Q)
    yf = y.to(X.dtype)[:, None, :]  # (G, 1, n)
    lam = torch.full((d + 1,), 1.0 / C, dtype=X.dtype, device=X.device)
    lam[d] = 1e-10
    Q = masks.shape[0]
    th = torch.zeros(G, Q, d + 1, dtype=X.dtype, device=X.device) if init is None else init.clone()

    def obj(t: Tensor) -> Tensor:
        z = torch.einsum("gnd,gqd->gqn", Xt, t)
        return (m * (torch.nn.functional.softplus(z) - yf * z)).sum(-1) + 0.5 * (lam * t * t).sum(-1)

    steps = torch.tensor([0.5 ** k for k in range(12)], dtype=X.dtype, device=X.device)
    gmax = torch.zeros(G, Q, dtype=X.dtype, device=X.device)
    for _ in range(max_iter):
        z = torch.einsum("gnd,gqd->gqn", Xt, th)
        p = torch.sigmoid(z)
        g = torch.einsum("gnd,gqn->gqd", Xt, m * (p - yf)) + lam * th
        gmax = (g / cnt[..., None]).abs().amax(-1)
        if float(gmax.max()) < tol:
            break
        w = m * p * (1 - p)
        # the Hessian in fp32 (half the time); gradient, objective and solve stay fp64, so an inexact Newton
        # direction still converges to the fp64 optimum (the stopping test is on the fp64 gradient)
        H = _hessians(Xt.float(), w.float()).double() + torch.diag(lam)
        step = torch.linalg.solve(H, g[..., None])[..., 0]
        f0 = obj(th)
        slack = 1e-12 * f0.abs()
        full = th - step
        if bool((obj(full) <= f0 + slack).all()):
            th = full
            continue
        trial = th[None] - steps[:, None, None, None] * step[None]  # (S, G, Q, d+1)
        ft = torch.stack([obj(t) for t in trial])  # (S, G, Q)
        ok = ft <= f0[None] + slack[None]
        first = torch.where(ok.any(0), ok.to(torch.int8).argmax(0), torch.full_like(f0, len(steps) - 1, dtype=torch.long))
        th = th - steps[first][..., None] * step
    return th[..., :d, None], th[..., d:], gmax, th


def log_probs(X: Tensor, W: Tensor, b: Tensor, K: int) -> Tensor:
    """(G, Q, n, K) natural-log class probabilities of every item under every fitted problem."""
    return torch.log_softmax(_logits(X, W, b, K == 2), dim=-1)


@dataclass
class VInfo:
    """One layer × family estimate: pointwise bits (n,), the estimate, its CI, the chosen strengths, status."""

    pointwise: np.ndarray
    bits: float
    ci95: tuple[float, float]
    h_prior_bits: float
    strengths: list[float] = field(default_factory=list)
    status: str = "ok"

    def record(self) -> dict:
        return {"vinfo_bits": self.bits, "ci95": list(self.ci95), "vinfo_clipped": max(0.0, self.bits),
                "h_prior_bits": self.h_prior_bits, "strengths": self.strengths, "status": self.status}


def bootstrap_ci(pointwise: np.ndarray, resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile bootstrap CI of the mean of `pointwise`, vectorised."""
    rng = np.random.default_rng(seed)
    n = len(pointwise)
    idx = rng.integers(0, n, size=(resamples, n))
    means = pointwise[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def _prior_logp(s: np.ndarray, train: np.ndarray, K: int) -> np.ndarray:
    counts = np.bincount(s[train], minlength=K).astype(np.float64) + 0.5
    return np.log(counts / counts.sum())


def select_strength(losses: np.ndarray, train: np.ndarray, groups: np.ndarray | None, one_se: bool = True) -> int:
    """Index of the chosen strength from inner-CV item losses (S, n) over the `train` items: the minimum mean
    loss, or with `one_se` the strongest regularisation (lowest index) whose per-unit mean loss (units = groups,
    else items) exceeds the minimum's by at most one standard error of the paired per-unit differences."""
    L = losses[:, train]
    best = int(np.argmin(L.mean(axis=1)))
    if not one_se:
        return best
    if groups is not None:
        g = groups[train]
        units = np.stack([L[:, g == u].mean(axis=1) for u in np.unique(g)], axis=1)  # (S, units)
    else:
        units = L
    k = units.shape[1]
    for c in range(best):
        d = units[c] - units[best]
        if d.mean() <= d.std(ddof=1) / np.sqrt(k):
            return c
    return best


def vinfo_logistic(features: Tensor, labels: np.ndarray, fold: np.ndarray, groups: np.ndarray | None, *,
                   K: int | None = None, strengths=STRENGTHS, inner: int = 4, seed: int = 0,
                   resamples: int = 1000, max_iter: int = 500, one_se: bool = True) -> list[VInfo]:
    """Cross-fitted V-information of G datasets at once: features (G, n, d) (already the family's features),
    labels (G, n) ints (each dataset its own labels: the control permutes them), fold (n,) outer folds, groups
    (n,) or None for the inner CV. Returns one VInfo per dataset."""
    device = features.device
    X = _standardise(features.to(torch.float64))
    G, n, _ = X.shape
    labels = np.asarray(labels).reshape(G, n)
    K = int(K or labels.max() + 1)
    F = int(fold.max()) + 1
    # problems: for every outer fold, the inner folds then the refit
    masks, evals, owner = [], [], []
    inner_of = np.full(n, -1)
    for f in range(F):
        tr = fold != f
        idx = np.flatnonzero(tr)
        if groups is not None:
            J = max(2, min(inner, len(np.unique(groups[idx]))))
            sub = outer_folds(labels[0][idx], groups[idx], J, seed + 17 * f + 1)
        else:
            J = inner
            sub = outer_folds(labels[0][idx], None, J, seed + 17 * f + 1)
        inner_of[idx] = sub
        for j in range(J):
            mtr = np.zeros(n, bool)
            mtr[idx[sub != j]] = True
            mev = np.zeros(n, bool)
            mev[idx[sub == j]] = True
            masks.append(mtr)
            evals.append(mev)
            owner.append((f, j))
        masks.append(tr)
        evals.append(fold == f)
        owner.append((f, -1))
    M = torch.as_tensor(np.stack(masks), device=device)
    E = np.stack(evals)
    y = torch.as_tensor(labels, device=device)
    yn = labels
    cv_items = np.zeros((G, len(strengths), F, n))  # inner-CV loss of each training item (0 elsewhere)
    held = np.zeros((G, len(strengths), n))  # log-prob of the true class from the refit of each strength
    worst = np.zeros((G, len(strengths), F))
    warm = None
    for ci, C in enumerate(strengths):
        if K == 2:
            W, b, gmax, warm = fit_logistic_newton(X, y, M, float(C), init=warm)
        else:
            W, b, gmax = fit_logistic(X, y, M, float(C), K, max_iter=max_iter)
        lp = log_probs(X, W, b, K)  # (G, Q, n, K)
        lp_true = torch.gather(lp, 3, y[:, None, :, None].expand(G, lp.shape[1], n, 1))[..., 0].cpu().numpy()
        gm = gmax.cpu().numpy()
        for q, (f, j) in enumerate(owner):
            if j >= 0:
                cv_items[:, ci, f, E[q]] = -lp_true[:, q][:, E[q]]
            else:
                held[:, ci, E[q]] = lp_true[:, q][:, E[q]]
                worst[:, ci, f] = gm[:, q]
    out = []
    for g in range(G):
        point = np.empty(n)
        chosen, status = [], "ok"
        for f in range(F):
            best = select_strength(cv_items[g, :, f], fold != f, groups, one_se)
            chosen.append(float(strengths[best]))
            te = fold == f
            prior = _prior_logp(yn[g], fold != f, K)
            point[te] = (held[g, best, te] - prior[yn[g][te]]) / LN2
            if worst[g, best, f] > 1e-4:
                status = "warn"
        prior_all = np.concatenate([-_prior_logp(yn[g], fold != f, K)[yn[g][fold == f]] for f in range(F)])
        out.append(VInfo(point, float(point.mean()), bootstrap_ci(point, resamples, seed), float(prior_all.mean() / LN2),
                         chosen, status))
    return out


def vinfo_forest(features: np.ndarray, labels: np.ndarray, fold: np.ndarray, *, seed: int = 0,
                 trees: int = 300, resamples: int = 1000) -> VInfo:
    """V-information with the `forest` family (scikit-learn, CPU) for one dataset: features (n, d)."""
    from sklearn.ensemble import RandomForestClassifier

    labels = np.asarray(labels)
    K = int(labels.max()) + 1
    point = np.empty(len(labels))
    hp = []
    for f in range(int(fold.max()) + 1):
        tr, te = fold != f, fold == f
        rf = RandomForestClassifier(n_estimators=trees, random_state=seed, n_jobs=1, min_samples_leaf=2)
        rf.fit(features[tr], labels[tr])
        p = np.zeros((te.sum(), K))
        p[:, rf.classes_] = rf.predict_proba(features[te])
        p = np.maximum(p, 1e-3)
        p /= p.sum(axis=1, keepdims=True)
        prior = _prior_logp(labels, tr, K)
        point[te] = (np.log(p[np.arange(te.sum()), labels[te]]) - prior[labels[te]]) / LN2
        hp.append(-prior[labels[te]])
    return VInfo(point, float(point.mean()), bootstrap_ci(point, resamples, seed),
                 float(np.concatenate(hp).mean() / LN2), [], "ok")


MLP_HIDDEN = 128
MLP_ALPHA = 1.0


def fit_mlp(X: Tensor, y: Tensor, train: Tensor, val: Tensor, K: int, *, hidden: int = MLP_HIDDEN,
            alpha: float = MLP_ALPHA, lr: float = 1e-2, max_steps: int = 500, patience: int = 50, seed: int = 0
            ) -> tuple[Tensor, Tensor]:
    """Batched one-hidden-layer ReLU probes. X (G, n, d) features, y (G, n) labels in 0..K-1, train / val (F, n)
    bool masks: problem (g, f) minimises mean CE over train[f] + alpha·(‖W1‖² + ‖W2‖²) / (2 n_train) (scikit-
    learn's MLPClassifier objective; alpha plays 1/C of the logistic families) by full-batch Adam, and keeps
    the parameters of the step with the lowest mean CE on val[f] (early stopping; training stops when no
    problem has improved for `patience` steps). Returns ((G, F, n, K) natural-log class probabilities of every
    item under every problem's kept parameters, (G, F) the step each problem kept)."""
    G, n, d = X.shape
    F = train.shape[0]
    dev, dt = X.device, X.dtype
    gen = torch.Generator().manual_seed(int(seed))
    # nn.Linear's default initialisation (uniform ±1/√fan_in), drawn on the CPU so every device starts alike
    W1 = ((torch.rand(G, F, d, hidden, generator=gen, dtype=torch.float64) * 2 - 1) / math.sqrt(d)).to(dev, dt)
    b1 = ((torch.rand(G, F, hidden, generator=gen, dtype=torch.float64) * 2 - 1) / math.sqrt(d)).to(dev, dt)
    mtr, mva = train.to(dt), val.to(dt)
    ntr, nva = mtr.sum(-1).clamp_min(1.0), mva.sum(-1).clamp_min(1.0)  # (F,)
    onehot = torch.nn.functional.one_hot(y, K).to(dt)[:, None]  # (G, 1, n, K)
    # output layer starts at the prior (W2 = 0, b2 = log of the training part's Jeffreys class frequencies):
    # step 0 is the f[∅] of the definition, so early stopping never keeps a probe worse than the prior on val
    W2 = torch.zeros(G, F, hidden, K, dtype=dt, device=dev)
    counts = (onehot * mtr[None, :, :, None]).sum(2) + 0.5  # (G, F, K)
    b2 = torch.log(counts / counts.sum(-1, keepdim=True))
    params = [p.requires_grad_() for p in (W1, b1, W2, b2)]

    def forward(W1, b1, W2, b2) -> Tensor:
        h = torch.relu(torch.einsum("gnd,gfdh->gfnh", X, W1) + b1[:, :, None])
        return torch.log_softmax(torch.einsum("gfnh,gfhk->gfnk", h, W2) + b2[:, :, None], dim=-1)

    opt = torch.optim.Adam(params, lr=lr)
    best = [p.detach().clone() for p in params]
    best_val = torch.full((G, F), float("inf"), dtype=dt, device=dev)
    best_step = torch.zeros(G, F, dtype=torch.long, device=dev)
    for step in range(max_steps):
        opt.zero_grad()
        lp = forward(*params)
        ce = -(lp * onehot).sum(-1)  # (G, F, n)
        with torch.no_grad():
            vl = (ce * mva).sum(-1) / nva
            better = vl < best_val - 1e-7
            best_val = torch.where(better, vl, best_val)
            best_step = torch.where(better, torch.full_like(best_step, step), best_step)
            for b, p in zip(best, params):
                b.copy_(torch.where(better.view(G, F, *([1] * (p.dim() - 2))), p, b))
        loss = ((ce * mtr).sum(-1) / ntr + alpha * ((W1 ** 2).sum((-1, -2)) + (W2 ** 2).sum((-1, -2))) / (2 * ntr)).sum()
        loss.backward()
        opt.step()
        if step % 10 == 9 and step - int(best_step.max()) > patience:  # one host sync every 10 steps
            break
    with torch.no_grad():
        return forward(*best), best_step


def vinfo_mlp(features: Tensor, labels: np.ndarray, fold: np.ndarray, groups: np.ndarray | None, *,
              K: int | None = None, hidden: int = MLP_HIDDEN, alpha: float = MLP_ALPHA, max_steps: int = 500,
              seed: int = 0, resamples: int = 1000) -> list[VInfo]:
    """Cross-fitted V-information of G datasets with the `mlp` family (see the module docstring): the same
    outer folds, prior, pointwise bits and bootstrap as `vinfo_logistic`. Per outer fold the early-stopping
    split is one inner fold of the training part (grouped by client when groups exist, as the inner CV of the
    logistic families; else stratified), about a quarter of it."""
    device = features.device
    X = _standardise(features.to(torch.float64)).to(torch.float32)
    G, n, _ = X.shape
    labels = np.asarray(labels).reshape(G, n)
    K = int(K or labels.max() + 1)
    F = int(fold.max()) + 1
    tr_m, va_m = np.zeros((F, n), bool), np.zeros((F, n), bool)
    for f in range(F):
        idx = np.flatnonzero(fold != f)
        g = None if groups is None else groups[idx]
        J = 4 if g is None else max(2, min(4, len(np.unique(g))))
        sub = outer_folds(labels[0][idx], g, J, seed + 17 * f + 5)
        va_m[f, idx[sub == 0]] = True
        tr_m[f, idx[sub != 0]] = True
    y = torch.as_tensor(labels, device=device)
    lp, steps = fit_mlp(X, y, torch.as_tensor(tr_m, device=device), torch.as_tensor(va_m, device=device), K,
                        hidden=hidden, alpha=alpha, max_steps=max_steps, seed=seed)
    lp_true = torch.gather(lp, 3, y[:, None, :, None].expand(G, F, n, 1))[..., 0].double().cpu().numpy()
    steps = steps.cpu().numpy()
    out = []
    for g in range(G):
        point = np.empty(n)
        hp = []
        for f in range(F):
            te = fold == f
            prior = _prior_logp(labels[g], fold != f, K)
            point[te] = (lp_true[g, f, te] - prior[labels[g][te]]) / LN2
            hp.append(-prior[labels[g][te]])
        status = "warn" if (steps[g] >= max_steps - 1).any() else "ok"
        out.append(VInfo(point, float(point.mean()), bootstrap_ci(point, resamples, seed),
                         float(np.concatenate(hp).mean() / LN2), [float(alpha)] * F, status))
    return out


def _ranks(a: np.ndarray) -> np.ndarray:
    order = np.argsort(a, kind="mergesort")
    r = np.empty(len(a))
    r[order] = np.arange(len(a), dtype=float)
    for v in np.unique(a):  # ties share their average rank
        m = a == v
        r[m] = r[m].mean()
    return r


def spearman(a, b) -> float | None:
    """Spearman rank correlation (average ranks for ties; equals scipy.stats.spearmanr), None with fewer than 3
    values or a constant side."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(np.corrcoef(_ranks(a), _ranks(b))[0, 1])


def rank_layers(records: list[dict]) -> dict:
    """Across the layers of ONE audited round (spec §5): per layer the V-information of its best family (the
    largest estimate among the families run; `best` records are skipped, they repeat one of them) and the
    attribute-directed sensitivity S_s (`sens_attr_per_param`). Returns {round, n_layers, vinfo_argmax,
    vinfo_bits, vinfo_ci95, vinfo_family, control_max_abs, and when every layer has S_s: sens_argmax,
    sens_attr_per_param, spearman (V-information vs S_s ranks, None with < 3 layers or a constant side),
    top3_overlap}; {} without records."""
    per: dict[str, dict] = {}
    for r in records:
        if r["family"] == "best" or r.get("vinfo_bits") is None or not np.isfinite(r["vinfo_bits"]):
            continue  # a non-finite estimate (written as null) ranks nowhere
        cur = per.get(r["layer"])
        if cur is None or r["vinfo_bits"] > cur["vinfo_bits"]:
            per[r["layer"]] = r
    if not per:
        return {}
    names = list(per)
    v = [per[n]["vinfo_bits"] for n in names]
    s = [per[n].get("sens_attr_per_param") for n in names]
    top = per[names[int(np.argmax(v))]]
    ctl = [abs(r["control_bits"]) for r in records if r["family"] != "best" and r.get("control_bits") is not None
           and np.isfinite(r["control_bits"])]
    out = {"round": int(top["round"]), "n_layers": len(names), "vinfo_argmax": top["layer"],
           "vinfo_bits": top["vinfo_bits"], "vinfo_ci95": top.get("ci95"), "vinfo_family": top["family"],
           "control_max_abs": max(ctl) if ctl else None}
    if all(x is not None and np.isfinite(x) for x in s):
        i = int(np.argmax(s))
        out.update(sens_argmax=names[i], sens_attr_per_param=s[i], spearman=spearman(v, s),
                   top3_overlap=len({names[j] for j in np.argsort(v)[::-1][:3]}
                                    & {names[j] for j in np.argsort(s)[::-1][:3]}))
    return out
