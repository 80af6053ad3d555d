"""The Python API of `wise segment-airway`: one function per verb (`phantom`, `train`, `predict`, `evaluate`,
`demo`, `info`, `benchmark`) with the command's defaults, and the `DEFAULTS` table they resolve through
`cli.config.resolve` (command line > `WISE_*` > `--set` > `--config` > these). Standard library and `wisecli.cli`
only at the top: the heavy modules load inside the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wisecli.cli.config import resolve
from wisecli.cli.errors import InputError

METHOD = "segment-airway"
ARCH = "wingsnet"
#: issue 13 point 7: on the CPU an --overlap left at its default becomes this (said on stderr); the GPU keeps 0.5
CPU_OVERLAP = 0.25

DEFAULTS: dict[str, dict[str, Any]] = {
    "phantom": {"n": 4, "preset": "tiny", "noise_hu": 20.0, "layout": "folder", "fmt": "nii.gz", "emphysema": 0.0,
                "nodules": 0, "seed": 0},
    "predict": {"roi": 128, "overlap": 0.5, "blend": "gaussian", "sw_batch": 4, "tta": False, "threshold": 0.5,
                "connectivity": 6, "fill_holes": True, "crop": True, "tree": True, "probabilities": False,
                "branches": False, "preview": False, "fmt": "nii.gz", "hu_offset": 0.0, "hu_check": True,
                "compile": "auto"},
    "evaluate": {"lcc": True, "connectivity": 6, "bd_threshold": 0.8, "length_mm": False},
    "train": {
        "schedule.stage": "both",
        "schedule.epochs1": 100,
        "schedule.epochs2": 30,
        "schedule.alpha1": 0.1,
        "schedule.alpha2": 0.2,
        "schedule.refresh1": 20,
        "schedule.refresh2": 10,
        "schedule.val_every": 5,
        "optim.name": "sgd",
        "optim.lr": 0.0,          # 0 = the optimizer's default (SGD 0.01, AdamW 1e-3)
        "optim.momentum": 0.9,
        "optim.weight_decay": 1e-4,
        "data.batch_size": 4,
        "data.patches_per_case": 16,
        "data.patch": 160,
        "data.crop": 128,
        "data.workers": 2,
        "data.val_fraction": 0.0,
        "data.binarise1": 0.7,
        "data.binarise2": 0.9,
        "loss.name": "gul",
        "loss.enc_weight": 1.0,
        "loss.reduce": "batch",
        "loss.dist_mode": "skeleton",
        "model.width": 1.0,
        "model.hu_windows": "-1000:400",
        "val.roi": 128,
        "val.sw_batch": 4,
        "seed": 0,
    },
    "demo": {"seed": 0},
    "info": {},
    "benchmark": {"preset": "ct", "repeats": 3},
}
TRAIN_FLAGS = {"stage": "schedule.stage", "epochs1": "schedule.epochs1", "epochs2": "schedule.epochs2",
               "batch_size": "data.batch_size", "patches_per_case": "data.patches_per_case",
               "optimizer": "optim.name", "lr": "optim.lr", "workers": "data.workers",
               "val_fraction": "data.val_fraction"}
"""`train` keyword (and CLI option) -> its dotted setting in DEFAULTS["train"]."""


def _sink(sink):
    if sink is not None:
        return sink
    from wisecli.cli.output import Sink

    return Sink(quiet=True)


def phantom(out_dir: Path | str | None = None, n: int | None = None, *, preset: str | None = None,
            seed: int | None = None, size=None, spacing=None, max_generation: int | None = None,
            min_diameter_mm: float | None = None, noise_hu: float | None = None, vessels: bool = True,
            layout: str | None = None, fmt: str | None = None, overwrite: bool = False, from_mask=None,
            emphysema: float | None = None, nodules: int | None = None) -> dict:
    """Write `n` chest-CT phantoms with airway labels, trees and a manifest into `out_dir`; returns
    {out_dir, n, format, layout, cases (manifest rows), seconds, ...}.

    Defaults (DEFAULTS["phantom"]): n 4, preset tiny, noise_hu 20, layout folder, fmt nii.gz, emphysema 0,
    nodules 0, seed 0; `size`/`spacing`/`max_generation`/`min_diameter_mm` come from the preset. With
    `from_mask` the phantoms are built around that airway mask and keep its geometry, so `preset`, `size`,
    `spacing`, `max_generation` and `min_diameter_mm` are refused rather than ignored. A non-empty `out_dir`
    is refused unless `overwrite` (which empties it)."""
    from .synthetic import write_phantom_set

    if from_mask is not None and not Path(from_mask).exists():
        raise InputError(f"--from-mask not found: {from_mask}", hint="give an airway label volume or DICOM folder")
    if out_dir is None:
        raise InputError("no output folder given", hint="pass -o DIR")
    given_preset = preset
    cfg = resolve(DEFAULTS["phantom"], flags=dict(n=n, preset=preset, seed=seed, noise_hu=noise_hu, layout=layout,
                                                  fmt=fmt, emphysema=emphysema, nodules=nodules)).values
    if cfg["n"] < 1 or cfg["nodules"] < 0 or cfg["noise_hu"] < 0:
        raise InputError("-n must be at least 1, --nodules and --noise-hu not negative", hint="for example -n 4")
    return write_phantom_set(out_dir, cfg["n"], preset=given_preset if from_mask is not None else cfg["preset"],
                             seed=cfg["seed"], size=size, spacing=spacing, max_generation=max_generation,
                             min_diameter_mm=min_diameter_mm, noise_hu=cfg["noise_hu"], vessels=vessels,
                             layout=cfg["layout"], fmt=cfg["fmt"], overwrite=overwrite, from_mask=from_mask,
                             emphysema=cfg["emphysema"], nodules=cfg["nodules"])


def predict(inputs: list, out_dir: Path | str | None = None, weights: Path | str | None = None, *,
            series: str | None = None, pattern: str | None = None, shard: str | None = None, device="auto",
            skip_existing: bool = False, overwrite: bool = False, fail_fast: bool = False, amp: bool = True,
            opts=None, sink=None, debug: bool | None = None, **options: Any) -> list[dict]:
    """Segment the airways of every input (CT files, DICOM series folders, globs, @list.txt, @-) with the
    WingsNet checkpoint `weights`, writing `{stem}_airway.<fmt>` (the input's exact geometry), the tree JSON and
    the optional `_prob`, `_branches`, `_preview.png` into `out_dir`, plus `run.json`. Returns one record per
    input (status ok, skipped or error); a lone input's error is raised.

    `options` are the settings of DEFAULTS["predict"]: roi 128, overlap 0.5, blend gaussian, sw_batch 4, tta
    False, threshold 0.5, connectivity 6, fill_holes/crop/tree True, probabilities/branches/preview False, fmt
    nii.gz, hu_offset 0, hu_check True, compile auto; amp True (bf16 on CUDA); on the CPU an sw_batch left at its
    default becomes 1 and an overlap left at its default becomes `CPU_OVERLAP` 0.25 (both said on stderr;
    issue 13 point 7: 48 windows instead of 144 on a 512×512×388 CT's lung box, ≈ 5.3 instead of ≈ 16 min on 2
    cores; `overlap=0.5` restores the GPU's default). `opts` (a `predict.PredictOptions`) replaces them all, as given. `series` picks one DICOM series (SeriesInstanceUID) where a folder holds several; `shard` I/N."""
    from wisecli.cli.common import shared
    from wisecli.cli.inputs import apply_shard, expand_inputs, parse_shard
    from wisecli.runtime.device import as_device, device_name
    from wisecli.runtime.runrecord import RunRecord

    from .data import VOLUME_EXT, is_series_folder
    from .predict import PredictOptions, check_weights, run_predict

    items = expand_inputs([str(i) for i in inputs], pattern=pattern, extensions=VOLUME_EXT,
                          dir_is_item=is_series_folder)
    if out_dir is None:
        raise InputError("no output folder given", hint="pass -o DIR")
    if weights is None:
        raise InputError("--weights is required (no weights ship with wise)",
                         hint="train one: wise segment-airway train DATA -o RUN, then --weights RUN/checkpoints/best.pt")
    unknown = set(options) - set(DEFAULTS["predict"])
    if unknown:
        raise TypeError(f"predict() got unexpected keyword arguments {sorted(unknown)}")
    cpu_batch = cpu_overlap = False
    if opts is None:
        cfg = resolve(DEFAULTS["predict"], flags=options)
        opts = PredictOptions(**cfg.values, amp=amp)
        cpu_batch = cfg.sources.get("sw_batch") == "default"
        cpu_overlap = cfg.sources.get("overlap") == "default"
    opts.validate()
    items = apply_shard(items, parse_shard(shard))
    checkpoint = check_weights(weights)  # loaded once, before the device is chosen
    sink = _sink(sink)
    dev = as_device(device, sink=sink)
    if cpu_batch and dev.type == "cpu" and opts.sw_batch != 1:
        opts.sw_batch = 1  # spec §7 "CPU: fp32, sw batch 1": same output, less CPU and a quarter of the memory
        sink.info("predicting on the CPU: one window per forward pass (--sw-batch 1; set --sw-batch to change)")
    if cpu_overlap and dev.type == "cpu" and opts.overlap != CPU_OVERLAP:
        opts.overlap = CPU_OVERLAP  # issue 13 point 7: a third of the windows (48 instead of 144 on a 512² CT)
        sink.info(f"predicting on the CPU: window overlap {CPU_OVERLAP:g} (a third of the windows of the GPU's "
                  f"{DEFAULTS['predict']['overlap']:g}; the mask can differ slightly, --overlap "
                  f"{DEFAULTS['predict']['overlap']:g} restores it)")
    rr = RunRecord("segment-airway predict", config=dict(opts.__dict__, weights=str(weights), series=series),
                   device=device_name(dev), inputs=items)
    return run_predict(items, out_dir, weights, opts, dev, sink=sink, series=series, skip_existing=skip_existing,
                       overwrite=overwrite, fail_fast=fail_fast,
                       debug=bool(shared("debug") if debug is None else debug), run_record=rr, checkpoint=checkpoint)


def evaluate(preds: list | None = None, ref: Path | str | None = None, *, pairs: Path | str | None = None,
             pattern: str | None = None, cache_dir: Path | str | None = None, no_cache: bool = False,
             lcc: bool | None = None, connectivity: int | None = None, bd_threshold: float | None = None,
             length_mm: bool | None = None, sink=None) -> tuple[list[dict], dict]:
    """ATM'22 metrics (TD, BD, DSC, precision, FPR, FNR, ATM score, in %) of predicted masks against references
    paired by name (`ref` a file or folder) or by a `pairs` CSV (pred,ref). Returns (records, summary): a pair's
    error is a record with status `error`, a lone pair's error is raised.

    Defaults (DEFAULTS["evaluate"]): lcc True (score the largest 6/18/26-connected component), connectivity 6,
    bd_threshold 0.8, length_mm False. Reference parses are cached in `cache_dir`
    (~/.cache/wisecli/segment-airway) unless `no_cache`."""
    from wisecli.cli.inputs import expand_inputs

    from .data import VOLUME_EXT, pair_predictions
    from .metrics import evaluate_pairs

    if pairs is None and not preds:
        raise InputError("no predictions given", hint="pass prediction files or folders, or --pairs CSV")
    items = expand_inputs([str(p) for p in preds], pattern=pattern, extensions=VOLUME_EXT) if preds else []
    cfg = resolve(DEFAULTS["evaluate"], flags=dict(lcc=lcc, connectivity=connectivity, bd_threshold=bd_threshold,
                                                   length_mm=length_mm)).values
    if cfg["connectivity"] not in (6, 18, 26):
        raise InputError(f"--connectivity {cfg['connectivity']} must be 6, 18 or 26", hint="the default is 6")
    if not 0 < cfg["bd_threshold"] <= 1:
        raise InputError("--bd-threshold must lie in (0, 1]", hint="the default is 0.8")
    paired = pair_predictions(items, ref, pairs)
    if cache_dir is None and not no_cache:
        cache_dir = Path.home() / ".cache" / "wisecli" / "segment-airway"
    return evaluate_pairs(paired, cache_dir=None if no_cache else Path(cache_dir), sink=sink, **cfg)


def train(data: list, out_dir: Path | str | None = None, *, val: list | None = None, device="auto",
          init: Path | str | None = None, resume: bool = False, overwrite: bool = False, progress: bool = True,
          amp: bool | None = None, seed: int | None = None, sink=None, **settings: Any) -> dict:
    """Train WingsNet with the General Union loss in two stages (α 0.1 then 0.2) into the run folder
    `out_dir` (config.json, metrics.jsonl, checkpoints/{last,best,stage1}.pt); returns a summary (epochs, best
    metric and epoch, monitor, last record).

    `settings` are the keywords of TRAIN_FLAGS (stage, epochs1, epochs2, batch_size, patches_per_case,
    optimizer, lr, workers, val_fraction) or dotted keys of DEFAULTS["train"] passed as a dict in
    `settings["config"]`; defaults: stage both, epochs1 100, epochs2 30, batch 4, 16 patches a case, sgd
    (lr 0.01; adamw 1e-3), 2 workers, seed 0, amp True. A non-empty `out_dir` is refused unless `resume`
    (continue from last.pt) or `overwrite` (start again); `init` starts from a segment-airway checkpoint."""
    from .train import run_training

    if not data:
        raise InputError("no training data given", hint="pass folders (images/ + labels/) or CSVs")
    if out_dir is None:
        raise InputError("no run folder given", hint="pass -o RUN")
    flags = dict(settings.pop("config", None) or {})
    for key, value in settings.items():
        if key not in TRAIN_FLAGS:
            raise TypeError(f"train() got an unexpected keyword argument {key!r}")
        flags[TRAIN_FLAGS[key]] = value
    flags.update(seed=seed)
    res = resolve(DEFAULTS["train"], flags=flags)
    cfg = dict(res.values)
    seed_, amp_ = cfg.pop("seed"), True if amp is None else amp
    return run_training([str(d) for d in data], out_dir, cfg, val=[str(v) for v in val] if val else None,
                        device=device, amp=amp_, seed=seed_, init=init, resume=resume, overwrite=overwrite,
                        sink=sink, progress=progress, defaulted={k for k, s in res.sources.items() if s == "default"})


def info(weights: Path | str | None = None) -> dict:
    """Formats, defaults, parameter count, phantom presets and metrics; with `weights` also the checkpoint's
    metadata (arch, config, metrics, stage, epoch, versions, params). No defaults of its own."""
    from wisecli.runtime import demo_weights

    from .demo import GATES, WEIGHTS
    from .model import WingsNet, count_parameters
    from .predict import check_weights
    from .synthetic import PRESETS
    from .tree import PARSER_VERSION

    resolve(DEFAULTS["info"])  # reads --config/--set: a bad one is refused like in every verb
    doc = {
        "method": METHOD, "arch": ARCH, "paper": "Zheng et al., IEEE TMI 2021 (arXiv 2011.11952)",
        "reads": ["NIfTI (.nii/.nii.gz)", "MetaImage (.mha/.mhd)", "NRRD (.nrrd/.nhdr)",
                  "DICOM series folder (--series UID where it holds several)"],
        "writes": ["{stem}_airway.nii.gz (uint8)", "{stem}_airway_tree.json", "_prob", "_branches (uint16)",
                   "_preview.png"],
        "params": count_parameters(WingsNet()),
        "predict_defaults": dict(DEFAULTS["predict"]),
        "predict_cpu": "fp32, sw batch 1 and overlap 0.25 unless given (the GPU keeps overlap 0.5; --overlap 0.5 "
                       "restores it), NCDHW, threads ≤ usable cores, heap kept untrimmed; 12.2–13.2 CPU-s per 128³ "
                       "window (2-core AVX2 EPYC): a 512×512×388 CT's lung box is 48 windows at overlap 0.25 ≈ 5.3 "
                       "min on 2 cores (144 at 0.5 ≈ 16 min; 0.5 cannot fit 8 min: 184 GFLOP/s needed, 157 peak). "
                       "Over 8 window grids on the demo phantom 0.25 scores DSC 72.9 % vs 73.1 % at 0.5 "
                       "(README, bench.overlap_study)",
        "phantom_presets": {k: {"size": v["size"], "spacing": v["spacing"], "min_diameter_mm": v["min_diameter_mm"]}
                            for k, v in PRESETS.items()},
        "metrics": ["td", "bd", "dsc", "precision", "fpr", "fnr", "sensitivity", "specificity", "atm_score"],
        "tree_parse": {"version": PARSER_VERSION,
                       "definition": "the official ATM'22 parse (ATM-22-Related-Work evaluation/tree_parse.py): "
                                     "skeleton of the (x, y, z) array as nibabel reads it, EDT nearest-seed "
                                     "labels, its single refinement loop; BD and TD count on its branches and "
                                     "skeleton (evaluation_atm_22.py)"},
        "demo_weights": demo_weights.describe(WEIGHTS),
        "demo_gates": [f"held-out {k.upper()} % {op} {thr:g}" for k, op, thr in GATES],
    }
    if weights is not None:
        ck = check_weights(weights)
        doc["checkpoint"] = {k: ck.get(k) for k in ("arch", "config", "metrics", "stage", "epoch", "created",
                                                     "versions", "train_spacing_median")}
        doc["checkpoint"]["params"] = int(sum(v.numel() for v in ck["state_dict"].values()))
    return doc


def demo(quick: bool = False, device="auto", seed: int | None = None, sink=None, out_dir: Path | str | None = None,
         overwrite: bool = False, **tuning: Any):
    """On phantoms: a WingsNet predicts held-out phantoms with the full pipeline, scored with the ATM'22 metrics.
    Returns a `runtime.results.DemoResult`. `quick` (seconds): the shipped demo weights (`demo.RECIPE`, trained
    by `train` on 4 `tiny` phantoms) on a held-out phantom, gates held-out DSC ≥ 60 %, TD ≥ 65 %, BD ≥ 20 %
    (`demo.GATES`). Full (minutes on CPU): train a half-width WingsNet with GUL in memory on `demo` phantoms,
    gate (spec) held-out DSC ≥ 50 %. `out_dir` keeps a reusable run folder (checkpoints/best.pt for `predict
    --weights`, the held-out phantoms, demo.json); a non-empty one is refused unless `overwrite`. Defaults:
    quick False, device auto, seed 0 (the full demo's). `tuning` (steps, n_train, n_test, size, spacing,
    model_width, loss_name, overfit) is for experiments (see `demo.run_demo`)."""
    from wisecli.runtime.device import as_device

    from .demo import run_demo

    seed = resolve(DEFAULTS["demo"], flags={"seed": seed}).values["seed"]
    return run_demo(quick=quick, device=as_device(device, sink=sink), seed=seed, sink=sink, out_dir=out_dir,
                    overwrite=overwrite, **tuning)


def benchmark(device="auto", quick: bool = False, *, preset: str | None = None, input: Path | str | None = None,
              weights: Path | str | None = None, repeats: int | None = None, no_train: bool = False, sink=None) -> list:
    """The spec's rows R1–R7 (§7) as `runtime.results.BenchRecord`s: WingsNet inference and end-to-end predict
    against MONAI UNet/BasicUNet and the ATM'22 baseline, training patches/s, the tree parse against the
    official ATM'22 parse as its code runs it. Defaults (DEFAULTS["benchmark"]): preset ct, repeats 3; `quick` is a seconds-long CPU
    run on a coarse `tiny` phantom; `input` times a real CT, `weights` a trained model (random otherwise)."""
    from wisecli.runtime.device import as_device

    from .bench import run_benchmark

    if input is not None and not Path(input).exists():
        raise InputError(f"--input not found: {input}", hint="give a CT volume or DICOM folder")
    if weights is not None:
        from .predict import check_weights

        check_weights(weights)
    cfg = resolve(DEFAULTS["benchmark"], flags=dict(preset=preset, repeats=repeats)).values
    if cfg["repeats"] < 1:
        raise InputError("--repeats must be at least 1", hint="the default is 3")
    return run_benchmark(as_device(device, sink=sink), quick=quick or cfg["preset"] == "tiny", preset=cfg["preset"],
                         input=input, weights=weights, repeats=cfg["repeats"], no_train=no_train, sink=sink)
