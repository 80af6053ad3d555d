"""Chest-CT airway phantoms (spec §4), a reconstruction after Kitaoka, Takaki & Suki, "A three-dimensional
model of the human airway tree", J Appl Physiol 87 (1999).

Geometry is in mm (LPS: x to the patient's left, y posterior, z superior), scaled by the preset's s:
- Anatomy: body ellipse 330×230 mm with a 15 mm fat rim (−100 HU), soft tissue/mediastinum (+40), a spine
  (shell +700, core +250), two lung ellipsoids (parenchyma −850 with smooth texture σ 20 HU over 8 mm)
  seeded with 20 000 points; z spans from the lung base to 20 mm above the apex.
- Tree: trachea Ø16 × 100 mm from the top slice. A branch splits its points by a plane through its axis
  (normal = axis × parent's normal; the first split is mid-sagittal). With r the smaller share, the children
  have Ø d·r^{1/n} and d·(1−r)^{1/n} (n = 2.8), aim at their half's centroid within ±10° of Murray's angle
  cos θ₁ = [1 + r^{4/n} − (1−r)^{4/n}]/(2r^{2/n}), and are 3d·U(0.7, 1.3) long; growth stops below the minimum
  Ø, with fewer than 10 points, or at the generation cap.
- Raster: capsules in per-branch boxes, supersampled 2× per axis (partial volume); lumen −1000 HU, wall +30
  HU, 0.15d + 0.2 mm thick. The label is one 6-connected tree (issue 13 point 6): branches are rasterised
  parents first, and a branch whose label voxels would not all join the tree 6-connected (too thin or short
  for the spacing) ends the tree there with its descendants, in the image as in the label, so the analytic
  tree (`tree_json`) lists exactly the branches the label holds; an artery (+40 HU, the bronchus' Ø) beside each branch of generation ≥ 2.
- Scanner: Gaussian PSF (0.8 mm FWHM in-plane, the slice spacing along z), correlated noise (σ `noise_hu`),
  int16. Label: lumen fraction ≥ 0.5 (lumen only, as in ATM'22).

Choices where the spec is silent: the lungs are ellipsoids with semi-axes (60 s, 95 s, 0.55·h) centred at
x = ±72 s, y = 0, cut flat at the base; arteries sit on the side of the split plane's normal.

Pathology (spec §4 "optional emphysema and nodule"; parameters are our choice, off by default):
- Emphysema (`emphysema` = F, a fraction of the parenchyma: lung voxels outside the airway lumen and
  wall): low-attenuation areas at −990 HU, clustered as blobs: a Gaussian random field correlated over 6 mm
  is thresholded inside the parenchyma so that the blobs cover F of it. −990 HU lies well below the −950 HU threshold of the usual
  low-attenuation-area index LAA%−950 (the density mask of Müller et al., Chest 1988, at the threshold of
  Gevenois et al., AJRCCM 1996), so a noise-free phantom's LAA%−950 is ≈ 100·F. Blobs keep 2 mm clear of
  the airway wall, so they never touch the label.
- Nodules (`nodules` = N): solid spheres at +30 HU, Ø uniform in 4–20 mm (from below the 6 mm follow-up
  threshold of the Fleischner 2017 guideline to well inside the ≤ 30 mm definition of a nodule), 2×
  supersampled like the bronchi, a voxel inside the lung surface, 2 mm plus a voxel clear of the airway wall
  and two voxels from each other (so they are N separate components). A diameter that finds no room shrinks
  by 20 % down to 4 mm; no room at 4 mm is an error.
Each uses its own random stream (seed, 1) and (seed, 2), so switching them on leaves the tree, label and
texture of a seed unchanged.

From a mask (`phantom_from_mask`, for real airway geometry such as an ATM'22 label): the label is the
binarised mask exactly (every component kept: a label the user trusts is not ours to prune; the tree JSON is
the §5 parse, which takes the largest component). The volume keeps the mask's size, spacing, origin and
direction; anatomy is laid out in physical LPS mm, so a rotated storage order gives the same patient.
- Lungs: every voxel within 20 mm of an airway voxel of parsed generation ≥ 2 (of any mask voxel if the
  parse finds none), so they follow the tree's own extent and leave the trachea and main bronchi in the
  mediastinum.
- Body: the analytic phantom's ellipse, fat rim and spine, centred on the trachea's x and the lungs' y,
  holding the lungs with 25 mm to spare.
- Wall: +30 HU outside the lumen to a depth of 0.15·Ø + 0.2 mm, Ø = 2R with R the lumen radius at the
  nearest skeleton voxel (inside distance minus half the finest spacing, as in §5), with a one-voxel
  partial-volume ramp.
- Arteries (+40 HU) follow the parsed branches of generation ≥ 2 at the analytic phantom's offset.
Texture, pathology and scanner are the analytic phantom's functions; copies from one mask differ in their
texture, noise and pathology seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

PRESETS = {
    "tiny": dict(size=(96, 80, 80), spacing=(2.0, 2.0, 2.0), s=0.55, min_diameter_mm=3.0, max_generation=12),
    "demo": dict(size=(128, 112, 112), spacing=(1.5, 1.5, 1.5), s=0.55, min_diameter_mm=2.0, max_generation=12),
    "ct": dict(size=(512, 512, 320), spacing=(0.7, 0.7, 1.0), s=1.0, min_diameter_mm=1.0, max_generation=12),
}
N_EXP = 2.8
N_POINTS = 20_000
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
LUMEN_HU, WALL_HU, ARTERY_HU, PARENCHYMA_HU = -1000.0, 30.0, 40.0, -850.0
EMPHYSEMA_HU, LAA_THRESHOLD_HU = -990.0, -950.0
NODULE_HU, NODULE_DIAMETER_MM = 30.0, (4.0, 20.0)
LUNG_REACH_MM = 20.0   # how far the lungs of a mask phantom reach beyond its bronchial tree


@dataclass
class Branch:
    id: int
    parent: int
    generation: int
    start: np.ndarray
    end: np.ndarray
    diameter: float
    normal: np.ndarray
    children: list = field(default_factory=list)

    @property
    def length(self) -> float:
        return float(np.linalg.norm(self.end - self.start))


@dataclass
class Phantom:
    image: np.ndarray          # int16 HU, (z, y, x)
    label: np.ndarray          # uint8, (z, y, x)
    spacing: tuple             # (x, y, z) mm
    origin: tuple              # (x, y, z) mm
    branches: list
    lungs: np.ndarray          # bool (z, y, x)
    direction: tuple = IDENTITY
    emphysema: np.ndarray | None = None   # bool (z, y, x), the low-attenuation blobs
    nodules: np.ndarray | None = None     # bool (z, y, x), nodule fraction ≥ 0.5
    tree: dict | None = None              # the parsed tree of a mask phantom (no analytic branches)

    def tree_json(self) -> dict:
        if self.tree is not None:
            return self.tree
        return {
            "spacing": list(self.spacing), "origin": list(self.origin), "units": "mm (LPS)",
            "n_branches": len(self.branches),
            "max_generation": max(b.generation for b in self.branches),
            "branches": [{"id": b.id, "parent": b.parent, "generation": b.generation, "children": b.children,
                          "start_mm": [round(float(v), 4) for v in b.start],
                          "end_mm": [round(float(v), 4) for v in b.end],
                          "diameter_mm": round(b.diameter, 4), "length_mm": round(b.length, 4)}
                         for b in self.branches],
        }


def _unit(v):
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def _perp(a):
    """Any unit vector perpendicular to `a`."""
    t = np.array([1.0, 0, 0]) if abs(a[0]) < 0.9 else np.array([0, 1.0, 0])
    return _unit(np.cross(a, t))


def _lungs(s, zbase, height):
    """Two ellipsoids (centre, semi-axes) per lung; the lower part is flattened at the base."""
    semi = np.array([60 * s, 95 * s, 0.55 * height])
    return [(np.array([sign * 72 * s, 0.0, zbase + 0.45 * height]), semi) for sign in (-1, 1)]


def _in_lungs(p, lungs, zbase):
    inside = np.zeros(len(p), bool)
    for c, a in lungs:
        inside |= (((p - c) / a) ** 2).sum(1) <= 1
    return inside & (p[:, 2] >= zbase)


def grow_tree(rng, s, top, lungs, zbase, *, min_diameter, max_generation):
    """Kitaoka-style space-filling growth; returns the list of branches (id = index, trachea = 0)."""
    lo = np.min([c - a for c, a in lungs], 0)
    hi = np.max([c + a for c, a in lungs], 0)
    pts = np.empty((0, 3))
    while len(pts) < N_POINTS:
        cand = rng.uniform(lo, hi, size=(N_POINTS, 3))
        pts = np.concatenate([pts, cand[_in_lungs(cand, lungs, zbase)]])
    pts = pts[:N_POINTS]
    d0 = 16.0 * s
    trachea = Branch(0, -1, 0, top.copy(), top + np.array([0, 0, -100.0 * s]), d0, np.array([1.0, 0, 0]))
    branches = [trachea]
    stack = [(trachea, pts)]
    while stack:
        br, q = stack.pop()
        if len(q) < 10 or br.generation >= max_generation:
            continue
        axis = _unit(br.end - br.start)
        side = (q - br.end) @ br.normal > 0
        halves = [q[side], q[~side]]
        if min(len(h) for h in halves) == 0:
            continue
        r = min(len(h) for h in halves) / len(q)
        for k, h in enumerate(halves):
            small = len(h) / len(q) == r and (k == 0 or len(halves[0]) != len(halves[1]))
            ri = r if small else 1 - r
            d = br.diameter * ri ** (1 / N_EXP)
            if d < min_diameter:
                continue
            cos_m = (1 + ri ** (4 / N_EXP) - (1 - ri) ** (4 / N_EXP)) / (2 * ri ** (2 / N_EXP))
            theta = math.acos(float(np.clip(cos_m, -1, 1)))
            v = _unit(h.mean(0) - br.end)
            phi = math.acos(float(np.clip(v @ axis, -1, 1)))
            ang = float(np.clip(phi, theta - math.radians(10), theta + math.radians(10)))
            perp = v - (v @ axis) * axis
            perp = _unit(perp) if np.linalg.norm(perp) > 1e-9 else (br.normal if k == 0 else -br.normal)
            direction = math.cos(ang) * axis + math.sin(ang) * perp
            length = 3 * d * rng.uniform(0.7, 1.3)
            nrm = np.cross(direction, br.normal)
            nrm = _unit(nrm) if np.linalg.norm(nrm) > 1e-9 else _perp(direction)
            child = Branch(len(branches), br.id, br.generation + 1, br.end.copy(), br.end + length * direction,
                           d, nrm)
            br.children.append(child.id)
            branches.append(child)
            stack.append((child, h))
    return branches


def _capsule_box(shape, origin, spacing, a, b, radius):
    """(slices, fraction) of the voxels of a (z, y, x) grid of `shape` within `radius` of segment a–b (a
    sphere when a = b), the fraction estimated on 2×2×2 sub-samples per voxel, inside the segment's bounding
    box only (None when the box misses the grid). `origin` and `spacing` are X Y Z; the grid's axes are the
    physical axes (identity direction)."""
    sp = np.asarray(spacing, float)
    lo = np.floor((np.minimum(a, b) - radius - origin) / sp - 1).astype(int)
    hi = np.ceil((np.maximum(a, b) + radius - origin) / sp + 1).astype(int)
    shape_xyz = np.array(shape[::-1])
    lo, hi = np.clip(lo, 0, shape_xyz), np.clip(hi + 1, 0, shape_xyz)
    if np.any(hi <= lo):
        return None
    # sub-sample coordinates per axis: index ± 0.25 voxel
    axes = [origin[i] + (np.arange(lo[i], hi[i])[:, None] + np.array([-0.25, 0.25])[None]).ravel() * sp[i]
            for i in range(3)]
    X, Y, Z = axes
    u = b - a
    L2 = float(u @ u)
    # t parameter is separable as a sum over axes
    t = ((X - a[0]) * u[0])[None, None, :] + ((Y - a[1]) * u[1])[None, :, None] + ((Z - a[2]) * u[2])[:, None, None]
    t = np.clip(t / L2, 0, 1) if L2 > 0 else np.zeros_like(t)  # a zero-length segment is a sphere
    dx = X[None, None, :] - a[0] - t * u[0]
    dy = Y[None, :, None] - a[1] - t * u[1]
    dz = Z[:, None, None] - a[2] - t * u[2]
    inside = (dx * dx + dy * dy + dz * dz <= radius * radius).astype(np.float32)
    nz, ny, nx = (hi - lo)[::-1]
    frac = inside.reshape(nz, 2, ny, 2, nx, 2).mean(axis=(1, 3, 5))
    return (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0])), frac


def _capsule_fraction(out, origin, spacing, a, b, radius):
    """Max-accumulate into `out` (z, y, x) the capsule fraction of `_capsule_box`."""
    box = _capsule_box(out.shape, origin, spacing, a, b, radius)
    if box is not None:
        sl, frac = box
        np.maximum(out[sl], frac, out=out[sl])


def connected_tree(branches, shape, origin, spacing):
    """Rasterise the lumen branch by branch, parents first, keeping a branch only when its label voxels
    (fraction ≥ 0.5) add to the tree and every one of them joins it 6-connected; a branch too thin (or too
    short) to do so at this spacing ends the tree there, its descendants go with it. Returns (the kept branches,
    re-numbered in the same order with their parents and children, the lumen fraction): the label
    `fraction ≥ 0.5` is one 6-connected tree and the branch list is exactly the branches it holds."""
    from scipy import ndimage

    six = ndimage.generate_binary_structure(3, 1)
    lumen = np.zeros(shape, np.float32)
    label = np.zeros(shape, bool)
    kept: dict[int, int] = {}
    for b in branches:  # a child comes after its parent in the list
        if b.parent >= 0 and b.parent not in kept:
            continue
        box = _capsule_box(shape, origin, spacing, b.start, b.end, b.diameter / 2)
        if box is None:
            continue
        sl, frac = box
        own = frac >= 0.5
        if not (own & ~label[sl]).any():
            continue
        # the box grown by a voxel holds every tree voxel a piece of this branch could touch
        grown = tuple(slice(max(x.start - 1, 0), min(x.stop + 1, n)) for x, n in zip(sl, shape))
        inner = tuple(slice(x.start - g.start, x.stop - g.start) for x, g in zip(sl, grown))
        tree = label[grown]
        mine = np.zeros_like(tree)
        mine[inner] = own
        comp, n = ndimage.label(tree | mine, six)
        if tree.any():
            joined = np.isin(comp[mine], np.unique(comp[tree])).all()
        else:
            joined = n == 1  # the trachea: one piece
        if not joined:
            continue
        kept[b.id] = len(kept)
        label[sl] |= own
        np.maximum(lumen[sl], frac, out=lumen[sl])
    out = []
    for b in branches:
        if b.id in kept:
            out.append(Branch(kept[b.id], kept.get(b.parent, -1), b.generation, b.start, b.end, b.diameter,
                              b.normal, [kept[c] for c in b.children if c in kept]))
    return out, lumen


def _smooth_noise(rng, shape, spacing, corr_mm, sigma):
    """Gaussian-correlated noise (σ `sigma`, correlation `corr_mm`) made on a coarse grid and interpolated."""
    from scipy import ndimage

    sp = np.asarray(spacing, float)[::-1]
    step = np.maximum(1, np.floor(corr_mm / 2 / sp)).astype(int)
    coarse = [int(math.ceil(n / k)) + 2 for n, k in zip(shape, step)]
    n = ndimage.gaussian_filter(rng.standard_normal(coarse).astype(np.float32), corr_mm / (step * sp))
    n *= sigma / max(float(n.std()), 1e-6)
    zoom = [c * k / c for c, k in zip(coarse, step)]
    return ndimage.zoom(n, zoom, order=1)[: shape[0], : shape[1], : shape[2]]


def body_hu(X, Y, ex: float, ey: float, s: float) -> np.ndarray:
    """HU of the torso cross-section on broadcastable LPS coordinates (mm, relative to the body centre): air
    outside the ellipse (ex, ey), a 15 s mm fat rim (−100), soft tissue (+40) and a posterior spine at
    y = 85/115·ey (shell +700, radius 20 s; core +250, radius 15 s)."""
    X, Y = np.broadcast_arrays(np.asarray(X), np.asarray(Y))
    out = np.full(X.shape, -1000.0, np.float32)
    out[(X / ex) ** 2 + (Y / ey) ** 2 <= 1] = -100
    out[(X / (ex - 15 * s)) ** 2 + (Y / (ey - 15 * s)) ** 2 <= 1] = 40
    spine = np.hypot(X, Y - ey * 85 / 115)
    out[spine <= 20 * s] = 700
    out[spine <= 15 * s] = 250
    return out


def in_ellipsoids(X, Y, Z, ellipsoids) -> np.ndarray:
    """Union of axis-aligned ellipsoids [(centre, semi-axes)] on broadcastable LPS coordinates."""
    inside = np.zeros(np.broadcast_shapes(np.shape(X), np.shape(Y), np.shape(Z)), bool)
    for c, a in ellipsoids:
        inside |= ((X - c[0]) / a[0]) ** 2 + ((Y - c[1]) / a[1]) ** 2 + ((Z - c[2]) / a[2]) ** 2 <= 1
    return inside


def fill_parenchyma(hu: np.ndarray, lung: np.ndarray, rng, spacing) -> None:
    """Lung voxels become −850 HU with smooth texture (σ 20 HU, correlated over 8 mm)."""
    tex = _smooth_noise(rng, hu.shape, spacing, 8.0, 20.0)
    hu[lung] = PARENCHYMA_HU + tex[lung]


def distance_to(mask: np.ndarray, spacing, reach_mm: float) -> np.ndarray:
    """Distance in mm from every voxel to the nearest voxel of `mask` (0 on it), exact up to `reach_mm` and
    +inf beyond (the EDT runs only on the mask's box grown by `reach_mm`, so it stays cheap on a 512² CT)."""
    from scipy import ndimage

    from .tree import mask_box

    out = np.full(mask.shape, np.inf, np.float32)
    sp_zyx = np.asarray(spacing, float)[::-1]
    box = mask_box(mask, pad=int(np.ceil(reach_mm / sp_zyx.min())) + 1)
    if box is None:
        return out
    d = ndimage.distance_transform_edt(~mask[box], sampling=sp_zyx)
    out[box] = np.where(d <= reach_mm, d, np.inf)
    return out


def depth_in(mask: np.ndarray, spacing) -> np.ndarray:
    """Distance in mm from every voxel of `mask` to the nearest voxel outside it (0 outside), computed on
    the mask's box grown by one voxel."""
    from scipy import ndimage

    from .tree import mask_box

    out = np.zeros(mask.shape, np.float32)
    box = mask_box(mask, pad=1)
    if box is not None:
        out[box] = ndimage.distance_transform_edt(mask[box], sampling=np.asarray(spacing, float)[::-1])
    return out


def add_emphysema(hu: np.ndarray, lung: np.ndarray, airway: np.ndarray, spacing, fraction: float,
                  seed: int) -> np.ndarray:
    """Set clustered low-attenuation blobs (−990 HU) covering `fraction` of the parenchyma (`lung` outside
    `airway`, the lumen and wall), ≥ 2 mm from `airway`; returns their mask (see the module docstring)."""
    if fraction <= 0 or not lung.any():
        return np.zeros(hu.shape, bool)
    rng = np.random.default_rng([seed, 1])
    field_ = _smooth_noise(rng, hu.shape, spacing, 6.0, 1.0)
    room = lung & (distance_to(airway, spacing, 2.0) > 2.0)
    k = int(round(fraction * np.count_nonzero(lung & ~airway)))
    vals = field_[room]
    if k <= 0 or not len(vals):
        return np.zeros(hu.shape, bool)
    cut = np.partition(vals, len(vals) - min(k, len(vals)))[len(vals) - min(k, len(vals))]
    blobs = room & (field_ >= cut)
    hu[blobs] = EMPHYSEMA_HU
    return blobs


def add_nodules(hu: np.ndarray, lung: np.ndarray, airway: np.ndarray, spacing, n: int, seed: int,
                diameter_mm=NODULE_DIAMETER_MM) -> np.ndarray:
    """Place `n` solid spheres (+30 HU, partial volume) inside the lungs, clear of the airway and of each
    other; returns the nodule mask (fraction ≥ 0.5). ValueError when there is no room."""
    if n <= 0:
        return np.zeros(hu.shape, bool)
    rng = np.random.default_rng([seed, 2])
    sp = np.asarray(spacing, float)            # X Y Z
    hmax = float(sp.max())
    d_lung = depth_in(lung, spacing)
    d_air = distance_to(airway, spacing, diameter_mm[1] / 2 + 2.0 + hmax)
    room = np.minimum(d_lung - hmax, d_air - (2.0 + hmax))   # radius a sphere centred here may have
    cand = np.flatnonzero(room >= diameter_mm[0] / 2)
    if len(cand) > 200_000:  # a random subset of the possible centres is plenty and bounds the memory
        cand = np.sort(rng.choice(cand, 200_000, replace=False))
    pos = np.column_stack(np.unravel_index(cand, hu.shape))[:, ::-1] * sp   # X Y Z mm in the array frame
    free = room.ravel()[cand]          # the largest radius still possible at each candidate centre
    frac = np.zeros(hu.shape, np.float32)
    for placed in range(n):
        d = float(rng.uniform(*diameter_mm))
        while not (free >= d / 2).any():
            if d <= diameter_mm[0]:
                raise ValueError(f"no room for {n} nodules in the lungs (placed {placed})")
            d = max(diameter_mm[0], 0.8 * d)
        r = d / 2
        c = pos[rng.choice(np.flatnonzero(free >= r))]
        np.minimum(free, np.linalg.norm(pos - c, axis=1) - r - 2 * hmax, out=free)
        _capsule_fraction(frac, np.zeros(3), sp, c, c, r)
    hu += (NODULE_HU - hu) * frac
    return frac >= 0.5


def composite(hu: np.ndarray, lumen, wall, artery=None) -> None:
    """Lay the fractional tissue maps over `hu` in place: artery, then wall, then lumen on top."""
    if artery is not None:
        hu += (ARTERY_HU - hu) * artery
    hu += (WALL_HU - hu) * wall
    hu += (LUMEN_HU - hu) * lumen


def scanner(hu: np.ndarray, spacing, noise_hu: float, rng) -> np.ndarray:
    """Gaussian PSF (0.8 mm FWHM in-plane, the slice spacing along the third axis), then correlated noise
    (white noise smoothed over 0.7 voxel, scaled to σ `noise_hu`), rounded to int16 in [−1024, 3071]."""
    from scipy import ndimage

    sp = np.asarray(spacing, float)
    fwhm = np.array([0.8, 0.8, sp[2]])
    sigma_vox = (fwhm / 2.3548 / sp)[::-1]
    hu = ndimage.gaussian_filter(hu, sigma_vox, truncate=3.0)
    if noise_hu > 0:
        nz = ndimage.gaussian_filter(rng.standard_normal(hu.shape, dtype=np.float32), 0.7, truncate=3.0)
        hu += nz * (noise_hu / max(float(nz.std()), 1e-6))
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16)


