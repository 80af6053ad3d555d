"""The command line of `wise explain` (§9 test 10): every §8 bad input is exit 2 with one `Error:` line and an empty
stdout; `--json`/`--jsonl` parse; a corrupt image in a batch is exit 3 with the others written; `--skip-existing`
resumes; evaluate end to end; `demo --quick` is ok."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import conformance_module, run_wise
from wisecli.runtime.device import one_cpu_thread

conf = conformance_module(__file__)
FAST = ["--masks", "64", "--grid", "4", "--no-png", "--device", "cpu"]


@pytest.fixture(autouse=True)
def _one_thread():
    with one_cpu_thread(torch.device("cpu")):
        yield


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    ckpt = conf.checkpoint(tmp / "ckpt" / "best.pt")
    gray = conf.checkpoint(tmp / "gray" / "best.pt", channels=1)
    imgs = conf.images(tmp / "imgs", n=3)
    return tmp, ckpt, gray, imgs


def _bad(*args, match: str):
    code, out, err = run_wise("explain", *args)
    assert code == 2, (code, err)
    assert out == ""
    assert err.count("Error:") == 1 and match in err, err
    assert "Traceback" not in err


def test_bad_models(env, tmp_path):
    tmp, ckpt, gray, imgs = env
    o = ["-o", str(tmp_path / "o")]
    _bad("run", str(imgs[0]), "--model", str(tmp / "missing.pt"), *o, *FAST, match="model not found")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage" * 50)
    _bad("run", str(imgs[0]), "--model", str(corrupt), *o, *FAST, match="corrupt")
    from wisecli.runtime.checkpoints import save_checkpoint

    other = tmp_path / "other.pt"
    save_checkpoint(other, method="reid", arch="x", config={}, state_dict={})
    _bad("run", str(imgs[0]), "--model", str(other), *o, *FAST, match="reid")
    ts = tmp_path / "feat.ts"
    torch.jit.save(torch.jit.script(torch.nn.Conv2d(3, 4, 3)), str(ts))
    _bad("run", str(imgs[0]), "--model", str(ts), "--input-size", "16", "16", *o, *FAST, match="not [B, C]")
    _bad("run", str(imgs[0]), "--model", str(gray), "--method", "mcrise", *o, *FAST, match="3-channel")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args,match", [
    (["--keep-prob", "1.5"], "(0, 1)"), (["--keep-prob", "0"], "positive"), (["--masks", "0"], "at least 1"),
    (["--grid", "1"], "--grid"), (["--grid", "17"], "--grid"), (["--colors", "red,plaid"], "unknown colour"),
    (["--colors", "red,#ff0000"], "duplicate"), (["--target", "7"], "not a class"), (["--target", "zz"], "not a class"),
    (["--shard", "3/2"], "--shard"), (["--shard", "x"], "--shard"),
])
def test_bad_options(env, tmp_path, args, match):
    tmp, ckpt, gray, imgs = env
    argv = ["run", str(imgs[0]), "--model", str(ckpt), "-o", str(tmp_path / "o"), *FAST, *args]
    _bad(*argv, match=match)
    assert not (tmp_path / "o").exists()


def test_absent_cuda(env, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA is here")
    tmp, ckpt, gray, imgs = env
    _bad("run", str(imgs[0]), "--model", str(ckpt), "-o", str(tmp_path / "o"), "--masks", "64", "--device", "cuda",
         match="CUDA")


def test_batch_json_partial_failure_and_resume(env, tmp_path):
    tmp, ckpt, gray, imgs = env
    argv = conf.batch(tmp_path, corrupt=1)
    code, out, err = run_wise("explain", *argv, "--json")
    assert code == 3, err
    doc = json.loads(out)
    status = {r["input"].rsplit("/", 1)[-1]: r["status"] for r in doc["records"]}
    assert status == {"img0.png": "ok", "img1.png": "error", "img2.png": "ok"}
    outd = tmp_path / "out"
    assert (outd / "img0.mcrise.npy").is_file() and (outd / "img2.json").is_file() and (outd / "run.json").is_file()
    assert not (outd / "img1.mcrise.npy").exists()
    a = np.load(outd / "img0.mcrise.npy")
    assert a.shape == (3, 1, 16, 16) and a.dtype == np.float32
    # existing outputs are refused before work; --skip-existing resumes
    _bad(*conf.batch(tmp_path), match="output exists")
    conf.images(tmp_path / "batch", n=3)                       # img1 stays corrupt: rewrite it
    (tmp_path / "batch" / "img1.png").unlink()
    conf.images(tmp_path / "batch", n=3)
    code, out, err = run_wise("explain", *conf.batch(tmp_path), "--skip-existing", "--jsonl")
    assert code == 0, err
    recs = [json.loads(line) for line in out.splitlines()]
    assert sorted(r["status"] for r in recs) == ["ok", "skipped", "skipped"]
    rec = json.loads((outd / "img1.json").read_text())
    assert rec["method"] == "mcrise" and rec["colors"] == [[255, 0, 0], [0, 255, 0], [0, 0, 255]]
    assert rec["keep_prob"] == 0.9                             # the MC-RISE default (RISE's is 0.5: below)
    assert 0 <= rec["classes"][0]["prob"] <= 1


def test_rise_save_size_and_evaluate(env, tmp_path):
    tmp, ckpt, gray, imgs = env
    big = tmp_path / "big.npy"
    np.save(big, np.random.default_rng(0).random((24, 20, 3)).astype(np.float32))
    out = tmp_path / "sal"
    code, o, err = run_wise("explain", "run", str(imgs[0]), str(imgs[1]), str(big), "--model", str(ckpt), "-o",
                            str(out), "--method", "rise", "--target", "top:2", "--save-size", "image", "--masks", "64",
                            "--grid", "4", "--device", "cpu", "--json")
    assert code == 0, err
    assert np.load(out / "big.rise.npy").shape == (2, 24, 20)
    assert json.loads((out / "img0.json").read_text())["keep_prob"] == 0.5
    assert (out / "img0.c{}.png".format(json.loads((out / "img0.json").read_text())["classes"][0]["id"])).is_file()
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("image,x0,y0,x1,y1,class\nimg0,2,2,8,8,a\nimg1,1,1,30,30,b\n")
    code, o, err = run_wise("explain", "evaluate", "--from", str(out), "--metrics", "deletion,insertion,pointing",
                            "--boxes", str(boxes), "--baseline", "random", "--json")
    assert code == 0, err
    doc = json.loads(o)
    assert len(doc["records"]) == 3 and doc["protocol"]["step"] == 2 and doc["protocol"]["n_steps"] == 128
    assert 0 <= doc["summary"]["deletion_auc"]["mean"] <= 1
    assert "partly outside" in err
    # bad evaluate inputs
    _bad("evaluate", "--from", str(tmp_path), match="run.json")
    boxes.write_text("image,x0,y0,x1,y1,class\nimg0,40,40,50,50,a\n")
    _bad("evaluate", "--from", str(out), "--metrics", "pointing", "--boxes", str(boxes), match="wholly outside")
    boxes.write_text("image,x0,y0,x1,y1,class\nimg0,1,1,5,5,zebra\n")
    _bad("evaluate", "--from", str(out), "--metrics", "pointing", "--boxes", str(boxes), match="unknown class")
    maps = tmp_path / "maps"
    maps.mkdir()
    np.save(maps / "img0.npy", np.zeros((5, 7), np.float32))
    _bad("evaluate", str(imgs[0]), "--maps", str(maps), "--model", str(ckpt), match="is 5x7")


def test_cuda_graph_on_cpu_warns_and_gives_the_same_maps(env, tmp_path):
    """`--cuda-graph` changes the speed, never the maps: without CUDA the run warns (stderr), runs eagerly, says so
    in run.json, and writes the maps of a run without the flag (identical arithmetic, so exactly equal)."""
    tmp, ckpt, gray, imgs = env
    args = ["run", str(imgs[0]), str(imgs[1]), "--model", str(ckpt), "--method", "rise", *FAST]
    code, out, err = run_wise("explain", *args, "-o", str(tmp_path / "g"), "--cuda-graph")
    assert code == 0 and "--cuda-graph needs a CUDA device" in err, err
    assert json.loads((tmp_path / "g" / "run.json").read_text())["cuda_graph"] is False
    code, out, err = run_wise("explain", *args, "-o", str(tmp_path / "e"))
    assert code == 0 and "cuda-graph" not in err, err
    for name in ("img0.rise.npy", "img1.rise.npy"):
        np.testing.assert_array_equal(np.load(tmp_path / "g" / name), np.load(tmp_path / "e" / name))


def test_demo_quick_json_ok():
    code, out, err = run_wise("explain", "demo", "--quick", "--device", "cpu", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["ok"] is True and doc["headline"]["accuracy"] >= 0.8
    assert {"accuracy", "deletion_auc", "deletion_auc_random", "pointing", "s_green_red"} <= set(doc["headline"])


def test_info_json():
    code, out, err = run_wise("explain", "info", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["defaults"]["run"]["masks"] == 4000 and "mcrise" in doc["formulas"]
