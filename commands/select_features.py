"""`wise select-features`: rank the columns of a table by their use for a classification task with the
FM-module (Liao, Latty, Yang, IJCNN 2021), evaluate the ranking against classic selectors, and cut tables
down to the selected columns. Argument parsing only; the work is in `wisecli.engines.select_features.api`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from wisecli.cli import options as o
from wisecli.cli.errors import InputError, PartialFailure
from wisecli.cli.output import Sink

app = typer.Typer(help="Embedded feature selection with the FM-module (batch-wise attenuation + mask softmax).",
                  no_args_is_help=True)

_TABLE = "Table options"
Target = Annotated[str, typer.Option("--target", help="Label column (a name; for .npy an integer index).",
                                     rich_help_panel=_TABLE)]
Sep = Annotated[Optional[str], typer.Option("--sep", help="Separator (default by extension: , for .csv, tab for .tsv).",
                                            rich_help_panel=_TABLE)]
IdCol = Annotated[Optional[str], typer.Option("--id-col", help="Identifier column, carried through, never a feature.",
                                              rich_help_panel=_TABLE)]
Drop = Annotated[Optional[list[str]], typer.Option("--drop", help="Column to leave out (repeatable).",
                                                   rich_help_panel=_TABLE)]
DropNonNumeric = Annotated[bool, typer.Option("--drop-non-numeric", help="Leave out non-numeric columns.",
                                              rich_help_panel=_TABLE)]
Impute = Annotated[str, typer.Option("--impute", help="none | mean | median (from the training split).",
                                     rich_help_panel=_TABLE)]
XKey = Annotated[str, typer.Option("--x-key", help=".npz key of the features.", rich_help_panel=_TABLE)]
YKey = Annotated[str, typer.Option("--y-key", help=".npz key of the labels.", rich_help_panel=_TABLE)]

_FM = "FM-module"


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        import difflib

        close = difflib.get_close_matches(value, allowed, n=1)
        raise InputError(f"{name} {value!r} is not one of {', '.join(allowed)}",
                         hint=f"did you mean '{close[0]}'?" if close else f"use one of {', '.join(allowed)}")
    return value


def _ints(name: str, text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise InputError(f"{name} {text!r}: expected comma-separated integers", hint=f"for example {name} 5,10,20") from None


Deterministic = Annotated[bool, typer.Option("--deterministic", help="Deterministic CUDA kernels (same seed, same "
                                             "ranking on the GPU; CPU runs are always deterministic).")]


Compile = Annotated[bool, typer.Option("--compile", help="torch.compile the fixed-shape training step (CUDA graphs "
                                      "on CUDA); eager, with a warning, if compiling fails.")]


def _deterministic(on: bool) -> None:
    if on:
        import os

        import torch

        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)


def _fm_config(*, config, sets, flags: dict, seed: int, amp: bool):
    from wisecli.cli.config import resolve
    from wisecli.engines.select_features.train import FMConfig

    defaults = FMConfig().to_dict()
    defaults["hidden"] = ",".join(str(h) for h in defaults["hidden"])
    defaults.pop("k")
    defaults.pop("seed")
    defaults.pop("amp")
    defaults.pop("compile")
    res = resolve(defaults, flags=flags, config_file=config, sets=sets)
    v = dict(res.values)
    _choice("--mask-net", v["mask_net"], ("mlp", "tanh"))
    _choice("--task-net", v["task_net"], ("mlp", "linear"))
    _choice("--mask-scale", str(v["mask_scale"]), ("1", "d"))
    hidden = _ints("--hidden", str(v["hidden"]))
    for name, val, lo in (("--epochs", v["epochs"], 0), ("--batch-size", v["batch_size"], 1)):
        if val < lo:
            raise InputError(f"{name} {val} must be at least {lo}", hint=f"give {name} ≥ {lo}")
    if not 0 <= v["val_fraction"] < 1:
        raise InputError(f"--val-fraction {v['val_fraction']} must be in [0, 1)", hint="the default is 0.125")
    if v["lr"] <= 0:
        raise InputError(f"--lr {v['lr']} must be positive", hint="the default is 1e-3")
    return FMConfig(mask_net=v["mask_net"], mask_hidden=int(v["mask_hidden"]), mask_scale=str(v["mask_scale"]),
                    task_net=v["task_net"], hidden=tuple(hidden), epochs=int(v["epochs"]),
                    batch_size=int(v["batch_size"]), lr=float(v["lr"]), val_fraction=float(v["val_fraction"]),
                    seed=seed, amp=amp), res


@app.command()
def train(
    data: Annotated[str, typer.Argument(help="Table: .csv/.tsv with a header, .npz (X, y), .npy; '-' reads stdin.")],
    target: Target,
    out_dir: Annotated[Path, typer.Option("-o", "--out-dir", help="Run folder to write.")],
    k: Annotated[Optional[int], typer.Option("--k", help="Features to select (default: those with m ≥ 1/d).")] = None,
    mask_net: Annotated[Optional[str], typer.Option("--mask-net", help="mlp | tanh.", rich_help_panel=_FM)] = None,
    mask_hidden: Annotated[Optional[int], typer.Option("--mask-hidden", help="Hidden units of the tanh mask net (64).",
                                                       rich_help_panel=_FM)] = None,
    mask_scale: Annotated[Optional[str], typer.Option("--mask-scale", help="1 | d: x̃ = s·(m⊙x).",
                                                      rich_help_panel=_FM)] = None,
    task_net: Annotated[Optional[str], typer.Option("--task-net", help="mlp | linear.", rich_help_panel=_FM)] = None,
    hidden: Annotated[Optional[str], typer.Option("--hidden", help="Task MLP widths (256,128).",
                                                  rich_help_panel=_FM)] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Epochs (100).", rich_help_panel=_FM)] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Batch size (128); sets how strongly the "
                                                      "mask averages.", rich_help_panel=_FM)] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Adam learning rate (1e-3).", rich_help_panel=_FM)] = None,
    val_fraction: Annotated[Optional[float], typer.Option("--val-fraction", help="Stratified hold-out for best.pt "
                                                          "(0.125).", rich_help_panel=_FM)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in OUT_DIR from last.pt.")] = False,
    compile: Compile = False, deterministic: Deterministic = False,
    sep: Sep = None, id_col: IdCol = None, drop: Drop = None, drop_non_numeric: DropNonNumeric = False,
    impute: Impute = "none", x_key: XKey = "X", y_key: YKey = "y",
    device: o.Device = "auto", amp: o.Amp = True, seed: o.Seed = 0, json: o.Json = False, quiet: o.Quiet = False,
    verbose: o.Verbose = False, no_progress: o.NoProgress = False, config: o.Config = None, set_: o.Set = None,
) -> None:
    """Train the FM-module and its task network; write the run folder and selection.json/.csv."""
    import time

    sink = Sink(json=json, quiet=quiet, verbose=verbose)
    _choice("--impute", impute, ("none", "mean", "median"))
    cfg, resolved = _fm_config(config=config, sets=set_, seed=seed, amp=amp, flags={
        "mask_net": mask_net, "mask_hidden": mask_hidden, "mask_scale": mask_scale, "task_net": task_net,
        "hidden": hidden, "epochs": epochs, "batch_size": batch_size, "lr": lr, "val_fraction": val_fraction})
    cfg.k, cfg.compile = k, compile
    if k is not None and k < 1:
        raise InputError(f"--k {k} is out of range", hint="k must be at least 1")
    from wisecli.engines.select_features import api
    from wisecli.runtime.device import resolve_device
    from wisecli.runtime.runrecord import RunRecord

    dev = resolve_device(device, sink=sink)
    _deterministic(deterministic)
    t0 = time.perf_counter()
    doc = api.train(data, target, out_dir, cfg, device=dev, sep=sep, id_col=id_col, drop=drop or [],
                    drop_non_numeric=drop_non_numeric, impute_how=impute, x_key=x_key, y_key=y_key, resume=resume,
                    resume_epochs=epochs, progress=not no_progress, sink=sink)
    rec = RunRecord("select-features train", config=resolved, device=str(dev), seed=seed, inputs=[data])
    rec.timing("train", time.perf_counter() - t0)
    for name in ("selection.json", "selection.csv", "checkpoints/best.pt", "checkpoints/last.pt"):
        rec.add_output(Path(out_dir) / name)
    rec.write(Path(out_dir))
    summary = {k_: v for k_, v in doc.items() if k_ not in ("features", "scaler")}
    summary["top"] = doc["features"][:doc["k"]]
    rows = [{"rank": f["rank"], "name": f["name"], "score": f["score"]} for f in doc["features"][:doc["k"]]]
    sink.info(f"selected k={doc['k']} ({doc['k_rule']}) of {doc['n_features']}; run folder {out_dir}")
    sink.result(summary, rows=rows, title=f"FM selection (k={doc['k']})")


@app.command()
def predict(
    selection: Annotated[str, typer.Argument(help="selection.json (or its run folder).")],
    data: Annotated[list[str], typer.Argument(help="Tables to reduce; '-' reads one from stdin; @list.txt, @-.")],
    out_dir: o.OutDir = None,
    k: Annotated[Optional[int], typer.Option("--k", help="Override the stored k.")] = None,
    order: Annotated[str, typer.Option("--order", help="original | rank: column order of the output.")] = "original",
    fmt: Annotated[Optional[str], typer.Option("--format", help="csv | tsv | npz (default: like the input).")] = None,
    keep_target: Annotated[bool, typer.Option("--keep-target/--no-keep-target",
                                              help="Keep the target column when present.")] = True,
    sep: Sep = None, id_col: IdCol = None,
    skip_existing: o.SkipExisting = False, overwrite: o.Overwrite = False, fail_fast: o.FailFast = False,
    shard: o.Shard = None, json: o.Json = False, jsonl: o.Jsonl = False, quiet: o.Quiet = False,
) -> None:
    """Cut tables down to the selected columns; cells are copied as their original text."""
    import sys

    from wisecli.engines.select_features import api
    from wisecli.engines.select_features import selection as sel
    from wisecli.runtime.io.tables import read_table

    sink = Sink(json=json, jsonl=jsonl, quiet=quiet)
    _choice("--order", order, ("original", "rank"))
    if fmt is not None:
        _choice("--format", fmt, ("csv", "tsv", "npz"))
    doc = sel.load(selection)
    if k is not None:
        sel.check_k(k, doc["n_features"])

    def out_fmt(path: str) -> str:
        return fmt or ("tsv" if Path(path).suffix.lower() in (".tsv", ".tab") else "csv")

    def reduce(path: str):
        table = read_table(path, sep=sep)
        return api.predict_one(doc, table, k=k, order=order, fmt=out_fmt(path), id_col=id_col,
                               keep_target=keep_target)

    if data == ["-"] or (len(data) == 1 and out_dir is None and not data[0].startswith("@")):
        result = reduce(data[0])
        if out_dir is None:
            if isinstance(result, bytes):
                raise InputError("--format npz cannot go to stdout", hint="give -o OUT_DIR")
            sys.stdout.write(result)
            return
    from wisecli.cli.inputs import apply_shard, expand_inputs, parse_shard
    from wisecli.runtime.batch import BatchOptions, run_batch, stem_of
    from wisecli.runtime.io.atomic import write_bytes, write_text

    if out_dir is None:
        raise InputError("several tables need -o OUT_DIR", hint="give -o OUT_DIR for the reduced tables")
    items = apply_shard(expand_inputs(data, extensions=(".csv", ".tsv", ".txt")), parse_shard(shard))

    def outputs_for(p: Path) -> list[Path]:
        return [Path(out_dir) / f"{stem_of(p)}.{out_fmt(str(p))}"]

    def process(p: Path) -> dict:
        result = reduce(str(p))
        dest = outputs_for(p)[0]
        (write_bytes if isinstance(result, bytes) else write_text)(dest, result)
        return {"output": str(dest)}

    from wisecli.runtime.runrecord import RunRecord

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    record = RunRecord("select-features predict", config={"selection": selection, "k": k or doc["k"], "order": order,
                                                          "format": fmt, "keep_target": keep_target},
                       device="cpu", seed=None, inputs=[str(p) for p in items])
    recs = run_batch(items, process, outputs_for=outputs_for, sink=sink, run_record=record,
                     options=BatchOptions(out_dir=Path(out_dir), skip_existing=skip_existing, overwrite=overwrite,
                                          fail_fast=fail_fast))
    sink.result({"records": recs}, rows=recs, title="select-features predict")


@app.command()
def evaluate(
    data: Annotated[str, typer.Argument(help="Labelled table (the training split is taken from it).")],
    target: Target,
    out_dir: o.OutDir = None,
    test: Annotated[Optional[str], typer.Option("--test", help="Test table (otherwise a stratified split).")] = None,
    test_fraction: Annotated[float, typer.Option("--test-fraction", help="Stratified test split.")] = 0.2,
    split_seed: Annotated[int, typer.Option("--split-seed", help="Seed of the test split.")] = 0,
    selection: Annotated[Optional[list[str]], typer.Option("--selection", help="Score existing selection.json "
                                                           "(repeatable) instead of training FM.")] = None,
    baselines: Annotated[str, typer.Option("--baselines", help="Comma list of mi,rfe-lr,l1,random,all "
                                           "(or none).")] = "mi,rfe-lr,l1,random,all",
    k: Annotated[Optional[str], typer.Option("--k", help="k grid, e.g. 5,10,20,50 (default: powers of 2 and d).")] = None,
    seeds: Annotated[str, typer.Option("--seeds", help="Seeds of FM and the seeded baselines.")] = "0,1,2",
    refit: Annotated[str, typer.Option("--refit", help="Classifier refitted on the top-k columns: logreg | mlp "
                                       "(every refit as one stacked model).")] = "logreg",
    plot: Annotated[Optional[Path], typer.Option("--plot", help="PNG of accuracy against k.")] = None,
    mask_image: Annotated[Optional[str], typer.Option("--mask-image", help="Save the FM mask as an HxW image "
                                                      "(pixel data), e.g. 8x8.")] = None,
    epochs: Annotated[int, typer.Option("--epochs", help="FM epochs.")] = 100,
    batch_size: Annotated[int, typer.Option("--batch-size", help="FM batch size.")] = 128,
    sep: Sep = None, id_col: IdCol = None, drop: Drop = None, drop_non_numeric: DropNonNumeric = False,
    impute: Impute = "none", x_key: XKey = "X", y_key: YKey = "y",
    skip_existing: o.SkipExisting = False, shard: o.Shard = None, compile: Compile = False,
    deterministic: Deterministic = False,
    device: o.Device = "auto", amp: o.Amp = True, json: o.Json = False, jsonl: o.Jsonl = False,
    quiet: o.Quiet = False,
) -> None:
    """Accuracy against k of FM and the baselines under one refit protocol, with stability over seeds.

    `--shard I/N` runs every N-th (method, seed) cell (the "all" refit is one more cell); the union of the
    shards' records equals an unsharded run."""
    from wisecli.engines.select_features.peers import BASELINES
    from wisecli.engines.select_features.train import FMConfig

    sink = Sink(json=json, jsonl=jsonl, quiet=quiet)
    _choice("--impute", impute, ("none", "mean", "median"))
    _choice("--refit", refit, ("logreg", "mlp"))
    methods = [] if baselines.strip() == "none" else [b.strip() for b in baselines.split(",") if b.strip()]
    for b in methods:
        _choice("--baselines", b, BASELINES)
    ks = _ints("--k", k)
    if ks is not None and any(v < 1 for v in ks):
        raise InputError(f"--k {k}: every k must be at least 1", hint="for example --k 5,10,20")
    seed_list = _ints("--seeds", seeds) or [0]
    if not 0 < test_fraction < 1:
        raise InputError(f"--test-fraction {test_fraction} must be in (0, 1)", hint="the default is 0.2")
    from wisecli.cli.inputs import parse_shard

    shard_ij = parse_shard(shard)
    from wisecli.engines.select_features import api
    from wisecli.runtime.device import resolve_device

    dev = resolve_device(device, sink=sink)
    _deterministic(deterministic)
    summary = api.evaluate(data, target, test=test, test_fraction=test_fraction, split_seed=split_seed,
                           selections=selection, methods=([] if selection else ["fm"]) + methods, ks=ks,
                           seeds=seed_list, cfg=FMConfig(epochs=epochs, batch_size=batch_size, amp=amp,
                                                                     compile=compile), device=dev,
                           sep=sep, id_col=id_col, drop=drop or [], drop_non_numeric=drop_non_numeric,
                           impute_how=impute, x_key=x_key, y_key=y_key, out_dir=out_dir,
                           skip_existing=skip_existing, refit=refit, record=sink.record, plot=plot, mask_image=mask_image,
                           shard=shard_ij, sink=sink)
    rows = []
    for kk in summary["ks"]:
        row = {"k": kk}
        for m, c in summary["curves"].items():
            row[m] = f"{c[kk]['mean']:.3f}±{c[kk]['std']:.3f}" if kk in c else ""
        rows.append(row)
    doc = {key: v for key, v in summary.items() if key != "rankings"}
    sink.result(doc, rows=rows, title=f"test accuracy ({refit} refit); all features: "
                                      f"{summary['all_features_accuracy']}")
    if summary["errors"]:
        raise PartialFailure(f"{len(summary['errors'])} selector run(s) failed: "
                             + "; ".join(f"{e['method']} seed {e['seed']}: {e['error']}" for e in summary["errors"][:3]),
                             hint="the other methods' records are complete; see the status 'error' records")