def make_phantom(preset: str = "tiny", *, seed: int = 0, size=None, spacing=None, max_generation=None,
                 min_diameter_mm=None, noise_hu: float = 20.0, vessels: bool = True, emphysema: float = 0.0,
                 nodules: int = 0) -> Phantom:
    """One phantom CT with its airway label and analytic tree. `size` and `spacing` are X Y Z."""
    cfg = dict(PRESETS[preset])
    size = tuple(int(v) for v in (size or cfg["size"]))
    sp = tuple(float(v) for v in (spacing or cfg["spacing"]))
    s = cfg["s"]
    min_d = float(min_diameter_mm if min_diameter_mm is not None else cfg["min_diameter_mm"])
    max_gen = int(max_generation if max_generation is not None else cfg["max_generation"])
    rng = np.random.default_rng(seed)
    ext = np.array(size) * np.array(sp)
    origin = np.array([-(size[0] - 1) * sp[0] / 2, -(size[1] - 1) * sp[1] / 2, 0.0])
    zs = origin[2] + np.arange(size[2]) * sp[2]
    ztop = zs[-1]
    zbase = zs[0] + 0.02 * ext[2]
    height = ztop - 20 * s - zbase
    lungs = _lungs(s, zbase, height)

    shape = (size[2], size[1], size[0])
    X = origin[0] + np.arange(size[0]) * sp[0]
    Y = origin[1] + np.arange(size[1]) * sp[1]
    # body, fat rim, spine: one z-independent slice
    hu = np.broadcast_to(body_hu(X[None, :], Y[:, None], 165 * s, 115 * s, s), shape).copy()
    Z = zs[:, None, None]
    lung = in_ellipsoids(X[None, None, :], Y[None, :, None], Z, lungs) & (Z >= zbase)
    fill_parenchyma(hu, lung, rng, sp)

    # the trachea's axis sits on voxel centres, so a centred skeleton measures its radius
    top = np.array([X[np.abs(X).argmin()], Y[np.abs(Y + 10 * s).argmin()], ztop])
    branches = grow_tree(rng, s, top, lungs, zbase, min_diameter=min_d, max_generation=max_gen)

    branches, lumen = connected_tree(branches, shape, origin, sp)
    wall = np.zeros(shape, np.float32)
    artery = np.zeros(shape, np.float32) if vessels else None
    for b in branches:
        r = b.diameter / 2
        t = 0.15 * b.diameter + 0.2
        _capsule_fraction(wall, origin, sp, b.start, b.end, r + t)
        if vessels and b.generation >= 2:
            off = np.cross(_unit(b.end - b.start), b.normal)
            off = _unit(off) * (2 * r + t + 0.5)
            _capsule_fraction(artery, origin, sp, b.start + off, b.end + off, r)
    airway = wall > 0
    emph = add_emphysema(hu, lung, airway, sp, emphysema, seed)
    nod = add_nodules(hu, lung, airway, sp, nodules, seed)
    composite(hu, lumen, wall, artery)
    label = (lumen >= 0.5).astype(np.uint8)
    image = scanner(hu, sp, noise_hu, rng)
    return Phantom(image, label, sp, tuple(float(v) for v in origin), branches, lung,
                   emphysema=emph if emphysema > 0 else None, nodules=nod if nodules > 0 else None)


