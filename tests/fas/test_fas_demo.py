"""Demo smoke test, the benchmark's quick preset, the §9 demo gate (slow) and the CPU/GPU agreement (gpu)."""

import json

import pytest
import torch

from tests.conftest import run_wise


def test_demo_quick_gates_the_claim_on_the_shipped_weights(monkeypatch):
    """Issue 13 point 9: the quick demo's `ok` is the paper's claim in direction on the shipped demo weights
    (pyramid's mean test ACER at most binary-mask's over the recipe's seeds, pyramid far from chance), its
    thresholds are in the gates, and it says what the weights were trained on."""
    from wisecli.engines.fas import demo as D

    code, out, err = run_wise("fas", "demo", "--quick", "--device", "cpu", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["title"] == "SIMULATED ATTACKS ON SCIKIT-IMAGE FACES: NOT A BENCHMARK" and doc["simulated"]
    assert doc["method"] == "fas" and doc["ok"], doc["gates"]
    assert [g["threshold"] for g in doc["gates"]] == [D.GATE_QUICK["acer_gap_below"], D.GATE_QUICK["pyramid_acer_max"]]
    assert sorted(r["mode"] for r in doc["rows"]) == sorted(D.RECIPE["modes"] * len(D.RECIPE["seeds"]))
    assert doc["weights"]["trained_on"] == D.TRAINED_ON and doc["weights"]["bytes"] <= 4 * 2 ** 20
    assert doc["weights"]["recipe"] == D.RECIPE
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


def test_quick_demo_refuses_training_options():
    """--quick scores the shipped weights: --epochs/--seeds would be silently ignored, so they are refused."""
    for flag in ("--epochs", "--seeds"):
        code, out, err = run_wise("fas", "demo", "--quick", flag, "2", "--device", "cpu")
        assert code == 2 and out == "" and "Error:" in err and "shipped demo weights" in err


def test_benchmark_quick_preset():
    code, out, err = run_wise("fas", "benchmark", "--quick", "--iters", "1", "--device", "cpu", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["preset"] == "quick" and doc["outputs_agree_rtol_1e-4"] and doc["max_abs_diff"] < 1e-3
    assert {"faces_per_s", "train_step_ms"} <= set(doc["reference"]) and {"inference", "train_step"} <= set(
        doc["ratios"])
    assert all({"case", "ours_s", "peer_s", "speedup", "device"} <= set(r) for r in doc["records"])
    assert doc["predict_videos_per_s"] > 0


@pytest.mark.slow
def test_recipe_retrains_the_shipped_weights():
    """Issue 13 point 9: retraining from `RECIPE` with the method's own `train` gives the shipped models. Each
    (mode, seed) model trains on its own, so one of them, pyramid seed 0, is retrained here (about 10 CPU-s; the
    whole recipe takes about 65, over the suite's budget for one method) and scored beside the shipped one: the
    test ACERs must agree within 1/15 (a different CPU or BLAS may flip near-tie samples; on the machine that made
    the file they are equal)."""
    import tempfile
    from pathlib import Path

    from wisecli.engines.fas import demo as D
    from wisecli.engines.fas.api import DEFAULTS

    keys = ("pyramid-s0",)
    shipped = D.load_demo_models()
    assert shipped is not None and set(keys) <= set(shipped)
    with tempfile.TemporaryDirectory() as tmp:
        splits, _ = D._simulated(Path(tmp))
        retrained = D._score_models(D.recipe_models(DEFAULTS["train"], keys=keys), splits, Path(tmp), "cpu")
        ship = D._score_models({k: shipped[k] for k in keys}, splits, Path(tmp), "cpu")
    for r, s in zip(retrained, ship):
        assert (r["mode"], r["seed"]) == (s["mode"], s["seed"])
        assert abs(r["test_acer"] - s["test_acer"]) <= 1 / 15 + 1e-9, (retrained, ship)
        assert r["test_acer"] <= D.GATE_QUICK["pyramid_acer_max"], retrained


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
