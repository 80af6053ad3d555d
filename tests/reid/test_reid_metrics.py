"""Ranking metrics and re-ranking against the numpy loop references and hand-computed values (spec §9)."""

import numpy as np
import pytest
import torch

from wisecli.engines.reid import peers as ref
from wisecli.engines.reid.metrics import evaluate_ranking
from wisecli.engines.reid.rerank import re_ranking


def _eval_dist(dist, qi, gi, qc, gc, **kw):
    return evaluate_ranking(qi, gi, qc, gc, distmat=torch.as_tensor(dist), **kw)


def test_toy_case_hits_at_1_and_3_of_5():
    dist = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]], dtype=np.float32)
    g_ids = [7, 1, 7, 2, 3]
    r = _eval_dist(dist, [7], g_ids, [0], [1, 1, 1, 1, 1], max_rank=5)
    assert r["mAP_standard"] == pytest.approx((1 + 2 / 3) / 2, abs=1e-12)
    assert r["mAP_standard"] == pytest.approx(0.8333, abs=1e-4)
    assert r["mAP_official"] == pytest.approx((1 + 0.5 * (0.5 + 2 / 3)) / 2, abs=1e-12)
    assert r["mAP_official"] == pytest.approx(0.7917, abs=1e-4)
    assert r["cmc"] == [1.0] * 5
    assert r["mINP"] == pytest.approx(2 / 3)


def test_same_id_same_camera_first_neither_counts_nor_shifts():
    # gallery 0 is the query's id on the query's camera (junk) and nearest; then hits at valid ranks 2 and 3
    dist = np.array([[0.0, 0.1, 0.2, 0.3, 0.4]], dtype=np.float32)
    g_ids, g_cams = [5, 9, 5, 5, 8], [3, 1, 1, 2, 1]
    r = _eval_dist(dist, [5], g_ids, [3], g_cams, max_rank=4)
    assert r["cmc"] == [0.0, 1.0, 1.0, 1.0]
    assert r["mAP_standard"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    # a distractor (id -1) ranked first is dropped too
    r2 = _eval_dist(dist, [5], [-1, 9, 5, 5, 8], [3], g_cams, max_rank=4)
    assert r2["cmc"] == r["cmc"] and r2["mAP_standard"] == pytest.approx(r["mAP_standard"])


def test_matchless_queries_leave_the_denominators():
    dist = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]], dtype=np.float32)
    # query 1 (id 4) has only a same-camera match: no valid match
    r = _eval_dist(dist, [1, 4], [1, 2, 4], [0, 0], [1, 1, 0], max_rank=3)
    assert r["num_queries"] == 2 and r["num_valid_queries"] == 1
    assert r["mAP_standard"] == pytest.approx(1.0) and r["cmc"][0] == pytest.approx(1.0)


def _random_set(rng, Q, G, D, n_ids, n_cams, sigma):
    centres = rng.normal(size=(n_ids, D))
    qi, gi = rng.integers(0, n_ids, Q), rng.integers(0, n_ids, G)
    qf = centres[qi] + sigma * rng.normal(size=(Q, D))
    gf = centres[gi] + sigma * rng.normal(size=(G, D))
    return (qf.astype(np.float32), gf.astype(np.float32), qi, gi,
            rng.integers(0, n_cams, Q), rng.integers(0, n_cams, G))


