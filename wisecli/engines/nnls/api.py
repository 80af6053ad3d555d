"""Python API of `wise nnls`, one function per verb with the CLI's defaults (`DEFAULTS`), for matrix-wise
ℓ0-constrained sparse NNLS (Nadisic, Cohen, Vandaele, Gillis, Machine Learning; arXiv 2011.11066).

`run`, `pareto`, `evaluate`, `demo`, `info`, `benchmark`. A keyword left at None takes its value from
`DEFAULTS[verb]` through `wisecli.cli.config.resolve` (so `--config`, `--set` and `WISE_*` apply as on the command
line). The array-level functions (`compute_fronts`, `select`, `solve`, `nnls_batched`) live in `algorithm.py`,
the comparison of heuristics in `metrics.evaluate`.

Standard library only at module level: the command reads `DEFAULTS` without loading numpy or torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wisecli.cli.errors import InputError

_FRONT = {  # 0 means "automatic" for kmax (r), max_steps (4r) and enum_max_subsets (by cost: algorithm.auto_max_subsets)
    "front": "auto",
    "kmax": 0,
    "enum_max_subsets": 0,
    "bnb_time_limit": 1.0,
    "max_steps": 0,
    "normalize_atoms": True,
    "precision": "fp64",
    "ridge": 0.0,
    "nnls_solver": "bpp",
}
DEFAULTS: dict[str, dict[str, Any]] = {
    "run": {**_FRONT, "select": "auto", "dp_max_cells": 2 * 10**9, "chunk_columns": 32768, "format": "npy",
            "device": "auto", "seed": 0},
    "pareto": {**_FRONT, "chunk_columns": 32768, "device": "auto", "seed": 0},
    "evaluate": {"avg_nnz": [1.0, 2.0, 3.0, 4.0], "front": "auto", "kmax": 0, "select": "auto", "device": "auto",
                 "seed": 0},
    "demo": {"dataset": "faces", "device": "auto", "seed": 0},
    "info": {"device": "auto"},
    "benchmark": {"preset": "all", "peer_columns": 2000, "cases": ["nnls", "path", "front", "select"],
                  "device": "auto"},
}


def _settings(verb: str, given: dict[str, Any]):
    """The verb's effective settings: DEFAULTS < --config < WISE_* < --set < the arguments given (not None)."""
    from wisecli.cli.config import resolve

    cfg = resolve(DEFAULTS[verb], flags={k: v for k, v in given.items() if k in DEFAULTS[verb]})
    if cfg.values.get("seed", 0) < 0:
        raise InputError(f"--seed {cfg['seed']} is negative", hint="seeds are 0 or more")
    return cfg


def _sink(sink):
    from wisecli.cli.output import Sink

    return sink if sink is not None else Sink()


def _out_dir(out_dir) -> Path:
    out = Path(out_dir) if out_dir is not None else Path(".")
    if out.exists() and not out.is_dir():
        raise InputError(f"-o {out} is a file", hint="give a folder for the outputs")
    return out


def _device(device, cfg, sink=None):
    """A torch.device as given, else the resolved `--device` spec; which one `auto` picked is said with -v."""
    from wisecli.runtime.device import as_device, device_name

    dev = as_device(device if device is not None and not isinstance(device, str) else cfg["device"])
    if sink is not None:
        sink.debug(f"device: {device_name(dev)}")
    return dev


def _reader(key, var, cube, transpose, resize) -> dict:
    from .data import parse_resize

    return dict(key=key, var=var, cube=cube, transpose=transpose, resize=parse_resize(resize))