def _physical_grid(shape, spacing, origin, direction):
    """LPS coordinates (X, Y, Z) in mm of the voxels of a (z, y, x) grid as float32 arrays that broadcast to
    `shape`: a term whose direction cosine is 0 is left out, so an axial volume gets (1, ny, nx) X and Y and
    an (nz, 1, 1) Z instead of three full volumes."""
    D = np.asarray(direction, float).reshape(3, 3)
    axes = [np.arange(n, dtype=np.float32).reshape([-1 if a == ax else 1 for a in range(3)]) * np.float32(spacing[2 - ax])
            for ax, n in enumerate(shape)]          # k (z index), j (y index), i (x index), in mm
    out = []
    for r in range(3):
        c = np.full((1, 1, 1), origin[r], np.float32)
        for col, ax in ((0, 2), (1, 1), (2, 0)):   # direction column of index x, y, z
            if D[r, col] != 0:
                c = c + np.float32(D[r, col]) * axes[ax]
        out.append(c)
    return tuple(out)


def mask_wall(label: np.ndarray, spacing) -> np.ndarray:
    """Fractional airway wall around a lumen mask (z, y, x): outside the lumen to a depth t = 0.15·2R + 0.2 mm
    (the analytic phantom's 0.15·Ø + 0.2), R the lumen radius at the nearest skeleton voxel (inside distance
    minus half the finest spacing); a voxel whose centre lies at depth t from the lumen surface (its distance
    to the nearest lumen voxel minus half the finest spacing) gets 0.5, with a one-voxel linear ramp."""
    from scipy import ndimage
    from skimage.morphology import skeletonize

    from .tree import mask_box

    sp_zyx = np.asarray(spacing, float)[::-1]
    h = float(sp_zyx.min())
    wall = np.zeros(label.shape, np.float32)
    box = mask_box(label, pad=1)
    if box is None:
        return wall
    din_max = float(ndimage.distance_transform_edt(label[box], sampling=sp_zyx).max())
    box = mask_box(label, pad=int(np.ceil((0.3 * din_max + 0.2 + 2 * h) / h)) + 1)  # room for the thickest wall
    sub = label[box].astype(bool)
    din = ndimage.distance_transform_edt(sub, sampling=sp_zyx)
    skel = skeletonize(sub).astype(bool)
    if not skel.any():
        skel = din == din.max()
    radius_at = np.maximum(din - h / 2, h / 2)
    _, near = ndimage.distance_transform_edt(~skel, sampling=sp_zyx, return_indices=True)
    t = 0.15 * (2 * radius_at[tuple(near)]) + 0.2
    del near, din
    dout = ndimage.distance_transform_edt(~sub, sampling=sp_zyx)
    wall[box] = np.where(sub, 0.0, np.clip((t - (dout - h / 2)) / h + 0.5, 0.0, 1.0))
    return wall


