"""`wise sparse-cnn`: pixel-wise structured sparse CNNs with run-time density control (Tang et al., arXiv 2010.11083).

Thin Typer layer: each verb parses, makes one call into `wisecli.engines.sparse_cnn.api` (imported inside the verb,
so `wise --help` stays fast) and hands the result to the sink. Defaults live in `api.DEFAULTS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from wisecli.cli import options as o
from wisecli.cli.common import MethodApp
from wisecli.cli.output import Sink, info_rows

app = MethodApp("sparse-cnn", help="Pixel-wise structured sparse CNNs: one importance map, density set at run time; "
                "counted MACs and measured latency side by side.", rich_markup_mode="rich")

Exec = Annotated[Optional[Literal["auto", "dense", "masked", "gather"]], typer.Option("--exec", help="Execution path.")]
Force = Annotated[Optional[bool], typer.Option("--force", help="Allow a density below the trained minimum.")]
Task = Annotated[Optional[Literal["classify", "sr"]], typer.Option("--task", help="Classification or super-resolution.")]


@app.command()
def train(
    data: Annotated[str, typer.Argument(help="Labelled images (folder, CSV, .npz, builtin:digits) or SR HR images "
                                             "(folder, builtin:skimage-sr).")],
    out_dir: o.OutDir = None, task: Task = None,
    arch: Annotated[Optional[Literal["resnet18", "srresnet"]], typer.Option("--arch", help="Network.")] = None,
    scale: Annotated[Optional[int], typer.Option("--scale", callback=o.at_least_one, help="SR scale: 2 or 4.")] = None,
    mask_rule: Annotated[Optional[Literal["regional", "topk", "threshold"]], typer.Option("--mask-rule", help="Mask rule.")] = None,
    tile: Annotated[Optional[int], typer.Option("--tile", callback=o.at_least_one, help="Tile side: 4, 8, 16 or 32.")] = None,
    density_min: Annotated[Optional[float], typer.Option("--density-min", callback=o.positive, help="Lowest trained density.")] = None,
    epochs: o.Epochs = None, batch_size: o.BatchSize = None, lr: o.Lr = None,
    patch: Annotated[Optional[int], typer.Option("--patch", callback=o.at_least_one, help="SR LR patch side.")] = None,
    init: Annotated[Optional[Path], typer.Option("--init", help="A classify monai-resnet18 checkpoint to start from.")] = None,
    resume: o.Resume = False, overwrite: o.Overwrite = False, device: o.Device = None, amp: o.Amp = None,
    seed: o.Seed = None, json: o.Json = False, no_progress: o.NoProgress = False,
) -> None:
    """Train a gated network over densities into a run folder (-o RUN)."""
    from wisecli.engines.sparse_cnn import api

    sink = Sink(json=json)
    doc = api.train(data, out_dir, init=init, resume=resume, overwrite=overwrite, progress=not no_progress, sink=sink,
                    task=task, arch=arch, scale=scale, mask_rule=mask_rule, tile=tile, density_min=density_min,
                    epochs=epochs, batch_size=batch_size, lr=lr, patch=patch, device=device, amp=amp, seed=seed)
    sink.result(doc, rows=[{k: v for k, v in doc.items() if k != "last"}], title="wise sparse-cnn train")


@app.command()
def predict(
    inputs: Annotated[list[Path], typer.Argument(help="Images, folders, globs, @list.txt or @-.")],
    weights: o.Weights = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Records JSONL (classification) or image folder (SR).")] = None,
    density: Annotated[Optional[float], typer.Option("--density", callback=o.positive, help="Pixel density rho in (0, 1].")] = None,
    mac_budget: Annotated[Optional[float], typer.Option("--mac-budget", callback=o.positive, help="Fraction of dense MACs.")] = None,
    exec: Exec = None,
    calibration: Annotated[Optional[Path], typer.Option("--calibration", help="benchmark --json output (break-even).")] = None,
    save_masks: Annotated[bool, typer.Option("--save-masks", help="SR: also write the importance map and mask.")] = False,
    chunk: Annotated[Optional[int], typer.Option("--chunk", callback=o.at_least_one, help="SR chunk side (LR px).")] = None,
    batch_size: o.BatchSize = None, force: Force = None, pattern: o.Pattern = None, shard: o.Shard = None,
    overwrite: o.Overwrite = False, skip_existing: o.SkipExisting = False, device: o.Device = None,
    json: o.Json = False, jsonl: o.Jsonl = False,
) -> None:
    """Classify or super-resolve at a run-time density; exit 3 if some inputs failed."""
    import sys

    from wisecli.engines.sparse_cnn import api

    sink = Sink(json=json, jsonl=jsonl)
    doc = api.predict(inputs, weights, output, density=density, mac_budget=mac_budget, exec=exec, chunk=chunk,
                      calibration=calibration, batch_size=batch_size, force=force, save_masks=save_masks,
                      pattern=pattern, shard=shard, overwrite=overwrite, skip_existing=skip_existing, device=device,
                      sink=sink, argv=sys.argv)
    rows = [{k: r.get(k) for k in ("input", "label", "prob", "output", "density", "mac_saving", "exec", "status")}
            for r in doc["records"]]
    sink.result(doc, rows=rows, title="wise sparse-cnn predict")
    sink.finish(doc["records"])


@app.command()
def evaluate(
    data: Annotated[str, typer.Argument(help="Labelled test data, or SR HR images (builtin:skimage-sr:test).")],
    weights: o.Weights = None,
    density: Annotated[Optional[str], typer.Option("--density", help="Densities, comma list, e.g. 1,0.5,0.3.")] = None,
    mask: Annotated[Optional[Literal["learned", "random", "sobel"]], typer.Option("--mask", help="Importance map.")] = None,
    exec: Exec = None,
    latency: Annotated[Optional[bool], typer.Option("--latency/--no-latency", help="Time one batch per density.")] = None,
    batch_size: o.BatchSize = None, force: Force = None, plot: o.Plot = None, device: o.Device = None,
    seed: o.Seed = None, json: o.Json = False,
) -> None:
    """Task metric, counted/executed MACs and (separately) measured latency at each density."""
    from wisecli.engines.sparse_cnn import api

    sink = Sink(json=json)
    doc = api.evaluate(data, weights=weights, density=density, mask=mask, exec=exec, latency=latency,
                       batch_size=batch_size, force=force, device=device, seed=seed, plot=plot, sink=sink)
    rows = [{k: v for k, v in r.items() if k != "latency"} for r in doc["rows"]]
    sink.result(doc, rows=rows, title="wise sparse-cnn evaluate")


@app.command()
def demo(quick: o.Quick = False, task: Task = None, device: o.Device = None, json: o.Json = False) -> None:
    """Train a small gated net (digits, or SR on scikit-image photos) and check accuracy at reduced counted MACs."""
    from wisecli.engines.sparse_cnn import api

    sink = Sink(json=json)
    result = api.demo(quick=quick, device=device, task=task, sink=sink)
    sink.demo(result, title=result.details["title"])


@app.command()
def info(json: o.Json = False) -> None:
    """Tasks, archs, mask rules, execution paths and what each measures, defaults and our choices."""
    from wisecli.engines.sparse_cnn import api

    doc = api.info()
    rows = info_rows(doc, {"mask_rules": "mask", "exec": "exec", "choices": "choice"})
    Sink(json=json).result(doc, rows=rows, title="wise sparse-cnn info")


@app.command()
def benchmark(
    quick: o.Quick = False, device: o.Device = None,
    size: Annotated[Optional[Literal["auto", "quick", "gpu", "full"]], typer.Option("--size", help="Workload sizes.")] = None,
    case: Annotated[Optional[Literal["all", "layers", "resnet18", "srresnet"]], typer.Option("--case", help="Which races.")] = None,
    json: o.Json = False,
) -> None:
    """Race the tile-gather path against dense (same net, every pixel) in one process; MACs and latency apart."""
    from wisecli.engines.sparse_cnn import api

    Sink(json=json).benchmark(api.benchmark(device=device, quick=quick, size=size, case=case),
                              title="wise sparse-cnn benchmark")