def run(inputs, *, dictionary: str | None = None, nnz: int | None = None, avg_nnz: float | None = None,
        fronts=None, format: str | None = None, sparse: bool = False, maps: bool = False, front: str | None = None,
        kmax: int | None = None, select: str | None = None, enum_max_subsets: int | None = None,
        bnb_time_limit: float | None = None, max_steps: int | None = None, normalize_atoms: bool | None = None,
        precision: str | None = None, ridge: float | None = None, nnls_solver: str | None = None,
        dp_max_cells: int | None = None, chunk_columns: int | None = None, key: str | None = None,
        var: str | None = None, cube: str | None = None, transpose: bool = False, resize: str | None = None,
        out_dir=None, skip_existing: bool = False, overwrite: bool = False, fail_fast: bool = False,
        shard: str | None = None, pattern: str | None = None, device=None, seed: int | None = None,
        no_progress: bool = False, debug: bool = False, sink=None) -> list[dict]:
    """Both steps on every input B (files, folders, globs, @list.txt): X (r × n) with at most q nonzeros in the
    whole matrix, q from exactly one of `nnz` or `avg_nnz` (q = avg·n). The dictionary is `dictionary` (a file,
    `nmf:R` or `spa:R`) or the one a `pareto` fronts file carries (`fronts`, one input).

    Writes into `out_dir` (default: the current folder) {stem}.X.npy (or .npz/.csv by `format`), {stem}.k.npy,
    {stem}.summary.json, with `sparse` {stem}.X.coo.npz, with `maps` one PNG per atom (cubes), and run.json.
    Returns one record per input (`status` ok, skipped or error); an ok record carries its `summary` document
    (the spec's `run --json` keys). Defaults: `DEFAULTS["run"]` (front auto, kmax r, select auto, enum-max-subsets
    by cost (the enumeration's estimated work on this device and n), bnb-time-limit 1 s, max-steps 4r, atoms
    normalised, fp64, ridge 0, bpp, format npy, device auto, seed 0). A lone failing input raises its error; several: the failures are records."""
    from .data import expand, read_dictionary

    paths = expand(inputs, pattern=pattern, shard=shard)
    loaded = None
    if fronts is not None:
        from .algorithm import load_fronts

        loaded = load_fronts(fronts)
    A = read_dictionary(dictionary) if dictionary is not None else None
    if (nnz is None) == (avg_nnz is None):
        raise InputError("give exactly one of --nnz and --avg-nnz", hint="for example --avg-nnz 2")
    if dictionary is None and fronts is None:
        raise InputError("no dictionary: give --dictionary (a file, nmf:R, spa:R) or --fronts", hint="see --help")
    if fronts is not None and len(paths) != 1:
        raise InputError("--fronts belongs to one input", hint="run one input at a time with --fronts")
    cfg = _settings("run", locals())
    reader = _reader(key, var, cube, transpose, resize)
    out = _out_dir(out_dir)
    sink = _sink(sink)
    from wisecli.runtime.batch import BatchOptions

    from . import predict

    dev = _device(device, cfg, sink)
    values = {k: v for k, v in cfg.values.items() if k not in ("device", "format")}
    options = {**values, "dictionary": dictionary if fronts is None else str(fronts)}
    return predict.run(paths, dictionary=A, nnz=nnz, avg_nnz=avg_nnz, fronts=loaded, cfg=values, reader=reader,
                       out=out, fmt=cfg["format"], sparse=sparse, maps=maps, device=dev, seed=cfg["seed"],
                       batch=BatchOptions(out, skip_existing, overwrite, fail_fast, debug), sink=sink,
                       options=options, settings=cfg, show_progress=not no_progress)


def pareto(inputs, *, dictionary: str | None = None, front: str | None = None, kmax: int | None = None,
           plot=None, with_coefficients: bool = False, resume: bool = False, chunk_columns: int | None = None,
           enum_max_subsets: int | None = None, bnb_time_limit: float | None = None, max_steps: int | None = None,
           normalize_atoms: bool | None = None, precision: str | None = None, ridge: float | None = None,
           nnls_solver: str | None = None, key: str | None = None, var: str | None = None, cube: str | None = None,
           transpose: bool = False, resize: str | None = None, out_dir=None, skip_existing: bool = False,
           overwrite: bool = False, fail_fast: bool = False, shard: str | None = None, pattern: str | None = None,
           device=None, seed: int | None = None, no_progress: bool = False, debug: bool = False,
           sink=None) -> list[dict]:
    """Step 1 only on every input: the per-column error-versus-sparsity fronts, written to `out_dir`/{stem}.fronts.npz
    (err, on_front, exact, support bitmasks, beta, A, method, options; coef with `with_coefficients`), and
    run.json. Column chunks of `chunk_columns` go to {stem}.fronts.partial.npz as they finish; `resume` continues
    from it. `plot` (one input): a PNG of 20 sampled fronts and the total error versus q.

    Returns one record per input, an ok one with its `summary` document. Defaults: `DEFAULTS["pareto"]` (as `run`,
    chunk-columns 32 768)."""
    from .data import expand, read_dictionary

    paths = expand(inputs, pattern=pattern, shard=shard)
    A = read_dictionary(dictionary) if dictionary is not None else None
    if dictionary is None:
        raise InputError("no dictionary: give --dictionary (a file, nmf:R or spa:R)", hint="see --help")
    if plot is not None and len(paths) != 1:
        raise InputError("--plot takes one input", hint="run pareto per input to plot")
    cfg = _settings("pareto", locals())
    reader = _reader(key, var, cube, transpose, resize)
    out = _out_dir(out_dir)
    sink = _sink(sink)
    from wisecli.runtime.batch import BatchOptions

    from . import predict

    dev = _device(device, cfg, sink)
    values = {k: v for k, v in cfg.values.items() if k != "device"}
    return predict.pareto(paths, dictionary=A, cfg=values, reader=reader, out=out, plot=plot,
                          with_coefficients=with_coefficients, resume=resume, device=dev, seed=cfg["seed"],
                          batch=BatchOptions(out, skip_existing, overwrite, fail_fast, debug), sink=sink,
                          show_progress=not no_progress, settings=cfg)