def phantom_from_mask(mask: np.ndarray, spacing, origin, direction=IDENTITY, *, seed: int = 0,
                      noise_hu: float = 20.0, vessels: bool = True, emphysema: float = 0.0, nodules: int = 0,
                      source: str = "") -> Phantom:
    """A chest CT synthesised around a real airway mask ((z, y, x), any values > 0 are airway) with the
    mask's exact geometry; see the module docstring for the anatomy."""
    from .tree import branch_table, parse_tree, tree_summary

    label = (np.asarray(mask) > 0).astype(np.uint8)
    if not label.any():
        raise ValueError("the mask is empty")
    sp = tuple(float(v) for v in spacing)
    org = tuple(float(v) for v in origin)
    dirn = tuple(float(v) for v in direction)
    D = np.asarray(dirn).reshape(3, 3)
    sp_zyx = np.asarray(sp)[::-1]
    shape = label.shape
    rng = np.random.default_rng(seed)

    parse = parse_tree(label, sp)
    rows = branch_table(parse, label, sp, org, dirn) if parse is not None else []
    tree = {"source": source or "mask", "spacing": list(sp), "origin": list(org), "direction": list(dirn),
            "units": "mm (LPS)", "summary": tree_summary(rows, label, sp) if rows else None, "branches": rows}

    # lungs: the bronchial tree (generation >= 2) grown by LUNG_REACH_MM; body around them, in LPS mm
    seeds = np.zeros(shape, bool)
    trachea = None
    if parse is not None:
        branch = parse.full_labels(np.int32)
        seeds = np.concatenate([[-1], parse.generation[1:]])[branch] >= 2
        trachea = np.argwhere(branch == 1)
        del branch
    if not seeds.any():
        seeds = label.astype(bool)

    def to_lps(v):  # (z, y, x) indices → LPS mm
        return org + (v[:, ::-1] * np.asarray(sp)) @ D.T

    pts = to_lps(np.argwhere(seeds))
    x_mid = float(to_lps(trachea)[:, 0].mean()) if trachea is not None and len(trachea) else float(pts[:, 0].mean())
    lung = distance_to(seeds, sp, LUNG_REACH_MM) <= LUNG_REACH_MM
    del seeds
    cy = float(pts[:, 1].min() + pts[:, 1].max()) / 2
    ex = float(np.abs(pts[:, 0] - x_mid).max()) + LUNG_REACH_MM + 25.0
    ey = float(pts[:, 1].max() - pts[:, 1].min()) / 2 + LUNG_REACH_MM + 25.0
    X, Y, _ = _physical_grid(shape, sp, org, dirn)
    hu = np.broadcast_to(body_hu(X - np.float32(x_mid), Y - np.float32(cy), ex, ey, ey / 115.0), shape).copy()
    del X, Y
    fill_parenchyma(hu, lung, rng, sp)

    wall = mask_wall(label, sp)
    h = float(sp_zyx.min())

    artery = None
    if vessels and rows:
        artery = np.zeros(shape, np.float32)

        def to_array(p):  # LPS mm → array-frame mm (X Y Z)
            return (np.asarray(p, float) - org) @ D

        by_id = {r["id"]: r for r in rows}
        for r in rows:
            if r["generation"] < 2 or r["start_mm"] is None or r["end_mm"] is None:
                continue
            a, b = to_array(r["start_mm"]), to_array(r["end_mm"])
            if np.linalg.norm(b - a) < 1e-6:
                continue
            rad = max(float(r["mean_radius_mm"]), h / 2)
            axis = _unit(b - a)
            par = by_id.get(r["parent"])
            pax = _unit(to_array(par["end_mm"]) - to_array(par["start_mm"])) \
                if par and par["start_mm"] and par["end_mm"] else axis
            nrm = np.cross(axis, pax)
            nrm = _unit(nrm) if np.linalg.norm(nrm) > 1e-6 else _perp(axis)
            off = nrm * (2 * rad + 0.3 * rad + 0.2 + 0.5)
            _capsule_fraction(artery, np.zeros(3), sp, a + off, b + off, rad)
    airway = label.astype(bool) | (wall > 0)
    emph = add_emphysema(hu, lung, airway, sp, emphysema, seed)
    nod = add_nodules(hu, lung, airway, sp, nodules, seed)
    composite(hu, label.astype(np.float32), wall, artery)
    image = scanner(hu, sp, noise_hu, rng)
    return Phantom(image, label, sp, org, [], lung, direction=dirn, emphysema=emph if emphysema > 0 else None,
                   nodules=nod if nodules > 0 else None, tree=tree)


