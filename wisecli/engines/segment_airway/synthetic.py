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
  HU, 0.15d + 0.2 mm thick; an artery (+40 HU, the bronchus' Ø) beside each branch of generation ≥ 2.
- Scanner: Gaussian PSF (0.8 mm FWHM in-plane, the slice spacing along z), correlated noise (σ `noise_hu`),
  int16. Label: lumen fraction ≥ 0.5 (lumen only, as in ATM'22).

Choices where the spec is silent: the lungs are ellipsoids with semi-axes (60 s, 95 s, 0.55·h) centred at
x = ±72 s, y = 0, cut flat at the base; arteries sit on the side of the split
plane's normal; emphysema and nodules are not generated.
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

    def tree_json(self) -> dict:
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


def _capsule_fraction(out, origin, spacing, a, b, radius, *, mode="max"):
    """Max-accumulate into `out` (z, y, x) the fraction of each voxel within `radius` of segment a–b,
    estimated on 2×2×2 sub-samples per voxel, inside the segment's bounding box only."""
    sp = np.asarray(spacing, float)
    lo = np.floor((np.minimum(a, b) - radius - origin) / sp - 1).astype(int)
    hi = np.ceil((np.maximum(a, b) + radius - origin) / sp + 1).astype(int)
    shape_xyz = np.array(out.shape[::-1])
    lo, hi = np.clip(lo, 0, shape_xyz), np.clip(hi + 1, 0, shape_xyz)
    if np.any(hi <= lo):
        return
    # sub-sample coordinates per axis: index ± 0.25 voxel
    axes = [origin[i] + (np.arange(lo[i], hi[i])[:, None] + np.array([-0.25, 0.25])[None]).ravel() * sp[i]
            for i in range(3)]
    X, Y, Z = axes
    u = b - a
    L2 = float(u @ u)
    # t parameter is separable as a sum over axes
    t = ((X - a[0]) * u[0])[None, None, :] + ((Y - a[1]) * u[1])[None, :, None] + ((Z - a[2]) * u[2])[:, None, None]
    t = np.clip(t / L2, 0, 1)
    dx = X[None, None, :] - a[0] - t * u[0]
    dy = Y[None, :, None] - a[1] - t * u[1]
    dz = Z[:, None, None] - a[2] - t * u[2]
    inside = (dx * dx + dy * dy + dz * dz <= radius * radius).astype(np.float32)
    nz, ny, nx = (hi - lo)[::-1]
    frac = inside.reshape(nz, 2, ny, 2, nx, 2).mean(axis=(1, 3, 5))
    sl = (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0]))
    np.maximum(out[sl], frac, out=out[sl])


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


