"""`wise smooth`: Correlation-wise Smoothing (CS) signatures of monitoring time series (Netti et al., IPDPS 2021).

Verbs: fit, run, evaluate, record, demo, info, benchmark. Engine: `wisecli.engines.smooth.api` (imported inside
the command bodies so `wise --help` stays fast).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from wisecli.cli import options as o
from wisecli.cli.errors import InputError
from wisecli.cli.output import Sink

app = typer.Typer(help="Correlation-wise Smoothing signatures for monitoring time series.", no_args_is_help=True,
                  context_settings={"help_option_names": ["-h", "--help"]})

_DATA = "Data"
Inputs = Annotated[list[str], typer.Argument(help="Wide CSV/TSV, HPC-ODA folders, .npy; @list.txt, @-; '-' = stdin.")]
Window = Annotated[Optional[int], typer.Option("--window", help="Window W in samples (default 60).")]
Step = Annotated[Optional[int], typer.Option("--step", help="Samples between window ends (default 10).")]
Blocks = Annotated[Optional[int], typer.Option("--blocks", help="Blocks B (default 20; signature 2*min(B,S)).")]
Quirks = Annotated[Optional[str], typer.Option("--quirks", help="fixed | reference | a list such as Q2,Q4.")]
TimeCol = Annotated[Optional[str], typer.Option("--time-col", help="Time column (default time/timestamp/ts, else first; 'none').", rich_help_panel=_DATA)]
Sensors = Annotated[Optional[list[str]], typer.Option("--sensors", help="Glob of sensor columns to keep (repeatable).", rich_help_panel=_DATA)]
Exclude = Annotated[Optional[list[str]], typer.Option("--exclude", help="Glob of columns to leave out (repeatable).", rich_help_panel=_DATA)]
LabelCol = Annotated[Optional[str], typer.Option("--label-col", help="Label column (never a sensor).", rich_help_panel=_DATA)]
Layout = Annotated[str, typer.Option("--layout", help="auto | wide | hpcoda | npy.", rich_help_panel=_DATA)]
SortTime = Annotated[bool, typer.Option("--sort-time", help="Sort rows by time instead of refusing.", rich_help_panel=_DATA)]
Dedupe = Annotated[Optional[str], typer.Option("--dedupe", help="Keep 'last' or 'first' of duplicate timestamps.", rich_help_panel=_DATA)]
Gaps = Annotated[str, typer.Option("--gaps", help="split | ignore | fail for gaps > 1.5x the median interval.", rich_help_panel=_DATA)]
AlignTol = Annotated[Optional[float], typer.Option("--align-tolerance", help="HPC-ODA: seconds a reading may lag the grid.", rich_help_panel=_DATA)]


def _read_opts(time_col, sensors, exclude, label_col, layout, sort_time, dedupe, gaps, align_tol,
               target_col=None):
    from wisecli.engines.smooth.data import ReadOptions

    if layout not in ("auto", "wide", "hpcoda", "npy"):
        raise InputError(f"unknown --layout {layout!r}", hint="auto, wide, hpcoda or npy")
    if gaps not in ("split", "ignore", "fail"):
        raise InputError(f"unknown --gaps {gaps!r}", hint="split, ignore or fail")
    if dedupe not in (None, "last", "first"):
        raise InputError(f"unknown --dedupe {dedupe!r}", hint="last or first")
    return ReadOptions(time_col=time_col, sensors=sensors or [], exclude=exclude or [], label_col=label_col,
                       target_col=target_col, sort_time=sort_time, dedupe=dedupe, gaps=gaps,
                       align_tolerance=align_tol, layout=layout)


def _expand(inputs: list[str]) -> list[Path]:
    from wisecli.cli.inputs import expand_inputs

    def is_hpcoda(p: Path) -> bool:
        return (p / "sensors").is_dir()

    return expand_inputs(inputs, extensions=(".csv", ".tsv", ".npy"), dir_is_item=is_hpcoda)


@app.command()
def fit(
    inputs: Inputs,
    output: o.OutFile = None,
    blocks: Blocks = None,
    window: Window = None,
    step: Step = None,
    eps: Annotated[float, typer.Option("--eps", help="Absolute epsilon of the min-max range.")] = 1e-4,
    scale: Annotated[float, typer.Option("--scale", help="Signature scale (1e9 matches DCDB).")] = 1.0,
    export_dcdb: Annotated[Optional[Path], typer.Option("--export-dcdb", help="Also write the DCDB layout.")] = None,
    import_dcdb: Annotated[Optional[Path], typer.Option("--import-dcdb", help="Convert a DCDB model instead of fitting.")] = None,
    quirks: Quirks = None,
    time_col: TimeCol = None, sensors: Sensors = None, exclude: Exclude = None, label_col: LabelCol = None,
    layout: Layout = "auto", sort_time: SortTime = False, dedupe: Dedupe = None, gaps: Gaps = "split",
    align_tolerance: AlignTol = None,
    device: o.Device = "cpu", overwrite: o.Overwrite = False, config: o.Config = None, set_: o.Set = None,
    json: o.Json = False, quiet: o.Quiet = False, debug: o.Debug = False,
) -> None:
    """Learn the sensor order (correlation walk) and min/max over all inputs; write model.json."""
    from wisecli.cli.config import resolve
    from wisecli.engines.smooth import api

    sink = Sink(json=json, quiet=quiet)
    if output is None:
        raise InputError("no output model file", hint="give -o model.json")
    cfg = resolve({k: api.DEFAULTS[k] for k in ("blocks", "window", "step", "quirks")},
                  flags={"blocks": blocks, "window": window, "step": step, "quirks": quirks},
                  config_file=config, sets=set_).values
    paths = _expand(inputs) if inputs and inputs != ["-"] else []
    if import_dcdb is None and not paths:
        raise InputError("no inputs to fit on", hint="give files (a lone '-' is for `run`)")
    opts = _read_opts(time_col, sensors, exclude, label_col, layout, sort_time, dedupe, gaps, align_tolerance)
    dev = "cpu" if device == "cpu" else str(_device(device, sink))
    doc = api.fit(paths, output, opts=opts, blocks=cfg["blocks"], window=cfg["window"], step=cfg["step"], eps=eps,
                  scale=scale, quirks=cfg["quirks"], device=dev, export_dcdb=export_dcdb, import_dcdb=import_dcdb,
                  overwrite=overwrite, warn=sink.warn)
    sink.result(doc, rows=[{k: v for k, v in doc.items() if k != "constant_sensors"}], title="wise smooth fit")


def _device(spec, sink):
    from wisecli.runtime.device import resolve_device

    return resolve_device(spec, sink=sink)


@app.command()
def run(
    model: Annotated[Path, typer.Argument(help="model.json from `wise smooth fit`.")],
    inputs: Inputs,
    out_dir: o.OutDir = None,
    window: Window = None,
    step: Step = None,
    blocks: Blocks = None,
    complex_: Annotated[bool, typer.Option("--complex", help="nb complex values avg + i*der.")] = False,
    real_only: Annotated[bool, typer.Option("--real-only", help="avg only.")] = False,
    scale: Annotated[Optional[float], typer.Option("--scale", help="Signature scale (default: the model's).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv | npy.")] = "csv",
    preview: Annotated[bool, typer.Option("--preview", help="Also write {stem}.sig.png.")] = False,
    precision: Annotated[str, typer.Option("--precision", help="auto (fp32 on GPU, fp64 on CPU) | fp32 | fp64.")] = "auto",
    time_col: TimeCol = None, sensors: Sensors = None, exclude: Exclude = None, label_col: LabelCol = None,
    layout: Layout = "auto", sort_time: SortTime = False, dedupe: Dedupe = None, gaps: Gaps = "split",
    align_tolerance: AlignTol = None,
    device: o.Device = "auto", skip_existing: o.SkipExisting = False, overwrite: o.Overwrite = False,
    fail_fast: o.FailFast = False, shard: o.Shard = None, config: o.Config = None, set_: o.Set = None,
    json: o.Json = False, jsonl: o.Jsonl = False, quiet: o.Quiet = False, debug: o.Debug = False,
) -> None:
    """Signatures of every window of every input ({stem}.sig.csv|npy); '-' streams stdin to stdout."""
    from wisecli.cli.config import resolve
    from wisecli.cli.inputs import apply_shard, parse_shard
    from wisecli.engines.smooth import api
    from wisecli.engines.smooth import model_io as MIO

    sink = Sink(json=json, jsonl=jsonl, quiet=quiet)
    if complex_ and real_only:
        raise InputError("--complex and --real-only exclude each other", hint="pick one")
    if fmt not in ("csv", "npy"):
        raise InputError(f"unknown --format {fmt!r}", hint="csv or npy")
    if precision not in ("auto", "fp32", "fp64"):
        raise InputError(f"unknown --precision {precision!r}", hint="auto, fp32 or fp64")
    mode = "complex" if complex_ else "real" if real_only else "split"
    m = MIO.load(model)
    cfg = resolve({"window": m.window, "step": m.step, "blocks": m.blocks, "scale": m.scale},
                  flags={"window": window, "step": step, "blocks": blocks, "scale": scale},
                  config_file=config, sets=set_)
    v = cfg.values
    api.check_params(v["window"], v["step"], v["blocks"])
    opts = _read_opts(time_col, sensors, exclude, label_col, layout, sort_time, dedupe, gaps, align_tolerance)
    if inputs == ["-"]:
        api.stream(m, sys.stdin, _write_flush, opts=opts, window=v["window"], step=v["step"], blocks=v["blocks"],
                   mode=mode, scale=v["scale"], warn=sink.warn)
        return
    from wisecli.runtime.batch import BatchOptions, run_batch
    from wisecli.runtime.runrecord import RunRecord

    items = apply_shard(_expand(inputs), parse_shard(shard))
    dev = _device(device, sink)
    prec = precision if precision != "auto" else ("fp32" if dev.type == "cuda" else "fp64")
    out = Path(out_dir) if out_dir else Path(".")
    rr = RunRecord("smooth run", config=cfg, device=str(dev), seed=None, inputs=items)
    rr.set("model", str(model))

    def process(item: Path) -> dict:
        return api.run_one(m, item, out, opts=opts, window=v["window"], step=v["step"], blocks=v["blocks"],
                           mode=mode, scale=v["scale"], precision=prec, device=str(dev), fmt=fmt, preview=preview,
                           warn=sink.warn)

    recs = run_batch(items, process, outputs_for=lambda p: api.outputs_for(p, out, fmt, preview),
                     options=BatchOptions(out, skip_existing, overwrite, fail_fast, debug), sink=sink, run_record=rr)
    sink.result({"items": recs}, rows=recs, columns=["input", "status", "windows", "output", "seconds"],
                title="wise smooth run")


def _write_flush(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


@app.command()
def evaluate(
    inputs: Annotated[Optional[list[str]], typer.Argument(help="Labelled inputs (or --dataset).")] = None,
    label_col: LabelCol = None,
    labels: Annotated[Optional[Path], typer.Option("--labels", help="Labels file: one per run or per sample.")] = None,
    target_col: Annotated[Optional[str], typer.Option("--target-col", help="Regression target column.")] = None,
    task: Annotated[str, typer.Option("--task", help="classify | regress.")] = "classify",
    methods: Annotated[str, typer.Option("--methods", help="cs:B, tuncer, bodik, lan, stats, minirocket.")] = "cs:5,cs:10,cs:20,cs:40,tuncer,bodik,lan,stats",
    window: Window = None, step: Step = None,
    cv: Annotated[str, typer.Option("--cv", help="blocked | shuffled | group | split.")] = "blocked",
    folds: Annotated[int, typer.Option("--folds", help="K folds.")] = 5,
    repeats: Annotated[int, typer.Option("--repeats", help="Repeats (distinct seeded splits where they can differ).")] = 5,
    test: Annotated[Optional[list[str]], typer.Option("--test", help="Test inputs (--cv split).")] = None,
    info_loss: Annotated[bool, typer.Option("--info-loss", help="Jensen-Shannon information loss of CS.")] = False,
    renormalize: Annotated[bool, typer.Option("--renormalize", help="Per-row min-max before the information loss.")] = False,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="basicmotions | synthetic (embedded).")] = None,
    mixed_windows: Annotated[str, typer.Option("--mixed-windows", help="last (label at the last sample) | drop.")] = "last",
    quirks: Quirks = None,
    time_col: TimeCol = None, sensors: Sensors = None, exclude: Exclude = None,
    layout: Layout = "auto", sort_time: SortTime = False, dedupe: Dedupe = None, gaps: Gaps = "split",
    align_tolerance: AlignTol = None,
    seed: o.Seed = 0, json: o.Json = False, jsonl: o.Jsonl = False, quiet: o.Quiet = False, debug: o.Debug = False,
) -> None:
    """Classify (F1) or regress (NRMSE) from CS signatures and the baselines, with leakage-free CV."""
    from wisecli.engines.smooth import api

    sink = Sink(json=json, jsonl=jsonl, quiet=quiet)
    if task not in ("classify", "regress"):
        raise InputError(f"unknown --task {task!r}", hint="classify or regress")
    if cv not in ("blocked", "shuffled", "group", "split"):
        raise InputError(f"unknown --cv {cv!r}", hint="blocked, shuffled, group or split")
    if mixed_windows not in ("last", "drop"):
        raise InputError(f"unknown --mixed-windows {mixed_windows!r}", hint="last or drop")
    if dataset == "basicmotions":
        from wisecli.engines.smooth.baselines import have_aeon

        if not have_aeon():
            raise InputError("the basicmotions data set needs aeon", hint="pip install 'wisecli[data]'")
    opts = _read_opts(time_col, sensors, exclude, label_col, layout, sort_time, dedupe, gaps, align_tolerance,
                      target_col)
    paths = _expand(inputs) if inputs else []
    tpaths = _expand(test) if test else None
    W = window if window is not None else (20 if dataset == "basicmotions" else 30 if dataset == "synthetic" else 60)
    st = step if step is not None else (5 if dataset in ("basicmotions", "synthetic") else 10)
    recs = api.evaluate(paths, opts=opts, labels_file=labels, task=task, methods=methods, window=W, step=st, cv=cv,
                        folds=folds, repeats=repeats, seed=seed, test=tpaths, info_loss=info_loss,
                        renormalize=renormalize, dataset=dataset, quirks=quirks or "fixed", mixed=mixed_windows,
                        progress=sink.debug)
    for r in recs:
        sink.record(r)
    score = "f1_weighted" if task == "classify" else "nrmse"
    cols = ["method", "signature_len", score, f"{score.split('_')[0]}_ci95" if task == "classify" else "nrmse_ci95",
            "us_per_signature", "fit_seconds", "windows", "cv"]
    if any("run_accuracy" in r for r in recs):
        cols.insert(4, "run_accuracy")
    if info_loss:
        cols.append("info_loss")
    sink.result({"results": recs, "window": W, "step": st}, rows=recs, columns=cols, title="wise smooth evaluate")


@app.command()
def record(
    output: o.OutFile = None,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between samples.")] = 1.0,
    duration: Annotated[Optional[float], typer.Option("--duration", help="Seconds to record (no workloads).")] = None,
    samples: Annotated[Optional[int], typer.Option("--samples", help="Samples to record (no workloads).")] = None,
    workload: Annotated[Optional[list[str]], typer.Option("--workload", help="idle|cpu|memory|disk|network[:SECONDS], or NAME[:SECONDS]=cmd:COMMAND (repeatable).")] = None,
    repeat: Annotated[int, typer.Option("--repeat", help="Repetitions of the workload sequence.")] = 1,
    rest: Annotated[float, typer.Option("--rest", help="Seconds of rest (label 'rest') between segments.")] = 0.0,
    per_cpu: Annotated[bool, typer.Option("--per-cpu", help="CPU fractions per core too.")] = False,
    include_virtual: Annotated[bool, typer.Option("--include-virtual", help="Include loop/ram/zram disks.")] = False,
    scratch: Annotated[Optional[Path], typer.Option("--scratch", help="Folder for the disk workload (default: the output's).")] = None,
    mem_mb: Annotated[Optional[int], typer.Option("--mem-mb", help="Memory workload MB (default min(512, MemAvailable/4)).")] = None,
    disk_mb: Annotated[int, typer.Option("--disk-mb", help="Disk workload MB.")] = 256,
    workers: Annotated[Optional[int], typer.Option("--workers", help="cpu workload processes (default all cores).")] = None,
    overwrite: o.Overwrite = False,
    append: Annotated[bool, typer.Option("--append", help="Append to an existing recording.")] = False,
    json: o.Json = False, quiet: o.Quiet = False, debug: o.Debug = False,
) -> None:
    """Record this machine's /proc telemetry into a wide CSV, optionally under labelled workloads."""
    from wisecli.engines.smooth import api

    sink = Sink(json=json, quiet=quiet)
    if output is None:
        raise InputError("no output file", hint="give -o telemetry.csv")
    doc = api.record(output, interval=interval, duration=duration, samples=samples, workloads=workload or [],
                     repeat=repeat, rest=rest, per_cpu=per_cpu, include_virtual=include_virtual, scratch=scratch,
                     mem_mb=mem_mb, disk_mb=disk_mb, workers=workers, overwrite=overwrite, append=append,
                     warn=sink.warn, info=sink.info)
    sink.result(doc, rows=[{**doc, "labels": ", ".join(f"{k}={v}" for k, v in doc["labels"].items())}],
                title="wise smooth record")


