"""`wise spin benchmark --quick` on CPU: the records the spec names, and our Heun step agrees with the NumPy peer."""

from __future__ import annotations

import torch

from wisecli.engines.spin import api


def test_benchmark_quick_records():
    recs = api.benchmark(device="cpu", quick=True, peer="numpy")
    by = {r.case: r.as_dict() for r in recs}
    assert set(by) == {"heun L=32 j1-j3 eager", "heun L=32 all eager"}
    r = by["heun L=32 j1-j3 eager"]
    for k in ("ours_s", "peer_s", "speedup", "device", "L", "terms", "mode", "spin_steps_per_s", "peer", "field_ms"):
        assert k in r, k
    assert r["peer"] == "numpy" and r["peer_s"] > 0
    # same physics (J1–J3 + K_u, Heun, dt, α, float32) from the same start: equal to float32 rounding
    assert r["max_abs_diff_vs_peer"] < 1e-4
    assert by["heun L=32 all eager"]["peer_s"] is None
    assert abs(r["spin_steps_per_s"] * r["ours_s"] - 1e6) < 1e-3 * 1e6