def evaluate(inputs=None, *, dictionary: str | None = None, dataset: str | None = None, avg_nnz=None,
             methods=None, x_true=None, plot=None, front: str | None = None, kmax: int | None = None,
             select: str | None = None, key: str | None = None, var: str | None = None, cube: str | None = None,
             transpose: bool = False, resize: str | None = None, device=None, seed: int | None = None,
             sink=None) -> list[dict]:
    """Matrix-wise (exact, union) against column-wise (exact, NNOMP, homotopy) and global (top-q, one λ)
    heuristics and the dense NNLS floor, on one input B with `dictionary` or an embedded `dataset` (faces, digits,
    hsi), at every budget of `avg_nnz` (a list or "1,2,3,4"). `methods` (a list or comma-separated) picks some;
    `x_true` (r × n) adds support F1 and abundance RMSE; `plot` writes error versus budget as a PNG.

    Returns one record per (method, budget): dataset, method, avg_nnz, q, nnz, rel_error_pct, seconds. Each is
    also handed to `sink.record` as it finishes. Defaults: `DEFAULTS["evaluate"]` (avg_nnz 1,2,3,4; front auto;
    select auto, which is the exact DP here; device auto; seed 0)."""
    from .algorithm import EVAL_METHODS
    from .data import expand, load_matrix, read_dictionary

    inputs = list(inputs or [])
    paths = expand(inputs) if inputs else []
    truth = load_matrix(x_true, what="--x-true").B if x_true is not None else None
    A = read_dictionary(dictionary) if dictionary is not None else None
    if (dataset is None) == (not inputs):
        raise InputError("give one input B (with --dictionary) or --dataset", hint="for example --dataset faces")
    if len(paths) > 1:
        raise InputError("evaluate takes one input", hint="run it per input")
    if paths and dictionary is None:
        raise InputError("no dictionary: give --dictionary (a file, nmf:R or spa:R)", hint="see --help")
    if isinstance(avg_nnz, (list, tuple)):
        avg_nnz = ",".join(str(a) for a in avg_nnz)
    cfg = _settings("evaluate", locals())
    budgets = [float(a) for a in cfg["avg_nnz"]]
    if not budgets or not all(0 <= a < float("inf") for a in budgets):
        raise InputError(f"--avg-nnz {avg_nnz}: give finite budgets ≥ 0", hint="for example --avg-nnz 1,2,3,4")
    mlist = [m.strip() for m in methods.split(",") if m.strip()] if isinstance(methods, str) else methods
    for m in mlist or []:
        if m not in EVAL_METHODS:
            raise InputError(f"unknown method '{m}'", hint=f"choose from {', '.join(EVAL_METHODS)}")
    reader = _reader(key, var, cube, transpose, resize)
    sink = _sink(sink)
    from . import predict

    dev = _device(device, cfg, sink)
    return predict.evaluate(path=paths[0] if paths else None, dataset=dataset, dictionary=A, budgets=budgets,
                            methods=mlist or None, x_true=truth, cfg=cfg.values, reader=reader, plot=plot,
                            device=dev, seed=cfg["seed"], sink=sink)


