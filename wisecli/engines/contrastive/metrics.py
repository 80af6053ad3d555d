"""Evaluation protocols (spec §5): weighted kNN, the cached linear probe, stratified label subsets, and
semi-supervised fine-tuning.

- kNN (InstDisc, Wu et al. CVPR 2018): L2-normalised frozen backbone features of the eval view, cosine
  similarity, class score sum exp(s/T) over the top k (k capped at the train size), T = 0.07.
- Linear probe `cached`: features standardised with the train mean/std; multinomial logistic regression by
  full-batch L-BFGS (strong Wolfe) on the device, loss mean CE + (l2/2)|W|^2 (bias free), which is
  scikit-learn's objective with C = 1/(l2 n); l2 from {1e-6, ..., 1e-2} on a stratified 10 % hold-out, then
  refit on all.
- Linear probe `augmented` (MoCo's linear classification protocol, He et al. CVPR 2020 §4.1 and its
  `main_lincls.py` [paper, recalled]): the backbone frozen in eval mode (BN running statistics untouched), a
  linear layer on the pooled features (weight N(0, 0.01), bias 0, drawn from a generator seeded by `seed`),
  SGD lr 30, momentum 0.9, no weight decay, batch 256, `epochs` (100) epochs with lr x 0.1 at 60 % and 80 % of
  them (epochs 60 and 80 of 100), each batch a fresh random resized crop (scale 0.08-1, MoCo's lincls crop)
  + flip of the uint8 images on the device; tested on the eval view. [choice] The features are not
  standardised (MoCo feeds raw pooled features; lr 30 is tuned for that); the data order comes from the
  seeded generator, so a run repeats exactly.
- Label subsets: per class round(fraction n_c), at least 1, seeded; subset s of a study uses seed s for
  every arm, so comparisons are paired.
- Semi-supervised [reconstructed, after SimCLR]: backbone + new linear head, SGD momentum 0.9, no weight
  decay, lr 0.01 backbone / 0.1 head, cosine, 60 epochs at <= 1 % labels, 30 above; [choice] batch
  min(64, n); random resized crop (0.2-1) + flip views.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .algorithm import weighted_knn_predict

L2_GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)


def knn_accuracy(train: Tensor, ytr: Tensor, test: Tensor, yte: Tensor, k: int, t: float = 0.07) -> float:
    """Top-1 accuracy of the weighted kNN classifier."""
    c = int(max(int(ytr.max()), int(yte.max()))) + 1
    pred = weighted_knn_predict(F.normalize(train.float(), dim=1), ytr, F.normalize(test.float(), dim=1), k, t, c)
    return float((pred == yte.to(pred.device)).float().mean())


def stratified_subset(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices of a stratified subset: per class round(fraction n_c), at least 1."""
    rng = np.random.default_rng(seed)
    out = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        m = max(1, int(round(fraction * len(idx))))
        out.append(rng.permutation(idx)[:m])
    return np.sort(np.concatenate(out))


