"""Claim gate (spec §9, slow): in the demo setting (d = 2, K = 20, κ = 400, T = 400, 8 replicates, seed 0) OFULog-r
(at the demo's β_t × 0.01) and ECOLog each have lower final regret than GLM-UCB, the paired 95 % CI of each
difference below 0 (§5); at the paper's β_t the OFULog-r half misses (a strict xfail with the numbers); and
`wise bandit demo --quick --json` reports ok. GPU: CUDA and CPU curves agree (float64)."""

import json

import numpy as np
import pytest
import torch

from conftest import run_wise
from wisecli.engines.bandit import api, metrics


FINDING = ("the paper's β_t (--beta-scale 1), measured on the 2-core CPU (seed 0, T = 400, R = 8): OFULog-r 195.9 vs "
           "GLM-UCB 158.8 mean final regret, paired CI of the difference [-83, 162] (not below 0). β_t ≈ 5000 here: the "
           "exact planner's confidence set holds the whole ball ‖θ‖ ≤ S for hundreds of rounds, so the optimistic value "
           "is S·‖x‖ and OFULog-r plays the longest arm (final regrets 377, 385, 392, 383 in 4 of 8 replicates: "
           "≈ 0.95 a round). The reference's 20 COBYLA steps from θ̂ never reach that optimum, which is what its "
           "figure's OFULog-r curve reflects.")


def _run(algos, tmp_path, beta_scale, horizon=400):
    return api.run(algos=algos, horizon=horizon, replicates=8, seed=0, curve_points=40, device="cpu",
                   beta_scale=beta_scale, out_dir=tmp_path / "gate")


def _checks(res, pairs, horizon=400):
    return metrics.check_order(res["records"], pairs, float(horizon), resamples=2000, level=0.95)


@pytest.mark.slow
def test_ecolog_beats_the_kappa_scaled_bonus(tmp_path):
    # measured: ECOLog 68.1 vs GLM-UCB 158.8, paired difference -90.6, CI [-137.1, -51.5]
    res = _run("ecolog,glm-ucb", tmp_path, 1.0)
    checks = _checks(res, [("ecolog", "glm-ucb")])
    assert all(c["ok"] for c in checks), checks


@pytest.mark.slow
def test_ofulog_r_beats_the_kappa_scaled_bonus(tmp_path):
    """OFULog-r at the demo's practical β_t × 0.01 (chosen on seed 1, replicates 0–7, T = 400, where β × 1, 0.3,
    0.1, 0.03, 0.01 gave 189, 157, 59, 11, 6.5 against GLM-UCB's 158; gated on seed 0). T = 200 rather than the
    spec's 400: the planner's rounds cost ~17 CPU-s at 400, over the 15 s a test may take. Measured at T = 200:
    OFULog-r 3.17 vs GLM-UCB 84.6, paired difference -81.5, CI [-108.9, -60.6] (~12 CPU-s); at T = 400 (the full
    demo): OFULog-r 3.5 vs GLM-UCB 158.8, CI [-212, -108]."""
    res = _run("ofulog-r,glm-ucb", tmp_path, 0.01, horizon=200)
    checks = _checks(res, [("ofulog-r", "glm-ucb")], horizon=200)
    assert all(c["ok"] for c in checks), checks


@pytest.mark.slow
@pytest.mark.xfail(reason=FINDING, strict=True)
def test_ofulog_r_at_the_papers_beta_beats_the_kappa_scaled_bonus(tmp_path):
    """The same claim at the paper's β_t: a recorded miss (strict: a pass would mean the finding is stale)."""
    res = _run("ofulog-r,glm-ucb", tmp_path, 1.0)
    checks = _checks(res, [("ofulog-r", "glm-ucb")])
    assert all(c["ok"] for c in checks), checks


@pytest.mark.slow
def test_demo_quick_json_is_ok():
    code, out, err = run_wise("bandit", "demo", "--quick", "--device", "cpu", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["ok"] is True and doc["gates"] and set(doc["headline"]) == set(api.ALGOS)
    assert "β×0.01" in doc["gates"][0]["gate"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_and_cpu_curves_agree():
    from wisecli.engines.bandit import predict
    from wisecli.engines.bandit import synthetic as syn

    S = syn.s_from_kappa(400)
    env = syn.make_env(dim=2, arms=20, theta_norm=S - 1, S=S, arm_set="fixed", horizon=100, seed=0, replicates=[0, 1])
    cfg = {"norm_constraint": True, "lazy_every": 1, "projection": "ball", "ts_scale": 1.0}
    for algo in api.ALGOS:
        a = predict.simulate(algo, env, horizon=100, S=S, delta=0.05, seed=0, cfg=cfg, dtype=torch.float64,
                             device=torch.device("cpu"))["regret"]
        b = predict.simulate(algo, env, horizon=100, S=S, delta=0.05, seed=0, cfg=cfg, dtype=torch.float64,
                             device=torch.device("cuda"))["regret"]
        # the same decisions give the same regret; a tie broken differently by rounding would show as a jump
        assert np.abs(np.cumsum(a, 1) - np.cumsum(b, 1)).max() < 1e-9, algo
