"""Predict (geometry, orientation, post-processing, OOM retry), evaluate and the §8 bad-input contract."""

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import run_wise

from wisecli.engines.segment_airway import api
from wisecli.engines.segment_airway.model import WingsNet
from wisecli.engines.segment_airway.predict import PredictOptions, hu_problem, postprocess, read_ct, segment
from wisecli.engines.segment_airway.synthetic import make_phantom
from wisecli.runtime.checkpoints import save_checkpoint
from wisecli.runtime.io.volumes import read_volume, write_volume

# one torch and one BLAS thread per module (conftest): a 2-core machine's second core runs the recipe retrain
# beside this folder (test_airway_demo.py), and two spinning OpenMP threads here cost ~28 CPU-s more [measured]
pytestmark = pytest.mark.usefixtures("one_thread_module")

SMALL = dict(size=(48, 40, 40), spacing=(4.0, 4.0, 4.0))
# one 48³ window covers the 48×40×40 phantom (issue 13 point 11: 8 windows of 32³ cost twice the CPU; no
# assertion here depends on the window count)
FAST = ["--roi", "48", "--overlap", "0", "--sw-batch", "2", "--device", "cpu", "--no-crop"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    m = WingsNet(width=0.25)
    p = tmp_path_factory.mktemp("w") / "w.pt"
    save_checkpoint(p, method="segment-airway", arch="wingsnet", config={"in_channels": 1, "width": 0.25},
                    state_dict=m.state_dict(), train_spacing_median=[4.0, 4.0, 4.0])
    return p


@pytest.fixture(scope="module")
def ph():
    return make_phantom("tiny", seed=0, **SMALL)


def test_mask_keeps_exact_geometry(tmp_path, weights, ph):
    src = tmp_path / "in" / "a.mha"
    direction = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # rotated in-plane
    write_volume(src, ph.image, spacing=(4.0, 3.5, 4.5), origin=(-12.25, 7.5, 100.125), direction=direction)
    code, out, err = run_wise("segment-airway", "predict", str(src), "-o", str(tmp_path / "out"), "--weights",
                              str(weights), *FAST, "--jsonl", "--probabilities", "--branches", "--preview")
    assert code == 0, err
    rec = json.loads(out.strip().splitlines()[-1])
    assert rec["status"] == "ok" and set(rec["stages"]) == {"read", "crop", "infer", "post", "tree", "write"}
    m = read_volume(tmp_path / "out" / "a_airway.nii.gz")
    assert m.array.shape == ph.image.shape and m.array.dtype == np.uint8
    assert np.allclose(m.spacing, (4.0, 3.5, 4.5), atol=1e-6) and np.allclose(m.origin, (-12.25, 7.5, 100.125), atol=1e-4)
    assert np.allclose(m.direction, direction, atol=1e-6)
    for suffix in ("_prob.nii.gz", "_branches.nii.gz", "_preview.png", "_airway_tree.json"):
        assert (tmp_path / "out" / f"a{suffix}").is_file()
    assert (tmp_path / "out" / "run.json").is_file()


def test_two_storage_orientations_same_physical_mask(tmp_path, weights, ph):
    a = ph.image
    K = a.shape[0]
    b = np.ascontiguousarray(a[::-1].transpose(0, 2, 1))  # x↔y swapped, z reversed
    sa, oa = (4.0, 3.0, 5.0), (-90.0, -60.0, 0.0)
    write_volume(tmp_path / "A.nii.gz", a, spacing=sa, origin=oa)
    write_volume(tmp_path / "B.nii.gz", b, spacing=(sa[1], sa[0], sa[2]),
                 origin=(oa[0], oa[1], oa[2] + (K - 1) * sa[2]), direction=(0, 1, 0, 1, 0, 0, 0, 0, -1))
    opts = PredictOptions(roi=48, overlap=0.0, sw_batch=2, crop=False, probabilities=True, tree=False)  # no parse:
    # the random model's mask is large and its tree is not what this test checks (half its CPU time)
    recs = api.predict([tmp_path / "A.nii.gz", tmp_path / "B.nii.gz"], tmp_path / "o", weights, opts=opts,
                       device="cpu")
    assert [r["status"] for r in recs] == ["ok", "ok"]
    pa = read_volume(tmp_path / "o" / "A_prob.nii.gz").array
    pb = read_volume(tmp_path / "o" / "B_prob.nii.gz").array
    assert pa.std() > 0
    assert np.allclose(pa, pb.transpose(0, 2, 1)[::-1], atol=1e-6)
    ma = read_volume(tmp_path / "o" / "A_airway.nii.gz").array
    mb = read_volume(tmp_path / "o" / "B_airway.nii.gz").array
    assert np.array_equal(ma, mb.transpose(0, 2, 1)[::-1])


def test_segment_recovers_airway_with_oracle_model(ph):
    """A 'model' that is the HU threshold itself shows the pipeline (crop off, windows, LCC, fill) returns
    the airway lumen connected to the trachea."""

    class Thresh(torch.nn.Module):
        def folded_forward(self, x):
            return (0.08 - x) * 200.0  # logit > 0 where HU < −888 (lumen and outside air)

    seg = segment(Thresh(), ph.image.astype(np.float32), (1, 0, 0, 0, 1, 0, 0, 0, 1), ph.spacing,
                  PredictOptions(roi=32, overlap=0.25, sw_batch=2, crop=False), torch.device("cpu"))
    assert seg.mask.any() and seg.mask.sum() > 0.3 * ph.label.sum()


def test_oom_retried_once_with_smaller_window_batch(ph, monkeypatch):
    from wisecli.engines.segment_airway import predict as P

    calls = []
    real = P.window_pass

    def flaky(model, x, opts, device, *, sw_batch=None, stitch_device=None, advance=None):
        calls.append(sw_batch)
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(model, x, opts, device, sw_batch=sw_batch, stitch_device=stitch_device)

    monkeypatch.setattr(P, "window_pass", flaky)
    m = WingsNet(width=0.25).eval()
    seg = segment(m, ph.image.astype(np.float32), (1, 0, 0, 0, 1, 0, 0, 0, 1), ph.spacing,
                  PredictOptions(roi=48, overlap=0.0, sw_batch=4, crop=False), torch.device("cpu"))
    assert calls == [None, 1] and any("out of memory" in w for w in seg.warnings)


def test_hole_filling_and_lcc_in_postprocess():
    m = np.zeros((20, 20, 20), bool)
    m[3:12, 3:12, 3:12] = True
    m[6:9, 6:9, 6:9] = False          # a cavity
    m[15:18, 15:18, 15:18] = True     # a separate blob
    out = postprocess(m, 6, True)
    assert out[7, 7, 7] and not out[16, 16, 16] and out.sum() == 9 ** 3
    assert not postprocess(m, 6, False)[7, 7, 7]


def test_ct_small_dicom_reads_as_hu(tmp_path):
    from pydicom.data import get_testdata_file

    d = tmp_path / "series"
    d.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), d)
    v = read_volume(d)
    assert v.array.min() == -896 and v.array.max() == 1167
    assert hu_problem(v.array.astype(np.float32)) is None
    assert hu_problem(v.array.astype(np.float32) + 1024) is not None


