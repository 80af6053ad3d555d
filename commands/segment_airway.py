"""`wise segment-airway`: WingsNet + General Union loss for chest-CT airway trees (Zheng et al., TMI 2021).

Verbs: phantom, train, predict, evaluate, demo, info, benchmark. Each parses, makes one call to
`wisecli.engines.segment_airway.api` and hands the result to the sink; the defaults live in `api.DEFAULTS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from wisecli.cli import options as o
from wisecli.cli.common import MethodApp
from wisecli.cli.output import Sink

app = MethodApp("segment-airway", help="Airway segmentation in chest CT: WingsNet + General Union loss (masks, "
                                       "tree, metrics).", context_settings={"help_option_names": ["-h", "--help"]})

Inputs = Annotated[list[Path], typer.Argument(help="CT volumes (.nii.gz, .mha, .nrrd), DICOM folders, globs, "
                                                    "@list.txt or @-.")]
Connectivity = Annotated[Optional[Literal["6", "18", "26"]], typer.Option("--connectivity", help="Voxel connectivity.")]
VolumeFormat = Literal["nii.gz", "mha", "nrrd"]


def _api():
    from wisecli.engines.segment_airway import api

    return api


def _off(flag: bool) -> Optional[bool]:
    """A `--no-X` flag as the setting X: False when given, None (the default) when not."""
    return False if flag else None


def _int(choice: Optional[str]) -> Optional[int]:
    return None if choice is None else int(choice)


@app.command()
def phantom(
    out_dir: o.OutDir = None,
    n: Annotated[Optional[int], typer.Option("-n", callback=o.at_least_one, help="Number of phantoms.")] = None,
    preset: Annotated[Optional[Literal["tiny", "demo", "ct"]], typer.Option("--preset", help="Anatomy and size.")] = None,
    size: Annotated[Optional[tuple[int, int, int]], typer.Option("--size", help="X Y Z voxels.")] = None,
    spacing: Annotated[Optional[tuple[float, float, float]], typer.Option("--spacing", help="X Y Z mm.")] = None,
    max_generation: Annotated[Optional[int], typer.Option("--max-generation", callback=o.at_least_one)] = None,
    min_diameter_mm: Annotated[Optional[float], typer.Option("--min-diameter-mm", callback=o.positive)] = None,
    noise_hu: Annotated[Optional[float], typer.Option("--noise-hu", callback=o.not_negative,
                                                      help="Noise σ in HU (40-80 for low dose).")] = None,
    no_vessels: Annotated[bool, typer.Option("--no-vessels", help="No arteries beside the bronchi.")] = False,
    emphysema: Annotated[Optional[float], typer.Option("--emphysema", callback=o.not_negative, help=(
        "Fraction of the lung parenchyma in -990 HU low-attenuation blobs (LAA%-950 ≈ 100·F), in [0, 1)."))] = None,
    nodules: Annotated[Optional[int], typer.Option("--nodules", callback=o.not_negative,
                                                   help="Solid +30 HU nodules, Ø 4-20 mm, in the lungs.")] = None,
    layout: Annotated[Optional[Literal["folder", "atm", "csv"]], typer.Option("--layout", help="Folder layout.")] = None,
    fmt: Annotated[Optional[Literal["nii.gz", "mha", "nrrd", "dicom"]], o.FORMAT] = None,
    from_mask: Annotated[Optional[Path], typer.Option(
        "--from-mask", help="Build the CT around this real airway mask (keeps its geometry; "
                            "not with --preset/--size/--spacing/--max-generation/--min-diameter-mm).")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", envvar="WISE_SEED", callback=o.not_negative,
                                                help="Random seed.")] = None,
    overwrite: o.Overwrite = False,
    json: o.Json = False,
) -> None:
    """Write chest-CT phantoms with airway labels and trees: analytic (Kitaoka-style branching) or around a
    real airway mask (--from-mask); optional emphysema and nodules."""
    sink = Sink(json=json)
    doc = _api().phantom(out_dir, n, preset=preset, seed=seed, size=size, spacing=spacing,
                         max_generation=max_generation, min_diameter_mm=min_diameter_mm, noise_hu=noise_hu,
                         vessels=not no_vessels, layout=layout, fmt=fmt, overwrite=overwrite, from_mask=from_mask,
                         emphysema=emphysema, nodules=nodules)
    sink.result(doc, rows=doc["cases"], title=f"{doc['n']} phantoms in {doc['out_dir']}")


@app.command()
def predict(
    inputs: Inputs,
    out_dir: o.OutDir = None,
    weights: o.Weights = None,
    series: o.Series = None,
    no_crop: Annotated[bool, typer.Option("--no-crop", help="Skip the lung crop.")] = False,
    roi: Annotated[Optional[int], typer.Option("--roi", callback=o.at_least_one,
                                               help="Window side (multiple of 8, ≥ 32).")] = None,
    overlap: Annotated[Optional[float], typer.Option("--overlap", callback=o.not_negative,
                                                     help="Window overlap in [0, 1).")] = None,
    blend: Annotated[Optional[Literal["gaussian", "constant"]], typer.Option("--blend", help="Window blending.")] = None,
    sw_batch: Annotated[Optional[int], typer.Option("--sw-batch", callback=o.at_least_one,
                                                    help="Windows per forward pass.")] = None,
    tta: Annotated[Optional[bool], typer.Option("--tta", help="Average over axis flips.")] = None,
    threshold: Annotated[Optional[float], typer.Option("--threshold", callback=o.positive,
                                                       help="Probability threshold in (0, 1).")] = None,
    connectivity: Connectivity = None,
    no_fill_holes: Annotated[bool, typer.Option("--no-fill-holes")] = False,
    no_tree: Annotated[bool, typer.Option("--no-tree", help="No _airway_tree.json.")] = False,
    probabilities: Annotated[Optional[bool], typer.Option("--probabilities", help="Also write _prob.")] = None,
    branches: Annotated[Optional[bool], typer.Option("--branches", help="Also write _branches (uint16 ids).")] = None,
    preview: Annotated[Optional[bool], typer.Option("--preview", help="Also write _preview.png.")] = None,
    fmt: Annotated[Optional[VolumeFormat], o.FORMAT] = None,
    hu_offset: Annotated[Optional[float], typer.Option("--hu-offset", help="Added to the voxels (e.g. -1024).")] = None,
    no_hu_check: Annotated[bool, typer.Option("--no-hu-check")] = False,
    compile: Annotated[Optional[Literal["auto", "on", "off"]], typer.Option("--compile", help="torch.compile.")] = None,
    pattern: o.Pattern = None,
    shard: o.Shard = None,
    device: o.Device = "auto",
    amp: o.Amp = True,
    skip_existing: o.SkipExisting = False,
    overwrite: o.Overwrite = False,
    fail_fast: o.FailFast = False,
    json: o.Json = False,
    jsonl: o.Jsonl = False,
) -> None:
    """Segment airways: mask, tree JSON and optional probabilities, branch ids and a preview."""
    sink = Sink(json=json, jsonl=jsonl)
    recs = _api().predict(
        inputs, out_dir, weights, series=series, pattern=pattern, shard=shard, device=device, sink=sink,
        skip_existing=skip_existing, overwrite=overwrite, fail_fast=fail_fast, roi=roi, overlap=overlap,
        blend=blend, sw_batch=sw_batch, tta=tta, threshold=threshold, connectivity=_int(connectivity),
        fill_holes=_off(no_fill_holes), crop=_off(no_crop), tree=_off(no_tree), probabilities=probabilities,
        branches=branches, preview=preview, fmt=fmt, hu_offset=hu_offset, hu_check=_off(no_hu_check),
        compile=compile, amp=amp)
    rows = [{"input": Path(r["input"]).name, "status": r["status"], "seconds": r.get("seconds"),
             "branches": (r.get("tree") or {}).get("n_branches"), "volume_ml": (r.get("tree") or {}).get("volume_ml"),
             "output": r.get("output") or r.get("error")} for r in recs]
    sink.result({"records": recs}, rows=rows, title="segment-airway predict")
    sink.finish(recs)


@app.command()
def evaluate(
    preds: Annotated[Optional[list[Path]], typer.Argument(help="Predicted masks (files, folders, globs, @list).")] = None,
    ref: Annotated[Optional[Path], typer.Option("--ref", help="Reference mask file or folder (paired by name).")] = None,
    pairs: Annotated[Optional[Path], typer.Option("--pairs", help="CSV with pred,ref columns.")] = None,
    no_lcc: Annotated[bool, typer.Option("--no-lcc", help="Score the raw prediction, not its largest component.")] = False,
    connectivity: Connectivity = None,
    bd_threshold: Annotated[Optional[float], typer.Option("--bd-threshold", callback=o.positive,
                                                          help="Detected-branch fraction, in (0, 1].")] = None,
    length_mm: Annotated[Optional[bool], typer.Option("--length-mm", help="Weight skeleton voxels by their length in mm.")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option("--cache-dir", help="Where reference parses are cached.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not cache reference parses.")] = False,
    pattern: o.Pattern = None,
    json: o.Json = False,
    jsonl: o.Jsonl = False,
) -> None:
    """ATM'22 metrics (TD, BD, DSC, precision, FPR, ATM score) of predicted masks against references."""
    sink = Sink(json=json, jsonl=jsonl)
    recs, summary = _api().evaluate(preds, ref, pairs=pairs, pattern=pattern, cache_dir=cache_dir, no_cache=no_cache,
                                    lcc=_off(no_lcc), connectivity=_int(connectivity), bd_threshold=bd_threshold,
                                    length_mm=length_mm, sink=sink)
    rows = []
    for r in recs:
        m = r.get("metrics") or {}
        rows.append({"pred": Path(r["pred"]).name, "status": r["status"],
                     **{k: round(m[k], 2) for k in ("td", "bd", "dsc", "precision", "fpr", "atm_score") if k in m}})
    sink.result({"records": recs, "summary": summary}, rows=rows,
                title=f"segment-airway evaluate ({summary.get('variant')})")
    sink.finish(recs, what="pairs")