FORMATS = ("nii.gz", "mha", "nrrd", "dicom")
LAYOUTS = ("folder", "atm", "csv")


def write_phantoms(out_dir, n: int, *, preset: str = "tiny", seed: int = 0, fmt: str = "nii.gz",
                   layout: str = "folder", **kw) -> list[dict]:
    """Write `n` phantoms: images and labels (`folder`: images/ + labels/; `atm`: imagesTr/case_0000 +
    labelsTr/; `csv`: both in images/ and labels/ with the manifest as the pairing), trees/*.json (the
    analytic tree) and manifest.csv (image,label,tree,seed). DICOM writes each image as a series folder and
    its label as NIfTI. Returns the manifest rows."""
    return write_cases(out_dir, [(f"case_{i:03d}", seed + i) for i in range(n)],
                       lambda sd: make_phantom(preset, seed=sd, **kw), fmt=fmt, layout=layout)


def write_mask_phantoms(out_dir, n: int, mask_volume, *, seed: int = 0, fmt: str = "nii.gz",
                        layout: str = "folder", name: str = "mask", **kw) -> list[dict]:
    """Write `n` phantoms around one airway mask (`runtime.io.volumes.Volume`), named `{name}_{i:03d}`, in
    the layouts of `write_phantoms`; trees/*.json hold the mask's parsed tree. The parse and the wall are
    the same for every copy, so they are computed once only when n = 1 (otherwise per copy, which is
    simple and costs a few seconds on a 512² CT)."""
    v = mask_volume
    return write_cases(out_dir, [(f"{name}_{i:03d}", seed + i) for i in range(n)],
                       lambda sd: phantom_from_mask(v.array, v.spacing, v.origin, v.direction, seed=sd,
                                                    source=str(v.path or ""), **kw), fmt=fmt, layout=layout)


