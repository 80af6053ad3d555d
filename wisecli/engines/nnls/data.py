"""Inputs, dictionaries and the offline datasets of `wise nnls` (spec §3, §2.4, §4).

Data matrices B are m × n (features × columns): `.npy`, `.npz`, `.csv`, `.mat` (v4–v7.2), an image folder
(grayscale in [0, 1], one column per image, row-major pixels) or a 3-D cube flattened to bands × pixels.

Choices where the spec is silent (ours): a 3-D array without `--cube` is read as bands-last (rows × cols × bands,
the usual `.mat` layout) and said so on stderr by the caller; `.csv` uses ',' (or tab/whitespace when there is
no comma) and treats a first line that is not all numbers as a header; `.npz`/`.mat` pick `--key`/`--var`, else a
variable named `B`, else the only 2-D/3-D numeric array. Dictionaries: `nmf:R` is scikit-learn NMF of Bᵀ
(init nndsvda, max_iter 1000, the seed) and `spa:R` the successive projection algorithm (Gillis & Vavasis,
"Fast and robust recursive algorithms for separable NMF", IEEE TPAMI 2014) on the ℓ1-normalised columns of B (so a
separable B = W[I, H'] with nonnegative H is a simplex and SPA recovers W); both give unit-norm atoms.
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wisecli.cli.errors import InputError

IMAGE_EXT = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".pgm", ".bmp")
DATA_EXT = (".npy", ".npz", ".csv", ".mat")


@dataclass
class Matrix:
    """B (m × n float64) and, for cubes, the spatial shape (rows, cols) of its n pixels."""

    B: np.ndarray
    spatial: tuple[int, int] | None = None
    note: str | None = None


def _check_finite(arr: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(f"{what} has {int(bad.sum())} NaN/Inf value(s), first at index {pos}",
                         hint="clean or impute the data before solving")


def _pick(arrays: dict, name: str | None, opt: str, path: Path) -> np.ndarray:
    numeric = {k: v for k, v in arrays.items()
               if isinstance(v, np.ndarray) and v.ndim in (2, 3) and np.issubdtype(v.dtype, np.number)}
    if name is not None:
        if name not in arrays:
            raise InputError(f"{path.name}: no variable '{name}'", hint=f"variables: {', '.join(sorted(arrays))}")
        return np.asarray(arrays[name])
    if "B" in numeric:
        return numeric["B"]
    if len(numeric) == 1:
        return next(iter(numeric.values()))
    if not numeric:
        raise InputError(f"{path.name}: no 2-D or 3-D numeric array inside", hint="save B as a 2-D array")
    raise InputError(f"{path.name}: ambiguous, it holds {len(numeric)} arrays ({', '.join(sorted(numeric))})",
                     hint=f"choose one with {opt} NAME")


def _read_csv(path: Path) -> np.ndarray:
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    if not lines:
        raise InputError(f"{path.name}: empty CSV file", hint="give a numeric table")
    sep = "," if "," in lines[0] else ("\t" if "\t" in lines[0] else None)

    def parse(ln):
        return [float(t) for t in (ln.split(sep) if sep else ln.split())]

    try:
        parse(lines[0])
        start = 0
    except ValueError:
        start = 1
    try:
        return np.array([parse(ln) for ln in lines[start:]], dtype=np.float64)
    except ValueError as exc:
        raise InputError(f"{path.name}: not a numeric table ({exc})", hint="only numbers after the header") from None


def _read_mat(path: Path, var: str | None) -> np.ndarray:
    import scipy.io

    try:
        d = scipy.io.loadmat(path)
    except NotImplementedError:
        raise InputError(f"{path.name}: MATLAB v7.3 (HDF5) files are not supported",
                         hint="re-save it in MATLAB with save(..., '-v7') or as .npy") from None
    except Exception as exc:
        raise InputError(f"{path.name}: unreadable .mat file ({exc})", hint="check the file") from None
    return _pick({k: v for k, v in d.items() if not k.startswith("__")}, var, "--var", path)


def _read_images(folder: Path, resize: tuple[int, int] | None) -> Matrix:
    from skimage import io as skio
    from skimage.color import rgb2gray, rgba2rgb
    from skimage.transform import resize as sk_resize
    from skimage.util import img_as_float

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXT)
    if not files:
        raise InputError(f"{folder}: no images inside ({', '.join(IMAGE_EXT)})", hint="point at a folder of images")
    cols, shape = [], None
    for f in files:
        try:
            img = skio.imread(f)
        except Exception as exc:
            raise InputError(f"{f.name}: unreadable image ({exc})", hint="remove or fix the file") from None
        if img.ndim == 3 and img.shape[2] == 4:
            img = rgba2rgb(img)
        img = rgb2gray(img) if img.ndim == 3 else img_as_float(img)
        if resize is not None:
            img = sk_resize(img, resize, anti_aliasing=True)
        if shape is None:
            shape = img.shape
        elif img.shape != shape:
            raise InputError(f"{folder}: images of different sizes ({shape} and {img.shape} in {f.name})",
                             hint="pass --resize HxW")
        cols.append(np.asarray(img, dtype=np.float64).ravel())
    return Matrix(np.stack(cols, 1), None)


def parse_resize(spec: str | None) -> tuple[int, int] | None:
    """`--resize HxW` → (H, W) with H, W ≥ 1; None stays None."""
    if spec is None:
        return None
    try:
        h, w = (int(t) for t in spec.lower().split("x"))
        if h > 0 and w > 0:
            return h, w
    except ValueError:
        pass
    raise InputError(f"--resize {spec!r}: expected HxW", hint="for example --resize 64x64")


def _is_image_folder(p: Path) -> bool:
    return any(f.suffix.lower() in IMAGE_EXT for f in p.iterdir())


def expand(items, *, pattern: str | None = None, shard: str | None = None) -> list[Path]:
    """The command line's input words (files, folders, globs, @list.txt, @-) → the sorted input paths of this
    shard. A folder holding images is one input (an image set); any other folder is expanded into its data files.
    A missing input is an input error naming it."""
    from wisecli.cli.inputs import apply_shard, expand_inputs, parse_shard

    paths = expand_inputs([str(i) for i in items], pattern=pattern, extensions=DATA_EXT, dir_is_item=_is_image_folder)
    return apply_shard(paths, parse_shard(shard))


def load_matrix(path: Path | str, *, key: str | None = None, var: str | None = None, cube: str | None = None,
                transpose: bool = False, resize: tuple[int, int] | None = None, what: str = "B") -> Matrix:
    """Read a data matrix (m × n float64) from any supported input; cubes become bands × pixels."""
    path = Path(path)
    if path.is_dir():
        mat = _read_images(path, resize)
        _check_finite(mat.B, what)
        return mat
    if not path.exists():
        raise InputError(f"no such file: {path}", hint="check the path")
    ext = path.suffix.lower()
    try:
        if ext == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif ext == ".npz":
            with np.load(path, allow_pickle=False) as z:
                arr = _pick({k: z[k] for k in z.files}, key, "--key", path)
        elif ext == ".csv":
            arr = _read_csv(path)
        elif ext == ".mat":
            arr = _read_mat(path, var)
        else:
            raise InputError(f"{path.name}: unsupported input type '{ext}'",
                             hint=f"use {', '.join(DATA_EXT)} or a folder of images")
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise InputError(f"{path.name}: unreadable ({type(exc).__name__}: {exc})",
                         hint="check the file (truncated or not what its extension says?)") from None
    arr = np.asarray(arr)
    if not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"{path.name}: not numeric (dtype {arr.dtype})", hint="give a numeric array")
    arr = arr.astype(np.float64)
    spatial, note = None, None
    if arr.ndim == 3:
        layout = cube or "bands-last"
        if cube is None:
            note = f"{path.name}: 3-D array read as a bands-last cube {arr.shape} (set --cube)"
        if layout == "bands-first":
            arr = np.moveaxis(arr, 0, -1)
        spatial = arr.shape[:2]
        arr = arr.reshape(-1, arr.shape[2]).T
    elif arr.ndim == 1:
        arr = arr[:, None]
    elif arr.ndim != 2:
        raise InputError(f"{path.name}: {arr.ndim}-D array", hint="give a 2-D matrix or a 3-D cube")
    if transpose:
        arr = arr.T
    if arr.size == 0:
        raise InputError(f"{path.name}: empty array {arr.shape}", hint="give a non-empty matrix")
    _check_finite(arr, f"{path.name}")
    return Matrix(np.ascontiguousarray(arr), spatial, note)


def spa(B: np.ndarray, R: int) -> np.ndarray:
    """Successive projection on the ℓ1-normalised columns: pick the column of largest residual norm, project it
    out, R times; returns the picked column indices."""
    Rm = B / np.maximum(np.abs(B).sum(0), 1e-300)
    picked = []
    for _ in range(R):
        j = int(np.argmax((Rm**2).sum(0)))
        picked.append(j)
        u = Rm[:, j] / max(np.linalg.norm(Rm[:, j]), 1e-300)
        Rm = Rm - np.outer(u, u @ Rm)
    return np.array(picked)


def make_dictionary(spec: str, B: np.ndarray, *, seed: int = 0, key=None, var=None, transpose=False) -> np.ndarray:
    """A (m × r float64) from a path, `nmf:R` or `spa:R` (learned from B, unit-norm atoms), or an array already
    read (`read_dictionary`), checked against B's rows."""
    m = B.shape[0]
    if isinstance(spec, np.ndarray):
        return _check_rows(spec, m)
    kind, _, arg = spec.partition(":")
    if kind in ("nmf", "spa") and arg:
        try:
            R = int(arg)
        except ValueError:
            raise InputError(f"--dictionary {spec}: R must be an integer", hint="for example nmf:12") from None
        if not 1 <= R <= min(B.shape):
            raise InputError(f"--dictionary {spec}: R must be in 1..{min(B.shape)} for B of shape {B.shape}",
                             hint="choose a smaller R")
        if kind == "spa":
            A = B[:, spa(B, R)]
        else:
            if (B < 0).any():
                raise InputError("nmf dictionary needs nonnegative data (B has negative entries)",
                                 hint="use spa:R or give a dictionary file")
            import warnings

            from sklearn.decomposition import NMF

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                A = NMF(R, init="nndsvda", max_iter=1000, random_state=seed % 2**32).fit(B.T).components_.T
        norms = np.linalg.norm(A, axis=0)
        return A / np.where(norms > 0, norms, 1.0)
    return _check_rows(load_matrix(spec, key=key, var=var, transpose=transpose, what="dictionary").B, m)


