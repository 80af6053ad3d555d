"""Exact device kNN, k-means (spherical and Euclidean) and CLIM's centre-wise positive selection.

Li, Zhang, Xiong, "Center-wise Local Image Mixture For Contrastive Representation Learning", BMVC 2021
(arXiv 2011.02697): positives of an anchor i are its embedding-space neighbours that lie closer to the anchor's
cluster centre than the anchor itself. The exact inequality is [reconstructed] (spec §2.2):

    P(i) = { j in N_k(i) : cluster(j) = cluster(i) and <v_j, c(i)> > <v_i, c(i)> },  c(i) the unit centroid.

- `knn(queries, bank, k, exclude=...)`: cosine top-k by one matmul per query chunk with a running top-k over
  bank chunks (so memory is chunk x bank_chunk whatever N), the query's own index excluded.
- `kmeans(x, C, mode=...)`: k-means++ seeding (Arthur & Vassilvitskii 2007), Lloyd iterations until
  `max_iter` or fewer than `tol` reassignments; `spherical` (Dhillon & Modha 2001) maximises sum <x, c>
  with unit centroids, `euclidean` minimises the squared distances. An empty cluster is re-seeded with the
  point farthest from its own centroid (distinct points when several are empty), never fatal.
- `select_positives(bank, k, mode)`: the [N, k] int32 table padded with -1 (valid entries first, in
  neighbour order); `mode="nn"` keeps the top-1 neighbour only (NNCLR-like), `"center"` the rule above.
- `sample_positive(table, idx, generator)`: one j uniformly among P(i), i itself when P(i) is empty.
- `positive_purity(table, nbr, labels)`: label diagnostics of a positive table, like for like (below).

Purity, like for like [our reading of spec §2.5/§9, written down]: a positive drawn uniformly from P(i)
agrees with i's label with probability |{j in P(i): y_j = y_i}| / |P(i)|; `purity` is its mean over the
anchors that HAVE a positive (|P(i)| > 0; the others train on j = i, which has no label to compare). The
references are measured on the same bank, the same epoch and the SAME anchors: `purity_nn` the label agreement
of the plain top-1 neighbour (NNCLR's positive), `purity_knn` of the whole k-neighbour pool P(i) is filtered
from; `purity_nn_all` is top-1 over all anchors (the earlier definition, kept for comparison).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def knn(queries: Tensor, bank: Tensor, k: int, *, exclude: Tensor | None = None, chunk: int = 8192,
        bank_chunk: int | None = None, normalize: bool = True) -> tuple[Tensor, Tensor]:
    """(similarities, indices), each (Q, k), of the k most cosine-similar bank rows of every query, best first;
    `exclude` (Q,) the bank index to leave out per query (its own), or None."""
    q_all = queries.float()
    b = bank.float()
    if normalize:
        q_all, b = F.normalize(q_all, dim=1), F.normalize(b, dim=1)
    n = b.shape[0]
    k = int(k)
    if k > n - (exclude is not None):
        raise ValueError(f"k = {k} neighbours asked from a bank of {n}")
    bc = int(bank_chunk or n)
    sims, idxs = [], []
    for s in range(0, q_all.shape[0], chunk):
        q = q_all[s:s + chunk]
        ex = None if exclude is None else exclude[s:s + chunk].to(q.device)
        best_v = torch.full((q.shape[0], 0), float("-inf"), device=q.device)
        best_i = torch.zeros((q.shape[0], 0), dtype=torch.long, device=q.device)
        for t in range(0, n, bc):
            sim = q @ b[t:t + bc].T
            cols = torch.arange(t, min(t + bc, n), device=q.device)
            if ex is not None:
                sim = sim.masked_fill(cols[None, :] == ex[:, None], float("-inf"))
            kk = min(k, sim.shape[1])
            v, i = sim.topk(kk, dim=1)
            cat_v, cat_i = torch.cat([best_v, v], 1), torch.cat([best_i, cols[i]], 1)
            top_v, pos = cat_v.topk(min(k, cat_v.shape[1]), dim=1)
            best_v, best_i = top_v, cat_i.gather(1, pos)
        sims.append(best_v)
        idxs.append(best_i)
    return torch.cat(sims), torch.cat(idxs)


def _scores(x: Tensor, c: Tensor, mode: str) -> Tensor:
    """Assignment score to maximise: <x, c> (spherical) or 2<x, c> - |c|^2 (Euclidean)."""
    s = x @ c.T
    return s if mode == "spherical" else 2 * s - (c * c).sum(1)[None, :]


def _assign(x: Tensor, c: Tensor, mode: str, chunk: int = 65536) -> tuple[Tensor, Tensor]:
    labels, best = [], []
    for s in range(0, x.shape[0], chunk):
        v, i = _scores(x[s:s + chunk], c, mode).max(1)
        labels.append(i)
        best.append(v)
    return torch.cat(labels), torch.cat(best)


def kmeans_pp(x: Tensor, num: int, generator: torch.Generator | None = None, mode: str = "spherical") -> Tensor:
    """k-means++ seeds: the first uniformly, each next with probability proportional to D(x)^2."""
    n = x.shape[0]
    dev = generator.device if generator is not None else x.device
    first = int(torch.randint(n, (1,), generator=generator, device=dev))
    centres = [x[first]]
    d2 = ((x - x[first]) ** 2).sum(1)
    for _ in range(1, num):
        p = d2.clamp_min(0)
        p = p / p.sum() if float(p.sum()) > 0 else torch.full_like(p, 1.0 / n)
        nxt = int(torch.multinomial(p.to(dev), 1, generator=generator))
        centres.append(x[nxt])
        d2 = torch.minimum(d2, ((x - x[nxt]) ** 2).sum(1))
    c = torch.stack(centres)
    return F.normalize(c, dim=1) if mode == "spherical" else c


def kmeans(x: Tensor, num: int, *, mode: str = "spherical", init: Tensor | None = None, max_iter: int = 20,
           tol: float = 1e-3, generator: torch.Generator | None = None) -> dict:
    """Lloyd k-means; returns {centroids (C, D), labels (N,), objective: [per iteration], iterations, reseeded}.
    The objective is sum <x, c> (spherical, rises) or the inertia sum |x - c|^2 (Euclidean, falls), measured
    after each assignment."""
    if mode not in ("spherical", "euclidean"):
        raise ValueError(f"kmeans mode {mode!r}")
    x = x.float()
    if mode == "spherical":
        x = F.normalize(x, dim=1)
    n = x.shape[0]
    if not 1 <= num <= n:
        raise ValueError(f"{num} clusters for {n} points")
    c = kmeans_pp(x, num, generator, mode) if init is None else init.float().to(x.device).clone()
    labels = None
    history: list[float] = []
    reseeded = 0
    it = 0
    for it in range(1, max_iter + 1):
        new, best = _assign(x, c, mode)
        if mode == "spherical":
            history.append(float(best.sum()))
        else:
            history.append(float(((x - c[new]) ** 2).sum()))
        changed = n if labels is None else int((new != labels).sum())
        labels = new
        counts = torch.bincount(labels, minlength=num)
        sums = torch.zeros_like(c).index_add_(0, labels, x)
        empty = counts == 0
        if bool(empty.any()):
            # the farthest points from their own centroid seed the empty clusters (one point each)
            dist = ((x - c[labels]) ** 2).sum(1)
            order = dist.argsort(descending=True)
            slots = torch.nonzero(empty).flatten()
            picks = order[:slots.numel()]
            c_new = sums / counts.clamp_min(1)[:, None].to(x.dtype)
            c_new[slots] = x[picks]
            reseeded += int(slots.numel())
        else:
            c_new = sums / counts[:, None].to(x.dtype)
        c = F.normalize(c_new, dim=1) if mode == "spherical" else c_new
        if changed <= tol * n and it > 1 and not bool(empty.any()):
            break
    labels, best = _assign(x, c, mode)
    final = float(best.sum()) if mode == "spherical" else float(((x - c[labels]) ** 2).sum())
    history.append(final)
    return {"centroids": c, "labels": labels, "objective": history, "iterations": it, "reseeded": reseeded}


def select_positives(bank: Tensor, k: int, *, mode: str = "center", clusters: dict | None = None,
                     same_cluster: bool = True, chunk: int = 8192) -> tuple[Tensor, Tensor]:
    """(table [N, k] int32 padded with -1, neighbours [N, k] long) for the bank (rows unit vectors).
    `clusters` is the result of `kmeans(bank, ..., mode="spherical")`, needed for mode "center"."""
    v = F.normalize(bank.float(), dim=1)
    n = v.shape[0]
    _, nbr = knn(v, v, k, exclude=torch.arange(n, device=v.device), chunk=chunk, normalize=False)
    if mode == "nn":
        table = torch.full((n, k), -1, dtype=torch.int32, device=v.device)
        table[:, 0] = nbr[:, 0].to(torch.int32)
        return table, nbr
    if mode != "center":
        raise ValueError(f"selection mode {mode!r}")
    lab, cen = clusters["labels"].to(v.device), clusters["centroids"].to(v.device).float()
    keep = torch.zeros_like(nbr, dtype=torch.bool)
    for s in range(0, n, chunk):
        rows = torch.arange(s, min(s + chunk, n), device=v.device)
        c_i = cen[lab[rows]]                                             # (b, D)
        s_i = (v[rows] * c_i).sum(1)                                     # (b,)
        s_j = torch.einsum("bkd,bd->bk", v[nbr[rows]], c_i)              # (b, k)
        ok = s_j > s_i[:, None]
        if same_cluster:
            ok &= lab[nbr[rows]] == lab[rows][:, None]
        keep[rows] = ok
    table = torch.where(keep, nbr, torch.full_like(nbr, -1))
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices
    return table.gather(1, order).to(torch.int32), nbr


def sample_positive(table: Tensor, idx: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One j per anchor, uniformly among its valid table entries; the anchor itself when there are none."""
    rows = table[idx].long()
    count = (rows >= 0).sum(1)
    dev = generator.device if generator is not None else rows.device
    u = torch.rand(idx.shape[0], generator=generator, device=dev).to(rows.device)
    r = torch.floor(u * count.clamp_min(1)).long().clamp_max(rows.shape[1] - 1)
    j = rows.gather(1, r[:, None]).squeeze(1)
    return torch.where(count > 0, j, idx.long())


