"""Demo smoke test (quick), the demo's accuracy gate (slow), and CPU/GPU agreement (gpu)."""

import json

import numpy as np
import pytest
import torch
from conftest import run_wise

from wisecli.engines.segment_airway import api

# one torch and one BLAS thread per module (conftest): a 2-core machine's second core runs the recipe retrain
# beside this folder (test_airway_demo.py), and two spinning OpenMP threads here cost ~28 CPU-s more [measured]
pytestmark = pytest.mark.usefixtures("one_thread_module")

RECIPE_TEST = "test_recipe_retrains_to_the_gates"


def _recipe_gates(folder):
    """`demo.RECIPE` retrained with the `train` verb's code (seed 0, one thread) and scored on the held-out phantom:
    the epochs run, the quick demo's gates and the state dict's shapes (picklable, for the forked worker)."""
    from wisecli.engines.segment_airway import demo
    from wisecli.runtime.checkpoints import load_checkpoint

    res = demo.recipe_run(folder)
    ck = load_checkpoint(folder / "run" / "checkpoints" / "last.pt", method="segment-airway")
    _, head = demo.evaluate_held_out(demo._model(ck["config"], ck["state_dict"]), torch.device("cpu"))
    return {"epochs": res["epochs"], "gates": [g.as_dict() for g in demo.quick_gates(head)],
            "shapes": {k: tuple(v.shape) for k, v in ck["state_dict"].items()}}


@pytest.fixture(scope="module", autouse=True)
def recipe(request, beside_session, tmp_path_factory):
    """The recipe retrain (~45 CPU-s on one thread) starts in the session's forked worker at this folder's first
    test and runs on the second core beside the rest of `tests/segment_airway`; `test_recipe_retrains_to_the_gates`
    (marked `last`) collects it. The same work, seed and gates; ~40 s less wall time for the folder on 2 cores."""
    if any(item.name == RECIPE_TEST for item in request.session.items):
        return beside_session("airway-recipe", _recipe_gates, tmp_path_factory.mktemp("recipe"))
    return None


def test_demo_quick_gates_the_shipped_weights_and_leaves_a_reusable_run(tmp_path):
    """Issue 13 point 9: the quick demo's `ok` is the claim at the stated thresholds (held-out DSC ≥ 60 %, TD
    ≥ 65 %, BD ≥ 20 %, shown in the table), reached by the shipped weights on a phantom they never saw; -o
    leaves a checkpoint that `predict` and `info` read, and the held-out phantom beside it."""
    out = tmp_path / "demo"
    code, stdout, err = run_wise("segment-airway", "demo", "--quick", "--device", "cpu", "-o", str(out), "--json")
    assert code == 0, err
    doc = json.loads(stdout)
    assert doc["ok"] and doc["quick"] and doc["method"] == "segment-airway"
    assert doc["weights"] == "shipped demo_weights.npz"
    gates = {g["gate"]: (g["op"], g["threshold"], g["value"]) for g in doc["gates"]}
    assert {k: v[:2] for k, v in gates.items()} == {"held-out DSC %": (">=", 60.0), "held-out TD %": (">=", 65.0),
                                                     "held-out BD %": (">=", 20.0)}
    assert doc["headline"]["dsc"] >= 60 and doc["headline"]["td"] >= 65 and doc["headline"]["bd"] >= 20
    ck = torch.load(out / "checkpoints" / "best.pt", weights_only=True)
    assert ck["method"] == "segment-airway" and ck["arch"] == "wingsnet" and ck["config"]["width"] == 0.25
    assert (out / "phantoms" / "images" / "case_000.nii.gz").is_file() and (out / "demo.json").is_file()
    # a second run into the same folder is refused (exit 2) unless --overwrite
    code, stdout, err = run_wise("segment-airway", "demo", "--quick", "--device", "cpu", "-o", str(out))
    assert code == 2 and stdout == "" and "--overwrite" in err


