"""The layer rankings behind the spec §9 "reported, not gated" study: `metrics.rank_layers` (best family per
layer, Spearman ρ against scipy, argmax layers, top-3 overlap) and `evaluate --rounds all --summary`."""

import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from tests.conftest import run_wise
from wisecli.engines.leakage.metrics import rank_layers


def _records(rnd, vl, vq, sens, ctl=0.0):
    out = []
    for i, (a, b, s) in enumerate(zip(vl, vq, sens)):
        for fam, v in (("linear", a), ("quadratic", b)):
            out.append({"round": rnd, "layer": f"l{i}.weight", "family": fam, "vinfo_bits": float(v),
                        "ci95": [v - 0.05, v + 0.05], "control_bits": ctl * (-1) ** i, "sens_attr_per_param": float(s)})
        out.append({"round": rnd, "layer": f"l{i}.weight", "family": "best", "vinfo_bits": 99.0,
                    "ci95": [0, 0], "control_bits": 5.0, "sens_attr_per_param": float(s)})
    return out


def test_rank_layers_uses_the_best_family_and_equals_scipy_spearman():
    rng = np.random.default_rng(0)
    vl, vq, sens = rng.uniform(0, 1, 7), rng.uniform(0, 1, 7), rng.uniform(0, 1, 7)
    r = rank_layers(_records(5, vl, vq, sens, ctl=0.01))
    best = np.maximum(vl, vq)
    assert r["round"] == 5 and r["n_layers"] == 7
    assert r["vinfo_argmax"] == f"l{int(np.argmax(best))}.weight" and r["vinfo_bits"] == pytest.approx(best.max())
    assert r["vinfo_family"] == ("linear" if vl[np.argmax(best)] >= vq[np.argmax(best)] else "quadratic")
    assert r["sens_argmax"] == f"l{int(np.argmax(sens))}.weight"
    assert r["spearman"] == pytest.approx(spearmanr(best, sens).statistic, abs=1e-12)
    want = len(set(np.argsort(best)[-3:]) & set(np.argsort(sens)[-3:]))
    assert r["top3_overlap"] == want
    assert r["control_max_abs"] == pytest.approx(0.01)  # the `best` records (control 5.0) are skipped


def test_rank_layers_ties_and_missing_sensitivity():
    r = rank_layers(_records(0, [0.1, 0.2, 0.2, 0.4], [0, 0, 0, 0], [1, 2, 2, 3]))
    assert r["spearman"] == pytest.approx(1.0)
    recs = [dict(x, sens_attr_per_param=None) for x in _records(0, [0.1, 0.3], [0, 0], [1, 2])]
    r = rank_layers(recs)
    assert r["vinfo_argmax"] == "l1.weight" and "spearman" not in r and "sens_argmax" not in r
    assert rank_layers([]) == {}


def test_evaluate_all_rounds_summary(tmp_path):
    recs = _records(0, [0.1, 0.5, 0.2], [0, 0, 0], [3, 2, 1]) + _records(10, [0.6, 0.1, 0.2], [0, 0, 0], [3, 2, 1])
    run = tmp_path / "digits-b8"
    run.mkdir()
    (run / "leakage.json").write_text(json.dumps({"method": "leakage", "source": "builtin:digits",
                                                  "model": "small-cnn", "config": {"batch_size": 8}, "records": recs}))
    code, out, err = run_wise("leakage", "evaluate", str(run), "--rounds", "all", "--summary", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert [s["round"] for s in doc["summary"]] == [0, 10]
    s0, s10 = doc["summary"]
    assert (s0["vinfo_argmax"], s10["vinfo_argmax"]) == ("l1.weight", "l0.weight")
    assert s0["sens_argmax"] == s10["sens_argmax"] == "l0.weight"
    assert s0["spearman"] == pytest.approx(-0.5) and s10["spearman"] == pytest.approx(0.5)
    assert s0["report"] == "digits-b8" and s0["batch_size"] == 8 and s0["data"] == "builtin:digits"
    assert {r["round"] for r in doc["rows"]} == {0, 10} and len(doc["rows"]) == 6
    # each round is compared with the base's same round: itself, so every difference is 0
    assert all(r["vinfo_diff"] == 0 for r in doc["rows"])
    code, out, err = run_wise("leakage", "evaluate", str(run), "--json")
    assert code == 0, err
    assert [s["round"] for s in json.loads(out)["summary"]] == [10]


def test_benchmark_end_to_end_record_runs_the_protocol_through_run():
    """The `end-to-end-shapes32` benchmark case at a CPU smoke size (the GPU preset uses PROTOCOL_SHAPES32)."""
    from wisecli.engines.leakage import api
    from wisecli.engines.leakage.bench import PROTOCOL_SHAPES32, end_to_end

    assert PROTOCOL_SHAPES32["audit_rounds"] == "0,5,10" and PROTOCOL_SHAPES32["n_obs"] == 600
    rec = end_to_end("cpu", api.DEFAULTS["run"], width=0.125, fl_rounds=1, local_steps=2, audit_rounds="0,1",
                     n_obs=40, folds=2, families="linear", sketch=8, n_sens=2, probes=2)
    d = rec.as_dict()
    assert d["case"] == "end-to-end-shapes32" and d["ours_s"] > 0 and d["peer_s"] is None and d["speedup"] is None
    assert 0 <= d["accuracy"] <= 1 and d["best_layer"] and "audits 0,1" in d["protocol"]
