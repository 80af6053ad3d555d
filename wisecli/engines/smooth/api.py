"""The Python API of ``wise smooth`` — one function per verb, with the CLI's defaults (``DEFAULTS``): ``fit``,
``run`` (batch and the stdin stream), ``evaluate``, ``record``, ``demo``, ``info``, ``benchmark``.

A keyword left at ``None`` takes its value from ``DEFAULTS[verb]`` through ``cli.config.resolve`` (which also
reads ``--config``, ``--set`` and ``WISE_*`` variables). ``device`` takes a string (auto|cpu|cuda|cuda:N) or a
``torch.device``. Module level imports only the standard library and ``wisecli.cli``; the engine loads inside.

Choices where the spec is silent (also listed by ``info``):
- Q6 (reference) keeps only the first series group (the first node folder of an HPC-ODA segment, else the
  first input) when fitting.
- ``run`` writes ``window_end`` as the row index of the window's last sample in the cleaned input (after sorting
  and de-duplication) and ``time`` as its epoch seconds (empty without a time column).
- The stream (``-``) forward-fills an empty cell from the sensor's last value (up to 3 samples, as the batch path)
  and does not split gaps: a live feed has no median interval to judge them by.
- ``demo`` without ``out_dir`` works in a temporary folder that is removed at the end (pass -o to keep the files).
- ``benchmark`` uses W = 60 and step 1 (every sample ends a window), float32 on CUDA and float64 on CPU.
- An infinite cell in an input is refused (exit 2, row and column named); model files are strict JSON, so a
  model with a non-finite min/max is never written.
- ``--convention scripts`` (default) follows the authors' Python scripts, ``--convention dcdb`` DCDB's Wintermute
  CS operator (derivative over the W-1 differences inside the window, walk by the mean off-diagonal correlation,
  eps 0, float32 block bounds); the model file records it and ``run`` follows it. An imported DCDB model keeps
  the convention given to ``fit`` (default scripts): add --convention dcdb for DCDB's signatures.
- A model fitted on .npy has sensors s0, s1, ...; ``run --by-position`` maps an input's selected sensor columns
  to the model's sensors in order (a CSV with other names); without it a missing sensor is exit 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from wisecli.cli.config import one_of
from wisecli.cli.errors import InputError

METHOD = "smooth"
_READ = {"layout": "auto", "gaps": "split"}
DEFAULT_METHODS = "cs:5,cs:10,cs:20,cs:40,tuncer,bodik,lan,stats"
DEFAULTS: dict[str, dict[str, Any]] = {
    # eps: 1e-4 in the scripts convention, 0 in DCDB's, unless given
    "fit": {"blocks": 20, "window": 60, "step": 10, "eps": 1e-4, "scale": 1.0, "quirks": "fixed",
            "convention": "scripts", **_READ, "device": "cpu"},
    # window, step, blocks and scale: None = the model's
    "run": {"window": None, "step": None, "blocks": None, "scale": None, "format": "csv", "precision": "auto",
            **_READ, "device": "auto"},
    # window/step: 20/5 with --dataset basicmotions, 30/5 with --dataset synthetic, unless given
    "evaluate": {"task": "classify", "methods": DEFAULT_METHODS, "window": 60, "step": 10, "cv": "blocked",
                 "folds": 5, "repeats": 5, "mixed_windows": "last", "quirks": "fixed", "convention": "scripts",
                 **_READ, "seed": 0},
    "record": {"interval": 1.0, "repeat": 1, "rest": 0.0, "disk_mb": 256},
    # samples: the synthetic series' length (0: 4 000 with --quick, else 20 000); folds: its blocked CV folds
    "demo": {"source": "proc", "device": "auto", "seed": 0, "samples": 0, "folds": 5},
    "info": {},
    "benchmark": {"sensors": [128, 1024, 4096], "windows": [200000, 100000, 20000], "blocks": [20, 40, 40],
                  "window": 60, "step": 1, "device": "auto", "seed": 0},
}
SUITE_DEMO = {"source": "synthetic"}
"""What `wise demo` (every method's quick demo on embedded data, seconds each) passes to `demo`: the embedded
synthetic task rather than a 50-second recording of this machine, which stays `wise smooth demo`'s default."""
_DATASET_WINDOWS = {"basicmotions": (20, 5), "synthetic": (30, 5)}


def _resolve(verb: str, defaults: dict | None = None, **flags):
    from wisecli.cli.config import resolve

    return resolve(DEFAULTS[verb] if defaults is None else defaults, flags=flags)


def _check_params(**values) -> None:
    for name, v in values.items():
        if v is not None and v < 1:
            raise InputError(f"--{name} must be at least 1, got {v}", hint="e.g. --window 60 --step 10 --blocks 20")


def _check_positive(**values) -> None:
    import math

    for name, v in values.items():
        if v is not None and not (math.isfinite(v) and v > 0):
            raise InputError(f"--{name} must be a positive finite number, got {v}", hint=f"e.g. --{name} 1")


def _read_options(cfg, *, time_col=None, sensors=None, exclude=None, label_col=None, target_col=None,
                  sort_time=False, dedupe=None, align_tolerance=None):
    from .data import ReadOptions

    return ReadOptions(time_col=time_col, sensors=list(sensors or []), exclude=list(exclude or []),
                       label_col=label_col, target_col=target_col, sort_time=bool(sort_time), dedupe=dedupe,
                       gaps=cfg["gaps"], align_tolerance=align_tolerance, layout=cfg["layout"])


def _expand(inputs) -> list[Path]:
    from wisecli.cli.inputs import expand_inputs

    return expand_inputs([str(p) for p in inputs], extensions=(".csv", ".tsv", ".npy"),
                         dir_is_item=lambda p: (p / "sensors").is_dir())


def _have_aeon() -> bool:
    from . import peers

    return peers.have_aeon()


# ------------------------------------------------------------------------------------------------------ fit
def fit(inputs=None, output: Path | str | None = None, *, blocks: int | None = None, window: int | None = None,
        step: int | None = None, eps: float | None = None, scale: float | None = None, quirks: str | None = None,
        convention: str | None = None, export_dcdb: Path | None = None, import_dcdb: Path | None = None, time_col: str | None = None,
        sensors: list[str] | None = None, exclude: list[str] | None = None, label_col: str | None = None,
        layout: str | None = None, sort_time: bool = False, dedupe: str | None = None, gaps: str | None = None,
        align_tolerance: float | None = None, device=None, overwrite: bool = False, warn=None) -> dict:
    """Learn the sensor order π (correlation walk) and per-sensor min/max over all ``inputs`` (files, folders,
    globs, @lists) and write ``output`` (model.json, ``wise-smooth/1``); with ``import_dcdb`` convert a DCDB model
    instead (sensor names from ``inputs`` when given). Returns the summary: ``sensors, rows, constant_sensors,
    order_head, all_nan_sensors, seconds, model`` (+ ``dcdb``).

    Defaults (``DEFAULTS["fit"]``): blocks 20, window 60, step 10, eps 1e-4 (0 with convention dcdb), scale 1.0,
    quirks fixed, convention scripts, layout auto, gaps split, device cpu (CUDA only speeds up the walk from
    S = 1 024 sensors)."""
    from wisecli.runtime.device import as_device

    from . import algorithm as A
    from . import train

    paths = _expand(inputs) if inputs else []
    if import_dcdb is not None and not Path(import_dcdb).is_file():
        raise InputError(f"{import_dcdb}: no such DCDB model file", hint="give the JSON file DCDB exported")
    if import_dcdb is None and not paths:
        raise InputError("no inputs to fit on", hint="give files (a lone '-' is for `run`)")
    if output is None:
        raise InputError("no output model file", hint="give -o model.json")
    cfg = _resolve("fit", blocks=blocks, window=window, step=step, eps=eps, scale=scale, quirks=quirks,
                   convention=convention, layout=layout, gaps=gaps,
                   device=device if not hasattr(device, "type") else str(device))
    v = dict(cfg.values)
    _check_params(blocks=v["blocks"], window=v["window"], step=v["step"])
    _check_positive(eps=v["eps"], scale=v["scale"])
    A.Quirks.parse(v["quirks"])
    one_of("--convention", v["convention"], A.CONVENTIONS)
    if v["convention"] == "dcdb" and cfg.sources["eps"] == "default":
        v["eps"] = 0.0  # DCDB normalises by max − min
    opts = _read_options(v, time_col=time_col, sensors=sensors, exclude=exclude, label_col=label_col,
                         sort_time=sort_time, dedupe=dedupe, align_tolerance=align_tolerance)
    dev = as_device(device if hasattr(device, "type") else v["device"])
    return train.fit(paths, Path(output), opts=opts, blocks=v["blocks"], window=v["window"], step=v["step"],
                     eps=v["eps"], scale=v["scale"], quirks=v["quirks"], convention=v["convention"], device=str(dev),
                     export_dcdb=export_dcdb,
                     import_dcdb=import_dcdb, overwrite=overwrite, warn=warn)


# ------------------------------------------------------------------------------------------------------ run
def run(model: Path | str, inputs, out_dir: Path | str | None = None, *, window: int | None = None,
        step: int | None = None, blocks: int | None = None, mode: str = "split", scale: float | None = None,
        format: str | None = None, preview: bool = False, precision: str | None = None,
        time_col: str | None = None, sensors: list[str] | None = None, exclude: list[str] | None = None,
        label_col: str | None = None, layout: str | None = None, sort_time: bool = False,
        dedupe: str | None = None, gaps: str | None = None, align_tolerance: float | None = None, device=None,
        skip_existing: bool = False, overwrite: bool = False, fail_fast: bool = False, shard: str | None = None,
        by_position: bool = False, stdin=None, stdout=None, sink=None) -> list[dict]:
    """CS signatures of every window of every input with the model at ``model`` (model.json): one
    ``{stem}.sig.csv`` (``window_end, time, features``) or ``{stem}.sig.npy`` per input in ``out_dir`` (default
    the current folder), ``{stem}.sig.png`` with ``preview``, and ``run.json``. ``mode``: ``split`` (avg then der),
    ``complex`` (avg + i·der) or ``real`` (avg only).

    ``inputs == ["-"]`` streams: a wide CSV on ``stdin`` (default ``sys.stdin``), one flushed line per signature on
    ``stdout`` (default ``sys.stdout``); nothing is written to files. Returns one record per input (status ``ok``,
    ``skipped`` or ``error``; the stream: one record with ``samples``); the caller exits 3 on errors
    (``Sink.finish``). ``sink`` (a ``cli.output.Sink``) gets the warnings and ``--jsonl`` records.

    Defaults (``DEFAULTS["run"]``): window/step/blocks/scale from the model, format csv, precision auto (fp32 on
    CUDA, fp64 on CPU), layout auto, gaps split, device auto. Sensors match the model by name (a missing one is
    exit 2); ``by_position`` maps the input's selected sensor columns to the model's sensors in order (.npy
    inputs always match by position). The signatures follow the model's convention (scripts or dcdb)."""
    from dataclasses import replace

    from wisecli.cli.common import shared
    from wisecli.cli.inputs import apply_shard, parse_shard
    from wisecli.cli.output import Sink

    from . import algorithm as A
    from . import predict as P

    sink = sink or Sink()
    inputs = [str(p) for p in ([inputs] if isinstance(inputs, (str, Path)) else inputs or [])]
    streaming = inputs == ["-"]
    items = [] if streaming else _expand(inputs)
    one_of("--mode", mode, ("split", "complex", "real"))
    m = A.load(Path(model))
    defaults = {**DEFAULTS["run"], "window": m.window, "step": m.step, "blocks": m.blocks, "scale": m.scale}
    cfg = _resolve("run", defaults, window=window, step=step, blocks=blocks, scale=scale, format=format,
                   precision=precision, layout=layout, gaps=gaps,
                   device=device if not hasattr(device, "type") else str(device))
    v = cfg.values
    _check_params(window=v["window"], step=v["step"], blocks=v["blocks"])
    _check_positive(scale=v["scale"])
    one_of("--format", v["format"], ("csv", "npy"))
    one_of("--precision", v["precision"], ("auto", "fp32", "fp64"))
    opts = _read_options(v, time_col=time_col, sensors=sensors, exclude=exclude, label_col=label_col,
                         sort_time=sort_time, dedupe=dedupe, align_tolerance=align_tolerance)
    kw = dict(window=v["window"], step=v["step"], blocks=v["blocks"], mode=mode, scale=v["scale"])
    if streaming:
        out = stdout or sys.stdout

        def write(text: str) -> None:
            out.write(text)
            out.flush()

        n = P.stream(m, stdin or sys.stdin, write, opts=replace(opts, quirks=m.quirks), warn=sink.warn,
                     by_position=by_position, **kw)
        return [{"input": "-", "status": "ok", "samples": n, "output": "-"}]
    from wisecli.runtime.device import as_device

    dev = as_device(device if hasattr(device, "type") else v["device"])
    items = apply_shard(items, parse_shard(shard))
    return P.run_files(m, items, Path(out_dir) if out_dir else Path("."), opts=opts, config=cfg, model_path=model,
                       precision=v["precision"], device=dev, fmt=v["format"], preview=preview,
                       skip_existing=skip_existing, overwrite=overwrite, fail_fast=fail_fast,
                       debug=bool(shared("debug", False)), sink=sink, by_position=by_position, **kw)


# ------------------------------------------------------------------------------------------------- evaluate
def evaluate(inputs=None, *, label_col: str | None = None, labels: Path | None = None,
             target_col: str | None = None, task: str | None = None, methods: str | None = None,
             window: int | None = None, step: int | None = None, cv: str | None = None, folds: int | None = None,
             repeats: int | None = None, test=None, info_loss: bool = False, renormalize: bool = False,
             dataset: str | None = None, mixed_windows: str | None = None, quirks: str | None = None,
             convention: str | None = None, time_col: str | None = None, sensors: list[str] | None = None, exclude: list[str] | None = None,
             layout: str | None = None, sort_time: bool = False, dedupe: str | None = None, gaps: str | None = None,
             align_tolerance: float | None = None, seed: int | None = None, warn=None, progress=None) -> dict:
    """Classify (weighted F1) or regress (NRMSE) from CS signatures and the baselines with leakage-free CV,
    on labelled ``inputs`` or an embedded ``dataset`` (basicmotions | synthetic). Returns ``{"results": [one
    record per method: method, signature_len, f1_weighted, f1_ci95, f1_per_class (or nrmse, nrmse_ci95),
    us_per_signature, fit_seconds, windows, cv, …], "window": W, "step": step}``.

    Defaults (``DEFAULTS["evaluate"]``): task classify, methods cs:5,cs:10,cs:20,cs:40,tuncer,bodik,lan,stats,
    window 60 and step 10 (20/5 for basicmotions, 30/5 for synthetic), cv blocked, folds 5, repeats 5,
    mixed_windows last, quirks fixed, convention scripts, layout auto, gaps split, seed 0."""
    from dataclasses import replace

    from . import algorithm as A
    from . import data as D
    from . import metrics as E

    paths = _expand(inputs) if inputs else []
    tpaths = _expand(test) if test else None
    if labels is not None and not Path(labels).is_file():
        raise InputError(f"{labels}: no such labels file", hint="one label per line, or a .npy array")
    cfg = _resolve("evaluate", task=task, methods=methods, window=window, step=step, cv=cv, folds=folds,
                   repeats=repeats, mixed_windows=mixed_windows, quirks=quirks, convention=convention, layout=layout,
                   gaps=gaps, seed=seed)
    v = dict(cfg.values)
    if dataset is not None:
        one_of("--dataset", dataset, tuple(_DATASET_WINDOWS))
        for key, val in zip(("window", "step"), _DATASET_WINDOWS[dataset]):
            if cfg.sources[key] == "default":
                v[key] = val
    _check_params(window=v["window"], step=v["step"], repeats=v["repeats"])
    one_of("--task", v["task"], ("classify", "regress"))
    one_of("--cv", v["cv"], ("blocked", "shuffled", "group", "split"))
    one_of("--mixed-windows", v["mixed_windows"], ("last", "drop"))
    q = A.Quirks.parse(v["quirks"])
    one_of("--convention", v["convention"], A.CONVENTIONS)
    E.parse_methods(v["methods"])  # unknown methods and missing extras before any reading
    opts = _read_options(v, time_col=time_col, sensors=sensors, exclude=exclude, label_col=label_col,
                         target_col=target_col, sort_time=sort_time, dedupe=dedupe, align_tolerance=align_tolerance)
    cv_ = v["cv"]
    test_series = None
    if dataset == "basicmotions":
        if not _have_aeon():
            raise InputError("the basicmotions data set needs aeon", hint="pip install 'wisecli[data]'")
        from .synthetic import basic_motions

        train, test_series = basic_motions()
        cv_ = "split" if cv_ in ("blocked", "split") else cv_
        if cv_ != "split":
            train, test_series = train + test_series, None
    elif dataset == "synthetic":
        from .synthetic import synthetic

        train = [synthetic()]
    else:
        if not paths:
            raise InputError("no inputs", hint="give files, or --dataset basicmotions|synthetic")
        if v["task"] == "classify" and not (label_col or labels):
            raise InputError("no labels", hint="give --label-col NAME or --labels FILE")
        if v["task"] == "regress" and not target_col:
            raise InputError("no regression target", hint="give --target-col NAME")
        ro = replace(opts, quirks=q)
        train = D.read_all(paths, ro, warn)
        if labels is not None:
            train = D.attach_labels(train, Path(labels))
        if tpaths:
            test_series = D.read_all(tpaths, ro, warn)
    recs = E.evaluate(train, methods=v["methods"], window=v["window"], step=v["step"], cv=cv_, folds=v["folds"],
                      repeats=v["repeats"], seed=v["seed"], task=v["task"], test=test_series, info=info_loss,
                      renormalize=renormalize, quirks=q, mixed=v["mixed_windows"], progress=progress,
                      convention=v["convention"])
    return {"results": recs, "window": v["window"], "step": v["step"]}


# --------------------------------------------------------------------------------------------------- record
def record(output: Path | str | None = None, *, interval: float | None = None, duration: float | None = None,
           samples: int | None = None, workloads: list[str] | None = None, repeat: int | None = None,
           rest: float | None = None, per_cpu: bool = False, include_virtual: bool = False,
           scratch: Path | None = None, mem_mb: int | None = None, disk_mb: int | None = None,
           workers: int | None = None, overwrite: bool = False, append: bool = False, warn=None, info=None) -> dict:
    """Sample this machine's ``/proc`` into the wide CSV ``output`` (``time`` in epoch seconds, the sensors, and
    ``label`` under ``workloads`` such as ``idle:10``, ``cpu:10``, ``memory``, ``disk``, ``network``,
    ``NAME=cmd:COMMAND``). Returns ``samples, sensors, interval, late_samples, labels, output``. Ctrl-C keeps the
    samples taken.

    Defaults (``DEFAULTS["record"]``): interval 1.0 s, repeat 1, rest 0 s, disk_mb 256; mem_mb min(512,
    MemAvailable/4); workers all cores; a workload without seconds runs ``duration`` (10 s when not given)."""
    from . import record as R

    if output is None:
        raise InputError("no output file", hint="give -o telemetry.csv")
    v = _resolve("record", interval=interval, repeat=repeat, rest=rest, disk_mb=disk_mb).values
    return R.record(Path(output), interval=v["interval"], duration=duration, samples=samples,
                    workloads=list(workloads or []), repeat=v["repeat"], rest=v["rest"], per_cpu=per_cpu,
                    include_virtual=include_virtual, scratch=scratch, mem_mb=mem_mb, disk_mb=v["disk_mb"],
                    workers=workers, overwrite=overwrite, append=append, warn=warn, info=info)


# ----------------------------------------------------------------------------------------------------- demo
def demo(quick: bool = False, device=None, *, source: str | None = None, out_dir: Path | str | None = None,
         seed: int | None = None, samples: int | None = None, folds: int | None = None, warn=None, info=None):
    """End to end: record this machine (``proc``) or take embedded data (``synthetic``, ``basicmotions``), fit,
    signatures, the signature PNG and a CS-versus-baselines table. Returns a ``runtime.results.DemoResult``
    (gates: the artefacts, the time limits of the quick demos, and the accuracy claims where the spec states them;
    details: source, results, out_dir, outputs, background_load for proc). Without ``out_dir`` it works in a
    temporary folder removed at the end.

    Defaults (``DEFAULTS["demo"]``): source proc (synthetic where /proc is unreadable), device auto, seed 0,
    samples 0 and folds 5 (the synthetic source's length and blocked CV folds; ``--set samples=N --set folds=K``).
    ``quick``: 0.8 s per /proc segment at 0.08 s (else 10 s at 0.25 s), T = 4 000 synthetic samples (else 20 000)."""
    from wisecli.runtime.device import as_device

    from .demo import run_demo

    v = _resolve("demo", source=source, seed=seed, samples=samples, folds=folds,
                 device=device if not hasattr(device, "type") else str(device)).values
    if v["samples"] != 0 and v["samples"] < 300:
        raise InputError(f"samples must be 0 (the mode's size) or at least 300, got {v['samples']}",
                         hint="e.g. --set samples=1000")
    if v["folds"] < 2:
        raise InputError(f"folds must be at least 2, got {v['folds']}", hint="e.g. --set folds=3")
    one_of("--source", v["source"], ("proc", "synthetic", "basicmotions"))
    if v["source"] == "basicmotions" and not _have_aeon():
        raise InputError("the basicmotions data set needs aeon", hint="pip install 'wisecli[data]'")
    dev = as_device(device if hasattr(device, "type") else v["device"])
    return run_demo(quick=quick, device=dev, source=v["source"], out_dir=Path(out_dir) if out_dir else None,
                    seed=v["seed"], samples=v["samples"], folds=v["folds"], warn=warn, info=info)


# ---------------------------------------------------------------------------------------------------- info
def info() -> dict:
    """Defaults, quirk switches, inputs and outputs, baselines, devices and the choices where the spec is silent."""
    import torch

    from . import algorithm as A

    return {
        "method": METHOD,
        "paper": "Netti et al., Correlation-wise Smoothing, IPDPS 2021, DOI 10.1109/IPDPS49936.2021.00010",
        "defaults": DEFAULTS,
        "quirks": {q: A.QUIRK_TEXT[q] for q in A.ALL_QUIRKS},
        "conventions": dict(A.CONVENTION_TEXT),
        "inputs": ["wide CSV/TSV (time column + numeric sensors)", "HPC-ODA folder (--layout hpcoda)",
                   ".npy time x sensors or runs x time x sensors", "- (a wide CSV on stdin, streamed)"],
        "outputs": ["{stem}.sig.csv (window_end,time,features)", "{stem}.sig.npy", "{stem}.sig.png (--preview)",
                    "model.json (wise-smooth/1)", "DCDB model (--export-dcdb)", "run.json"],
        "baselines": ["tuncer", "bodik", "lan", "stats"] + (["minirocket"] if _have_aeon() else []),
        "devices": ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())],
        "choices": [ln.strip("- ").strip() for ln in (__doc__ or "").split("silent")[1].splitlines()[1:] if ln.strip()],
    }