def demo(quick: bool = False, device=None, dataset: str | None = None, out_dir=None, seed: int | None = None):
    """Matrix-wise against column-wise exact and global top-q on real data (`dataset`: faces, the lfw crops, by
    default; digits; hsi) at q/n ∈ {1, 2, 3, 4} (`quick`: 2 only, seconds); with `out_dir` a reconstruction PNG.

    Returns a `runtime.results.DemoResult` whose gates are the spec's §9 claims at the budgets covered (faces:
    ≥ 0.5 pp better than column-wise exact and global top-q at q/n = 2 and 3; digits: 0.5 pp at 3; hsi: 0.3 pp
    over column-wise, ≤ global top-q, support F1 ≥ 0.85 at 2) and matrix-wise never worse at any integral budget.
    Defaults: `DEFAULTS["demo"]` (faces, device auto, seed 0). Writes nothing outside `out_dir`."""
    cfg = _settings("demo", locals())
    from . import predict

    if cfg["dataset"] not in ("faces", "digits", "hsi"):
        raise InputError(f"unknown --dataset '{cfg['dataset']}'", hint="faces, digits or hsi")
    dev = _device(device, cfg)
    return predict.demo(quick=quick, device=dev, dataset=cfg["dataset"], out_dir=out_dir, seed=cfg["seed"])


def info(device=None) -> dict:
    """Methods, formats, limits, defaults (every verb's `DEFAULTS`, plus the run defaults flat under `defaults`)
    and the device (`DEFAULTS["info"]`: auto)."""
    cfg = _settings("info", locals())
    from wisecli.runtime.device import device_name

    from . import algorithm as alg

    dev = _device(device, cfg)
    return {
        "method": "nnls",
        "paper": "Nadisic, Cohen, Vandaele, Gillis: Matrix-wise l0-constrained sparse NNLS (arXiv 2011.11066)",
        "fronts": list(alg.FRONT_METHODS), "select": list(alg.SELECT_METHODS),
        "evaluate_methods": list(alg.EVAL_METHODS), "nnls_solvers": ["bpp", "lh"],
        "inputs": [".npy", ".npz", ".csv", ".mat (v4-v7.2)", "image folder", "3-D cubes"],
        "dictionaries": ["PATH", "nmf:R", "spa:R"],
        "outputs": {"run": ["{stem}.X.npy", "{stem}.k.npy", "{stem}.summary.json", "run.json"],
                    "pareto": ["{stem}.fronts.npz", "{stem}.fronts.partial.npz (while running)"]},
        "limits": {"enum_max_r": alg.ENUM_MAX_R, "bnb_auto_max_r": 24, "support_bitmask_r": 64,
                   "dp_back_pointer_max_r": 255},
        "defaults": {**DEFAULTS["run"], "enum_max_subsets": "0: by cost, the most subsets whose enumeration fits the work budget "
                     f"{alg.ENUM_WORK_BUDGET} (algorithm.enum_work units) over the input's columns", "kmax": "r", "max_steps": "4r"},
        "verb_defaults": DEFAULTS,
        "device": device_name(dev),
    }


def benchmark(device=None, quick: bool = False, preset: str | None = None, n: int | None = None,
              peer_columns: int | None = None, cases=None) -> list:
    """Race the spec §7 peers (scipy nnls loop, sklearn lars_path, numpy brute force, exact DP) with
    `runtime.bench.race`: one `runtime.results.BenchRecord` per case, with m, r, n, columns per second,
    max_rel_diff, cpu, threads and versions. `quick` is the small preset (seconds on CPU); `n` overrides the
    columns; `cases` (a list or comma-separated) picks some of nnls, path, front, select. Defaults:
    `DEFAULTS["benchmark"]` (preset all, peer_columns 2000, every case, device auto)."""
    if isinstance(cases, (list, tuple)):
        cases = ",".join(cases)
    cfg = _settings("benchmark", locals())
    from .bench import run_benchmark

    dev = _device(device, cfg)
    return run_benchmark(dev, quick=quick, preset=cfg["preset"], n=n, peer_columns=cfg["peer_columns"],
                         cases=tuple(cfg["cases"]))