@app.command()
def train(
    data: Annotated[list[Path], typer.Argument(help="Folders (images/+labels/ or imagesTr/+labelsTr/) or CSVs.")],
    out_dir: o.OutDir = None,
    val: Annotated[Optional[list[Path]], typer.Option("--val", help="Validation data (same layouts).")] = None,
    val_fraction: Annotated[Optional[float], typer.Option("--val-fraction", callback=o.not_negative,
                                                          help="Hold out this fraction, in [0, 1).")] = None,
    stage: Annotated[Optional[Literal["both", "1", "2"]], typer.Option("--stage", help="Which stages to train.")] = None,
    epochs1: Annotated[Optional[int], typer.Option("--epochs1", callback=o.not_negative, help="Stage-1 epochs.")] = None,
    epochs2: Annotated[Optional[int], typer.Option("--epochs2", callback=o.not_negative, help="Stage-2 epochs.")] = None,
    batch_size: o.BatchSize = None,
    patches_per_case: Annotated[Optional[int], typer.Option("--patches-per-case", callback=o.at_least_one)] = None,
    optimizer: Annotated[Optional[Literal["sgd", "adamw"]], typer.Option("--optimizer", help="sgd (default) or adamw.")] = None,
    lr: o.Lr = None,
    workers: o.Workers = None,
    init: Annotated[Optional[Path], typer.Option("--init", help="Start from these weights.")] = None,
    resume: o.Resume = False,
    device: o.Device = "auto",
    amp: o.Amp = True,
    seed: Annotated[Optional[int], typer.Option("--seed", envvar="WISE_SEED", callback=o.not_negative,
                                                help="Random seed.")] = None,
    overwrite: o.Overwrite = False,
    no_progress: o.NoProgress = False,
    json: o.Json = False,
) -> None:
    """Train WingsNet with the General Union loss in two stages (α 0.1 then 0.2); writes a run folder."""
    sink = Sink(json=json)
    doc = _api().train(data, out_dir, val=val, device=device, amp=amp, seed=seed, init=init, resume=resume,
                       overwrite=overwrite, sink=sink, progress=not no_progress, stage=stage, epochs1=epochs1,
                       epochs2=epochs2, batch_size=batch_size, patches_per_case=patches_per_case,
                       optimizer=optimizer, lr=lr, workers=workers, val_fraction=val_fraction)
    sink.result(doc, rows=[{k: v for k, v in doc.items() if not isinstance(v, (dict, list))}], title="segment-airway train")


