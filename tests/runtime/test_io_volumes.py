"""Volumes: geometry survives every format to the format's precision, DICOM series round-trip, bad input
is an InputError (exit 2)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from wisecli.cli.errors import InputError
from wisecli.runtime.io.volumes import Volume, is_dicom_folder, read_volume, write_dicom_series, write_volume


def _rotation(a: float, b: float, c: float) -> np.ndarray:
    """An oblique orthonormal direction matrix Rz(c) @ Ry(b) @ Rx(a)."""
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    rx = np.array([[1, 0, 0], [0, ca, -sa], [0, sa, ca]])
    ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
    rz = np.array([[cc, -sc, 0], [sc, cc, 0], [0, 0, 1]])
    return rz @ ry @ rx


OBLIQUE = tuple(_rotation(0.3, -0.2, 0.5).ravel())
SPACING = (0.7123456789012345, 0.81, 2.5)
ORIGIN = (-12.345678901234, 45.6, 7.89)


@pytest.fixture
def vol():
    rng = np.random.default_rng(0)
    return Volume(rng.normal(size=(4, 5, 6)).astype(np.float32), SPACING, ORIGIN, OBLIQUE)


# MetaImage keeps float64 bits, NRRD 16+ digits; NIfTI's header is float32.
@pytest.mark.parametrize("ext,rtol,atol", [(".mha", 0, 0), (".mhd", 0, 0), (".nrrd", 1e-15, 1e-15),
                                           (".nii", 2e-7, 1e-7), (".nii.gz", 2e-7, 1e-7)])
def test_geometry_and_values_survive_each_format(tmp_path, vol, ext, rtol, atol):
    out = write_volume(tmp_path / f"case{ext}", vol.array, like=vol)
    back = read_volume(out)
    np.testing.assert_array_equal(back.array, vol.array)
    assert back.array.dtype == np.float32
    for got, want in ((back.spacing, SPACING), (back.origin, ORIGIN), (back.direction, OBLIQUE)):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    if ext in (".mha", ".mhd"):
        assert back.spacing == SPACING and back.origin == ORIGIN and back.direction == OBLIQUE
    # atomic: nothing but the output (and MetaImage's data file) is left in the folder
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == (["case.mhd", "case.zraw"] if ext == ".mhd" else [f"case{ext}"])


def test_geometry_agrees_with_simpleitk_reader(tmp_path, vol):
    out = write_volume(tmp_path / "a.nrrd", vol.array.astype(np.int16), like=vol)
    img = sitk.ReadImage(str(out))
    assert img.GetPixelID() == sitk.sitkInt16
    # physical point of voxel (x=1, y=2, z=3) = origin + D @ (spacing * index)
    want = np.array(ORIGIN) + np.array(OBLIQUE).reshape(3, 3) @ (np.array(SPACING) * [1, 2, 3])
    np.testing.assert_allclose(img.TransformIndexToPhysicalPoint((1, 2, 3)), want, atol=1e-12)


def test_explicit_geometry_overrides_like(tmp_path, vol):
    out = write_volume(tmp_path / "b.mha", (vol.array > 0), like=vol, spacing=(1.0, 2.0, 3.0))
    back = read_volume(out)
    assert back.spacing == (1.0, 2.0, 3.0) and back.origin == ORIGIN and back.direction == OBLIQUE
    np.testing.assert_array_equal(back.array, (vol.array > 0).astype(np.uint8))


def test_write_refuses_unknown_extension(tmp_path, vol):
    with pytest.raises(InputError) as err:
        write_volume(tmp_path / "x.png", vol.array, like=vol)
    assert err.value.exit_code == 2 and ".nii.gz" in err.value.hint


def test_dicom_series_round_trip_integers_exact(tmp_path):
    rng = np.random.default_rng(1)
    arr = rng.integers(-1024, 3000, size=(5, 6, 7)).astype(np.int32)
    vol = Volume(arr, SPACING, ORIGIN, OBLIQUE)
    folder = write_dicom_series(tmp_path / "series", vol)
    assert len(list(folder.glob("*.dcm"))) == 5 and is_dicom_folder(folder)
    back = read_volume(folder)
    np.testing.assert_array_equal(back.array, arr)
    # DICOM decimal strings hold 16 characters: about 1e-14 here
    np.testing.assert_allclose(back.spacing, SPACING, atol=1e-12)
    np.testing.assert_allclose(back.origin, ORIGIN, atol=1e-12)
    np.testing.assert_allclose(back.direction, OBLIQUE, atol=1e-12)


def test_dicom_series_round_trip_floats_within_half_slope(tmp_path):
    rng = np.random.default_rng(2)
    arr = rng.normal(size=(3, 4, 5)) * 100.0
    vol = Volume(arr, (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), tuple(np.eye(3).ravel()))
    back = read_volume(write_dicom_series(tmp_path / "f", vol))
    slope = (arr.max() - arr.min()) / 65535
    assert np.abs(back.array - arr).max() <= slope / 2 * (1 + 1e-6)
    assert back.spacing == (1.0, 1.0, 2.0)


def test_dicom_slices_carry_the_geometry_tags(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    vol = Volume(np.zeros((2, 3, 4), np.int16), SPACING, ORIGIN, OBLIQUE)
    folder = write_dicom_series(tmp_path / "g", vol)
    ds = [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]
    d = np.array(OBLIQUE).reshape(3, 3)
    np.testing.assert_allclose([float(v) for v in ds[0].ImageOrientationPatient], [*d[:, 0], *d[:, 1]], atol=1e-14)
    np.testing.assert_allclose([float(v) for v in ds[1].ImagePositionPatient],
                               np.array(ORIGIN) + d[:, 2] * SPACING[2], atol=1e-12)
    assert ds[0].SeriesInstanceUID == ds[1].SeriesInstanceUID
    assert ds[0].SOPInstanceUID != ds[1].SOPInstanceUID
    assert [int(x.InstanceNumber) for x in ds] == [1, 2]


def test_real_ct_slice_from_pydicom_reads_as_one_slice_series(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    src = get_testdata_file("CT_small.dcm")
    folder = tmp_path / "ct"
    folder.mkdir()
    shutil.copy(src, folder / "slice.dcm")
    vol = read_volume(folder)
    ds = pydicom.dcmread(src)
    want = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert vol.array.shape == (1, int(ds.Rows), int(ds.Columns))
    np.testing.assert_array_equal(vol.array[0], want)
    np.testing.assert_allclose(vol.spacing[:2], [float(ds.PixelSpacing[1]), float(ds.PixelSpacing[0])])
    np.testing.assert_allclose(vol.origin, [float(v) for v in ds.ImagePositionPatient])


def test_missing_file_is_input_error(tmp_path):
    with pytest.raises(InputError) as err:
        read_volume(tmp_path / "nope.nii.gz")
    assert err.value.exit_code == 2 and "not found" in err.value.message


def test_empty_folder_is_input_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError) as err:
        read_volume(tmp_path / "empty")
    assert err.value.exit_code == 2 and "no DICOM series" in err.value.message
    assert not is_dicom_folder(tmp_path / "empty")


@pytest.mark.parametrize("name,data", [("bad.nii.gz", b"\x1f\x8b not really gzip"),
                                       ("bad.nii", b"\x00" * 40), ("bad.mha", b"NDims = 3\nbroken"),
                                       ("bad.nrrd", b"NRRD0004\nnonsense\n")])
def test_corrupt_file_is_input_error(tmp_path, name, data):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(InputError) as err:
        read_volume(tmp_path / name)
    assert err.value.exit_code == 2 and "cannot read volume" in err.value.message
    assert "\n" not in err.value.message


def test_dicom_write_and_read_leave_the_locale_and_text_encoding_alone(tmp_path):
    """GDCM resets the C locale to "C" while writing a series; left so, Python's default text encoding turns
    ASCII and the next UTF-8 text read of the process fails (it broke torch.compile in the suite)."""
    import locale

    original = locale.setlocale(locale.LC_ALL)
    try:
        try:
            locale.setlocale(locale.LC_ALL, "C.UTF-8")  # a known start, whatever earlier code left
        except locale.Error:
            pass
        before, encoding = locale.setlocale(locale.LC_ALL), locale.getencoding()
        vol = Volume(np.zeros((3, 4, 5), np.int16), SPACING, ORIGIN, OBLIQUE)
        read_volume(write_dicom_series(tmp_path / "series", vol))
        assert locale.setlocale(locale.LC_ALL) == before and locale.getencoding() == encoding
        (tmp_path / "t.txt").write_bytes("Ø ≥ −".encode())
        if encoding.lower().replace("-", "") == "utf8":
            assert open(tmp_path / "t.txt").read() == "Ø ≥ −"
    finally:
        locale.setlocale(locale.LC_ALL, original)


def test_dicom_folder_that_gdcm_cannot_scan_is_input_error(tmp_path):
    """pydicom's rtdose_1frame.dcm makes GDCM throw while listing series: a one-line error, not a traceback."""
    from pydicom.data import get_testdata_file

    folder = tmp_path / "dcm"
    folder.mkdir()
    shutil.copy(get_testdata_file("rtdose_1frame.dcm"), folder / "dose.dcm")
    for probe in (read_volume, is_dicom_folder):
        with pytest.raises(InputError, match="cannot scan DICOM folder"):
            probe(folder)


