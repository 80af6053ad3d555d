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


def test_cuda_graph_maps_equal_eager_maps():
    """`--cuda-graph` replays the same kernels: its maps equal the eager maps (fp32 to 1e-5; bf16 Pearson ≥ 0.999,
    the graph may pick other bf16 kernels than the warm-up), and a second group reuses the captured graphs."""
    from wisecli.engines.explain.demo import load_weights
    from wisecli.engines.explain.model import from_module
    from wisecli.engines.explain.predict import explain_images
    from wisecli.engines.explain.synthetic import canvases

    net, mean, std = load_weights()
    box = from_module(net, channels=3, size=(32, 32), mean=mean, std=std, device="cuda")
    x = torch.from_numpy(canvases(4, part="test", seed=3)["x"])
    kw = dict(method="mcrise", masks=1000, grid=7, keep_prob=0.9, colors=[[255, 0, 0], [0, 255, 0], [0, 0, 255]],
              seed=0, batch=512)
    for amp in (False, True):
        eager = explain_images(box, x, amp=amp, **kw)["maps"]
        graph = explain_images(box, x, amp=amp, cuda_graph=True, **kw)["maps"]
        again = explain_images(box, x, amp=amp, cuda_graph=True, **kw)["maps"]
        torch.testing.assert_close(graph, again)
        if amp:
            r = np.corrcoef(eager.flatten().numpy(), graph.flatten().numpy())[0, 1]
            assert r >= 0.999, r
        else:
            np.testing.assert_allclose(graph.numpy(), eager.numpy(), atol=1e-5)
    assert len(box._graphed[False].graphs) >= 1
