"""Synthetic rendered vehicles in the exact VeRi-776 layout.  SYNTHETIC: NOT A BENCHMARK.

No vehicle re-ID images can ship (VeRi-776 is request-only), so tests and the demo render their own, with numpy
and OpenCV, seeded (spec §4):
- identity: body colour (HSV), type proportions (sedan, SUV, van, truck), cabin position, a side decal; the
  front (grille colour, lamp shape) and rear (tail-light colour, plate pattern) are distinct, so views of one car
  differ strongly; about 20 % of ids copy colour and type of another id (hard negatives);
- render: a cuboid body, a cabin frustum and four wheel discs, perspective-projected and filled back to front
  (painter's algorithm with back-face culling, `cv2.fillPoly`), Lambert shading from a random light; azimuth
  theta in [0, 360) (0 = the camera faces the car's front, 90 = its left side), elevation 5-35 degrees; the
  vehicle is cropped to fill the frame, as detector crops do;
- 20 cameras, each with a fixed elevation, focal length, background (crops of scikit-image `brick`, `grass`,
  `gravel` or a road-grey gradient), colour cast, blur, JPEG quality and a preferred azimuth range;
- viewpoint from theta: front |theta| < 30, rear |theta - 180| < 30, side |theta -+ 90| < 30, otherwise
  front-side or rear-side; the 8-class label (left/right) too.
`write_veri` writes folders, `name_*.txt`, `gt_image.txt`, `jk_image.txt` (query-ordered good and junk gallery
names), a SPAN-format `viewpoints.csv` (`filename,viewpoint`, training images, as SPAN's `dataset.csv`),
`viewpoints_test.csv` (query and gallery, for the head's accuracy), `viewpoints8.txt` (keypoint format, zero
keypoints, 8 orientations) and `SYNTHETIC.txt`.
Queries are separate renders (not copies of gallery images): one per camera for up to `queries_per_id` cameras.
`write_aic` lays the same renders out as AIC20_ReID: `image_{train,query,test}/` with numbered names
(`000001.jpg`, ... in each folder), `train_label.xml` (`Item imageName vehicleID cameraID`), `name_query.txt`,
`name_test.txt`; as in the challenge, no query/test identities are written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TYPES = {  # length, width, body height, cabin start/end (fractions of length from the rear), cabin height
    "sedan": (4.6, 1.8, 0.7, 0.30, 0.75, 0.55),
    "suv": (4.7, 1.9, 0.95, 0.15, 0.80, 0.65),
    "van": (5.0, 2.0, 1.0, 0.05, 0.92, 0.9),
    "truck": (6.5, 2.3, 1.7, 0.80, 1.0, 0.9),
}
CAMERAS = 20


@dataclass
class Identity:
    vid: int
    kind: str
    colour: tuple
    cabin_shift: float
    decal: tuple       # colour, position along the side (0..1), height fraction, width fraction
    grille: tuple
    lamp_round: bool
    tail: tuple
    plate: tuple       # stripe colours


@dataclass
class Camera:
    elevation: float
    focal: float
    background: str
    cast: tuple
    blur: float
    jpeg: int
    azimuth: float
    spread: float


def _hsv(h, s, v):
    import cv2

    px = np.uint8([[[int(h) % 180, int(s), int(v)]]])
    return tuple(int(c) for c in cv2.cvtColor(px, cv2.COLOR_HSV2RGB)[0, 0])


def make_identities(n: int, seed: int, *, start: int = 1, hard_fraction: float = 0.2) -> list[Identity]:
    rng = np.random.default_rng([seed, 17])
    kinds = list(TYPES)
    out = []
    for i in range(n):
        colour = _hsv(rng.integers(0, 180), rng.integers(40, 255), rng.integers(60, 250))
        kind = kinds[rng.integers(len(kinds))]
        if out and rng.random() < hard_fraction:  # hard negative: same colour and type as an earlier id
            twin = out[rng.integers(len(out))]
            colour, kind = twin.colour, twin.kind
        out.append(Identity(
            vid=start + i, kind=kind, colour=colour, cabin_shift=float(rng.uniform(-0.08, 0.08)),
            decal=(_hsv(rng.integers(0, 180), 220, 230), float(rng.uniform(0.15, 0.85)),
                   float(rng.uniform(0.2, 0.7)), float(rng.uniform(0.08, 0.3))),
            grille=_hsv(rng.integers(0, 180), rng.integers(0, 255), rng.integers(20, 240)),
            lamp_round=bool(rng.random() < 0.5),
            tail=_hsv(rng.integers(0, 180), 255, 230),
            plate=tuple(_hsv(rng.integers(0, 180), 200, 200) for _ in range(3))))
    return out


def make_cameras(seed: int) -> list[Camera]:
    rng = np.random.default_rng([seed, 29])
    bgs = ["brick", "grass", "gravel", "road"]
    return [Camera(elevation=float(rng.uniform(8, 32)), focal=float(rng.uniform(1.5, 3.0)),
                   background=bgs[c % 4], cast=tuple(float(x) for x in rng.uniform(0.8, 1.2, 3)),
                   blur=float(rng.choice([0.0, 0.0, 0.6, 1.0])), jpeg=int(rng.integers(60, 96)),
                   azimuth=float(rng.uniform(0, 360)), spread=float(rng.uniform(60, 150)))
            for c in range(CAMERAS)]


def viewpoint5(theta: float) -> int:
    """0 front, 1 rear, 2 side, 3 front-side, 4 rear-side (SPAN's classes) from the azimuth in degrees."""
    t = (theta + 180.0) % 360.0 - 180.0  # (-180, 180]
    a = abs(t)
    if a < 30:
        return 0
    if a > 150:
        return 1
    if abs(a - 90) < 30:
        return 2
    return 3 if a < 90 else 4


def viewpoint8(theta: float) -> int:
    """0 front, 1 rear, 2 left, 3 left-front, 4 left-rear, 5 right, 6 right-front, 7 right-rear."""
    t = (theta + 180.0) % 360.0 - 180.0
    v = viewpoint5(theta)
    if v < 2:
        return v
    side = {2: 2, 3: 3, 4: 4}[v]
    return side if t > 0 else side + 3


def _boxes(ident: Identity):
    """Convex parts as (vertices 8x3, per-face colour tag) in the car frame: x forward, y left, z up."""
    L, W, H, c0, c1, hc = TYPES[ident.kind]
    z0 = 0.35
    body = _cuboid(-L / 2, L / 2, -W / 2, W / 2, z0, z0 + H)
    a = -L / 2 + (c0 + ident.cabin_shift) * L
    b = -L / 2 + min(1.0, c1 + ident.cabin_shift) * L
    inset = 0.18 * (b - a) if ident.kind != "truck" else 0.02
    cabin = _frustum(a, b, W / 2 * 0.92, z0 + H, z0 + H + hc, inset, 0.12)
    return L, W, H, z0, body, cabin


def _cuboid(x0, x1, y0, y1, z0, z1):
    return np.array([[x, y, z] for x in (x0, x1) for y in (y0, y1) for z in (z0, z1)], dtype=np.float64)


def _frustum(a, b, hw, z0, z1, inset, side_in):
    lo = [[x, y, z0] for x in (a, b) for y in (-hw, hw)]
    hi = [[x, y, z1] for x in (a + inset, b - inset) for y in (-hw + side_in, hw - side_in)]
    v = np.array(lo + hi)
    order = [0, 4, 1, 5, 2, 6, 3, 7]  # -> the cuboid index convention (x, y, z bits)
    return v[order]


# faces of an 8-vertex box (index = 4*xbit + 2*ybit + zbit): name, vertex loop
FACES = {"front": [4, 6, 7, 5], "rear": [0, 1, 3, 2], "left": [2, 3, 7, 6], "right": [0, 4, 5, 1],
         "top": [1, 5, 7, 3], "bottom": [0, 2, 6, 4]}


def render(ident: Identity, cam: Camera, theta: float, rng: np.random.Generator, size: int = 64,
           backgrounds: dict | None = None) -> np.ndarray:
    """One RGB uint8 image (size x size) of `ident` seen by `cam` at azimuth `theta` (degrees)."""
    import cv2

    S = size * 2
    L, W, H, z0, body, cabin = _boxes(ident)
    elev = math.radians(float(np.clip(cam.elevation + rng.uniform(-4, 4), 5, 35)))
    th = math.radians(theta)
    dist = cam.focal * 4.0
    target = np.array([0.0, 0.0, z0 + H * 0.6])
    eye = target + dist * np.array([math.cos(elev) * math.cos(th), math.cos(elev) * math.sin(th), math.sin(elev)])
    f = target - eye
    f /= np.linalg.norm(f)
    r = np.cross(f, [0.0, 0.0, 1.0])
    r /= np.linalg.norm(r)
    u = np.cross(r, f)
    light = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0.5, 1.5)])
    light /= np.linalg.norm(light)

    polys = []  # (depth, points 3D, colour)

    def add_box(verts, colours):
        centre = verts.mean(0)
        for name, loop in FACES.items():
            pts = verts[loop]
            n = np.cross(pts[1] - pts[0], pts[2] - pts[0])
            n /= np.linalg.norm(n) + 1e-12
            if np.dot(n, pts.mean(0) - centre) < 0:
                n = -n
            if np.dot(n, eye - pts.mean(0)) <= 0 or name == "bottom":
                continue
            shade = 0.45 + 0.55 * max(0.0, float(np.dot(n, light)))
            polys.append((pts, colours[name], shade, name, n))

    body_col = {k: ident.colour for k in FACES}
    glass = (40, 55, 70)
    cab_col = {k: glass for k in FACES}
    cab_col["top"] = ident.colour
    add_box(body, body_col)
    add_box(cabin, cab_col)
    # details on the visible body faces, drawn just above the face (slightly outward)
    details = []
    zc = z0 + H * 0.5
    if np.dot([1, 0, 0], eye - [L / 2, 0, zc]) > 0:
        x = L / 2 + 0.01
        details.append((_rect_x(x, -W * 0.25, W * 0.25, z0 + H * 0.15, z0 + H * 0.55), ident.grille))
        for s in (-1, 1):
            y0 = s * W * 0.38
            pts = (_disc_x(x, y0, z0 + H * 0.7, 0.12 * W) if ident.lamp_round
                   else _rect_x(x, y0 - 0.13 * W, y0 + 0.13 * W, z0 + H * 0.62, z0 + H * 0.82))
            details.append((pts, (250, 250, 215)))
    if np.dot([-1, 0, 0], eye - [-L / 2, 0, zc]) > 0:
        x = -L / 2 - 0.01
        for s in (-1, 1):
            details.append((_rect_x(x, s * W * 0.42 - 0.1 * W, s * W * 0.42 + 0.1 * W, z0 + H * 0.55,
                                    z0 + H * 0.85), ident.tail))
        for j, c in enumerate(ident.plate):
            a = -W * 0.2 + j * W * 0.4 / 3
            details.append((_rect_x(x, a, a + W * 0.4 / 3, z0 + H * 0.15, z0 + H * 0.4), c))
    dcol, dpos, dh, dw = ident.decal
    for s, name in ((1, "left"), (-1, "right")):
        y = s * (W / 2 + 0.01)
        if np.dot([0, s, 0], eye - [0, s * W / 2, zc]) > 0:
            xa = -L / 2 + dpos * L
            details.append((_rect_y(y, xa - dw * L / 2, xa + dw * L / 2, z0 + H * (0.5 - dh / 2),
                                    z0 + H * (0.5 + dh / 2)), dcol))
            for wx in (-0.3 * L, 0.3 * L):
                details.append((_disc_y(y + s * 0.01, wx, 0.35, 0.35), (25, 25, 25)))

    def project(p):
        v = p - eye
        zc_ = v @ f
        return np.stack([v @ r / zc_, -(v @ u) / zc_], axis=1), zc_

    allpts = np.concatenate([project(b)[0] for b in (body, cabin)])
    lo, hi = allpts.min(0), allpts.max(0)
    scale = S * rng.uniform(0.78, 0.9) / max(hi - lo)
    centre = (lo + hi) / 2
    offset = np.array([S / 2, S / 2]) + rng.uniform(-0.04, 0.04, 2) * S

    img = _background(cam, rng, S, backgrounds)
    polys.sort(key=lambda t: -float(np.mean(project(t[0])[1])))
    for pts, col, shade, _, _ in polys:
        p2, _ = project(pts)
        q = ((p2 - centre) * scale + offset).astype(np.int32)
        cv2.fillPoly(img, [q], tuple(int(min(255, c * shade)) for c in col), lineType=cv2.LINE_AA)
    for pts, col in details:
        p2, _ = project(pts)
        q = ((p2 - centre) * scale + offset).astype(np.int32)
        cv2.fillPoly(img, [q], tuple(int(c) for c in col), lineType=cv2.LINE_AA)
    img = img.astype(np.float32) * np.array(cam.cast, dtype=np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    if cam.blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), cam.blur * 2)
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def _rect_x(x, y0, y1, z0, z1):
    return np.array([[x, y0, z0], [x, y1, z0], [x, y1, z1], [x, y0, z1]])