def _two_series_folder(tmp_path):
    a = Volume(np.arange(60, dtype=np.int16).reshape(3, 4, 5), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0),
               tuple(np.eye(3).ravel()))
    b = Volume(np.arange(60, 180, dtype=np.int16).reshape(6, 4, 5), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0),
               tuple(np.eye(3).ravel()))
    both = tmp_path / "both"
    for name, vol in (("a", a), ("b", b)):
        for f in write_dicom_series(tmp_path / name, vol).iterdir():
            both.mkdir(exist_ok=True)
            shutil.copy(f, both / f"{name}_{f.name}")
    return both, a, b


def test_folder_with_several_series_is_refused_with_their_uids_and_series_picks_one(tmp_path):
    """One policy for the suite: never a silent choice between series (the larger one used to be read)."""
    both, a, b = _two_series_folder(tmp_path)
    uid_a = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(tmp_path / "a"))[0]
    uid_b = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(tmp_path / "b"))[0]
    assert is_dicom_folder(both)
    with pytest.raises(InputError) as err:
        read_volume(both)
    assert err.value.exit_code == 2 and "2 DICOM series" in err.value.message
    assert uid_a in err.value.message and uid_b in err.value.message and "--series" in err.value.hint
    # reading: the chosen series comes back whole, with its geometry
    for uid, vol in ((uid_a, a), (uid_b, b)):
        back = read_volume(both, series=uid)
        np.testing.assert_array_equal(back.array, vol.array)
        assert back.spacing == (1.0, 1.0, 2.0)
    with pytest.raises(InputError, match="no DICOM series 1.2.3"):
        read_volume(both, series="1.2.3")


