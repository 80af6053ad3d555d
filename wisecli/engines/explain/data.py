"""Readers for `wise explain evaluate`: bounding boxes (Pascal VOC XML folder, COCO instances JSON, CSV/JSONL) and
maps written by `run` or any other tool.

Boxes come back as {image stem: [{"box": (x0, y0, x1, y1), "class": name, "difficult": bool}]} in original pixels,
0-based and inclusive: VOC's 1-based corners are shifted by one; COCO's (x, y, w, h) become (x, y, x+w−1, y+h−1);
CSV/JSONL `image,x0,y0,x1,y1,class[,difficult]` are taken as they are. The image column and VOC's `filename`
are matched by stem. A class is a model class name or id.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from wisecli.cli.errors import InputError

BOX_HINT = "give a VOC XML folder, a COCO instances JSON, or CSV/JSONL image,x0,y0,x1,y1,class[,difficult]"


def _stem(name: str) -> str:
    return Path(str(name)).stem


def _voc(folder: Path) -> dict:
    import xml.etree.ElementTree as ET

    out: dict[str, list] = {}
    files = sorted(folder.glob("*.xml"))
    if not files:
        raise InputError(f"no .xml files in box folder {folder}", hint=BOX_HINT)
    for f in files:
        try:
            root = ET.parse(f).getroot()
        except (ET.ParseError, OSError) as exc:
            raise InputError(f"cannot read VOC file {f}: {exc}", hint=BOX_HINT) from None
        stem = _stem(root.findtext("filename") or f.name)
        for obj in root.findall("object"):
            bb = obj.find("bndbox")
            try:
                box = tuple(float(bb.findtext(k)) - 1 for k in ("xmin", "ymin", "xmax", "ymax"))
            except (AttributeError, TypeError, ValueError):
                raise InputError(f"{f}: an object without a numeric bndbox", hint=BOX_HINT) from None
            out.setdefault(stem, []).append({"box": box, "class": (obj.findtext("name") or "").strip(),
                                             "difficult": (obj.findtext("difficult") or "0").strip() == "1"})
    return out


def _coco(doc: dict, path: Path) -> dict:
    try:
        images = {im["id"]: _stem(im["file_name"]) for im in doc["images"]}
        cats = {c["id"]: c["name"] for c in doc.get("categories", [])}
        out: dict[str, list] = {}
        for a in doc["annotations"]:
            x, y, w, h = (float(v) for v in a["bbox"])
            out.setdefault(images[a["image_id"]], []).append(
                {"box": (x, y, x + w - 1, y + h - 1), "class": str(cats.get(a["category_id"], a["category_id"])),
                 "difficult": bool(a.get("iscrowd", 0))})
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{path}: not a COCO instances file (images, annotations, categories)", hint=BOX_HINT) from None
    return out


def _row(values: list, path: Path, line: int) -> tuple[str, dict]:
    if len(values) < 6:
        raise InputError(f"{path}:{line}: need image,x0,y0,x1,y1,class[,difficult]", hint=BOX_HINT)
    try:
        box = tuple(float(v) for v in values[1:5])
    except ValueError:
        raise InputError(f"{path}:{line}: box corners must be numbers", hint=BOX_HINT) from None
    if not all(np.isfinite(box)) or box[2] < box[0] or box[3] < box[1]:
        raise InputError(f"{path}:{line}: a box needs finite x0 <= x1, y0 <= y1", hint=BOX_HINT)
    diff = str(values[6]).strip().lower() in ("1", "true", "yes") if len(values) > 6 else False
    return _stem(values[0]), {"box": box, "class": str(values[5]).strip(), "difficult": diff}


def read_boxes(path) -> dict:
    """{stem: [box records]} from a VOC folder, COCO JSON, CSV or JSONL (see the module docstring)."""
    path = Path(path)
    if path.is_dir():
        return _voc(path)
    if not path.is_file():
        raise InputError(f"box file not found: {path}", hint=BOX_HINT)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise InputError(f"cannot read box file {path}", hint=BOX_HINT) from None
    out: dict[str, list] = {}
    if path.suffix.lower() == ".json":
        try:
            return _coco(json.loads(text), path)
        except json.JSONDecodeError:
            raise InputError(f"{path}: not valid JSON", hint=BOX_HINT) from None
    if path.suffix.lower() == ".jsonl":
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                vals = [r["image"], r["x0"], r["y0"], r["x1"], r["y1"], r["class"], r.get("difficult", 0)]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise InputError(f"{path}:{i}: need a JSON object with image,x0,y0,x1,y1,class", hint=BOX_HINT) from None
            stem, rec = _row(vals, path, i)
            out.setdefault(stem, []).append(rec)
        return out
    rows = list(csv.reader(io.StringIO(text)))
    if rows and rows[0] and rows[0][0].strip().lower() == "image":
        rows = rows[1:]
    for i, vals in enumerate(rows, 1):
        if not vals:
            continue
        stem, rec = _row(vals, path, i)
        out.setdefault(stem, []).append(rec)
    if not out:
        raise InputError(f"{path}: no boxes", hint=BOX_HINT)
    return out


def class_boxes(recs: list, classes: list[str], h: int, w: int, stem: str, warn=None) -> dict[int, list]:
    """{class id: [boxes]} of one image, all-difficult classes skipped; unknown classes and boxes wholly outside
    the image are InputError, boxes partly outside are clipped with a warning."""
    by: dict[int, list] = {}
    diff: dict[int, list[bool]] = {}
    for r in recs:
        name = r["class"]
        if name in classes:
            cid = classes.index(name)
        elif name.isdigit() and int(name) < len(classes):
            cid = int(name)
        else:
            raise InputError(f"boxes of {stem}: unknown class {name!r}", hint="box classes must be the model's class "
                             "names or ids")
        x0, y0, x1, y1 = r["box"]
        if x1 < 0 or y1 < 0 or x0 > w - 1 or y0 > h - 1:
            raise InputError(f"boxes of {stem}: {r['box']} lies wholly outside the {w}x{h} image",
                             hint="boxes are in the original image's pixels")
        if x0 < 0 or y0 < 0 or x1 > w - 1 or y1 > h - 1:
            if warn is not None:
                warn(f"boxes of {stem}: {r['box']} is partly outside the {w}x{h} image; clipped")
            x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w - 1, x1), min(h - 1, y1)
        by.setdefault(cid, []).append((x0, y0, x1, y1))
        diff.setdefault(cid, []).append(r["difficult"])
    return {c: b for c, b in by.items() if not all(diff[c])}


def read_map(path: Path) -> np.ndarray:
    """A saliency map file: .npy [H, W], [C, H, W] or [K, C, H, W], finite."""
    try:
        a = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"cannot read map {path}: {str(exc)[:100] or type(exc).__name__}", hint="give .npy maps") from None
    if a.ndim not in (2, 3, 4) or a.dtype.kind not in "biuf" or a.size == 0:
        raise InputError(f"map {path} has shape {a.shape}; need [H, W], [C, H, W] or [K, C, H, W]",
                         hint="one map per image, named by the image's stem")
    if not np.isfinite(a).all():
        raise InputError(f"map {path} has NaN/Inf values", hint="check the tool that wrote it")
    return a.astype(np.float32)
