"""`wise segment-airway`: WingsNet + General Union loss for chest-CT airway trees (Zheng et al., TMI 2021).

Verbs: phantom, train, predict, evaluate, demo, info, benchmark. Only typer/stdlib/wisecli.cli at the top;
the engine loads inside each command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from wisecli.cli import options as o
from wisecli.cli.errors import InputError
from wisecli.cli.output import Sink

app = typer.Typer(help="Airway segmentation in chest CT: WingsNet + General Union loss (masks, tree, metrics).",
                  no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]})

Inputs = Annotated[list[str], typer.Argument(help="CT volumes (.nii.gz, .mha, .nrrd), DICOM folders, globs, "
                                                   "@list.txt or @-.")]


def _api():
    from wisecli.engines.segment_airway import api

    return api


def _need_out(out_dir: Optional[Path], what: str = "-o DIR") -> Path:
    if out_dir is None:
        raise InputError("no output folder given", hint=f"pass {what}")
    return out_dir


@app.command()
def phantom(
    out_dir: o.OutDir = None,
    n: Annotated[int, typer.Option("-n", help="Number of phantoms.")] = 4,
    preset: Annotated[Optional[str], typer.Option("--preset", help="tiny | demo | ct (default tiny).")] = None,
    size: Annotated[Optional[tuple[int, int, int]], typer.Option("--size", help="X Y Z voxels.")] = None,
    spacing: Annotated[Optional[tuple[float, float, float]], typer.Option("--spacing", help="X Y Z mm.")] = None,
    max_generation: Annotated[Optional[int], typer.Option("--max-generation")] = None,
    min_diameter_mm: Annotated[Optional[float], typer.Option("--min-diameter-mm")] = None,
    noise_hu: Annotated[float, typer.Option("--noise-hu", help="Noise σ in HU (40-80 for low dose).")] = 20.0,
    no_vessels: Annotated[bool, typer.Option("--no-vessels", help="No arteries beside the bronchi.")] = False,
    emphysema: Annotated[float, typer.Option("--emphysema", help="Fraction of the lung parenchyma in -990 HU "
                                                               "low-attenuation blobs (LAA%-950 ≈ 100·F).")] = 0.0,
    nodules: Annotated[int, typer.Option("--nodules", help="Solid +30 HU nodules, Ø 4-20 mm, in the lungs.")] = 0,
    layout: Annotated[str, typer.Option("--layout", help="folder | atm | csv.")] = "folder",
    fmt: Annotated[str, typer.Option("--format", help="nii.gz | mha | nrrd | dicom.")] = "nii.gz",
    from_mask: Annotated[Optional[Path], typer.Option(
        "--from-mask", help="Build the CT around this real airway mask (keeps its geometry; "
                            "not with --preset/--size/--spacing/--max-generation/--min-diameter-mm).")] = None,
    seed: o.Seed = 0,
    overwrite: o.Overwrite = False,
    json: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Write chest-CT phantoms with airway labels and trees: analytic (Kitaoka-style branching) or around a
    real airway mask (--from-mask); optional emphysema and nodules."""
    sink = Sink(json=json, quiet=quiet)
    doc = _api().phantom(_need_out(out_dir), n, preset=preset, seed=seed, size=size, spacing=spacing,
                         max_generation=max_generation, min_diameter_mm=min_diameter_mm, noise_hu=noise_hu,
                         vessels=not no_vessels, layout=layout, fmt=fmt, overwrite=overwrite, from_mask=from_mask,
                         emphysema=emphysema, nodules=nodules)
    sink.result(doc, rows=doc["cases"], title=f"{n} phantoms in {doc['out_dir']}")


