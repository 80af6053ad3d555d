"""Data: VeRi-776 layout, AI City 2020 Track 2 layout, CSV manifest, viewpoint label files, image decoding and
on-device augmentation.

Conventions (spec §4, our choices where it is silent):
- VeRi names `VVVV_cCCC_TTTTTTTT_K.jpg` parse with `([-\\d]+)_c(\\d+)`; `name_{train,query,test}.txt` must list
  exactly the files of `image_{train,query,test}/` (count mismatch -> error unless `allow_partial`).
- AIC: identities and cameras come from `train_label.xml` (`imageName`, `vehicleID`, `cameraID`); the test ids
  are unpublished, so evaluation uses a seeded id-disjoint split of the training ids (`val_ids` fraction): in
  the held-out ids, the first image of each (id, camera) pair is a query and the rest the gallery.
- AIC Track 2 submission (`--aic-submit`): `image_query/` + `name_query.txt` and `image_test/` + `name_test.txt`,
  in the lists' order; every name must be a decimal image number (`000123.jpg` -> 123), distinct within its list.
- Manifest CSV: `path,id,camera,split[,viewpoint]`, split in {train, query, gallery}; relative paths are
  relative to the CSV.
- Viewpoint files: `span` (CSV `filename,viewpoint`, class index 0-4 or name), `keypoint`
  (`img_path x1 y1 ... x20 y20 orien`, 8 orientations, folded to 5 classes unless 8 are asked), `csv`
  (`filename,viewpoint` with names or indices of the chosen class set).  Entries are matched by base name;
  more than 5 % unmatched entries, or an unknown class name, is an input error.
- Images are decoded with OpenCV in threads and resized to the input size (uint8, N x 3 x S x S); training
  caches the whole set as uint8 on the device when it fits.  Augmentation (BoT): flip 0.5 (8-class viewpoint
  labels swap), pad 10 + random crop, random erasing 0.5 (Zhong et al., AAAI 2020; area 0.02-0.4, aspect
  0.3-3.3, filled with the mean, i.e. 0 after normalisation), ImageNet mean/std — all vectorised on the device.
"""

from __future__ import annotations

import csv
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from wisecli.cli.errors import InputError

from .vcam import TO_5, VIEWPOINTS_5, VIEWPOINTS_8, flip_viewpoint

VERI_RE = re.compile(r"([-\d]+)_c(\d+)")
AIC_NAME_RE = re.compile(r"[0-9]+")
IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp")
MEAN = torch.tensor([0.485, 0.456, 0.406]) * 255
STD = torch.tensor([0.229, 0.224, 0.225]) * 255


@dataclass
class Split:
    """One list of images with labels (id/camera -1 when unknown, viewpoint -1 when unlabelled)."""

    paths: list[Path]
    ids: np.ndarray
    cams: np.ndarray
    viewpoints: np.ndarray = field(default=None)

    def __post_init__(self):
        if self.viewpoints is None:
            self.viewpoints = np.full(len(self.paths), -1, dtype=np.int64)

    def __len__(self):
        return len(self.paths)


