"""The Python API of `wise segment-airway` (the command makes one call here per verb).

Everything the command does, these functions do with the same defaults: `phantom`, `predict`, `evaluate`,
`train`, `info`, `demo`, `benchmark`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from wisecli.cli.errors import InputError

from .train import TRAIN_DEFAULTS  # noqa: E402  (re-exported for the command)

METHOD = "segment-airway"
ARCH = "wingsnet"
VOLUME_EXT = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr")


def is_dicom_folder(p: Path) -> bool:
    """A folder is one input (a DICOM series) when it holds files and no sub-folders of volumes."""
    try:
        files = [f for f in p.iterdir() if not f.name.startswith(".")]
    except OSError:
        return False
    return bool(files) and all(f.is_file() and not f.name.lower().endswith(VOLUME_EXT) for f in files)


# ---------------------------------------------------------------- phantom
def phantom(out_dir: Path, n: int = 4, *, preset: str | None = None, seed: int = 0, size=None, spacing=None,
            max_generation=None, min_diameter_mm=None, noise_hu: float = 20.0, vessels: bool = True,
            layout: str = "folder", fmt: str = "nii.gz", overwrite: bool = False, from_mask=None,
            emphysema: float = 0.0, nodules: int = 0) -> dict:
    """Write `n` phantoms (see `synthetic`); refuses a non-empty folder unless `overwrite`.

    `preset` defaults to tiny. With `from_mask` the phantoms are built around that airway mask (any readable
    volume or DICOM folder) and keep its geometry, so the options that set geometry or the analytic tree
    (`preset`, `size`, `spacing`, `max_generation`, `min_diameter_mm`) are refused rather than ignored."""
    from .synthetic import FORMATS, LAYOUTS, PRESETS, write_mask_phantoms, write_phantoms

    if preset is not None and preset not in PRESETS:
        raise InputError(f"unknown --preset {preset!r}", hint=f"one of {', '.join(PRESETS)}")
    if fmt not in FORMATS:
        raise InputError(f"unknown --format {fmt!r}", hint=f"one of {', '.join(FORMATS)}")
    if layout not in LAYOUTS:
        raise InputError(f"unknown --layout {layout!r}", hint=f"one of {', '.join(LAYOUTS)}")
    if n < 1:
        raise InputError("-n must be at least 1", hint="for example -n 4")
    if size is not None and (len(size) != 3 or min(size) < 16):
        raise InputError(f"--size {size} needs three sides of at least 16", hint="X Y Z, e.g. --size 96 80 80")
    if spacing is not None and (len(spacing) != 3 or min(spacing) <= 0):
        raise InputError(f"--spacing {spacing} needs three positive values", hint="X Y Z in mm")
    if not 0 <= emphysema < 1:
        raise InputError(f"--emphysema {emphysema} must lie in [0, 1)",
                         hint="a fraction of the lung volume, e.g. --emphysema 0.1")
    if nodules < 0:
        raise InputError(f"--nodules {nodules} must not be negative", hint="a count, e.g. --nodules 3")
    if noise_hu < 0:
        raise InputError(f"--noise-hu {noise_hu} must not be negative", hint="20 HU by default, 40-80 for low dose")
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
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise InputError(f"output folder is not empty: {out}", hint="pass --overwrite or pick another folder")
    t = time.perf_counter()
    path = {"emphysema": emphysema, "nodules": nodules}
    try:
        if mask is not None:
            from .data import _name

            rows = write_mask_phantoms(out, n, mask, seed=seed, fmt=fmt, layout=layout, name=_name(mask.path),
                                       noise_hu=noise_hu, vessels=vessels, **path)
        else:
            rows = write_phantoms(out, n, preset=preset or "tiny", seed=seed, fmt=fmt, layout=layout, size=size,
                                  spacing=spacing, max_generation=max_generation, min_diameter_mm=min_diameter_mm,
                                  noise_hu=noise_hu, vessels=vessels, **path)
    except ValueError as e:  # no room for the nodules
        raise InputError(str(e), hint="ask for fewer --nodules") from None
    doc = {"out_dir": str(out), "n": n, "format": fmt, "layout": layout, "cases": rows,
           "seconds": round(time.perf_counter() - t, 3), **path}
    doc.update({"from_mask": str(from_mask)} if mask is not None else {"preset": preset or "tiny"})
    return doc


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


# ---------------------------------------------------------------- model loading
def check_weights(weights) -> dict:
    """Load a checkpoint on the CPU (weights_only) and check method and arch; InputError otherwise."""
    from wisecli.runtime.checkpoints import load_checkpoint

    doc = load_checkpoint(Path(weights), method=METHOD)
    if doc.get("arch") != ARCH:
        raise InputError(f"{weights} holds a '{doc.get('arch')}' model, not '{ARCH}'",
                         hint="use a checkpoint written by 'wise segment-airway train'")
    return doc


def load_model(weights, device, *, compile_mode: str = "off", n_items: int = 1):
    """WingsNet from a segment-airway checkpoint (weights_only); returns (model, checkpoint doc)."""
    import torch

    from .model import build_model, cpu_layout

    doc = check_weights(weights)
    model = build_model(doc.get("config", {}))
    try:
        model.load_state_dict(doc["state_dict"])
    except (RuntimeError, KeyError) as e:
        raise InputError(f"{weights}: weights do not fit WingsNet ({str(e).splitlines()[0][:120]})",
                         hint="the checkpoint's config and state_dict disagree; retrain or use another file") from None
    model = cpu_layout(model.to(device), device).eval()
    if compile_mode == "on" or (compile_mode == "auto" and device.type == "cuda" and n_items >= 4):
        model._wise_compiled = torch.compile(model.folded_forward, dynamic=False)
    return model, doc


def hu_windows(config: dict):
    w = config.get("hu_windows") or [[-1000.0, 400.0]]
    return tuple((float(a), float(b)) for a, b in w)


# ---------------------------------------------------------------- predict
def predict_outputs(item: Path, out_dir: Path, opts) -> list[Path]:
    from wisecli.runtime.batch import stem_of

    stem = stem_of(item)
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


def read_dicom_series(folder: Path, series_uid: str | None = None):
    """A DICOM folder as one series (spec §4): several series need `series_uid`; slices whose spacing along
    the slice normal varies by more than 1 % are refused (no silent resampling). GDCM sorts by position and
    the rescale slope/intercept are applied (SimpleITK ImageSeriesReader)."""
    import SimpleITK as sitk

    from wisecli.runtime.io.volumes import Volume, read_volume

    ids = list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) or ())
    if series_uid is None and len(ids) > 1:
        raise InputError(f"{folder}: {len(ids)} DICOM series in one folder",
                         hint="pick one with --series-uid (" + ", ".join(i[-12:] for i in ids[:3]) + "...)")
    if series_uid is not None and series_uid not in ids:
        raise InputError(f"{folder}: no DICOM series {series_uid}", hint="series here: " + ", ".join(ids[:4]))
    if not ids:
        return read_volume(folder)
    files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_uid or ids[0]))
    pos = []
    for f in files:
        r = sitk.ImageFileReader()
        r.SetFileName(f)
        r.ReadImageInformation()
        if r.HasMetaDataKey("0020|0032"):
            pos.append([float(v) for v in r.GetMetaData("0020|0032").split("\\")])
    if len(pos) == len(files) and len(files) > 2:
        p = np.asarray(pos)
        gaps = np.linalg.norm(np.diff(p, axis=0), axis=1)
        med = float(np.median(gaps))
        if med <= 0 or float(np.abs(gaps - med).max()) > 0.01 * med:
            raise InputError(f"{folder}: irregular slice spacing ({gaps.min():.3f}-{gaps.max():.3f} mm)",
                             hint="missing or duplicate slices; resample the series to even spacing first")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError as e:
        raise InputError(f"cannot read DICOM series in {folder}: {str(e).strip().splitlines()[0][:160]}",
                         hint="the slices are corrupt or incomplete") from None
    return Volume(array=sitk.GetArrayFromImage(image), spacing=tuple(image.GetSpacing()),
                  origin=tuple(image.GetOrigin()), direction=tuple(image.GetDirection()), path=Path(folder))


def read_ct(path: Path, *, hu_offset: float = 0.0, hu_check: bool = True, series_uid: str | None = None):
    """Read a CT volume (file or DICOM folder), add the HU offset and check it looks like HU."""
    from wisecli.runtime.io.volumes import read_volume

    from .predict import hu_problem

    vol = read_dicom_series(Path(path), series_uid) if Path(path).is_dir() else read_volume(Path(path))
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


def predict(inputs: list[Path], out_dir: Path, weights, *, opts=None, device="auto", sink=None,
            skip_existing=False, overwrite=False, fail_fast=False, debug=False, run_record=None,
            series_uid: str | None = None) -> list[dict]:
    """Segment every input; writes masks, tree JSON and the optional outputs; returns the records."""
    import torch

    from wisecli.runtime.batch import BatchOptions, run_batch
    from wisecli.runtime.device import resolve_device
    from wisecli.runtime.io.atomic import write_json
    from wisecli.runtime.io.volumes import write_volume

    from .predict import PredictOptions, generation_preview, segment
    from .tree import branch_table, parse_tree, tree_summary

    from wisecli.cli.output import Sink

    opts = opts or PredictOptions()
    opts.validate()
    sink = sink if sink is not None else Sink(quiet=True)
    dev = device if isinstance(device, torch.device) else resolve_device(device, sink=sink)
    model, doc = load_model(weights, dev, compile_mode=opts.compile, n_items=len(inputs))
    windows = hu_windows(doc.get("config", {}))
    median = doc.get("train_spacing_median")
    out_dir = Path(out_dir)

    def process(item: Path) -> dict:
        stages = {}
        t = time.perf_counter()
        vol, hu = read_ct(item, hu_offset=opts.hu_offset, hu_check=opts.hu_check, series_uid=series_uid)
        stages["read"] = time.perf_counter() - t
        warns = []
        if median:
            ratio = np.asarray(vol.spacing, float) / np.asarray(median, float)
            if np.any(ratio > 2) or np.any(ratio < 0.5):
                warns.append(f"spacing {tuple(round(s, 3) for s in vol.spacing)} is more than 2x off the "
                             f"training median {tuple(round(float(s), 3) for s in median)}")
        seg = segment(model, hu, vol.direction, vol.spacing, opts, dev, windows=windows)
        stages.update(seg.stages)
        warns += seg.warnings
        outs = predict_outputs(item, out_dir, opts)
        t = time.perf_counter()
        tree_doc, rows, parse = None, [], None
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
            if sink is not None:
                sink.warn(f"{item.name}: {w}")
        return {"output": str(outs[0]), "outputs": [str(p) for p in outs[1:]],
                "stages": {k2: round(v, 4) for k2, v in stages.items()},
                "crop_fraction": round(seg.crop_fraction, 4),
                "tree": tree_doc["summary"] if tree_doc else None, "warnings": warns}

    bo = BatchOptions(out_dir=out_dir, skip_existing=skip_existing, overwrite=overwrite, fail_fast=fail_fast,
                      debug=debug)
    return run_batch(list(inputs), process, outputs_for=lambda it: predict_outputs(it, out_dir, opts),
                     options=bo, sink=sink, run_record=run_record)


# ---------------------------------------------------------------- evaluate
def _key(p: Path) -> str:
    from .data import _name

    return _name(p)


def pair_predictions(preds: list[Path], ref=None, pairs_csv=None) -> list[tuple[Path, Path | None]]:
    """(prediction, reference) pairs by name (extensions and a trailing _airway/_0000 ignored) or a CSV."""
    import csv

    if pairs_csv is not None:
        with open(pairs_csv, newline="") as fh:
            rows = list(csv.DictReader(fh))
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
        if p.name.lower().endswith(VOLUME_EXT) or (p.is_dir() and is_dicom_folder(p)):
            refs[_key(p)] = p
    return [(p, refs.get(_key(p))) for p in preds]


def evaluate(preds: list[Path], ref=None, *, pairs_csv=None, lcc: bool = True, connectivity: int = 6,
             bd_threshold: float = 0.8, length_mm: bool = False, cache_dir=None, sink=None) -> tuple[list, dict]:
    """ATM'22 metrics for every pair; item errors are recorded; returns (records, summary)."""
    from wisecli.cli.errors import PartialFailure, WiseError
    from wisecli.runtime.io.volumes import read_volume

    from .metrics import prepare_reference, score, summarise

    if connectivity not in (6, 18, 26):
        raise InputError(f"--connectivity {connectivity} must be 6, 18 or 26", hint="the default is 6")
    if not 0 < bd_threshold <= 1:
        raise InputError("--bd-threshold must lie in (0, 1]", hint="the default is 0.8")
    pairs = pair_predictions(preds, ref, pairs_csv)
    variant = f"{'lcc' if lcc else 'raw'}{connectivity}" + ("+length-mm" if length_mm else "")
    records, failed = [], 0
    for pred, rf in pairs:
        t = time.perf_counter()
        rec = {"pred": str(pred), "ref": str(rf) if rf else None, "variant": variant}
        try:
            if rf is None:
                raise InputError(f"{pred.name}: no reference with the same name", hint="check --ref or use --pairs")
            pv, rv = read_volume(pred), read_volume(rf)
            if pv.array.shape != rv.array.shape or not np.allclose(pv.spacing, rv.spacing, atol=1e-4) \
                    or not np.allclose(pv.origin, rv.origin, atol=1e-3) \
                    or not np.allclose(pv.direction, rv.direction, atol=1e-4):
                raise InputError(f"{pred.name}: geometry differs from the reference {rf.name}",
                                 hint="predictions must share the reference's size, spacing, origin and direction")
            try:
                r = prepare_reference(rv.array, rv.spacing, cache_dir=cache_dir)
            except ValueError as e:
                raise InputError(f"{rf.name}: {e}", hint="the reference must hold an airway") from None
            m = score(pv.array, r, lcc=lcc, connectivity=connectivity, bd_threshold=bd_threshold,
                      length_mm=length_mm)
            rec.update(status="ok", metrics=m)
        except WiseError as e:
            if len(pairs) == 1:
                raise
            failed += 1
            rec.update(status="error", error=e.message)
            if sink is not None:
                sink.warn(e.message)
        rec["seconds"] = round(time.perf_counter() - t, 4)
        records.append(rec)
        if sink is not None:
            sink.record(rec)
    summary = summarise(records)
    summary.update(variant=variant, connectivity=connectivity, lcc=lcc)
    if failed:
        err = PartialFailure(f"{failed} of {len(pairs)} pairs failed", hint="see the records with status 'error'")
        err.records, err.summary = records, summary
        raise err
    return records, summary


