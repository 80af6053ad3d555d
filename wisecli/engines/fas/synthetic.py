"""Simulated print and replay attacks made from real faces (spec §4). Every output is labelled *simulated*:
the files live under `simulated_print/` and `simulated_replay/`, the manifest has `note=simulated`, and a
NOTICE.txt says so. They are honest stand-ins for testing the pipeline, never a benchmark.

Live pool of the built-in source (`source="skimage"`): the first 100 images of scikit-image's `lfw_subset()`
(real LFW faces, 25×25 grey tight crops) upsampled to `size`² and given a per-face random skin-tone cast
(synthetic colour, stated); plus 60 crops of `astronaut()` around its Haar/LBP face box with box jitter, gamma
0.8–1.25 and ±10° rotation. Splits: LFW 0–69 train, 70–84 dev, 85–99 test; the astronaut crops are the held-out
cross-domain split `cross`. With user images (`simulate LIVE...`), the face is detected, cropped tightly (k = 1)
and the split is left to the manifest loader (seeded, subject-disjoint).

Print (each step seeded): Lab gamut compression (chroma ×0.6–0.85, L into [10, 90]) with a warm white-balance
shift; ordered (Bayer) dither or clustered-dot halftone with cell 2–4 px; paper texture (band-limited noise,
σ 2–4 grey levels); defocus σ 0.5–1.5; a perspective warp or a bend; a paper edge on a background with p = 0.3.
Replay: resampling through a rotated RGB sub-pixel stripe grid (pitch 2–4 px, 0–15°), which aliases into moiré;
display gamma 1.2–1.6 (applied as x^(1/γ)) and a blue tint; 5–6-bit banding; 1–3 glare blobs (α 0.05–0.3); a
blurred scene reflection (α 0.05–0.15); an optional bezel (p = 0.3).
Labels: the face-ellipse mask and the template depth (see `data.face_targets`) for live faces, zeros for attacks.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

NOTICE = ("SIMULATED ATTACKS: the images under simulated_print/ and simulated_replay/ were synthesised from the\n"
          "live faces by `wise fas simulate` (halftone/paper print and screen-replay models). They are not real\n"
          "presentation attacks; results on them are not a benchmark.\n")


def _u(rng, lo, hi):
    return float(rng.uniform(lo, hi))


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT) if sigma > 0 else img


def skin_tone(grey: np.ndarray, rng) -> np.ndarray:
    """Grey [0,1] → RGB float with a random skin-like colour cast (synthetic colour)."""
    tone = np.array([1.0, _u(rng, 0.72, 0.88), _u(rng, 0.55, 0.78)]) * _u(rng, 0.85, 1.1)
    return np.clip(grey[..., None] * tone[None, None, :] / tone.max() * _u(rng, 0.9, 1.0), 0, 1)


def print_attack(rgb: np.ndarray, rng, background: np.ndarray | None = None) -> np.ndarray:
    """A simulated print attack of an RGB uint8 face (same size)."""
    import cv2

    h, w = rgb.shape[:2]
    x = rgb.astype(np.float32) / 255
    lab = cv2.cvtColor(x, cv2.COLOR_RGB2Lab)
    lab[..., 1:] *= _u(rng, 0.6, 0.85)
    lab[..., 0] = 10 + lab[..., 0] * 0.8
    lab[..., 1] += _u(rng, 0.0, 3.0)
    lab[..., 2] += _u(rng, 3.0, 8.0)
    x = np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB), 0, 1)
    cell = int(rng.integers(2, 5))
    yy, xx = np.mgrid[0:h, 0:w]
    if rng.random() < 0.5:  # ordered dither with a Bayer matrix of the cell size (2 or 4; 3 uses 4)
        n = 2 if cell == 2 else 4
        b2 = np.array([[0, 2], [3, 1]], dtype=np.float32)
        bay = b2 if n == 2 else np.block([[4 * b2, 4 * b2 + 2], [4 * b2 + 3, 4 * b2 + 1]])
        thr = ((bay + 0.5) / (n * n))[yy % n, xx % n]
    else:  # clustered-dot halftone: threshold grows with the distance to the cell centre
        d = np.hypot((yy % cell) + 0.5 - cell / 2, (xx % cell) + 0.5 - cell / 2)
        thr = d / (d.max() + 1e-6)
    levels = 4
    x = np.floor(x * (levels - 1) + thr[..., None]) / (levels - 1)
    noise = _blur(rng.normal(0, 1, (h, w)).astype(np.float32), 1.2)
    noise *= _u(rng, 2, 4) / 255 / (noise.std() + 1e-6)
    x = np.clip(x + noise[..., None], 0, 1)
    x = _blur(x.astype(np.float32), _u(rng, 0.5, 1.5))
    edge = rng.random() < 0.3
    if rng.random() < 0.5:  # perspective warp of the sheet
        j = 0.06 * w
        src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        dst = src + rng.uniform(-j, j, (4, 2)).astype(np.float32)
        if edge:  # shrink the sheet so its edge shows on the background
            c = np.float32([w / 2, h / 2])
            dst = c + (dst - c) * _u(rng, 0.8, 0.92)
        m = cv2.getPerspectiveTransform(src, dst)
        mode = cv2.BORDER_CONSTANT if edge else cv2.BORDER_REFLECT
        warped = cv2.warpPerspective(x, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=mode, borderValue=(-1, -1, -1))
    else:  # a bend: sinusoidal horizontal displacement
        amp, per = _u(rng, 0.5, 2.0), _u(rng, 0.8, 2.0) * w
        mx = (xx + amp * np.sin(2 * np.pi * yy / per)).astype(np.float32)
        my = yy.astype(np.float32)
        if edge:
            s = _u(rng, 0.8, 0.92)
            mx = (mx - w / 2) / s + w / 2
            my = (my - h / 2) / s + h / 2
        mode = cv2.BORDER_CONSTANT if edge else cv2.BORDER_REFLECT
        warped = cv2.remap(x, mx, my, cv2.INTER_LINEAR, borderMode=mode, borderValue=(-1, -1, -1))
    if edge:
        bg = background.astype(np.float32) / 255 if background is not None else np.full_like(x, _u(rng, 0.2, 0.6))
        warped = np.where(warped < 0, bg, warped)
    return np.clip(warped * 255 + 0.5, 0, 255).astype(np.uint8)


def replay_attack(rgb: np.ndarray, rng, scene: np.ndarray | None = None) -> np.ndarray:
    """A simulated screen-replay attack of an RGB uint8 face (same size)."""
    h, w = rgb.shape[:2]
    x = rgb.astype(np.float32) / 255
    pitch, ang = _u(rng, 2, 4), np.deg2rad(_u(rng, 0, 15))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u = xx * np.cos(ang) + yy * np.sin(ang)
    v = -xx * np.sin(ang) + yy * np.cos(ang)
    phase = (u % pitch) / pitch
    stripes = np.stack([(phase >= c / 3) & (phase < (c + 1) / 3) for c in range(3)], axis=-1).astype(np.float32)
    gap = np.where((v % pitch) / pitch < 0.2, 0.6, 1.0).astype(np.float32)[..., None]
    sub = _blur(stripes * gap, 0.6)
    x = x * (0.7 + 0.9 * sub)  # the camera integrates the lit sub-pixels: aliased colour moiré
    x = np.clip(x, 0, 1) ** (1 / _u(rng, 1.2, 1.6))
    x = x * np.array([_u(rng, 0.9, 0.97), 1.0, _u(rng, 1.05, 1.15)], dtype=np.float32)
    bits = int(rng.integers(5, 7))
    q = 2 ** bits - 1
    x = np.round(np.clip(x, 0, 1) * q) / q
    for _ in range(int(rng.integers(1, 4))):
        cy, cx, r = _u(rng, 0, h), _u(rng, 0, w), _u(rng, 0.08, 0.25) * w
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[..., None]
        x = x + _u(rng, 0.05, 0.3) * blob * (1 - x)
    if scene is None:
        scene = _blur(rng.uniform(0, 1, (h, w, 3)).astype(np.float32), w / 10)
        scene = (scene - scene.min()) / (np.ptp(scene) + 1e-6)
    else:
        scene = scene.astype(np.float32) / 255
    a = _u(rng, 0.05, 0.15)
    x = (1 - a) * x + a * _blur(scene.astype(np.float32), _u(rng, 2, 5))
    if rng.random() < 0.3:  # bezel on one or two sides
        k = max(1, int(_u(rng, 0.02, 0.06) * w))
        col = _u(rng, 0.02, 0.12)
        side = int(rng.integers(0, 4))
        if side == 0:
            x[:, :k] = col
        elif side == 1:
            x[:, -k:] = col
        elif side == 2:
            x[:k] = col
        else:
            x[-k:] = col
    return np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)


def skimage_live_pool(size: int, rng) -> list[dict]:
    """The built-in live faces: 100 LFW faces (train/dev/test) and 60 astronaut crops (cross)."""
    import cv2
    from skimage import data

    from wisecli.engines.fas.detect import make_detector

    pool = []
    lfw = data.lfw_subset()[:100]
    for i, g in enumerate(lfw):
        up = cv2.resize(g.astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
        rgb = (skin_tone(np.clip(up, 0, 1), rng) * 255 + 0.5).astype(np.uint8)
        split = "train" if i < 70 else "dev" if i < 85 else "test"
        pool.append({"image": rgb, "subject": f"lfw{i:03d}", "split": split})
    astro = data.astronaut()
    box = make_detector("lbp").detect(astro)  # LBP needs no OpenCV cascade; Haar agrees (IoU 0.85)
    x, y, w, h = box
    for j in range(60):
        s = _u(rng, 1.0, 1.2)
        cx = x + w / 2 + _u(rng, -0.08, 0.08) * w
        cy = y + h / 2 + _u(rng, -0.08, 0.08) * h
        m = cv2.getRotationMatrix2D((cx, cy), _u(rng, -10, 10), 1.0)
        rot = cv2.warpAffine(astro, m, (astro.shape[1], astro.shape[0]), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
        from wisecli.engines.fas.detect import crop_face

        side = s * max(w, h)
        crop = crop_face(rot, (cx - side / 2, cy - side / 2, side, side), 1.0, size)
        crop = np.clip(255 * (crop / 255.0) ** _u(rng, 0.8, 1.25) + 0.5, 0, 255).astype(np.uint8)
        pool.append({"image": crop, "subject": f"astronaut{j:02d}", "split": "cross"})
    return pool


def user_live_pool(paths: list[Path], size: int, detector: str, on_error) -> list[dict]:
    """Live faces from the user's images: detect, crop the face box tightly (k = 1), resize to size²."""
    from wisecli.engines.fas.detect import crop_face, make_detector
    from wisecli.engines.fas.data import read_rgb

    det = make_detector(detector)
    pool = []
    for p in paths:
        img = read_rgb(p)
        box = det.detect(img)
        if box is None:
            on_error(p, "no face found")
            continue
        pool.append({"image": crop_face(img, box, 1.0, size), "subject": Path(p).stem, "split": None})
    return pool