@app.command()
def demo(
    out_dir: o.OutDir = None,
    quick: o.Quick = False,
    source: Annotated[str, typer.Option("--source", help="proc (record this machine) | synthetic | basicmotions.")] = "proc",
    device: o.Device = "auto", seed: o.Seed = 0, json: o.Json = False, quiet: o.Quiet = False, debug: o.Debug = False,
) -> None:
    """End to end: record (or generate) data, fit, signatures, PNG, and a CS-vs-baselines table."""
    from wisecli.engines.smooth import api

    sink = Sink(json=json, quiet=quiet)
    if source not in ("proc", "synthetic", "basicmotions"):
        raise InputError(f"unknown --source {source!r}", hint="proc, synthetic or basicmotions")
    if source == "basicmotions":
        from wisecli.engines.smooth.baselines import have_aeon

        if not have_aeon():
            raise InputError("the basicmotions data set needs aeon", hint="pip install 'wisecli[data]'")
    doc = api.demo(quick=quick, device=device, source=source, out_dir=out_dir, seed=seed, warn=sink.warn,
                   info=sink.info)
    sink.info(f"artefacts in {doc['out_dir']}")
    sink.result(doc, rows=doc["results"], columns=["method", "signature_len", "f1_weighted", "f1_ci95",
                                                   "us_per_signature", "windows", "cv"],
                title=f"wise smooth demo ({doc['source']})")


