"""`runtime/io/labeled.py`: a truncated or corrupt `.npz` is one InputError (every method reading through
`read_labeled`), and `read_unlabeled` decodes exactly as `read_labeled` does."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from wisecli.cli.errors import InputError
from wisecli.runtime.io.images import write_image
from wisecli.runtime.io.labeled import read_labeled, read_unlabeled


def _npz(path, compressed=False, **arrays):
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def _arrays(rng, n=20):
    return {"X": rng.random((n, 1, 6, 6)).astype(np.float32), "y": np.arange(n) % 2}


@pytest.mark.parametrize("compressed", [False, True])
def test_truncated_npz_is_one_input_error(tmp_path, compressed):
    rng = np.random.default_rng(0)
    good = _npz(tmp_path / "good.npz", compressed, **_arrays(rng)).read_bytes()
    # cut at several places: inside the first member, before the zip directory, one byte short
    for i, cut in enumerate((len(good) // 3, len(good) - 40, len(good) - 1)):
        bad = tmp_path / f"t{i}.npz"
        bad.write_bytes(good[:cut])
        with pytest.raises(zipfile.BadZipFile):  # the oracle: numpy itself refuses the file
            with np.load(bad) as z:
                [z[k] for k in z.files]
        for read in (read_labeled, read_unlabeled):
            with pytest.raises(InputError) as e:
                read(bad)
            assert str(bad) in e.value.message and "truncated or corrupt" in e.value.message
            assert e.value.hint and "\n" not in e.value.message


@pytest.mark.parametrize("compressed", [False, True])
def test_corrupt_member_is_one_input_error(tmp_path, compressed):
    """A flipped byte inside a member's data: the directory is intact, the member fails its CRC (stored) or its
    deflate stream / CRC (compressed) only when read."""
    rng = np.random.default_rng(1)
    path = _npz(tmp_path / "c.npz", compressed, **_arrays(rng, 64))
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("X.npy")
    mid = info.header_offset + 30 + len(info.filename) + info.compress_size // 2 + 20
    raw[mid] ^= 0xFF
    path.write_bytes(bytes(raw))
    with np.load(path) as z:
        with pytest.raises(Exception):  # noqa: B017 - numpy/zipfile/zlib each raise their own kind
            z["X"]
    for read in (read_labeled, read_unlabeled):
        with pytest.raises(InputError) as e:
            read(path)
        assert "cannot read array 'X'" in e.value.message and str(path) in e.value.message


def test_not_a_zip_at_all(tmp_path):
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"this is not a zip file" * 10)
    with pytest.raises(InputError, match="cannot read"):
        read_labeled(bad)


def test_cli_corrupt_npz_exit_2(tmp_path):
    """Through a command (leakage reads DATA with `read_labeled`): exit 2, one Error line, a Hint, no stdout."""
    from tests.conftest import run_wise

    rng = np.random.default_rng(2)
    good = _npz(tmp_path / "g.npz", **_arrays(rng), s=np.arange(20) % 2).read_bytes()
    bad = tmp_path / "b.npz"
    bad.write_bytes(good[: len(good) // 2])
    code, out, err = run_wise("leakage", "run", str(bad), "-o", str(tmp_path / "out"), "--device", "cpu")
    assert code == 2, err
    assert out == ""
    errs = [ln for ln in err.splitlines() if ln.startswith("Error:")]
    assert len(errs) == 1 and "truncated or corrupt" in errs[0]
    assert any(ln.startswith("Hint:") for ln in err.splitlines())


def test_unlabeled_matches_labeled_decoding(tmp_path):
    """The same pixels from read_unlabeled as from read_labeled: npz (float in [0,1] -> uint8, nhwc layout,
    resizing) and a folder of PNGs (gray detection)."""
    rng = np.random.default_rng(3)
    X = rng.random((10, 8, 8, 3)).astype(np.float32)
    _npz(tmp_path / "a.npz", X=X, y=np.arange(10) % 2)
    lab = read_labeled(tmp_path / "a.npz", layout="nhwc", image_size=4, val_fraction=0.0)
    un = read_unlabeled(tmp_path / "a.npz", layout="nhwc", image_size=4)
    assert un.kind == "image" and un.X.dtype == np.uint8 and un.X.shape == (10, 3, 4, 4)
    assert np.array_equal(un.X, lab.X)
    # the independent rule: [0, 1] floats x255, rounded
    full = read_unlabeled(tmp_path / "a.npz", layout="nhwc")
    assert np.array_equal(full.X, np.rint(X * 255).astype(np.uint8).transpose(0, 3, 1, 2))
    # features, X only
    _npz(tmp_path / "f.npz", X=rng.normal(size=(7, 5)))
    f = read_unlabeled(tmp_path / "f.npz")
    assert f.kind == "features" and f.X.dtype == np.float32 and f.X.shape == (7, 5)
    # flat folder of gray PNGs (written as RGB with R = G = B: one channel comes back), sorted by name
    d = tmp_path / "imgs"
    d.mkdir()
    imgs = [rng.integers(0, 256, (6, 6), dtype=np.uint8) for _ in range(4)]
    for i, a in enumerate(imgs):
        write_image(d / f"{i}.png", np.repeat(a[..., None], 3, axis=2))
    u = read_unlabeled(d)
    assert u.X.shape == (4, 1, 6, 6) and u.paths == [str(d / f"{i}.png") for i in range(4)]
    assert all(np.array_equal(u.X[i, 0], imgs[i]) for i in range(4))
    # several inputs and a glob
    assert read_unlabeled([str(d / "0.png"), str(d / "2.png")]).n == 2
    assert read_unlabeled(str(d / "*.png")).n == 4


def test_unlabeled_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        read_unlabeled(tmp_path / "empty", hint="my hint")
    with pytest.raises(InputError, match="not found"):
        read_unlabeled(tmp_path / "nope.npz")
    np.savez(tmp_path / "n.npz", Z=np.zeros(3))
    with pytest.raises(InputError, match="no array 'X'"):
        read_unlabeled(tmp_path / "n.npz")
    np.savez(tmp_path / "nan.npz", X=np.full((3, 4, 4), np.nan))
    with pytest.raises(InputError, match="NaN"):
        read_unlabeled(tmp_path / "nan.npz")
    np.savez(tmp_path / "c5.npz", X=np.zeros((3, 5, 4, 4)))
    with pytest.raises(InputError, match="channels"):
        read_unlabeled(tmp_path / "c5.npz")
