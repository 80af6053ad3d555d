"""`wise contrastive`: CLIM (centre-wise local image mixture) contrastive pretraining on a MoCo v2 base.

Thin Typer layer: each verb parses, makes one call into `wisecli.engines.contrastive.api` (imported inside the
verb, so `wise --help` stays fast) and hands the result to the sink. Defaults live in `api.DEFAULTS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from wisecli.cli import options as o
from wisecli.cli.common import MethodApp
from wisecli.cli.output import Sink, info_rows

app = MethodApp("contrastive", help="CLIM contrastive pretraining (MoCo v2 + centre-wise positives, cutmix, multi-resolution).",
                rich_markup_mode="rich")


def _opt(name: str, text: str, cb=None):
    return typer.Option(name, help=text, callback=cb) if cb else typer.Option(name, help=text)


Data = Annotated[str, typer.Argument(help="Images: flat or class folder, CSV path[,label], .npz X[,y], builtin:NAME[:part].")]
Arch = Annotated[Optional[Literal["auto", "monai-resnet18", "monai-resnet34", "monai-resnet50"]], _opt("--arch", "Backbone.")]
IntOpt = lambda name, text: Annotated[Optional[int], _opt(name, text, o.at_least_one)]  # noqa: E731
FloatOpt = lambda name, text: Annotated[Optional[float], _opt(name, text, o.positive)]  # noqa: E731


@app.command()
def train(
    data: Data, out_dir: o.OutDir = None,
    arms: Annotated[Optional[str], _opt("--arms", "Comma list of baseline, nn, center, center-mix, clim.")] = None,
    seeds: Annotated[Optional[str], _opt("--seeds", "Comma list of seeds.")] = None,
    arch: Arch = None, width: FloatOpt("--width", "Backbone width factor.") = None,
    image_size: IntOpt("--image-size", "Resize images to S x S.") = None, epochs: o.Epochs = None,
    batch_size: o.BatchSize = None, lr: o.Lr = None, tau: FloatOpt("--tau", "InfoNCE temperature.") = None,
    queue: IntOpt("--queue", "Negatives in the queue (capped at N - batch).") = None,
    momentum: Annotated[Optional[float], _opt("--momentum", "Key-encoder EMA momentum.", o.not_negative)] = None,
    k: IntOpt("--k", "Neighbours searched per anchor.") = None,
    clusters: IntOpt("--clusters", "k-means clusters.") = None,
    clim_start: Annotated[Optional[int], _opt("--clim-start", "Instance-discrimination epochs before selection.", o.not_negative)] = None,
    select: Annotated[Optional[Literal["center", "nn", "none"]], _opt("--select", "Override the arm's selection.")] = None,
    mix: Annotated[Optional[Literal["cutmix", "mixup", "none"]], _opt("--mix", "Mixture of anchor and positive.")] = None,
    resolutions: Annotated[Optional[str], _opt("--resolutions", "auto, none or a comma list of sizes.")] = None,
    positive_key: Annotated[Optional[Literal["bank", "fresh"]], _opt("--positive-key", "Key of the positive.")] = None,
    bank_view: Annotated[Optional[Literal["key", "eval"]], _opt("--bank-view", "Bank from training keys or eval views.")] = None,
    shuffle_bn: Annotated[Optional[bool], typer.Option("--shuffle-bn/--no-shuffle-bn", help="MoCo's shuffling BN for keys (across DDP ranks, or among --bn-splits).")] = None,
    bn_splits: IntOpt("--bn-splits", "BN sub-batches on one process (MoCo's SplitBatchNorm; 1 = plain BN).") = None,
    labels: Annotated[Optional[Path], _opt("--labels", "CSV path,label (diagnostics only).")] = None,
    val: Annotated[Optional[str], _opt("--val", "Labelled data for online kNN.")] = None,
    eval_every: IntOpt("--eval-every", "Online kNN every N epochs.") = None,
    resume: o.Resume = False, overwrite: o.Overwrite = False, device: o.Device = None, amp: o.Amp = None,
    json: o.Json = False, no_progress: o.NoProgress = False,
) -> None:
    """Pretrain an encoder into a run folder (one arm and seed) or a study folder (-o RUN)."""
    from wisecli.engines.contrastive import api

    sink = Sink(json=json)
    s = api.train(data, out_dir, val=val, labels=labels, resume=resume, overwrite=overwrite, progress=not no_progress,
                  sink=sink, arms=arms, seeds=seeds, arch=arch, width=width, image_size=image_size, epochs=epochs,
                  batch_size=batch_size, lr=lr, tau=tau, queue=queue, momentum=momentum, k=k, clusters=clusters,
                  clim_start=clim_start, select=select, mix=mix, resolutions=resolutions, positive_key=positive_key,
                  bank_view=bank_view, shuffle_bn=shuffle_bn, bn_splits=bn_splits, eval_every=eval_every, device=device, amp=amp)
    runs = s.get("runs", [s])
    rows = [{"arm": r["arm"], "seed": r["seed"], "epochs": r["epochs"], "loss": r["last"].get("train_loss"),
             "pos_nonempty": r["last"].get("train_pos_nonempty"), "run_dir": r["run_dir"]} for r in runs]
    sink.result(s, rows=rows, title="wise contrastive train")


@app.command()
def evaluate(
    inputs: Annotated[list[Path], typer.Argument(help="Run folders, study folders or checkpoints.")],
    train: Annotated[Optional[str], _opt("--train", "Labelled training data for kNN/probe.")] = None,
    test: Annotated[Optional[str], _opt("--test", "Labelled test data.")] = None,
    protocol: Annotated[Optional[str], _opt("--protocol", "Comma list of knn, linear, semi.")] = None,
    knn_k: Annotated[Optional[str], _opt("--knn-k", "Comma list of k.")] = None,
    knn_t: FloatOpt("--knn-t", "kNN temperature.") = None,
    linear: Annotated[Optional[Literal["cached", "augmented"]], _opt("--linear", "Linear-probe protocol.")] = None,
    linear_epochs: IntOpt("--linear-epochs", "Epochs of the augmented linear probe (MoCo: 100).") = None,
    label_fractions: Annotated[Optional[str], _opt("--label-fractions", "Comma list of label fractions (semi).")] = None,
    subsets: IntOpt("--subsets", "Label subsets per fraction.") = None,
    label_subset: Annotated[Optional[Path], _opt("--label-subset", "File of training row indices (semi).")] = None,
    device: o.Device = None, seed: o.Seed = None, json: o.Json = False,
) -> None:
    """kNN, linear probe and semi-supervised fine-tuning; studies arm by arm with paired differences."""
    from wisecli.engines.contrastive import api

    sink = Sink(json=json)
    doc = api.evaluate(inputs, train=train, test=test, protocol=protocol, knn_k=knn_k, knn_t=knn_t, linear=linear,
                       linear_epochs=linear_epochs, label_fractions=label_fractions, subsets=subsets, label_subset=label_subset, device=device,
                       seed=seed, sink=sink)
    sink.result(doc, rows=doc["rows"], title="wise contrastive evaluate")


@app.command()
def predict(
    inputs: Annotated[list[Path], typer.Argument(help="Images, folders, globs, @list.txt or @-.")],
    weights: o.Weights = None, out_dir: o.OutDir = None,
    layer: Annotated[Optional[Literal["backbone", "projection"]], _opt("--layer", "Which features.")] = None,
    normalize: Annotated[Optional[bool], typer.Option("--normalize/--no-normalize", help="L2-normalise rows.")] = None,
    batch_size: o.BatchSize = None, shard: o.Shard = None, overwrite: o.Overwrite = False,
    skip_existing: o.SkipExisting = False, device: o.Device = None, json: o.Json = False, jsonl: o.Jsonl = False,
) -> None:
    """Embed images (embeddings.npy + index.jsonl in -o); exit 3 if some images failed."""
    from wisecli.engines.contrastive import api

    sink = Sink(json=json, jsonl=jsonl)
    doc = api.predict(inputs, weights, out_dir, layer=layer, normalize=normalize, batch_size=batch_size, shard=shard,
                      overwrite=overwrite, skip_existing=skip_existing, device=device, sink=sink)
    rows = [{k: r.get(k) for k in ("input", "status", "row")} for r in doc["records"]]
    sink.result(doc, rows=rows, title="wise contrastive predict")
    sink.finish(doc["records"])


@app.command()
def demo(quick: o.Quick = False, device: o.Device = None,
         data: Annotated[Optional[Literal["digits", "mnist5k"]], _opt("--data", "Built-in data.")] = None,
         json: o.Json = False) -> None:
    """baseline vs clim on sklearn digits at 16x16: kNN, linear probe and the positive-selection claim."""
    from wisecli.engines.contrastive import api

    sink = Sink(json=json)
    result = api.demo(quick=quick, device=device, data=data, sink=sink)
    sink.demo(result, title=result.details["title"])


@app.command()
def info(json: o.Json = False) -> None:
    """Formats, arms, defaults, our choices and the extras present."""
    from wisecli.engines.contrastive import api

    doc = api.info()
    rows = info_rows(doc, {"choices": "choice", "defaults": "default"})
    Sink(json=json).result(doc, rows=rows, title="wise contrastive info")


@app.command()
def benchmark(
    quick: o.Quick = False, device: o.Device = None,
    size: Annotated[Optional[Literal["small", "ci", "full"]], _opt("--size", "small (CPU), ci (GPU preset) or full.")] = None,
    json: o.Json = False,
) -> None:
    """Race device kNN, k-means, augmentation and cutmix against scikit-learn and per-sample CPU peers."""
    from wisecli.engines.contrastive import api

    Sink(json=json).benchmark(api.benchmark(device=device, quick=quick, size=size), title="wise contrastive benchmark")
