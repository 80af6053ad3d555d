"""`wise smooth`: Correlation-wise Smoothing (CS) signatures of monitoring time series (Netti et al., IPDPS 2021).

Verbs: fit, run, evaluate, record, demo, info, benchmark. Each verb parses, calls `wisecli.engines.smooth.api`
once (imported inside the body so `wise --help` stays fast) and hands the result to the sink.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from wisecli.cli import options as o
from wisecli.cli.common import MethodApp
from wisecli.cli.output import Sink

app = MethodApp("smooth", help="Correlation-wise Smoothing signatures for monitoring time series.",
                context_settings={"help_option_names": ["-h", "--help"]})

_DATA = "Data"
Window = Annotated[Optional[int], typer.Option("--window", callback=o.at_least_one, help="Window W in samples.")]
Step = Annotated[Optional[int], typer.Option("--step", callback=o.at_least_one, help="Samples between window ends.")]
Blocks = Annotated[Optional[int], typer.Option("--blocks", callback=o.at_least_one,
                                               help="Blocks B (signature 2*min(B,S)).")]
Scale = Annotated[Optional[float], typer.Option("--scale", callback=o.positive, help="Signature scale (1e9 matches DCDB).")]
Quirks = Annotated[Optional[str], typer.Option("--quirks", help="fixed | reference | a list such as Q2,Q4.")]
Convention = Annotated[Optional[Literal["scripts", "dcdb"]], typer.Option("--convention", help="scripts = the authors' Python scripts; dcdb = DCDB's Wintermute CS operator (derivative, walk, eps, block bounds).")]
TimeCol = Annotated[Optional[str], typer.Option("--time-col", help="Time column (default time/timestamp/ts, else first; 'none').", rich_help_panel=_DATA)]
Sensors = Annotated[Optional[list[str]], typer.Option("--sensors", help="Glob of sensor columns to keep (repeatable).", rich_help_panel=_DATA)]
Exclude = Annotated[Optional[list[str]], typer.Option("--exclude", help="Glob of columns to leave out (repeatable).", rich_help_panel=_DATA)]
LabelCol = Annotated[Optional[str], typer.Option("--label-col", help="Label column (never a sensor).", rich_help_panel=_DATA)]
Layout = Annotated[Optional[Literal["auto", "wide", "hpcoda", "npy"]], typer.Option("--layout", help="Input layout.", rich_help_panel=_DATA)]
SortTime = Annotated[bool, typer.Option("--sort-time", help="Sort rows by time instead of refusing.", rich_help_panel=_DATA)]
Dedupe = Annotated[Optional[Literal["last", "first"]], typer.Option("--dedupe", help="Keep the last or first of duplicate timestamps.", rich_help_panel=_DATA)]
Gaps = Annotated[Optional[Literal["split", "ignore", "fail"]], typer.Option("--gaps", help="What gaps > 1.5x the median interval do.", rich_help_panel=_DATA)]
AlignTol = Annotated[Optional[float], typer.Option("--align-tolerance", callback=o.not_negative, help="HPC-ODA: seconds a reading may lag the grid.", rich_help_panel=_DATA)]


@app.command()
def fit(
    inputs: Annotated[Optional[list[Path]], typer.Argument(help="Wide CSV/TSV, HPC-ODA folders, .npy; @list.txt, @-.")] = None,
    output: o.OutFile = None,
    blocks: Blocks = None, window: Window = None, step: Step = None,
    eps: Annotated[Optional[float], typer.Option("--eps", callback=o.positive, help="Absolute epsilon of the min-max range.")] = None,
    scale: Scale = None,
    export_dcdb: Annotated[Optional[Path], typer.Option("--export-dcdb", help="Also write the DCDB layout.")] = None,
    import_dcdb: Annotated[Optional[Path], typer.Option("--import-dcdb", help="Convert a DCDB model instead of fitting.")] = None,
    quirks: Quirks = None, convention: Convention = None,
    time_col: TimeCol = None, sensors: Sensors = None, exclude: Exclude = None, label_col: LabelCol = None,
    layout: Layout = None, sort_time: SortTime = False, dedupe: Dedupe = None, gaps: Gaps = None,
    align_tolerance: AlignTol = None,
    device: o.Device = None, overwrite: o.Overwrite = False,
    json: o.Json = False,
) -> None:
    """Learn the sensor order (correlation walk) and min/max over all inputs; write model.json."""
    from wisecli.engines.smooth import api

    sink = Sink(json=json)
    doc = api.fit(inputs, output, blocks=blocks, window=window, step=step, eps=eps, scale=scale, quirks=quirks,
                  convention=convention, export_dcdb=export_dcdb, import_dcdb=import_dcdb, time_col=time_col, sensors=sensors,
                  exclude=exclude, label_col=label_col, layout=layout, sort_time=sort_time, dedupe=dedupe, gaps=gaps,
                  align_tolerance=align_tolerance, device=device, overwrite=overwrite, warn=sink.warn)
    sink.result(doc, rows=[{k: v for k, v in doc.items() if k != "constant_sensors"}], title="wise smooth fit")


@app.command()
def run(
    model: Annotated[Path, typer.Argument(help="model.json from `wise smooth fit`.")],
    inputs: Annotated[list[str], typer.Argument(help="Wide CSV/TSV, HPC-ODA folders, .npy; @list.txt, @-; a lone '-' streams stdin.")],
    out_dir: o.OutDir = None,
    window: Window = None, step: Step = None, blocks: Blocks = None,
    complex_: Annotated[bool, typer.Option("--complex", help="nb complex values avg + i*der.")] = False,
    real_only: Annotated[bool, typer.Option("--real-only", help="avg only.")] = False,
    scale: Annotated[Optional[float], typer.Option("--scale", callback=o.positive, help="Signature scale (default: the model's).")] = None,
    format: Annotated[Optional[Literal["csv", "npy"]], o.FORMAT] = None,
    preview: Annotated[bool, typer.Option("--preview", help="Also write {stem}.sig.png.")] = False,
    precision: Annotated[Optional[Literal["auto", "fp32", "fp64"]], typer.Option("--precision", help="auto = fp32 on GPU, fp64 on CPU.")] = None,
    time_col: TimeCol = None, sensors: Sensors = None, exclude: Exclude = None, label_col: LabelCol = None,
    layout: Layout = None, sort_time: SortTime = False, dedupe: Dedupe = None, gaps: Gaps = None,
    align_tolerance: AlignTol = None,
    by_position: Annotated[bool, typer.Option("--by-position", help="Map the selected sensor columns to the model's sensors in order (e.g. a model fitted on .npy: s0, s1, ...).", rich_help_panel=_DATA)] = False,
    device: o.Device = None, skip_existing: o.SkipExisting = False,
    overwrite: o.Overwrite = False, fail_fast: o.FailFast = False, shard: o.Shard = None,
    json: o.Json = False, jsonl: o.Jsonl = False,
) -> None:
    """Signatures of every window of every input ({stem}.sig.csv|npy); '-' streams stdin to stdout."""
    from wisecli.cli.errors import InputError
    from wisecli.engines.smooth import api

    sink = Sink(json=json, jsonl=jsonl)
    if complex_ and real_only:
        raise InputError("--complex and --real-only exclude each other", hint="pick one")
    recs = api.run(model, inputs, out_dir, window=window, step=step, blocks=blocks, scale=scale,
                   mode="complex" if complex_ else "real" if real_only else "split", format=format, preview=preview,
                   precision=precision, time_col=time_col, sensors=sensors, exclude=exclude, label_col=label_col,
                   layout=layout, sort_time=sort_time, dedupe=dedupe, gaps=gaps, align_tolerance=align_tolerance,
                   device=device, skip_existing=skip_existing, overwrite=overwrite, fail_fast=fail_fast, shard=shard,
                   by_position=by_position, sink=sink)
    if inputs != ["-"]:  # the stream's data went to stdout already
        sink.result({"items": recs}, rows=recs, columns=["input", "status", "windows", "output", "seconds"],
                    title="wise smooth run")
    sink.finish(recs)


@app.command()
def evaluate(
    inputs: Annotated[Optional[list[Path]], typer.Argument(help="Labelled inputs (or --dataset).")] = None,
    label_col: LabelCol = None,
    labels: Annotated[Optional[Path], typer.Option("--labels", help="Labels file: one per run or per sample.")] = None,
    target_col: Annotated[Optional[str], typer.Option("--target-col", help="Regression target column.")] = None,
    task: Annotated[Optional[Literal["classify", "regress"]], typer.Option("--task", help="F1 or NRMSE.")] = None,
    methods: Annotated[Optional[str], typer.Option("--methods", help="cs:B, tuncer, bodik, lan, stats, minirocket.")] = None,
    window: Window = None, step: Step = None,
    cv: Annotated[Optional[Literal["blocked", "shuffled", "group", "split"]], typer.Option("--cv", help="Cross-validation protocol.")] = None,
    folds: Annotated[Optional[int], typer.Option("--folds", callback=o.at_least_one, help="K folds (at least 2).")] = None,
    repeats: Annotated[Optional[int], typer.Option("--repeats", callback=o.at_least_one, help="Repeats (distinct seeded splits where they can differ).")] = None,
    test: Annotated[Optional[list[Path]], typer.Option("--test", help="Test inputs (--cv split).")] = None,
    info_loss: Annotated[bool, typer.Option("--info-loss", help="Jensen-Shannon information loss of CS.")] = False,
    renormalize: Annotated[bool, typer.Option("--renormalize", help="Per-row min-max before the information loss.")] = False,
    dataset: Annotated[Optional[Literal["basicmotions", "synthetic"]], o.DATASET] = None,
    mixed_windows: Annotated[Optional[Literal["last", "drop"]], typer.Option("--mixed-windows", help="last = label at the last sample; drop = leave out windows spanning two labels.")] = None,
    quirks: Quirks = None, convention: Convention = None,
    time_col: TimeCol = None, sensors: Sensors = None, exclude: Exclude = None,
    layout: Layout = None, sort_time: SortTime = False, dedupe: Dedupe = None, gaps: Gaps = None,
    align_tolerance: AlignTol = None,
    seed: o.Seed = None, json: o.Json = False, jsonl: o.Jsonl = False,
) -> None:
    """Classify (F1) or regress (NRMSE) from CS signatures and the baselines, with leakage-free CV."""
    from wisecli.engines.smooth import api

    sink = Sink(json=json, jsonl=jsonl)
    doc = api.evaluate(inputs, label_col=label_col, labels=labels, target_col=target_col, task=task, methods=methods,
                       window=window, step=step, cv=cv, folds=folds, repeats=repeats, test=test, info_loss=info_loss,
                       renormalize=renormalize, dataset=dataset, mixed_windows=mixed_windows, quirks=quirks,
                       convention=convention,
                       time_col=time_col, sensors=sensors, exclude=exclude, layout=layout, sort_time=sort_time,
                       dedupe=dedupe, gaps=gaps, align_tolerance=align_tolerance, seed=seed, warn=sink.warn,
                       progress=sink.debug)
    recs = doc["results"]
    for r in recs:
        sink.record(r)
    score = "nrmse" if recs and "nrmse" in recs[0] else "f1_weighted"
    cols = ["method", "signature_len", score, "f1_ci95" if score == "f1_weighted" else "nrmse_ci95",
            *(["run_accuracy"] if any("run_accuracy" in r for r in recs) else []),
            "us_per_signature", "fit_seconds", "windows", "cv", *(["info_loss"] if info_loss else [])]
    sink.result(doc, rows=recs, columns=cols, title="wise smooth evaluate")


@app.command()
def record(
    output: o.OutFile = None,
    interval: Annotated[Optional[float], typer.Option("--interval", callback=o.positive, help="Seconds between samples (at least 0.01).")] = None,
    duration: Annotated[Optional[float], typer.Option("--duration", callback=o.positive, help="Seconds to record (no workloads).")] = None,
    samples: Annotated[Optional[int], typer.Option("--samples", callback=o.at_least_one, help="Samples to record (no workloads).")] = None,
    workload: Annotated[Optional[list[str]], typer.Option("--workload", help="idle|cpu|memory|disk|network[:SECONDS], or NAME[:SECONDS]=cmd:COMMAND (repeatable).")] = None,
    repeat: Annotated[Optional[int], typer.Option("--repeat", callback=o.at_least_one, help="Repetitions of the workload sequence.")] = None,
    rest: Annotated[Optional[float], typer.Option("--rest", callback=o.not_negative, help="Seconds of rest (label 'rest') between segments.")] = None,
    per_cpu: Annotated[bool, typer.Option("--per-cpu", help="CPU fractions per core too.")] = False,
    include_virtual: Annotated[bool, typer.Option("--include-virtual", help="Include loop/ram/zram disks.")] = False,
    scratch: Annotated[Optional[Path], typer.Option("--scratch", help="Folder for the disk workload (default: the output's).")] = None,
    mem_mb: Annotated[Optional[int], typer.Option("--mem-mb", callback=o.at_least_one, help="Memory workload MB (default min(512, MemAvailable/4)).")] = None,
    disk_mb: Annotated[Optional[int], typer.Option("--disk-mb", callback=o.at_least_one, help="Disk workload MB.")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", callback=o.at_least_one, help="cpu workload processes (default all cores).")] = None,
    overwrite: o.Overwrite = False,
    append: Annotated[bool, typer.Option("--append", help="Append to an existing recording.")] = False,
    json: o.Json = False,
) -> None:
    """Record this machine's /proc telemetry into a wide CSV, optionally under labelled workloads."""
    from wisecli.engines.smooth import api

    sink = Sink(json=json)
    doc = api.record(output, interval=interval, duration=duration, samples=samples, workloads=workload, repeat=repeat,
                     rest=rest, per_cpu=per_cpu, include_virtual=include_virtual, scratch=scratch, mem_mb=mem_mb,
                     disk_mb=disk_mb, workers=workers, overwrite=overwrite, append=append, warn=sink.warn,
                     info=sink.info)
    sink.result(doc, rows=[{**doc, "labels": ", ".join(f"{k}={v}" for k, v in doc["labels"].items())}],
                title="wise smooth record")


