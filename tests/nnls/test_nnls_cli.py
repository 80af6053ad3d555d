"""CLI contract of `wise nnls`: every §8 bad input exits 2 with one `Error:` line and empty stdout; --json
parses; a batch with one bad file exits 3; pareto chunks resume; outputs are what the spec names."""

import json

import numpy as np
import pytest
import scipy.io

from wisecli.engines.nnls import algorithm
from wisecli.engines.nnls.data import load_dataset

# one torch and one BLAS thread for the whole module (conftest's fixture; issue 13.11): on a shared 2-core machine
# these small problems and CLI runs spent up to 5x their CPU time in thread hand-offs; nothing asserted depends on it
pytestmark = pytest.mark.usefixtures("one_thread_module")


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    A = rng.random((30, 6))
    B = A @ (rng.random((6, 40)) * (rng.random((6, 40)) < 0.4)) + 0.05 * rng.random((30, 40))
    np.save(tmp_path / "A.npy", A)
    np.save(tmp_path / "B.npy", B)
    return tmp_path, A, B


def _bad(wise, *args):
    code, out, err = wise(*args)
    assert code == 2, (code, out, err)
    assert out == ""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("Error: ")]
    assert len(errors) == 1 and any(ln.startswith("Hint: ") for ln in lines), err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("verb", ["run", "pareto", "evaluate", "demo", "info", "benchmark"])
def test_help(wise, verb):
    code, out, _ = wise("nnls", verb, "--help")
    assert code == 0 and "Usage" in out


def test_run_json_and_outputs(wise, data):
    d, A, B = data
    code, out, err = wise("nnls", "run", d / "B.npy", "-A", d / "A.npy", "--avg-nnz", "2", "-o", d / "o",
                          "--json", "--device", "cpu", "--sparse")
    assert code == 0, err
    doc = json.loads(out)
    for k in ("command", "input", "m", "r", "n", "q", "nnz", "avg_nnz", "rel_error", "nnls_rel_error", "front",
              "select", "k_hist", "outputs", "options", "device", "versions", "seconds"):
        assert k in doc
    X = np.load(d / "o" / "B.X.npy")
    k = np.load(d / "o" / "B.k.npy")
    assert X.shape == (6, 40) and (X >= 0).all()
    assert (X != 0).sum() <= 80 and k.sum() <= 80
    assert ((X != 0).sum(0) <= k).all()
    assert doc["rel_error"] == pytest.approx(np.linalg.norm(A @ X - B) / np.linalg.norm(B), rel=1e-9)
    coo = np.load(d / "o" / "B.X.coo.npz")
    np.testing.assert_array_equal(coo["vals"], X[coo["rows"], coo["cols"]])
    assert (d / "o" / "run.json").exists()
    # an existing output is refused, --overwrite replaces it
    _bad(wise, "nnls", "run", d / "B.npy", "-A", d / "A.npy", "--avg-nnz", "2", "-o", d / "o", "--device", "cpu")
    code, _, _ = wise("nnls", "run", d / "B.npy", "-A", d / "A.npy", "--avg-nnz", "2", "-o", d / "o",
                      "--device", "cpu", "--overwrite", "-q")
    assert code == 0


def test_pareto_then_run_with_fronts(wise, data):
    d, A, B = data
    code, out, err = wise("nnls", "pareto", d / "B.npy", "-A", d / "A.npy", "-o", d / "fr", "--plot",
                          d / "fr.png", "--device", "cpu", "--json")
    assert code == 0, err
    z = np.load(d / "fr" / "B.fronts.npz")
    assert z["err"].shape == (40, 7) and z["support"].dtype == np.uint64 and z["exact"].all()
    assert (d / "fr.png").stat().st_size > 1000
    code, out, err = wise("nnls", "run", d / "B.npy", "--fronts", d / "fr" / "B.fronts.npz", "--nnz", "60",
                          "-o", d / "o", "--json", "--device", "cpu")
    assert code == 0, err
    assert json.loads(out)["nnz"] <= 60


