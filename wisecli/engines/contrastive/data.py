"""Reading images for `wise contrastive` (spec §4) through the shared readers of `runtime/io/labeled.py`.

- Labelled layouts (class folders, CSV `path,label[,split]`, `.npz` with `X` and `y`, `builtin:NAME[:part]`)
  go through `read_labeled`; every part present is used (`val_fraction=0`, nothing carved off).
- Unlabelled: a flat folder of images (images directly in it, no class sub-folders), an `.npz` with `X` only,
  or image files/globs/`@list.txt` (several inputs): the shared `read_unlabeled` (same decoding, gray
  detection and `image_size` resizing as `read_labeled`; a truncated `.npz` is exit 2 there).
- `labels=FILE`: a CSV `path,label` matched to the images by full path, else by file name; an unreadable
  file or one that misses an image is exit 2 (diagnostics only, never used by the loss).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wisecli.cli.errors import InputError

DATA_HINT = ("give a flat folder of images, a class folder root/<class>/*.png, a CSV path,label, an .npz with X "
             "(and y), or builtin:digits|mnist5k[:part]")


@dataclass
class ImageSet:
    """uint8 images X (N, C, H, W), labels y (N,) int64 or None, class names, file paths when read from files."""

    X: np.ndarray
    y: np.ndarray | None
    classes: list[str] | None
    paths: list[str] | None
    source: str

    @property
    def n(self) -> int:
        return int(self.X.shape[0])


def _flat_images(folder: Path) -> list[Path]:
    from wisecli.runtime.io.labeled import IMAGE_EXTENSIONS

    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                  and not p.name.startswith("."))


def _unlabelled(source, image_size: int | None) -> ImageSet:
    from wisecli.runtime.io.labeled import read_unlabeled

    u = read_unlabeled(source, image_size=image_size, hint=DATA_HINT)
    if u.kind != "image":
        raise InputError(f"{u.source} holds feature vectors, not images", hint=DATA_HINT)
    return ImageSet(X=u.X, y=None, classes=None, paths=u.paths, source=u.source)


def read_images(source, *, image_size: int | None = None, labels: str | Path | None = None,
                need_labels: bool = False, what: str = "DATA") -> ImageSet:
    """Read one data source (see the module docstring); `need_labels` refuses unlabelled data (exit 2)."""
    from wisecli.runtime.io.labeled import read_labeled

    sources = [str(s) for s in source] if isinstance(source, (list, tuple)) else [str(source)]
    text = sources[0]
    path = Path(text).expanduser()
    if path.is_dir() and not _flat_images(path) and not any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir()):
        raise InputError(f"no images in {text}", hint=DATA_HINT)
    if len(sources) > 1 or text.startswith("@") or any(ch in text for ch in "*?["):
        data = _unlabelled(sources, image_size)
    elif text.startswith("builtin:") or (path.is_dir() and not _flat_images(path)):
        lab = read_labeled(text, image_size=image_size, val_fraction=0.0)
        if lab.kind != "image":
            raise InputError(f"{text} holds feature vectors, not images", hint=DATA_HINT)
        data = ImageSet(X=lab.X, y=np.asarray(lab.y), classes=list(lab.classes), paths=lab.paths, source=text)
    elif path.is_dir():
        data = _unlabelled(text, image_size)
    elif path.is_file() and path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                has_y = "y" in z.files
        except Exception:
            raise InputError(f"cannot read {path}: not an .npz archive", hint=DATA_HINT) from None
        if has_y:
            lab = read_labeled(path, image_size=image_size, val_fraction=0.0)
            if lab.kind != "image":
                raise InputError(f"{text} holds feature vectors, not images", hint=DATA_HINT)
            data = ImageSet(X=lab.X, y=np.asarray(lab.y), classes=list(lab.classes), paths=None, source=text)
        else:
            data = _unlabelled(text, image_size)
    elif path.is_file() and path.suffix.lower() in (".csv", ".tsv"):
        lab = read_labeled(path, image_size=image_size, val_fraction=0.0)
        data = ImageSet(X=lab.X, y=np.asarray(lab.y), classes=list(lab.classes), paths=lab.paths, source=text)
    elif path.is_file():
        data = _unlabelled(text, image_size)
    else:
        raise InputError(f"{what} not found: {text}", hint=DATA_HINT)
    if data.n == 0:
        raise InputError(f"no images in {text}", hint=DATA_HINT)
    if labels is not None:
        data.y, data.classes = _match_labels(Path(labels), data)
    if need_labels and data.y is None:
        raise InputError(f"{what} {text} has no labels",
                         hint="arrange it as class sub-folders root/<class>/*.png, or a CSV path,label / .npz with y")
    return data


def _match_labels(path: Path, data: ImageSet) -> tuple[np.ndarray, list[str]]:
    if not path.is_file():
        raise InputError(f"labels file not found: {path}", hint="a CSV with the columns path,label")
    if data.paths is None:
        raise InputError(f"--labels needs images read from files, not {data.source}", hint="put y into the .npz")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read labels file {path}: {type(exc).__name__}", hint="a CSV path,label") from None
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "label"]:
        rows = rows[1:]
    table = {}
    for r in rows:
        if len(r) < 2:
            raise InputError(f"labels file {path}: a row without path,label ({r!r:.60})", hint="a CSV path,label")
        table[r[0].strip()] = r[1].strip()
    by_name = {Path(k).name: v for k, v in table.items()}
    out = []
    for p in data.paths:
        lab = table.get(p, by_name.get(Path(p).name))
        if lab is None:
            raise InputError(f"labels file {path} has no label for {p}", hint="one row path,label per image")
        out.append(lab)
    classes = sorted(set(out), key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))
    lookup = {c: i for i, c in enumerate(classes)}
    return np.array([lookup[v] for v in out], dtype=np.int64), classes
