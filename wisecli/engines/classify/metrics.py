"""Evaluation metrics of `wise classify` (spec §5), computed in torch on the device from the sample-averaged
log-probabilities log p̄ (B, C) and the labels; each function returns Python floats or lists.

- accuracy, balanced accuracy (mean per-class recall over the classes present in y, as scikit-learn),
  macro-F1 (over the classes present in y or predicted, as scikit-learn's default labels), NLL -mean log p̄(y|x)
  (fp32 log-sum-exp upstream), Brier (sum over classes of (p - onehot)^2, mean over samples),
- `ece_top15`: top-label confidence in 15 equal-width bins over [0, 1], sum_b |B_b|/N |acc_b - conf_b| (the iBNN
  `ECELoss`; bins are (lo, hi] as there),
- AUROC (Mann-Whitney with ties counted half, = scikit-learn's roc_auc_score) of predictive entropy, OOD positive,
- shot groups: accuracy over classes with > 100 (many), 20-100 (medium), < 20 (few) training images,
- rotation summary (curve, mean, worst) and the invariance error ||z(x) - z(R x)|| / ||z(x)|| (mean over samples).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _f(x: Tensor) -> float:
    return float(x.detach().cpu())


def confusion(y: Tensor, pred: Tensor, num_classes: int) -> Tensor:
    """(C, C) counts, rows true, columns predicted (bincount on the device)."""
    return torch.bincount(y * num_classes + pred, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_recall(y: Tensor, pred: Tensor, num_classes: int) -> Tensor:
    """(C,) recall per class (NaN for classes absent from y)."""
    cm = confusion(y, pred, num_classes).float()
    n = cm.sum(1)
    return torch.where(n > 0, cm.diagonal() / n.clamp_min(1), torch.full_like(n, float("nan")))


def accuracy(y: Tensor, pred: Tensor) -> float:
    return _f((y == pred).float().mean())


def balanced_accuracy(y: Tensor, pred: Tensor, num_classes: int) -> float:
    r = per_class_recall(y, pred, num_classes)
    return _f(r[~r.isnan()].mean())


def macro_f1(y: Tensor, pred: Tensor, num_classes: int) -> float:
    cm = confusion(y, pred, num_classes).float()
    tp, t, p = cm.diagonal(), cm.sum(1), cm.sum(0)
    present = (t + p) > 0
    f1 = torch.where(present, 2 * tp / (t + p).clamp_min(1), torch.zeros_like(tp))
    return _f(f1[present].mean())


def nll(logp: Tensor, y: Tensor) -> float:
    return _f(-logp.float().gather(1, y[:, None]).mean())


def brier(logp: Tensor, y: Tensor) -> float:
    p = logp.float().exp()
    onehot = torch.nn.functional.one_hot(y, p.shape[1]).float()
    return _f((p - onehot).pow(2).sum(1).mean())


def ece_top15(logp: Tensor, y: Tensor, bins: int = 15) -> float:
    p = logp.float().exp()
    conf, pred = p.max(1)
    correct = (pred == y).float()
    edges = torch.linspace(0, 1, bins + 1, device=p.device)
    # bin b holds conf in (edges[b], edges[b+1]]; conf == 0 cannot occur for a max of a distribution
    idx = (torch.bucketize(conf, edges, right=False) - 1).clamp(0, bins - 1)
    n = torch.bincount(idx, minlength=bins).float()
    sc = torch.bincount(idx, weights=conf, minlength=bins)
    sa = torch.bincount(idx, weights=correct, minlength=bins)
    return _f((sa - sc).abs().sum() / p.shape[0])


def entropy(logp: Tensor) -> Tensor:
    """Predictive entropy per sample (nats)."""
    p = logp.float().exp()
    return -(p * logp.float().clamp_min(-1e4)).sum(1)


def auroc(scores_neg: Tensor, scores_pos: Tensor) -> float:
    """P(score_pos > score_neg) + 0.5 P(equal): the ROC AUC with positives `scores_pos`."""
    s = torch.cat([scores_neg.float(), scores_pos.float()])
    lab = torch.cat([torch.zeros(len(scores_neg), device=s.device), torch.ones(len(scores_pos), device=s.device)])
    # average ranks (ties share their mean rank)
    order = torch.argsort(s)
    sorted_s = s[order]
    uniq, inv, counts = torch.unique_consecutive(sorted_s, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    avg = ends - (counts.double() - 1) / 2
    ranks = torch.empty_like(avg[inv])
    ranks[order] = avg[inv]
    npos, nneg = float(len(scores_pos)), float(len(scores_neg))
    if npos == 0 or nneg == 0:
        return float("nan")
    u = _f(ranks[lab == 1].sum()) - npos * (npos + 1) / 2
    return u / (npos * nneg)


def shot_groups(y: Tensor, pred: Tensor, train_counts, num_classes: int) -> dict:
    """Accuracy over classes with > 100 (`many`), 20-100 (`medium`) and < 20 (`few`) training images (mean of
    per-class recall in the group; None for an empty group)."""
    r = per_class_recall(y, pred, num_classes).cpu()
    counts = torch.as_tensor(list(train_counts))
    out = {}
    for name, mask in (("many", counts > 100), ("medium", (counts >= 20) & (counts <= 100)), ("few", counts < 20)):
        vals = r[mask & ~r.isnan()]
        out[name] = float(vals.mean()) if len(vals) else None
    return out


def classification_report(logp: Tensor, y: Tensor, num_classes: int, classes: list[str] | None = None,
                          train_counts=None) -> dict:
    """The §5 document for one prediction set: accuracy, balanced_accuracy, macro_f1, nll, ece_top15, brier,
    per_class (recall, support), confusion, shot_groups (when the training counts are known)."""
    pred = logp.argmax(1)
    recall = per_class_recall(y, pred, num_classes).cpu().tolist()
    support = torch.bincount(y, minlength=num_classes).cpu().tolist()
    names = classes or [str(i) for i in range(num_classes)]
    doc = {"n": int(y.numel()), "accuracy": accuracy(y, pred), "balanced_accuracy": balanced_accuracy(y, pred, num_classes),
           "macro_f1": macro_f1(y, pred, num_classes), "nll": nll(logp, y), "ece_top15": ece_top15(logp, y),
           "brier": brier(logp, y),
           "per_class": [{"class": names[c], "recall": None if math.isnan(recall[c]) else recall[c],
                          "support": support[c]} for c in range(num_classes)],
           "confusion": confusion(y, pred, num_classes).cpu().tolist()}
    if train_counts is not None:
        doc["shot_groups"] = shot_groups(y, pred, train_counts, num_classes)
    return doc


def rotation_summary(curve: list[dict]) -> dict:
    """{curve, mean, worst} of accuracy over angles (curve: [{degrees, accuracy, ...}])."""
    accs = [c["accuracy"] for c in curve]
    return {"curve": curve, "mean": sum(accs) / len(accs), "worst": min(accs)}


def invariance_error(z: Tensor, z_rot: Tensor) -> float:
    """Mean over samples of ||z(x) - z(Rx)|| / ||z(x)||."""
    num = (z.float() - z_rot.float()).flatten(1).norm(dim=1)
    den = z.float().flatten(1).norm(dim=1).clamp_min(1e-12)
    return _f((num / den).mean())