def is_learned(spec: str) -> bool:
    """Whether a `--dictionary` spec is learned from the data (`nmf:R`, `spa:R`) rather than a file."""
    kind, sep, arg = str(spec).partition(":")
    return kind in ("nmf", "spa") and bool(sep) and bool(arg)


def read_dictionary(spec: str):
    """A `--dictionary` spec made ready before the work starts: a file is read now (a missing or unreadable one
    is an input error at once), a learned spec (`nmf:R`, `spa:R`) stays a string."""
    if is_learned(spec):
        return spec
    return load_matrix(spec, what="dictionary").B


def _check_rows(A: np.ndarray, m: int) -> np.ndarray:
    if A.shape[0] != m:
        if A.shape[1] == m:
            hint = f"the dictionary looks transposed ({A.shape}); store it as m × r"
        else:
            hint = "A must be m × r with the same m (rows) as B"
        raise InputError(f"row mismatch: dictionary has {A.shape[0]} rows, data has {m}", hint=hint)
    return A


# --------------------------------------------------------------------------------------------------- datasets
def faces() -> np.ndarray:
    """LFW face crops from scikit-image (`lfw_subset`, first 100 images of 25×25): 625 × 100 in [0, 1]."""
    from skimage.data import lfw_subset

    return lfw_subset()[:100].reshape(100, -1).T.astype(np.float64)


