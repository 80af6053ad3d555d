"""Loaders, viewpoint files, synthetic vehicles and augmentation."""

import numpy as np
import pytest
import torch

from wisecli.cli.errors import InputError
from wisecli.engines.reid import data as D
from wisecli.engines.reid.synthetic import viewpoint5, viewpoint8, write_veri


@pytest.fixture(scope="module")
def veri(tmp_path_factory):
    root = tmp_path_factory.mktemp("veri")
    write_veri(root, train_ids=6, test_ids=4, images_per_id=6, size=32, seed=3)
    return root


def test_veri_loader_and_lists_match_gt_and_junk(veri):
    s = D.load_veri(veri)
    assert len(s["train"]) == 36 and len(s["gallery"]) == 24 and len(s["query"]) == 8
    assert set(s["query"].ids) == set(s["gallery"].ids)
    good, junk = D.good_junk_sets(s["query"], s["gallery"])
    gt, jk = D.read_veri_lists(veri)
    assert good == gt and junk == jk
    assert any(junk)  # the set has same-id same-camera items


def test_veri_bad_inputs(veri, tmp_path):
    with pytest.raises(InputError, match="folder missing"):
        D.load_veri(tmp_path)
    import shutil

    bad = tmp_path / "v"
    shutil.copytree(veri, bad)
    next((bad / "image_test").iterdir()).unlink()
    with pytest.raises(InputError, match="lists 24 images"):
        D.load_veri(bad)
    assert len(D.load_veri(bad, allow_partial=True)["gallery"]) == 23
    (bad / "image_query" / "car.jpg").write_bytes(b"x")
    (bad / "name_query.txt").write_text((bad / "name_query.txt").read_text() + "car.jpg\n")
    with pytest.raises(InputError, match="VeRi pattern"):
        D.load_veri(bad, allow_partial=True)


def test_viewpoint_classes_from_azimuth():
    assert [viewpoint5(t) for t in (0, 29, 45, 90, 120, 180, 200, 270, 330)] == [0, 0, 3, 2, 4, 1, 1, 2, 3]
    assert [viewpoint8(t) for t in (0, 90, 45, 135, 270, 315, 225, 180)] == [0, 2, 3, 4, 5, 6, 7, 1]


def test_viewpoint_formats(veri, tmp_path):
    s = D.load_veri(veri)["train"]
    span = D.read_viewpoints(veri / "viewpoints.csv", "span")
    kp = D.read_viewpoints(veri / "viewpoints8.txt", "keypoint", 5)
    kp8 = D.read_viewpoints(veri / "viewpoints8.txt", "keypoint", 8)
    assert all(kp[n] == span[n] for n in kp) and len(kp) == 36
    assert all(int(D.TO_5[kp8[n]]) == kp[n] for n in kp)
    rep = D.attach_viewpoints(s, span)
    assert rep["labelled"] == 36
    names = tmp_path / "names.csv"
    names.write_text("filename,viewpoint\n" + "".join(f"{p.name},{['front', 'rear', 'side', 'front-side', 'rear-side'][v]}\n"
                                                      for p, v in zip(s.paths, s.viewpoints)))
    assert D.read_viewpoints(names, "csv") == {p.name: int(v) for p, v in zip(s.paths, s.viewpoints)}
    names.write_text("filename,viewpoint\na.jpg,upside-down\n")
    with pytest.raises(InputError, match="unknown viewpoint class"):
        D.read_viewpoints(names, "csv")
    names.write_text("filename,viewpoint\n" + "".join(f"x{i}.jpg,0\n" for i in range(10)))
    with pytest.raises(InputError, match="match no training image"):
        D.attach_viewpoints(s, D.read_viewpoints(names, "csv"))


