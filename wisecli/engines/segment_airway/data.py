"""Training data (spec §2.3, §4): pair discovery and checks, the per-case cache, and the patch sampler.

Layouts: `images/` + `labels/` matched by name, ATM'22 `imagesTr/` + `labelsTr/` (a `_0000` suffix is fine),
or a CSV with `image,label` columns (relative to the CSV). Labels binarise at > 0; image and label geometry
must match (size exactly, spacing/origin/direction within 1e-4); every pair is checked before training and all
invalid ones are listed in one error.

Per-case cache (`<run>/cache/<name>/`): the canonical-order, lung-cropped int16 HU (`image.npy`), label
(`label.npy`), the distance map of `loss.dist_mode` (`q.npy` = `loss.skeleton_q` or `e_nearest.npy` =
`loss.nearest_e`, float16) as memory-mappable arrays, and `meta.npz` with the
skeleton voxels and the small-branch voxels. Small branches: mean Ø < 2 mm, or the thinnest quarter of the
branches when that set is larger [reconstructed].

Sampler [after the public `dataload_train.py`, fixed]: `patches_per_case` patches per case per epoch, half
small-airway crops (with probability 0.5 redrawn until the crop holds small-branch voxels and ≤ 200 other
airway voxels, at most 50 draws, else centred on a small-branch voxel), half hard-skeleton crops (centred near
a skeleton voxel missed by the current model's LCC prediction; all skeleton voxels until the first refresh).
Every draw comes from a generator seeded by (seed, rank, worker, epoch), so workers differ and `--seed`
reproduces.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from wisecli.cli.errors import InputError

IMAGE_EXT = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr")
VOLUME_EXT = IMAGE_EXT


def is_series_folder(p: Path) -> bool:
    """A folder is one input (a DICOM series) when it holds files and no sub-folders or volume files (the
    layout rule of batch inputs; the DICOM itself is read by `runtime.io.volumes`)."""
    try:
        files = [f for f in Path(p).iterdir() if not f.name.startswith(".")]
    except OSError:
        return False
    return bool(files) and all(f.is_file() and not f.name.lower().endswith(VOLUME_EXT) for f in files)


class ArrayVolume:
    """A volume held in memory with the attributes of `runtime.io.volumes.Volume` (phantoms in demos, benchmarks)."""

    def __init__(self, array, spacing, origin, path):
        self.array, self.spacing, self.origin = array, spacing, origin
        self.direction, self.path = (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0), path


def read_airway_mask(path: Path):
    """Read an airway mask for `phantom --from-mask`: a 3D volume (file or DICOM folder) with every axis of at
    least 16 voxels and some voxel > 0; InputError (exit 2) otherwise."""
    from wisecli.runtime.io.volumes import read_volume

    vol = read_volume(path)
    arr = np.asarray(vol.array)
    if arr.ndim != 3 or len(vol.spacing) != 3 or min(arr.shape) < 16:
        raise InputError(f"{path}: not a 3D mask with every axis ≥ 16 voxels (shape {arr.shape[::-1]})",
                         hint="give a 3D airway label volume such as an ATM'22 labelsTr file")
    if not (arr > 0).any():
        raise InputError(f"{path}: the mask is empty (no voxel > 0)",
                         hint="give a mask whose airway voxels are > 0")
    return vol


def pair_predictions(preds: list[Path], ref=None, pairs_csv=None) -> list[tuple[Path, Path | None]]:
    """(prediction, reference) pairs by name (extensions and a trailing _airway/_0000 ignored) or a CSV."""
    if pairs_csv is not None:
        try:
            with open(pairs_csv, newline="") as fh:
                rows = list(csv.DictReader(fh))
        except FileNotFoundError:
            raise InputError(f"--pairs file not found: {pairs_csv}", hint="a CSV with pred,ref columns") from None
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise InputError(f"cannot read --pairs {pairs_csv}: {exc}", hint="a CSV with pred,ref columns") from None
        if not rows or not {"pred", "ref"} <= set(rows[0]):
            raise InputError(f"{pairs_csv}: needs the columns pred,ref", hint="one row per prediction")
        base = Path(pairs_csv).parent
        return [(base / r["pred"], base / r["ref"]) for r in rows]
    if ref is None:
        raise InputError("no reference given", hint="pass --ref FILE|DIR or --pairs CSV")
    ref = Path(ref)
    if not ref.exists():
        raise InputError(f"reference not found: {ref}", hint="check --ref")
    if ref.is_file():
        if len(preds) != 1:
            raise InputError("--ref is one file but several predictions were given",
                             hint="pass a reference folder (paired by name) or --pairs CSV")
        return [(preds[0], ref)]
    refs = {}
    for p in sorted(ref.iterdir()):
        if p.name.lower().endswith(VOLUME_EXT) or (p.is_dir() and is_series_folder(p)):
            refs[_name(p)] = p
    return [(p, refs.get(_name(p))) for p in preds]


def _name(p: Path) -> str:
    n = p.name
    for e in IMAGE_EXT:
        if n.lower().endswith(e):
            n = n[: -len(e)]
            break
    for suf in ("_0000", "_airway"):
        if n.endswith(suf):
            n = n[: -len(suf)]
    return n


def _images_in(folder: Path) -> list[Path]:
    out = [p for p in sorted(folder.iterdir()) if p.is_file() and p.name.lower().endswith(IMAGE_EXT)]
    out += [p for p in sorted(folder.iterdir()) if p.is_dir()]  # DICOM series folders
    return out


def discover_pairs(sources: list[str]) -> list[tuple[Path, Path]]:
    """(image, label) pairs from folders in any of the three layouts or CSV files."""
    pairs: list[tuple[Path, Path]] = []
    problems: list[str] = []
    for s in sources:
        src = Path(s)
        if src.is_file() and src.suffix.lower() == ".csv":
            with open(src, newline="") as fh:
                rows = list(csv.DictReader(fh))
            if not rows or not {"image", "label"} <= set(rows[0]):
                problems.append(f"{src}: needs the columns image,label")
                continue
            pairs += [((src.parent / r["image"]), (src.parent / r["label"])) for r in rows]
            continue
        if not src.is_dir():
            problems.append(f"{src}: not a folder or CSV")
            continue
        for im_dir, lb_dir in (("images", "labels"), ("imagesTr", "labelsTr")):
            if (src / im_dir).is_dir() and (src / lb_dir).is_dir():
                labels = {_name(p): p for p in _images_in(src / lb_dir)}
                for im in _images_in(src / im_dir):
                    lb = labels.get(_name(im))
                    if lb is None:
                        problems.append(f"{im}: no label named {_name(im)} in {src / lb_dir}")
                    else:
                        pairs.append((im, lb))
                break
        else:
            problems.append(f"{src}: no images/+labels/ or imagesTr/+labelsTr/ inside")
    if problems:
        raise InputError(f"invalid training data: {'; '.join(problems)}",
                         hint="pair images and labels by name, or list them in a CSV with image,label")
    if not pairs:
        raise InputError("no training pairs found", hint="point at a folder with images/ and labels/")
    return pairs


def check_pairs(pairs) -> list:
    """Read every pair once (one at a time, nothing kept in memory); all readability, geometry and
    empty-label problems are reported together (InputError). Returns the pairs."""
    from wisecli.runtime.io.volumes import read_volume

    problems, ok = [], []
    for im, lb in pairs:
        try:
            a = read_volume(im)
            b = read_volume(lb)
        except InputError as e:
            problems.append(f"{im.name}: {e.message}")
            continue
        why = None
        if a.array.ndim != 3 or min(a.array.shape) < 16:
            why = f"not a 3D volume with every axis ≥ 16 ({a.array.shape})"
        elif a.array.shape != b.array.shape:
            why = f"size {a.array.shape[::-1]} vs label {b.array.shape[::-1]}"
        elif not (np.allclose(a.spacing, b.spacing, atol=1e-4) and np.allclose(a.origin, b.origin, atol=1e-4)
                  and np.allclose(a.direction, b.direction, atol=1e-4)):
            why = "image and label geometry differ (spacing, origin or direction)"
        elif not (b.array > 0).any():
            why = "empty label"
        if why:
            problems.append(f"{im.name}: {why}")
        else:
            ok.append((im, lb))
        del a, b
    if problems:
        raise InputError(f"{len(problems)} invalid training pair(s): " + "; ".join(problems),
                         hint="fix or remove the listed pairs (labels must match their image's geometry)")
    return ok


@dataclass
class Case:
    name: str
    folder: Path
    spacing_zyx: tuple
    skeleton: np.ndarray      # (K, 3) voxel indices
    small: np.ndarray         # (M, 3) small-branch voxel indices
    shape: tuple
    weight_file: str = "q.npy"

    def arrays(self):
        return (np.load(self.folder / "image.npy", mmap_mode="r"), np.load(self.folder / "label.npy", mmap_mode="r"),
                np.load(self.folder / self.weight_file, mmap_mode="r"))


WEIGHT_FILES = {"skeleton": "q.npy", "nearest": "e_nearest.npy"}


def build_case(name: str, vol, lab, cache_root: Path, dist_mode: str = "skeleton") -> Case:
    """Canonical order, lung crop, int16 HU, label, the distance map of `dist_mode` (q for `skeleton`, e for
    `nearest`, see `loss`), skeleton, parse and small branches, cached on disk. `vol` and `lab` are Volumes
    or paths (read only when the case is not cached yet with that map)."""
    import torch

    from wisecli.runtime.io.atomic import save_npy, save_npz, write_json

    from .loss import nearest_e, skeleton_q
    from .predict import canonical_transform, lung_crop, to_canonical
    from .tree import branch_table, parse_tree

    folder = cache_root / name
    meta = folder / "meta.npz"
    weight_file = WEIGHT_FILES[dist_mode]
    if meta.exists() and (folder / weight_file).exists():
        z = np.load(meta)
        return Case(name, folder, tuple(z["spacing_zyx"]), z["skeleton"], z["small"], tuple(z["shape"]), weight_file)
    if isinstance(vol, (str, Path)):
        from wisecli.runtime.io.volumes import read_volume

        vol, lab = read_volume(vol), read_volume(lab)
    perm, flips = canonical_transform(vol.direction)
    img = to_canonical(vol.array, perm, flips)
    g = to_canonical((lab.array > 0).astype(np.uint8), perm, flips)
    sp_zyx = tuple(np.asarray(vol.spacing, float)[::-1][list(perm)])
    box, _ = lung_crop(torch.from_numpy(img.astype(np.float32)), sp_zyx)
    if box is not None:
        img, g = img[box], g[box]
    img = np.clip(img, -32768, 32767).astype(np.int16)
    p = parse_tree(g, sp_zyx[::-1])
    if p is None:
        skel = np.argwhere(g > 0)
        small = skel[:0]
        sk_mask = np.zeros(g.shape, bool)
    else:
        skel = np.column_stack(np.unravel_index(p.skel_idx, g.shape))
        sk_mask = np.zeros(g.shape, bool)
        sk_mask.ravel()[p.skel_idx] = True
        rows = branch_table(p, g, sp_zyx[::-1])
        diam = np.array([2 * r["mean_radius_mm"] for r in rows])
        small_ids = np.flatnonzero(diam < 2.0) + 1
        quarter = np.argsort(diam)[: max(1, len(diam) // 4)] + 1
        if len(quarter) > len(small_ids):
            small_ids = quarter
        labels = p.full_labels(np.int32)
        small = np.argwhere(np.isin(labels, small_ids[small_ids > 1]))
    q = skeleton_q(g, sk_mask, sp_zyx) if dist_mode == "skeleton" else nearest_e(g, sk_mask, sp_zyx)
    folder.mkdir(parents=True, exist_ok=True)
    save_npy(folder / "image.npy", img)
    save_npy(folder / "label.npy", g)
    save_npy(folder / weight_file, q)
    write_json(folder / "source.json", {"image": str(vol.path), "label": str(lab.path)})
    save_npz(meta, spacing_zyx=np.array(sp_zyx), skeleton=skel.astype(np.int32), small=small.astype(np.int32),
             shape=np.array(g.shape))
    return Case(name, folder, sp_zyx, skel.astype(np.int32), small.astype(np.int32), g.shape, weight_file)


def _crop_start(rng, shape, patch, centre=None):
    shape = np.asarray(shape)
    hi = np.maximum(shape - patch, 0)
    if centre is None:
        return np.array([rng.integers(0, h + 1) for h in hi])
    jitter = rng.integers(-patch // 4, patch // 4 + 1, 3)
    return np.clip(np.asarray(centre) - patch // 2 + jitter, 0, hi)


def _slice(arr, start, patch, fill):
    """patch³ slice from `start`, padded with `fill` where the case is smaller than the patch."""
    sl = tuple(slice(int(s), int(s) + patch) for s in start)
    a = np.array(arr[sl])
    if a.shape != (patch,) * 3:
        a = np.pad(a, [(0, patch - n) for n in a.shape], constant_values=fill)
    return a


class PatchSampler(torch.utils.data.IterableDataset):
    """Iterable over (image int16, label uint8, distance map float16) patches; see the module docstring."""

    def __init__(self, cases: list[Case], *, patch: int, patches_per_case: int = 16, seed: int = 0,
                 rank: int = 0, world: int = 1, max_draws: int = 50, max_other: int = 200):
        super().__init__()
        self.cases, self.patch, self.ppc = cases, patch, patches_per_case
        self.seed, self.rank, self.world = seed, rank, world
        self.max_draws, self.max_other = max_draws, max_other
        self.epoch = 0
        self.hard: dict[str, np.ndarray] = {c.name: c.skeleton for c in cases}

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def __len__(self):
        return len(self.cases[self.rank::self.world]) * self.ppc

    def small_airway_start(self, rng, case: Case, label):
        p = self.patch
        if len(case.small) == 0 or rng.random() >= 0.5:
            return _crop_start(rng, case.shape, p), 0
        small = np.zeros(1)
        for draw in range(1, self.max_draws + 1):
            st = _crop_start(rng, case.shape, p)
            inside = np.all((case.small >= st) & (case.small < st + p), 1)
            if inside.any():
                lab = int(np.asarray(label[tuple(slice(int(s), int(s) + p) for s in st)]).sum())
                if lab - int(inside.sum()) <= self.max_other:
                    return st, draw
        small = case.small[rng.integers(len(case.small))]
        return _crop_start(rng, case.shape, p, small), self.max_draws + 1

    def hard_start(self, rng, case: Case):
        pts = self.hard.get(case.name)
        if pts is None or len(pts) == 0:
            return _crop_start(rng, case.shape, self.patch), None
        target = pts[rng.integers(len(pts))]
        return _crop_start(rng, case.shape, self.patch, target), target

    def __iter__(self):
        import torch

        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        rng = np.random.default_rng([self.seed, self.rank, wid, self.epoch])
        mine = self.cases[self.rank::self.world]
        jobs = [(c, k) for c in mine for k in range(self.ppc)]
        order = np.random.default_rng([self.seed, self.rank, self.epoch]).permutation(len(jobs))
        for n, j in enumerate(order):
            if n % nw != wid:
                continue
            case, k = jobs[j]
            img, lab, q = case.arrays()
            st = self.small_airway_start(rng, case, lab)[0] if k % 2 == 0 else self.hard_start(rng, case)[0]
            yield (torch.from_numpy(_slice(img, st, self.patch, -1024)),
                   torch.from_numpy(_slice(lab, st, self.patch, 0)),
                   torch.from_numpy(_slice(q, st, self.patch, 0).astype(np.float32)))


def augment(img, lab, q, *, crop: int, binarise: float, window=(-1000.0, 400.0), windows=None, rng=None,
            q_max: float | None = 1.0):
    """GPU augmentation [reconstructed]: rotate by an integer angle in (−15°, 15°) about one random axis
    pair (grid_sample, bilinear), centre-crop `crop`³, binarise the label at `binarise`, clamp the distance
    map to [0, q_max] (no upper bound for None: a raw distance e) and zero it off the label, window HU to
    [0, 1]. Inputs: (B, P, P, P) tensors on the device."""
    import math

    import torch
    import torch.nn.functional as F

    b, p = img.shape[0], img.shape[-1]
    gen = rng if rng is not None else None
    ang = torch.randint(-14, 15, (b,), generator=gen).float() * math.pi / 180
    pair = torch.randint(0, 3, (b,), generator=gen)
    theta = torch.zeros(b, 3, 4)
    theta[:, 0, 0] = theta[:, 1, 1] = theta[:, 2, 2] = 1
    c, s = torch.cos(ang), torch.sin(ang)
    for i, (a0, a1) in enumerate(((0, 1), (0, 2), (1, 2))):
        m = pair == i
        theta[m, a0, a0] = c[m]
        theta[m, a1, a1] = c[m]
        theta[m, a0, a1] = -s[m]
        theta[m, a1, a0] = s[m]
    # sample only the central crop of the rotated patch
    theta[:, :, :3] *= crop / p
    grid = F.affine_grid(theta.to(img.device), (b, 1, crop, crop, crop), align_corners=False)
    stack = torch.stack([img.float(), lab.float(), q.float()], 1)
    out = F.grid_sample(stack, grid, mode="bilinear", padding_mode="border", align_corners=False)
    hu, lb, qq = out[:, 0:1], out[:, 1:2], out[:, 2:3]
    wins = windows or (window,)
    x = torch.cat([((hu - lo) / (hi - lo)).clamp(0, 1) for lo, hi in wins], 1)
    g = (lb >= binarise).float()
    return x, g, qq.clamp(0, q_max) * g
