"""The command line of `wise sparse-cnn`: every §8 bad input (exit 2, one `Error:` line, empty stdout), predict
and evaluate end to end on a tiny folder with --jsonl/--json, SR predict writing images, `demo --quick`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import conformance_module, run_wise

conf = conformance_module(__file__)
CPU = ["--device", "cpu"]


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("sparse_cnn_cli")


@pytest.fixture(scope="module")
def data(tmp):
    return conf.write_folder(tmp / "shapes")


@pytest.fixture(scope="module")
def ckpt(tmp):
    return conf.checkpoint(tmp / "ckpt" / "best.pt")


@pytest.fixture(scope="module")
def sr_ckpt(tmp):
    from wisecli.engines.sparse_cnn.sr import SRResNet
    from wisecli.runtime.checkpoints import save_checkpoint

    torch.manual_seed(0)
    mk = {"scale": 2, "channels": 8, "blocks": 2, "batchnorm": False, "branch_channels": 4}
    path = tmp / "sr" / "best.pt"
    save_checkpoint(path, method="sparse-cnn", arch="srresnet", config={}, state_dict=SRResNet(**mk).state_dict(),
                    task="sr", model=mk, scale=2, density_min=0.05, density_curve=[],
                    mask={"rule": "regional", "tile": 8, "slack": 1.5})
    return path


def _bad(args, needle):
    code, out, err = run_wise("sparse-cnn", *args)
    assert code == 2, (code, out, err)
    assert out == ""
    lines = [ln for ln in err.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and needle in lines[0], err
    assert "Traceback" not in err


def test_bad_inputs_exit_2(tmp, data, ckpt, sr_ckpt):
    img = str(sorted((data / "a").iterdir())[0])
    pre = ["predict", img, "--weights", str(ckpt), *CPU]
    _bad([*pre, "--density", "1.5"], "--density")
    _bad([*pre, "--density", "0"], "--density")
    _bad([*pre, "--density", "0.5", "--mac-budget", "0.5"], "exclude")
    _bad([*pre, "--mac-budget", "0.05"], "dense floor")
    _bad([*pre, "--density", "0.05"], "trained minimum")
    _bad(["train", str(data), "-o", str(tmp / "r1"), "--tile", "5", *CPU], "--tile")
    _bad(["train", str(data), "-o", str(tmp / "r2"), "--task", "sr", "--scale", "3", *CPU], "--scale")
    _bad(["evaluate", "builtin:skimage-sr:test", "--weights", str(ckpt), *CPU], "SR data")
    _bad([*pre[:3], str(tmp / "missing.pt"), *CPU], "weights not found")
    small = tmp / "small_hr"
    small.mkdir(exist_ok=True)
    import cv2

    cv2.imwrite(str(small / "a.png"), np.zeros((40, 40, 3), np.uint8))
    _bad(["train", str(small), "-o", str(tmp / "r3"), "--task", "sr", "--patch", "48", *CPU], "larger than the patch")
    _bad(["train", str(data), "-o", str(tmp / "r4"), "--task", "sr", "--arch", "resnet18", *CPU], "not an SR network")


def test_resume_with_another_scale_or_task_exit_2(tmp, sr_ckpt):
    import shutil

    run = tmp / "srrun"
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sr_ckpt, run / "checkpoints" / "last.pt")           # an x2 SR run
    _bad(["train", "builtin:skimage-sr", "-o", str(run), "--task", "sr", "--scale", "4", "--resume", *CPU],
         "--scale 2")
    _bad(["train", "builtin:digits", "-o", str(run), "--resume", *CPU], "'sr' run")


def test_predict_jsonl_and_file(tmp, data, ckpt):
    imgs = [str(p) for p in sorted((data / "b").iterdir())[:3]]
    out = tmp / "preds.jsonl"
    code, stdout, err = run_wise("sparse-cnn", "predict", *imgs, "--weights", str(ckpt), "--density", "0.5",
                                 "-o", str(out), "--jsonl", *CPU)
    assert code == 0, err
    recs = [json.loads(ln) for ln in stdout.splitlines()]
    assert len(recs) == 3 and {r["status"] for r in recs} == {"ok"}
    assert all(r["density"] == 0.5 and r["exec"] == "masked" and 0 < r["mac_saving"] < 1 for r in recs)
    assert len(out.read_text().splitlines()) == 3
    code, stdout, _ = run_wise("sparse-cnn", "predict", imgs[0], "--weights", str(ckpt), "--mac-budget", "0.7",
                               "--jsonl", *CPU)
    assert code == 0
    r = json.loads(stdout)
    assert 0.1 < r["density"] < 0.5


def test_evaluate_json_rows(data, ckpt):
    code, out, err = run_wise("sparse-cnn", "evaluate", str(data), "--weights", str(ckpt), "--density", "1,0.3",
                              "--mask", "sobel", "--json", *CPU)
    assert code == 0, err
    doc = json.loads(out)
    r1, r3 = doc["rows"]
    assert r1["saving_counted"] == 0 < r3["saving_counted"]      # a Sobel map needs no branch: no overhead
    assert r3["macs_dense"] == r1["macs_dense"] and r3["latency_ms"] > 0
    assert r3["latency"]["exec"] == "masked"
    code, out, err = run_wise("sparse-cnn", "evaluate", str(data), "--weights", str(ckpt), "--density", "1",
                              "--no-latency", "--json", *CPU)
    row = json.loads(out)["rows"][0]
    assert row["saving_counted"] < 0 and "latency_ms" not in row      # the learned branch is overhead at 1


def test_sr_predict_writes_images_and_masks(tmp, sr_ckpt):
    import cv2

    folder = tmp / "lr"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    cv2.imwrite(str(folder / "x.png"), (rng.random((21, 27, 3)) * 255).astype(np.uint8))
    cv2.imwrite(str(folder / "y16.png"), (rng.random((20, 20)) * 65535).astype(np.uint16))
    out = tmp / "sr_out"
    code, stdout, err = run_wise("sparse-cnn", "predict", str(folder), "--weights", str(sr_ckpt), "--density", "0.25",
                                 "--save-masks", "-o", str(out), "--jsonl", *CPU)
    assert code == 0, err
    a = cv2.imread(str(out / "x_x2.png"), cv2.IMREAD_UNCHANGED)
    b = cv2.imread(str(out / "y16_x2.png"), cv2.IMREAD_UNCHANGED)
    assert a.shape == (42, 54, 3) and a.dtype == np.uint8
    assert b.shape == (40, 40, 3) and b.dtype == np.uint16
    m = cv2.imread(str(out / "x_mask.png"), cv2.IMREAD_UNCHANGED)
    assert m.shape == (21, 27) and (m > 0).sum() == np.ceil(0.25 * 21 * 27)
    assert (out / "run.json").is_file()
    recs = [json.loads(ln) for ln in stdout.splitlines()]
    assert {r["scale"] for r in recs} == {2}


def test_demo_quick_ok():
    code, out, err = run_wise("sparse-cnn", "demo", "--quick", "--json", *CPU)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["ok"] and doc["headline"]["saving_d030"] >= 0.25
