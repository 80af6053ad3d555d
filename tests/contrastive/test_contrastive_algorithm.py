"""Exact kNN, k-means, CLIM selection, weighted kNN and InfoNCE against scikit-learn and plain loops (spec §9
tests 1, 2, 3, 5 and the kNN part of 7)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wisecli.engines.contrastive.algorithm import kmeans, knn, sample_positive, select_positives, weighted_knn_predict
from wisecli.engines.contrastive.loss import info_nce, mixed_nce, queue_mask
from wisecli.engines.contrastive.synthetic import vmf_clusters


def test_knn_equals_sklearn_brute_cosine_and_chunking_is_exact():
    from sklearn.neighbors import NearestNeighbors

    x, _ = vmf_clusters(2000, 10, 32, seed=0)
    sims, idx = knn(x, x, 10, exclude=torch.arange(2000))
    nn = NearestNeighbors(n_neighbors=11, algorithm="brute", metric="cosine").fit(x.numpy())
    d, ref = nn.kneighbors(x.numpy())
    ref_idx = np.array([[j for j in row if j != i][:10] for i, row in enumerate(ref)])
    agree = (idx.numpy() == ref_idx).mean()
    assert agree > 0.999  # ties aside (fp32 equal similarities may swap)
    assert np.allclose(np.sort(sims.numpy(), 1), np.sort(1 - np.array([[dd for j, dd in zip(r, dr) if j != i][:10]
                                                                       for i, (r, dr) in enumerate(zip(ref, d))]), 1), atol=1e-5)
    s2, i2 = knn(x, x, 10, exclude=torch.arange(2000), chunk=333, bank_chunk=257)
    assert torch.allclose(s2, sims, atol=1e-6)
    differ = i2 != idx  # only where two similarities tie to float rounding (1 ulp apart) may the order differ
    assert differ.sum() <= 4 and bool((sims[differ.any(1)][:, 1:] - sims[differ.any(1)][:, :-1]).abs().min() < 1e-6
                                       if differ.any() else True)
    assert not (idx == torch.arange(2000)[:, None]).any()


def test_kmeans_euclidean_equals_sklearn_lloyd():
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(m, 1.0, size=(150, 5)) for m in (0, 3, 6, 9)]).astype(np.float32)
    init = x[rng.choice(len(x), 4, replace=False)]
    ours = kmeans(torch.from_numpy(x), 4, mode="euclidean", init=torch.from_numpy(init), max_iter=300, tol=0)
    ref = KMeans(4, init=init, n_init=1, algorithm="lloyd", max_iter=300, tol=0).fit(x)
    assert np.array_equal(ours["labels"].numpy(), ref.labels_)
    assert abs(ours["objective"][-1] - ref.inertia_) / ref.inertia_ < 1e-4


def test_spherical_kmeans_unit_centroids_monotone_objective_and_reseeding():
    x, _ = vmf_clusters(600, 6, 16, seed=1)
    g = torch.Generator().manual_seed(0)
    res = kmeans(x, 8, mode="spherical", max_iter=30, tol=0, generator=g)
    assert torch.allclose(res["centroids"].norm(dim=1), torch.ones(8), atol=1e-5)
    obj = res["objective"]
    assert all(b >= a - 1e-3 for a, b in zip(obj, obj[1:]))  # fp32 sums of 600 terms: 1e-3 absolute
    # an empty cluster: a centroid pointing away from every point is re-seeded, not fatal
    init = torch.cat([res["centroids"][:7], -x.mean(0, keepdim=True) / x.mean(0).norm()])
    far = torch.zeros(1, 16)
    far[0, 0] = 1.0
    pts = torch.nn.functional.normalize(x.clone(), dim=1)
    pts[:, 0] = pts[:, 0].abs()  # every point in the half-space x0 >= 0
    init[7] = -far
    res2 = kmeans(pts, 8, mode="spherical", init=init, max_iter=5, tol=0)
    assert res2["reseeded"] >= 1 and int(torch.bincount(res2["labels"], minlength=8).min()) >= 1


def test_selection_rule_fallback_and_purity_on_the_vmf_mixture():
    x, y = vmf_clusters(2000, 10, 32, seed=0)
    cl = kmeans(x, 10, mode="spherical", generator=torch.Generator().manual_seed(0))
    table, nbr = select_positives(x, 10, mode="center", clusters=cl)
    lab, cen = cl["labels"], cl["centroids"]
    n = x.shape[0]
    chosen = 0
    for i in range(n):
        row = [int(j) for j in table[i] if j >= 0]
        assert all(j in set(nbr[i].tolist()) and j != i for j in row)
        for j in row:
            assert lab[j] == lab[i] and float(x[j] @ cen[lab[i]]) > float(x[i] @ cen[lab[i]])
        chosen += len(row)
    assert chosen > 0
    empty = torch.nonzero((table >= 0).sum(1) == 0).flatten()
    assert empty.numel() > 0  # anchors nearest their centre have no candidate
    j = sample_positive(table, empty, torch.Generator().manual_seed(0))
    assert torch.equal(j, empty)
    idx = torch.arange(n)
    js = sample_positive(table, idx, torch.Generator().manual_seed(0))
    has = (table >= 0).sum(1) > 0
    purity_center = float((y[js[has]] == y[idx[has]]).float().mean())
    purity_nn = float((y[nbr[:, 0]] == y).float().mean())
    assert purity_center >= purity_nn + 0.05, (purity_center, purity_nn)
    nn_table, _ = select_positives(x, 10, mode="nn")
    assert torch.equal(nn_table[:, 0].long(), nbr[:, 0]) and (nn_table[:, 1:] == -1).all()


def test_weighted_knn_equals_a_voting_loop():
    x, y = vmf_clusters(400, 5, 8, seed=2)
    tr, te, ytr = x[:300], x[300:], y[:300]
    pred = weighted_knn_predict(tr, ytr, te, k=20, t=0.07, num_classes=5)
    for q in range(100):
        s = (tr @ te[q]).numpy()
        top = np.argsort(-s)[:20]
        score = np.zeros(5)
        for j in top:
            score[int(ytr[j])] += math.exp(s[j] / 0.07)
        assert int(pred[q]) == int(score.argmax())


def test_info_nce_equals_a_plain_loop_and_masking_matches_a_hand_example():
    g = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(4, 8, generator=g), dim=1)
    kp = torch.nn.functional.normalize(torch.randn(4, 8, generator=g), dim=1)
    queue = torch.nn.functional.normalize(torch.randn(6, 8, generator=g), dim=1)
    tau = 0.2
    got = info_nce(q, kp, queue, tau)
    for b in range(4):
        num = math.exp(float(q[b] @ kp[b]) / tau)
        den = num + sum(math.exp(float(q[b] @ queue[m]) / tau) for m in range(6))
        assert abs(float(got[b]) + math.log(num / den)) < 1e-5
    qidx = torch.tensor([7, 3, 9, 3, 1, 5])
    mask = queue_mask(qidx, torch.tensor([3, 0, 1, 2]), torch.tensor([9, 5, 4, 2]))
    assert mask.tolist()[0] == [False, True, True, True, False, False]
    got_m = info_nce(q, kp, queue, tau, mask)
    b = 0  # row 0 drops the queue entries holding images 3 and 9 (positions 1, 2, 3)
    num = math.exp(float(q[b] @ kp[b]) / tau)
    den = num + sum(math.exp(float(q[b] @ queue[m]) / tau) for m in (0, 4, 5))
    assert abs(float(got_m[0]) + math.log(num / den)) < 1e-5
    assert abs(float(got_m[2]) - float(got[2])) > 1e-6 or not mask[2].any()
    # lam = 1: the mixed loss is plain NCE against k_i
    assert torch.allclose(mixed_nce(q, kp, queue[:4], torch.ones(4), queue, tau), info_nce(q, kp, queue, tau))


def test_purity_diagnostics_compare_like_for_like_on_a_hand_example():
    """CLIM's purity is the label agreement of a uniform draw from P(i) over anchors with a positive; the
    top-1 and pool references are taken over those same anchors (all-anchor top-1 kept apart)."""
    from wisecli.engines.contrastive.algorithm import positive_purity

    y = torch.tensor([0, 0, 1, 1, 0])
    nbr = torch.tensor([[1, 2], [0, 3], [3, 0], [4, 2], [0, 1]])
    table = torch.tensor([[1, -1], [-1, -1], [3, 0], [-1, -1], [1, 0]], dtype=torch.int32)
    p = positive_purity(table, nbr, y)
    assert p["anchors"] == 3
    assert p["purity"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert p["purity_nn"] == pytest.approx(1.0)        # anchors 0, 2, 4: neighbours 1, 3, 0 agree
    assert p["purity_nn_all"] == pytest.approx(0.8)    # anchor 3's top-1 (image 4) does not
    assert p["purity_knn"] == pytest.approx((0.5 + 0.5 + 1) / 3)
    empty = positive_purity(torch.full((5, 2), -1, dtype=torch.int32), nbr, y)
    assert math.isnan(empty["purity"]) and math.isnan(empty["purity_nn"]) and empty["anchors"] == 0
