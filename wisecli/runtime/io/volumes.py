"""Medical volumes through SimpleITK: NIfTI (.nii, .nii.gz), MetaImage (.mha, .mhd), NRRD (.nrrd, .nhdr)
and DICOM series (a folder of slices), read into a numpy array with the physical geometry beside it.

Choices where the formats leave room:
- The array is SimpleITK's view, indexed (z, y, x); spacing, origin and direction are in SimpleITK's (x, y, z)
  order, the direction flattened row by row (9 numbers for a 3-D volume).
- Geometry is copied exactly; what survives on disk is the format's precision: MetaImage keeps every bit,
  NRRD keeps 16 significant digits, NIfTI stores float32 (about 7 digits), DICOM decimal strings of at most
  16 characters.
- A folder holding several DICOM series is read as its largest series (a localizer or a scout beside the
  main scan is the usual reason for a second one); the choice is by slice count.
- MetaImage and NRRD outputs are compressed (lossless), as 3D Slicer and ITK-SNAP write them.
- `write_dicom_series` stores integers that fit 16 bits exactly; other values are quantised to signed 16 bit
  with a rescale slope and intercept (DICOM PS3.3 C.7.6.16.2.11), so they come back within half a slope.
- GDCM, under SimpleITK's DICOM series writer, switches the C library's locale to "C" and leaves it there, which
  makes Python's default text encoding ASCII for the rest of the process (a later `open()` of UTF-8 text then
  fails; we measured it with SimpleITK 2.5). Every SimpleITK call here restores the locale it found.
"""

from __future__ import annotations

import locale
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from wisecli.cli.errors import InputError
from wisecli.runtime.io.atomic import atomic_path

READ_HINT = "give a NIfTI (.nii, .nii.gz), MetaImage (.mha, .mhd), NRRD (.nrrd) file or a DICOM series folder"
WRITE_SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd")


@dataclass
class Volume:
    """A volume and its physical geometry (SimpleITK conventions)."""

    array: np.ndarray            # (z, y, x), or (z, y, x, c) for vector pixels
    spacing: tuple               # (x, y, z) in millimetres
    origin: tuple                # physical position of voxel (0, 0, 0)
    direction: tuple             # direction cosines, row-major (9 numbers in 3-D)
    path: Path | None = None

    @property
    def shape(self) -> tuple:
        """The array's shape, (z, y, x) or (z, y, x, c)."""
        return self.array.shape


@contextmanager
def _locale_kept():
    """Restore the process locale after a SimpleITK call (see the module docstring: GDCM resets it to "C")."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        if locale.setlocale(locale.LC_ALL) != saved:
            locale.setlocale(locale.LC_ALL, saved)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _first_line(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    # SimpleITK messages start with the C++ location; the reason is the last line.
    return (lines[-1] if lines else type(exc).__name__)[:200]


def _to_volume(image: sitk.Image, path: Path) -> Volume:
    return Volume(array=sitk.GetArrayFromImage(image), spacing=tuple(image.GetSpacing()),
                  origin=tuple(image.GetOrigin()), direction=tuple(image.GetDirection()), path=path)


def dicom_series_files(folder: Path) -> list[str]:
    """The slice files of the largest DICOM series in `folder`, in slice order (empty when there is none)."""
    best: list[str] = []
    try:
        with _locale_kept():
            for sid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) or ():
                files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), sid))
                if len(files) > len(best):
                    best = files
    except RuntimeError as exc:  # GDCM throws on some malformed files while scanning the folder
        raise InputError(f"cannot scan DICOM folder {folder}: {_first_line(exc)}",
                         hint="a file in the folder is not valid DICOM; move the other files out") from None
    return best


def is_dicom_folder(path: Path) -> bool:
    """True for a folder holding a DICOM series (for `expand_inputs(dir_is_item=...)`)."""
    return Path(path).is_dir() and bool(dicom_series_files(Path(path)))


def read_volume(path: Path | str) -> Volume:
    """Read a volume file or a DICOM series folder; anything unreadable is an InputError (exit 2)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"volume not found: {path}", hint=READ_HINT)
    try:
        if path.is_dir():
            files = dicom_series_files(path)
            if not files:
                raise InputError(f"no DICOM series in folder {path}", hint=READ_HINT)
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(files)
            with _locale_kept():
                image = reader.Execute()
        else:
            with _locale_kept():
                image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(f"cannot read volume {path}: {_first_line(exc)}",
                         hint="the file is corrupt or not a volume; " + READ_HINT) from None
    return _to_volume(image, path)


def _image(array, like: Volume | None, spacing, origin, direction) -> sitk.Image:
    array = np.asarray(array)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    elif array.dtype == np.float16:
        array = array.astype(np.float32)
    spacing = spacing if spacing is not None else (like.spacing if like is not None else None)
    origin = origin if origin is not None else (like.origin if like is not None else None)
    direction = direction if direction is not None else (like.direction if like is not None else None)
    dim = len(spacing) if spacing is not None else (len(origin) if origin is not None else array.ndim)
    image = sitk.GetImageFromArray(array, isVector=array.ndim == dim + 1)
    if spacing is not None:
        image.SetSpacing([float(v) for v in spacing])
    if origin is not None:
        image.SetOrigin([float(v) for v in origin])
    if direction is not None:
        image.SetDirection([float(v) for v in direction])
    return image


