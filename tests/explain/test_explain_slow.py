"""The claim gate (§9, CPU, `slow`, seed 0) in two halves that each stay under 15 CPU-s:

1. the demo recipe retrained from scratch reproduces the shipped weights' behaviour (test accuracy within 0.03,
   ≥ 95 % equal predictions on 300 test canvases): the shipped weights are this recipe's;
2. the gate on those weights, 8 test canvases (sklearn digits), N = 1000: accuracy ≥ 0.8; RISE and MC-RISE deletion
   AUC ≥ 0.05 below and insertion ≥ 0.05 above random maps (3 seeds); RISE pointing on the red digit ≥ 0.75 and above
   a random point; S_green over the red digit's strokes < 0 on ≥ 7 of 8 canvases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wisecli.runtime.device import one_cpu_thread


@pytest.mark.slow
def test_recipe_reproduces_the_shipped_weights():
    from wisecli.engines.explain.demo import N_ACC, load_weights, train_digits
    from wisecli.engines.explain.synthetic import canvases

    with one_cpu_thread(torch.device("cpu")):
        net, mean, std, _ = train_digits("cpu", 0)
        shipped, smean, sstd = load_weights()
        np.testing.assert_allclose(mean, smean, atol=1e-5)
        te = canvases(N_ACC, part="test", seed=2)
        preds = []
        for m, mu, sd in ((net, mean, std), (shipped, smean, sstd)):
            x = (torch.from_numpy(te["x"]) - torch.tensor(mu)[None, :, None, None]) / torch.tensor(sd)[None, :, None, None]
            with torch.inference_mode():
                preds.append(m(x).argmax(1).numpy())
    acc = [float((p == te["y"]).mean()) for p in preds]
    assert abs(acc[0] - acc[1]) <= 0.03, acc
    assert float((preds[0] == preds[1]).mean()) >= 0.95


@pytest.mark.slow
def test_claim_gate():
    from wisecli.engines.explain.demo import run_demo

    result = run_demo(quick=False, device="cpu", n_test=8, masks=1000, shipped=True)
    gates = {g.name: g for g in result.gates}
    assert all(g.ok for g in result.gates), [g.as_dict() for g in result.gates if not g.ok]
    assert gates["share of canvases with S_green < 0 on red strokes"].threshold == 7 / 8
    assert gates["test accuracy"].threshold == 0.8