@app.command()
def demo(
    out_dir: o.OutDir = None,
    quick: o.Quick = False,
    source: Annotated[Optional[Literal["proc", "synthetic", "basicmotions"]], typer.Option("--source", help="proc records this machine; synthetic and basicmotions are embedded.")] = None,
    device: o.Device = None, seed: o.Seed = None, json: o.Json = False,
) -> None:
    """End to end: record (or generate) data, fit, signatures, PNG, and a CS-vs-baselines table."""
    from wisecli.engines.smooth import api

    sink = Sink(json=json)
    result = api.demo(quick=quick, device=device, source=source, out_dir=out_dir, seed=seed, warn=sink.warn,
                      info=sink.info)
    if not json:
        sink.table(result.details["results"], columns=["method", "signature_len", "f1_weighted", "f1_ci95",
                                                       "us_per_signature", "windows", "cv"],
                   title=f"wise smooth demo ({result.details['source']}): results")
    if result.details.get("out_dir"):
        sink.info(f"artefacts in {result.details['out_dir']}")
    sink.demo(result, title=f"wise smooth demo ({result.details['source']})")


@app.command()
def info(json: o.Json = False) -> None:
    """Defaults, quirk switches, formats, baselines and devices."""
    from wisecli.engines.smooth import api

    doc = api.info()
    rows = [{"item": k, "value": v} for k, v in doc.items() if k not in ("quirks", "conventions")]
    rows += [{"item": f"quirk {k}", "value": v} for k, v in doc["quirks"].items()]
    rows += [{"item": f"convention {k}", "value": v} for k, v in doc["conventions"].items()]
    Sink(json=json).result(doc, rows=rows, title="wise smooth info")


@app.command()
def benchmark(
    quick: o.Quick = False,
    sensors: Annotated[Optional[str], typer.Option("--sensors", help="Sensor counts, comma-separated.")] = None,
    windows: Annotated[Optional[str], typer.Option("--windows", help="Windows per case, comma-separated.")] = None,
    blocks: Annotated[Optional[str], typer.Option("--blocks", help="Blocks per case, comma-separated.")] = None,
    window: Window = None, step: Step = None,
    device: o.Device = None, seed: o.Seed = None, json: o.Json = False,
) -> None:
    """Race the per-window reference loop, the numpy prefix-sum path and the torch path (one process)."""
    from wisecli.engines.smooth import api

    sink = Sink(json=json)
    recs = api.benchmark(device=device, quick=quick, sensors=sensors, windows=windows, blocks=blocks, window=window,
                         step=step, seed=seed, info=sink.info)
    sink.benchmark(recs, title="wise smooth benchmark")