@pytest.mark.parametrize("seed", [0, 1])
def test_vectorised_equals_loop_reference(seed):
    rng = np.random.default_rng(seed)
    qf, gf, qi, gi, qc, gc = _random_set(rng, 60, 300, 16, 25, 4, 1.2)
    qi[:5] = 1000  # ids absent from the gallery: match-less queries
    dist = ref.cosine_distance(qf, gf)
    # force exact ties so the stable order matters
    dist[:, 10:20] = dist[:, 10:11]
    want = ref.evaluate(dist, qi, gi, qc, gc, max_rank=50)
    got = evaluate_ranking(qi, gi, qc, gc, distmat=torch.from_numpy(dist), max_rank=50, block=7)
    assert got["cmc"] == want["cmc"]
    for k in ("mAP_standard", "mAP_official", "mINP"):
        assert got[k] == pytest.approx(want[k], abs=1e-6)
    assert got["num_valid_queries"] == want["num_valid_queries"] < 60  # some queries have no valid match
    feat = evaluate_ranking(qi, gi, qc, gc, qf=torch.from_numpy(qf), gf=torch.from_numpy(gf), max_rank=50)
    plain = ref.evaluate(ref.cosine_distance(qf, gf), qi, gi, qc, gc, max_rank=50)
    assert feat["cmc"] == plain["cmc"]
    assert feat["mAP_official"] == pytest.approx(plain["mAP_official"], abs=1e-6)


def test_per_query_records_stream_in_order():
    rng = np.random.default_rng(3)
    qf, gf, qi, gi, qc, gc = _random_set(rng, 20, 80, 8, 10, 3, 1.0)
    seen = []
    r = evaluate_ranking(qi, gi, qc, gc, qf=torch.from_numpy(qf), gf=torch.from_numpy(gf), block=6,
                         on_query=lambda i, rec: seen.append((i, rec)))
    assert [i for i, _ in seen] == list(range(20))
    aps = [rec["ap_standard"] for _, rec in seen if rec["valid"]]
    assert np.mean(aps) == pytest.approx(r["mAP_standard"])


def test_rerank_sparse_equals_dense_reference_on_300_items():
    rng = np.random.default_rng(7)
    qf, gf, *_ = _random_set(rng, 60, 240, 12, 30, 4, 0.8)
    want = ref.re_ranking(qf, gf, k1=20, k2=6, lambda_value=0.3)
    got = re_ranking(torch.from_numpy(qf), torch.from_numpy(gf), k1=20, k2=6, lambda_value=0.3, block=64)
    assert np.abs(got.numpy() - want).max() <= 1e-5


@pytest.mark.parametrize("k1,k2", [(7, 1), (5, 3)])
def test_rerank_other_parameters_match_reference(k1, k2):
    rng = np.random.default_rng(k1)
    qf, gf, *_ = _random_set(rng, 20, 100, 8, 12, 3, 0.8)
    want = ref.re_ranking(qf, gf, k1=k1, k2=k2, lambda_value=0.5)
    got = re_ranking(torch.from_numpy(qf), torch.from_numpy(gf), k1=k1, k2=k2, lambda_value=0.5)
    assert np.abs(got.numpy() - want).max() <= 1e-5


def test_rerank_lambda_one_keeps_the_original_order():
    rng = np.random.default_rng(11)
    qf, gf, *_ = _random_set(rng, 15, 90, 8, 10, 3, 0.8)
    q = torch.nn.functional.normalize(torch.from_numpy(qf), dim=1)
    g = torch.nn.functional.normalize(torch.from_numpy(gf), dim=1)
    d = re_ranking(q, g, lambda_value=1.0)
    base = 1 - q @ g.T
    assert torch.equal(torch.sort(d, dim=1, stable=True).indices, torch.sort(base, dim=1, stable=True).indices)


def test_cmc_past_the_gallery_size_is_not_allocated():
    """CMC at ranks past the gallery is constant: a huge --max-rank gives the same figures, sized by the gallery."""
    import torch

    from wisecli.engines.reid.metrics import evaluate_ranking

    g = torch.nn.functional.normalize(torch.randn(12, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    q = g[:4] + 0.01
    ids_g, cams_g = list(range(6)) * 2, [1] * 6 + [2] * 6
    small = evaluate_ranking(list(range(4)), ids_g, [3] * 4, cams_g, qf=q, gf=g, max_rank=12)
    huge = evaluate_ranking(list(range(4)), ids_g, [3] * 4, cams_g, qf=q, gf=g, max_rank=2**31)
    assert len(huge["cmc"]) == 12 and huge["cmc"] == small["cmc"] and huge["mAP_standard"] == small["mAP_standard"]