def write_volume(path: Path | str, array, like: Volume | None = None, *, spacing=None, origin=None,
                 direction=None) -> Path:
    """Write `array` ((z, y, x) like `Volume.array`) atomically, the format chosen by the extension.

    The geometry is `like`'s, each part overridable by `spacing`, `origin`, `direction`.
    """
    path = Path(path)
    suffix = _suffix(path)
    if suffix not in WRITE_SUFFIXES:
        raise InputError(f"cannot write volume {path}: unknown extension {suffix or '(none)'}",
                         hint="use one of " + ", ".join(WRITE_SUFFIXES))
    image = _image(array, like, spacing, origin, direction)
    compress = suffix in (".mha", ".mhd", ".nrrd")
    try:
        if suffix == ".mhd":
            _write_mhd(path, image)
        else:
            with atomic_path(path) as tmp:
                sitk.WriteImage(image, str(tmp), compress)
    except RuntimeError as exc:
        raise InputError(f"cannot write volume {path}: {_first_line(exc)}",
                         hint="check the folder is writable and the pixel type suits the format") from None
    return path


def _write_mhd(path: Path, image: sitk.Image) -> None:
    """A .mhd header names its data file, so both are written under their final names in a temporary
    folder and moved into place data first, header last (the header is what readers look for)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{path.stem}.tmp-", dir=path.parent))
    try:
        sitk.WriteImage(image, str(tmpdir / path.name), True)
        for item in sorted(tmpdir.iterdir(), key=lambda p: p.name == path.name):
            os.replace(item, path.parent / item.name)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _ds(value: float) -> str:
    """A DICOM decimal string (at most 16 characters) with as many digits as fit."""
    value = float(value)
    if value == 0:
        return "0"
    for digits in range(16, 0, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return text
    raise ValueError(f"cannot write {value} as a DICOM decimal string")  # pragma: no cover


def _uid() -> str:
    """A DICOM UID derived from a random UUID (PS3.5 B.2: the 2.25 root)."""
    return f"2.25.{uuid.uuid4().int}"


def _stored(array: np.ndarray) -> tuple[np.ndarray, dict[str, str]]:
    """The pixel data GDCM writes and the tags that tell how: integers that fit 16 bits as they are,
    anything else as float with a slope/intercept GDCM quantises to signed 16 bit."""
    if array.dtype == np.bool_:
        return array.astype(np.uint8), {}
    if np.issubdtype(array.dtype, np.integer):
        lo, hi = (int(array.min()), int(array.max())) if array.size else (0, 0)
        if array.dtype == np.uint8:
            return array, {}
        if -32768 <= lo and hi <= 32767:
            return array.astype(np.int16), {}
        if 0 <= lo and hi <= 65535:
            return array.astype(np.uint16), {}
    values = array.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise InputError("cannot write a DICOM series: the volume has NaN or infinite values",
                         hint="DICOM stores integers; replace non-finite values first")
    lo, hi = float(values.min()), float(values.max())
    slope = (hi - lo) / 65535.0 if hi > lo else 1.0
    # Choose decimal strings first and derive the quantisation from what is written, so the stored
    # integers decode (value = stored * slope + intercept) within half a slope of the input.
    slope = float(_ds(slope * (1 + 1e-9)))
    intercept = float(_ds(lo + 32768.0 * slope))
    tags = {"0028|0100": "16", "0028|0101": "16", "0028|0102": "15", "0028|0103": "1",
            "0028|1052": _ds(intercept), "0028|1053": _ds(slope)}
    return values, tags


def write_dicom_series(folder: Path | str, vol: Volume, *, modality: str = "OT") -> Path:
    """Write a 3-D scalar volume as a DICOM series, one file a slice (IM0001.dcm, ...), atomically.

    Each slice carries Image Position (Patient), Image Orientation (Patient) and Pixel Spacing from the
    volume's geometry, so oblique volumes come back with their direction.
    """
    folder = Path(folder)
    array = np.asarray(vol.array)
    if array.ndim != 3 or len(vol.spacing) != 3:
        raise InputError(f"cannot write a DICOM series from a {array.ndim}-D array",
                         hint="a DICOM series holds a 3-D scalar volume (z, y, x)")
    pixels, tags = _stored(array)
    image = _image(pixels, vol, None, None, None)
    d = [float(v) for v in vol.direction]
    orientation = "\\".join(_ds(v) for v in (d[0], d[3], d[6], d[1], d[4], d[7]))
    study, series, frame = _uid(), _uid(), _uid()
    width = max(4, len(str(array.shape[0])))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        for k in range(array.shape[0]):
            sl = image[:, :, k]
            position = image.TransformIndexToPhysicalPoint((0, 0, k))
            meta = {
                "0008|0060": modality,
                "0008|0018": _uid(),
                "0020|000d": study,
                "0020|000e": series,
                "0020|0052": frame,
                "0020|0011": "1",
                "0020|0013": str(k + 1),
                "0020|0032": "\\".join(_ds(v) for v in position),
                "0020|0037": orientation,
                "0028|0030": f"{_ds(vol.spacing[1])}\\{_ds(vol.spacing[0])}",
                "0018|0050": _ds(vol.spacing[2]),
                **tags,
            }
            for key, value in meta.items():
                sl.SetMetaData(key, value)
            writer.SetFileName(str(tmp / f"IM{k + 1:0{width}d}.dcm"))
            try:
                with _locale_kept():
                    writer.Execute(sl)
            except RuntimeError as exc:
                raise InputError(f"cannot write DICOM slice {k + 1} to {folder}: {_first_line(exc)}",
                                 hint="check the folder is writable") from None
    return folder