@app.command()
def predict(
    inputs: Inputs,
    out_dir: o.OutDir = None,
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Checkpoint from 'train' (required).")] = None,
    no_crop: Annotated[bool, typer.Option("--no-crop", help="Skip the lung crop.")] = False,
    roi: Annotated[int, typer.Option("--roi", help="Window side (multiple of 8, ≥ 32).")] = 128,
    overlap: Annotated[float, typer.Option("--overlap", help="Window overlap in [0, 1).")] = 0.5,
    blend: Annotated[str, typer.Option("--blend", help="gaussian | constant.")] = "gaussian",
    sw_batch: Annotated[int, typer.Option("--sw-batch", help="Windows per forward pass.")] = 4,
    tta: Annotated[bool, typer.Option("--tta", help="Average over axis flips.")] = False,
    threshold: Annotated[float, typer.Option("--threshold")] = 0.5,
    connectivity: Annotated[int, typer.Option("--connectivity", help="6 | 18 | 26.")] = 6,
    no_fill_holes: Annotated[bool, typer.Option("--no-fill-holes")] = False,
    no_tree: Annotated[bool, typer.Option("--no-tree", help="No _airway_tree.json.")] = False,
    probabilities: Annotated[bool, typer.Option("--probabilities", help="Also write _prob.")] = False,
    branches: Annotated[bool, typer.Option("--branches", help="Also write _branches (uint16 ids).")] = False,
    preview: Annotated[bool, typer.Option("--preview", help="Also write _preview.png.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="nii.gz | mha | nrrd.")] = "nii.gz",
    hu_offset: Annotated[float, typer.Option("--hu-offset", help="Added to the voxels (e.g. -1024).")] = 0.0,
    no_hu_check: Annotated[bool, typer.Option("--no-hu-check")] = False,
    compile: Annotated[str, typer.Option("--compile", help="auto | on | off (torch.compile).")] = "auto",
    series_uid: Annotated[Optional[str], typer.Option("--series-uid", help="DICOM series to read.")] = None,
    pattern: o.Pattern = None,
    shard: o.Shard = None,
    device: o.Device = "auto",
    amp: o.Amp = True,
    skip_existing: o.SkipExisting = False,
    overwrite: o.Overwrite = False,
    fail_fast: o.FailFast = False,
    json: o.Json = False,
    jsonl: o.Jsonl = False,
    quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> None:
    """Segment airways: mask, tree JSON and optional probabilities, branch ids and a preview."""
    from wisecli.cli.inputs import apply_shard, expand_inputs, parse_shard

    sink = Sink(json=json, jsonl=jsonl, quiet=quiet)
    if weights is None:
        raise InputError("--weights is required (no weights ship with wise)",
                         hint="train one: wise segment-airway train DATA -o RUN, then --weights RUN/checkpoints/best.pt")
    api = _api()
    opts_kw = dict(roi=roi, overlap=overlap, blend=blend, sw_batch=sw_batch, tta=tta, threshold=threshold,
                   connectivity=connectivity, fill_holes=not no_fill_holes, crop=not no_crop, tree=not no_tree,
                   probabilities=probabilities, branches=branches, preview=preview, fmt=fmt, hu_offset=hu_offset,
                   hu_check=not no_hu_check, compile=compile, amp=amp)
    from wisecli.engines.segment_airway.predict import PredictOptions

    opts = PredictOptions(**opts_kw)
    opts.validate()
    sh = parse_shard(shard)
    out = _need_out(out_dir)
    items = apply_shard(expand_inputs(inputs, pattern=pattern, extensions=api.VOLUME_EXT,
                                      dir_is_item=api.is_dicom_folder), sh)
    from wisecli.runtime.device import device_name, resolve_device
    from wisecli.runtime.runrecord import RunRecord

    api.check_weights(weights)
    dev = resolve_device(device, sink=sink)
    rr = RunRecord("segment-airway predict", config=opts_kw | {"weights": str(weights)}, device=device_name(dev),
                   seed=None, inputs=[str(i) for i in items])
    recs = api.predict(items, out, weights, opts=opts, device=dev, sink=sink, skip_existing=skip_existing,
                       overwrite=overwrite, fail_fast=fail_fast, debug=debug, run_record=rr,
                       series_uid=series_uid)
    rows = [{"input": Path(r["input"]).name, "status": r["status"], "seconds": r.get("seconds"),
             "branches": (r.get("tree") or {}).get("n_branches"), "volume_ml": (r.get("tree") or {}).get("volume_ml"),
             "output": r.get("output")} for r in recs]
    sink.result({"records": recs}, rows=rows, title="segment-airway predict")


@app.command()
def evaluate(
    preds: Annotated[Optional[list[str]], typer.Argument(help="Predicted masks (files, folders, globs, @list).")] = None,
    ref: Annotated[Optional[Path], typer.Option("--ref", help="Reference mask file or folder (paired by name).")] = None,
    pairs: Annotated[Optional[Path], typer.Option("--pairs", help="CSV with pred,ref columns.")] = None,
    no_lcc: Annotated[bool, typer.Option("--no-lcc", help="Score the raw prediction, not its largest component.")] = False,
    connectivity: Annotated[int, typer.Option("--connectivity", help="6 | 18 | 26.")] = 6,
    bd_threshold: Annotated[float, typer.Option("--bd-threshold", help="Detected-branch fraction.")] = 0.8,
    length_mm: Annotated[bool, typer.Option("--length-mm", help="Weight skeleton voxels by their length in mm.")] = False,
    cache_dir: Annotated[Optional[Path], typer.Option("--cache-dir", help="Where reference parses are cached.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not cache reference parses.")] = False,
    pattern: o.Pattern = None,
    json: o.Json = False,
    jsonl: o.Jsonl = False,
    quiet: o.Quiet = False,
) -> None:
    """ATM'22 metrics (TD, BD, DSC, precision, FPR, FNR, ATM score) of predicted masks against references."""
    from wisecli.cli.errors import PartialFailure
    from wisecli.cli.inputs import expand_inputs

    sink = Sink(json=json, jsonl=jsonl, quiet=quiet)
    api = _api()
    if pairs is None and not preds:
        raise InputError("no predictions given", hint="pass prediction files or folders, or --pairs CSV")
    if pairs is not None and not pairs.is_file():
        raise InputError(f"--pairs file not found: {pairs}", hint="a CSV with pred,ref columns")
    items = expand_inputs(preds, pattern=pattern, extensions=api.VOLUME_EXT) if preds else []
    if cache_dir is None and not no_cache:
        cache_dir = Path.home() / ".cache" / "wisecli" / "segment-airway"
    try:
        recs, summary = api.evaluate(items, ref, pairs_csv=pairs, lcc=not no_lcc, connectivity=connectivity,
                                     bd_threshold=bd_threshold, length_mm=length_mm,
                                     cache_dir=None if no_cache else cache_dir, sink=sink)
    except PartialFailure as e:
        _eval_result(sink, getattr(e, "records", []), getattr(e, "summary", {}))
        raise
    _eval_result(sink, recs, summary)


def _eval_result(sink, recs, summary):
    rows = []
    for r in recs:
        m = r.get("metrics") or {}
        rows.append({"pred": Path(r["pred"]).name, "status": r["status"],
                     **{k: round(m[k], 2) for k in ("td", "bd", "dsc", "precision", "fpr", "atm_score") if k in m}})
    sink.result({"records": recs, "summary": summary}, rows=rows, title=f"segment-airway evaluate ({summary.get('variant')})")


@app.command()
def train(
    data: Annotated[list[str], typer.Argument(help="Folders (images/+labels/ or imagesTr/+labelsTr/) or CSVs.")],
    out_dir: o.OutDir = None,
    val: Annotated[Optional[list[str]], typer.Option("--val", help="Validation data (same layouts).")] = None,
    val_fraction: Annotated[Optional[float], typer.Option("--val-fraction", help="Hold out this fraction.")] = None,
    stage: Annotated[Optional[str], typer.Option("--stage", help="both | 1 | 2.")] = None,
    epochs1: Annotated[Optional[int], typer.Option("--epochs1")] = None,
    epochs2: Annotated[Optional[int], typer.Option("--epochs2")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size")] = None,
    patches_per_case: Annotated[Optional[int], typer.Option("--patches-per-case")] = None,
    optimizer: Annotated[Optional[str], typer.Option("--optimizer", help="sgd | adamw.")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers")] = None,
    init: Annotated[Optional[Path], typer.Option("--init", help="Start from these weights.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in -o.")] = False,
    device: o.Device = "auto",
    amp: o.Amp = True,
    seed: o.Seed = 0,
    config: o.Config = None,
    set_: o.Set = None,
    overwrite: o.Overwrite = False,
    no_progress: o.NoProgress = False,
    json: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Train WingsNet with the General Union loss in two stages (α 0.1 then 0.2); writes a run folder."""
    from wisecli.cli.config import resolve

    sink = Sink(json=json, quiet=quiet)
    api = _api()
    flags = {"schedule.stage": stage, "schedule.epochs1": epochs1, "schedule.epochs2": epochs2,
             "data.batch_size": batch_size, "data.patches_per_case": patches_per_case, "optim.name": optimizer,
             "optim.lr": lr, "data.workers": workers, "data.val_fraction": val_fraction}
    cfg = resolve(api.TRAIN_DEFAULTS, flags=flags, config_file=config, sets=set_)
    doc = api.train(data, _need_out(out_dir), cfg, val=val, device=device, amp=amp, seed=seed, init=init,
                    resume=resume, overwrite=overwrite, sink=sink, progress=not no_progress)
    sink.result(doc, rows=[{k: v for k, v in doc.items() if not isinstance(v, (dict, list))}], title="segment-airway train")


@app.command()
def demo(
    quick: o.Quick = False,
    device: o.Device = "auto",
    seed: o.Seed = 0,
    json: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """End to end on phantoms: train a half-width WingsNet with GUL, predict held-out cases, score them."""
    sink = Sink(json=json, quiet=quiet)
    doc = _api().demo(quick=quick, device=device, seed=seed, sink=sink)
    sink.result(doc, rows=doc.get("rows"), title="segment-airway demo" + (" (quick)" if quick else ""))
    if not doc["ok"]:
        from wisecli.cli.errors import WorkFailed

        raise WorkFailed("demo gate missed: " + doc.get("why", ""), hint="see the table above")


@app.command()
def info(
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Describe this checkpoint too.")] = None,
    json: o.Json = False,
) -> None:
    """Formats, defaults, parameter count and checkpoint metadata."""
    sink = Sink(json=json)
    doc = _api().info(weights)
    rows = [{"item": k, "value": v} for k, v in doc.items()]
    sink.result(doc, rows=rows, title="segment-airway info")


@app.command()
def benchmark(
    preset: Annotated[str, typer.Option("--preset", help="ct | tiny (the phantom to time on).")] = "ct",
    input: Annotated[Optional[Path], typer.Option("--input", help="Time on this CT instead of a phantom.")] = None,
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Trained weights (random otherwise).")] = None,
    repeats: Annotated[int, typer.Option("--repeats")] = 3,
    no_train: Annotated[bool, typer.Option("--no-train", help="Skip the training row (R6).")] = False,
    quick: o.Quick = False,
    device: o.Device = "auto",
    json: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Rows R1–R7 of the spec: WingsNet inference, end-to-end predict, training and the parse vs peers."""
    sink = Sink(json=json, quiet=quiet)
    recs = _api().benchmark(device=device, quick=quick, preset=preset, input=input, weights=weights,
                            repeats=repeats, no_train=no_train, sink=sink)
    cols = ["row", "case", "ours_s", "peer_s", "speedup", "target", "device"]
    sink.result({"records": recs}, rows=recs, columns=cols, title="segment-airway benchmark")