@app.command()
def demo(
    quick: o.Quick = False,
    device: o.Device = "auto",
    seed: Annotated[Optional[int], typer.Option("--seed", envvar="WISE_SEED", callback=o.not_negative,
                                                help="Random seed.")] = None,
    out_dir: o.OutDir = None,
    overwrite: o.Overwrite = False,
    json: o.Json = False,
) -> None:
    """On phantoms: WingsNet (--quick: the shipped demo weights; full: trained now with GUL) predicts held-out
    cases, scored with the ATM'22 metrics; -o keeps the run folder (weights for predict, phantoms)."""
    sink = Sink(json=json)
    result = _api().demo(quick=quick, device=device, seed=seed, sink=sink, out_dir=out_dir, overwrite=overwrite)
    sink.demo(result, title="segment-airway demo" + (" (quick)" if quick else ""))


@app.command()
def info(
    weights: o.Weights = None,
    json: o.Json = False,
) -> None:
    """Formats, defaults, parameter count and checkpoint metadata (with --weights)."""
    sink = Sink(json=json)
    doc = _api().info(weights)
    sink.result(doc, rows=[{"item": k, "value": v} for k, v in doc.items()], title="segment-airway info")


@app.command()
def benchmark(
    preset: Annotated[Optional[Literal["ct", "tiny"]], typer.Option("--preset", help="The phantom to time on.")] = None,
    input: Annotated[Optional[Path], typer.Option("--input", help="Time on this CT instead of a phantom.")] = None,
    weights: o.Weights = None,
    repeats: Annotated[Optional[int], typer.Option("--repeats", callback=o.at_least_one, help="Timed runs.")] = None,
    no_train: Annotated[bool, typer.Option("--no-train", help="Skip the training row (R6).")] = False,
    quick: o.Quick = False,
    device: o.Device = "auto",
    json: o.Json = False,
) -> None:
    """Rows R1–R7 of the spec: WingsNet inference, end-to-end predict, training and the parse vs peers."""
    sink = Sink(json=json)
    recs = _api().benchmark(device=device, quick=quick, preset=preset, input=input, weights=weights,
                            repeats=repeats, no_train=no_train, sink=sink)
    sink.benchmark(recs, title="segment-airway benchmark")
