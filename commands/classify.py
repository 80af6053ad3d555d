"""`wise classify`: image and feature-vector classifiers with LAMBC, the CDB loss, rotation-invariant convolutions
and implicit BNNs.

Thin Typer layer: each verb parses, makes one call into `wisecli.engines.classify.api` (imported inside the verb,
so `wise --help` stays fast) and hands the result to the sink. Defaults live in `api.DEFAULTS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from wisecli.cli import options as o
from wisecli.cli.common import MethodApp
from wisecli.cli.output import Sink, info_rows

app = MethodApp("classify", help="Classifiers with LAMBC, CDB loss, rotation-invariant convs and implicit BNNs.",
                rich_markup_mode="rich")

ArchName = Literal["mlp", "small-cnn", "cnn-32", "plain-cnn", "ring-cnn", "radial-cnn", "dwsep-radial-cnn",
                   "monai-resnet18", "monai-resnet34", "monai-resnet50", "monai-densenet121", "monai-seresnet50",
                   "monai-efficientnet-b0"]
Data = Annotated[str, typer.Argument(help="Class folder, CSV path,label[,split], .npz (X, y) or builtin:NAME[:part].")]
Arch = Annotated[Optional[ArchName], typer.Option("--arch", help="Network.")]
Optim = Annotated[Optional[Literal["sgd", "adamw", "lars", "lamb", "lambc"]], typer.Option("--optimizer", help="Optimizer.")]
Loss = Annotated[Optional[Literal["ce", "focal", "class-balanced", "cdb"]], typer.Option("--loss", help="Loss.")]
Tau = Annotated[Optional[str], typer.Option("--tau", help="CDB tau: dynamic (2 sigmoid(b-1)), dynamic-sigmoid or a number.")]
Bayes = Annotated[Optional[Literal["none", "implicit", "mc-dropout", "ensemble"]], typer.Option("--bayes", help="Bayesian mode.")]
Components = Annotated[Optional[int], typer.Option("--components", callback=o.at_least_one, help="iBNN mixture components K.")]
Members = Annotated[Optional[int], typer.Option("--members", callback=o.at_least_one, help="Ensemble members.")]
ImageSize = Annotated[Optional[int], typer.Option("--image-size", callback=o.at_least_one, help="Resize images to this square size.")]
Augment = Annotated[Optional[Literal["none", "basic", "rotate"]], typer.Option("--augment", help="On-device augmentation.")]
Samples = Annotated[Optional[int], typer.Option("--samples", callback=o.at_least_one,
                                                help="Predictive samples (implicit: per component; default per mode).")]
Init = Annotated[Optional[Path], typer.Option("--init", help="Start from this classify checkpoint.")]


@app.command()
def train(
    data: Data, out_dir: o.OutDir = None,
    val: Annotated[Optional[str], typer.Option("--val", help="Separate validation data.")] = None,
    test: Annotated[Optional[str], typer.Option("--test", help="Separate test data (evaluated with best.pt).")] = None,
    arch: Arch = None, optimizer: Optim = None, loss: Loss = None, tau: Tau = None, bayes: Bayes = None,
    components: Components = None, members: Members = None, epochs: o.Epochs = None, batch_size: o.BatchSize = None,
    lr: o.Lr = None, image_size: ImageSize = None, augment: Augment = None,
    sync_bn: Annotated[Optional[bool], typer.Option("--sync-bn", help="SyncBatchNorm under torchrun.")] = None,
    faithful: Annotated[Optional[bool], typer.Option("--faithful", help="LAMBC: reset m, v every epoch, constant lr.")] = None,
    init: Init = None, resume: o.Resume = False, overwrite: o.Overwrite = False, device: o.Device = None,
    amp: o.Amp = None, seed: o.Seed = None, json: o.Json = False, no_progress: o.NoProgress = False,
) -> None:
    """Train a classifier into a run folder (-o RUN)."""
    from wisecli.engines.classify import api

    sink = Sink(json=json)
    summary = api.train(data, out_dir, val=val, test=test, init=init, resume=resume, overwrite=overwrite,
                        progress=not no_progress, sink=sink, arch=arch, optimizer=optimizer, loss=loss, tau=tau,
                        bayes=bayes, components=components, members=members, epochs=epochs, batch_size=batch_size,
                        lr=lr, image_size=image_size, augment=augment, sync_bn=sync_bn, faithful=faithful,
                        device=device, amp=amp, seed=seed)
    row = {k: v for k, v in summary.items() if k not in ("last", "test")}
    row.update({f"test_{k}": v for k, v in summary.get("test", {}).items()})
    sink.result(summary, rows=[row], title="wise classify train")


@app.command()
def predict(
    inputs: Annotated[list[Path], typer.Argument(help="Images, folders, globs, @list.txt, @- or feature files.")],
    weights: o.Weights = None, output: o.OutFile = None,
    top_k: Annotated[Optional[int], typer.Option("--top-k", callback=o.at_least_one, help="Classes per record.")] = None,
    samples: Samples = None, batch_size: o.BatchSize = None, pattern: o.Pattern = None, shard: o.Shard = None,
    overwrite: o.Overwrite = False, skip_existing: o.SkipExisting = False, device: o.Device = None,
    json: o.Json = False, jsonl: o.Jsonl = False,
) -> None:
    """Classify images or feature rows, model loaded once; exit 3 if some inputs failed."""
    import sys

    from wisecli.engines.classify import api

    sink = Sink(json=json, jsonl=jsonl)
    doc = api.predict(inputs, weights, output, top_k=top_k, samples=samples, pattern=pattern, shard=shard,
                      overwrite=overwrite, skip_existing=skip_existing, batch_size=batch_size, device=device,
                      sink=sink, argv=sys.argv)
    rows = [{"input": r["input"], "label": r.get("label"), "prob": r.get("prob"), "entropy": r.get("entropy"),
             "status": r["status"]} for r in doc["records"]]
    sink.result(doc, rows=rows, title="wise classify predict")
    sink.finish(doc["records"])


@app.command()
def evaluate(
    data: Annotated[Optional[str], typer.Argument(help="Labelled data (as train's DATA); or use --pred/--labels.")] = None,
    weights: o.Weights = None,
    pred: Annotated[Optional[Path], typer.Option("--pred", help="Predictions JSONL written by predict -o.")] = None,
    labels: Annotated[Optional[Path], typer.Option("--labels", help="CSV path,label for --pred.")] = None,
    samples: Samples = None,
    rotate: Annotated[Optional[str], typer.Option("--rotate", help="Degrees START:STOP:STEP, e.g. 0:360:15.")] = None,
    corrupt: Annotated[Optional[str], typer.Option("--corrupt", help="all, or corruption names (comma list).")] = None,
    severity: Annotated[Optional[str], typer.Option("--severity", help="Severities 1-5, e.g. 3 or 1-5.")] = None,
    ood: Annotated[Optional[str], typer.Option("--ood", help="Out-of-distribution data: AUROC of entropy.")] = None,
    merge_classes: Annotated[Optional[str], typer.Option("--merge-classes", help="Merge class B into A: A,B.")] = None,
    image_size: ImageSize = None, batch_size: o.BatchSize = None, device: o.Device = None, seed: o.Seed = None,
    json: o.Json = False,
) -> None:
    """Accuracy, balanced accuracy, NLL, ECE, Brier, per class; rotations, corruptions, OOD AUROC on request."""
    from wisecli.engines.classify import api

    sink = Sink(json=json)
    doc = api.evaluate(data, weights=weights, pred=pred, labels=labels, samples=samples, rotate=rotate, corrupt=corrupt, severity=severity,
                       ood=ood, merge_classes=merge_classes, image_size=image_size, batch_size=batch_size,
                       device=device, seed=seed, sink=sink)
    rows = [{"metric": k, "value": doc[k]} for k in ("n", "part", "accuracy", "balanced_accuracy", "macro_f1", "nll",
                                                     "ece_top15", "brier", "ood_auroc") if k in doc]
    rows += [{"metric": f"rotation {c['degrees']:g}°", "value": c["accuracy"]} for c in doc.get("rotation", {}).get("curve", [])]
    rows += [{"metric": f"{c['corruption']} s{c['severity']} acc/nll", "value": f"{c['accuracy']:.4f} / {c['nll']:.4f}"}
             for c in doc.get("corruptions", [])]
    sink.result(doc, rows=rows, title="wise classify evaluate")


@app.command()
def study(
    name: Annotated[Literal["lambc", "cdb", "radial", "ibnn"], typer.Argument(help="Which paper's experiment.")],
    out_dir: o.OutDir = None,
    data: Annotated[Optional[str], typer.Option("--data", help="Data instead of the study's built-in set.")] = None,
    seeds: Annotated[Optional[int], typer.Option("--seeds", callback=o.at_least_one, help="Seeds per setting.")] = None,
    profile: Annotated[Optional[Literal["quick", "paper"]], typer.Option("--profile", help="quick (CPU) or paper (GPU).")] = None,
    plot: o.Plot = None, device: o.Device = None, json: o.Json = False,
) -> None:
    """Rerun a paper's experiment (results.jsonl, summary.json, summary.md in -o)."""
    from wisecli.engines.classify import api

    sink = Sink(json=json)
    doc = api.study(name, out_dir, data=data, seeds=seeds, profile=profile, plot=plot, device=device, sink=sink)
    sink.result(doc, rows=doc["table"], title=f"wise classify study {name}")