def _rect_y(y, x0, x1, z0, z1):
    return np.array([[x0, y, z0], [x1, y, z0], [x1, y, z1], [x0, y, z1]])


def _disc_x(x, y, z, rad, n=10):
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([np.full(n, x), y + rad * np.cos(a), z + rad * np.sin(a)], 1)


def _disc_y(y, x, z, rad, n=12):
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([x + rad * np.cos(a), np.full(n, y), z + rad * np.sin(a)], 1)


def load_backgrounds() -> dict[str, np.ndarray]:
    """Grey textures from scikit-image's bundled samples (no download)."""
    from skimage import data

    out = {}
    for name in ("brick", "grass", "gravel"):
        im = getattr(data, name)()
        out[name] = im if im.ndim == 2 else im[..., 0]
    return out


def _background(cam: Camera, rng: np.random.Generator, S: int, backgrounds: dict | None) -> np.ndarray:
    import cv2

    if cam.background == "road" or not backgrounds:
        g = np.linspace(90, 150, S, dtype=np.float32)[:, None] + rng.normal(0, 6, (S, S)).astype(np.float32)
        grey = np.clip(g, 0, 255).astype(np.uint8)
    else:
        tex = backgrounds[cam.background]
        side = int(rng.integers(S // 2, min(tex.shape) // 1))
        y, x = rng.integers(0, tex.shape[0] - side + 1), rng.integers(0, tex.shape[1] - side + 1)
        grey = cv2.resize(np.ascontiguousarray(tex[y:y + side, x:x + side]), (S, S))
    return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))