# ---------------------------------------------------------------- info
def info(weights=None) -> dict:
    from .model import WingsNet, count_parameters
    from .predict import PredictOptions
    from .synthetic import PRESETS

    doc = {
        "method": METHOD, "arch": ARCH, "paper": "Zheng et al., IEEE TMI 2021 (arXiv 2011.11952)",
        "reads": ["NIfTI (.nii/.nii.gz)", "MetaImage (.mha/.mhd)", "NRRD (.nrrd/.nhdr)", "DICOM series folder"],
        "writes": ["{stem}_airway.nii.gz (uint8)", "{stem}_airway_tree.json", "_prob", "_branches (uint16)",
                   "_preview.png"],
        "params": count_parameters(WingsNet()),
        "predict_defaults": {k: v for k, v in PredictOptions().__dict__.items()},
        "phantom_presets": {k: {"size": v["size"], "spacing": v["spacing"], "min_diameter_mm": v["min_diameter_mm"]}
                            for k, v in PRESETS.items()},
        "metrics": ["td", "bd", "dsc", "precision", "fpr", "fnr", "sensitivity", "specificity", "atm_score"],
    }
    if weights is not None:
        from wisecli.runtime.checkpoints import load_checkpoint

        ck = load_checkpoint(Path(weights), method=METHOD)
        doc["checkpoint"] = {k: ck.get(k) for k in ("arch", "config", "metrics", "stage", "epoch", "created",
                                                     "versions", "train_spacing_median")}
        doc["checkpoint"]["params"] = int(sum(v.numel() for v in ck["state_dict"].values()))
    return doc


