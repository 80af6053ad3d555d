"""`wise leakage`: layer-wise latent information leakage in federated learning (V-information probes and
Jacobian sensitivity per layer, with a permutation control).

Thin Typer layer: each verb parses, makes one call into `wisecli.engines.leakage.api` (imported inside the verb,
so `wise --help` stays fast) and hands the result to the sink. Defaults live in `api.DEFAULTS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from wisecli.cli import options as o
from wisecli.cli.common import MethodApp
from wisecli.cli.output import Sink, info_rows

app = MethodApp("leakage", help="Per-layer leakage of a private attribute in federated updates: V-information, "
                                "Jacobian sensitivity.", rich_markup_mode="rich")

Count = lambda flag, text: typer.Option(flag, callback=o.at_least_one, help=text)  # noqa: E731


@app.command()
def run(
    data: Annotated[Optional[Path], typer.Argument(help=".npz (X, y, s[, client]) or CSV path,label,attribute[,client].")] = None,
    out_dir: o.OutDir = None,
    dataset: Annotated[Optional[Literal["digits", "shapes32"]], o.DATASET] = None,
    arch: Annotated[Optional[Literal["mlp", "small-cnn", "cnn-32"]], typer.Option("--arch", help="Zoo net (BN-free).")] = None,
    model_factory: Annotated[Optional[str], typer.Option("--model-factory", help="pkg.mod:fn returning an nn.Module.")] = None,
    weights: Annotated[Optional[Path], typer.Option("--weights", help="State dict (with --model-factory) or a classify checkpoint.")] = None,
    attribute: Annotated[Optional[str], typer.Option("--attribute", help="npz key / CSV column of the private attribute.")] = None,
    task_label: Annotated[Optional[str], typer.Option("--task-label", help="npz key / CSV column of the task label.")] = None,
    client: Annotated[Optional[str], typer.Option("--client", help="npz key / CSV column of the client id.")] = None,
    image_size: Annotated[Optional[int], Count("--image-size", "Resize images to S x S.")] = None,
    planted: Annotated[Optional[Literal["thick", "patch", "gain"]], typer.Option("--planted", help="digits: planted property.")] = None,
    fl_rounds: Annotated[Optional[int], typer.Option("--fl-rounds", callback=o.not_negative, help="FedAvg rounds before auditing.")] = None,
    clients: Annotated[Optional[int], Count("--clients", "FedAvg clients (data without client ids).")] = None,
    local_steps: Annotated[Optional[int], Count("--local-steps", "Local SGD steps per round (and per update).")] = None,
    train_batch: Annotated[Optional[int], Count("--train-batch", "FedAvg local batch size.")] = None,
    lr: o.Lr = None,
    audit_rounds: Annotated[Optional[str], typer.Option("--audit-rounds", help="Rounds to audit, e.g. 0,5,10.")] = None,
    observe: Annotated[Optional[Literal["grad", "update"]], typer.Option("--observe", help="What a client shares.")] = None,
    batch_size: o.BatchSize = None,
    property_level: Annotated[Optional[Literal["client", "sample"]], typer.Option("--property-level", help="Label of an observation.")] = None,
    n_obs: Annotated[Optional[int], Count("--n-obs", "Observations in total.")] = None,
    families: Annotated[Optional[str], typer.Option("--families", help="linear,quadratic,forest,best.")] = None,
    sketch: Annotated[Optional[int], Count("--sketch", "Sketch dimension D (>= 2).")] = None,
    folds: Annotated[Optional[int], Count("--folds", "Outer cross-fitting folds (>= 2).")] = None,
    sensitivity: Annotated[Optional[Literal["hutchinson", "exact", "ones-vjp", "none"]], typer.Option("--sensitivity", help="Estimator.")] = None,
    probes: Annotated[Optional[int], Count("--probes", "Hutchinson probes.")] = None,
    n_sens: Annotated[Optional[int], Count("--n-sens", "Samples for sensitivity.")] = None,
    latent_layer: Annotated[Optional[str], typer.Option("--latent-layer", help="Module whose output replaces x.")] = None,
    layers: Annotated[Optional[Literal["tensors", "modules"]], typer.Option("--layers", help="Layer granularity.")] = None,
    control: Annotated[Optional[bool], typer.Option("--control/--no-control", help="Permutation control.")] = None,
    save_features: Annotated[Optional[bool], typer.Option("--save-features", help="features/round_<r>.npz.")] = None,
    chunk: Annotated[Optional[int], Count("--chunk", "Observations per vmap chunk (memory).")] = None,
    plot: o.Plot = None, resume: o.Resume = False, overwrite: o.Overwrite = False, device: o.Device = None,
    seed: o.Seed = None, json: o.Json = False, no_progress: o.NoProgress = False,
) -> None:
    """Audit per-layer leakage (optionally after FedAvg): leakage.json/.jsonl/.png in -o."""
    import sys

    from wisecli.engines.leakage import api

    sink = Sink(json=json)
    doc = api.run(data, out_dir, resume=resume, overwrite=overwrite, plot=plot, progress=not no_progress, sink=sink,
                  argv=sys.argv, dataset=dataset, arch=arch, model_factory=model_factory, weights=weights,
                  attribute=attribute, task_label=task_label, client=client, image_size=image_size, planted=planted,
                  fl_rounds=fl_rounds, clients=clients, local_steps=local_steps, train_batch=train_batch, lr=lr,
                  audit_rounds=audit_rounds, observe=observe, batch_size=batch_size, property_level=property_level,
                  n_obs=n_obs, families=families, sketch=sketch, folds=folds, sensitivity=sensitivity, probes=probes,
                  n_sens=n_sens, latent_layer=latent_layer, layers=layers, control=control,
                  save_features=save_features, chunk=chunk, device=device, seed=seed)
    keys = ("round", "layer", "n_params", "family", "vinfo_bits", "ci95", "control_bits", "sens_fro_per_param",
            "sens_attr_per_param", "status")
    sink.result(doc, rows=[{k: r.get(k) for k in keys} for r in doc["records"]], title="wise leakage run")


@app.command()
def evaluate(
    reports: Annotated[list[Path], typer.Argument(help="leakage.json files (or their run folders).")],
    against: Annotated[Optional[Path], typer.Option("--against", help="Base report (default: the first).")] = None,
    metric: Annotated[Optional[Literal["vinfo", "sens", "both"]], typer.Option("--metric", help="What to compare.")] = None,
    rounds: Annotated[Optional[Literal["last", "all"]], typer.Option("--rounds", help="Each report's last audited round, or all.")] = None,
    summary: Annotated[bool, typer.Option("--summary", help="Table: one row per report x round (leading layers, rho).")] = False,
    resamples: Annotated[Optional[int], Count("--resamples", "Bootstrap resamples.")] = None,
    seed: o.Seed = None, json: o.Json = False,
) -> None:
    """Compare audits per layer (bootstrap CIs with saved features), rankings and their agreement."""
    from wisecli.engines.leakage import api

    doc = api.evaluate(reports, against=against, metric=metric, rounds=rounds, resamples=resamples, seed=seed)
    Sink(json=json).result(doc, rows=doc["summary"] if summary else doc["rows"], title="wise leakage evaluate")


@app.command()
def demo(quick: o.Quick = False, device: o.Device = None, json: o.Json = False) -> None:
    """Digits with planted thick strokes, small-cnn, FedAvg, audit with control and sensitivity; claim gates."""
    from wisecli.engines.leakage import api

    sink = Sink(json=json)
    result = api.demo(quick=quick, device=device, sink=sink)
    sink.demo(result, title=result.details["title"])


@app.command()
def info(json: o.Json = False) -> None:
    """Families, estimators, the ones-VJP note, readers, defaults and our choices."""
    from wisecli.engines.leakage import api

    doc = api.info()
    rows = info_rows(doc, {"choices": "choice", "defaults": "default"})
    Sink(json=json).result(doc, rows=rows, title="wise leakage info")


@app.command()
def benchmark(
    quick: o.Quick = False, device: o.Device = None,
    size: Annotated[Optional[Literal["quick", "full"]], typer.Option("--size", help="full: 256 samples for the exact sweep.")] = None,
    json: o.Json = False,
) -> None:
    """Race vmap(grad) against a per-sample loop, Hutchinson against the exact sweep and the ones-VJP recipe."""
    from wisecli.engines.leakage import api

    Sink(json=json).benchmark(api.benchmark(device=device, quick=quick, size=size), title="wise leakage benchmark")