def digits() -> np.ndarray:
    """scikit-learn's handwritten digits: 64 × 1797 in [0, 1]."""
    from sklearn.datasets import load_digits

    return load_digits().data.T.astype(np.float64) / 16.0


def hsi_wavelengths() -> np.ndarray:
    """162 bands on [0.40, 1.34] (90), [1.46, 1.79] (30), [1.96, 2.50] µm (42), skipping water absorption."""
    return np.concatenate([np.linspace(0.40, 1.34, 90), np.linspace(1.46, 1.79, 30), np.linspace(1.96, 2.50, 42)])


def _smooth_spectrum(wl, c):
    return 0.05 + 0.4 * np.exp(-((wl - c) ** 2) / (2 * 0.25**2)) + 0.1 * np.exp(-((wl - c / 2) ** 2) / 0.02)


def _read_two_columns(path: Path, skip: int = 0) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for ln in path.read_text(errors="replace").splitlines()[skip:]:
        parts = ln.split()
        if len(parts) == 2:
            try:
                x, y = float(parts[0]), float(parts[1])
            except ValueError:
                continue
            xs.append(x)
            ys.append(y)
    x, y = np.array(xs), np.array(ys)
    o = np.argsort(x)
    return x[o], y[o]


def real_spectra(wl: np.ndarray) -> np.ndarray | None:
    """Four real spectra from the `spectral` package's test data (ECOSTRESS ×3 in percent, RELAB in fraction)."""
    try:
        import spectral
    except ImportError:
        return None
    root = Path(spectral.__file__).parent / "tests" / "data"
    out = []
    for name in ("a", "b", "c"):
        x, y = _read_two_columns(root / "ecostress" / f"{name}.spectrum.txt")
        out.append(np.interp(wl, x, y / 100.0))
    x, y = _read_two_columns(root / "relab" / "data" / "mem" / "mm" / "bkr1mm074ws.txt", skip=2)
    out.append(np.interp(wl, x, y))
    return np.stack(out, 1)


