"""`wise explain`: RISE and MC-RISE (colour-wise) saliency for black-box classifiers, with deletion/insertion and
the pointing game.

Thin Typer layer: each verb parses, makes one call into `wisecli.engines.explain.api` (imported inside the verb, so
`wise --help` stays fast) and hands the result to the sink. Defaults live in `api.DEFAULTS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from wisecli.cli import options as o
from wisecli.cli.common import MethodApp
from wisecli.cli.output import Sink, info_rows

app = MethodApp("explain", help="RISE and MC-RISE colour-wise saliency for black-box classifiers (PyTorch, TorchScript, ONNX).",
                rich_markup_mode="rich")

Model = Annotated[Optional[Path], typer.Option("--model", help="classify checkpoint/run folder, TorchScript or .onnx.")]
InputSize = Annotated[Optional[tuple[int, int]], typer.Option("--input-size", help="TorchScript/ONNX input H W.")]
Mean = Annotated[Optional[str], typer.Option("--mean", help="Per-channel mean in --range units (default ImageNet's).")]
Std = Annotated[Optional[str], typer.Option("--std", help="Per-channel std in --range units (default ImageNet's).")]
Range = Annotated[Literal["0-1", "0-255"], typer.Option("--range", help="Pixel range the model expects.")]
Bgr = Annotated[bool, typer.Option("--bgr", help="The model expects BGR channel order.")]
ClassNames = Annotated[Optional[Path], typer.Option("--class-names", help="File with one class name a line.")]
Softmax = Annotated[Optional[Literal["auto", "on", "off"]], typer.Option("--softmax", help="Softmax the outputs.")]


@app.command()
def run(
    inputs: Annotated[list[Path], typer.Argument(help="Images (PNG/JPEG/TIFF/BMP/PPM/.npy), folders, globs, @list.txt, @-.")],
    model: Model = None, out_dir: o.OutDir = None,
    method: Annotated[Optional[Literal["mcrise", "rise"]], typer.Option("--method", help="mcrise (3-channel default) or rise.")] = None,
    masks: Annotated[Optional[int], typer.Option("--masks", callback=o.at_least_one, help="Number of masks N.")] = None,
    grid: Annotated[Optional[int], typer.Option("--grid", callback=o.at_least_one, help="Grid size s (2..image size).")] = None,
    keep_prob: Annotated[Optional[float], typer.Option("--keep-prob", callback=o.positive, help="Keep probability p1 (RISE) or q (MC-RISE), in (0, 1).")] = None,
    colors: Annotated[Optional[str], typer.Option("--colors", help="MC-RISE palette: names or #rrggbb, comma separated.")] = None,
    fill: Annotated[Optional[Literal["mean", "black", "blur"]], typer.Option("--fill", help="RISE occlusion fill.")] = None,
    debias: Annotated[Optional[bool], typer.Option("--debias", help="RISE: E[f|kept] - E[f|occluded].")] = None,
    target: Annotated[Optional[str], typer.Option("--target", help="top1, top:N, class ids or names (comma list).")] = None,
    softmax: Softmax = None,
    batch: Annotated[Optional[int], typer.Option("--batch", callback=o.at_least_one, help="Forward batch (default 256 CPU, 1024 CUDA).")] = None,
    save_size: Annotated[Optional[Literal["model", "image"]], typer.Option("--save-size", help="Save maps at the model's or the image's size.")] = None,
    cuda_graph: Annotated[Optional[bool], typer.Option("--cuda-graph", help="Replay the forward from CUDA graphs (CUDA, PyTorch models; else a warning).")] = None,
    input_size: InputSize = None, mean: Mean = None, std: Std = None, value_range: Range = "0-1", bgr: Bgr = False,
    class_names: ClassNames = None,
    no_png: Annotated[bool, typer.Option("--no-png", help="Skip the PNG overlays.")] = False,
    pattern: o.Pattern = None, shard: o.Shard = None, skip_existing: o.SkipExisting = False,
    overwrite: o.Overwrite = False, fail_fast: o.FailFast = False, device: o.Device = None, amp: o.Amp = None,
    seed: o.Seed = None, json: o.Json = False, jsonl: o.Jsonl = False,
) -> None:
    """Saliency maps (.npy, overlays, records) of many images, model loaded once; exit 3 if some inputs failed."""
    import sys

    from wisecli.engines.explain import api

    sink = Sink(json=json, jsonl=jsonl)
    records = api.run(inputs, model=model, out_dir=out_dir, method=method, masks=masks, grid=grid, keep_prob=keep_prob,
                      colors=colors, fill=fill, debias=debias, target=target, softmax=softmax, batch=batch,
                      save_size=save_size, cuda_graph=cuda_graph, input_size=input_size, mean=mean, std=std, value_range=value_range, bgr=bgr,
                      class_names=class_names, png=not no_png, pattern=pattern, shard=shard,
                      skip_existing=skip_existing, overwrite=overwrite, fail_fast=fail_fast, device=device, amp=amp,
                      seed=seed, sink=sink, argv=sys.argv)
    rows = [{"input": r["input"], "status": r["status"], "class": ", ".join(f"{c['name']} ({c['prob']:.3f})" for c in r.get("classes", [])),
             "npy": (r.get("outputs") or {}).get("npy") if isinstance(r.get("outputs"), dict) else None,
             "seconds": r.get("seconds")} for r in records]
    sink.result({"records": records}, rows=rows, title="wise explain run")
    sink.finish(records)


@app.command()
def evaluate(
    inputs: Annotated[Optional[list[Path]], typer.Argument(help="Images whose maps are in --maps (or use --from).")] = None,
    from_dir: Annotated[Optional[Path], typer.Option("--from", help="The -o folder of 'wise explain run'.")] = None,
    maps: Annotated[Optional[Path], typer.Option("--maps", help="Folder of <stem>.npy maps from any tool.")] = None,
    model: Model = None,
    metrics: Annotated[Optional[str], typer.Option("--metrics", help="deletion,insertion,pointing,color-deletion.")] = None,
    boxes: Annotated[Optional[Path], typer.Option("--boxes", help="VOC XML folder, COCO JSON or CSV/JSONL boxes (pointing).")] = None,
    step: Annotated[Optional[str], typer.Option("--step", help="Pixels a step: auto (224 steps) or N.")] = None,
    tolerance: Annotated[Optional[float], typer.Option("--tolerance", callback=o.positive, help="Pointing tolerance in pixels.")] = None,
    rank_by: Annotated[Optional[str], typer.Option("--rank-by", help="MC-RISE ranking: total or color:K.")] = None,
    baseline: Annotated[Optional[Literal["none", "random"]], typer.Option("--baseline", help="random: random maps, 3 seeds.")] = None,
    softmax: Softmax = None,
    curves: Annotated[bool, typer.Option("--curves", help="Add the score curves to the records.")] = False,
    plot: o.Plot = None,
    input_size: InputSize = None, mean: Mean = None, std: Std = None, value_range: Range = "0-1", bgr: Bgr = False,
    class_names: ClassNames = None, device: o.Device = None, seed: o.Seed = None,
    json: o.Json = False, jsonl: o.Jsonl = False,
) -> None:
    """Deletion/insertion AUC (RISE protocol), pointing game and colour deletion of saliency maps."""
    from wisecli.engines.explain import api

    sink = Sink(json=json, jsonl=jsonl)
    doc = api.evaluate(inputs, from_dir=from_dir, maps=maps, model=model, metrics=metrics, boxes=boxes, step=step,
                       tolerance=tolerance, rank_by=rank_by, baseline=baseline, softmax=softmax, curves=curves,
                       plot=plot, input_size=input_size, mean=mean, std=std, value_range=value_range, bgr=bgr,
                       class_names=class_names, device=device, seed=seed, sink=sink)
    rows = [{"metric": k, "mean": s.get("mean"), "ci95": s.get("ci95") and [round(v, 4) for v in s["ci95"]], "n": s.get("n")}
            for k, s in doc["summary"].items() if isinstance(s, dict)]
    sink.result(doc, rows=rows, title="wise explain evaluate")


@app.command()
def demo(
    quick: o.Quick = False, device: o.Device = None,
    data: Annotated[Optional[Literal["digits", "mnist5k", "photos"]], typer.Option("--data", help="Canvas source.")] = None,
    out_dir: o.OutDir = None, seed: o.Seed = None, json: o.Json = False,
) -> None:
    """Train small-cnn on red/green digit canvases, explain it (MC-RISE, RISE), score against random maps."""
    from wisecli.engines.explain import api

    sink = Sink(json=json)
    result = api.demo(quick=quick, device=device, data=data, seed=seed, out_dir=out_dir, sink=sink)
    sink.demo(result, title=result.details["title"])


@app.command()
def info(json: o.Json = False) -> None:
    """Formats, defaults, onnxruntime/CUDA, formulas, suggested N and our choices."""
    from wisecli.engines.explain import api

    doc = api.info()
    rows = info_rows(doc, {"choices": "choice", "formulas": "formula"})
    Sink(json=json).result(doc, rows=rows, title="wise explain info")


@app.command()
def benchmark(
    quick: o.Quick = False, device: o.Device = None,
    size: Annotated[Optional[Literal["small", "full"]], typer.Option("--size", help="small (CPU) or full (spec §7).")] = None,
    json: o.Json = False,
) -> None:
    """Race device RISE/MC-RISE against the per-mask CPU loop (one process, one device)."""
    from wisecli.engines.explain import api

    Sink(json=json).benchmark(api.benchmark(device=device, quick=quick, size=size), title="wise explain benchmark")
