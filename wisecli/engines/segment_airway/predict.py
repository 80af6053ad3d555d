"""Airway inference (spec §2.4): read → canonical order → HU check → lung crop → MONAI sliding window
(bf16 on CUDA) → threshold → largest component → hole filling → paste back → undo the reorder → write with
the input's exact geometry → tree parse.

Choices where the spec is silent:
- Canonical order permutes/flips the array so that its axes run along +x, +y, +z of LPS (no resampling); the
  inverse is applied to every output, so masks keep the input's storage order and geometry bit for bit.
- The window predictor returns probabilities (sigmoid of the folded WingsNet's logit) in fp32, so the MONAI
  accumulators are fp32 probabilities; `--tta` averages the identity and the three single-axis flips.
- Lung crop [reconstructed]: on a 4×-average-pooled copy on the device; body = largest HU > −500 component
  filled per axial slice; air = HU < −400 inside it, components above 1 % of the largest; box + 10 mm.
  Below 0.3 L of air or a box axis under 64 voxels, it warns and uses the whole volume.
- On CUDA out-of-memory the window pass is retried once with window batch 1 and stitching on the CPU.

On the CPU (spec §7: fp32, sw batch 1, no compile; issue 13 point 7), with the same windows and the same output
to fp32 rounding:
- The model stays NCDHW: one 128³ window cost 10.4 CPU-s against 13.6 with the channels_last_3d weights that
  training uses (`model.cpu_layout`; InstanceNorm, pooling and up-sampling have no fast blocked kernels).
- An `--sw-batch` left at its default becomes 1 (InstanceNorm is per window, so the output is the same):
  1.25 against 1.42 CPU-s per 64³ window at batch 4, and a quarter of the activations.
- The window pass runs in `runtime.device.cpu_compute`: no more torch threads than usable cores (cgroup quota
  and affinity), and glibc keeps freed activations in the heap instead of unmapping them, so the kernel no
  longer zeroes fresh pages for every op (system time was 20–25 % of user time; ≈ 8 % with the heap kept but
  trimmed at 1 GiB after each 128³ window; 0.0 % with trimming off).
- A progress bar counts windows done of `window_count(...)` and the time left (a line every 30 s off a terminal).
- An `--overlap` left at its default becomes 0.25 (`api.CPU_OVERLAP`, said on stderr; issue 13 point 7), the
  ATM'22 baseline's overlap; `--overlap 0.5` restores the GPU's, and `PredictOptions` itself keeps 0.5 (the API's
  `opts=` is used as given). The arithmetic, on a 2-core AVX2 EPYC at 2.45 GHz, fp32: one 128³ window is 614 GFLOP
  and costs 12.2–13.2 CPU-s (system time 0.00–0.44 s, ≤ 3.4 % of user, since `cpu_compute` stopped the heap
  trimming; 13.6–13.8 with 1.0 s of it before). A 512×512×388 CT's lung box (388×302×406) is 48 windows at 0.25:
  48 × 13.2 CPU-s / 2 cores ≈ 317 s ≈ 5.3 min on 2 idle cores, within the 8 minutes; at 0.5 it is 144 windows,
  ≈ 950 s ≈ 16 min.
  No CPU path of the same fp32 model at overlap 0.5 fits 8 minutes there: 144 × 614 GFLOP in 480 s needs
  184 GFLOP/s, above the two cores' FMA peak (2 × 32 FLOP/cycle × 2.45 GHz = 157 GFLOP/s). Measured and not
  adopted: channels_last_3d weights (first bullet), `torch.compile` on the CPU (−10 % a window
  at 64³, 1.05–1.14 against 1.19–1.23 CPU-s, after 78 s of compiling), one thread (12.7 CPU-s against 13.0 with
  two, so two windows in parallel gain ≤ 3 %), larger windows (roi 160: 20.1 CPU-s a window, 4.2 GB peak, i.e.
  10.3 CPU-s per 128³ of voxels; 28.5 with 5.7 s of system time before its 1.05 GB activations fitted under the
  mmap threshold; at 0.5 60 windows ≈ 600 s ≈ 10 min; at 0.4, the same 64-voxel overlap as 128 at 0.5, 48 windows
  ≈ 483 s ≈ 8.0 min, at the limit, its quality unmeasured: the window statistics differ from training's 128³,
  and InstanceNorm makes that matter: the demo model, trained on 24³ crops, scores DSC 80.3 / 76.4 / 77.6 % at
  roi 32 / 40 / 48 (overlap 0.5) and 0 at roi 56 and 64 on the demo phantom [measured], so roi stays 128;
  roi 192 at 0.5: 48 windows of 3.4× the voxels; roi 256: 18 of 8×). The non-convolution ops
  (InstanceNorm, up-sampling, pooling, concatenation, gates) are 27 % of a window (profile at 96³): removing them
  all would still leave 0.5 over 8 minutes.
  Quality: the 6.5-point DSC gap first reported (demo held-out phantom, shipped weights, roi 48: 77.6 at 0.5,
  71.2 at 0.25) is where the window grid falls on the anatomy, not the overlap. Moving the grid by cutting the first
  k = 0…7 voxels on every axis (2 held-out phantoms, `bench.overlap_study`), 0.5 averages DSC 73.1 % (71.1–77.4)
  and 0.25 72.9 % (71.1–74.0), TD 77.9 against 78.1 %, BD 44.4 % both; overlap 0.375 (the same 27 windows as 0.5
  there) scores 71.1 at k = 0, and spreading 0.25's windows evenly (the same count, per-axis overlap 0.33–0.56)
  70.7 on average. The demo model is a quarter-width WingsNet trained on 24³ crops: a full model's border
  behaviour can differ, which only a real CT with real weights settles.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from wisecli.cli.errors import InputError

METHOD = "segment-airway"
ARCH = "wingsnet"
DEFAULT_HU_WINDOWS = ((-1000.0, 400.0),)


@dataclass
class PredictOptions:
    """The settings of one `predict` run (the command's values come from `api.DEFAULTS["predict"]`)."""

    roi: int = 128
    overlap: float = 0.5
    blend: str = "gaussian"
    sw_batch: int = 4
    tta: bool = False
    threshold: float = 0.5
    connectivity: int = 6
    fill_holes: bool = True
    crop: bool = True
    tree: bool = True
    probabilities: bool = False
    branches: bool = False
    preview: bool = False
    fmt: str = "nii.gz"
    hu_offset: float = 0.0
    hu_check: bool = True
    compile: str = "auto"
    amp: bool = True

    def validate(self):
        """Refuse values the CLI types cannot (roi not a multiple of 8, overlap outside [0, 1), ...): exit 2."""
        if self.roi < 32 or self.roi % 8:
            raise InputError(f"--roi {self.roi} must be a multiple of 8 and at least 32",
                             hint="WingsNet pools three times; use e.g. --roi 128")
        if not 0 <= self.overlap < 1:
            raise InputError(f"--overlap {self.overlap} must lie in [0, 1)", hint="the default is 0.5")
        if self.connectivity not in (6, 18, 26):
            raise InputError(f"--connectivity {self.connectivity} must be 6, 18 or 26", hint="the default is 6")
        if self.blend not in ("gaussian", "constant"):
            raise InputError(f"--blend {self.blend!r} must be gaussian or constant", hint="the default is gaussian")
        if self.sw_batch < 1:
            raise InputError("--sw-batch must be at least 1", hint="the default is 4")
        if not math.isfinite(self.hu_offset):
            raise InputError(f"--hu-offset {self.hu_offset} must be a finite number", hint="for example -1024")
        if not 0 < self.threshold < 1:
            raise InputError("--threshold must lie in (0, 1)", hint="the default is 0.5")
        if self.fmt not in ("nii.gz", "mha", "nrrd"):
            raise InputError(f"--format {self.fmt!r} is not one of nii.gz, mha, nrrd", hint="the default is nii.gz")
        if self.compile not in ("auto", "on", "off"):
            raise InputError(f"--compile {self.compile!r} must be auto, on or off", hint="the default is auto")


# ---------------------------------------------------------------- orientation
def canonical_transform(direction) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """For an array in (z, y, x) storage with a direction matrix (columns = index axes i, j, k), the axis
    permutation and flips that bring it to canonical (z, y, x) along +LPS."""
    D = np.asarray(direction, float).reshape(3, 3)
    world = np.abs(D).argmax(0)  # world axis of each index axis i, j, k
    if sorted(world) != [0, 1, 2]:
        world = np.array([0, 1, 2])
    sign = np.sign(D[world, [0, 1, 2]])
    # array axis a (z=0, y=1, x=2) is index axis 2 − a; the canonical array axis for world w is 2 − w
    perm = [0, 0, 0]
    flips = [False, False, False]
    for idx_axis in range(3):
        src = 2 - idx_axis
        dst = 2 - int(world[idx_axis])
        perm[dst] = src
        flips[dst] = bool(sign[idx_axis] < 0)
    return tuple(perm), tuple(flips)


def to_canonical(arr: np.ndarray, perm, flips) -> np.ndarray:
    out = np.transpose(arr, perm)
    for ax, f in enumerate(flips):
        if f:
            out = np.flip(out, ax)
    return np.ascontiguousarray(out)


def from_canonical(arr: np.ndarray, perm, flips) -> np.ndarray:
    for ax, f in enumerate(flips):
        if f:
            arr = np.flip(arr, ax)
    return np.ascontiguousarray(np.transpose(arr, np.argsort(perm)))


def hu_problem(arr: np.ndarray) -> str | None:
    """Spec §4 HU check: ≥ 5 % of voxels below −500 and a 1st percentile below −800."""
    sample = arr.ravel()[:: max(1, arr.size // 2_000_000)]
    low = float((sample < -500).mean())
    p1 = float(np.percentile(sample, 1))
    if low < 0.05 or p1 >= -800:
        return f"values do not look like HU ({100 * low:.1f} % below -500, 1st percentile {p1:.0f})"
    return None


# ---------------------------------------------------------------- lung crop
def lung_crop(hu, spacing_zyx, *, margin_mm: float = 10.0, pool: int = 4):
    """Box (slices) of the lungs + margin on a canonical HU tensor, or (None, warning) for the full volume."""
    import torch.nn.functional as F
    from scipy import ndimage

    x = hu[None, None].float()
    pooled = F.avg_pool3d(x, pool, ceil_mode=True)[0, 0].cpu().numpy()
    body_raw, n = ndimage.label(pooled > -500)
    if n == 0:
        return None, "no body found for the lung crop; using the whole volume"
    body = body_raw == np.bincount(body_raw.ravel())[1:].argmax() + 1
    for z in range(body.shape[0]):
        body[z] = ndimage.binary_fill_holes(body[z])
    air = (pooled < -400) & body
    lab, n = ndimage.label(air)
    if n == 0:
        return None, "no air inside the body for the lung crop; using the whole volume"
    sizes = np.bincount(lab.ravel())[1:]
    keep = np.flatnonzero(sizes >= 0.01 * sizes.max()) + 1
    lungs = np.isin(lab, keep)
    vox_ml = float(np.prod(spacing_zyx)) * pool ** 3 / 1000.0
    if lungs.sum() * vox_ml / 1000.0 < 0.3:
        return None, f"only {lungs.sum() * vox_ml / 1000:.2f} L of air found; lung crop skipped"
    idx = np.argwhere(lungs)
    lo, hi = idx.min(0) * pool, (idx.max(0) + 1) * pool
    m = np.ceil(margin_mm / np.asarray(spacing_zyx)).astype(int)
    shape = np.array(hu.shape)
    lo, hi = np.maximum(lo - m, 0), np.minimum(hi + m, shape)
    if np.any(hi - lo < 64):
        return None, "lung box has an axis under 64 voxels; lung crop skipped"
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi)), None


# ---------------------------------------------------------------- network pass
def normalise(hu, windows):
    """(1, C, D, H, W) tensor: each HU window mapped to [0, 1] (one channel per window)."""
    import torch

    chans = [((hu - lo) / (hi - lo)).clamp_(0, 1) for lo, hi in windows]
    return torch.stack(chans)[None]


def window_count(shape, roi: int, overlap: float) -> int:
    """The number of windows MONAI's `sliding_window_inference` runs on a volume of `shape` (D, H, W): per axis
    ceil((max(s, roi) − roi) / step) + 1 with step = int(roi · (1 − overlap)) (at least 1); MONAI pads an axis
    shorter than the window up to it. 512×512×388 at roi 128, overlap 0.5: 7·7·6 = 294; overlap 0.25: 5·5·4 = 100."""
    n = 1
    step = max(int(roi * (1 - overlap)), 1)
    for s in shape:
        n *= max(1, -(-(max(int(s), roi) - roi) // step) + 1)
    return n


def window_pass(model, x, opts: PredictOptions, device, *, sw_batch=None, stitch_device=None, advance=None):
    """Sliding-window probabilities (1, 1, D, H, W) in fp32 (MONAI sliding_window_inference); `advance(n)` is
    called after each forward pass with the number of windows it ran (for the progress bar)."""
    import torch
    from monai.inferers import sliding_window_inference

    from wisecli.runtime.device import autocast

    fwd = getattr(model, "_wise_compiled", None) or model.folded_forward

    def predictor(w):
        with autocast(device, opts.amp):
            out = torch.sigmoid(fwd(w).float())
        if advance is not None:
            advance(int(w.shape[0]))
        return out

    def run(t):
        return sliding_window_inference(
            t, (opts.roi,) * 3, sw_batch or opts.sw_batch, predictor, overlap=opts.overlap,
            mode=opts.blend, sigma_scale=0.125, padding_mode="constant", cval=0.0,
            sw_device=device, device=stitch_device or device)

    with torch.inference_mode():
        if not opts.tta:
            return run(x)
        acc = run(x)
        for ax in (2, 3, 4):
            acc += torch.flip(run(torch.flip(x, (ax,))), (ax,))
        return acc / 4


def postprocess(mask: np.ndarray, connectivity: int = 6, fill: bool = True) -> np.ndarray:
    """Largest component (6/18/26) then 3D hole filling, in the mask's box. The default (6, filled) is the
    reference's G′, so it takes the parse's sparse path (`tree.reference_mask`: on the `ct` phantom 0.14 s
    against 1.25 s of dense scipy passes)."""
    from scipy import ndimage

    from .tree import largest_component, mask_box, reference_mask

    if connectivity == 6 and fill:
        return reference_mask(mask)
    m = largest_component(mask, connectivity)
    if fill:
        box = mask_box(m, pad=1)
        if box is not None:
            m[box] = ndimage.binary_fill_holes(m[box])
    return m


@dataclass
class Segmentation:
    mask: np.ndarray                      # uint8, storage order
    prob: np.ndarray | None               # float32, storage order
    stages: dict = field(default_factory=dict)
    crop_fraction: float = 1.0
    warnings: list = field(default_factory=list)
    windows: int = 0                      # windows the network ran (× 4 with --tta)


def segment(model, hu: np.ndarray, direction, spacing_xyz, opts: PredictOptions, device, *,
            windows=DEFAULT_HU_WINDOWS, progress_label: str | None = None) -> Segmentation:
    """Segment one HU volume given in storage order (z, y, x) with its direction and spacing. With
    `progress_label`, a progress bar (or a line every 30 s off a terminal) counts the windows done and the time
    left. The window pass runs inside `runtime.device.cpu_compute` (on the CPU: no more threads than usable
    cores, freed activations kept in the heap; both restored afterwards)."""
    import torch

    from wisecli.runtime.device import cpu_compute
    from wisecli.runtime.progress import progress

    stages, warns = {}, []
    t = time.perf_counter()
    perm, flips = canonical_transform(direction)
    can = to_canonical(hu, perm, flips)
    sp_zyx = np.asarray(spacing_xyz, float)[::-1][list(perm)]
    pin = torch.from_numpy(can)
    if device.type == "cuda":
        pin = pin.pin_memory()
    x = pin.to(device, non_blocking=True).float()
    box = None
    if opts.crop:
        box, w = lung_crop(x, sp_zyx)
        if w:
            warns.append(w)
    sub = x[box] if box is not None else x
    crop_fraction = float(sub.numel()) / float(x.numel())
    stages["crop"] = time.perf_counter() - t
    t = time.perf_counter()
    inp = normalise(sub, windows)
    n_windows = window_count(inp.shape[2:], opts.roi, opts.overlap) * (4 if opts.tta else 1)
    with cpu_compute(device), progress(f"{progress_label}: windows", n_windows,
                                       show=progress_label is not None, eta=True) as advance:
        try:
            try:
                prob = window_pass(model, inp, opts, device, advance=advance)
            except (RuntimeError, AssertionError) as e:
                if getattr(model, "_wise_compiled", None) is None or isinstance(e, torch.OutOfMemoryError):
                    raise
                # torch.compile failed on this platform: run eagerly from now on
                model._wise_compiled = None
                warns.append(f"torch.compile failed ({type(e).__name__}); running eagerly")
                prob = window_pass(model, inp, opts, device)
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            warns.append("CUDA out of memory; retried with --sw-batch 1 and CPU stitching")
            prob = window_pass(model, inp, opts, device, sw_batch=1, stitch_device=torch.device("cpu"))
    prob = prob[0, 0]
    fg = (prob >= opts.threshold).cpu().numpy()
    stages["infer"] = time.perf_counter() - t
    t = time.perf_counter()
    sub_mask = postprocess(fg, opts.connectivity, opts.fill_holes)
    full = np.zeros(can.shape, np.uint8)
    full[box if box is not None else (slice(None),) * 3] = sub_mask
    mask = from_canonical(full, perm, flips)
    p_full = None
    if opts.probabilities:
        pf = np.zeros(can.shape, np.float32)
        pf[box if box is not None else (slice(None),) * 3] = prob.float().cpu().numpy()
        p_full = from_canonical(pf, perm, flips)
    stages["post"] = time.perf_counter() - t
    return Segmentation(mask, p_full, stages, crop_fraction, warns, n_windows)


def generation_preview(image_hu: np.ndarray, gen_map: np.ndarray, spacing_xyz, direction) -> np.ndarray:
    """Coronal and sagittal MIPs of the mask coloured by generation over a lung-window mean projection,
    side by side, resampled to square pixels (RGB uint8)."""
    import cv2

    perm, flips = canonical_transform(direction)
    img = to_canonical(image_hu, perm, flips).astype(np.float32)
    gen = to_canonical(gen_map, perm, flips)
    sp = np.asarray(spacing_xyz, float)[::-1][list(perm)]  # z, y, x
    panels = []
    for ax in (1, 2):  # coronal (project y), sagittal (project x)
        bg = np.clip((img.mean(ax) + 1000.0) / 1000.0, 0, 1)
        g = gen.max(ax).astype(np.float32)
        rgb = np.repeat((bg * 255).astype(np.uint8)[..., None], 3, 2)
        if g.max() > 0:
            col = cv2.applyColorMap((255 * (g - 1).clip(0) / max(g.max() - 1, 1)).astype(np.uint8),
                                    cv2.COLORMAP_TURBO)[..., ::-1]
            rgb = np.where((g > 0)[..., None], col, rgb)
        rgb = rgb[::-1]  # superior at the top
        other = sp[2] if ax == 1 else sp[1]
        h = int(round(rgb.shape[0] * sp[0] / min(sp[0], other)))
        w = int(round(rgb.shape[1] * other / min(sp[0], other)))
        panels.append(cv2.resize(np.ascontiguousarray(rgb), (w, h), interpolation=cv2.INTER_NEAREST))
    hmax = max(p.shape[0] for p in panels)
    panels = [np.pad(p, ((0, hmax - p.shape[0]), (0, 4), (0, 0))) for p in panels]
    return np.concatenate(panels, 1)


# ---------------------------------------------------------------- the `predict` verb
def check_weights(weights) -> dict:
    """Load a checkpoint on the CPU (weights_only) and check method and arch; InputError otherwise."""
    from pathlib import Path

    from wisecli.runtime.checkpoints import load_checkpoint

    doc = load_checkpoint(Path(weights), method=METHOD)
    if doc.get("arch") != ARCH:
        raise InputError(f"{weights} holds a '{doc.get('arch')}' model, not '{ARCH}'",
                         hint="use a checkpoint written by 'wise segment-airway train'")
    return doc


def load_model(weights, device, *, compile_mode: str = "off", n_items: int = 1, doc: dict | None = None):
    """WingsNet from a segment-airway checkpoint (weights_only; `doc` when the caller has loaded it already
    with `check_weights`); returns (model, checkpoint doc)."""
    import torch

    from .model import build_model

    doc = check_weights(weights) if doc is None else doc
    model = build_model(doc.get("config", {}))
    try:
        model.load_state_dict(doc["state_dict"])
    except (RuntimeError, KeyError) as e:
        raise InputError(f"{weights}: weights do not fit WingsNet ({str(e).splitlines()[0][:120]})",
                         hint="the checkpoint's config and state_dict disagree; retrain or use another file") from None
    model = model.to(device).eval()  # NCDHW: see the module docstring
    if compile_mode == "on" or (compile_mode == "auto" and device.type == "cuda" and n_items >= 4):
        model._wise_compiled = torch.compile(model.folded_forward, dynamic=False)
    return model, doc


def hu_windows(config: dict):
    """The HU windows a checkpoint was trained with (one input channel each)."""
    w = config.get("hu_windows") or [list(w) for w in DEFAULT_HU_WINDOWS]
    return tuple((float(a), float(b)) for a, b in w)


def predict_outputs(item, out_dir, opts: PredictOptions) -> list:
    """The output paths of one input: mask first, then tree JSON, probabilities, branch ids, preview."""
    from pathlib import Path

    from wisecli.runtime.batch import stem_of

    stem, out_dir = stem_of(item), Path(out_dir)
    outs = [out_dir / f"{stem}_airway.{opts.fmt}"]
    if opts.tree:
        outs.append(out_dir / f"{stem}_airway_tree.json")
    if opts.probabilities:
        outs.append(out_dir / f"{stem}_prob.{opts.fmt}")
    if opts.branches:
        outs.append(out_dir / f"{stem}_branches.{opts.fmt}")
    if opts.preview:
        outs.append(out_dir / f"{stem}_preview.png")
    return outs


def read_ct(path, *, hu_offset: float = 0.0, hu_check: bool = True, series: str | None = None):
    """Read a CT volume (file or DICOM folder through `runtime.io.volumes`; `series` picks one of several),
    add the HU offset and check it looks like HU. Returns (volume, float32 HU array)."""
    from wisecli.runtime.io.volumes import read_volume

    vol = read_volume(path, series=series)
    arr = np.asarray(vol.array)
    if arr.ndim != 3 or min(arr.shape) < 16:
        raise InputError(f"{path}: not a 3D volume with every axis ≥ 16 voxels (shape {arr.shape[::-1]})",
                         hint="give a 3D CT volume")
    hu = arr.astype(np.float32)
    if hu_offset:
        hu += float(hu_offset)
    if hu_check:
        why = hu_problem(hu)
        if why:
            raise InputError(f"{path}: {why}",
                             hint="raw scanner values? try --hu-offset -1024 (or --no-hu-check)")
    return vol, hu


def run_predict(items: list, out_dir, weights, opts: PredictOptions, device, *, sink, series=None,
                skip_existing=False, overwrite=False, fail_fast=False, debug=False, run_record=None,
                checkpoint: dict | None = None) -> list[dict]:
    """Load the model once (from `checkpoint`, the doc `check_weights` returned, when given), then segment every item with `runtime.batch.run_batch`: mask, tree JSON and the
    optional outputs, written atomically. Returns one record per input (`ok`, `skipped` or `error`)."""
    from pathlib import Path

    from wisecli.runtime.batch import BatchOptions, run_batch
    from wisecli.runtime.io.atomic import write_json
    from wisecli.runtime.io.volumes import write_volume

    from .tree import branch_table, parse_tree, tree_summary

    model, doc = load_model(weights, device, compile_mode=opts.compile, n_items=len(items), doc=checkpoint)
    windows = hu_windows(doc.get("config", {}))
    median = doc.get("train_spacing_median")
    out_dir = Path(out_dir)

    def process(item: Path) -> dict:
        stages = {}
        t = time.perf_counter()
        vol, hu = read_ct(item, hu_offset=opts.hu_offset, hu_check=opts.hu_check, series=series)
        stages["read"] = time.perf_counter() - t
        warns = []
        if median:
            ratio = np.asarray(vol.spacing, float) / np.asarray(median, float)
            if np.any(ratio > 2) or np.any(ratio < 0.5):
                warns.append(f"spacing {tuple(round(s, 3) for s in vol.spacing)} is more than 2x off the "
                             f"training median {tuple(round(float(s), 3) for s in median)}")
        seg = segment(model, hu, vol.direction, vol.spacing, opts, device, windows=windows,
                      progress_label=Path(item).name)
        stages.update(seg.stages)
        warns += seg.warnings
        outs = predict_outputs(item, out_dir, opts)
        t = time.perf_counter()
        tree_doc, parse = None, None
        if opts.tree or opts.branches or opts.preview:
            parse = parse_tree(seg.mask, vol.spacing)
        if parse is not None:
            rows = branch_table(parse, seg.mask, vol.spacing, vol.origin, vol.direction)
            tree_doc = {"spacing": list(vol.spacing), "summary": tree_summary(rows, seg.mask, vol.spacing),
                        "branches": rows}
        if not seg.mask.any():
            warns.append("empty prediction: empty mask, null tree")
        stages["tree"] = time.perf_counter() - t
        t = time.perf_counter()
        write_volume(outs[0], seg.mask.astype(np.uint8), like=vol)
        k = 1
        if opts.tree:
            write_json(outs[k], tree_doc)
            k += 1
        if opts.probabilities:
            write_volume(outs[k], seg.prob.astype(np.float32), like=vol)
            k += 1
        if opts.branches:
            lab = parse.full_labels() if parse is not None else np.zeros(seg.mask.shape, np.uint16)
            write_volume(outs[k], lab, like=vol)
            k += 1
        if opts.preview:
            from wisecli.runtime.io.images import write_image

            gen = np.zeros(seg.mask.shape, np.uint8)
            if parse is not None:
                g_of = np.concatenate([[0], parse.generation[1:] + 1]).astype(np.uint8)
                gen = g_of[parse.full_labels(np.int32)]
            write_image(outs[k], generation_preview(hu, gen, vol.spacing, vol.direction))
        stages["write"] = time.perf_counter() - t
        for w in warns:
            sink.warn(f"{Path(item).name}: {w}")
        return {"output": str(outs[0]), "outputs": [str(p) for p in outs[1:]],
                "stages": {k2: round(v, 4) for k2, v in stages.items()},
                "crop_fraction": round(seg.crop_fraction, 4), "windows": seg.windows,
                "tree": tree_doc["summary"] if tree_doc else None, "warnings": warns}

    bo = BatchOptions(out_dir=out_dir, skip_existing=skip_existing, overwrite=overwrite, fail_fast=fail_fast,
                      debug=debug)
    return run_batch(list(items), process, outputs_for=lambda it: predict_outputs(it, out_dir, opts),
                     options=bo, sink=sink, run_record=run_record)