def test_manifest(tmp_path, veri):
    s = D.load_veri(veri)
    m = tmp_path / "m.csv"
    lines = ["path,id,camera,split,viewpoint"]
    for split, name in (("train", "train"), ("query", "query"), ("gallery", "gallery")):
        for p, i, c in zip(s[split].paths, s[split].ids, s[split].cams):
            lines.append(f"{p},{i},{c},{name},side")
    m.write_text("\n".join(lines) + "\n")
    got = D.load_manifest(m)
    assert np.array_equal(got["gallery"].ids, s["gallery"].ids) and (got["train"].viewpoints == 2).all()
    m.write_text("path,id,split\na.jpg,1,train\n")
    with pytest.raises(InputError, match="lacks columns"):
        D.load_manifest(m)
    m.write_text("path,id,camera,split\na.jpg,1,1,validation\n")
    with pytest.raises(InputError, match="unknown split"):
        D.load_manifest(m)


def test_aic_split(tmp_path):
    (tmp_path / "image_train").mkdir()
    items = "".join(f'<Item imageName="{i:06d}.jpg" vehicleID="{i % 10:04d}" cameraID="c{i % 3 + 1:03d}" />'
                    for i in range(60))
    (tmp_path / "train_label.xml").write_text(f'<TrainingImages><Items number="60">{items}</Items></TrainingImages>')
    s = D.load_aic(tmp_path, val_ids=0.2, seed=1)
    assert set(s["query"].ids) == set(s["gallery"].ids) and len(set(s["query"].ids)) == 2
    assert not set(s["train"].ids) & set(s["query"].ids)
    assert len(s["query"]) == 6 and len(s["train"]) + len(s["query"]) + len(s["gallery"]) == 60


def test_decode_records_unreadable(veri, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    paths = D.load_veri(veri)["query"].paths[:2] + [bad]
    x, errors = D.decode_images(paths, 32, threads=2)
    assert x.shape == (3, 3, 32, 32) and x.dtype == torch.uint8
    assert [i for i, _ in errors] == [2] and x[0].float().std() > 5


def test_augment_flip_and_shapes():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 255, (16, 3, 32, 32), dtype=torch.uint8)
    vp = torch.arange(16) % 8
    out, v = D.augment(x, vp, 8, g, pad=0, erase=0.0)
    flipped = (out - D.normalise(x).flip(-1)).abs().amax((1, 2, 3)) < 1e-5
    same = (out - D.normalise(x)).abs().amax((1, 2, 3)) < 1e-5
    assert (flipped | same).all() and flipped.any() and same.any()
    assert torch.equal(v[flipped], torch.tensor([0, 1, 5, 6, 7, 2, 3, 4])[vp[flipped]])
    assert torch.equal(v[same], vp[same])
    out2, _ = D.augment(x, vp, 8, g, flip=0.0, pad=4, erase=1.0)
    assert out2.shape == (16, 3, 32, 32) and ((out2 == 0).all(1).sum((1, 2)) > 0).all()


def test_write_veri_without_train_renders_the_same_query_and_gallery(tmp_path):
    """The quick demo renders only the held-out identities of the shipped pair's set: the same images as the full
    set's query and gallery (each identity has its own generator)."""
    from wisecli.engines.reid.data import load_veri
    from wisecli.engines.reid.synthetic import write_veri

    a, b = tmp_path / "a", tmp_path / "b"
    write_veri(a, train_ids=4, test_ids=3, images_per_id=4, size=32, seed=0)
    write_veri(b, train_ids=4, test_ids=3, images_per_id=4, size=32, seed=0, with_train=False)
    sa, sb = load_veri(a), load_veri(b)
    assert len(sb["train"]) == 0 and len(sa["train"]) == 16
    for split, folder in (("query", "image_query"), ("gallery", "image_test")):
        names = [p.name for p in sa[split].paths]
        assert names == [p.name for p in sb[split].paths] and names
        assert all((a / folder / n).read_bytes() == (b / folder / n).read_bytes() for n in names)
    assert (a / "gt_image.txt").read_text() == (b / "gt_image.txt").read_text()