def _exit2(code, out, err, word):
    assert code == 2, err
    assert out == ""
    assert err.startswith("Error: ") and word in err and "Traceback" not in err


def test_predict_bad_input_exit_2(tmp_path, weights, ph):
    good = tmp_path / "g.nii.gz"
    write_volume(good, ph.image, spacing=ph.spacing)
    o = str(tmp_path / "o")
    base = ["segment-airway", "predict"]
    _exit2(*run_wise(*base, str(tmp_path / "nope.nii.gz"), "-o", o, "--weights", str(weights)), "not found")
    _exit2(*run_wise(*base, str(good), "-o", o), "--weights")
    _exit2(*run_wise(*base, str(good), "-o", o, "--weights", str(tmp_path / "missing.pt")), "weights")
    other = tmp_path / "other.pt"
    save_checkpoint(other, method="nnls", arch="x", config={}, state_dict={})
    _exit2(*run_wise(*base, str(good), "-o", o, "--weights", str(other)), "nnls")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    _exit2(*run_wise(*base, str(good), "-o", o, "--weights", str(junk)), "checkpoint")
    wrong_arch = tmp_path / "arch.pt"
    save_checkpoint(wrong_arch, method="segment-airway", arch="unet", config={}, state_dict={})
    _exit2(*run_wise(*base, str(good), "-o", o, "--weights", str(wrong_arch)), "unet")
    for flag, val, word in (("--roi", "100", "roi"), ("--roi", "24", "roi"), ("--overlap", "1", "overlap"),
                            ("--connectivity", "7", "connectivity"), ("--shard", "3/2", "shard")):
        _exit2(*run_wise(*base, str(good), "-o", o, "--weights", str(weights), flag, val), word)
    if not torch.cuda.is_available():
        _exit2(*run_wise(*base, str(good), "-o", o, "--weights", str(weights), "--device", "cuda"), "cuda")
    # HU check on a lone input: raw scanner values
    raw = tmp_path / "raw.nii.gz"
    write_volume(raw, (ph.image.astype(np.int32) + 1024).astype(np.int16), spacing=ph.spacing)
    _exit2(*run_wise(*base, str(raw), "-o", o, "--weights", str(weights), *FAST), "HU")
    # non-3D / tiny axis
    thin = tmp_path / "thin.nii.gz"
    write_volume(thin, ph.image[:8], spacing=ph.spacing)
    _exit2(*run_wise(*base, str(thin), "-o", o, "--weights", str(weights), *FAST), "3D")
    corrupt = tmp_path / "bad.nii.gz"
    corrupt.write_bytes(b"garbage")
    _exit2(*run_wise(*base, str(corrupt), "-o", o, "--weights", str(weights), *FAST), "cannot read")
    # existing outputs without --overwrite / --skip-existing
    (tmp_path / "o").mkdir(exist_ok=True)
    (tmp_path / "o" / "g_airway.nii.gz").write_bytes(b"x")
    _exit2(*run_wise(*base, str(good), "-o", o, "--weights", str(weights), *FAST), "exists")
    assert not list((tmp_path / "o").glob("*tree.json"))


