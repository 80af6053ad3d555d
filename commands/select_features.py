"""`wise select-features`: rank the columns of a table by their use for a classification task with the
FM-module (Liao, Latty, Yang, IJCNN 2021), evaluate the ranking against classic selectors, and cut tables
down to the selected columns. Argument parsing only; every verb is one call of
`wisecli.engines.select_features.api`, whose `DEFAULTS` hold the defaults the help shows."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from wisecli.cli import options as o
from wisecli.cli.common import MethodApp, shared
from wisecli.cli.errors import PartialFailure
from wisecli.cli.output import Sink

app = MethodApp("select-features", help="Embedded feature selection with the FM-module (batch-wise attenuation + "
                "mask softmax).")

_TABLE = "Table options"
_FM = "FM-module"
Target = Annotated[str, typer.Option("--target", help="Label column (a name; for .npy an integer index).",
                                     rich_help_panel=_TABLE)]
Sep = Annotated[Optional[str], typer.Option("--sep", help="Separator (by extension: , for .csv, tab for .tsv).",
                                            rich_help_panel=_TABLE)]
IdCol = Annotated[Optional[str], typer.Option("--id-col", help="Identifier column, carried through, never a feature.",
                                              rich_help_panel=_TABLE)]
Drop = Annotated[Optional[list[str]], typer.Option("--drop", help="Column to leave out (repeatable).",
                                                   rich_help_panel=_TABLE)]
DropNonNumeric = Annotated[Optional[bool], typer.Option("--drop-non-numeric", help="Leave out non-numeric columns.",
                                                        rich_help_panel=_TABLE)]
Impute = Annotated[Optional[Literal["none", "mean", "median"]],
                   typer.Option("--impute", help="Fill NaN/inf from the training split.", rich_help_panel=_TABLE)]
XKey = Annotated[Optional[str], typer.Option("--x-key", help=".npz key of the features.", rich_help_panel=_TABLE)]
YKey = Annotated[Optional[str], typer.Option("--y-key", help=".npz key of the labels.", rich_help_panel=_TABLE)]
Deterministic = Annotated[Optional[bool], typer.Option("--deterministic", help="Deterministic CUDA kernels (same "
                                                       "seed, same ranking on the GPU; CPU runs always are).")]
K = Annotated[Optional[int], typer.Option("--k", help="Features to select (default: those with m ≥ 1/d).")]


MaskNet = Annotated[Optional[Literal["mlp", "tanh"]], typer.Option("--mask-net", help="Mask network g.",
                                                                  rich_help_panel=_FM)]
MaskHidden = Annotated[Optional[int], typer.Option("--mask-hidden", callback=o.at_least_one, rich_help_panel=_FM,
                                                   help="Hidden units of the tanh mask net.")]
MaskScale = Annotated[Optional[Literal["1", "d"]], typer.Option("--mask-scale", help="s in x̃ = s·(m⊙x).",
                                                                rich_help_panel=_FM)]
TaskNet = Annotated[Optional[Literal["mlp", "linear"]], typer.Option("--task-net", help="Task network f.",
                                                                     rich_help_panel=_FM)]
Hidden = Annotated[Optional[str], typer.Option("--hidden", help="Task MLP widths.", rich_help_panel=_FM)]
TrainEpochs = Annotated[Optional[int], typer.Option("--epochs", callback=o.at_least_one, help="Epochs.",
                                                    rich_help_panel=_FM)]
ValFraction = Annotated[Optional[float], typer.Option("--val-fraction", rich_help_panel=_FM,
                                                      help="Stratified hold-out for best.pt, in [0, 1).")]
Test = Annotated[Optional[Path], typer.Option("--test", help="Test table (otherwise a stratified split).")]
TestFraction = Annotated[Optional[float], typer.Option("--test-fraction", help="Stratified test split, in (0, 1).")]
SplitSeed = Annotated[Optional[int], typer.Option("--split-seed", help="Seed of the test split.")]
Selections = Annotated[Optional[list[Path]], typer.Option("--selection", help="Score existing selection.json "
                                                          "(repeatable) instead of training FM.")]
Baselines = Annotated[Optional[str], typer.Option("--baselines", help="Comma list of mi, rfe-lr, l1, random, all "
                                                  "(or none).")]
KGrid = Annotated[Optional[str], typer.Option("--k", help="k grid, e.g. 5,10,20,50 (default: powers of 2 and d).")]
Seeds = Annotated[Optional[str], typer.Option("--seeds", help="Seeds of FM and the seeded baselines.")]
Refit = Annotated[Optional[Literal["logreg", "mlp"]], typer.Option("--refit", help="Classifier refitted on the top-k "
                                                                   "columns (mlp: one stacked model).")]
MaskImage = Annotated[Optional[str], typer.Option("--mask-image", help="Save the FM mask as an HxW image (pixel "
                                                  "data), e.g. 8x8.")]


@app.command()
def train(
    data: Annotated[str, typer.Argument(help="Table: .csv/.tsv with a header, .npz (X, y), .npy; '-' reads stdin.")],
    target: Target, out_dir: Annotated[Path, typer.Option("-o", "--out-dir", help="Run folder to write.")],
    k: K = None, mask_net: MaskNet = None, mask_hidden: MaskHidden = None, mask_scale: MaskScale = None,
    task_net: TaskNet = None, hidden: Hidden = None, epochs: TrainEpochs = None, batch_size: o.BatchSize = None,
    lr: o.Lr = None, val_fraction: ValFraction = None, resume: o.Resume = False, overwrite: o.Overwrite = False,
    compile: o.Compile = None, deterministic: Deterministic = None, sep: Sep = None, id_col: IdCol = None,
    drop: Drop = None, drop_non_numeric: DropNonNumeric = None, impute: Impute = None, x_key: XKey = None,
    y_key: YKey = None, device: o.Device = None, amp: o.Amp = None, seed: o.Seed = None, json: o.Json = False,
    no_progress: o.NoProgress = False,
) -> None:
    """Train the FM-module and its task network; write the run folder and selection.json/.csv."""
    from wisecli.engines.select_features import api

    sink = Sink(json=json)
    doc = api.train(data, target, out_dir, k=k, mask_net=mask_net, mask_hidden=mask_hidden, mask_scale=mask_scale,
                    task_net=task_net, hidden=hidden, epochs=epochs, batch_size=batch_size, lr=lr,
                    val_fraction=val_fraction, seed=seed, amp=amp, compile=compile, deterministic=deterministic,
                    sep=sep, id_col=id_col, drop=drop, drop_non_numeric=drop_non_numeric, impute=impute,
                    x_key=x_key, y_key=y_key, device=device, resume=resume, overwrite=overwrite,
                    progress=not no_progress, sink=sink)
    summary = {key: v for key, v in doc.items() if key not in ("features", "scaler")}
    summary["top"] = doc["features"][:doc["k"]]
    rows = [{"rank": f["rank"], "name": f["name"], "score": f["score"]} for f in doc["features"][:doc["k"]]]
    sink.info(f"selected k={doc['k']} ({doc['k_rule']}) of {doc['n_features']}; run folder {out_dir}")
    sink.result(summary, rows=rows, title=f"FM selection (k={doc['k']})")


@app.command()
def predict(
    selection: Annotated[Path, typer.Argument(help="selection.json (or its run folder).")],
    data: Annotated[list[str], typer.Argument(help="Tables to reduce; '-' reads one from stdin; @list.txt, @-.")],
    out_dir: o.OutDir = None, k: Annotated[Optional[int], typer.Option("--k", help="Override the stored k.")] = None,
    order: Annotated[Optional[Literal["original", "rank"]], typer.Option("--order", help="Column order.")] = None,
    fmt: Annotated[Optional[Literal["csv", "tsv", "npz"]], typer.Option("--format", help="Output format "
                                                                        "(default: like the input).")] = None,
    keep_target: Annotated[Optional[bool], typer.Option("--keep-target/--no-keep-target",
                                                        help="Keep the target column when present.")] = None,
    sep: Sep = None, id_col: IdCol = None,
    skip_existing: o.SkipExisting = False, overwrite: o.Overwrite = False, fail_fast: o.FailFast = False,
    shard: o.Shard = None, json: o.Json = False, jsonl: o.Jsonl = False,
) -> None:
    """Cut tables down to the selected columns; cells are copied as their original text."""
    from wisecli.engines.select_features import api

    sink = Sink(json=json, jsonl=jsonl)
    result = api.predict(selection, data, out_dir, k=k, order=order, fmt=fmt, keep_target=keep_target, sep=sep,
                         id_col=id_col, skip_existing=skip_existing, overwrite=overwrite, fail_fast=fail_fast,
                         shard=shard, debug=bool(shared("debug")), sink=sink)
    if isinstance(result, str):
        sys.stdout.write(result)
        return
    sink.result({"records": result}, rows=result, title="select-features predict")
    sink.finish(result, what="tables")


@app.command()
def evaluate(
    data: Annotated[str, typer.Argument(help="Labelled table (the training split is taken from it); '-' reads stdin.")],
    target: Target, out_dir: o.OutDir = None, test: Test = None, test_fraction: TestFraction = None,
    split_seed: SplitSeed = None, selection: Selections = None, baselines: Baselines = None, k: KGrid = None,
    seeds: Seeds = None, refit: Refit = None, plot: o.Plot = None, mask_image: MaskImage = None,
    epochs: o.Epochs = None, batch_size: o.BatchSize = None, sep: Sep = None, id_col: IdCol = None,
    drop: Drop = None, drop_non_numeric: DropNonNumeric = None, impute: Impute = None, x_key: XKey = None,
    y_key: YKey = None, skip_existing: o.SkipExisting = False, shard: o.Shard = None, compile: o.Compile = None,
    deterministic: Deterministic = None, device: o.Device = None, amp: o.Amp = None, json: o.Json = False,
    jsonl: o.Jsonl = False,
) -> None:
    """Accuracy against k of FM and the baselines under one refit protocol, with stability over seeds
    (`--shard I/N`: every N-th (method, seed) cell; the shards' records together are the unsharded run's)."""
    from wisecli.engines.select_features import api

    sink = Sink(json=json, jsonl=jsonl)
    summary = api.evaluate(data, target, out_dir=out_dir, test=test, test_fraction=test_fraction,
                           split_seed=split_seed, selection=selection, baselines=baselines, k=k, seeds=seeds,
                           refit=refit, plot=plot, mask_image=mask_image, epochs=epochs, batch_size=batch_size,
                           amp=amp, compile=compile, deterministic=deterministic, sep=sep, id_col=id_col, drop=drop,
                           drop_non_numeric=drop_non_numeric, impute=impute, x_key=x_key, y_key=y_key,
                           skip_existing=skip_existing, shard=shard, device=device, record=sink.record, sink=sink)
    rows = [{"k": kk, **{m: f"{c[kk]['mean']:.3f}±{c[kk]['std']:.3f}" if kk in c else ""
                         for m, c in summary["curves"].items()}} for kk in summary["ks"]]
    sink.result({key: v for key, v in summary.items() if key != "rankings"}, rows=rows,
                title=f"test accuracy ({summary['refit']} refit); all features: {summary['all_features_accuracy']}")
    if summary["errors"]:
        raise PartialFailure(f"{len(summary['errors'])} selector run(s) failed: "
                             + "; ".join(f"{e['method']} seed {e['seed']}: {e['error']}" for e in summary["errors"][:3]),
                             hint="the other methods' records are complete; see the status 'error' records")


@app.command()
def demo(
    dataset: Annotated[Optional[Literal["breast-cancer", "digits", "synthetic", "all"]],
                       typer.Option("--dataset", help="Bundled data set.")] = None,
    quick: o.Quick = False, plot: Annotated[Optional[Path], typer.Option("--plot", help="PNG of the accuracy "
                                                                         "curves.")] = None,
    device: o.Device = None, json: o.Json = False,
) -> None:
    """FM against the baselines on bundled data (breast cancer, digits, a labelled synthetic set)."""
    from wisecli.engines.select_features import api

    sink = Sink(json=json)
    result = api.demo(quick=quick, device=device, dataset=dataset, plot=plot, sink=sink)
    if not json:
        sink.table(result.details["rows"], title=f"test accuracy at k ({len(result.details['seeds'])} seed(s), "
                   "logreg refit)")
    sink.demo(result, title="select-features demo: gates")


@app.command()
def info(json: o.Json = False) -> None:
    """What select-features reads and writes, its defaults and capabilities."""
    from wisecli.engines.select_features import api

    doc = api.info()
    Sink(json=json).result(doc, rows=[{"key": key, "value": v} for key, v in doc.items()], title="select-features")


@app.command()
def benchmark(
    dataset: Annotated[Optional[Literal["digits", "mnist5k", "synthetic", "synthetic-10k", "breast-cancer-noise"]],
                       typer.Option("--dataset", help="Data set (default: digits; --quick: a small synthetic "
                                     "set; breast-cancer-noise: 569 × 60, the real columns and 30 noise columns).")] = None,
    repeats: Annotated[Optional[int], typer.Option("--repeats", callback=o.at_least_one,
                                                   help="Timing repeats (median).")] = None,
    quick: o.Quick = False, compile: o.Compile = None, device: o.Device = None, json: o.Json = False,
) -> None:
    """FM's time to a full ranking and accuracy curve against mi, rfe-lr and l1, in one process."""
    from wisecli.engines.select_features import api

    sink = Sink(json=json)
    records = api.benchmark(device=device, quick=quick, dataset=dataset, repeats=repeats, compile=compile, sink=sink)
    sink.benchmark(records, title=f"select-features benchmark: {records.summary['dataset']} on "
                                  f"{records.summary['device']}")
