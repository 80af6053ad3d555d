"""`wise contrastive` on the command line: every §8 bad input is exit 2 with one `Error:` line and empty stdout;
--json/--jsonl parse; predict writes parts and the merged pair (spec §9 test 10)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import conformance_module, run_wise

conf = conformance_module(__file__)


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("contrastive_cli")


@pytest.fixture(scope="module")
def ex(tmp):
    return conf.examples(tmp)


def _bad(args, needle: str):
    code, out, err = run_wise("contrastive", *[str(a) for a in args])
    assert code == 2, (code, err[-600:])
    assert out == "", out
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and needle.lower() in lines[0].lower(), err
    assert any(ln.startswith("Hint:") for ln in err.splitlines()), err


def _train(flat, out, *extra):
    return [*("train", flat, "-o", out, "--width", "0.125", "--epochs", "1", "--batch-size", "4", "--k", "2",
              "--clusters", "2", "--resolutions", "none", "--no-progress", "--device", "cpu"), *extra]


def test_bad_inputs_are_exit_2(tmp, ex):
    flat, lab = tmp / "flat", tmp / "labelled"
    empty = tmp / "empty"
    empty.mkdir(exist_ok=True)
    _bad(_train(empty, tmp / "o1"), "no images")
    _bad(_train(flat, tmp / "o2", "--labels", tmp / "nope.csv"), "labels file not found")
    (tmp / "partial.csv").write_text("path,label\nc0_0.png,a\n")
    _bad(_train(flat, tmp / "o3", "--labels", tmp / "partial.csv"), "no label for")
    _bad(_train(flat, tmp / "o4", "--arms", "clim,bogus"), "unknown arm")
    _bad(_train(flat, tmp / "o5", "--batch-size", "64"), "larger than the 8 training images")
    _bad([*_train(flat, tmp / "o6"), "--k", "8"], "--k 8 must be below")
    _bad([*_train(flat, tmp / "o7"), "--clusters", "9"], "--clusters 9 is more than")
    _bad([*_train(flat, tmp / "o8", "--arms", "clim"), "--resolutions", "32"], "above the image size")
    if not torch.cuda.is_available():
        _bad(_train(flat, tmp / "o9", "--device", "cuda"), "cuda")
    ckpt = tmp / "ckpt" / "best.pt"
    _bad(["evaluate", ckpt, "--train", flat, "--test", lab, "--device", "cpu"], "has no labels")
    gray = tmp / "gray"
    from wisecli.runtime.io.images import write_image
    for c in (0, 1):
        for i in range(3):
            write_image(gray / f"k{c}" / f"g{i}.png", np.full((16, 16), 40 * i + 100 * c, np.uint8))
    _bad(["evaluate", ckpt, "--train", gray, "--test", gray, "--device", "cpu"], "channel")
    from tests.classify.conformance import checkpoint as classify_ckpt
    other = classify_ckpt(tmp / "classify.pt")
    _bad(["predict", flat, "--weights", other, "-o", tmp / "o10", "--device", "cpu"], "classify")


def test_resume_with_a_different_configuration_is_refused(tmp):
    flat = tmp / "flat"
    run = tmp / "run_resume"
    code, out, err = run_wise("contrastive", *[str(a) for a in _train(flat, run, "--arms", "baseline", "-q")])
    assert code == 0, err[-800:]
    assert (run / "checkpoints" / "last.pt").is_file() and (run / "metrics.jsonl").is_file()
    _bad([*_train(flat, run, "--arms", "baseline", "--resume"), "--tau", "0.5"], "different configuration")


def test_info_json_and_predict_jsonl_parse_and_predict_writes_the_merged_pair(tmp, ex):
    code, out, err = run_wise("contrastive", "info", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["method"] == "contrastive" and "clim" in doc["arms"] and doc["defaults"]["k"] == 10
    out_dir = tmp / "emb"
    code, out, err = run_wise("contrastive", "predict", str(tmp / "flat"), "--weights", str(tmp / "ckpt" / "best.pt"),
                              "-o", str(out_dir), "--set", "part_rows=3", "--jsonl", "--device", "cpu")
    assert code == 0, err[-600:]
    recs = [json.loads(line) for line in out.splitlines()]
    assert len(recs) == 8 and all(r["status"] == "ok" for r in recs) and sorted(r["row"] for r in recs) == list(range(8))
    emb = np.load(out_dir / "embeddings.npy")
    assert emb.shape == (8, 64) and emb.dtype == np.float16
    assert np.allclose(np.linalg.norm(emb.astype(np.float32), axis=1), 1, atol=2e-3)  # fp16 rows: 1e-3 rounding
    parts = sorted(p.name for p in out_dir.glob("part-*.npy"))
    assert parts == ["part-00000.npy", "part-00001.npy", "part-00002.npy"]
    index = [json.loads(line) for line in (out_dir / "index.jsonl").read_text().splitlines()]
    assert [r["row"] for r in index] == list(range(8))
    assert np.array_equal(np.concatenate([np.load(out_dir / p) for p in parts]), emb)
    # an existing output is refused, --skip-existing keeps it
    _bad(["predict", tmp / "flat", "--weights", tmp / "ckpt" / "best.pt", "-o", out_dir, "--device", "cpu"], "output exists")
    code, out, err = run_wise("contrastive", "predict", str(tmp / "flat"), "--weights", str(tmp / "ckpt" / "best.pt"),
                              "-o", str(out_dir), "--set", "part_rows=3", "--skip-existing", "--json", "--device", "cpu")
    assert code == 0 and {r["status"] for r in json.loads(out)["records"]} == {"skipped"}


def test_evaluate_linear_augmented_runs_and_bad_epochs_are_refused(tmp, ex):
    """In process through `api.evaluate` (the verb's only call; a subprocess would re-import torch and MONAI)."""
    from wisecli.engines.contrastive import api

    ckpt, lab = tmp / "ckpt" / "best.pt", tmp / "labelled"
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: a second thread only spins on 2 shared cores
    try:
        doc = api.evaluate([ckpt], train=lab, test=lab, protocol="linear", linear="augmented", linear_epochs=2,
                           device="cpu")
    finally:
        torch.set_num_threads(old)
    res = doc["runs"][0]["results"]
    assert [r["linear"] for r in res] == ["augmented"] and res[0]["epochs"] == 2
    assert 0 <= res[0]["top1"] <= res[0]["top5"] <= 1 and doc["rows"][0]["protocol"] == "linear"
    _bad(["evaluate", ckpt, "--train", lab, "--test", lab, "--linear", "augmented", "--linear-epochs", "0",
          "--device", "cpu"], "--linear-epochs")
