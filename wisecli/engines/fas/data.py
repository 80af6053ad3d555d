"""Data: dataset layouts, frame sampling, the face cache, GPU augmentation and the map targets (spec §2, §4).

Layouts (`--layout`), each giving train/dev/test lists of `Sample`s (bona fide = label 1):
* `oulu` — OULU-NPU: videos `Phone_Session_User_File.avi` anywhere under the root, or CDCN-style frame folders
  `<video>/<video>_NNN_scene.jpg` with a `.dat` box beside each frame (its first four numbers: x y w h
  [reconstructed]); `Protocols/Protocol_N/{Train,Dev,Test}.txt` (`_1…_6` for protocols 3 and 4), lines
  `+1,1_1_01_1`; file code 1 live, 2/3 print (instruments print1/print2), 4/5 display = replay.
* `siw` — SiW: `Train|Test/live|spoof/<subj>/<subj>-<sensor>-<type>-<medium>-<session>.mov`, type 1 live,
  2 print, 3 replay; a `.face` file beside a video holds one box per frame line, `x1 y1 x2 y2`
  [reconstructed]. Protocols 1 (all), 2_1–2_4 (leave one replay medium out), 3_1 (print → replay), 3_2
  (replay → print). SiW has no dev split: a seeded 20 % of training subjects is carved out. No total count is
  checked (the published size could not be verified).
* `casia` — CASIA-FASD: `train_release/1..20/`, `test_release/1..30/`, 12 `.avi` each: live `1,2,HR_1`, warped
  photo `3,4,HR_2`, cut photo `5,6,HR_3`, replay `7,8,HR_4` (some public loaders call HR_4 live: it is replay).
  Protocols: all (default), low, normal, high (quality) and warped, cut, video (one attack). Dev: a seeded 20 % of
  training subjects. Counts: 240 train and 360 test videos.
* `replay` — Replay-Attack: `{train,devel,test}/real/*.mov` and
  `…/attack/{fixed,hand}/attack_{print,mobile,highdef}_client…mov` (mobile and highdef are replay), boxes in
  `face-locations/<same relative path>.face` with lines `frame x y w h`. Protocols grandtest (default), print,
  mobile, highdef. Counts: 360 / 360 / 480.
* `manifest` — CSV `path,label,attack_type,subject` (+ optional `split,depth,box`), paths relative to the CSV;
  labels 1/0, +1/−1/−2, live/spoof, bona_fide/attack, real/fake; `box` is `x y w h`; splits train, dev (val,
  devel), test and an extra held-out `cross`. Without `split`: seeded subject-disjoint 60/20/20 splits.
* `folder` — `{live,spoof}/<video_or_subject>/*` with images or videos, one presentation per file; the group
  folder is the subject, the species is `spoof`; seeded subject-disjoint 60/20/20 splits.

Known sizes are checked (exit 2 on a mismatch unless `allow_partial`): every video a protocol lists must exist
(OULU), and CASIA/Replay-Attack totals must match.

Cache and augmentation [reconstructed where the spec is silent]: frames are decoded and cropped once into uint8
tensors; training crops are cached at k = 1.5 and `augment` zooms each to a random k ∈ [1.2, 1.5] on the device
(`grid_sample`), flips, adds a per-channel offset in [−40, 40], applies a gamma in [0.5, 1.5], random erasing
and cutout (each with p = 0.5), then normalises (x − 127.5)/128 (CDCN loaders). Training videos cache `frames`
frames each; an epoch draws one random cached frame per video (CDCN's epoch). Depth labels are read for image
inputs (a manifest `depth` column, or `--depth-root` mirroring the data tree with the same relative path and any
image suffix) and must be aligned with the input image; they are cropped with the same geometry.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from wisecli.cli.errors import InputError

LAYOUTS = ("oulu", "siw", "casia", "replay", "manifest", "folder")
VIDEO_EXT = (".avi", ".mov", ".mp4", ".mkv", ".m4v", ".webm")
IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
SPLITS = ("train", "dev", "test", "cross")
LIVE_WORDS = {"1", "+1", "live", "real", "bona_fide", "bonafide", "bona-fide", "genuine"}
ATTACK_WORDS = {"0", "-1", "-2", "spoof", "attack", "fake"}


@dataclass
class Sample:
    """One presentation: an image, a video or a folder of frames."""

    path: str
    label: int
    attack_type: str | None
    subject: str
    split: str
    kind: str = "image"
    instrument: str | None = None
    box: tuple | None = None
    box_file: str | None = None
    box_format: str | None = None
    depth: str | None = None
    medium: int | None = None

    def record(self) -> dict:
        return {"label": self.label, "attack_type": self.attack_type, "subject": self.subject,
                "instrument": self.instrument}


def kind_of(path: Path) -> str:
    if path.is_dir():
        return "frames"
    return "video" if path.suffix.lower() in VIDEO_EXT else "image"


def read_rgb(path) -> np.ndarray:
    """An image file as RGB uint8 (`wisecli.runtime.io.images`); unreadable → InputError."""
    from wisecli.runtime.io.images import read_image

    return read_image(path)


# ----------------------------------------------------------------------------------------------- layouts
def load_dataset(root, layout: str, *, protocol: str | None = None, fold: int | None = None,
                 allow_partial: bool = False, seed: int = 0, depth_root=None, warn: Callable | None = None
                 ) -> dict[str, list[Sample]]:
    """The splits of a data set in one of `LAYOUTS`."""
    warn = warn or (lambda m: None)
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}", f"use one of {', '.join(LAYOUTS)}")
    root = Path(root)
    if not root.exists():
        raise InputError(f"data root {root} does not exist", "give the folder (or manifest CSV) of the data set")
    if layout == "manifest":
        splits = _manifest(root, seed)
    else:
        if not root.is_dir():
            raise InputError(f"data root {root} is not a folder", f"--layout {layout} reads a folder")
        fn = {"oulu": _oulu, "siw": _siw, "casia": _casia, "replay": _replay, "folder": _folder}[layout]
        splits = fn(root, protocol=protocol, fold=fold, allow_partial=allow_partial, seed=seed, warn=warn)
    if depth_root is not None:
        _attach_depth(splits, root if root.is_dir() else root.parent, Path(depth_root))
    return splits


def _mismatch(what: str, allow_partial: bool, warn) -> None:
    if not allow_partial:
        raise InputError(f"count mismatch: {what}", "check the data set is complete, or pass --allow-partial")
    warn(f"count mismatch (allowed by --allow-partial): {what}")


def _check_protocol(protocol, allowed: tuple, default: str) -> str:
    p = default if protocol in (None, "") else str(protocol)
    if p not in allowed:
        raise InputError(f"unknown protocol {p!r}", f"use one of {', '.join(allowed)}")
    return p


def _index(root: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """Videos by stem and CDCN frame folders by name, found once under root."""
    videos, frames = {}, {}
    for dirpath, _, files in os.walk(root):
        d = Path(dirpath)
        for f in files:
            if f.lower().endswith(VIDEO_EXT):
                videos.setdefault(Path(f).stem, d / f)
        if any(f.startswith(d.name + "_") and f.endswith("_scene.jpg") for f in files):
            frames.setdefault(d.name, d)
    return videos, frames


def _oulu(root, *, protocol, fold, allow_partial, seed, warn):
    p = _check_protocol(protocol, ("1", "2", "3", "4"), "1")
    if p in ("3", "4"):
        if fold is None or not 1 <= int(fold) <= 6:
            raise InputError(f"OULU-NPU protocol {p} needs --fold 1..6 (got {fold})", "e.g. --fold 1")
        suffix = f"_{int(fold)}"
    else:
        if fold not in (None, 0, 1):
            raise InputError(f"OULU-NPU protocol {p} has no folds (got --fold {fold})", "leave --fold out")
        suffix = ""
    pdir = root / "Protocols" / f"Protocol_{p}"
    videos, frames = _index(root)
    out: dict[str, list[Sample]] = {}
    for split, name in (("train", "Train"), ("dev", "Dev"), ("test", "Test")):
        f = pdir / f"{name}{suffix}.txt"
        if not f.exists():
            raise InputError(f"protocol file {f} not found", "the OULU-NPU root holds Protocols/Protocol_N/*.txt")
        items, missing = [], []
        for line in f.read_text().splitlines():
            if not line.strip():
                continue
            lab, vid = parse_oulu_line(line)
            path = frames.get(vid) or videos.get(vid)
            if path is None:
                missing.append(vid)
                continue
            info = parse_oulu_name(vid)
            kind = "frames" if path.is_dir() else "video"
            items.append(Sample(str(path), 1 if lab == 1 else 0, info["attack_type"], info["subject"], split, kind,
                                info["instrument"], box_format="dat" if kind == "frames" else None))
        if missing:
            _mismatch(f"{len(missing)} of the {len(missing) + len(items)} videos listed in {f.name} are missing "
                      f"(first: {missing[0]})", allow_partial, warn)
        out[split] = items
    return out


def parse_oulu_line(line: str) -> tuple[int, str]:
    """'+1,1_1_01_1' → (1, '1_1_01_1'); −1 print, −2 display."""
    parts = [t.strip() for t in line.strip().split(",")]
    if len(parts) != 2 or parts[0] not in ("+1", "1", "-1", "-2"):
        raise InputError(f"bad OULU-NPU protocol line {line!r}", "lines look like +1,1_1_01_1")
    return int(parts[0]), parts[1]


def parse_oulu_name(name: str) -> dict:
    """Phone_Session_User_File → subject (user), attack type and instrument (file code 1 live, 2/3 print,
    4/5 display)."""
    m = re.fullmatch(r"(\d+)_(\d+)_(\d+)_(\d+)", name)
    if not m:
        raise InputError(f"bad OULU-NPU video name {name!r}", "names look like 1_3_36_4 (phone_session_user_file)")
    phone, session, user, code = (int(g) for g in m.groups())
    if code not in (1, 2, 3, 4, 5):
        raise InputError(f"bad OULU-NPU file code in {name!r}", "file codes are 1 (live) to 5")
    kind = {1: None, 2: "print", 3: "print", 4: "replay", 5: "replay"}[code]
    inst = {1: None, 2: "print1", 3: "print2", 4: "display1", 5: "display2"}[code]
    return {"phone": phone, "session": session, "subject": f"{user:02d}", "attack_type": kind, "instrument": inst,
            "file": code}


def _carve_dev(train: list[Sample], seed: int, frac: float = 0.2) -> tuple[list[Sample], list[Sample]]:
    subjects = sorted({s.subject for s in train})
    rng = np.random.default_rng(seed)
    n = max(1, int(round(frac * len(subjects)))) if len(subjects) > 1 else 0
    dev_subj = set(rng.permutation(subjects)[:n].tolist())
    tr, dv = [], []
    for s in train:
        if s.subject in dev_subj:
            s.split = "dev"
            dv.append(s)
        else:
            tr.append(s)
    return tr, dv


CASIA_CODES = {"1": ("low", None), "2": ("normal", None), "HR_1": ("high", None),
               "3": ("low", "warped"), "4": ("normal", "warped"), "HR_2": ("high", "warped"),
               "5": ("low", "cut"), "6": ("normal", "cut"), "HR_3": ("high", "cut"),
               "7": ("low", "video"), "8": ("normal", "video"), "HR_4": ("high", "video")}


def parse_casia_name(stem: str) -> dict:
    """CASIA-FASD file code → label, quality, instrument; HR_4 is the high-quality *replay*."""
    if stem not in CASIA_CODES:
        raise InputError(f"unknown CASIA-FASD file {stem!r}", "files are 1..8 and HR_1..HR_4 (.avi)")
    quality, inst = CASIA_CODES[stem]
    kind = None if inst is None else "replay" if inst == "video" else "print"
    return {"label": 1 if inst is None else 0, "quality": quality, "instrument": inst, "attack_type": kind}


def _casia(root, *, protocol, fold, allow_partial, seed, warn):
    p = _check_protocol(protocol, ("all", "low", "normal", "high", "warped", "cut", "video"), "all")
    out = {}
    for folder, split, n_subj in (("train_release", "train", 20), ("test_release", "test", 30)):
        d = root / folder
        if not d.is_dir():
            raise InputError(f"CASIA-FASD folder {d} not found", "the root holds train_release/ and test_release/")
        items = []
        for sd in sorted(d.iterdir(), key=lambda q: (len(q.name), q.name)):
            if not sd.is_dir():
                continue
            for v in sorted(sd.glob("*.avi")):
                info = parse_casia_name(v.stem)
                items.append(Sample(str(v), info["label"], info["attack_type"], f"{split}_{sd.name}", split,
                                    "video", info["instrument"]))
        if len(items) != 12 * n_subj:
            _mismatch(f"{folder} has {len(items)} videos, CASIA-FASD has {12 * n_subj}", allow_partial, warn)
        if p in ("low", "normal", "high"):
            items = [s for s in items if CASIA_CODES[Path(s.path).stem][0] == p]
        elif p in ("warped", "cut", "video"):
            items = [s for s in items if s.instrument in (None, p)]
        out[split] = items
    out["train"], out["dev"] = _carve_dev(out["train"], seed)
    return out


def parse_replay_name(rel: str) -> dict:
    """Replay-Attack relative path → label, subject, attack type (mobile/highdef = replay), support."""
    name = Path(rel).name
    m = re.search(r"client(\d+)", name)
    if not m:
        raise InputError(f"bad Replay-Attack file name {name!r}", "names contain clientNNN")
    subject = f"client{int(m.group(1)):03d}"
    if "/real/" in "/" + rel.replace(os.sep, "/"):
        return {"label": 1, "subject": subject, "attack_type": None, "instrument": None}
    a = re.match(r"attack_(print|mobile|highdef)_", name)
    if not a:
        raise InputError(f"bad Replay-Attack attack name {name!r}", "attacks are attack_{print,mobile,highdef}_...")
    inst = a.group(1)
    return {"label": 0, "subject": subject, "attack_type": "print" if inst == "print" else "replay",
            "instrument": inst}


def _replay(root, *, protocol, fold, allow_partial, seed, warn):
    p = _check_protocol(protocol, ("grandtest", "print", "mobile", "highdef"), "grandtest")
    out = {}
    for folder, split, n in (("train", "train", 360), ("devel", "dev", 360), ("test", "test", 480)):
        d = root / folder
        if not d.is_dir():
            raise InputError(f"Replay-Attack folder {d} not found", "the root holds train/, devel/ and test/")
        items = []
        for v in sorted(list(d.glob("real/*.mov")) + list(d.glob("attack/*/*.mov"))):
            rel = v.relative_to(root).as_posix()
            info = parse_replay_name(rel)
            face = root / "face-locations" / Path(rel).with_suffix(".face")
            items.append(Sample(str(v), info["label"], info["attack_type"], info["subject"], split, "video",
                                info["instrument"], box_file=str(face) if face.exists() else None,
                                box_format="frame_xywh"))
        if len(items) != n:
            _mismatch(f"{folder} has {len(items)} videos, Replay-Attack has {n}", allow_partial, warn)
        if p != "grandtest":
            items = [s for s in items if s.instrument in (None, p)]
        out[split] = items
    return out


def parse_siw_name(name: str) -> dict:
    """<subj>-<sensor>-<type>-<medium>-<session>: type 1 live, 2 print, 3 replay."""
    m = re.fullmatch(r"(\d+)-(\d+)-(\d+)-(\d+)-(\d+)", name)
    if not m:
        raise InputError(f"bad SiW video name {name!r}", "names look like 006-2-3-4-1 (subj-sensor-type-medium-session)")
    subj, sensor, typ, medium, session = (int(g) for g in m.groups())
    if typ not in (1, 2, 3):
        raise InputError(f"bad SiW type in {name!r}", "type 1 live, 2 print, 3 replay")
    kind = {1: None, 2: "print", 3: "replay"}[typ]
    return {"subject": f"{subj:03d}", "label": 1 if typ == 1 else 0, "attack_type": kind,
            "instrument": None if typ == 1 else f"{kind}{medium}", "medium": medium}


def _siw(root, *, protocol, fold, allow_partial, seed, warn):
    p = _check_protocol(protocol, ("1", "2_1", "2_2", "2_3", "2_4", "3_1", "3_2"), "1")
    out = {}
    for folder, split in (("Train", "train"), ("Test", "test")):
        d = root / folder
        if not d.is_dir():
            raise InputError(f"SiW folder {d} not found", "the root holds Train/ and Test/")
        items = []
        for v in sorted(d.glob("*/*/*.mov")):
            info = parse_siw_name(v.stem)
            face = v.with_suffix(".face")
            items.append(Sample(str(v), info["label"], info["attack_type"], info["subject"], split, "video",
                                info["instrument"], box_file=str(face) if face.exists() else None,
                                box_format="x1y1x2y2", medium=info["medium"]))
        if p.startswith("2_"):
            k = int(p[2])
            keep = (lambda s: s.attack_type != "print" and s.medium != k) if split == "train" else \
                (lambda s: s.attack_type is None or (s.attack_type == "replay" and s.medium == k))
            items = [s for s in items if keep(s)]
        elif p.startswith("3_"):
            train_kind, test_kind = ("print", "replay") if p == "3_1" else ("replay", "print")
            want = train_kind if split == "train" else test_kind
            items = [s for s in items if s.attack_type in (None, want)]
        out[split] = items
    out["train"], out["dev"] = _carve_dev(out["train"], seed)
    return out


def parse_label(token: str, where: str) -> int:
    t = str(token).strip().lower()
    if t in LIVE_WORDS:
        return 1
    if t in ATTACK_WORDS:
        return 0
    raise InputError(f"unknown label {token!r} ({where})", "labels are 1/0, live/spoof, bona_fide/attack or +1/-1")


def _subject_splits(samples: list[Sample], seed: int) -> dict[str, list[Sample]]:
    subjects = sorted({s.subject for s in samples})
    rng = np.random.default_rng(seed)
    perm = rng.permutation(subjects).tolist()
    n = len(perm)
    n_test = max(1, int(round(0.2 * n))) if n >= 3 else 0
    n_dev = max(1, int(round(0.2 * n))) if n >= 3 else 0
    which = {s: "test" for s in perm[:n_test]} | {s: "dev" for s in perm[n_test:n_test + n_dev]}
    out = {k: [] for k in ("train", "dev", "test")}
    for s in samples:
        s.split = which.get(s.subject, "train")
        out[s.split].append(s)
    return out


def _manifest(path: Path, seed: int) -> dict[str, list[Sample]]:
    if path.is_dir():
        raise InputError(f"--layout manifest needs a CSV file, {path} is a folder", "give the manifest .csv path")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"manifest {path} is not a CSV text file ({type(exc).__name__})",
                         "give a UTF-8 CSV with the columns path,label,attack_type,subject") from None
    if not rows:
        raise InputError(f"manifest {path} is empty", "the first line names the columns path,label,attack_type,subject")
    header = [h.strip().lower() for h in rows[0]]
    missing = [c for c in ("path", "label", "attack_type", "subject") if c not in header]
    if missing:
        raise InputError(f"manifest {path.name} lacks column(s) {', '.join(missing)}",
                         "columns: path,label,attack_type,subject (+ optional split,depth,box)")
    col = {h: i for i, h in enumerate(header)}
    base = path.parent
    samples = []
    for n, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        get = lambda c: row[col[c]].strip() if c in col and col[c] < len(row) else ""  # noqa: E731
        where = f"{path.name} line {n}"
        label = parse_label(get("label"), where)
        at = get("attack_type") or None
        if label == 0 and not at:
            raise InputError(f"attack without attack_type ({where})", "give print, replay, ... for every attack")
        p = Path(get("path"))
        p = p if p.is_absolute() else base / p
        split = get("split").lower()
        split = {"val": "dev", "devel": "dev", "validation": "dev", "eval": "test"}.get(split, split)
        if split and split not in SPLITS:
            raise InputError(f"unknown split {split!r} ({where})", "splits are train, dev, test (and cross)")
        box = None
        if get("box"):
            try:
                box = tuple(float(v) for v in re.split(r"[\s;]+", get("box")) if v)
                assert len(box) == 4
            except (ValueError, AssertionError):
                raise InputError(f"bad box {get('box')!r} ({where})", "boxes are 'x y w h'") from None
        depth = get("depth")
        depth = str(depth if Path(depth).is_absolute() else base / depth) if depth else None
        samples.append(Sample(str(p), label, at if label == 0 else None, get("subject") or p.stem, split,
                              kind_of(p), None, box, depth=depth))
    if not samples:
        raise InputError(f"manifest {path} has no rows", "add one row per image or video")
    if "split" in col and all(s.split for s in samples):
        out = {k: [] for k in ("train", "dev", "test")}
        for s in samples:
            out.setdefault(s.split, []).append(s)
        return out
    return _subject_splits(samples, seed)


def _folder(root, *, protocol, fold, allow_partial, seed, warn):
    samples = []
    for cls, label in (("live", 1), ("spoof", 0)):
        d = root / cls
        if not d.is_dir():
            raise InputError(f"folder layout needs {d}", "the root holds live/<subject>/* and spoof/<subject>/*")
        for group in sorted(q for q in d.iterdir() if q.is_dir()):
            for f in sorted(group.iterdir()):
                if f.suffix.lower() in IMAGE_EXT + VIDEO_EXT:
                    samples.append(Sample(str(f), label, None if label else "spoof", group.name, "", kind_of(f)))
    if not samples:
        raise InputError(f"no images or videos under {root}/live or {root}/spoof", "see wise fas info for layouts")
    return _subject_splits(samples, seed)


def _attach_depth(splits, data_root: Path, depth_root: Path) -> None:
    if not depth_root.is_dir():
        raise InputError(f"--depth-root {depth_root} is not a folder", "give the folder of depth maps")
    for items in splits.values():
        for s in items:
            if s.label != 1 or s.kind != "image" or s.depth:
                continue
            try:
                rel = Path(s.path).relative_to(data_root)
            except ValueError:
                continue
            for ext in IMAGE_EXT:
                c = (depth_root / rel).with_suffix(ext)
                if c.exists():
                    s.depth = str(c)
                    break


# ----------------------------------------------------------------------------------------------- frames
def frame_indices(n_frames: int, n: int) -> list[int]:
    """n uniformly spaced indices (centres of n equal segments), as CDCN samples video frames."""
    if n_frames <= 0:
        return []
    n = min(n, n_frames)
    return sorted({int((i + 0.5) * n_frames / n) for i in range(n)})


def load_boxes(sample: Sample) -> dict[int, tuple]:
    """Per-frame boxes of a box file (frame → x, y, w, h)."""
    if not sample.box_file:
        return {}
    out = {}
    for i, line in enumerate(Path(sample.box_file).read_text().splitlines()):
        v = [float(t) for t in re.split(r"[\s,]+", line.strip()) if t]
        if sample.box_format == "frame_xywh" and len(v) >= 5:
            if v[3] > 0 and v[4] > 0:
                out[int(v[0])] = (v[1], v[2], v[3], v[4])
        elif sample.box_format == "x1y1x2y2" and len(v) >= 4:
            if v[2] > v[0] and v[3] > v[1]:
                out[i] = (v[0], v[1], v[2] - v[0], v[3] - v[1])
    return out


def read_frames(sample: Sample, n: int) -> list[dict]:
    """Up to n uniformly spaced frames: [{'index', 'image' (RGB) or None, 'box' (from files) or None, 'error'}].

    Videos seek to each index (`CAP_PROP_POS_FRAMES`) instead of decoding every frame."""
    import cv2

    p = Path(sample.path)
    if sample.kind == "image":
        return [{"index": 0, "image": read_rgb(p), "box": sample.box, "error": None}]
    if sample.kind == "frames":
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXT)
        out = []
        for i in frame_indices(len(files), n):
            f = files[i]
            box = None
            dat = f.with_suffix(".dat")
            if dat.exists():
                v = [float(t) for t in re.split(r"[\s,]+", dat.read_text().strip()) if t][:4]
                box = tuple(v) if len(v) == 4 and v[2] > 0 and v[3] > 0 else None
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            out.append({"index": i, "image": None if img is None else cv2.cvtColor(img, cv2.COLOR_BGR2RGB),
                        "box": box, "error": None if img is not None else "unreadable frame"})
        return out
    cap = cv2.VideoCapture(str(p))
    if not cap.isOpened():
        raise InputError(f"cannot open video {p}", "check the file is a readable .avi/.mov/.mp4")
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        boxes = load_boxes(sample)
        out = []
        for i in frame_indices(total, n):
            cap.set(cv2.CAP_PROP_POS_FRAMES, i)
            ok, frame = cap.read()
            out.append({"index": i, "image": cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if ok else None,
                        "box": boxes.get(i), "error": None if ok else "unreadable frame"})
        if not out:
            raise InputError(f"video {p} has no frames", "check the file")
        return out
    finally:
        cap.release()


# ----------------------------------------------------------------------------------------------- targets
def face_targets(fw: torch.Tensor, fh: torch.Tensor, m: int, *, need_depth: bool = False, sub: int = 4):
    """Face-region mask and template depth on an m×m grid for faces whose box spans fractions (fw, fh) of the
    crop, centred.

    Mask: the ellipse inscribed in the box, each cell's covered fraction (sub×sub samples) binarised at 0.5.
    Template depth (spec §4): z = √(1 − (x/a)² − (y/b)²) on the ellipse plus a Gaussian nose ridge (amplitude
    0.15, σ_x = 0.12a, σ_y = 0.35b, centred 0.05b above the centre), rescaled to [0, 1] [reconstructed]."""
    dev = fw.device
    t = (torch.arange(m * sub, device=dev, dtype=torch.float32) + 0.5) / (m * sub) - 0.5
    y, x = t[:, None], t[None, :]
    a = (fw.float() / 2).view(-1, 1, 1).clamp_min(1e-6)
    b = (fh.float() / 2).view(-1, 1, 1).clamp_min(1e-6)
    r2 = (x / a) ** 2 + (y / b) ** 2
    inside = (r2 <= 1).float()
    mask = (F.avg_pool2d(inside[:, None], sub) >= 0.5).float()
    if not need_depth:
        return mask, None
    z = torch.sqrt((1 - r2).clamp_min(0)) + 0.15 * torch.exp(-0.5 * (x / (0.12 * a)) ** 2
                                                            - 0.5 * ((y + 0.05 * b) / (0.35 * b)) ** 2)
    z = (z * inside / 1.15).clamp(0, 1)
    return mask, F.avg_pool2d(z[:, None], sub) * mask


# ----------------------------------------------------------------------------------------------- cache
@dataclass
class FaceCache:
    """Face crops of one split, decoded and cropped once (uint8), with what the targets need."""

    crops: torch.Tensor            # (N, 3, R, R) uint8
    owner: torch.Tensor            # (N,) index of the presentation each crop belongs to
    extent: torch.Tensor           # (N, 2) face box width/height as fractions of the crop
    kc: torch.Tensor               # (N,) crop scale k of the cached crop
    depth: torch.Tensor | None     # (N, 1, R, R) uint8 user depth, or None
    has_depth: torch.Tensor        # (N,) bool
    samples: list[Sample]
    frame_index: list[int]
    no_face: list[int] = field(default_factory=list)   # presentations with no usable frame
    frames_no_face: dict = field(default_factory=dict)  # presentation → frames skipped

    def to(self, device):
        self.crops = self.crops.to(device)
        self.owner, self.extent, self.kc = self.owner.to(device), self.extent.to(device), self.kc.to(device)
        self.has_depth = self.has_depth.to(device)
        if self.depth is not None:
            self.depth = self.depth.to(device)
        return self


def _prepare(sample: Sample, detector, frames: int, k: float, res: int, want_depth: bool) -> dict:
    rows, skipped, errors = [], 0, []
    for fr in read_frames(sample, frames):
        if fr["image"] is None:
            errors.append(fr["index"])
            continue
        img = fr["image"]
        box = detector.detect(img, fr["box"] if fr["box"] is not None else sample.box)
        if box is None:
            skipped += 1
            continue
        kk = 1.0 if detector.name == "none" else k
        from wisecli.engines.fas.detect import box_extent, crop_face

        crop = crop_face(img, box, kk, res)
        dep = None
        if want_depth and sample.depth:
            import cv2

            d = cv2.imread(sample.depth, cv2.IMREAD_GRAYSCALE)
            if d is None:
                raise InputError(f"cannot read depth map {sample.depth}", "depth maps are grey images")
            d = cv2.resize(d, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
            dep = crop_face(d, box, kk, res)
        rows.append((fr["index"], crop, box_extent(box, kk), kk, dep))
    return {"rows": rows, "skipped": skipped, "errors": errors}


def build_cache(samples: list[Sample], detector, *, frames: int, train: bool, input_size: int,
                want_depth: bool = False, workers: int = 2, progress=None) -> FaceCache:
    """Detect and crop `frames` frames of every presentation once (a thread pool overlaps decoding and Haar)."""
    k = 1.5 if train else 1.3
    res = int(np.ceil(input_size * 1.5 / 1.2)) if train else input_size
    if detector.name == "none":
        res = input_size
    crops, owner, extent, kc, depth, has_depth, fidx = [], [], [], [], [], [], []
    no_face, frames_no_face = [], {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = pool.map(lambda s: _prepare(s, detector, frames, k, res, want_depth), samples)
        for i, r in enumerate(results):
            if r["skipped"]:
                frames_no_face[i] = r["skipped"]
            if not r["rows"]:
                no_face.append(i)
            for idx, crop, ext, kk, dep in r["rows"]:
                crops.append(crop if crop.ndim == 3 else np.repeat(crop[..., None], 3, axis=2))
                owner.append(i)
                extent.append(ext)
                kc.append(kk)
                fidx.append(idx)
                has_depth.append(dep is not None)
                depth.append(dep if dep is not None else np.zeros((res, res), np.uint8))
            if progress:
                progress()
    if not crops:
        raise InputError("no face found in any frame of the split", "check the data, or try --detector lbp|none")
    t = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()
    return FaceCache(t, torch.tensor(owner), torch.tensor(extent, dtype=torch.float32),
                     torch.tensor(kc, dtype=torch.float32),
                     torch.from_numpy(np.stack(depth))[:, None] if want_depth and any(has_depth) else None,
                     torch.tensor(has_depth), samples, fidx, no_face, frames_no_face)


def epoch_frames(cache: FaceCache, gen: torch.Generator) -> torch.Tensor:
    """One random cached frame per presentation (CDCN's epoch), in random order."""
    owner = cache.owner.cpu()
    r = torch.rand(owner.numel(), generator=gen)
    # the frame with the largest random key within each owner
    order = torch.argsort(owner * 2 + r)  # owners ascending, keys ascending inside
    last = torch.ones_like(owner, dtype=torch.bool)
    so = owner[order]
    last[:-1] = so[:-1] != so[1:]
    pick = order[last]
    return pick[torch.randperm(pick.numel(), generator=gen)]


def make_targets(cfg: dict, labels: torch.Tensor, extent: torch.Tensor, depth_crops: torch.Tensor | None,
                 has_depth: torch.Tensor) -> torch.Tensor | None:
    """Map targets on the map grid: masks (face or full) or depth; zeros for attacks."""
    kind = cfg["target_kind"]
    if kind is None:
        return None
    m = int(cfg["map_size"])
    live = labels.float().view(-1, 1, 1, 1)
    if kind == "mask":
        if cfg.get("mask_label", "face") == "full":
            return live.expand(-1, 1, m, m).contiguous()
        mask, _ = face_targets(extent[:, 0], extent[:, 1], m)
        return mask * live
    mask, tmpl = face_targets(extent[:, 0], extent[:, 1], m, need_depth=True)
    if depth_crops is not None:
        user = F.adaptive_avg_pool2d(depth_crops.float() / 255, m)
        tmpl = torch.where(has_depth.view(-1, 1, 1, 1), user, tmpl)
    return tmpl * live


def augment(crops: torch.Tensor, kc: torch.Tensor, extent: torch.Tensor, depth: torch.Tensor | None, *,
            size: int, gen: torch.Generator | None, train: bool):
    """Batched on-device augmentation (training) or plain normalisation (evaluation).

    Returns (x normalised (B,3,size,size), extent of the face in the final crop (B,2), depth crops or None)."""
    x = crops.float()
    b = x.shape[0]
    dev = x.device
    if not train:
        if x.shape[-1] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return (x - 127.5) / 128, extent, depth

    def rnd(*shape):
        return torch.rand(*shape, generator=gen, device=gen.device if gen is not None else "cpu").to(dev)

    lo = torch.full_like(kc, 1.2)
    hi = torch.minimum(torch.full_like(kc, 1.5), kc)
    lo = torch.minimum(lo, hi)
    k = lo + (hi - lo) * rnd(b)
    zoom = k / kc
    flip = torch.where(rnd(b) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0] = zoom * flip
    theta[:, 1, 1] = zoom
    grid = F.affine_grid(theta, (b, 3, size, size), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if depth is not None:
        depth = F.grid_sample(depth.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    ext = extent * (kc / k).unsqueeze(1)
    on = rnd(b, 1, 1, 1) < 0.5
    x = torch.where(on, x + (rnd(b, 3, 1, 1) * 80 - 40), x).clamp(0, 255)
    gamma = 0.5 + rnd(b, 1, 1, 1)
    x = torch.where(rnd(b, 1, 1, 1) < 0.5, 255 * (x / 255) ** gamma, x)
    yy = torch.arange(size, device=dev).view(1, 1, size, 1).float()
    xx = torch.arange(size, device=dev).view(1, 1, 1, size).float()
    # random erasing: a rectangle of 2–20 % of the area and aspect 0.3–3.3, filled with random colours
    area = (0.02 + 0.18 * rnd(b)) * size * size
    aspect = torch.exp(torch.log(torch.tensor(0.3)) + rnd(b) * (torch.log(torch.tensor(3.3)) - torch.log(torch.tensor(0.3))))
    eh = (area * aspect).sqrt().clamp(1, size)
    ew = (area / aspect).sqrt().clamp(1, size)
    ey, ex = rnd(b) * (size - eh), rnd(b) * (size - ew)
    rect = ((yy >= ey.view(-1, 1, 1, 1)) & (yy < (ey + eh).view(-1, 1, 1, 1)) &
            (xx >= ex.view(-1, 1, 1, 1)) & (xx < (ex + ew).view(-1, 1, 1, 1)))
    x = torch.where(rect & (rnd(b, 1, 1, 1) < 0.5), rnd(b, 3, 1, 1) * 255, x)
    # cutout: a square of side size/4 at a random centre, set to the mid grey (0 after normalisation)
    c = size / 4
    cy, cx = rnd(b) * size, rnd(b) * size
    sq = (((yy - cy.view(-1, 1, 1, 1)).abs() < c / 2) & ((xx - cx.view(-1, 1, 1, 1)).abs() < c / 2))
    x = torch.where(sq & (rnd(b, 1, 1, 1) < 0.5), torch.full_like(x, 127.5), x)
    return (x - 127.5) / 128, ext, depth