def make_phantom(preset: str = "tiny", *, seed: int = 0, size=None, spacing=None, max_generation=None,
                 min_diameter_mm=None, noise_hu: float = 20.0, vessels: bool = True) -> Phantom:
    """One phantom CT with its airway label and analytic tree. `size` and `spacing` are X Y Z."""
    from scipy import ndimage

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
    ex, ey = 165 * s, 115 * s
    rr = (X[None, :] / ex) ** 2 + (Y[:, None] / ey) ** 2
    inner = (X[None, :] / (ex - 15 * s)) ** 2 + (Y[:, None] / (ey - 15 * s)) ** 2
    sl = np.full((size[1], size[0]), -1000.0, np.float32)
    sl[rr <= 1] = -100
    sl[inner <= 1] = 40
    spine = np.hypot(X[None, :], Y[:, None] - 85 * s)
    sl[spine <= 20 * s] = 700
    sl[spine <= 15 * s] = 250
    hu = np.broadcast_to(sl, shape).copy()

    # lungs
    lung = np.zeros(shape, bool)
    Z = zs[:, None, None]
    for c, a in lungs:
        lung |= ((X[None, None, :] - c[0]) / a[0]) ** 2 + ((Y[None, :, None] - c[1]) / a[1]) ** 2 \
            + ((Z - c[2]) / a[2]) ** 2 <= 1
    lung &= (Z >= zbase)
    tex = _smooth_noise(rng, shape, sp, 8.0, 20.0)
    hu[lung] = -850 + tex[lung]

    # the trachea's axis sits on voxel centres, so a centred skeleton measures its radius
    top = np.array([X[np.abs(X).argmin()], Y[np.abs(Y + 10 * s).argmin()], ztop])
    branches = grow_tree(rng, s, top, lungs, zbase, min_diameter=min_d, max_generation=max_gen)

    lumen = np.zeros(shape, np.float32)
    wall = np.zeros(shape, np.float32)
    artery = np.zeros(shape, np.float32) if vessels else None
    for b in branches:
        r = b.diameter / 2
        t = 0.15 * b.diameter + 0.2
        _capsule_fraction(lumen, origin, sp, b.start, b.end, r)
        _capsule_fraction(wall, origin, sp, b.start, b.end, r + t)
        if vessels and b.generation >= 2:
            off = np.cross(_unit(b.end - b.start), b.normal)
            off = _unit(off) * (2 * r + t + 0.5)
            _capsule_fraction(artery, origin, sp, b.start + off, b.end + off, r)
    if vessels:
        hu += (40 - hu) * artery
    hu += (30 - hu) * wall
    hu += (-1000 - hu) * lumen
    label = (lumen >= 0.5).astype(np.uint8)

    # scanner: PSF then correlated noise
    fwhm = np.array([0.8, 0.8, sp[2]])
    sigma_vox = (fwhm / 2.3548 / np.array(sp))[::-1]
    hu = ndimage.gaussian_filter(hu, sigma_vox, truncate=3.0)
    if noise_hu > 0:
        nz = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), 0.7, truncate=3.0)
        hu += nz * (noise_hu / max(float(nz.std()), 1e-6))
    image = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    return Phantom(image, label, sp, tuple(float(v) for v in origin), branches, lung)


FORMATS = ("nii.gz", "mha", "nrrd", "dicom")
LAYOUTS = ("folder", "atm", "csv")


def write_phantoms(out_dir, n: int, *, preset: str = "tiny", seed: int = 0, fmt: str = "nii.gz",
                   layout: str = "folder", **kw) -> list[dict]:
    """Write `n` phantoms: images and labels (`folder`: images/ + labels/; `atm`: imagesTr/case_0000 +
    labelsTr/; `csv`: both in images/ and labels/ with the manifest as the pairing), trees/*.json (the
    analytic tree) and manifest.csv (image,label,tree,seed). DICOM writes each image as a series folder and
    its label as NIfTI. Returns the manifest rows."""
    from pathlib import Path

    from wisecli.runtime.io.atomic import write_json, write_text
    from wisecli.runtime.io.volumes import Volume, write_dicom_series, write_volume

    out = Path(out_dir)
    img_dir, lab_dir = (out / "imagesTr", out / "labelsTr") if layout == "atm" else (out / "images", out / "labels")
    for d in (img_dir, lab_dir, out / "trees"):
        d.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        ph = make_phantom(preset, seed=seed + i, **kw)
        name = f"case_{i:03d}"
        geo = dict(spacing=ph.spacing, origin=ph.origin, direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))
        img_name = f"{name}_0000" if layout == "atm" else name
        if fmt == "dicom":
            img_path = img_dir / img_name
            write_dicom_series(img_path, Volume(ph.image, ph.spacing, ph.origin, geo["direction"], img_path))
            lab_path = lab_dir / f"{name}.nii.gz"
        else:
            img_path = img_dir / f"{img_name}.{fmt}"
            write_volume(img_path, ph.image, **geo)
            lab_path = lab_dir / f"{name}.{fmt}"
        write_volume(lab_path, ph.label, **geo)
        tree_path = out / "trees" / f"{name}.json"
        write_json(tree_path, ph.tree_json())
        rows.append({"image": str(img_path.relative_to(out)), "label": str(lab_path.relative_to(out)),
                     "tree": str(tree_path.relative_to(out)), "seed": seed + i})
    write_text(out / "manifest.csv", "image,label,tree,seed\n"
               + "".join(f"{r['image']},{r['label']},{r['tree']},{r['seed']}\n" for r in rows))
    return rows