def write_cases(out_dir, cases, make, *, fmt: str = "nii.gz", layout: str = "folder") -> list[dict]:
    """Write `make(seed)` for every (name, seed) in `cases` with its own geometry: image, label, tree JSON,
    and manifest.csv (image,label,tree,seed) at the end; returns the manifest rows."""
    from pathlib import Path

    from wisecli.runtime.io.atomic import write_json, write_text
    from wisecli.runtime.io.volumes import Volume, write_dicom_series, write_volume

    out = Path(out_dir)
    img_dir, lab_dir = (out / "imagesTr", out / "labelsTr") if layout == "atm" else (out / "images", out / "labels")
    for d in (img_dir, lab_dir, out / "trees"):
        d.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, sd in cases:
        ph = make(sd)
        geo = dict(spacing=ph.spacing, origin=ph.origin, direction=ph.direction)
        img_name = f"{name}_0000" if layout == "atm" else name
        if fmt == "dicom":
            img_path = img_dir / img_name
            write_dicom_series(img_path, Volume(ph.image, ph.spacing, ph.origin, ph.direction, img_path))
            lab_path = lab_dir / f"{name}.nii.gz"
        else:
            img_path = img_dir / f"{img_name}.{fmt}"
            write_volume(img_path, ph.image, **geo)
            lab_path = lab_dir / f"{name}.{fmt}"
        write_volume(lab_path, ph.label, **geo)
        tree_path = out / "trees" / f"{name}.json"
        write_json(tree_path, ph.tree_json())
        rows.append({"image": str(img_path.relative_to(out)), "label": str(lab_path.relative_to(out)),
                     "tree": str(tree_path.relative_to(out)), "seed": sd})
    write_text(out / "manifest.csv", "image,label,tree,seed\n"
               + "".join(f"{r['image']},{r['label']},{r['tree']},{r['seed']}\n" for r in rows))
    return rows


