"""`wise fas`: face anti-spoofing with pixel-wise and pyramid supervision (Yu et al., T-BIOM 2021).

Verbs: `train`, `predict`, `evaluate`, `simulate` (method verb), `demo`, `info`, `benchmark`.
Engine: `wisecli.engines.fas.api`, imported inside the command bodies.

Choices (ours): `train` refuses an existing run folder unless `--resume` or `--overwrite`; `predict` prints a table by
default and one JSON record per input with `--jsonl` (`-o FILE` writes the JSONL atomically); with `--layout` the one
input is a data root and `--split` (default test) picks the presentations; `--manifest FILE` scores every row
(or `--split`); `simulate` without inputs uses scikit-image's faces; `benchmark` runs the quick preset on CPU and the
full one on CUDA unless `--quick`/`--full` says otherwise.
"""

from __future__ import annotations

import json as _json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from wisecli.cli import options as o
from wisecli.cli.errors import InputError, PartialFailure
from wisecli.cli.output import Sink

app = typer.Typer(help="Face anti-spoofing with pixel-wise and pyramid supervision (CDCN, MONAI ResNet).",
                  no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]})

_DATA, _MODEL, _SUP, _TRAIN, _EVAL = "Data", "Model", "Supervision", "Training", "Evaluation"


def _opt(*names, help: str, panel: str | None = None):
    return typer.Option(*names, help=help, rich_help_panel=panel)


Layout = Annotated[Optional[str], _opt("--layout", help="oulu | siw | casia | replay | manifest | folder.",
                                       panel=_DATA)]
Protocol = Annotated[Optional[str], _opt("--protocol", help="Data set protocol (OULU 1-4, SiW 1|2_k|3_k, ...).",
                                         panel=_DATA)]
Fold = Annotated[Optional[int], _opt("--fold", help="Fold of OULU-NPU protocols 3 and 4 (1-6).", panel=_DATA)]
AllowPartial = Annotated[Optional[bool], _opt("--allow-partial", help="Accept a data set smaller than its known size.",
                                              panel=_DATA)]
Detector = Annotated[Optional[str], _opt("--detector", help="haar | lbp | boxes | none (inputs are crops).",
                                         panel=_DATA)]
Frames = Annotated[Optional[int], _opt("--frames", help="Frames sampled uniformly per video (8).", panel=_DATA)]


def _sink(json=False, jsonl=False, quiet=False, verbose=False) -> Sink:
    return Sink(json=json, jsonl=jsonl, quiet=quiet, verbose=verbose)


def _fmt(v):
    return round(v, 4) if isinstance(v, float) else v


