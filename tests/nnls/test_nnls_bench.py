"""The benchmark's cases on tiny sizes: every record carries the §7 keys and ours agrees with the peer."""

import pytest
import torch

from wisecli.engines.nnls import bench

# one torch and one BLAS thread for the whole module (conftest's fixture; issue 13.11): on a shared 2-core machine
# these small problems and CLI runs spent up to 5x their CPU time in thread hand-offs; nothing asserted depends on it
pytestmark = pytest.mark.usefixtures("one_thread_module")

KEYS = ("case", "m", "r", "n", "ours_s", "ours_cols_per_s", "peer_cols_per_s", "speedup", "max_rel_diff", "device",
        "cpu", "threads", "versions")


def test_cases_agree_with_their_peers():
    dev = torch.device("cpu")
    recs = [r.as_dict() for r in (bench.bench_nnls(dev, 40, 6, 60, 30, 1), bench.bench_path(dev, 40, 8, 20, 10, 1),
                                  bench.bench_front(dev, 40, 6, 60, 30, 1), bench.bench_select(dev, 40, 6, 200, 50, 1))]
    for rec in recs:
        assert all(k in rec for k in KEYS), rec
    assert recs[0]["max_rel_diff"] <= 1e-9 and recs[0]["flagged"] == 0
    assert "scipy" in recs[0]["versions"] and "comparable" in recs[0]
    assert recs[1]["kkt_rel"] <= 1e-9
    assert recs[2]["max_rel_diff"] <= 1e-9
    assert 0 <= recs[3]["max_rel_diff"] <= 1e-2 and recs[3]["gap_rel"] >= 0