def test_irregular_slice_spacing_is_refused(tmp_path):
    vol = Volume(np.zeros((5, 4, 4), np.int16), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), tuple(np.eye(3).ravel()))
    folder = write_dicom_series(tmp_path / "s", vol)
    sorted(folder.iterdir())[2].unlink()  # a missing middle slice
    with pytest.raises(InputError, match="irregular slice spacing") as err:
        read_volume(folder)
    assert err.value.exit_code == 2


@pytest.mark.parametrize("ext", [".nii.gz", ".nii", ".mha", ".nrrd"])
@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_truncated_file_is_input_error_naming_it(tmp_path, vol, ext, keep):
    """ITK reads a cut NIfTI as a zero-padded volume: the size the header implies is checked first."""
    data = write_volume(tmp_path / f"a{ext}", vol.array, like=vol).read_bytes()
    cut = tmp_path / f"cut{ext}"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(InputError) as err:
        read_volume(cut)
    assert err.value.exit_code == 2 and str(cut) in err.value.message and "\n" not in err.value.message


def test_gzip_of_several_members_is_complete(tmp_path, vol):
    import gzip

    raw = gzip.decompress(write_volume(tmp_path / "a.nii.gz", vol.array, like=vol).read_bytes())
    (tmp_path / "m.nii.gz").write_bytes(gzip.compress(raw[:500]) + gzip.compress(raw[500:]))
    np.testing.assert_array_equal(read_volume(tmp_path / "m.nii.gz").array, vol.array)


@pytest.mark.parametrize("ext", [".nii.gz", ".mha", ".nrrd"])
def test_full_disk_is_output_error_and_leaves_no_file(tmp_path, ext):
    """SimpleITK's NIfTI writer does not raise on a full disk (it left a 0-byte mask that --skip-existing then
    skipped): write_volume checks what it wrote before the rename."""
    import subprocess

    from wisecli.cli.errors import OutputError

    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs (not root?)")
    try:
        noise = np.random.default_rng(0).normal(size=(32, 32, 32)).astype(np.float32)  # incompressible, 128 kB
        with pytest.raises(OutputError) as err:
            write_volume(disk / f"mask{ext}", noise, spacing=(1.0, 1.0, 1.0))
        assert err.value.exit_code == 1 and "mask" in err.value.message
        assert list(disk.iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
