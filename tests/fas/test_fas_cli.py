"""`wise fas` contract: help, simulate → train → predict → evaluate on tiny data, and every §8 bad input."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import run_wise

VERBS = ("train", "predict", "evaluate", "simulate", "demo", "info", "benchmark")
TINY = ["--width", "0.125", "--input-size", "32", "--map-size", "8", "--pyramid-scales", "8,4,2,1",
        "--detector", "none", "--frames", "1", "--batch-size", "16", "--device", "cpu", "--no-progress"]


def bad(code, out, err, match=None):
    assert code == 2, err
    assert out == ""
    assert err.startswith("Error:") or "\nError:" in err, err
    assert "Hint:" in err and "Traceback" not in err
    if match:
        assert match.lower() in err.lower(), err


pytestmark = pytest.mark.usefixtures("one_torch_thread_module")  # tiny nets: a 2nd thread only spins


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small simulated data set (size 32), a 1-epoch run, and a few probe files."""
    root = tmp_path_factory.mktemp("fas")
    code, out, err = run_wise("fas", "simulate", "-o", str(root / "sim"), "--size", "32", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["simulated"] is True and doc["counts"] == {"live": 160, "print": 160, "replay": 160}
    rows = (root / "sim" / "manifest.csv").read_text().splitlines()
    header, body = rows[0], rows[1:]
    keep = [r for r in body if r.split(",")[4] in ("dev", "test")] + [r for r in body if ",train," in r][:60]
    (root / "sim" / "small.csv").write_text("\n".join([header] + keep) + "\n")
    code, out, err = run_wise("fas", "train", str(root / "sim" / "small.csv"), "--layout", "manifest",
                              "-o", str(root / "run"), "--epochs", "1", *TINY, "--json")
    assert code == 0, err
    astro = root / "astronaut.png"
    from skimage import data

    cv2.imwrite(str(astro), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    blank = root / "blank.png"
    cv2.imwrite(str(blank), np.full((120, 160, 3), 128, np.uint8))
    video = root / "clip.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (256, 256))
    small = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (256, 256))
    for i in range(10):
        w.write(np.roll(small, i, axis=1))
    w.release()
    return {"root": root, "ckpt": root / "run" / "checkpoints" / "best.pt", "manifest": root / "sim" / "small.csv",
            "astro": astro, "blank": blank, "video": video, "train": json.loads(out)}


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help(verb):
    code, out, err = run_wise("fas", verb, "--help")
    assert code == 0 and "Usage" in out


def test_info_json():
    code, out, _ = run_wise("fas", "info", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["detectors"]["lbp"]["available"] and "oulu" in doc["layouts"]


def test_train_writes_run_folder(world):
    run = world["root"] / "run"
    for name in ("config.json", "metrics.jsonl", "checkpoints/last.pt", "checkpoints/best.pt", "dev_scores.jsonl",
                 "run.json"):
        assert (run / name).is_file(), name
    ck = torch.load(world["ckpt"], weights_only=True)
    assert ck["method"] == "fas" and ck["supervision"] == "pyramid" and ck["map_size"] == 8
    assert ck["pyramid"]["scales"] == [8, 4, 2, 1] and isinstance(ck["threshold"], float)
    rec = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert {"train_loss", "train_loss_level_8", "train_loss_level_1", "val_acer", "val_apcer", "val_bpcer",
            "val_eer"} <= set(rec)
    dev = [json.loads(x) for x in (run / "dev_scores.jsonl").read_text().splitlines()]
    assert len(dev) == 45 and {"label", "attack_type", "subject", "score"} <= set(dev[0])
    # a second train into the same folder is refused
    code, out, err = run_wise("fas", "train", str(world["manifest"]), "--layout", "manifest", "-o", str(run), *TINY)
    bad(code, out, err, "exists")


def test_predict_images_and_video_schema_and_no_face(world):
    code, out, err = run_wise("fas", "predict", str(world["astro"]), str(world["blank"]), str(world["video"]),
                              "--weights", str(world["ckpt"]), "--detector", "haar", "--jsonl", "--device", "cpu")
    assert code == 3, err
    recs = {Path(r["input"]).name: r for r in map(json.loads, out.splitlines())}
    assert set(recs) == {"astronaut.png", "blank.png", "clip.avi"}
    a = recs["astronaut.png"]
    assert a["status"] == "ok" and a["kind"] == "image" and 0 <= a["score"] <= 1
    assert a["decision"] in ("bona_fide", "attack") and a["threshold"] is not None
    assert a["frames_used"] == 1 and len(a["frames"][0]["box"]) == 4
    v = recs["clip.avi"]
    assert v["kind"] == "video" and v["frames_used"] == 8 and [f["index"] for f in v["frames"]] == [0, 1, 3, 4, 5,
                                                                                                     6, 8, 9]
    assert v["score"] == pytest.approx(np.mean([f["score"] for f in v["frames"]]))
    b = recs["blank.png"]
    assert b["status"] == "no_face" and b["score"] is None


def test_predict_manifest_records_carry_labels_and_output_file(world, tmp_path):
    out_file = tmp_path / "test.jsonl"
    code, out, err = run_wise("fas", "predict", "--manifest", str(world["manifest"]), "--split", "test",
                              "--weights", str(world["ckpt"]), "--detector", "none", "-o", str(out_file),
                              "--save-maps", str(tmp_path / "maps"), "--device", "cpu", "--json")
    assert code == 0, err
    recs = [json.loads(x) for x in out_file.read_text().splitlines()]
    assert len(recs) == 45 and all({"label", "attack_type", "subject"} <= set(r) for r in recs)
    assert len(list((tmp_path / "maps").glob("*.png"))) == 45 * 4
    code, out, err = run_wise("fas", "evaluate", "--scores", str(out_file), "--dev-scores",
                              str(world["root"] / "run" / "dev_scores.jsonl"), "--json")
    assert code == 0, err
    assert json.loads(out)["n_attack"] == 30


def test_evaluate_scores_reproduces_weights(world, tmp_path):
    code, out, err = run_wise("fas", "evaluate", str(world["manifest"]), "--weights", str(world["ckpt"]),
                              "--layout", "manifest", "--detector", "none", "-o", str(tmp_path / "ev"), "--json",
                              "--device", "cpu")
    assert code == 0, err
    a = json.loads(out)
    code, out, err = run_wise("fas", "evaluate", "--scores", str(tmp_path / "ev" / "scores.jsonl"), "--dev-scores",
                              str(tmp_path / "ev" / "dev_scores.jsonl"), "--json")
    assert code == 0, err
    b = json.loads(out)
    for k in ("threshold", "apcer", "bpcer", "acer", "eer", "auc", "hter"):
        assert a[k] == pytest.approx(b[k])


# ------------------------------------------------------------------------------------------- §8 bad input
def test_haar_without_cascade_or_with_opencv5(world, monkeypatch):
    from wisecli.engines.fas import detect

    monkeypatch.setattr(detect, "opencv_status", lambda: {"version": "5.0.0", "major": 5, "cascade": None,
                                                          "distributions": ["opencv-python-headless"]})
    code, out, err = run_wise("fas", "predict", str(world["astro"]), "--weights", str(world["ckpt"]),
                              "--detector", "haar", "--device", "cpu")
    bad(code, out, err, "opencv-python-headless<5")


def test_two_opencv_wheels(world, monkeypatch):
    from wisecli.engines.fas import detect

    monkeypatch.setattr(detect, "opencv_status", lambda: {"version": "4.14.0", "major": 4, "cascade": "x",
                                                          "distributions": ["opencv-python", "opencv-python-headless"]})
    code, out, err = run_wise("fas", "predict", str(world["astro"]), "--weights", str(world["ckpt"]),
                              "--detector", "haar", "--device", "cpu")
    bad(code, out, err, "clash")


def test_missing_root_protocol_count_and_unknown_protocol(tmp_path):
    code, out, err = run_wise("fas", "train", str(tmp_path / "nope"), "--layout", "oulu", "-o", str(tmp_path / "r"))
    bad(code, out, err, "does not exist")
    (tmp_path / "oulu").mkdir()
    code, out, err = run_wise("fas", "train", str(tmp_path / "oulu"), "--layout", "oulu", "-o", str(tmp_path / "r"))
    bad(code, out, err, "protocol file")
    code, out, err = run_wise("fas", "train", str(tmp_path / "oulu"), "--layout", "oulu", "--protocol", "9",
                              "-o", str(tmp_path / "r"))
    bad(code, out, err, "unknown protocol")
    code, out, err = run_wise("fas", "train", str(tmp_path / "oulu"), "--layout", "oulu", "--protocol", "3",
                              "--fold", "7", "-o", str(tmp_path / "r"))
    bad(code, out, err, "fold")
    for s in range(1, 3):
        d = tmp_path / "casia" / "train_release" / str(s)
        d.mkdir(parents=True)
        (d / "1.avi").write_bytes(b"")
    (tmp_path / "casia" / "test_release").mkdir()
    code, out, err = run_wise("fas", "train", str(tmp_path / "casia"), "--layout", "casia", "-o", str(tmp_path / "r"))
    bad(code, out, err, "count mismatch")


@pytest.mark.parametrize("content,match", [
    ("path,label,subject\na.png,1,s\n", "lacks column"),
    ("path,label,attack_type,subject\na.png,perhaps,,s\n", "unknown label"),
    ("path,label,attack_type,subject\na.png,spoof,,s\n", "attack without attack_type"),
])
def test_manifest_problems(tmp_path, content, match):
    (tmp_path / "m.csv").write_text(content)
    code, out, err = run_wise("fas", "train", str(tmp_path / "m.csv"), "--layout", "manifest", "-o",
                              str(tmp_path / "r"))
    bad(code, out, err, match)


def test_live_without_depth_in_depth_mode(world, tmp_path):
    rows = world["manifest"].read_text().splitlines()
    header = rows[0].split(",")
    di = header.index("depth")
    stripped = [",".join(c for i, c in enumerate(r.split(",")) if i != di) for r in rows]
    m = world["manifest"].parent / "nodepth.csv"
    m.write_text("\n".join(stripped) + "\n")
    code, out, err = run_wise("fas", "train", str(m), "--layout", "manifest", "--supervision", "depth-map",
                              "-o", str(tmp_path / "r"), *TINY)
    bad(code, out, err, "no depth map")


@pytest.mark.parametrize("extra,match", [(["--pyramid-scales", "8,3"], "does not divide"),
                                         (["--pyramid-scales", "8,4", "--pyramid-weights", "1,-2"], "non-negative")])
def test_bad_pyramid(world, tmp_path, extra, match):
    args = [a for a in TINY if a not in ("--pyramid-scales", "8,4,2,1")]
    code, out, err = run_wise("fas", "train", str(world["manifest"]), "--layout", "manifest", "-o",
                              str(tmp_path / "r"), *args, *extra)
    bad(code, out, err, match)


def test_checkpoint_of_another_method(world, tmp_path):
    from wisecli.runtime.checkpoints import save_checkpoint

    p = save_checkpoint(tmp_path / "other.pt", method="nnls", arch="x", config={}, state_dict={})
    code, out, err = run_wise("fas", "predict", str(world["astro"]), "--weights", str(p), "--device", "cpu")
    bad(code, out, err)


def test_evaluate_single_class_and_missing_dev(tmp_path):
    t = tmp_path / "t.jsonl"
    t.write_text("".join(json.dumps({"score": s, "label": 1, "subject": "a"}) + "\n" for s in (0.1, 0.2)))
    code, out, err = run_wise("fas", "evaluate", "--scores", str(t), "--threshold", "fixed:0.5")
    bad(code, out, err, "bona fide and attack")
    t.write_text("".join(json.dumps({"score": s, "label": l, "attack_type": "print", "subject": "a"}) + "\n"
                         for s, l in ((0.1, 0), (0.9, 1))))
    code, out, err = run_wise("fas", "evaluate", "--scores", str(t))
    bad(code, out, err, "dev scores")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_cuda(world):
    code, out, err = run_wise("fas", "predict", str(world["astro"]), "--weights", str(world["ckpt"]),
                              "--device", "cuda")
    bad(code, out, err, "cuda")


def test_unreadable_frame_is_an_item_error(world, tmp_path):
    d = tmp_path / "vid7"
    d.mkdir()
    img = cv2.imread(str(next((world["root"] / "sim" / "live").glob("*.png"))))
    for i in range(3):
        cv2.imwrite(str(d / f"vid7_{i:03d}_scene.jpg"), img)
    (d / "vid7_001_scene.jpg").write_bytes(b"not a jpeg")
    code, out, err = run_wise("fas", "predict", str(d), str(world["astro"]), "--weights", str(world["ckpt"]),
                              "--detector", "none", "--jsonl", "--device", "cpu")
    assert code == 3, err
    recs = {Path(r["input"]).name: r for r in map(json.loads, out.splitlines())}
    v = recs["vid7"]
    assert v["kind"] == "frames" and v["status"] == "error" and v["frames_used"] == 2
    assert [f.get("status", "ok") for f in v["frames"]] == ["ok", "error", "ok"]
    assert recs["astronaut.png"]["status"] == "ok"


def test_unreadable_input_alone_is_exit_2_in_a_batch_exit_3(world, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG garbage")
    code, out, err = run_wise("fas", "predict", str(broken), "--weights", str(world["ckpt"]), "--detector", "none",
                              "--device", "cpu", "--jsonl")
    bad(code, out, err, "broken.png")
    code, out, err = run_wise("fas", "predict", str(broken), str(world["astro"]), "--weights", str(world["ckpt"]),
                              "--detector", "none", "--device", "cpu", "--jsonl")
    assert code == 3
    recs = [json.loads(x) for x in out.splitlines()]
    assert [r["status"] for r in recs] == ["ok", "error"] or [r["status"] for r in recs] == ["error", "ok"]


def test_resume_continues_bit_for_bit(world, tmp_path):
    args = [str(world["manifest"]), "--layout", "manifest", *TINY]
    assert run_wise("fas", "train", *args, "-o", str(tmp_path / "a"), "--epochs", "2")[0] == 0
    assert run_wise("fas", "train", *args, "-o", str(tmp_path / "b"), "--epochs", "1")[0] == 0
    code, out, err = run_wise("fas", "train", *args, "-o", str(tmp_path / "b"), "--epochs", "2", "--resume")
    assert code == 0, err
    a = torch.load(tmp_path / "a" / "checkpoints" / "last.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True)["state_dict"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert len((tmp_path / "b" / "metrics.jsonl").read_text().splitlines()) == 2
