"""GPU checks (skipped without CUDA): the CUDA paths agree with the CPU paths and the numpy references."""

import numpy as np
import pytest
import torch

from wisecli.engines.reid import peers as ref
from wisecli.engines.reid.metrics import evaluate_ranking
from wisecli.engines.reid.rerank import re_ranking

pytestmark = pytest.mark.gpu


def _set(seed, Q, G, D=32, ids=40):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(ids, D))
    qi, gi = rng.integers(0, ids, Q), rng.integers(0, ids, G)
    qf = (c[qi] + 1.5 * rng.normal(size=(Q, D))).astype(np.float32)
    gf = (c[gi] + 1.5 * rng.normal(size=(G, D))).astype(np.float32)
    return qf, gf, qi, gi, rng.integers(0, 6, Q), rng.integers(0, 6, G)


def test_cuda_metrics_equal_loop_reference():
    qf, gf, qi, gi, qc, gc = _set(0, 150, 2000)
    want = ref.evaluate(ref.cosine_distance(qf, gf), qi, gi, qc, gc)
    got = evaluate_ranking(qi, gi, qc, gc, qf=torch.from_numpy(qf), gf=torch.from_numpy(gf), device="cuda")
    assert got["cmc"] == pytest.approx(want["cmc"], abs=1e-12)
    for k in ("mAP_standard", "mAP_official", "mINP"):
        assert got[k] == pytest.approx(want[k], abs=1e-6)


def test_cuda_rerank_equals_dense_reference_on_300_items():
    qf, gf, *_ = _set(1, 60, 240)
    qn = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    want = ref.re_ranking(qn, gn)
    got = re_ranking(torch.from_numpy(qn).cuda(), torch.from_numpy(gn).cuda()).cpu().numpy()
    assert np.abs(got - want).max() <= 1e-5