def test_info_describes_the_shipped_weights_and_the_gates():
    from wisecli.engines.segment_airway.demo import GATES, RECIPE, TRAINED_ON, WEIGHTS

    doc = api.info()
    dw = doc["demo_weights"]
    # the shipped description is the recipe's: 80 epochs × 4 phantoms × 2 patches / batch 2 = 320 steps (the file
    # said 200, the first recipe's, until it was regenerated from RECIPE: same weights bit for bit)
    t = RECIPE["train"]
    steps = t["schedule.epochs1"] * RECIPE["train_phantoms"] * t["data.patches_per_case"] // t["data.batch_size"]
    assert dw["trained_on"] == TRAINED_ON and f"{steps} steps" in TRAINED_ON
    assert dw["file"] == "demo_weights.npz" and dw["bytes"] == WEIGHTS.stat().st_size <= 4 * 2**20
    assert dw["recipe"] == json.loads(json.dumps(RECIPE)) and "tiny" in dw["trained_on"]
    assert len(doc["demo_gates"]) == len(GATES)


@pytest.mark.slow
@pytest.mark.last
def test_recipe_retrains_to_the_gates(recipe):
    """Issue 13 point 9: `demo.RECIPE` retrained with the `train` verb's code (about 45 CPU-s, seed 0, one
    thread) gives weights that pass the quick demo's gates on the held-out phantom, and the same architecture
    as the shipped file. Shipped weights measured DSC 71.2 %, TD 79.4 %, BD 44.4 % (demo.py docstring); a
    retrain on this CPU reproduced them exactly. KNOWN RISK (finding, issue 13): the recipe is small and its
    outcome varies with the training trajectory: at 80 epochs seeds 0/1/2/3 scored DSC 71.2 / 66.8 / 0 / 59.4
    (seed 2: a false-positive blob larger than the airway won the largest-component step). Another CPU's
    kernels change the trajectory the way a seed does, so if this fails on another machine the recipe (not
    the gate) needs to grow. Tried for issue 13 (branch s13/airway, not adopted): one lr drop at 90 % instead of
    the schedule's 60 % and 90 % fixes seed 2 (DSC / TD / BD 66.7 / 68.8 / 33.3) but not seed 3 (62.5 / 52.5 /
    33.3, TD under 65), 52 CPU-s each on a loaded machine; the same at 100 epochs (62 CPU-s) gives seeds 0-3
    80.4/81.2/55.6, 72.5/86.9/77.8, 64.2/83.1/66.7, 64.3/55.6/33.3 (seed 3 still TD < 65); no drop at all
    fails seeds 2 and 3 (55.4/40.0, 43.3/30.6). Validating a held-out phantom every 5 epochs to pick best.pt
    costs more than the training (226 CPU-s on seed 2) and does not help: seed 2's validation DSC after the
    largest-component step is 0 at 15 of its 17 checks (44.6 at epoch 45, and that checkpoint scores 0 held
    out)."""
    from wisecli.engines.segment_airway import demo
    from wisecli.runtime import demo_weights

    got = recipe.get(timeout=1200)
    assert got["epochs"] == demo.RECIPE["train"]["schedule.epochs1"]
    assert all(g["ok"] for g in got["gates"]), got["gates"]
    _, groups = demo_weights.load(demo.WEIGHTS)
    assert {k: tuple(v.shape) for k, v in groups["wingsnet"].items()} == got["shapes"]


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


@pytest.mark.gpu
def test_benchmark_quick_rows():
    """The quick benchmark's inference, end-to-end and parse rows. On the GPU (issue 13, point 11): on CPU this
    test took 52 CPU-s of the method's 75 s budget (130 with R6); the conformance suite still runs the same
    quick CPU benchmark (`--no-train`) through the CLI."""
    recs = [r.as_dict() for r in api.benchmark(device="cuda", quick=True, repeats=1, no_train=True)]
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
    doc = api.demo(quick=True, device="cpu", n_train=1, n_test=0, steps=1, overfit=True).as_dict()
    assert [r["case"] for r in doc["rows"]] == ["train 0"] and doc["weights"] == "trained now"


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


def test_the_recipe_records_every_train_setting():
    """demo.RECIPE["train"] is a complete `train` configuration (every key of api.DEFAULTS["train"] but the seed),
    so the recipe stays what made the shipped weights when the defaults change."""
    from wisecli.engines.segment_airway.demo import RECIPE

    assert set(RECIPE["train"]) == set(api.DEFAULTS["train"]) - {"seed"}