def fit_logreg(X: Tensor, y: Tensor, num_classes: int, l2: float, max_iter: int = 100) -> tuple[Tensor, Tensor]:
    """(W (C, D), b (C,)) minimising mean CE + (l2/2)|W|^2 by full-batch L-BFGS."""
    W = torch.zeros(num_classes, X.shape[1], device=X.device, requires_grad=True)
    b = torch.zeros(num_classes, device=X.device, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=max_iter, tolerance_grad=1e-5, tolerance_change=1e-9,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(X @ W.T + b, y) + 0.5 * l2 * (W * W).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return W.detach(), b.detach()


def _topk(logits: Tensor, y: Tensor, k: int) -> float:
    k = min(k, logits.shape[1])
    return float((logits.topk(k, 1).indices == y[:, None]).any(1).float().mean())


def linear_probe(train: Tensor, ytr: Tensor, test: Tensor, yte: Tensor, seed: int = 0, grid=L2_GRID) -> dict:
    """{top1, top5, l2} of the cached linear probe (module docstring)."""
    mu, sd = train.mean(0), train.std(0).clamp_min(1e-6)
    xtr, xte = (train - mu) / sd, (test - mu) / sd
    c = int(max(int(ytr.max()), int(yte.max()))) + 1
    ynp = ytr.cpu().numpy()
    hold = stratified_subset(ynp, 0.1, seed)
    fit_rows = np.setdiff1d(np.arange(len(ynp)), hold)
    best, best_acc = grid[0], -1.0
    if len(fit_rows) >= c:
        h, f = torch.from_numpy(hold).to(xtr.device), torch.from_numpy(fit_rows).to(xtr.device)
        for l2 in grid:
            W, b = fit_logreg(xtr[f], ytr[f], c, l2)
            acc = _topk(xtr[h] @ W.T + b, ytr[h], 1)
            if acc > best_acc:
                best, best_acc = l2, acc
    W, b = fit_logreg(xtr, ytr, c, best)
    logits = xte @ W.T + b
    return {"top1": _topk(logits, yte, 1), "top5": _topk(logits, yte, 5), "l2": best}


def linear_augmented(model, Xtr: Tensor, ytr: Tensor, Xte: Tensor, yte: Tensor, *, device, seed: int = 0,
                     epochs: int = 100, lr: float = 30.0, batch: int = 256, views=None) -> dict:
    """{top1, top5, epochs, lr_schedule} of MoCo's augmented linear probe (module docstring). `views(xb)` maps
    a uint8 batch to standardised float views (default: random resized crop 0.08-1 + flip, standardised)."""
    from wisecli.runtime import augment as A

    backbone = model.encoder_q.backbone
    was = backbone.training
    backbone.eval()
    s = int(Xtr.shape[-1])
    if views is None:
        def views(xb):
            return model.standardise(A.random_flip(A.random_resized_crop(xb, s, scale=(0.08, 1.0))))
    c = int(max(int(ytr.max()), int(yte.max()))) + 1
    g = torch.Generator().manual_seed(int(seed))
    head = torch.nn.Linear(model.encoder_q.feat_dim, c).to(device)
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=g) * 0.01)
        head.bias.zero_()
    opt = torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9, weight_decay=0.0)
    steps = sorted({int(round(0.6 * epochs)), int(round(0.8 * epochs))})
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=steps, gamma=0.1)
    n = Xtr.shape[0]
    ytr_d = ytr.to(device)
    schedule = []
    for _ in range(int(epochs)):
        schedule.append(opt.param_groups[0]["lr"])
        order = torch.randperm(n, generator=g)
        for i in range(0, n, batch):
            rows = order[i:i + batch]
            with torch.no_grad():
                f = backbone(views(Xtr[rows].to(device, non_blocking=True)))
            loss = F.cross_entropy(head(f), ytr_d[rows.to(device)])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
    logits = []
    with torch.no_grad():
        for i in range(0, Xte.shape[0], 256):
            logits.append(head(backbone(model.eval_view(Xte[i:i + 256].to(device)))))
    backbone.train(was)
    logits = torch.cat(logits)
    yd = yte.to(device)
    return {"top1": _topk(logits, yd, 1), "top5": _topk(logits, yd, 5), "epochs": int(epochs), "lr_schedule": schedule,
            "weight": head.weight.detach().cpu(), "bias": head.bias.detach().cpu()}


def finetune(model, Xtr: Tensor, ytr: Tensor, Xte: Tensor, yte: Tensor, *, epochs: int, device, seed: int = 0) -> float:
    """Semi-supervised fine-tuning of a copy of the query backbone + a new linear head; test top-1."""
    import copy

    from wisecli.runtime import augment as A

    torch.manual_seed(seed)
    backbone = copy.deepcopy(model.encoder_q.backbone).to(device).train()
    c = int(max(int(ytr.max()), int(yte.max()))) + 1
    head = torch.nn.Linear(model.encoder_q.feat_dim, c).to(device)
    opt = torch.optim.SGD([{"params": backbone.parameters(), "lr": 0.01}, {"params": head.parameters(), "lr": 0.1}],
                          momentum=0.9, weight_decay=0.0)
    n = Xtr.shape[0]
    bs = min(64, n)
    steps = max(1, math.ceil(n / bs)) * epochs
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(seed)
    s = int(Xtr.shape[-1])
    for _ in range(epochs):
        order = torch.randperm(n, generator=g)
        for i in range(0, n, bs):
            xb = Xtr[order[i:i + bs]].to(device)
            yb = ytr[order[i:i + bs]].to(device)
            if xb.shape[0] < 2:
                continue
            v = model.standardise(A.random_flip(A.random_resized_crop(xb, s)))
            loss = F.cross_entropy(head(backbone(v)), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    backbone.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, Xte.shape[0], 256):
            xb = Xte[i:i + 256].to(device)
            correct += int((head(backbone(model.eval_view(xb))).argmax(1) == yte[i:i + 256].to(device)).sum())
    return correct / max(1, Xte.shape[0])
