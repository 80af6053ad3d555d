"""GPU checks (§9 GPU; skipped without CUDA): CPU and GPU maps agree (Pearson ≥ 0.999 in fp32, ≥ 0.99 in bf16) and
the benchmark's correctness line holds on the device."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _maps(device, amp):
    from wisecli.engines.explain.demo import load_weights
    from wisecli.engines.explain.model import from_module
    from wisecli.engines.explain.predict import explain_images
    from wisecli.engines.explain.synthetic import canvases

    net, mean, std = load_weights()
    box = from_module(net, channels=3, size=(32, 32), mean=mean, std=std, device=device)
    x = torch.from_numpy(canvases(4, part="test", seed=3)["x"])
    out = {}
    for method in ("rise", "mcrise"):
        out[method] = explain_images(box, x, method=method, masks=2000, grid=7, keep_prob=0.5,
                                     colors=[[255, 0, 0], [0, 255, 0], [0, 0, 255]], amp=amp, seed=0)["maps"]
    return out


def test_cpu_and_gpu_maps_agree():
    cpu = _maps("cpu", False)
    for amp, floor in ((False, 0.999), (True, 0.99)):
        gpu = _maps("cuda", amp)
        for method in cpu:
            r = np.corrcoef(cpu[method].flatten().numpy(), gpu[method].flatten().numpy())[0, 1]
            assert r >= floor, (method, amp, r)


def test_benchmark_correctness_line_on_gpu():
    from wisecli.engines.explain import api

    recs = api.benchmark(device="cuda", quick=True)
    line = recs.summary["correctness_constant_box"]
    assert line["ours_mean_abs_S"] <= 0.02 * line["c"] * 5
    assert abs(line["faulty_mean_S"] - line["faulty_expected"]) <= 0.1 * abs(line["faulty_expected"])