def _sample_theta(cam: Camera, rng: np.random.Generator) -> float:
    return float((cam.azimuth + rng.uniform(-cam.spread, cam.spread)) % 360.0)


def write_veri(root: Path | str, *, train_ids: int = 80, test_ids: int = 30, images_per_id: int = 16,
               queries_per_id: int = 2, size: int = 64, seed: int = 0, with_train: bool = True) -> dict:
    """Render a VeRi-layout set under `root`; returns counts.  Every id is seen by several cameras.
    `with_train=False` renders only the query and gallery (each identity has its own generator, so they are the
    same images as in the full set: a demo evaluating shipped weights needs no training images)."""
    import cv2

    root = Path(root)
    for d in ("image_train", "image_query", "image_test"):
        (root / d).mkdir(parents=True, exist_ok=True)
    cams = make_cameras(seed)
    bgs = load_backgrounds()
    idents = make_identities(train_ids + test_ids, seed)
    names = {"train": [], "query": [], "test": []}
    vp_rows = []
    gt_ids = {}

    def emit(ident, split, folder, cam_idx, k, rng):
        cam = cams[cam_idx]
        theta = _sample_theta(cam, rng)
        img = render(ident, cam, theta, rng, size, bgs)
        name = f"{ident.vid:04d}_c{cam_idx + 1:03d}_{int(rng.integers(0, 10**8)):08d}_{k}.jpg"
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, cam.jpeg])
        (root / folder / name).write_bytes(buf.tobytes())
        names[split].append(name)
        gt_ids[name] = (ident.vid, cam_idx + 1)
        vp_rows.append((name, viewpoint5(theta), viewpoint8(theta)))

    for j, ident in enumerate(idents):
        rng = np.random.default_rng([seed, ident.vid])
        own = rng.choice(CAMERAS, size=int(rng.integers(4, 9)), replace=False)
        if j < train_ids:
            if not with_train:
                continue
            for k in range(images_per_id):
                emit(ident, "train", "image_train", int(own[k % len(own)]), k, rng)
        else:
            for k in range(images_per_id):
                emit(ident, "test", "image_test", int(own[k % len(own)]), k, rng)
            for k, c in enumerate(own[:queries_per_id]):
                emit(ident, "query", "image_query", int(c), 100 + k, rng)
    for split in names:
        (root / f"name_{split}.txt").write_text("\n".join(names[split]) + "\n")
    good, junk = [], []
    for q in names["query"]:
        qid, qc = gt_ids[q]
        good.append(" ".join(g for g in names["test"] if gt_ids[g][0] == qid and gt_ids[g][1] != qc))
        junk.append(" ".join(g for g in names["test"] if gt_ids[g][0] == qid and gt_ids[g][1] == qc))
    (root / "gt_image.txt").write_text("\n".join(good) + "\n")
    (root / "jk_image.txt").write_text("\n".join(junk) + "\n")
    train_names = set(names["train"])
    (root / "viewpoints.csv").write_text("filename,viewpoint\n" + "".join(
        f"{n},{v}\n" for n, v, _ in vp_rows if n in train_names))
    (root / "viewpoints_test.csv").write_text("filename,viewpoint\n" + "".join(
        f"{n},{v}\n" for n, v, _ in vp_rows if n not in train_names))
    (root / "viewpoints8.txt").write_text("".join(f"image_train/{n} {' '.join(['0'] * 40)} {v8}\n"
                                                  for n, _, v8 in vp_rows if n in train_names))
    (root / "SYNTHETIC.txt").write_text("SYNTHETIC VEHICLES: NOT A BENCHMARK. Rendered by wisecli "
                                        f"(seed {seed}); not VeRi-776.\n")
    return {"train": len(names["train"]), "query": len(names["query"]), "test": len(names["test"]),
            "train_ids": train_ids, "test_ids": test_ids, "cameras": CAMERAS, "size": size}


