"""`--refit mlp`: every (method, seed, k) refit as one stacked model, trained in one set of batched kernels.

The classifier is the google-research sequential-attention benchmark's (experiments/run.py): one hidden
layer of 67 ReLU units, Adam lr 2e-4, batch 256, early stopping on a 12.5 % validation split of the
training split. M refits with different column sets are stacked: the inputs are gathered into an
(M, n, k_max) tensor, zero-padded past each model's k, and the weights are (M, k_max, 67) and (M, 67, C),
so one `baddbmm` runs every model (the same computation as `torch.func.stack_module_state` + `vmap` over M
copies of the MLP). Zero-padded inputs give zero gradients to their weight rows, so a padded model trains
exactly as it would alone. Each model keeps its own best-validation weights.

Choices where the source is silent: at most 300 epochs with a patience of 30 epochs (all models stop when
none has improved for 30 epochs); PyTorch's default Linear initialisation U(±1/sqrt(fan_in)) with the
model's true fan-in k, drawn from a generator seeded per model (`init_seeds`), so a model's result does not
depend on which others it was stacked with; inputs standardised on the training split.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F


def _init(k: int, kmax: int, hidden: int, n_classes: int, seed: int):
    g = torch.Generator().manual_seed(int(seed))
    b1 = 1 / math.sqrt(k)
    w1 = torch.zeros(kmax, hidden)
    w1[:k] = (torch.rand(k, hidden, generator=g) * 2 - 1) * b1
    bias1 = (torch.rand(1, hidden, generator=g) * 2 - 1) * b1
    b2 = 1 / math.sqrt(hidden)
    w2 = (torch.rand(hidden, n_classes, generator=g) * 2 - 1) * b2
    bias2 = (torch.rand(1, n_classes, generator=g) * 2 - 1) * b2
    return w1, bias1, w2, bias2


def refit_mlp_stacked(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                      col_sets: list, *, n_classes: int, device: torch.device, init_seeds: list[int] | None = None,
                      split_seed: int = 0, hidden: int = 67, lr: float = 2e-4, batch_size: int = 256,
                      max_epochs: int = 300, patience: int = 30, val_fraction: float = 0.125) -> list[dict]:
    """Train one MLP per column set (stacked) and score each on the test split."""
    from wisecli.runtime.device import one_cpu_thread

    with one_cpu_thread(device):
        return _refit(x_train, y_train, x_test, y_test, col_sets, n_classes=n_classes, device=device,
                      init_seeds=init_seeds, split_seed=split_seed, hidden=hidden, lr=lr, batch_size=batch_size,
                      max_epochs=max_epochs, patience=patience, val_fraction=val_fraction)


def _refit(x_train, y_train, x_test, y_test, col_sets, *, n_classes, device, init_seeds, split_seed, hidden, lr,
           batch_size, max_epochs, patience, val_fraction) -> list[dict]:
    from sklearn.metrics import balanced_accuracy_score

    from .train import Scaler, stratified_holdout

    t0 = time.perf_counter()
    m_count = len(col_sets)
    ks = [len(c) for c in col_sets]
    kmax = max(ks)
    d = x_train.shape[1]
    scaler = Scaler.fit(x_train)
    pad = np.zeros((1,), dtype=np.float32)
    idx = np.full((m_count, kmax), d)
    for m, cols in enumerate(col_sets):
        idx[m, :len(cols)] = np.asarray(cols)

    def gather(x):  # (n, d) -> (M, n, kmax), column d is the zero pad
        xs = torch.as_tensor(np.hstack([scaler.transform(x), np.broadcast_to(pad, (len(x), 1))]), device=device)
        return xs[:, torch.as_tensor(idx, device=device)].permute(1, 0, 2).contiguous()

    fit_idx, val_idx = stratified_holdout(y_train, val_fraction, split_seed)
    xall = gather(x_train)
    xf, xv = xall[:, fit_idx], xall[:, val_idx]
    yf = torch.as_tensor(y_train[fit_idx], device=device)
    yv = torch.as_tensor(y_train[val_idx], device=device)
    seeds = init_seeds if init_seeds is not None else list(range(m_count))
    parts = [_init(k, kmax, hidden, n_classes, s) for k, s in zip(ks, seeds)]
    params = [torch.stack([p[i] for p in parts]).to(device).requires_grad_() for i in range(4)]
    opt = torch.optim.Adam(params, lr=lr)
    best = [p.detach().clone() for p in params]
    best_loss = torch.full((m_count,), math.inf, device=device)
    gen = torch.Generator(device=device).manual_seed(split_seed)

    def logits(x, w1, b1, w2, b2):
        return torch.baddbmm(b2, torch.relu(torch.baddbmm(b1, x, w1)), w2)

    n_fit, stale = len(fit_idx), 0
    for _ in range(max_epochs):
        order = torch.randperm(n_fit, generator=gen, device=device)
        for s in range(0, n_fit, batch_size):
            b = order[s:s + batch_size]
            out = logits(xf[:, b], *params)  # (M, B, C)
            # sum over models of each model's mean loss: the models' gradients stay independent
            loss = F.cross_entropy(out.reshape(-1, n_classes), yf[b].repeat(m_count), reduction="sum") / len(b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            lv = F.cross_entropy(logits(xv, *params).permute(0, 2, 1), yv.expand(m_count, -1),
                                 reduction="none").mean(1)
            better = lv < best_loss
            best_loss = torch.where(better, lv, best_loss)
            for b_, p in zip(best, params):
                b_[better] = p.detach()[better]
        stale = 0 if bool(better.any()) else stale + 1
        if stale >= patience:
            break
    with torch.no_grad():
        pred = logits(gather(x_test), *best).argmax(-1).cpu().numpy()  # (M, n_test)
    secs = (time.perf_counter() - t0) / m_count
    return [{"accuracy": float(np.mean(p == y_test)), "balanced_accuracy": float(balanced_accuracy_score(y_test, p)),
             "refit_seconds": secs} for p in pred]