def write_simulated(pool: list[dict], out_dir: Path, *, size: int, seed: int) -> dict:
    """Write live faces, their print and replay attacks, template depth labels and `manifest.csv` (every file
    atomically; an encoder or a write that fails is an OutputError, exit 1)."""
    import torch

    from wisecli.engines.fas.data import face_targets
    from wisecli.runtime.io.atomic import write_text
    from wisecli.runtime.io.images import write_image

    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    for sub in ("live", "simulated_print", "simulated_replay", "depth"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    one = torch.ones(1)
    _, depth = face_targets(one, one, size, need_depth=True)
    depth_png = (depth[0, 0].numpy() * 255 + 0.5).astype(np.uint8)
    rows = []
    counts = {"live": 0, "print": 0, "replay": 0}
    for k, item in enumerate(pool):
        other = pool[(k + 1 + int(rng.integers(0, len(pool) - 1))) % len(pool)]["image"] if len(pool) > 1 else None
        stem = item["subject"]
        live_p, d_p = f"live/{stem}.png", f"depth/{stem}.png"
        write_image(out_dir / live_p, item["image"])
        write_image(out_dir / d_p, depth_png)
        split = item["split"] or ""
        rows.append([live_p, 1, "", stem, split, d_p, "live"])
        counts["live"] += 1
        for kind, fn in (("print", print_attack), ("replay", replay_attack)):
            p = f"simulated_{kind}/{stem}_{kind}.png"
            write_image(out_dir / p, fn(item["image"], rng, other))
            rows.append([p, 0, kind, stem, split, "", "simulated"])
            counts[kind] += 1
    header = ["path", "label", "attack_type", "subject", "split", "depth", "note"]
    if not any(r[4] for r in rows):  # no fixed splits: let the manifest loader split by subject
        header.remove("split")
        rows = [r[:4] + r[5:] for r in rows]
    import io

    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\n")
    wr.writerow(header)
    wr.writerows(rows)
    write_text(out_dir / "manifest.csv", buf.getvalue())
    write_text(out_dir / "NOTICE.txt", NOTICE)
    return {"out_dir": str(out_dir), "manifest": str(out_dir / "manifest.csv"), "counts": counts, "size": size,
            "seed": seed, "simulated": True}



def simulate(inputs, out_dir, *, size: int = 64, seed: int = 0, detector: str = "haar", overwrite: bool = False,
             sink=None) -> dict:
    """Simulated print and replay attacks of live faces (the user's images, or scikit-image's faces when `inputs`
    is empty) written into `out_dir` with labels and a manifest; returns the counts, the manifest path and the
    inputs without a face (`errors`; `records`: one per input image, status ok or error). A non-empty `out_dir` is refused unless `overwrite`."""
    from wisecli.cli.errors import InputError
    from wisecli.runtime.rundir import made_dir

    if size < 16:
        raise InputError(f"--size {size} is too small", "use 32 or more")
    if seed < 0:
        raise InputError(f"--seed {seed} must be zero or more", "e.g. --seed 0")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"output folder {out_dir} is a file", "give a folder for -o")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise InputError(f"output folder {out_dir} is not empty", "pass --overwrite or choose another -o")
    rng = np.random.default_rng(seed)
    errors = []
    if inputs:
        pool = user_live_pool(inputs, size, detector, lambda p, m: errors.append({"input": str(p), "error": m}))
        if not pool:
            raise InputError("no face found in any input image", "try --detector lbp, or crop the faces and use none")
    else:
        if sink is not None:
            sink.info("no inputs: simulating attacks on scikit-image's faces (lfw_subset, astronaut)")
        pool = skimage_live_pool(size, rng)
    with made_dir(out_dir):
        res = write_simulated(pool, out_dir, size=size, seed=seed)
    res["source"] = "user images" if inputs else "scikit-image lfw_subset + astronaut"
    res["errors"] = errors
    bad = {e["input"]: e["error"] for e in errors}
    res["records"] = [{"input": str(p), "status": "error", "error": bad[str(p)]} if str(p) in bad else
                      {"input": str(p), "status": "ok"} for p in inputs or []]
    for e in errors:
        if sink is not None:
            sink.warn(f"{e['input']}: {e['error']}")
    return res
