"""Input readers and dictionaries: every format gives the same matrix; cubes flatten as documented; SPA finds
the pure columns of a separable matrix; the hsi generator follows spec §4."""

import numpy as np
import pytest
import scipy.io

from wisecli.cli.errors import InputError
from wisecli.engines.nnls import data

# one torch and one BLAS thread for the whole module (conftest's fixture; issue 13.11): on a shared 2-core machine
# these small problems and CLI runs spent up to 5x their CPU time in thread hand-offs; nothing asserted depends on it
pytestmark = pytest.mark.usefixtures("one_thread_module")


@pytest.fixture
def B():
    return np.random.default_rng(0).random((7, 5))


def test_formats_agree(tmp_path, B):
    np.save(tmp_path / "b.npy", B)
    np.savez(tmp_path / "b.npz", B=B, other=np.ones(3))
    scipy.io.savemat(tmp_path / "b.mat", {"M": B})
    (tmp_path / "b.csv").write_text("a,b,c,d,e\n" + "\n".join(",".join(repr(float(v)) for v in row) for row in B))
    (tmp_path / "n.csv").write_text("\n".join(" ".join(repr(float(v)) for v in row) for row in B))
    for name in ("b.npy", "b.npz", "b.mat", "b.csv", "n.csv"):
        np.testing.assert_array_equal(data.load_matrix(tmp_path / name).B, B)
    np.testing.assert_array_equal(data.load_matrix(tmp_path / "b.npy", transpose=True).B, B.T)


def test_cube_layouts(tmp_path):
    cube = np.random.default_rng(1).random((3, 4, 5))  # rows × cols × bands
    np.save(tmp_path / "c.npy", cube)
    last = data.load_matrix(tmp_path / "c.npy", cube="bands-last")
    assert last.B.shape == (5, 12) and last.spatial == (3, 4)
    np.testing.assert_array_equal(last.B[:, 1 * 4 + 2], cube[1, 2])
    np.save(tmp_path / "f.npy", np.moveaxis(cube, -1, 0))
    first = data.load_matrix(tmp_path / "f.npy", cube="bands-first")
    np.testing.assert_array_equal(first.B, last.B)
    assert data.load_matrix(tmp_path / "c.npy").note is not None


def test_image_folder_is_row_major_grayscale(tmp_path):
    from skimage.io import imsave

    rng = np.random.default_rng(2)
    imgs = [(rng.random((4, 6)) * 255).astype(np.uint8) for _ in range(3)]
    for i, im in enumerate(imgs):
        imsave(tmp_path / f"{i}.png", im)
    mat = data.load_matrix(tmp_path)
    assert mat.B.shape == (24, 3)
    np.testing.assert_allclose(mat.B[:, 1], imgs[1].ravel() / 255.0)


def test_spa_finds_pure_columns_and_nmf_needs_nonnegative_data():
    rng = np.random.default_rng(3)
    W = rng.random((20, 4))
    H = np.hstack([np.eye(4), rng.dirichlet(np.ones(4), size=30).T])
    B = W @ H
    assert set(data.spa(B, 4)) == {0, 1, 2, 3}
    A = data.make_dictionary("spa:4", B)
    np.testing.assert_allclose(np.linalg.norm(A, axis=0), 1.0)
    with pytest.raises(InputError):
        data.make_dictionary("nmf:3", B - 1.0)
    with pytest.raises(InputError):
        data.make_dictionary("nmf:x", B)


def test_hsi_generator_matches_the_spec():
    d = data.hsi(n_side=20, seed=0)
    assert d["A"].shape == (162, 6) and d["B"].shape == (162, 400)
    sizes = (d["X_true"] > 0).sum(0)
    assert set(np.unique(sizes)) <= {1, 2, 3}
    np.testing.assert_allclose(d["X_true"].sum(0), 1.0)
    noise = d["B"] - d["A"] @ d["X_true"]
    snr = 10 * np.log10(((d["A"] @ d["X_true"]) ** 2).mean() / (noise**2).mean())
    assert abs(snr - 30) < 0.5
    assert (d["A"] >= 0).all() and d["A"].max() <= 1.0
