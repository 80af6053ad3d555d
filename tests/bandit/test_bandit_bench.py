"""The race runs in one process and reports the spec's fields; our planner agrees with SLSQP (§7 target 1e-5)."""

from wisecli.engines.bandit import api


def test_benchmark_quick_records():
    recs = api.benchmark(device="cpu", quick=True, algos="ecolog", replicates=2, rounds=2)
    doc = recs[0].as_dict()
    assert doc["algo"] == "ecolog" and doc["peer"].startswith("loop") and doc["replicates"] == 2
    assert doc["ours_s"] > 0 and doc["peer_s"] > 0 and doc["speedup"] > 0
    assert doc["slsqp_max_rel_gap"] < 1e-5