def test_pareto_resume_continues_partial(wise, data):
    d, A, B = data
    (d / "fr").mkdir()
    first = algorithm.compute_fronts(A, B[:, :20], device="cpu")
    from wisecli.runtime.io.atomic import save_npz

    save_npz(d / "fr" / "B.fronts.partial.npz", **algorithm.fronts_arrays(first))
    code, _, err = wise("nnls", "pareto", d / "B.npy", "-A", d / "A.npy", "-o", d / "fr", "--resume",
                        "--chunk-columns", "8", "--device", "cpu")
    assert code == 0, err
    assert "resuming" in err
    assert not (d / "fr" / "B.fronts.partial.npz").exists()
    full = algorithm.compute_fronts(A, B, device="cpu")
    np.testing.assert_allclose(np.load(d / "fr" / "B.fronts.npz")["err"], full.err, rtol=1e-12)


def test_batch_with_a_bad_file_exits_3(wise, data):
    d, A, B = data
    np.save(d / "C.npy", B[:, :10])
    bad = B.copy()
    bad[3, 4] = np.nan
    np.save(d / "D.npy", bad)
    code, out, err = wise("nnls", "run", d / "B.npy", d / "C.npy", d / "D.npy", "-A", d / "A.npy",
                          "--avg-nnz", "1", "-o", d / "o", "--jsonl", "--device", "cpu")
    assert code == 3
    recs = [json.loads(ln) for ln in out.splitlines()]
    assert [r["status"] for r in recs] == ["ok", "ok", "error"]
    assert "NaN" in recs[2]["error"]
    assert (d / "o" / "C.X.npy").exists() and not (d / "o" / "D.X.npy").exists()