@app.command()
def demo(
    dataset: Annotated[str, typer.Option("--dataset", help="breast-cancer | digits | synthetic | all.")] = "all",
    quick: o.Quick = False,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="PNG of the accuracy curves.")] = None,
    device: o.Device = "auto", json: o.Json = False, quiet: o.Quiet = False,
) -> None:
    """FM against the baselines on bundled data (breast cancer, digits, a labelled synthetic set)."""
    _choice("--dataset", dataset, ("breast-cancer", "digits", "synthetic", "all"))
    from wisecli.engines.select_features import api

    sink = Sink(json=json, quiet=quiet)
    doc = api.demo(quick=quick, device=device, dataset=dataset, plot=plot, sink=sink)
    sink.result(doc, rows=doc["rows"], title=f"select-features demo: test accuracy at k "
                                             f"({len(doc['seeds'])} seed(s), logreg refit)")


@app.command()
def info(json: o.Json = False) -> None:
    """What select-features reads and writes, its defaults and capabilities."""
    from wisecli.engines.select_features import api

    doc = api.info()
    Sink(json=json).result(doc, rows=[{"key": key, "value": v} for key, v in doc.items()], title="select-features")


@app.command()
def benchmark(
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="digits | mnist5k | synthetic "
                                                   "(default: digits; --quick: a small synthetic set).")] = None,
    repeats: Annotated[int, typer.Option("--repeats", help="Timing repeats (median).")] = 3,
    quick: o.Quick = False, compile: Compile = False,
    device: o.Device = "auto", json: o.Json = False, quiet: o.Quiet = False,
) -> None:
    """FM's time to a full ranking and accuracy curve against mi, rfe-lr and l1, in one process."""
    if dataset is not None:
        _choice("--dataset", dataset, ("digits", "mnist5k", "synthetic"))
    from wisecli.engines.select_features import api

    sink = Sink(json=json, quiet=quiet)
    recs = api.benchmark(device=device, quick=quick, dataset=dataset, repeats=repeats, compile=compile, sink=sink)
    report = recs[0]["report"]
    rows = [{"method": m, "rank_s": v["rank_seconds"], "curve_mean": v["curve_mean"],
             "speedup_vs": report["ratios"].get(m)} for m, v in report["methods"].items()]
    sink.result(report, rows=rows, title=f"select-features benchmark: {report['dataset']} on {report['device']}")
