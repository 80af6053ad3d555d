"""Claim reproduction (spec §9, slow): matrix-wise beats column-wise and global heuristics on lfw faces,
digits and the semi-synthetic hyperspectral cube, with the spec's margins."""

import pytest

from wisecli.engines.nnls import api, metrics
from wisecli.engines.nnls.data import load_dataset
from wisecli.engines.nnls.data import faces, make_dictionary

# one torch and one BLAS thread (conftest): on a shared 2-core machine a second thread spins in barriers (the nmf:25
# hybrid test took 43.6 CPU-s on two threads, 30.3 on one [measured]); nothing asserted depends on the thread count
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread_module")]


def _table(recs):
    return {(r["method"], r["avg_nnz"]): r for r in recs}


def test_lfw_nmf12_margins():
    d = load_dataset("faces")
    t = _table(metrics.evaluate(d["A"], d["B"], [2, 3], methods=["matrixwise-exact", "columnwise-exact", "global-topq"],
                            device="cpu", select_method="dp"))
    for a in (2.0, 3.0):
        mw = t[("matrixwise-exact", a)]["rel_error_pct"]
        assert mw <= t[("columnwise-exact", a)]["rel_error_pct"] - 0.5
        assert mw <= t[("global-topq", a)]["rel_error_pct"] - 0.5


def test_digits_nmf12_margin():
    d = load_dataset("digits")
    t = _table(metrics.evaluate(d["A"], d["B"], [3], methods=["matrixwise-exact", "columnwise-exact", "global-topq"],
                            device="cpu", select_method="dp"))
    mw = t[("matrixwise-exact", 3.0)]["rel_error_pct"]
    assert mw <= t[("columnwise-exact", 3.0)]["rel_error_pct"] - 0.5
    assert mw <= t[("global-topq", 3.0)]["rel_error_pct"] - 0.5


def test_hsi_margins_and_support_f1():
    d = load_dataset("hsi")
    t = _table(metrics.evaluate(d["A"], d["B"], [2], methods=["matrixwise-exact", "columnwise-exact", "global-topq"],
                            x_true=d["X_true"], device="cpu", select_method="dp"))
    mw = t[("matrixwise-exact", 2.0)]
    assert mw["rel_error_pct"] <= t[("columnwise-exact", 2.0)]["rel_error_pct"] - 0.3
    assert mw["rel_error_pct"] <= t[("global-topq", 2.0)]["rel_error_pct"]
    assert mw["support_f1"] >= 0.85


@pytest.mark.parametrize("R", [25, 49])
def test_hybrid_fronts_beat_every_columnwise_heuristic(R):
    B = faces()
    A = make_dictionary(f"nmf:{R}", B, seed=0)  # one BLAS thread (module fixture): 13 CPU-s on 2 spinning, 2.5 on 1
    # the dictionary is learned on all 100 faces; the fronts run on the first 50 (half the enumeration: R = 25
    # 67 -> 35 CPU-s). Margins at R = 25 (pp, min over the three heuristics) a = 1..4: 0.18, 0.77, 0.96, 1.04
    # on 50 columns against 0.21, 1.28, 1.28, 1.11 on 100
    B = B[:, :50]
    methods = ["matrixwise-exact", "columnwise-exact", "columnwise-nnomp", "columnwise-homotopy"]
    # levels above 10 are never needed at q/n ≤ 4 here; --kmax keeps the CPU cost down, the guarantee holds
    t = _table(metrics.evaluate(A, B, [1, 2, 3, 4], methods=methods, front="hybrid", kmax=10, device="cpu",
                            select_method="dp"))
    margins = []
    for a in (1.0, 2.0, 3.0, 4.0):
        mw = t[("matrixwise-exact", a)]["rel_error_pct"]
        for m in methods[1:]:
            assert mw <= t[(m, a)]["rel_error_pct"] + 1e-9
            margins.append(t[(m, a)]["rel_error_pct"] - mw)
    print(f"nmf:{R} margins (pp): min {min(margins):.3f}, max {max(margins):.3f}")


def test_full_demo_ok(tmp_path):
    doc = api.demo(quick=False, device="cpu", out_dir=tmp_path).as_dict()
    assert doc["ok"]
    assert {r["avg_nnz"] for r in doc["records"] if r["method"] == "matrixwise-exact"} == {1.0, 2.0, 3.0, 4.0}
    assert (tmp_path / "nnls-demo-faces.png").stat().st_size > 1000
