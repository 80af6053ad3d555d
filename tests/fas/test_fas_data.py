"""Dataset layouts on generated trees, frame sampling, targets, detection and the attack simulator."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from wisecli.cli.errors import InputError
from wisecli.engines.fas import data as D
from wisecli.engines.fas.detect import crop_face, iou, make_detector


def write_avi(path: Path, n=6, size=24, value=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (size, size))
    assert w.isOpened()
    for i in range(n):
        w.write(np.full((size, size, 3), (i * 40) % 256 if value is None else value, np.uint8))
    w.release()
    return path


def touch(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_oulu_line_and_name_parsing():
    assert D.parse_oulu_line("+1,1_1_01_1") == (1, "1_1_01_1")
    assert D.parse_oulu_line("-2,6_3_36_5") == (-2, "6_3_36_5")
    info = D.parse_oulu_name("1_3_36_4")
    assert info["subject"] == "36" and info["attack_type"] == "replay" and info["instrument"] == "display1"
    assert D.parse_oulu_name("2_1_05_3")["attack_type"] == "print"
    assert D.parse_oulu_name("2_1_05_1")["attack_type"] is None
    with pytest.raises(InputError):
        D.parse_oulu_line("1_1_01_1")
    with pytest.raises(InputError):
        D.parse_oulu_name("1_1_01_7")


def _oulu_tree(root: Path, missing=False):
    lines = {"Train": ["+1,1_1_01_1", "-1,1_1_01_2", "-2,1_1_01_4"], "Dev": ["+1,1_1_21_1", "-1,1_1_21_3"],
             "Test": ["+1,1_3_36_1", "-2,1_3_36_5"]}
    pdir = root / "Protocols" / "Protocol_1"
    pdir.mkdir(parents=True)
    for split, ls in lines.items():
        (pdir / f"{split}.txt").write_text("\n".join(ls) + "\n")
        for ln in ls:
            vid = ln.split(",")[1]
            if missing and vid == "1_3_36_5":
                continue
            write_avi(root / f"{split}_files" / f"{vid}.avi", n=3)
    # one video as a CDCN frame folder instead (frames + .dat boxes)
    (root / "Train_files" / "1_1_01_1.avi").unlink()
    fd = root / "frames" / "1_1_01_1"
    fd.mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(fd / f"1_1_01_1_{i:03d}_scene.jpg"), np.zeros((20, 20, 3), np.uint8))
        (fd / f"1_1_01_1_{i:03d}_scene.dat").write_text("2 3 10 12\n")


def test_oulu_layout(tmp_path):
    _oulu_tree(tmp_path)
    s = D.load_dataset(tmp_path, "oulu", protocol="1")
    assert [len(s[k]) for k in ("train", "dev", "test")] == [3, 2, 2]
    tr = {Path(x.path).name: x for x in s["train"]}
    assert tr["1_1_01_1"].kind == "frames" and tr["1_1_01_1"].label == 1
    assert tr["1_1_01_2.avi"].attack_type == "print" and tr["1_1_01_4.avi"].attack_type == "replay"
    fr = D.read_frames(tr["1_1_01_1"], 8)
    assert len(fr) == 3 and fr[0]["box"] == (2, 3, 10, 12)
    with pytest.raises(InputError):
        D.load_dataset(tmp_path, "oulu", protocol="7")
    with pytest.raises(InputError):
        D.load_dataset(tmp_path, "oulu", protocol="3")  # needs --fold, and the files are absent anyway


def test_oulu_count_mismatch(tmp_path):
    _oulu_tree(tmp_path, missing=True)
    with pytest.raises(InputError, match="count mismatch"):
        D.load_dataset(tmp_path, "oulu")
    warned = []
    s = D.load_dataset(tmp_path, "oulu", allow_partial=True, warn=warned.append)
    assert len(s["test"]) == 1 and warned


def test_casia_hr4_is_replay_regression():
    info = D.parse_casia_name("HR_4")
    assert info["label"] == 0 and info["attack_type"] == "replay"
    assert D.parse_casia_name("HR_1")["label"] == 1
    assert D.parse_casia_name("3")["instrument"] == "warped" and D.parse_casia_name("6")["attack_type"] == "print"


def test_casia_layout_counts_and_dev_carve(tmp_path):
    codes = ["1", "2", "HR_1", "3", "4", "HR_2", "5", "6", "HR_3", "7", "8", "HR_4"]
    for subj in range(1, 21):
        for c in codes:
            touch(tmp_path / "train_release" / str(subj) / f"{c}.avi")
    for subj in range(1, 4):
        for c in codes:
            touch(tmp_path / "test_release" / str(subj) / f"{c}.avi")
    with pytest.raises(InputError, match="count mismatch"):
        D.load_dataset(tmp_path, "casia")
    s = D.load_dataset(tmp_path, "casia", allow_partial=True, seed=1)
    assert len(s["dev"]) == 4 * 12 and len(s["train"]) == 16 * 12 and len(s["test"]) == 36
    assert not {x.subject for x in s["dev"]} & {x.subject for x in s["train"]}
    hr4 = [x for x in s["test"] if Path(x.path).stem == "HR_4"]
    assert all(x.label == 0 and x.attack_type == "replay" for x in hr4)
    video_only = D.load_dataset(tmp_path, "casia", allow_partial=True, protocol="video")
    assert {x.instrument for x in video_only["test"]} == {None, "video"}


def test_replay_attack_layout_and_names(tmp_path):
    assert D.parse_replay_name("train/attack/hand/attack_highdef_client001_session01_highdef_photo_adverse.mov") \
        == {"label": 0, "subject": "client001", "attack_type": "replay", "instrument": "highdef"}
    assert D.parse_replay_name("train/attack/fixed/attack_print_client002_session01_highdef_photo_controlled.mov")[
        "attack_type"] == "print"
    assert D.parse_replay_name("test/real/client009_session01_webcam_authenticate_adverse_1.mov")["label"] == 1
    for split in ("train", "devel", "test"):
        v = write_avi(tmp_path / split / "real" / "client001_session01_webcam_authenticate_adverse_1.mov", n=4)
        touch(tmp_path / split / "attack" / "fixed" / "attack_mobile_client001_session01_mobile_video_adverse.mov")
        face = tmp_path / "face-locations" / v.relative_to(tmp_path).with_suffix(".face")
        face.parent.mkdir(parents=True, exist_ok=True)
        face.write_text("0 1 2 10 11\n1 0 0 0 0\n2 3 3 12 12\n3 1 1 9 9\n")
    with pytest.raises(InputError, match="count mismatch"):
        D.load_dataset(tmp_path, "replay")
    s = D.load_dataset(tmp_path, "replay", allow_partial=True)
    real = [x for x in s["dev"] if x.label == 1][0]
    assert real.subject == "client001" and real.box_file
    boxes = D.load_boxes(real)
    assert boxes == {0: (1, 2, 10, 11), 2: (3, 3, 12, 12), 3: (1, 1, 9, 9)}  # frame 1 has no face
    frames = D.read_frames(real, 8)
    assert [f["index"] for f in frames] == [0, 1, 2, 3] and frames[2]["box"] == (3, 3, 12, 12)
    assert {x.attack_type for x in s["test"]} == {None, "replay"}


def test_siw_layout_protocols(tmp_path):
    names = {"live": ["006-1-1-1-1", "007-1-1-1-1", "008-1-1-1-1", "009-1-1-1-1", "010-1-1-1-1"],
             "spoof": ["006-1-2-1-1", "006-1-3-1-1", "006-1-3-2-1", "007-1-3-3-1", "008-1-2-2-1"]}
    for split in ("Train", "Test"):
        for cls, ns in names.items():
            for n in ns:
                touch(tmp_path / split / cls / n[:3] / f"{n}.mov")
    s = D.load_dataset(tmp_path, "siw", protocol="2_1")
    assert all(x.attack_type != "print" and x.medium != 1 for x in s["train"] + s["dev"] if x.label == 0)
    assert {x.medium for x in s["test"] if x.label == 0} == {1}
    s3 = D.load_dataset(tmp_path, "siw", protocol="3_1")
    assert {x.attack_type for x in s3["test"]} == {None, "replay"}
    assert {x.attack_type for x in s3["train"] + s3["dev"]} <= {None, "print"}
    assert D.parse_siw_name("006-2-3-4-1")["instrument"] == "replay4"
    with pytest.raises(InputError):
        D.load_dataset(tmp_path, "siw", protocol="9")


def test_manifest_and_folder(tmp_path):
    for i in range(5):
        cv2.imwrite(str(tmp_path / f"l{i}.png"), np.zeros((8, 8, 3), np.uint8))
    rows = ["path,label,attack_type,subject,box"] + [f"l{i}.png,{'live' if i % 2 else 'spoof'},"
                                                    f"{'' if i % 2 else 'print'},s{i},1 1 5 5" for i in range(5)]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    s = D.load_dataset(tmp_path / "m.csv", "manifest", seed=0)
    allx = s["train"] + s["dev"] + s["test"]
    assert len(allx) == 5 and allx[0].box == (1, 1, 5, 5)
    assert sum(len(s[k]) > 0 for k in ("train", "dev", "test")) == 3
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label,subject\nl0.png,1,a\n")
    with pytest.raises(InputError, match="attack_type"):
        D.load_dataset(bad, "manifest")
    bad.write_text("path,label,attack_type,subject\nl0.png,maybe,,a\n")
    with pytest.raises(InputError, match="unknown label"):
        D.load_dataset(bad, "manifest")
    bad.write_text("path,label,attack_type,subject\nl0.png,0,,a\n")
    with pytest.raises(InputError, match="attack without"):
        D.load_dataset(bad, "manifest")
    f = tmp_path / "fold"
    for cls in ("live", "spoof"):
        for subj in ("a", "b", "c", "d", "e"):
            (f / cls / subj).mkdir(parents=True)
            cv2.imwrite(str(f / cls / subj / "x.jpg"), np.zeros((8, 8, 3), np.uint8))
    sf = D.load_dataset(f, "folder")
    assert sum(len(v) for v in sf.values()) == 10
    assert not {x.subject for x in sf["train"]} & {x.subject for x in sf["test"]}
    with pytest.raises(InputError):
        D.load_dataset(tmp_path / "nope", "folder")


def test_video_frames_uniform_and_seek(tmp_path):
    v = write_avi(tmp_path / "v.avi", n=20)
    s = D.Sample(str(v), 1, None, "a", "test", "video")
    fr = D.read_frames(s, 8)
    assert [f["index"] for f in fr] == D.frame_indices(20, 8) == [1, 3, 6, 8, 11, 13, 16, 18]
    # the decoded frame is the frame at that index (grey level i*40 mod 256, MJPG-compressed)
    for f in fr:
        assert abs(float(f["image"].mean()) - (f["index"] * 40) % 256) < 6


def test_face_targets_mask_and_template():
    m, d = D.face_targets(torch.tensor([1.0, 0.5]), torch.tensor([1.0, 0.5]), 16, need_depth=True)
    assert m.shape == (2, 1, 16, 16)
    # inscribed circle covers ≈ π/4 of the square crop; half-size box ≈ π/16
    assert abs(float(m[0].mean()) - np.pi / 4) < 0.04 and abs(float(m[1].mean()) - np.pi / 16) < 0.03
    assert float(d.max()) <= 1 and float(d[0, 0, 8, 8]) > 0.8 and float(d[0, 0, 0, 0]) == 0
    assert torch.all(d[m == 0] == 0)
    assert torch.equal(m[0, 0], m[0, 0].flip(-1))


def test_epoch_draws_one_frame_per_presentation():
    cache = D.FaceCache(torch.zeros(7, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, 0, 0, 1, 2, 2, 3]),
                        torch.ones(7, 2), torch.ones(7), None, torch.zeros(7, dtype=torch.bool), [], [])
    pick = D.epoch_frames(cache, torch.Generator().manual_seed(0))
    assert sorted(cache.owner[pick].tolist()) == [0, 1, 2, 3]


def test_augment_shapes_range_and_extent():
    g = torch.Generator().manual_seed(0)
    crops = torch.randint(0, 256, (4, 3, 80, 80), dtype=torch.uint8)
    kc, ext = torch.full((4,), 1.5), torch.full((4, 2), 1 / 1.5)
    x, e, _ = D.augment(crops, kc, ext, None, size=64, gen=g, train=True)
    assert x.shape == (4, 3, 64, 64) and float(x.min()) >= -127.5 / 128 - 1e-6 and float(x.max()) <= 1.0
    assert torch.all(e >= 1 / 1.5 - 1e-6) and torch.all(e <= 1 / 1.2 + 1e-6)


def test_haar_finds_astronaut_and_agrees_with_lbp():
    from skimage import data

    img = data.astronaut()
    assert len(make_detector("haar").detect_all(img)) == 1
    h, lb = make_detector("haar").detect(img), make_detector("lbp").detect(img)
    assert h is not None and lb is not None
    assert iou(h, lb) >= 0.5


def test_crop_face_geometry():
    img = np.zeros((100, 100, 3), np.uint8)
    img[40:60, 40:60] = 255
    crop = crop_face(img, (40, 40, 20, 20), 2.0, 40)  # crop side 40 px: the square fills the middle half
    assert crop[20, 20].min() == 255 and crop[2, 2].max() == 0


def test_simulate_writes_labelled_manifest(tmp_path):
    from wisecli.engines.fas.synthetic import print_attack, replay_attack, skimage_live_pool, write_simulated

    rng = np.random.default_rng(0)
    pool = skimage_live_pool(32, rng)
    assert len(pool) == 160 and pool[0]["image"].shape == (32, 32, 3)
    assert [p["split"] for p in pool].count("test") == 15
    face = pool[0]["image"]
    pa, ra = print_attack(face, rng), replay_attack(face, rng)
    assert pa.shape == ra.shape == face.shape and not np.array_equal(pa, face)
    out = write_simulated(pool[:6], tmp_path, size=32, seed=0)
    assert out["counts"] == {"live": 6, "print": 6, "replay": 6}
    assert "SIMULATED" in (tmp_path / "NOTICE.txt").read_text()
    s = D.load_dataset(tmp_path / "manifest.csv", "manifest")
    allx = [x for v in s.values() for x in v]
    assert len(allx) == 18 and all(Path(x.path).exists() for x in allx)
    assert all(("simulated_" in x.path) == (x.label == 0) for x in allx)
    assert all(x.depth for x in allx if x.label == 1)