def test_predict_batch_item_error_exit_3(tmp_path, weights, ph):
    good = tmp_path / "in" / "g.nii.gz"
    write_volume(good, ph.image, spacing=ph.spacing)
    (tmp_path / "in" / "bad.nii.gz").write_bytes(b"garbage")
    code, out, err = run_wise("segment-airway", "predict", str(tmp_path / "in"), "-o", str(tmp_path / "o"),
                              "--weights", str(weights), *FAST, "--jsonl")
    assert code == 3, err
    recs = [json.loads(line) for line in out.strip().splitlines()]
    assert sorted(r["status"] for r in recs) == ["error", "ok"]
    ok = next(r for r in recs if r["status"] == "ok")
    assert {"input", "output", "seconds", "stages", "crop_fraction", "tree", "warnings"} <= set(ok)
    assert (tmp_path / "o" / "g_airway.nii.gz").is_file() and not (tmp_path / "o" / "bad_airway.nii.gz").exists()


def test_evaluate_cli_pairs_summary_and_errors(tmp_path):
    p0 = make_phantom("tiny", seed=0, noise_hu=0)
    p1 = make_phantom("tiny", seed=1, noise_hu=0)
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    write_volume(ref / "case_000.nii.gz", p0.label, spacing=p0.spacing)
    write_volume(ref / "case_001.nii.gz", p1.label, spacing=p1.spacing)
    write_volume(pred / "case_000_airway.nii.gz", p0.label, spacing=p0.spacing)
    write_volume(pred / "case_001_airway.nii.gz", p1.label, spacing=p1.spacing)
    code, out, err = run_wise("segment-airway", "evaluate", str(pred), "--ref", str(ref), "--json",
                              "--cache-dir", str(tmp_path / "c"))
    assert code == 0, err
    doc = json.loads(out)
    assert [r["status"] for r in doc["records"]] == ["ok", "ok"]
    assert doc["summary"]["td"]["mean"] == 100.0 and doc["summary"]["fpr"]["max"] == 0.0
    assert set(doc["records"][0]["metrics"]) >= {"td", "bd", "dsc", "precision", "fpr", "fnr", "atm_score"}
    # geometry mismatch is an item error in a batch (exit 3), exit 2 alone
    write_volume(pred / "case_001_airway.nii.gz", p1.label, spacing=(1.0, 1.0, 1.0))
    code, out, err = run_wise("segment-airway", "evaluate", str(pred), "--ref", str(ref), "--jsonl", "--no-cache")
    assert code == 3 and "geometry" in err
    assert [json.loads(x)["status"] for x in out.strip().splitlines()] == ["ok", "error"]
    _exit2(*run_wise("segment-airway", "evaluate", str(pred / "case_001_airway.nii.gz"), "--ref",
                     str(ref / "case_001.nii.gz"), "--no-cache"), "geometry")
    write_volume(tmp_path / "empty.nii.gz", np.zeros_like(p0.label), spacing=p0.spacing)
    _exit2(*run_wise("segment-airway", "evaluate", str(pred / "case_000_airway.nii.gz"), "--ref",
                     str(tmp_path / "empty.nii.gz"), "--no-cache"), "empty")
    _exit2(*run_wise("segment-airway", "evaluate", str(pred), "--ref", str(ref), "--connectivity", "5"),
           "connectivity")