@app.command()
def train(
    data: Annotated[Path, typer.Argument(help="Data root (or manifest CSV with --layout manifest).")],
    out_dir: Annotated[Optional[Path], typer.Option("-o", "--out-dir", help="Run folder to write.")] = None,
    layout: Layout = None, protocol: Protocol = None, fold: Fold = None, allow_partial: AllowPartial = None,
    supervision: Annotated[Optional[str], _opt("--supervision", help="binary | binary-mask | depth-map | pyramid.",
                                               panel=_SUP)] = None,
    pyramid_base: Annotated[Optional[str], _opt("--pyramid-base", help="binary-mask | depth-map.", panel=_SUP)] = None,
    pyramid_scales: Annotated[Optional[str], _opt("--pyramid-scales", help="Output sizes, e.g. 32,16,8,4,2,1.",
                                                  panel=_SUP)] = None,
    pyramid_weights: Annotated[Optional[str], _opt("--pyramid-weights", help="One weight per scale (default 1).",
                                                   panel=_SUP)] = None,
    mask_label: Annotated[Optional[str], _opt("--mask-label", help="face (ellipse) | full.", panel=_SUP)] = None,
    aux_binary: Annotated[Optional[float], _opt("--aux-binary", help="Weight of an extra binary head (PixBiS).",
                                                panel=_SUP)] = None,
    depth_root: Annotated[Optional[str], _opt("--depth-root", help="Depth maps mirroring the data tree.",
                                              panel=_SUP)] = None,
    depth_fallback: Annotated[Optional[str], _opt("--depth-fallback", help="none | template (analytic face).",
                                                  panel=_SUP)] = None,
    backbone: Annotated[Optional[str], _opt("--backbone", help="cdcn | resnet (MONAI).", panel=_MODEL)] = None,
    resnet_depth: Annotated[Optional[int], _opt("--resnet-depth", help="18 | 34 | 50.", panel=_MODEL)] = None,
    theta: Annotated[Optional[float], _opt("--theta", help="CDC θ (0.7).", panel=_MODEL)] = None,
    width: Annotated[Optional[float], _opt("--width", help="CDCN channel multiplier (1.0).", panel=_MODEL)] = None,
    input_size: Annotated[Optional[int], _opt("--input-size", help="Face crop size (256).", panel=_MODEL)] = None,
    map_size: Annotated[Optional[int], _opt("--map-size", help="Map size (32).", panel=_MODEL)] = None,
    pretrained: Annotated[Optional[str], _opt("--pretrained", help="State dict to start from (weights only).",
                                              panel=_MODEL)] = None,
    epochs: Annotated[Optional[int], _opt("--epochs", help="Epochs of one frame per video (1400).",
                                          panel=_TRAIN)] = None,
    batch_size: Annotated[Optional[int], _opt("--batch-size", help="Batch size (32).", panel=_TRAIN)] = None,
    lr: Annotated[Optional[float], _opt("--lr", help="Adam learning rate (1e-4).", panel=_TRAIN)] = None,
    lr_step: Annotated[Optional[int], _opt("--lr-step", help="Halve the rate every N epochs (500).",
                                           panel=_TRAIN)] = None,
    detector: Detector = None, frames: Frames = None,
    agg: Annotated[Optional[str], _opt("--agg", help="mean | median of frame scores.", panel=_TRAIN)] = None,
    cache: Annotated[Optional[str], _opt("--cache", help="Folder for the uint8 face cache.", panel=_TRAIN)] = None,
    workers: Annotated[Optional[int], _opt("--workers", help="Decode/detect threads.", panel=_TRAIN)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from checkpoints/last.pt.")] = False,
    overwrite: o.Overwrite = False,
    device: o.Device = "auto", amp: o.Amp = True, seed: Annotated[Optional[int], typer.Option(
        "--seed", help="Random seed.")] = None,
    config: o.Config = None, set_: Annotated[Optional[list[str]], typer.Option("--set", help="key=value.")] = None,
    json: o.Json = False, quiet: o.Quiet = False, verbose: o.Verbose = False, no_progress: o.NoProgress = False,
    debug: o.Debug = False,
) -> None:
    """Train a face anti-spoofing model; writes config.json, metrics.jsonl, checkpoints/, dev_scores.jsonl."""
    sink = _sink(json=json, quiet=quiet, verbose=verbose)
    if out_dir is None:
        raise InputError("train needs -o RUN_FOLDER", "e.g. wise fas train data/ --layout oulu -o runs/p1")
    rank0 = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 judges the folder
    if rank0 and out_dir.exists() and any(out_dir.iterdir()) and not (resume or overwrite):
        raise InputError(f"run folder {out_dir} exists", "pass --resume to continue it or --overwrite to start over")
    from wisecli.cli.config import resolve
    from wisecli.engines.fas import api
    from wisecli.runtime.progress import enabled
    from wisecli.runtime.runrecord import RunRecord

    flags = dict(layout=layout, protocol=protocol, fold=fold, allow_partial=allow_partial, supervision=supervision,
                 pyramid_base=pyramid_base, pyramid_scales=pyramid_scales, pyramid_weights=pyramid_weights,
                 mask_label=mask_label, aux_binary=aux_binary, depth_root=depth_root, depth_fallback=depth_fallback,
                 backbone=backbone, resnet_depth=resnet_depth, theta=theta, width=width, input_size=input_size,
                 map_size=map_size, pretrained=pretrained, epochs=epochs, batch_size=batch_size, lr=lr,
                 lr_step=lr_step, detector=detector, frames=frames, agg=agg, cache=cache, workers=workers, seed=seed)
    res = resolve(api.DEFAULTS, flags=flags, config_file=config, sets=set_)
    record = RunRecord("fas train", config=res, device=device, seed=res.values["seed"], inputs=[data])
    summary = api.train(data, out_dir, dict(res.values), device=device, amp=amp, resume=resume,
                        progress=enabled(no_progress), sink=sink)
    summary.pop("model", None)
    cfg = summary.pop("config")
    record.set("effective", cfg)
    for name in ("config.json", "metrics.jsonl", "checkpoints/last.pt", "checkpoints/best.pt", "dev_scores.jsonl"):
        record.add_output(out_dir / name)
    if rank0:
        record.write(out_dir)
    sink.result(summary, rows=[{k: _fmt(v) for k, v in summary.items()}], title="wise fas train")


def _samples_for(inputs, layout, manifest, split, protocol, fold, allow_partial, pattern, seed, sink):
    """Presentations to score and whether they carry labels."""
    from wisecli.engines.fas.data import IMAGE_EXT, VIDEO_EXT, Sample, kind_of, load_dataset

    if manifest is not None or layout is not None:
        if manifest is not None:
            root, lay = manifest, "manifest"
        else:
            if len(inputs) != 1:
                raise InputError("--layout takes exactly one data root", "e.g. wise fas predict data/ --layout oulu")
            root, lay = Path(inputs[0]), layout
        splits = load_dataset(root, lay, protocol=protocol, fold=fold, allow_partial=allow_partial, seed=seed,
                              warn=sink.warn)
        if split:
            if split not in splits:
                raise InputError(f"no split {split!r}", f"splits: {', '.join(splits)}")
            return splits[split], True
        if lay == "manifest":
            return [s for v in splits.values() for s in v], True
        return splits["test"], True
    if not inputs:
        raise InputError("no inputs", "give images, videos, folders of frames, @list.txt or @-")
    from wisecli.cli.inputs import expand_inputs

    def frames_dir(p: Path) -> bool:
        return not any(q.is_dir() for q in p.iterdir()) and any(q.suffix.lower() in IMAGE_EXT for q in p.iterdir()) \
            and any(q.name.endswith("_scene.jpg") for q in p.iterdir())

    paths = expand_inputs(inputs, pattern=pattern, extensions=IMAGE_EXT + VIDEO_EXT, dir_is_item=frames_dir)
    return [Sample(str(p), -1, None, p.stem, "", kind_of(p)) for p in paths], False


@app.command()
def predict(
    inputs: Annotated[Optional[list[str]], typer.Argument(
        help="Images, videos (.avi/.mov/.mp4), frame folders, globs, @list.txt, @-.")] = None,
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Checkpoint (best.pt) of `wise fas train`.")] = None,
    layout: Layout = None, protocol: Protocol = None, fold: Fold = None, allow_partial: AllowPartial = None,
    manifest: Annotated[Optional[Path], _opt("--manifest", help="Score the rows of a manifest CSV.",
                                             panel=_DATA)] = None,
    split: Annotated[Optional[str], _opt("--split", help="train | dev | test | cross (with --layout/--manifest).",
                                         panel=_DATA)] = None,
    frames: Annotated[int, _opt("--frames", help="Frames per video.", panel=_DATA)] = 8,
    agg: Annotated[Optional[str], typer.Option("--agg", help="mean | median (default: the checkpoint's).")] = None,
    detector: Detector = None,
    threshold: Annotated[Optional[float], typer.Option("--threshold", help="Override the stored dev threshold.")] = None,
    save_maps: Annotated[Optional[Path], typer.Option("--save-maps", help="Folder for one PNG per pyramid level.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Faces per forward pass.")] = 128,
    workers: Annotated[int, typer.Option("--workers", help="Decode/detect threads.")] = 2,
    output: o.OutFile = None, overwrite: o.Overwrite = False, shard: o.Shard = None, pattern: o.Pattern = None,
    device: o.Device = "auto", amp: o.Amp = True, seed: o.Seed = 0,
    json: o.Json = False, jsonl: o.Jsonl = False, quiet: o.Quiet = False, verbose: o.Verbose = False,
    debug: o.Debug = False,
) -> None:
    """Score faces in images and videos: one record per input (score, threshold, decision, frames)."""
    sink = _sink(json=json, jsonl=jsonl, quiet=quiet, verbose=verbose)
    if weights is None:
        raise InputError("predict needs --weights CKPT", "e.g. --weights runs/p1/checkpoints/best.pt")
    if agg is not None and agg not in ("mean", "median"):
        raise InputError(f"--agg {agg!r} is not known", "use mean or median")
    if frames < 1:
        raise InputError("--frames must be at least 1", "e.g. --frames 8")
    if layout is not None and manifest is not None:
        raise InputError("give --layout or --manifest, not both", "a manifest is --manifest FILE")
    from wisecli.runtime.io.atomic import refuse_existing

    if output is not None:
        refuse_existing(output, overwrite)
    from wisecli.cli.inputs import apply_shard, parse_shard
    from wisecli.engines.fas import api
    from wisecli.engines.fas.detect import make_detector
    from wisecli.runtime.runrecord import RunRecord

    samples, labelled = _samples_for(inputs or [], layout, manifest, split, protocol, fold or None,
                                     bool(allow_partial), pattern, seed, sink)
    samples = apply_shard(samples, parse_shard(shard))
    if detector is not None:
        make_detector(detector)  # refuse a bad detector before any work
    if save_maps is not None:
        save_maps.mkdir(parents=True, exist_ok=True)
    record = RunRecord("fas predict", config={"weights": str(weights), "frames": frames, "agg": agg,
                                              "detector": detector, "threshold": threshold},
                       device=device, seed=seed, inputs=[s.path for s in samples])
    recs, failed = [], 0
    tmp = None
    fh = None
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.with_name(f".{output.name}.tmp{os.getpid()}")
        fh = open(tmp, "w", encoding="utf-8")
    try:
        for rec in api.predict_samples(samples, weights, device=device, frames=frames, agg=agg, detector=detector,
                                       threshold=threshold, batch_size=batch_size, workers=workers, amp=amp,
                                       save_maps=save_maps, with_labels=labelled, sink=sink):
            recs.append(rec)
            failed += rec["status"] != "ok"
            sink.record(rec)
            if fh is not None:
                fh.write(_json.dumps(rec) + "\n")
                fh.flush()
            if rec["status"] != "ok":
                sink.warn(f"{rec['input']}: {rec['status']}{': ' + rec['error'] if rec.get('error') else ''}")
        if fh is not None:
            fh.close()
            os.replace(tmp, output)
            record.add_output(output)
    finally:
        if fh is not None and not fh.closed:
            fh.close()
        if tmp is not None and tmp.exists():
            tmp.unlink()
    if output is not None:
        record.write(output.parent)
    rows = [{"input": r["input"], "status": r["status"], "score": _fmt(r.get("score")),
             "decision": r.get("decision"), "frames": r.get("frames_used")} for r in recs]
    sink.result({"records": recs}, rows=rows, title="wise fas predict")
    if failed:
        raise PartialFailure(f"{failed} of {len(recs)} input(s) not scored (no face or unreadable)",
                             "see the records' status; try --detector lbp for hard faces")


@app.command()
def evaluate(
    test: Annotated[Optional[Path], typer.Argument(help="Test data (root or manifest) with --weights.")] = None,
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Checkpoint to score TEST and DEV with.")] = None,
    dev: Annotated[Optional[Path], typer.Option("--dev", help="Dev data (default: TEST's dev split).")] = None,
    scores: Annotated[Optional[Path], typer.Option("--scores", help="Test score JSONL (model-free).")] = None,
    dev_scores: Annotated[Optional[Path], typer.Option("--dev-scores", help="Dev score JSONL.")] = None,
    layout: Layout = None, protocol: Protocol = None, fold: Fold = None, allow_partial: AllowPartial = None,
    dev_layout: Annotated[Optional[str], _opt("--dev-layout", help="Layout of --dev (default --layout).",
                                              panel=_DATA)] = None,
    threshold: Annotated[str, _opt("--threshold", help="dev-eer | fixed:X | bpcer-at-apcer:0.05.",
                                   panel=_EVAL)] = "dev-eer",
    level: Annotated[str, _opt("--level", help="video | frame.", panel=_EVAL)] = "video",
    species: Annotated[str, _opt("--species", help="type | instrument.", panel=_EVAL)] = "type",
    cross: Annotated[bool, _opt("--cross", help="Cross-dataset: HTER at the source dev threshold.",
                                panel=_EVAL)] = False,
    compat: Annotated[bool, _opt("--compat", help="Also the optimistic test-threshold HTER.", panel=_EVAL)] = False,
    bootstrap: Annotated[int, _opt("--bootstrap", help="Subject-level bootstrap rounds (95 % CI).",
                                   panel=_EVAL)] = 0,
    frames: Annotated[int, _opt("--frames", help="Frames per video.", panel=_DATA)] = 8,
    detector: Detector = None,
    out_dir: o.OutDir = None, overwrite: o.Overwrite = False,
    device: o.Device = "auto", amp: o.Amp = True, seed: o.Seed = 0,
    json: o.Json = False, quiet: o.Quiet = False, verbose: o.Verbose = False, debug: o.Debug = False,
) -> None:
    """APCER (worst species), BPCER, ACER, EER, AUC, BPCER20/100, HTER at the dev threshold."""
    sink = _sink(json=json, quiet=quiet, verbose=verbose)
    if weights is not None and scores is not None:
        raise InputError("give --weights or --scores, not both", "--scores re-evaluates saved scores")
    from wisecli.engines.fas import api

    res = api.evaluate(scores=scores, dev_scores=dev_scores, weights=weights, test=test, dev=dev,
                       layout=layout or "manifest", dev_layout=dev_layout, protocol=protocol or "", fold=fold or 0,
                       allow_partial=bool(allow_partial), out_dir=out_dir, overwrite=overwrite, threshold=threshold,
                       level=level, species=species, cross=cross, compat=compat, bootstrap=bootstrap, device=device,
                       frames=frames, detector=detector, seed=seed, amp=amp, sink=sink)
    keys = ["threshold", "apcer", "bpcer", "acer", "eer", "auc", "bpcer20", "bpcer100", "hter", "apcer_pooled_info",
            "n_bona_fide", "n_attack"]
    rows = [{"metric": k, "value": _fmt(res[k])} for k in keys]
    rows += [{"metric": f"apcer[{s}]", "value": _fmt(v)} for s, v in res["apcer_per_species"].items()]
    sink.result(res, rows=rows, title=f"wise fas evaluate ({res['level']} level, τ {res['threshold_rule']})")


@app.command()
def simulate(
    inputs: Annotated[Optional[list[str]], typer.Argument(
        help="Live face images (default: scikit-image's LFW faces and astronaut).")] = None,
    out_dir: o.OutDir = None,
    size: Annotated[int, typer.Option("--size", help="Face size in pixels.")] = 64,
    detector: Annotated[str, typer.Option("--detector", help="haar | lbp | none for the live images.")] = "haar",
    overwrite: o.Overwrite = False, seed: o.Seed = 0, pattern: o.Pattern = None,
    json: o.Json = False, quiet: o.Quiet = False, debug: o.Debug = False,
) -> None:
    """Write clearly labelled SIMULATED print and replay attacks of live faces, with a manifest."""
    sink = _sink(json=json, quiet=quiet)
    if out_dir is None:
        raise InputError("simulate needs -o DIR", "e.g. wise fas simulate faces/ -o sim/")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise InputError(f"output folder {out_dir} is not empty", "pass --overwrite or choose another -o")
    from wisecli.engines.fas import api

    paths = []
    if inputs:
        from wisecli.cli.inputs import expand_inputs
        from wisecli.engines.fas.data import IMAGE_EXT

        paths = expand_inputs(inputs, pattern=pattern, extensions=IMAGE_EXT)
    else:
        sink.info("no inputs: simulating attacks on scikit-image's faces (lfw_subset, astronaut)")
    res = api.simulate(paths, out_dir, size=size, seed=seed, detector=detector, sink=sink)
    for e in res["errors"]:
        sink.warn(f"{e['input']}: {e['error']}")
    sink.result(res, rows=[{"kind": k, "count": v} for k, v in res["counts"].items()],
                title=f"SIMULATED attacks written to {out_dir}")
    if res["errors"]:
        raise PartialFailure(f"{len(res['errors'])} input(s) without a face", "try --detector lbp or none")


@app.command()
def demo(
    quick: o.Quick = False,
    full: Annotated[bool, typer.Option("--full", help="Also binary and template-depth depth-map.")] = False,
    seeds: Annotated[Optional[int], typer.Option("--seeds", help="Seeds per mode (2; 1 with --quick).")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Training epochs per run.")] = None,
    device: o.Device = "auto", json: o.Json = False, quiet: o.Quiet = False, debug: o.Debug = False,
) -> None:
    """Simulated attacks on scikit-image faces → tiny CDCN → predict → evaluate (NOT A BENCHMARK)."""
    sink = _sink(json=json, quiet=quiet)
    from wisecli.engines.fas import api
    from wisecli.runtime.device import resolve_device

    dev = resolve_device(device, sink=sink)
    res = api.demo(quick=quick, device=str(dev), full=full, seeds=seeds, epochs=epochs, sink=sink)
    rows = [{k: _fmt(v) for k, v in r.items()} for r in res["rows"]]
    sink.result(res, rows=rows, title=res["title"])
    if not quick:
        sink.info(f"gate ({res['gate']['rule']}): {'passed' if res['gate']['passed'] else 'FAILED'}")


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
    _sink(json=json).result(doc, rows=rows, title="wise fas info")


@app.command()
def benchmark(
    quick: Annotated[Optional[bool], typer.Option("--quick/--full", help="Preset (default: quick on CPU, full on CUDA).",
                                                  show_default=False)] = None,
    iters: Annotated[Optional[int], typer.Option("--iters", help="Timed iterations.")] = None,
    compile_: Annotated[bool, typer.Option("--compile", help="torch.compile our model.")] = False,
    device: o.Device = "auto", amp: o.Amp = True, json: o.Json = False, quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> None:
    """Folded CDCN vs the reference-style two-conv CDCN: faces/s, training step, end-to-end predict."""
    sink = _sink(json=json, quiet=quiet)
    from wisecli.engines.fas.bench import run
    from wisecli.runtime.device import resolve_device

    dev = resolve_device(device, sink=sink)
    q = (dev.type != "cuda") if quick is None else quick
    doc = run(device=str(dev), quick=q, iters=iters, compile=compile_, amp=amp)
    rows = [{k: _fmt(v) for k, v in r.items() if k in ("case", "ours_s", "peer_s", "speedup", "device")}
            for r in doc["records"]]
    sink.result(doc, rows=rows, title=f"wise fas benchmark ({doc['preset']}; max |Δ| {doc['max_abs_diff']:.2e})")
