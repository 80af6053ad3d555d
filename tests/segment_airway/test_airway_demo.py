"""Demo smoke test (quick), the demo's accuracy gate (slow), and CPU/GPU agreement (gpu)."""

import json

import numpy as np
import pytest
import torch
from conftest import run_wise

from wisecli.engines.segment_airway import api


def test_demo_quick_cli_json():
    code, out, err = run_wise("segment-airway", "demo", "--quick", "--device", "cpu", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["ok"] and doc["quick"] and doc["method"] == "segment-airway"
    assert set(doc["headline"]) >= {"dsc", "td", "bd", "precision", "atm_score"}
    assert doc["train"]["steps"] >= 1 and np.isfinite(doc["train"]["last_loss"])


@pytest.mark.slow
@pytest.mark.gpu
def test_demo_gate_held_out_dsc():
    """Spec §9 Demo: the full demo (8 + 2 `demo` phantoms, 120 steps at 48³, seed 0) reaches held-out DSC ≥ 50 %.
    It takes ~145 s on 2 CPU cores, so it runs on the GPU (issue 13, point 11).

    No smaller CPU form separates: measured on CPU (seed 0), the full preset with 2 + 1 phantoms and 30 steps
    (~70 CPU-s) scores held-out DSC 1.9 % (loss 1.886 → 1.796), and the quick preset overfitting 1 phantom for
    40 steps scores training DSC 8.0 % (loss 1.958 → 1.933): both still mark nearly the whole lung (precision
    1–4 %, TD ~100 %), as an untrained model does. On CPU the suite keeps the quick smoke test above."""
    doc = api.demo(quick=False, device="cuda", seed=0).as_dict()
    assert doc["headline"]["dsc"] >= 50.0, doc["headline"]
    assert doc["train"]["last_loss"] < doc["train"]["first_loss"]
    assert doc["ok"]


def test_benchmark_quick_rows():
    """The quick benchmark's inference, end-to-end and parse rows on CPU. The training row R6 (full-width WingsNet
    and BasicUNet training steps) is left out with `no_train`, as the conformance example does, and checked on the
    GPU below (issue 13, point 11): measured on a busy 2-core machine, this test took 130 CPU-s with R6 and 54
    without."""
    recs = [r.as_dict() for r in api.benchmark(device="cpu", quick=True, repeats=1, no_train=True)]
    rows = {r["row"]: r for r in recs}
    assert {"R1", "R2", "R3", "R4", "R7"} <= set(rows) and "R6" not in rows
    assert rows["R7"]["identical"] is True
    assert all(r["ours_s"] > 0 for r in recs)


@pytest.mark.gpu
def test_benchmark_quick_training_row_on_gpu():
    recs = [r.as_dict() for r in api.benchmark(device="cuda", quick=True, repeats=1)]
    rows = {r["row"]: r for r in recs}
    assert {"R1", "R2", "R3", "R4", "R6", "R7"} <= set(rows)
    assert rows["R6"]["patches_per_s"] > 0 and rows["R6"]["peer_patches_per_s"] > 0


@pytest.mark.gpu
def test_gpu_fold_and_bf16_agree_with_cpu():
    from wisecli.engines.segment_airway.model import WingsNet

    torch.manual_seed(0)
    torch.backends.cudnn.allow_tf32 = False  # compare fp32 with fp32
    m = WingsNet().eval()
    x = torch.rand(1, 1, 64, 64, 64)
    with torch.no_grad():
        cpu = m.folded_forward(x)
        mg = m.cuda()
        gpu = mg.folded_forward(x.cuda()).cpu()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf = mg.folded_forward(x.cuda()).float().cpu()
    assert (cpu - gpu).abs().max() < 1e-3
    assert ((torch.sigmoid(bf) >= 0.5) == (torch.sigmoid(cpu) >= 0.5)).float().mean() > 0.99


@pytest.mark.gpu
def test_training_overfits_four_demo_phantoms_in_300_steps():
    """§9 Train: on the GPU, 4 `demo` phantoms are fitted in 300 steps to TD and DSC ≥ 80 % (scored on them)."""
    doc = api.demo(quick=False, device="cuda", seed=0, steps=300, n_train=4, n_test=0, model_width=1.0,
                   overfit=True).as_dict()
    assert [r["case"] for r in doc["rows"]] == ["train 0", "train 1", "train 2", "train 3"]
    assert doc["headline"]["td"] >= 80 and doc["headline"]["dsc"] >= 80, doc["rows"]


def test_overfit_scores_the_training_phantoms():
    doc = api.demo(quick=True, device="cpu", n_train=2, n_test=1, overfit=True).as_dict()
    assert [r["case"] for r in doc["rows"]] == ["train 0", "train 1"]


@pytest.mark.gpu
def test_paper_claim_gul_beats_dice_on_td_and_bd():
    """Zheng et al. 2021: with the same wings and schedule, GUL detects more of the tree than Dice (higher TD
    and BD) at some precision cost. 24 `demo` phantoms at 1 mm, 8 held out."""
    kw = dict(device="cuda", seed=0, steps=600, n_train=16, n_test=8, size=(192, 168, 168),
              spacing=(1.0, 1.0, 1.0), model_width=1.0)
    gul = api.demo(quick=False, loss_name="gul", **kw).headline
    dice = api.demo(quick=False, loss_name="dice", **kw).headline
    print("GUL", gul, "Dice", dice, "precision cost", dice["precision"] - gul["precision"])
    assert gul["td"] > dice["td"] and gul["bd"] > dice["bd"]