def test_phantom_cli_formats_and_layouts(tmp_path):
    for fmt in ("nrrd", "dicom"):
        code, out, err = run_wise("segment-airway", "phantom", "-o", str(tmp_path / fmt), "-n", "1", "--format",
                                  fmt, "--size", "48", "40", "40", "--spacing", "4", "4", "4", "--json")
        assert code == 0, err
        case = json.loads(out)["cases"][0]
        v = read_volume(tmp_path / fmt / case["image"])
        lab = read_volume(tmp_path / fmt / case["label"])
        assert v.array.shape == (40, 40, 48) and np.allclose(v.spacing, (4, 4, 4))
        assert np.allclose(v.origin, lab.origin, atol=1e-3) and lab.array.max() == 1
        tree = json.loads((tmp_path / fmt / case["tree"]).read_text())
        assert tree["branches"][0]["generation"] == 0
    code, out, err = run_wise("segment-airway", "phantom", "-o", str(tmp_path / "atm"), "-n", "1", "--layout",
                              "atm", "--size", "48", "40", "40", "--spacing", "4", "4", "4")
    assert code == 0 and (tmp_path / "atm" / "imagesTr" / "case_000_0000.nii.gz").is_file()
    _exit2(*run_wise("segment-airway", "phantom", "-o", str(tmp_path / "atm"), "-n", "1"), "not empty")
    _exit2(*run_wise("segment-airway", "phantom", "-o", str(tmp_path / "x"), "--preset", "huge"), "preset")


def test_info_json_and_help_without_torch():
    import subprocess
    import sys

    code, out, err = run_wise("segment-airway", "info", "--json")
    assert code == 0 and json.loads(out)["params"] == 1_473_186
    probe = ("import sys; from wisecli.main import app; import typer; "
             "typer.main.get_command(app).commands['segment-airway']; "
             "print(any(m in sys.modules for m in ('torch', 'monai', 'SimpleITK', 'cv2')))")
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "False"


def test_empty_prediction_is_valid(tmp_path, ph):
    torch.manual_seed(0)
    m = WingsNet(width=0.25)
    m.head_dec.bias.data.fill_(-1e4)  # every probability 0
    w = tmp_path / "empty.pt"
    save_checkpoint(w, method="segment-airway", arch="wingsnet", config={"in_channels": 1, "width": 0.25},
                    state_dict=m.state_dict())
    src = tmp_path / "c.nii.gz"
    write_volume(src, ph.image, spacing=ph.spacing)
    code, out, err = run_wise("segment-airway", "predict", str(src), "-o", str(tmp_path / "o"), "--weights", str(w),
                              *FAST, "--jsonl")
    assert code == 0, err
    rec = json.loads(out)
    assert rec["tree"] is None and any("empty prediction" in x for x in rec["warnings"])
    assert json.loads((tmp_path / "o" / "c_airway_tree.json").read_text()) is None
    assert read_volume(tmp_path / "o" / "c_airway.nii.gz").array.sum() == 0


def test_dicom_series_checks(tmp_path, weights, ph):
    import SimpleITK as sitk

    from wisecli.cli.errors import InputError
    from wisecli.runtime.io.volumes import Volume, write_dicom_series

    vol = Volume(ph.image, ph.spacing, ph.origin, (1, 0, 0, 0, 1, 0, 0, 0, 1), tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    write_dicom_series(a, vol)
    write_dicom_series(b, vol)
    v, hu = read_ct(a)
    assert np.array_equal(v.array, ph.image) and np.allclose(v.origin, ph.origin, atol=1e-3)
    # two series in one folder: exit 2 alone, --series-uid picks one
    both = tmp_path / "both"
    shutil.copytree(a, both)
    for f in b.iterdir():
        shutil.copy(f, both / f"b_{f.name}")
    _exit2(*run_wise("segment-airway", "predict", str(both), "-o", str(tmp_path / "o"), "--weights", str(weights),
                     *FAST), "2 DICOM series")
    uid = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(b))[0]
    v2, _ = read_ct(both, series=uid)
    assert np.array_equal(v2.array, ph.image)
    # a missing middle slice makes the spacing irregular
    files = sorted(a.iterdir())
    files[len(files) // 2].unlink()
    with pytest.raises(InputError, match="irregular"):
        read_ct(a)


@pytest.mark.parametrize("connectivity", [6, 18, 26])
@pytest.mark.parametrize("fill", [True, False])
def test_postprocess_equals_scipy_on_sparse_and_dense_masks(connectivity, fill):
    """The sparse 6-connected path (airway-like masks, a few % of their box) and the dense one both equal scipy's
    label + largest + binary_fill_holes over the whole volume."""
    from scipy import ndimage

    rng = np.random.default_rng(connectivity + fill)
    st = ndimage.generate_binary_structure(3, {6: 1, 18: 2, 26: 3}[connectivity])
    for q in (0.5, 0.97, 0.995):  # dense blobs, then sparse specks and tubes
        for _ in range(6):
            shape = tuple(int(v) for v in rng.integers(12, 30, 3))
            x = ndimage.gaussian_filter(rng.standard_normal(shape), rng.uniform(0.6, 1.5))
            m = x > np.quantile(x, q)
            lab, n = ndimage.label(m, st)
            want = lab == (np.bincount(lab.ravel())[1:].argmax() + 1) if n else np.zeros_like(m)
            if fill:
                want = ndimage.binary_fill_holes(want)
            assert np.array_equal(postprocess(m.copy(), connectivity, fill), want)