@app.command()
def info(json: o.Json = False) -> None:
    """Defaults, quirk switches, formats, baselines and devices."""
    from wisecli.engines.smooth import api

    doc = api.info()
    rows = [{"item": k, "value": v} for k, v in doc.items() if k != "quirks"]
    rows += [{"item": f"quirk {k}", "value": v} for k, v in doc["quirks"].items()]
    Sink(json=json).result(doc, rows=rows, title="wise smooth info")


def _ints(text: Optional[str], name: str) -> Optional[list[int]]:
    if text is None:
        return None
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--{name} expects comma-separated integers, got {text!r}", hint=f"e.g. --{name} 128,1024") from None
    if not vals or min(vals) < 1:
        raise InputError(f"--{name} values must be at least 1", hint=f"e.g. --{name} 128,1024")
    return vals


@app.command()
def benchmark(
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes (seconds on CPU).")] = False,
    sensors: Annotated[Optional[str], typer.Option("--sensors", help="Sensor counts, e.g. 128,1024,4096.")] = None,
    windows: Annotated[Optional[str], typer.Option("--windows", help="Windows per case, e.g. 200000,100000,20000.")] = None,
    blocks: Annotated[Optional[str], typer.Option("--blocks", help="Blocks per case, e.g. 20,40,40.")] = None,
    window: Annotated[int, typer.Option("--window", help="Window W.")] = 60,
    step: Annotated[int, typer.Option("--step", help="Step between window ends.")] = 1,
    device: o.Device = "auto", seed: o.Seed = 0, json: o.Json = False, quiet: o.Quiet = False, debug: o.Debug = False,
) -> None:
    """Race the per-window reference loop, the numpy prefix-sum path and the torch path (one process)."""
    from wisecli.engines.smooth import api

    sink = Sink(json=json, quiet=quiet)
    api.check_params(window, step)
    recs = api.benchmark(device=device, quick=quick, sensors=_ints(sensors, "sensors"),
                         windows=_ints(windows, "windows"), blocks=_ints(blocks, "blocks"), window=window, step=step,
                         seed=seed, info=sink.info)
    sink.result({"records": recs}, rows=recs, columns=["case", "loop_win_per_s", "numpy_win_per_s",
                                                       "device_win_per_s", "device_e2e_win_per_s", "speedup",
                                                       "max_abs_err", "device"], title="wise smooth benchmark")