def write_phantom_set(out_dir, n: int, *, preset: str | None, seed: int, size=None, spacing=None,
                      max_generation=None, min_diameter_mm=None, noise_hu: float, vessels: bool, layout: str,
                      fmt: str, overwrite: bool, from_mask=None, emphysema: float, nodules: int) -> dict:
    """The `phantom` verb: check the options, refuse a non-empty folder unless `overwrite`
    (`runtime.rundir.prepare_run_dir`), write the phantoms and return the document (cases = manifest rows).
    A folder this call created is removed again when writing fails."""
    import shutil
    import time
    from pathlib import Path

    from wisecli.cli.errors import InputError
    from wisecli.runtime.rundir import prepare_run_dir

    from .data import _name, read_airway_mask

    if size is not None and (len(size) != 3 or min(size) < 16):
        raise InputError(f"--size {size} needs three sides of at least 16", hint="X Y Z, e.g. --size 96 80 80")
    if spacing is not None and (len(spacing) != 3 or not all(math.isfinite(v) and v > 0 for v in spacing)):
        raise InputError(f"--spacing {spacing} needs three positive values", hint="X Y Z in mm")
    if not 0 <= emphysema < 1:
        raise InputError(f"--emphysema {emphysema} must lie in [0, 1)",
                         hint="a fraction of the lung volume, e.g. --emphysema 0.1")
    if max_generation is not None and max_generation < 1:
        raise InputError(f"--max-generation {max_generation} must be at least 1", hint="for example 8")
    mask = None
    if from_mask is not None:
        given = [flag for flag, v in (("--preset", preset), ("--size", size), ("--spacing", spacing),
                                      ("--max-generation", max_generation),
                                      ("--min-diameter-mm", min_diameter_mm)) if v is not None]
        if given:
            raise InputError(f"{', '.join(given)} cannot be used with --from-mask",
                             hint="the mask fixes the size, spacing and airway tree; leave those options out")
        mask = read_airway_mask(Path(from_mask))
    out = Path(out_dir)
    existed = out.exists()
    try:
        prepare_run_dir(out, overwrite=overwrite)
    except InputError as e:
        raise InputError(e.message.replace("run folder", "output folder"),
                         hint="pass --overwrite or pick another folder") from None
    t = time.perf_counter()
    path = {"emphysema": emphysema, "nodules": nodules}
    try:
        if mask is not None:
            rows = write_mask_phantoms(out, n, mask, seed=seed, fmt=fmt, layout=layout, name=_name(mask.path),
                                       noise_hu=noise_hu, vessels=vessels, **path)
        else:
            rows = write_phantoms(out, n, preset=preset or "tiny", seed=seed, fmt=fmt, layout=layout, size=size,
                                  spacing=spacing, max_generation=max_generation, min_diameter_mm=min_diameter_mm,
                                  noise_hu=noise_hu, vessels=vessels, **path)
    except BaseException as e:
        if not existed:
            shutil.rmtree(out, ignore_errors=True)
        if isinstance(e, ValueError):  # no room for the nodules
            raise InputError(str(e), hint="ask for fewer --nodules") from None
        raise
    doc = {"out_dir": str(out), "n": n, "format": fmt, "layout": layout, "cases": rows,
           "seconds": round(time.perf_counter() - t, 3), **path}
    doc.update({"from_mask": str(from_mask)} if mask is not None else {"preset": preset or "tiny"})
    return doc