def test_bad_inputs_exit_2(wise, data, tmp_path):
    d, A, B = data
    run = ("nnls", "run")
    # row mismatch
    np.save(d / "A_bad.npy", A[:20])
    assert "row mismatch" in _bad(wise, *run, d / "B.npy", "-A", d / "A_bad.npy", "--avg-nnz", "1", "-o", d / "o")
    # NaN / Inf with count and first position
    bad = B.copy()
    bad[2, 5] = np.inf
    np.save(d / "nan.npy", bad)
    msg = _bad(wise, *run, d / "nan.npy", "-A", d / "A.npy", "--avg-nnz", "1", "-o", d / "o")
    assert "1 NaN/Inf" in msg and "(2, 5)" in msg
    # empty folder
    (d / "empty").mkdir()
    _bad(wise, *run, d / "empty", "-A", "spa:2", "--avg-nnz", "1", "-o", d / "o")
    # .mat v7.3 (HDF5 header)
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 2026 HDF5 schema 1.00 ."
    (d / "v73.mat").write_bytes(header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM" + b"\x00" * 512)
    assert "v7.3" in _bad(wise, *run, d / "v73.mat", "-A", d / "A.npy", "--avg-nnz", "1", "-o", d / "o")
    # ambiguous --var and --key
    scipy.io.savemat(d / "two.mat", {"Y": B, "Z": B})
    assert "--var" in _bad(wise, *run, d / "two.mat", "-A", d / "A.npy", "--avg-nnz", "1", "-o", d / "o")
    np.savez(d / "two.npz", Y=B, Z=B)
    assert "--key" in _bad(wise, *run, d / "two.npz", "-A", d / "A.npy", "--avg-nnz", "1", "-o", d / "o")
    # neither or both budgets
    _bad(wise, *run, d / "B.npy", "-A", d / "A.npy", "-o", d / "o")
    _bad(wise, *run, d / "B.npy", "-A", d / "A.npy", "--nnz", "5", "--avg-nnz", "1", "-o", d / "o")
    # q out of range
    _bad(wise, *run, d / "B.npy", "-A", d / "A.npy", "--nnz", "-1", "-o", d / "o", "--device", "cpu")
    _bad(wise, *run, d / "B.npy", "-A", d / "A.npy", "--nnz", "241", "-o", d / "o", "--device", "cpu")
    # enum with r > 20
    rng = np.random.default_rng(2)
    np.save(d / "A21.npy", rng.random((30, 21)))
    assert "hybrid" in _bad(wise, *run, d / "B.npy", "-A", d / "A21.npy", "--avg-nnz", "1", "--front", "enum",
                            "-o", d / "o", "--device", "cpu")
    # --fronts computed with another dictionary
    fr = algorithm.compute_fronts(A, B, device="cpu")
    algorithm.save_fronts(d / "B.fronts.npz", fr)
    np.save(d / "A2.npy", A * 1.5)
    assert "dictionary" in _bad(wise, *run, d / "B.npy", "--fronts", d / "B.fronts.npz", "-A", d / "A2.npy",
                                "--avg-nnz", "1", "-o", d / "o", "--device", "cpu")
    # unavailable device
    import torch

    dev = "cuda:99" if torch.cuda.is_available() else "cuda"
    _bad(wise, *run, d / "B.npy", "-A", d / "A.npy", "--avg-nnz", "1", "-o", d / "o", "--device", dev)


def test_mixed_image_sizes_and_resize(wise, tmp_path):
    from skimage.io import imsave

    rng = np.random.default_rng(0)
    (tmp_path / "imgs").mkdir()
    for i, shape in enumerate([(8, 8), (8, 8), (9, 8)]):
        imsave(tmp_path / "imgs" / f"{i}.png", (rng.random(shape) * 255).astype(np.uint8))
    msg = _bad(wise, "nnls", "run", tmp_path / "imgs", "-A", "spa:2", "--avg-nnz", "1", "-o", tmp_path / "o",
               "--device", "cpu")
    assert "different sizes" in msg and "--resize" in msg
    code, out, err = wise("nnls", "run", tmp_path / "imgs", "-A", "spa:2", "--avg-nnz", "1", "-o",
                          tmp_path / "o", "--device", "cpu", "--resize", "8x8", "--json")
    assert code == 0, err
    assert json.loads(out)["n"] == 3 and json.loads(out)["m"] == 64


def test_cube_mat_with_maps(wise, tmp_path):
    d = load_dataset("hsi", quick=True)
    cube = d["B"].T.reshape(30, 30, -1)[:10, :10]
    scipy.io.savemat(tmp_path / "cube.mat", {"Y": cube})
    np.save(tmp_path / "E.npy", d["A"])
    code, out, err = wise("nnls", "run", tmp_path / "cube.mat", "--var", "Y", "--cube", "bands-last", "-A",
                          tmp_path / "E.npy", "--avg-nnz", "2", "-o", tmp_path / "o", "--maps", "--json",
                          "--device", "cpu")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["n"] == 100 and doc["m"] == 162 and doc["nnz"] <= 200
    assert len(list((tmp_path / "o").glob("cube.map*.png"))) == 6


def test_evaluate_json_and_info(wise, data):
    d, A, B = data
    code, out, err = wise("nnls", "evaluate", d / "B.npy", "-A", d / "A.npy", "--avg-nnz", "1,1.5,2", "--json",
                          "--device", "cpu", "--plot", d / "ev.png")
    assert code == 0, err
    assert (d / "ev.png").stat().st_size > 1000
    recs = json.loads(out)
    assert all(r["nnz"] <= r["q"] for r in recs)
    assert not any(r["method"].startswith("columnwise") and r["avg_nnz"] == 1.5 for r in recs)
    code, out, _ = wise("nnls", "info", "--json", "--device", "cpu")
    assert code == 0 and json.loads(out)["defaults"]["front"] == "auto"


def test_demo_quick_smoke(wise, tmp_path):
    code, out, err = wise("nnls", "demo", "--quick", "--json", "--device", "cpu", "-o", tmp_path)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["ok"] and doc["headline"]["matrixwise_pct@2"] < doc["headline"]["columnwise_pct@2"]
    assert (tmp_path / "nnls-demo-faces.png").exists()
