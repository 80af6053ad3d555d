"""Accuracy gates (spec §9), marked slow: BasicMotions (real data, aeon's bundled copy, no download), the
synthetic HPC-ODA-like fault task, and the /proc demo end to end."""

import json

import pytest
from conftest import run_wise

from wisecli.engines.smooth.peers import have_aeon
from wisecli.engines.smooth.metrics import evaluate
from wisecli.engines.smooth.synthetic import basic_motions, synthetic

# one torch and one BLAS thread for the whole module (conftest; issue 13.11): nothing asserted depends on it
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread_module")]


@pytest.mark.skipif(not have_aeon(), reason="needs the data extra (aeon)")
def test_basicmotions_gate():
    train, test = basic_motions()
    assert len(train) == len(test) == 40 and train[0].values.shape == (100, 6)
    (cs,) = evaluate(train, methods="cs:20", window=20, step=5, test=test, cv="split", repeats=1, seed=0)
    assert cs["signature_len"] == 12
    assert cs["f1_weighted"] >= 0.93, cs
    assert cs["run_accuracy"] >= 0.95, cs


@pytest.mark.skipif(not have_aeon(), reason="needs the rocket extra (aeon)")
def test_minirocket_baseline_runs_on_training_windows(monkeypatch):
    """aeon's MiniRocket through our peer wrapper (fitted on training windows only), its numba kernels run as the
    plain Python they are compiled from (`Dispatcher.py_func`: the same code, interpreted). Compiling them costs
    about 37 CPU-s once per environment (aeon caches the machine code in its __pycache__), which is most of this
    method's test budget on a fresh CI install; interpreted, this test takes 7 CPU-s [measured, issue 13.11].
    Every eighth BasicMotions case (was every fourth): F1 0.899 here against 0.975 (gate 0.8)."""
    import aeon.transformations.collection.convolution_based._minirocket as aeon_mr

    for name in ("_fit_biases", "_static_transform_multi", "_static_transform_uni"):
        monkeypatch.setattr(aeon_mr, name, getattr(aeon_mr, name).py_func)
    train, test = basic_motions()
    (mr,) = evaluate(train[::8], methods="minirocket", window=20, step=20, test=test[::8], cv="split", repeats=1)
    assert mr["signature_len"] > 1000 and mr["f1_weighted"] >= 0.8


def test_synthetic_gate():
    # step 20 (spec: 5): the same 20 000 samples, a quarter of the (overlapping) windows; 12 CPU-s instead of 59;
    # seed 0 margins CS − best baseline: −0.029 at step 5, −0.020 at 10, −0.009 at 15, −0.005 at 20, −0.014 at 30
    # (gate: ≥ −0.05); CPU-s at 15/20/30: 17.6/12.3/8.4 [measured, issue 13.11]
    recs = evaluate([synthetic()], methods="cs:10,tuncer,stats", window=30, step=20, cv="blocked",
                    folds=5, repeats=1, seed=0)
    cs, base = recs[0], recs[1:]
    best = max(base, key=lambda r: r["f1_weighted"])
    assert cs["f1_weighted"] >= best["f1_weighted"] - 0.05, recs
    assert best["signature_len"] >= 10 * cs["signature_len"]


def test_proc_demo_quick(tmp_path):
    # no wall-time assertion: a loaded CI machine stretches the recording's workloads, never the result
    code, out, err = run_wise("smooth", "demo", "--quick", "-o", str(tmp_path), "--device", "cpu", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["source"] == "proc" and 0.0 <= doc["background_load"] <= 1.0
    for name in ("telemetry.csv", "model.json", "signature.png", "results.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert {r["method"] for r in doc["results"]} == {"cs:20", "stats", "tuncer"}
