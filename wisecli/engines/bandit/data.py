"""Readers: the semi-synthetic environments from scikit-learn's bundled tables (spec §4) and the curve records
(`curves.jsonl`) that `evaluate` reads.

Semi-synthetic (our construction; nothing is downloaded): standardise the features, PCA to `dim`, scale so the
largest row norm is 1; θ* is an L2-regularised logistic fit (C = 1) of "first class versus the rest" on those
rows, rescaled to ‖θ*‖ = the requested norm. Each round K rows are drawn without replacement.
"""

from __future__ import annotations

import functools
import glob
import sys
from pathlib import Path

import numpy as np

from wisecli.cli.errors import InputError

_LOADERS = {"breast-cancer": "load_breast_cancer", "wine": "load_wine", "digits": "load_digits"}


@functools.lru_cache(maxsize=8)
def _table(name: str):
    import sklearn.datasets as ds

    bunch = getattr(ds, _LOADERS[name])()
    return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target)


def feature_count(name: str) -> int:
    """Number of features of a bundled table."""
    return int(_table(name)[0].shape[1])


@functools.lru_cache(maxsize=16)
def _pool(name: str, dim: int):
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression

    X, y = _table(name)
    X = (X - X.mean(0)) / np.where(X.std(0) > 0, X.std(0), 1.0)
    Z = PCA(n_components=dim, random_state=0).fit_transform(X)
    Z = Z / np.linalg.norm(Z, axis=1).max()
    target = (y == np.unique(y)[0]).astype(int)
    w = LogisticRegression(C=1.0, max_iter=1000).fit(Z, target).coef_[0]
    return Z, w / max(np.linalg.norm(w), 1e-12)


def semi_synthetic(name: str, dim: int, theta_norm: float) -> tuple[np.ndarray, np.ndarray]:
    """(rows (N, dim) with max norm 1, θ* (dim,) of norm `theta_norm`)."""
    Z, direction = _pool(name, dim)
    return Z, direction * theta_norm


def _expand(items, stdin_text: str | None) -> tuple[list[Path], str | None]:
    paths: list[Path] = []
    stream = None
    for item in items:
        s = str(item)
        if s == "-":
            stream = stdin_text if stdin_text is not None else sys.stdin.read()
        elif s == "@-":
            text = stdin_text if stdin_text is not None else sys.stdin.read()
            paths += [Path(line.strip()) for line in text.splitlines() if line.strip()]
        elif any(c in s for c in "*?["):
            hits = sorted(glob.glob(s))
            if not hits:
                raise InputError(f"no file matches {s}", hint="check the glob")
            paths += [Path(h) for h in hits]
        else:
            paths.append(Path(s))
    return paths, stream


def read_curves(items, *, stdin_text: str | None = None) -> list[dict]:
    """Curve records from curves.jsonl files, folders holding one, globs, `@-` and `-` (spec §3)."""
    from .metrics import read_jsonl_lines

    if not items:
        raise InputError("no curves given", hint="give a curves.jsonl, its folder, or - for the stream")
    paths, stream = _expand(items, stdin_text)
    records: list[dict] = []
    for p in paths:
        f = p / "curves.jsonl" if p.is_dir() else p
        if not f.is_file():
            raise InputError(f"no curves file: {f}", hint="give the curves.jsonl that `wise bandit run` writes")
        try:
            text = f.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{f}: not a UTF-8 JSONL file", hint="give the curves.jsonl that `wise bandit run` writes") from None
        except OSError as exc:
            raise InputError(f"cannot read {f}: {exc.strerror or exc}", hint="check the path") from None
        recs = read_jsonl_lines(text.splitlines(), str(f))
        if not recs:
            raise InputError(f"{f}: no curve records", hint="the file is empty; run `wise bandit run` first")
        records += recs
    if stream is not None:
        recs = read_jsonl_lines(stream.splitlines(), "<stdin>")
        if not recs:
            raise InputError("<stdin>: no curve records", hint="pipe `wise bandit run --jsonl` into it")
        records += recs
    if not records:
        raise InputError("no curve records", hint="give the curves.jsonl that `wise bandit run` writes")
    return records