def positive_purity(table: Tensor, nbr: Tensor, labels: Tensor) -> dict:
    """{purity, purity_nn, purity_knn, purity_nn_all, anchors} of a positive table [N, k] (-1 padded) and the
    neighbour lists nbr [N, k] it was built from, with labels (N,) (module docstring: like for like)."""
    y = labels.to(table.device)
    valid = table >= 0
    count = valid.sum(1)
    has = count > 0
    same = (y[table.clamp_min(0).long()] == y[:, None]) & valid
    top1 = (y[nbr[:, 0]] == y).float()
    pool = (y[nbr] == y[:, None]).float().mean(1)
    nan = float("nan")
    out = {"purity": nan, "purity_nn": nan, "purity_knn": nan, "purity_nn_all": float(top1.mean()),
           "anchors": int(has.sum())}
    if bool(has.any()):
        out.update(purity=float((same.sum(1)[has].float() / count[has].float()).mean()),
                   purity_nn=float(top1[has].mean()), purity_knn=float(pool[has].mean()))
    return out


def weighted_knn_predict(train: Tensor, train_y: Tensor, test: Tensor, k: int, t: float, num_classes: int,
                         chunk: int = 4096) -> Tensor:
    """InstDisc weighted kNN (Wu et al. 2018): class score = sum over the top-k of exp(s / t); returns labels."""
    k = min(int(k), train.shape[0])
    sims, idx = knn(test, train, k, chunk=chunk)
    w = torch.exp(sims / t)
    scores = torch.zeros(test.shape[0], num_classes, device=w.device).scatter_add_(1, train_y.to(w.device)[idx], w)
    return scores.argmax(1)