def hsi(n_side: int = 100, seed: int = 0, snr_db: float = 30.0) -> dict:
    """Semi-synthetic cube (spec §4): 162 bands, r = 6, per-pixel support size 1/2/3 (p = .40/.35/.25), atoms
    uniform, Dirichlet(1) weights, Gaussian noise at 30 dB SNR. Returns A, B, X_true, wavelengths, note."""
    wl = hsi_wavelengths()
    real = real_spectra(wl)
    synth = [_smooth_spectrum(wl, 0.7), _smooth_spectrum(wl, 1.9)]
    note = None
    if real is None:
        synth += [_smooth_spectrum(wl, c) for c in (0.5, 1.1, 1.5, 2.3)]
        A = np.stack(synth, 1)
        note = "the 'spectral' extra is not installed: six synthetic spectra used"
    else:
        A = np.concatenate([real, np.stack(synth, 1)], 1)
    rng = np.random.default_rng(seed)
    n, r = n_side * n_side, A.shape[1]
    sizes = rng.choice([1, 2, 3], size=n, p=[0.40, 0.35, 0.25])
    X = np.zeros((r, n))
    for j in range(n):
        atoms = rng.choice(r, size=sizes[j], replace=False)
        X[atoms, j] = rng.dirichlet(np.ones(sizes[j]))
    clean = A @ X
    sigma = np.sqrt((clean**2).mean() / 10 ** (snr_db / 10))
    B = clean + sigma * rng.standard_normal(clean.shape)
    return {"A": A, "B": B, "X_true": X, "wavelengths": wl, "spatial": (n_side, n_side), "note": note}


DATASETS = ("faces", "digits", "hsi")


def load_dataset(name: str, *, seed: int = 0, quick: bool = False) -> dict:
    """`faces` (lfw, nmf:12), `digits` (nmf:12) or `hsi` (the semi-synthetic cube, its true endmembers):
    a dict with B, A, the dictionary's name and, for hsi, X_true and the spatial shape."""
    if name == "faces":
        B = faces()
        return {"B": B, "A": make_dictionary("nmf:12", B, seed=seed), "dictionary": "nmf:12"}
    if name == "digits":
        B = digits()
        if quick:
            B = B[:, :300]
        return {"B": B, "A": make_dictionary("nmf:12", B, seed=seed), "dictionary": "nmf:12"}
    if name == "hsi":
        d = hsi(n_side=30 if quick else 100, seed=seed)
        return {"B": d["B"], "A": d["A"], "X_true": d["X_true"], "dictionary": "true endmembers",
                "note": d["note"], "spatial": d["spatial"]}
    raise InputError(f"unknown --dataset '{name}'", hint="faces, digits or hsi")
