"""The claim gate (§9, CPU, `slow`, seed 0): the demo recipe retrained from scratch, 8 test canvases (sklearn digits),
N = 1000: accuracy ≥ 0.8; RISE and MC-RISE deletion AUC ≥ 0.05 below and insertion ≥ 0.05 above random maps
(3 seeds); RISE pointing on the red digit ≥ 0.75 and above a random point; S_green over the red digit's strokes < 0
on ≥ 7 of 8 canvases. It also checks the shipped demo weights against the retrained recipe."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.mark.slow
def test_claim_gate_retrained_from_the_recipe():
    from wisecli.engines.explain.demo import load_weights, run_demo, train_digits
    from wisecli.runtime.device import one_cpu_thread

    result = run_demo(quick=False, device="cpu", n_test=8, masks=1000, shipped=False)
    gates = {g.name: g for g in result.gates}
    assert all(g.ok for g in result.gates), [g.as_dict() for g in result.gates if not g.ok]
    assert gates["share of canvases with S_green < 0 on red strokes"].threshold == 7 / 8
    assert result.details["weights"] == "trained 5 epochs"
    # the shipped weights are this recipe's (same seed, one CPU thread): equal up to float noise
    with one_cpu_thread(torch.device("cpu")):
        net, mean, std, _ = train_digits("cpu", 0)
    shipped, smean, sstd = load_weights()
    np.testing.assert_allclose(mean, smean, atol=1e-6)
    for (k, a), b in zip(net.state_dict().items(), shipped.state_dict().values()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-3, err_msg=k)
