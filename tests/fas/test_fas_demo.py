"""Demo smoke test, the benchmark's quick preset, the §9 demo gate (slow) and the CPU/GPU agreement (gpu)."""

import json

import pytest
import torch

from tests.conftest import run_wise


def test_demo_quick_smoke(monkeypatch):
    code, out, err = run_wise("fas", "demo", "--quick", "--device", "cpu", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["title"] == "SIMULATED ATTACKS ON SCIKIT-IMAGE FACES: NOT A BENCHMARK" and doc["simulated"]
    assert doc["method"] == "fas" and doc["rows"][0]["mode"] == "pyramid" and doc["ok"]
    assert 0 <= doc["headline"]["pyramid_test_acer"] <= 1 and doc["seconds"] > 0
    # the table path, fed the same result (the engine ran above)
    from wisecli.engines.fas import api
    from wisecli.runtime.results import DemoResult, Gate

    keep = {k: v for k, v in doc.items() if k not in ("method", "ok", "headline", "gates")}
    result = DemoResult(doc["method"], [Gate(g["gate"], g["value"], g["op"], g["threshold"]) for g in doc["gates"]],
                        doc["headline"], keep)
    monkeypatch.setattr(api, "demo", lambda **kw: result)
    code, out, err = run_wise("fas", "demo", "--quick", "--device", "cpu")
    assert code == 0 and "NOT A BENCHMARK" in out and "pyramid" in out


def test_benchmark_quick_preset():
    code, out, err = run_wise("fas", "benchmark", "--quick", "--iters", "1", "--device", "cpu", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["preset"] == "quick" and doc["outputs_agree_rtol_1e-4"] and doc["max_abs_diff"] < 1e-3
    assert {"faces_per_s", "train_step_ms"} <= set(doc["reference"]) and {"inference", "train_step"} <= set(
        doc["ratios"])
    assert all({"case", "ours_s", "peer_s", "speedup", "device"} <= set(r) for r in doc["records"])
    assert doc["predict_videos_per_s"] > 0


def test_demo_gate_direction_on_cpu_one_seed_four_epochs():
    """§9's claim in direction on CPU, at a size that fits the suite (issue 13, point 11): the demo's data and
    model, one seed (0) and 4 epochs instead of 2 seeds and 13, must put pyramid and binary-mask far from chance
    (ACER 0.5, AUC 0.5) on the held-out LFW faces: test ACER <= 0.25 and test AUC >= 0.85 for each mode.

    Measured (CPU, seeds 0, 1, 2 at 4 epochs): pyramid test ACER 0.100 / 0.133 / 0.100, AUC 0.929 / 0.976 / 0.920;
    binary-mask ACER 0.100 / 0.167 / 0.133, AUC 0.940 / 0.918 / 0.987. The worst seed keeps 0.083 of ACER and
    0.068 of AUC to the thresholds. On one torch thread it takes 24 CPU-s (seed 0 again: ACER 0.10 / 0.10); two
    threads on a busy machine only spin (140 CPU-s measured), so the test runs on one. The full gate (mean test
    ACER <= 10 % over 2 seeds at 13 epochs, ~130 s on 2 CPU cores) is the GPU test below."""
    from wisecli.engines.fas.api import demo

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        doc = demo(quick=False, device="cpu", seeds=1, epochs=4).as_dict()
    finally:
        torch.set_num_threads(threads)
    for mode in ("pyramid", "binary-mask"):
        assert doc["mean"][mode]["test_acer"] <= 0.25, doc["mean"]
        assert doc["mean"][mode]["test_auc"] >= 0.85, doc["mean"]
    assert doc["simulated"] and all("cross_acer" in r for r in doc["rows"])  # the astronaut split is reported


@pytest.mark.slow
@pytest.mark.gpu
def test_demo_gate_pyramid_and_binary_mask():
    """§9: pyramid and binary-mask reach test ACER <= 10 % on held-out LFW faces (mean of 2 seeds), the full demo
    (2 seeds × 13 epochs; ~130 s on 2 CPU cores, so it runs on the GPU; the CPU suite gates the same claim in
    direction at 4 epochs, above)."""
    from wisecli.engines.fas.api import demo

    doc = demo(quick=False, device="cuda").as_dict()
    for mode in ("pyramid", "binary-mask"):
        assert doc["mean"][mode]["test_acer"] <= 0.10, doc["mean"]
    assert doc["gate"]["passed"] and doc["simulated"]
    assert all("cross_acer" in r for r in doc["rows"])  # the astronaut split is reported, not gated


@pytest.mark.gpu
def test_cpu_and_gpu_frame_scores_agree(tmp_path):
    from wisecli.engines.fas.api import DEFAULTS
    from wisecli.engines.fas.model import check_config
    from wisecli.engines.fas.predict import predict_samples
    from wisecli.engines.fas.data import Sample
    from wisecli.engines.fas.model import build_model
    from wisecli.engines.fas.synthetic import skimage_live_pool, write_simulated
    from wisecli.runtime.checkpoints import save_checkpoint

    torch.manual_seed(0)
    cfg = check_config({**DEFAULTS["train"], "width": 0.25, "input_size": 64, "map_size": 16, "detector": "none"})
    model = build_model(cfg)
    for m in model.modules():  # non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    ck = save_checkpoint(tmp_path / "m.pt", method="fas", arch="cdcn", config=cfg, state_dict=model.state_dict(),
                         threshold=0.5)
    pool = skimage_live_pool(64, __import__("numpy").random.default_rng(0))[:8]
    write_simulated(pool, tmp_path / "sim", size=64, seed=0)
    samples = [Sample(str(p), 1, None, p.stem, "test") for p in sorted((tmp_path / "sim").glob("*/*.png"))]
    cpu = [r["score"] for r in predict_samples(samples, ck, device="cpu", frames=1)]
    g32 = [r["score"] for r in predict_samples(samples, ck, device="cuda", frames=1, amp=False)]
    gbf = [r["score"] for r in predict_samples(samples, ck, device="cuda", frames=1, amp=True)]
    assert max(abs(a - b) for a, b in zip(cpu, g32)) < 1e-3
    assert max(abs(a - b) for a, b in zip(cpu, gbf)) < 1e-2