# ---------------------------------------------------------------- demo
class _ArrayVolume:
    """A phantom held in memory with the attributes of `runtime.io.volumes.Volume`."""

    def __init__(self, array, spacing, origin, path):
        self.array, self.spacing, self.origin = array, spacing, origin
        self.direction, self.path = (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0), path


def demo(quick: bool = False, device: str = "auto", seed: int = 0, sink=None, *, steps: int | None = None,
         n_train: int | None = None, n_test: int | None = None, size=None, spacing=None, model_width=None,
         loss_name: str = "gul", overfit: bool = False) -> dict:
    """Phantoms → cached cases → AdamW steps of a half-width WingsNet with group-supervised GUL → held-out
    prediction (full pipeline) → ATM metrics. Full: 8 train + 2 held-out `demo` phantoms, ≈120 steps at 48³,
    gate held-out DSC ≥ 50 %. Quick: 2 coarse `tiny` phantoms (4 mm), a few steps at 32³, no gate.
    `overfit` scores the training phantoms instead (the spec's check that training can fit: §9 Train)."""
    import tempfile

    import torch

    from wisecli.runtime.device import autocast, resolve_device, seed_everything

    from .data import PatchSampler, build_case
    from .metrics import prepare_reference, score
    from .model import WingsNet, cpu_layout
    from .predict import PredictOptions, segment
    from .synthetic import make_phantom
    from .train import make_step

    t0 = time.perf_counter()
    dev = resolve_device(device, sink=sink)
    seed_everything(seed)
    if quick:
        preset, kw, n_tr, n_te, width, crop, patch, n_steps, bs = "tiny", dict(size=(48, 40, 40), spacing=(4, 4, 4)), \
            1, 1, 0.25, 32, 40, 4, 1
        popts = PredictOptions(roi=32, overlap=0.0, sw_batch=2, crop=False)
    else:
        preset, kw, n_tr, n_te, width, crop, patch, n_steps, bs = "demo", {}, 8, 2, 0.5, 48, 64, 120, 2
        popts = PredictOptions(roi=48, overlap=0.25, sw_batch=2)
    n_tr, n_te = n_train or n_tr, n_test or n_te
    n_steps = steps or n_steps
    width = model_width or width
    if size is not None or spacing is not None:
        kw = {**kw, **({"size": size} if size else {}), **({"spacing": spacing} if spacing else {})}
    phs = [make_phantom(preset, seed=seed + i, **kw) for i in range(n_tr + n_te)]
    windows = ((-1000.0, 400.0),)
    with tempfile.TemporaryDirectory(prefix="wise-airway-demo-") as tmp:
        cases = [build_case(f"case{i}", _ArrayVolume(p.image, p.spacing, p.origin, Path(f"case{i}")),
                            _ArrayVolume(p.label, p.spacing, p.origin, Path(f"case{i}")), Path(tmp))
                 for i, p in enumerate(phs[:n_tr])]
        sampler = PatchSampler(cases, patch=patch, patches_per_case=max(2, (n_steps * bs) // max(n_tr, 1) + 2),
                               seed=seed)
        torch.manual_seed(seed)
        model = cpu_layout(WingsNet(width=width).to(dev), dev).train()
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=n_steps, pct_start=0.15)
        step = make_step(crop=crop, binarise=0.7, alpha=0.1, loss_name=loss_name, enc_weight=1.0,
                         reduce="batch", windows=windows)
        losses, done, epoch = [], 0, 0
        t_train = time.perf_counter()
        while done < n_steps:
            sampler.set_epoch(epoch)
            it = iter(sampler)
            while done < n_steps:
                items = [next(it, None) for _ in range(bs)]
                if any(x is None for x in items):
                    break
                batch = tuple(torch.stack([x[k] for x in items]).to(dev) for k in range(3))
                with autocast(dev):
                    loss, _ = step(model, batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                losses.append(float(loss.detach()))
                done += 1
            epoch += 1
        t_train = time.perf_counter() - t_train
    model.eval()
    rows = []
    t_pred = time.perf_counter()
    for i, p in enumerate(phs[:n_tr] if overfit else phs[n_tr:]):
        seg = segment(model, p.image.astype(np.float32), (1, 0, 0, 0, 1, 0, 0, 0, 1), p.spacing, popts, dev,
                      windows=windows)
        m = score(seg.mask, prepare_reference(p.label, p.spacing))
        rows.append({"case": f"{'train' if overfit else 'held-out'} {i}",
                     **{k: round(m[k], 2) for k in ("td", "bd", "dsc", "precision", "atm_score")},
                     "branches": m["n_branches"]})
    t_pred = time.perf_counter() - t_pred
    head = {k: float(np.mean([r[k] for r in rows])) for k in ("dsc", "td", "bd", "precision", "atm_score")}
    ok = True if quick else head["dsc"] >= 50.0
    return {"method": METHOD, "ok": ok, "quick": quick, "headline": head, "rows": rows,
            "why": "" if ok else f"held-out DSC {head['dsc']:.1f} % < 50 %",
            "train": {"steps": done, "first_loss": losses[0] if losses else None,
                      "last_loss": float(np.mean(losses[-10:])) if losses else None, "seconds": round(t_train, 2),
                      "width": width, "crop": crop, "loss": loss_name},
            "predict_seconds": round(t_pred, 2), "seconds": round(time.perf_counter() - t0, 2)}


# ---------------------------------------------------------------- benchmark
def benchmark(device: str = "auto", quick: bool = False, *, preset: str = "ct", input=None, weights=None,
              repeats: int = 3, no_train: bool = False, sink=None) -> list[dict]:
    """Rows R1–R7 of the spec (§7); `quick` is a seconds-long CPU preset."""
    from . import benchmark as b

    if preset not in ("ct", "tiny"):
        raise InputError(f"unknown --preset {preset!r}", hint="ct or tiny")
    if repeats < 1:
        raise InputError("--repeats must be at least 1", hint="the default is 3")
    return b.run(device=device, quick=quick or preset == "tiny", preset=preset, input=input, weights=weights,
                 repeats=repeats, no_train=no_train, sink=sink)


# ---------------------------------------------------------------- train
def train(data, run_dir, config, *, val=None, device="auto", amp=True, seed=0, init=None, resume=False,
          overwrite=False, sink=None, progress=True) -> dict:
    """Two-stage WingsNet + GUL training into a run folder (see `train.run_training`)."""
    from .train import run_training

    cfg = dict(config.values) if hasattr(config, "values") else {**TRAIN_DEFAULTS, **(config or {})}
    return run_training(data, run_dir, cfg, val=val, device=device, amp=amp, seed=seed, init=init, resume=resume,
                        overwrite=overwrite, sink=sink, progress=progress)
