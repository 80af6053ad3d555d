"""Claim gates of spec §9 (CPU, `slow`, `builtin:digits`, mean over seeds): each trains through the real `train`
path (`api.train`, one CPU thread) and evaluates through `api.evaluate`.

Sizes follow the spec; where a gate does not separate at its size it is marked `xfail` with the measured numbers
(a finding, not a loosened threshold). The radial gate runs seed 0 only (ring-cnn's 8 stacked orientations make a
seed cost ~3x a plain net; one seed already separates by > 40 pt: ring 0.891 at every multiple of 90°, plain 0.981
upright and 0.100 at 90°, re-measured 2026-12-06). The CDB and iBNN gates missed at the spec's sizes (re-measured after the audit of 2026-12-06, which found and
fixed one departure: the iBNN variational lr was annealed with the weights'): they keep their thresholds and the
measured numbers, and are not run in CI (`pytest --runxfail tests/classify/test_classify_slow.py` runs them)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wisecli.engines.classify import api
from wisecli.engines.classify.data import cpu_threads
from wisecli.runtime.io.labeled import read_labeled

pytestmark = pytest.mark.slow
CPU = {"device": "cpu", "threads": 1, "progress": False}


def _features_npz(path, seed: int, rho: float):
    lab = read_labeled("builtin:digits", seed=seed, imbalance=rho)
    X = lab.X.reshape(len(lab.X), -1).astype(np.float32)  # 64-d features
    sp = lab.split
    np.savez(path, X=X[sp["train"]], y=lab.y[sp["train"]], X_val=X[sp["val"]], y_val=lab.y[sp["val"]],
             X_test=X[sp["test"]], y_test=lab.y[sp["test"]])
    return path


@pytest.mark.xfail(reason="finding (re-measured 2026-12-06 after an audit against hitachi-rd-cv/CDB-loss: weights "
                          "from per-class recall on the balanced 18-per-class val part after every epoch, w = d^tau "
                          "normalised to sum C, plain batch mean, epoch 1 = CE, all as the CIFAR-LT script): at the spec's "
                          "size (mlp, 64-d digits, rho 20, 40 epochs, seeds 0-2) CDB (tau dynamic) had a LOWER mean test "
                          "balanced accuracy than CE (0.8759 vs 0.8849: 0.9131/0.8682/0.8465 vs 0.9101/0.8707/0.8738). "
                          "Both nets interpolate the 427 training rows (final train loss 0.011 CDB, 0.007 CE), so the "
                          "late weights (6.3 on the 6-image class 9) move nothing: its test recall is 0.53 in both; the "
                          "+1 pt gate is kept; not run in CI (15.6 CPU-s for a known miss): `pytest --runxfail` reruns it",
                   run=False)
def test_gate_cdb_beats_ce_on_long_tailed_digits(tmp_path):
    res = {"ce": [], "cdb": []}
    for seed in (0, 1, 2):
        data = _features_npz(tmp_path / f"d{seed}.npz", seed, 20.0)
        for loss in res:
            s = api.train(data, tmp_path / f"{loss}{seed}", arch="mlp", loss=loss, tau="dynamic", epochs=40,
                          batch_size=64, seed=seed, **CPU)
            res[loss].append(s["test"]["balanced_accuracy"])
    assert np.mean(res["cdb"]) >= np.mean(res["ce"]) + 0.01, res


def test_gate_radial_invariance(tmp_path):
    """Spec §9's radial gate, and the retrain check of the quick demo's shipped weights: ring-cnn is trained from
    `demo.RECIPE` (this gate's size: digits 16x16, width 1/4, 5 epochs, seed 0), so its metrics must equal the ones
    recorded with `demo_weights.npz` (which the quick-demo test checks the shipped weights still give).
    Tolerance 0.05 in accuracy (18 of 359 test images) and 0.1 in NLL: the same recipe under other kernels (other
    summation orders) drifts over 5 epochs of SGD and the best-validation checkpoint pick, so metrics are compared,
    never bits. Measured (2026-12-06, this CPU): 1 thread (the recipe, shipped) accuracy 0.8914, balanced 0.8910, NLL
    0.355; 2 threads (only the summation order changes) 0.9136, 0.9130, 0.338, i.e. 0.022 apart: the tolerance is
    about twice that drift."""
    from wisecli.engines.classify import demo
    from wisecli.runtime import demo_weights

    rows, ring_metrics = {}, None
    for arch in ("ring-cnn", "plain-cnn"):
        demo.train_recipe(tmp_path / arch, api.DEFAULTS["train"], arch=arch)  # = api.train(data, run, **RECIPE)
        m = demo.recipe_metrics(tmp_path / arch)
        rows[arch] = m["rotation_accuracy"]
        if arch == "ring-cnn":
            ring_metrics = m
    ring, plain = rows["ring-cnn"], rows["plain-cnn"]
    assert ring[0] >= 0.75 and max(abs(a - ring[0]) for a in ring[1:]) <= 0.005, rows
    assert plain[0] >= 0.90 and plain[1] <= 0.50, rows
    shipped = demo_weights.load(demo.WEIGHTS)
    assert shipped is not None, "demo_weights.npz/.json missing: see demo.write_demo_weights"
    meta = shipped[0]
    assert meta["recipe"] == demo.RECIPE, meta["recipe"]
    rec = meta["metrics"]
    assert ring_metrics["test_images"] == rec["test_images"]
    for key in ("accuracy", "balanced_accuracy"):
        assert abs(ring_metrics[key] - rec[key]) <= 0.05, (key, ring_metrics, rec)
    assert abs(ring_metrics["nll"] - rec["nll"]) <= 0.1, (ring_metrics, rec)
    assert ring_metrics["invariance_error"] <= 1e-3 and rec["invariance_error"] <= 1e-3


@pytest.mark.xfail(reason="finding (re-measured 2026-12-06 after the variational-lr fix, see train.make_scheduler): "
                          "at the spec's size (small-cnn, 16 px, 8 epochs, seeds 0-2) implicit K=4 had a HIGHER mean NLL "
                          "under gaussian_noise 3-5 than none (0.0714 vs 0.0693: 0.0683/0.0684/0.0774 vs 0.0637/0.0609/"
                          "0.0834; before the fix 0.0746); clean accuracy 0.9833 vs 0.9851 (within 2 pt). The CIFAR-C "
                          "sigmas (.08/.09/.10) barely shift 16-px digits (accuracy 98.5 -> 98.0-98.3 %), so the gate "
                          "measures in-distribution NLL (clean 0.0529 vs 0.0491); with the ImageNet-C sigmas "
                          "(.18/.26/.38, not the spec's) implicit is lower, 0.568 vs 0.640; evaluating checkpoints/last.pt "
                          "(the final model, as the ibnn scripts test) instead of best.pt (val balanced accuracy on 179 "
                          "images picked epoch 6 of 8 for implicit seed 1) gives 0.0667 vs 0.0680, lower in 2 of 3 seeds: "
                          "too thin to gate on. Kept at the spec's margin, corruption and checkpoint; not run in CI "
                          "(37 CPU-s for a known miss, 95 before the one-thread evaluation): `pytest --runxfail` reruns it",
                   run=False)
def test_gate_ibnn_lower_nll_under_noise(tmp_path):
    nll, acc = {"none": [], "implicit": []}, {"none": [], "implicit": []}
    for seed in (0, 1, 2):
        for bayes in nll:
            api.train("builtin:digits", tmp_path / f"{bayes}{seed}", arch="small-cnn", bayes=bayes, components=4,
                      epochs=8, image_size=16, batch_size=64, seed=seed, **CPU)
            with cpu_threads(torch.device("cpu"), 1):
                ev = api.evaluate("builtin:digits:test", weights=tmp_path / f"{bayes}{seed}", corrupt="gaussian_noise",
                                  severity="3-5", image_size=16, device="cpu")
            nll[bayes].append(np.mean([c["nll"] for c in ev["corruptions"]]))
            acc[bayes].append(ev["accuracy"])
    assert np.mean(nll["implicit"]) < np.mean(nll["none"]), nll
    assert np.mean(acc["implicit"]) >= np.mean(acc["none"]) - 0.02, acc