# ---------------------------------------------------------------------------------------------- benchmark
def benchmark(device=None, quick: bool = False, *, sensors: list[int] | str | None = None,
              windows: list[int] | str | None = None, blocks: list[int] | str | None = None,
              window: int | None = None, step: int | None = None, seed: int | None = None, info=None) -> list:
    """Race, in one process on one machine, the reference-form per-window loop (the peer, timed on ≤ 2 000
    windows and scaled to all), our numpy prefix-sum path and our torch path on ``device`` (spec §7), on synthetic
    data. Returns one ``runtime.results.BenchRecord`` per case (extra keys: S, windows, B, loop/numpy/device/
    device_e2e win_per_s, max_abs_err against the fp64 loop, precision, cpu, versions).

    Defaults (``DEFAULTS["benchmark"]``): sensors 128,1024,4096, windows 200000,100000,20000, blocks 20,40,40
    (``quick``: 16,64 / 20000,5000 / 20,20; given sensors alone: 20 000 windows and B = 20 each), window 60,
    step 1, device auto, seed 0."""
    from wisecli.runtime.device import as_device

    from . import bench

    cfg = _resolve("benchmark", sensors=sensors, windows=windows, blocks=blocks, window=window, step=step,
                   seed=seed, device=device if not hasattr(device, "type") else str(device))
    v, src = dict(cfg.values), cfg.sources
    if src["sensors"] == "default":
        if quick:
            for key in ("sensors", "windows", "blocks"):
                if src[key] == "default":
                    v[key] = bench.QUICK_SIZES[key]
    else:
        n = len(v["sensors"])
        v["windows"] = v["windows"] if src["windows"] != "default" else [20000] * n
        v["blocks"] = v["blocks"] if src["blocks"] != "default" else [20] * n
    _check_params(window=v["window"], step=v["step"])
    bench.check_sizes(v["sensors"], v["windows"], v["blocks"])
    dev = as_device(device if hasattr(device, "type") else v["device"])
    return bench.race_all(dev, quick=quick, sensors=v["sensors"], windows=v["windows"], blocks=v["blocks"],
                          window=v["window"], step=v["step"], seed=v["seed"], info=info)
