"""`wise fas`: face anti-spoofing with pixel-wise and pyramid supervision (Yu et al., T-BIOM 2021).

Verbs: `train`, `predict`, `evaluate`, `simulate` (method verb), `demo`, `info`, `benchmark`; each is one call of
`wisecli.engines.fas.api`, whose `DEFAULTS` hold the defaults shown in `--help`.

Choices (ours): `train` refuses a non-empty run folder unless `--resume` or `--overwrite`; `predict` prints a table by
default and one JSON record per input with `--jsonl` (`-o FILE.jsonl` writes every record into one file atomically,
`-o DIR` one DIR/<stem>.json per input, resumable with `--skip-existing`); with `--layout` the one input is a data
root and `--split` (default test) picks the presentations; `--manifest FILE` scores every row (or `--split`);
`simulate` without inputs uses scikit-image's faces; `benchmark` runs the quick preset on CPU and the full one on
CUDA unless `--quick`/`--full` says otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from wisecli.cli import options as o
from wisecli.cli.common import MethodApp
from wisecli.cli.output import Sink

app = MethodApp("fas", help="Face anti-spoofing with pixel-wise and pyramid supervision (CDCN, MONAI ResNet).",
                context_settings={"help_option_names": ["-h", "--help"]})

_DATA, _MODEL, _SUP, _TRAIN, _EVAL = "Data", "Model", "Supervision", "Training", "Evaluation"


def _opt(*names, help: str, panel: str | None = None, callback=None):
    return typer.Option(*names, help=help, rich_help_panel=panel, callback=callback)


LayoutName = Literal["oulu", "siw", "casia", "replay", "manifest", "folder"]
DetectorName = Literal["haar", "lbp", "boxes", "none"]
Layout = Annotated[Optional[LayoutName], _opt("--layout", help="Data set layout.", panel=_DATA)]
Protocol = Annotated[Optional[str], _opt("--protocol", help="Data set protocol (OULU 1-4, SiW 1|2_k|3_k, ...).",
                                         panel=_DATA)]
Fold = Annotated[Optional[int], _opt("--fold", help="Fold of OULU-NPU protocols 3 and 4 (1-6; 0: none).", panel=_DATA,
                                     callback=o.not_negative)]
AllowPartial = Annotated[Optional[bool], _opt("--allow-partial", help="Accept a data set smaller than its known size.",
                                              panel=_DATA)]
Detector = Annotated[Optional[DetectorName], _opt("--detector", help="Face detector (none: inputs are crops).",
                                                  panel=_DATA)]
Frames = Annotated[Optional[int], _opt("--frames", help="Frames sampled uniformly per video.", panel=_DATA,
                                       callback=o.at_least_one)]
Agg = Annotated[Optional[Literal["mean", "median"]], _opt("--agg", help="Aggregation of frame scores.")]
Workers = Annotated[Optional[int], _opt("--workers", help="Decode/detect threads.", callback=o.not_negative)]


@app.command()
def train(
    data: Annotated[Path, typer.Argument(help="Data root (or manifest CSV with --layout manifest).")],
    out_dir: Annotated[Optional[Path], typer.Option("-o", "--out-dir", help="Run folder to write.")] = None,
    layout: Layout = None, protocol: Protocol = None, fold: Fold = None, allow_partial: AllowPartial = None,
    supervision: Annotated[Optional[Literal["binary", "binary-mask", "depth-map", "pyramid"]],
                           _opt("--supervision", help="Supervision mode.", panel=_SUP)] = None,
    pyramid_base: Annotated[Optional[Literal["binary-mask", "depth-map"]],
                            _opt("--pyramid-base", help="Maps the pyramid pools.", panel=_SUP)] = None,
    pyramid_scales: Annotated[Optional[str], _opt("--pyramid-scales", help="Output sizes, e.g. 32,16,8,4,2,1.",
                                                  panel=_SUP)] = None,
    pyramid_weights: Annotated[Optional[str], _opt("--pyramid-weights", help="One weight per scale (default 1).",
                                                   panel=_SUP)] = None,
    mask_label: Annotated[Optional[Literal["face", "full"]], _opt("--mask-label", help="face (ellipse) | full.",
                                                                  panel=_SUP)] = None,
    aux_binary: Annotated[Optional[float], _opt("--aux-binary", help="Weight of an extra binary head (PixBiS).",
                                                panel=_SUP, callback=o.not_negative)] = None,
    depth_root: Annotated[Optional[Path], _opt("--depth-root", help="Depth maps mirroring the data tree.",
                                               panel=_SUP)] = None,
    depth_fallback: Annotated[Optional[Literal["none", "template"]],
                              _opt("--depth-fallback", help="template: an analytic face depth.", panel=_SUP)] = None,
    backbone: Annotated[Optional[Literal["cdcn", "resnet"]], _opt("--backbone", help="CDCN or MONAI ResNet.",
                                                                  panel=_MODEL)] = None,
    resnet_depth: Annotated[Optional[Literal[18, 34, 50]], _opt("--resnet-depth", help="ResNet depth.",
                                                                panel=_MODEL)] = None,
    theta: Annotated[Optional[float], _opt("--theta", help="CDC θ.", panel=_MODEL, callback=o.not_negative)] = None,
    width: Annotated[Optional[float], _opt("--width", help="CDCN channel multiplier.", panel=_MODEL,
                                           callback=o.positive)] = None,
    input_size: Annotated[Optional[int], _opt("--input-size", help="Face crop size.", panel=_MODEL,
                                              callback=o.at_least_one)] = None,
    map_size: Annotated[Optional[int], _opt("--map-size", help="Map size.", panel=_MODEL,
                                            callback=o.at_least_one)] = None,
    pretrained: Annotated[Optional[Path], _opt("--pretrained", help="A `wise fas` checkpoint to start from.",
                                               panel=_MODEL)] = None,
    epochs: o.Epochs = None, batch_size: o.BatchSize = None, lr: o.Lr = None,
    lr_step: Annotated[Optional[int], _opt("--lr-step", help="Halve the rate every N epochs.", panel=_TRAIN,
                                           callback=o.at_least_one)] = None,
    detector: Detector = None, frames: Frames = None, agg: Agg = None,
    cache: Annotated[Optional[Path], _opt("--cache", help="Folder for the uint8 face cache.", panel=_TRAIN)] = None,
    workers: Workers = None, resume: o.Resume = False, overwrite: o.Overwrite = False,
    device: o.Device = "auto", amp: o.Amp = True, seed: Annotated[Optional[int], typer.Option(
        "--seed", envvar="WISE_SEED", help="Random seed.", callback=o.not_negative)] = None,
    json: o.Json = False, no_progress: o.NoProgress = False,
) -> None:
    """Train a face anti-spoofing model; writes config.json, metrics.jsonl, checkpoints/, dev_scores.jsonl."""
    from wisecli.engines.fas import api
    from wisecli.runtime.progress import enabled

    sink = Sink(json=json)
    summary = api.train(data, out_dir, layout=layout, protocol=protocol, fold=fold, allow_partial=allow_partial,
                        supervision=supervision, pyramid_base=pyramid_base, pyramid_scales=pyramid_scales,
                        pyramid_weights=pyramid_weights, mask_label=mask_label, aux_binary=aux_binary,
                        depth_root=depth_root, depth_fallback=depth_fallback, backbone=backbone,
                        resnet_depth=resnet_depth, theta=theta, width=width, input_size=input_size, map_size=map_size,
                        pretrained=pretrained, epochs=epochs, batch_size=batch_size, lr=lr, lr_step=lr_step,
                        detector=detector, frames=frames, agg=agg, cache=cache, workers=workers, seed=seed,
                        resume=resume, overwrite=overwrite, device=device, amp=amp, progress=enabled(no_progress),
                        sink=sink)
    sink.result(summary, title="wise fas train")


@app.command()
def predict(
    inputs: Annotated[Optional[list[str]], typer.Argument(
        help="Images, videos (.avi/.mov/.mp4), frame folders, globs, @list.txt, @-.")] = None,
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Checkpoint (best.pt) of `wise fas train`.")] = None,
    layout: Layout = None, protocol: Protocol = None, fold: Fold = None, allow_partial: AllowPartial = None,
    manifest: Annotated[Optional[Path], _opt("--manifest", help="Score the rows of a manifest CSV.",
                                             panel=_DATA)] = None,
    split: Annotated[Optional[Literal["train", "dev", "test", "cross"]],
                     _opt("--split", help="Split to score with --layout/--manifest (default test / all rows).",
                          panel=_DATA)] = None,
    frames: Frames = None, agg: Agg = None, detector: Detector = None,
    threshold: Annotated[Optional[float], typer.Option("--threshold", help="Override the stored dev threshold.",
                                                       callback=o.not_negative)] = None,
    save_maps: Annotated[Optional[Path], typer.Option("--save-maps", help="Folder for one PNG per pyramid level.")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Faces per forward pass.",
                                                      callback=o.at_least_one)] = None,
    workers: Workers = None,
    output: Annotated[Optional[Path], typer.Option(
        "-o", "--output", help="FILE.jsonl: every record in one file; DIR: one DIR/<stem>.json per input.")] = None,
    skip_existing: o.SkipExisting = False, overwrite: o.Overwrite = False, fail_fast: o.FailFast = False,
    shard: o.Shard = None, pattern: o.Pattern = None,
    device: o.Device = "auto", amp: o.Amp = True, seed: Annotated[Optional[int], typer.Option(
        "--seed", envvar="WISE_SEED", help="Random seed (manifest splits).", callback=o.not_negative)] = None,
    json: o.Json = False, jsonl: o.Jsonl = False, debug: o.Debug = False,
) -> None:
    """Score faces in images and videos: one record per input (score, threshold, decision, frames)."""
    from wisecli.engines.fas import api

    sink = Sink(json=json, jsonl=jsonl)
    recs = api.predict(inputs, weights=weights, output=output, layout=layout, manifest=manifest, split=split,
                       protocol=protocol, fold=fold, allow_partial=allow_partial, pattern=pattern, shard=shard,
                       frames=frames, agg=agg, detector=detector, threshold=threshold, save_maps=save_maps,
                       batch_size=batch_size, workers=workers, skip_existing=skip_existing, overwrite=overwrite,
                       fail_fast=fail_fast, device=device, amp=amp, seed=seed, debug=debug, sink=sink)
    rows = [{"input": r["input"], "status": r["status"], "score": r.get("score"), "decision": r.get("decision"),
             "frames": r.get("frames_used")} for r in recs]
    sink.result({"records": recs}, rows=rows, title="wise fas predict")
    sink.finish(recs)


@app.command()
def evaluate(
    test: Annotated[Optional[Path], typer.Argument(help="Test data (root or manifest) with --weights.")] = None,
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Checkpoint to score TEST and DEV with.")] = None,
    dev: Annotated[Optional[Path], typer.Option("--dev", help="Dev data (default: TEST's dev split).")] = None,
    scores: Annotated[Optional[Path], typer.Option("--scores", help="Test score JSONL (model-free).")] = None,
    dev_scores: Annotated[Optional[Path], typer.Option("--dev-scores", help="Dev score JSONL.")] = None,
    layout: Layout = None, protocol: Protocol = None, fold: Fold = None, allow_partial: AllowPartial = None,
    dev_layout: Annotated[Optional[LayoutName], _opt("--dev-layout", help="Layout of --dev (default --layout).",
                                                     panel=_DATA)] = None,
    threshold: Annotated[Optional[str], _opt("--threshold", help="dev-eer | fixed:X | bpcer-at-apcer:0.05.",
                                             panel=_EVAL)] = None,
    level: Annotated[Optional[Literal["video", "frame"]], _opt("--level", help="Score level.", panel=_EVAL)] = None,
    species: Annotated[Optional[Literal["type", "instrument"]], _opt("--species", help="Attack species by.",
                                                                     panel=_EVAL)] = None,
    cross: Annotated[bool, _opt("--cross", help="Cross-dataset: HTER at the source dev threshold.",
                                panel=_EVAL)] = False,
    compat: Annotated[bool, _opt("--compat", help="Also the optimistic test-threshold HTER.", panel=_EVAL)] = False,
    bootstrap: Annotated[Optional[int], _opt("--bootstrap", help="Subject-level bootstrap rounds (95 % CI).",
                                             panel=_EVAL, callback=o.not_negative)] = None,
    frames: Frames = None, detector: Detector = None, out_dir: o.OutDir = None, overwrite: o.Overwrite = False,
    device: o.Device = "auto", amp: o.Amp = True, seed: Annotated[Optional[int], typer.Option(
        "--seed", envvar="WISE_SEED", help="Random seed.", callback=o.not_negative)] = None,
    json: o.Json = False,
) -> None:
    """APCER (worst species), BPCER, ACER, EER, AUC, BPCER20/100, HTER at the dev threshold."""
    from wisecli.engines.fas import api

    sink = Sink(json=json)
    res = api.evaluate(test, weights=weights, dev=dev, scores=scores, dev_scores=dev_scores, layout=layout,
                       dev_layout=dev_layout, protocol=protocol, fold=fold, allow_partial=allow_partial,
                       threshold=threshold, level=level, species=species, cross=cross, compat=compat,
                       bootstrap=bootstrap, frames=frames, detector=detector, out_dir=out_dir, overwrite=overwrite,
                       device=device, amp=amp, seed=seed, sink=sink)
    keys = ["threshold", "apcer", "bpcer", "acer", "eer", "auc", "bpcer20", "bpcer100", "hter", "apcer_pooled_info",
            "n_bona_fide", "n_attack"]
    rows = [{"metric": k, "value": res[k]} for k in keys]
    rows += [{"metric": f"apcer[{s}]", "value": v} for s, v in res["apcer_per_species"].items()]
    sink.result(res, rows=rows, title=f"wise fas evaluate ({res['level']} level, τ {res['threshold_rule']})")


@app.command()
def simulate(
    inputs: Annotated[Optional[list[Path]], typer.Argument(
        help="Live face images (default: scikit-image's LFW faces and astronaut).")] = None,
    out_dir: o.OutDir = None,
    size: Annotated[Optional[int], typer.Option("--size", help="Face size in pixels (16 or more).",
                                                callback=o.at_least_one)] = None,
    detector: Annotated[Optional[Literal["haar", "lbp", "none"]],
                        typer.Option("--detector", help="Face detector for the live images.")] = None,
    overwrite: o.Overwrite = False, seed: Annotated[Optional[int], typer.Option(
        "--seed", envvar="WISE_SEED", help="Random seed.", callback=o.not_negative)] = None,
    pattern: o.Pattern = None, json: o.Json = False,
) -> None:
    """Write clearly labelled SIMULATED print and replay attacks of live faces, with a manifest."""
    from wisecli.engines.fas import api

    sink = Sink(json=json)
    res = api.simulate(inputs, out_dir, size=size, detector=detector, seed=seed, pattern=pattern, overwrite=overwrite,
                       sink=sink)
    sink.result(res, rows=[{"kind": k, "count": v} for k, v in res["counts"].items()],
                title=f"SIMULATED attacks written to {out_dir}")
    sink.finish(res["records"], what="input images")


@app.command()
def demo(
    quick: o.Quick = False,
    full: Annotated[bool, typer.Option("--full", help="Also binary and template-depth depth-map.")] = False,
    seeds: Annotated[Optional[int], typer.Option("--seeds", help="Seeds per mode (2; not with --quick).",
                                                 callback=o.at_least_one)] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Training epochs per run (13; not with --quick).",
                                                  callback=o.at_least_one)] = None,
    device: o.Device = "auto", json: o.Json = False,
) -> None:
    """Simulated attacks on scikit-image faces → tiny CDCN → predict → evaluate (NOT A BENCHMARK); --quick scores the shipped demo weights."""
    from wisecli.engines.fas import api

    sink = Sink(json=json)
    res = api.demo(quick=quick, device=device, full=full, seeds=seeds, epochs=epochs, sink=sink)
    if not json:  # the per-run rows above the gates
        sink.table(res.details["rows"], title=res.details["title"])
    sink.demo(res, title=f"{res.details['title']}: gates")


@app.command()
def info(json: o.Json = False) -> None:
    """Supervision modes, backbones, detectors (OpenCV, cascades), layouts and defaults."""
    from wisecli.engines.fas import api

    doc = api.info()
    rows = [{"item": "supervisions", "value": ", ".join(doc["supervisions"])},
            {"item": "backbones", "value": ", ".join(doc["backbones"])},
            {"item": "layouts", "value": ", ".join(doc["layouts"])}]
    rows += [{"item": f"detector {k}", "value": "available" if v.get("available") else "unavailable"}
             for k, v in doc["detectors"].items()]
    rows += [{"item": f"default {k}", "value": v} for k, v in doc["defaults"].items()]
    w = doc.get("demo_weights")
    rows.append({"item": "demo weights", "value": f"{w['file']} ({w['bytes'] / 2**20:.1f} MB): {w['trained_on']}"
                 if w else "missing (the quick demo trains them from the recipe)"})
    Sink(json=json).result(doc, rows=rows, title="wise fas info")


@app.command()
def benchmark(
    quick: Annotated[Optional[bool], typer.Option("--quick/--full", help="Preset (default: quick on CPU, full on CUDA).",
                                                  show_default=False)] = None,
    iters: Annotated[Optional[int], typer.Option("--iters", help="Timed iterations (3 quick, 20 full).",
                                                 callback=o.at_least_one)] = None,
    e2e: Annotated[Optional[bool], typer.Option("--e2e/--no-e2e", help="Also end-to-end predict videos/s.")] = None,
    compile_: Annotated[bool, typer.Option("--compile", help="torch.compile our model.")] = False,
    device: o.Device = "auto", amp: o.Amp = True, json: o.Json = False,
) -> None:
    """Folded CDCN vs the reference-style two-conv CDCN: faces/s, training step, end-to-end predict."""
    from wisecli.engines.fas import api

    sink = Sink(json=json)
    recs = api.benchmark(device=device, quick=quick, iters=iters, compile=compile_, amp=amp, e2e=e2e, sink=sink)
    s = recs.summary
    sink.benchmark(recs, title=f"wise fas benchmark ({s['preset']}; max |Δ| {s['max_abs_diff']:.2e}; {s['device']})")