def write_aic(root: Path | str, *, train_ids: int = 20, test_ids: int = 10, images_per_id: int = 12,
              queries_per_id: int = 2, size: int = 64, seed: int = 0) -> dict:
    """Render a set (as `write_veri`) in the AIC20_ReID layout under `root`; returns counts.  SYNTHETIC."""
    import shutil
    import tempfile

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".render-", dir=root) as tmp:
        counts = write_veri(tmp, train_ids=train_ids, test_ids=test_ids, images_per_id=images_per_id,
                            queries_per_id=queries_per_id, size=size, seed=seed)
        for split, folder in (("train", "image_train"), ("query", "image_query"), ("test", "image_test")):
            (root / folder).mkdir(exist_ok=True)
            old = (Path(tmp) / f"name_{split}.txt").read_text().split()
            new = [f"{i:06d}.jpg" for i in range(1, len(old) + 1)]
            for a, b in zip(old, new):
                shutil.move(Path(tmp) / folder / a, root / folder / b)
            if split == "train":
                items = "".join(f'<Item imageName="{b}" vehicleID="{int(a[:4]):04d}" cameraID="c{a[6:9]}" />\n'
                                for a, b in zip(old, new))
                (root / "train_label.xml").write_text(
                    f'<?xml version="1.0" encoding="utf-8"?>\n<TrainingImages Version="1.0">\n'
                    f'<Items number="{len(new)}">\n{items}</Items>\n</TrainingImages>\n')
            else:
                (root / f"name_{split}.txt").write_text("\n".join(new) + "\n")
    (root / "SYNTHETIC.txt").write_text("SYNTHETIC VEHICLES: NOT A BENCHMARK. Rendered by wisecli "
                                        f"(seed {seed}); not AIC20_ReID.\n")
    return counts