@app.command()
def demo(quick: o.Quick = False, device: o.Device = None, json: o.Json = False) -> None:
    """ring-cnn + CDB + LAMBC + implicit BNN on long-tailed digits: train, predict, evaluate rotated and noisy."""
    from wisecli.engines.classify import api

    sink = Sink(json=json)
    result = api.demo(quick=quick, device=device, sink=sink)
    sink.demo(result, title=result.details["title"])


@app.command()
def info(json: o.Json = False) -> None:
    """Archs, losses, optimizers, Bayes modes, readers, data, defaults and our choices."""
    from wisecli.engines.classify import api

    doc = api.info()
    rows = info_rows(doc, {"choices": "choice", "defaults": "default"})
    Sink(json=json).result(doc, rows=rows, title="wise classify info")


@app.command()
def benchmark(
    quick: o.Quick = False, device: o.Device = None,
    case: Annotated[Optional[Literal["all", "optim", "radial", "ibnn"]], typer.Option("--case", help="Which races.")] = None,
    json: o.Json = False,
) -> None:
    """Race LAMBC, the stacked ring conv and the one-pass iBNN against their peers (one process, one device)."""
    from wisecli.engines.classify import api

    Sink(json=json).benchmark(api.benchmark(device=device, quick=quick, case=case), title="wise classify benchmark")