def parse_veri_name(name: str) -> tuple[int, int] | None:
    m = VERI_RE.search(Path(name).name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _listed_names(root: Path, folder: str, listing: str, allow_partial: bool, what: str, lists: str) -> list[str]:
    """The names `listing` gives, checked against the images in `folder` (count mismatch -> error unless
    `allow_partial`, which keeps the listed names that exist)."""
    d, lst = root / folder, root / listing
    if not d.is_dir():
        raise InputError(f"{what} folder missing: {d}", hint=f"DATA must hold {folder}/ and {lists}")
    if not lst.is_file():
        raise InputError(f"{what} list missing: {lst}", hint=f"DATA must hold {lists}")
    names = [ln.strip() for ln in lst.read_text().splitlines() if ln.strip()]
    files = {p.name for p in d.iterdir() if p.suffix.lower() in IMAGE_EXT}
    missing = [n for n in names if n not in files]
    if (missing or len(files) != len(names)) and not allow_partial:
        raise InputError(f"{listing} lists {len(names)} images but {folder}/ holds {len(files)} "
                         f"({len(missing)} listed files are missing)", hint="fix the folder, or pass --allow-partial")
    return [n for n in names if n in files]


def _veri_split(root: Path, folder: str, listing: str, allow_partial: bool) -> Split:
    names = _listed_names(root, folder, listing, allow_partial, "VeRi",
                          "image_train/, image_query/, image_test/ and name_{train,query,test}.txt")
    parsed = [parse_veri_name(n) for n in names]
    bad = [n for n, p in zip(names, parsed) if p is None]
    if bad:
        raise InputError(f"{len(bad)} names in {listing} do not follow the VeRi pattern, e.g. {bad[0]!r}",
                         hint="VeRi names look like 0002_c002_00030600_0.jpg; use --layout manifest otherwise")
    return Split([root / folder / n for n in names], np.array([p[0] for p in parsed], dtype=np.int64),
                 np.array([p[1] for p in parsed], dtype=np.int64))


def load_veri(root: Path | str, *, allow_partial: bool = False) -> dict[str, Split]:
    """{'train', 'query', 'gallery'} splits of a VeRi-776 folder."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"no such folder: {root}", hint="give the VeRi-776 root folder")
    return {"train": _veri_split(root, "image_train", "name_train.txt", allow_partial),
            "query": _veri_split(root, "image_query", "name_query.txt", allow_partial),
            "gallery": _veri_split(root, "image_test", "name_test.txt", allow_partial)}


def read_veri_lists(root: Path | str) -> tuple[list[set], list[set]]:
    """Per-query good and junk gallery names from `gt_image.txt` / `jk_image.txt`."""
    root = Path(root)
    out = []
    for f in ("gt_image.txt", "jk_image.txt"):
        p = root / f
        if not p.is_file():
            raise InputError(f"{f} missing in {root}", hint="--check-lists needs VeRi's gt_image.txt and jk_image.txt")
        out.append([set(ln.split()) for ln in p.read_text().splitlines()])
    return out[0], out[1]


def good_junk_sets(query: Split, gallery: Split) -> tuple[list[set], list[set]]:
    """Our good (same id, other camera) and junk (same id, same camera) gallery names per query."""
    names = np.array([p.name for p in gallery.paths])
    good, junk = [], []
    for qi, qc in zip(query.ids, query.cams):
        same = gallery.ids == qi
        good.append(set(names[same & (gallery.cams != qc)]))
        junk.append(set(names[same & (gallery.cams == qc)]))
    return good, junk


def load_aic(root: Path | str, *, val_ids: float = 0.1, seed: int = 0) -> dict[str, Split]:
    """AIC20_ReID: training images with `train_label.xml`; query/gallery from a seeded held-out id split."""
    root = Path(root)
    xml = root / "train_label.xml"
    if not (root / "image_train").is_dir() or not xml.is_file():
        raise InputError(f"AIC layout needs image_train/ and train_label.xml in {root}",
                         hint="give the AIC20_ReID folder")
    try:
        items = ET.fromstring(xml.read_bytes().decode("utf-8", "replace")).iter("Item")
        rows = [(it.get("imageName"), int(it.get("vehicleID")), int(str(it.get("cameraID")).lstrip("c")))
                for it in items]
    except (ET.ParseError, TypeError, ValueError) as exc:
        raise InputError(f"cannot read {xml}: {exc}", hint="train_label.xml needs Item imageName/vehicleID/cameraID")
    if not rows:
        raise InputError(f"{xml} lists no images", hint="check the AIC download")
    if not 0 < val_ids < 1:
        raise InputError(f"--val-ids must be in (0, 1), got {val_ids}", hint="e.g. --val-ids 0.1")
    ids = np.array([r[1] for r in rows])
    uniq = np.unique(ids)
    rng = np.random.default_rng(seed)
    held = set(rng.choice(uniq, size=max(1, int(round(val_ids * len(uniq)))), replace=False).tolist())
    train, query, gallery, seen = [], [], [], set()
    for name, vid, cam in rows:
        if vid not in held:
            train.append((name, vid, cam))
        elif (vid, cam) not in seen:
            seen.add((vid, cam))
            query.append((name, vid, cam))
        else:
            gallery.append((name, vid, cam))

    def mk(rs):
        return Split([root / "image_train" / r[0] for r in rs], np.array([r[1] for r in rs], dtype=np.int64),
                     np.array([r[2] for r in rs], dtype=np.int64))

    return {"train": mk(train), "query": mk(query), "gallery": mk(gallery)}


def aic_image_ids(names: list[str], where: str) -> np.ndarray:
    """The integer of each AIC image name (`000123.jpg` -> 123): the IDs a Track 2 submission lists.  A name
    whose stem is not a decimal integer, or two names with one integer, is an input error."""
    bad = [n for n in names if not AIC_NAME_RE.fullmatch(Path(n).stem)]
    if bad:
        raise InputError(f"{len(bad)} names in {where} are not AIC image numbers, e.g. {bad[0]!r}",
                         hint="AIC20_ReID names look like 000123.jpg (the submission lists these integers)")
    ids = np.array([int(Path(n).stem) for n in names], dtype=np.int64)
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise InputError(f"{where} holds image number {int(uniq[counts > 1][0])} more than once",
                         hint="each AIC image number must name one image")
    return ids


def load_aic_test(root: Path | str, *, allow_partial: bool = False) -> dict[str, tuple[list[Path], np.ndarray]]:
    """The AIC Track 2 test protocol: {'query': (paths, image numbers), 'gallery': (paths, image numbers)} from
    `image_query/` + `name_query.txt` and `image_test/` + `name_test.txt`, in the lists' order."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"no such folder: {root}", hint="give the AIC20_ReID folder")
    lists = "image_query/, image_test/, name_query.txt and name_test.txt"
    out = {}
    for role, folder, listing in (("query", "image_query", "name_query.txt"), ("gallery", "image_test", "name_test.txt")):
        names = _listed_names(root, folder, listing, allow_partial, "AIC", lists)
        if not names:
            raise InputError(f"{listing} lists no images", hint="check the AIC20_ReID download")
        out[role] = ([root / folder / n for n in names], aic_image_ids(names, listing))
    return out


def load_manifest(path: Path | str) -> dict[str, Split]:
    """CSV `path,id,camera,split[,viewpoint]` -> splits (train, query, gallery)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such manifest: {path}", hint="give a CSV with columns path,id,camera,split")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        cols = set(reader.fieldnames or [])
        need = {"path", "id", "camera", "split"}
        if not need <= cols:
            raise InputError(f"manifest {path.name} lacks columns {sorted(need - cols)}",
                             hint="the header must be path,id,camera,split[,viewpoint]")
        rows = list(reader)
    out = {s: ([], [], [], []) for s in ("train", "query", "gallery")}
    for i, r in enumerate(rows, start=2):
        s = r["split"].strip()
        if s not in out:
            raise InputError(f"manifest line {i}: unknown split {s!r}", hint="split is one of train, query, gallery")
        try:
            vid, cam = int(r["id"]), int(str(r["camera"]).lstrip("c"))
        except ValueError:
            raise InputError(f"manifest line {i}: id and camera must be integers", hint="e.g. 12,3") from None
        p = Path(r["path"])
        out[s][0].append(p if p.is_absolute() else path.parent / p)
        out[s][1].append(vid)
        out[s][2].append(cam)
        vp = (r.get("viewpoint") or "").strip()
        out[s][3].append(_class_index(vp, 5, f"manifest line {i}") if vp else -1)
    return {s: Split(v[0], np.array(v[1], dtype=np.int64), np.array(v[2], dtype=np.int64),
                     np.array(v[3], dtype=np.int64)) for s, v in out.items()}


def load_layout(data: Path | str, layout: str, *, allow_partial: bool = False, val_ids: float = 0.1,
                seed: int = 0) -> dict[str, Split]:
    if layout == "veri":
        return load_veri(data, allow_partial=allow_partial)
    if layout == "aic":
        return load_aic(data, val_ids=val_ids, seed=seed)
    if layout == "manifest":
        return load_manifest(data)
    raise InputError(f"unknown layout {layout!r}", hint="--layout veri|aic|manifest")


def _class_index(token: str, num_classes: int, where: str) -> int:
    names = VIEWPOINTS_8 if num_classes == 8 else VIEWPOINTS_5
    t = token.strip().lower().replace("_", "-")
    if t.lstrip("-").isdigit():
        v = int(t)
        if 0 <= v < num_classes:
            return v
    elif t in names:
        return names.index(t)
    raise InputError(f"{where}: unknown viewpoint class {token!r}",
                     hint=f"classes are 0-{num_classes - 1} or {', '.join(names)}")


def read_viewpoints(path: Path | str, fmt: str, num_classes: int = 5) -> dict[str, int]:
    """Viewpoint labels by image base name."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such viewpoint file: {path}", hint="give --viewpoints FILE")
    out = {}
    if fmt in ("span", "csv"):
        with path.open(newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header or [h.strip().lower() for h in header[:2]] != ["filename", "viewpoint"]:
                raise InputError(f"{path.name}: expected a header filename,viewpoint",
                                 hint="SPAN's dataset.csv format")
            for i, row in enumerate(reader, start=2):
                if len(row) >= 2:
                    out[Path(row[0]).name] = _class_index(row[1], num_classes, f"{path.name} line {i}")
    elif fmt == "keypoint":
        for i, line in enumerate(path.read_text().splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 42:
                raise InputError(f"{path.name} line {i}: expected img_path, 40 coordinates and an orientation",
                                 hint="VehicleReIDKeyPointData format")
            v8 = _class_index(parts[-1], 8, f"{path.name} line {i}")
            out[Path(parts[0]).name] = v8 if num_classes == 8 else int(TO_5[v8])
    else:
        raise InputError(f"unknown viewpoint format {fmt!r}", hint="--viewpoint-format span|keypoint|csv")
    return out


def attach_viewpoints(split: Split, labels: dict[str, int], *, max_unmatched: float = 0.05) -> dict:
    """Set split.viewpoints from labels; >5 % of the entries matching no image is an input error."""
    names = [p.name for p in split.paths]
    index = {n: i for i, n in enumerate(names)}
    unmatched = [n for n in labels if n not in index]
    if labels and len(unmatched) > max_unmatched * len(labels):
        raise InputError(f"{len(unmatched)} of {len(labels)} viewpoint entries match no training image "
                         f"(e.g. {unmatched[0]!r})", hint="check --viewpoints against the data folder")
    for n, v in labels.items():
        if n in index:
            split.viewpoints[index[n]] = v
    return {"labelled": int((split.viewpoints >= 0).sum()), "unmatched_entries": len(unmatched)}


def decode_images(paths: list[Path], size: int, threads: int = 8) -> tuple[torch.Tensor, list[tuple[int, str]]]:
    """uint8 N x 3 x size x size (RGB) and a list of (index, error) for unreadable files (zeros there)."""
    import cv2
    from concurrent.futures import ThreadPoolExecutor

    out = np.zeros((len(paths), size, size, 3), dtype=np.uint8)
    errors = []

    def one(i):
        try:
            buf = np.fromfile(str(paths[i]), dtype=np.uint8)
            im = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
        except OSError as exc:
            return i, str(exc)
        if im is None:
            return i, f"cannot decode image {paths[i]}"
        im = cv2.resize(im, (size, size), interpolation=cv2.INTER_LINEAR)
        out[i] = im[..., ::-1]
        return i, None

    with ThreadPoolExecutor(max_workers=max(1, threads)) as ex:
        for i, err in ex.map(one, range(len(paths))):
            if err:
                errors.append((i, err))
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous(), errors


def normalise(x: torch.Tensor) -> torch.Tensor:
    """uint8 (or float 0-255) B x 3 x H x W -> ImageNet-normalised float."""
    x = x.float()
    return (x - MEAN.to(x.device)[:, None, None]) / STD.to(x.device)[:, None, None]


def augment(x: torch.Tensor, vp: torch.Tensor, num_classes: int, gen: torch.Generator | None = None, *,
            flip: float = 0.5, pad: int = 10, erase: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """BoT training augmentation on a uint8 batch, vectorised on its device; returns (normalised, viewpoints)."""
    B, C, H, W = x.shape
    dev = x.device
    rand = lambda *s: torch.rand(*s, device=dev, generator=gen)  # noqa: E731
    xf = normalise(x)
    fl = rand(B) < flip
    xf = torch.where(fl[:, None, None, None], xf.flip(-1), xf)
    vp = torch.where(fl, flip_viewpoint(vp, num_classes), vp)
    if pad:
        xp = torch.nn.functional.pad(xf, (pad, pad, pad, pad))
        oy = (rand(B) * (2 * pad + 1)).long()
        ox = (rand(B) * (2 * pad + 1)).long()
        rows = oy[:, None] + torch.arange(H, device=dev)
        cols = ox[:, None] + torch.arange(W, device=dev)
        b = torch.arange(B, device=dev)[:, None, None]
        xf = xp.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if erase:
        area = (0.02 + rand(B) * 0.38) * H * W
        aspect = torch.exp(math.log(0.3) + rand(B) * (math.log(1 / 0.3) - math.log(0.3)))
        h = (area * aspect).sqrt().clamp(1, H - 1).long()
        w = (area / aspect).sqrt().clamp(1, W - 1).long()
        y0 = (rand(B) * (H - h + 1)).long()
        x0 = (rand(B) * (W - w + 1)).long()
        ys = torch.arange(H, device=dev)[None, :]
        xs = torch.arange(W, device=dev)[None, :]
        my = (ys >= y0[:, None]) & (ys < (y0 + h)[:, None])
        mx = (xs >= x0[:, None]) & (xs < (x0 + w)[:, None])
        m = my[:, :, None] & mx[:, None, :] & (rand(B) < erase)[:, None, None]
        xf = xf.masked_fill(m[:, None], 0.0)
    return xf.contiguous(), vp
