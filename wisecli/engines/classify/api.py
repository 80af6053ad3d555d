"""The Python API of `wise classify` (the command calls only these): train, predict, evaluate, study, demo, info,
benchmark, and the `DEFAULTS` of every verb. Four papers plug in as options:

- LAMBC (`optimizer="lambc"`; Fong, Chen, Chen, arXiv 2011.13584), in `wisecli.optim`;
- the CDB loss (`loss="cdb"`; Sinha, Ohashi, Nakamura, ACCV 2020), `loss.py`;
- rotation-invariant convolutions (`arch="ring-cnn"|"radial-cnn"|"dwsep-radial-cnn"`; Fuhl, Kasneci, IJCNN 2021),
  in `wisecli.nn.radial`;
- implicit BNNs (`bayes="implicit", components=K`; Trinh, Kaski, Heinonen, arXiv 2010.13498), layers in
  `wisecli.nn.implicit`, schedule and averaging in `bayes.py`.

    from wisecli.engines.classify import api
    api.train("builtin:digits", "runs/d", arch="ring-cnn", loss="cdb", epochs=6)
    api.evaluate("builtin:digits:test", weights="runs/d", rotate="0:360:90")["rotation"]

Settings left at None come from `DEFAULTS[verb]`, then `--config`/`WISE_*`/`--set` (`cli.config.resolve`); dotted
settings (`optim.clip`, `loss.cdb_reduction`, `data.imbalance`, `bayes.train_samples`, ...) are reached with
`--set` or as keyword arguments through `**settings`. A device is "auto", "cpu", "cuda", "cuda:N" or a
torch.device. Where the spec is silent, the choice is written in the module that makes it (`loss.py` the CDB tau
form and open cases, `train.py` the recipe, `bayes.py` the KL schedule, `predict.py` the records and evaluation,
`corruptions.py` the constants, `data.py` the normalisation and split) and listed by `info()`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

METHOD = "classify"
_RUN = {"device": "auto", "amp": True, "seed": 0}

DEFAULTS: dict[str, dict[str, Any]] = {
    "train": {
        "arch": "small-cnn", "optimizer": "sgd", "loss": "ce", "tau": "dynamic", "bayes": "none", "components": 4,
        "members": 5, "epochs": 30, "batch_size": 128, "lr": None, "weight_decay": None, "image_size": None,
        "augment": "none", "sync_bn": False, "faithful": False, "width": 1.0, "norm": "batch", "dropout": 0.1,
        "warmup_epochs": 1, "val_fraction": 0.1, "layout": "nchw", "data.imbalance": None,
        "loss.cdb_reduction": "mean", "loss.min_weight": 0.0, "loss.gamma": 2.0, "loss.beta": 0.999,
        "optim.clip": 1.0, "optim.clip_low": None, "optim.bias_correction": False, "optim.decoupled_decay": False,
        "optim.exclude_1d": False, "optim.compile_step": False,
        "bayes.train_samples": 2, "bayes.val_samples": 1, "bayes.prior_std": 0.3, "threads": 0,
        **_RUN,
    },
    "predict": {"top_k": 3, "samples": None, "batch_size": 256, "device": "auto"},
    "evaluate": {"samples": None, "rotate": None, "corrupt": None, "severity": "1-5", "merge_classes": None,
                 "image_size": None, "layout": "nchw", "batch_size": 256, "device": "auto", "seed": 0},
    "study": {"data": None, "seeds": 3, "profile": "quick", "epochs": None, "device": "auto"},
    "demo": {"device": "auto"},
    "info": {},
    "benchmark": {"device": "auto", "case": "all"},
}
_RUN_KEYS = ("device", "amp", "seed")


def _resolve(verb: str, flags: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """DEFAULTS[verb] < --config < WISE_* < --set < the given values (a torch.device passes as it is)."""
    from wisecli.cli.config import resolve

    res = resolve(DEFAULTS[verb], flags=flags)
    return dict(res.values), res


def _p(x):
    return None if x is None else Path(x)


def train(data: str | Path, out_dir: str | Path | None = None, *, val: str | Path | None = None,
          test: str | Path | None = None, init: str | Path | None = None, resume: bool = False,
          overwrite: bool = False, progress: bool = True, sink=None, **settings: Any) -> dict:
    """Train a classifier on DATA (a class folder, a CSV `path,label[,split]`, an `.npz` with X/y, or
    `builtin:mnist5k|digits|textures[:part]`) into the run folder `out_dir` with the shared trainer.

    `settings` are the keys of `DEFAULTS["train"]` (None: the default; dotted keys as `**{"optim.clip": 3}`):
    arch "small-cnn", optimizer "sgd", loss "ce", tau "dynamic", bayes "none", components 4, members 5, epochs 30,
    batch_size 128 (global), lr None (per optimizer: sgd 0.05, adamw 1e-3, lars 0.1, lamb/lambc 0.01),
    weight_decay None (per optimizer), image_size None (the data's), augment "none", sync_bn False, faithful False,
    width 1.0, norm "batch", dropout 0.1, warmup_epochs 1, val_fraction 0.1, layout "nchw", data.imbalance None,
    loss.cdb_reduction "mean", loss.min_weight 0, loss.gamma 2, loss.beta 0.999, optim.clip 1.0,
    optim.clip_low None, optim.bias_correction/decoupled_decay/exclude_1d/compile_step False,
    bayes.train_samples 2, bayes.val_samples 1, bayes.prior_std 0.3, threads 0 (CPU intra-op threads for the run; 0: torch's), device "auto", amp True, seed 0.
    `val`/`test`: separate data sets; `init`: a classify checkpoint to start from. A non-empty run folder needs
    `resume` or `overwrite`. Writes config.json, metrics.jsonl, checkpoints/{last,best}.pt, classes.json,
    split.json, per_class.jsonl, run.json; returns {run_dir, epochs, best_metric, best_epoch, last, test?, ...}."""
    from .train import run_training

    values, res = _resolve("train", settings)
    run = {k: values.pop(k) for k in _RUN_KEYS}
    return run_training(data, _p(out_dir), cfg=values, config_record=res.as_record(), device=run["device"],
                        amp=bool(run["amp"]), seed=int(run["seed"]), val=val, test=test, init=_p(init),
                        resume=resume, overwrite=overwrite, progress=progress, sink=sink)


def predict(inputs: list[str | Path], weights: str | Path | None = None, output: str | Path | None = None, *,
            top_k: int | None = None, samples: int | None = None, pattern: str | None = None,
            shard: str | None = None, overwrite: bool = False, skip_existing: bool = False,
            batch_size: int | None = None, device=None, sink=None, argv=None) -> dict:
    """Classify images (files, folders, globs, @list.txt, @-) or feature files (.csv/.npz) with the model `weights`
    (a checkpoint or its run folder), loaded once.

    Defaults: top_k 3, samples None (the Bayes mode's: implicit 4 per component, mc-dropout 16), batch_size 256,
    device "auto". `output` (optional) receives the records as JSON lines, atomically (`.part-I-of-N.jsonl` under
    `shard`), refused when it exists unless `overwrite`, skipped with `skip_existing`. Returns {output, status,
    inputs, errors, bayes, samples, device, seconds, records: [{input, label, label_index, prob, top, entropy,
    mutual_info, status}]}; unreadable inputs among several are records with status "error"."""
    from .predict import predict_inputs

    v, _ = _resolve("predict", {"top_k": top_k, "samples": samples, "batch_size": batch_size, "device": device})
    _check_counts(top_k=v["top_k"], samples=v["samples"], batch_size=v["batch_size"])
    return predict_inputs(list(inputs), weights, _p(output), top_k=int(v["top_k"]),
                          samples=None if v["samples"] is None else int(v["samples"]), pattern=pattern, shard=shard,
                          overwrite=overwrite, skip_existing=skip_existing, device=v["device"],
                          batch_size=int(v["batch_size"]), sink=sink, argv=argv)


def _check_counts(**values) -> None:
    from wisecli.cli.errors import InputError

    for key, v in values.items():
        if v is not None and int(v) < 1:
            raise InputError(f"--{key.replace('_', '-')} must be at least 1, got {v}", hint="see --help")


def evaluate(data: str | Path | None = None, *, weights: str | Path | None = None, pred: str | Path | None = None,
             labels: str | Path | None = None, samples: int | None = None,
             rotate: str | None = None, corrupt: str | None = None, severity: str | None = None,
             ood: str | Path | None = None, merge_classes: str | None = None, image_size: int | None = None,
             layout: str | None = None, batch_size: int | None = None, device=None, seed: int | None = None,
             sink=None) -> dict:
    """The §5 metrics of the model `weights` on labelled DATA: accuracy, balanced_accuracy, macro_f1, nll,
    ece_top15, brier, per_class, confusion, shot_groups (from the training counts), and on request rotation
    (`rotate` "START:STOP:STEP" degrees: curve, mean, worst, invariance error), corruptions (`corrupt` "all" or
    names, `severity` "1-5"), ood_auroc (`ood` data, entropy score), with `merge_classes` "A,B" merged first.

    Defaults: samples None (the Bayes mode's), severity "1-5", image_size None, layout "nchw", batch_size 256,
    device "auto", seed 0 (corruption noise). Returns the document with `part` (which rows were used).
    Without DATA: `pred` (a predict JSONL file) against `labels` (CSV path,label), no model needed."""
    from wisecli.cli.errors import InputError

    from .predict import evaluate_model, evaluate_predictions

    v, _ = _resolve("evaluate", {"samples": samples, "rotate": rotate, "corrupt": corrupt, "severity": severity,
                                 "merge_classes": merge_classes, "image_size": image_size, "layout": layout,
                                 "batch_size": batch_size, "device": device, "seed": seed})
    _check_counts(samples=v["samples"], batch_size=v["batch_size"], image_size=v["image_size"])
    if data is None:
        if pred is None or labels is None:
            raise InputError("evaluate needs DATA with --weights, or --pred FILE --labels CSV",
                             hint="e.g. wise classify evaluate builtin:digits:test --weights run")
        return evaluate_predictions(Path(pred), Path(labels), merge_classes=v["merge_classes"])
    if pred is not None or labels is not None:
        raise InputError("--pred/--labels replace DATA and --weights", hint="give one or the other")
    return evaluate_model(data, weights, cfg_read={"image_size": v["image_size"], "layout": v["layout"]},
                          samples=None if v["samples"] is None else int(v["samples"]), rotate=v["rotate"],
                          corrupt=v["corrupt"], severity=v["severity"], ood=ood, merge_classes=v["merge_classes"],
                          device=v["device"], seed=int(v["seed"]), batch_size=int(v["batch_size"]), sink=sink)


def study(name: str, out_dir: str | Path | None = None, *, data: str | None = None, seeds: int | None = None,
          profile: str | None = None, plot: str | Path | None = None, device=None, sink=None) -> dict:
    """Rerun one paper's experiment (`name` lambc|cdb|radial|ibnn, spec §5) into `out_dir`: results.jsonl (one line
    per finished run; a rerun skips the lines it has), summary.json and summary.md (mean ± std over seeds beside
    the paper's anchors).

    Defaults: data None (the study's built-in data), seeds 3, profile "quick" (CPU-sized) or "paper", epochs None
    (the profile's; `--set epochs=N` overrides), device "auto";
    `plot` writes a PNG. Returns the summary document."""
    from .studies import run_study

    v, _ = _resolve("study", {"data": data, "seeds": seeds, "profile": profile, "device": device})
    _check_counts(seeds=v["seeds"])
    return run_study(name, _p(out_dir), data=v["data"], seeds=int(v["seeds"]), profile=v["profile"],
                     plot=_p(plot), device=v["device"], sink=sink, train_defaults=DEFAULTS["train"],
                     epochs=None if v["epochs"] is None else int(v["epochs"]))


def demo(quick: bool = False, device=None, *, sink=None, **overrides: Any):
    """`quick` (the `wise demo` row): the shipped ring-cnn weights (`demo_weights.npz`, trained from `demo.RECIPE`,
    the radial gate's size) through `predict` and `evaluate` on `builtin:digits:test` at 16x16, at 0/90/180/270° and
    under gaussian noise; gates: balanced accuracy >= 0.75 (it learned), accuracy at 90/180/270° within 0.5 pt of
    upright and logit invariance error <= 1e-3 (the radial claim). Full: train `ring-cnn` (width 1/4) with the CDB
    loss, LAMBC and an implicit BNN (K = 2) on long-tailed (rho = 10) digits for 6 epochs, then the same
    evaluation; its gates are finiteness and invariance only (its accuracy, 0.28, is a finding, see `demo.py`).
    Nothing survives in $TMPDIR. Defaults: quick False, device "auto". Returns a `runtime.results.DemoResult`;
    headline {bal_acc, rot90_acc, nll_noise}."""
    from .demo import run_demo

    v, _ = _resolve("demo", {"device": device})
    return run_demo(quick=quick, device=v["device"], sink=sink, train_defaults=DEFAULTS["train"], **overrides)


def info() -> dict:
    """Archs, losses, optimizers, Bayes modes, readers, built-in data, corruptions, defaults and our choices."""
    from importlib.util import find_spec

    _resolve("info", {})
    from wisecli.nn.zoo import ARCHS
    from wisecli.optim import OPTIMIZERS

    from .bayes import BAYES, DEFAULT_SAMPLES
    from wisecli.runtime import demo_weights

    from .corruptions import CONSTANTS
    from .demo import WEIGHTS
    from .loss import LOSSES
    from .train import LR, WD

    try:
        from wisecli.runtime.io.labeled import BUILTINS
    except ImportError:  # pragma: no cover
        BUILTINS = ()
    import torch

    return {
        "method": METHOD,
        "papers": {"lambc": "Fong, Chen, Chen: LAMBC, arXiv 2011.13584",
                   "cdb": "Sinha, Ohashi, Nakamura: Class-wise difficulty-balanced loss, ACCV 2020",
                   "radial": "Fuhl, Kasneci: Rotated ring, radial and depth-wise separable radial convolutions, IJCNN 2021",
                   "ibnn": "Trinh, Kaski, Heinonen: Scalable Bayesian neural networks by layer-wise input augmentation, arXiv 2010.13498"},
        "archs": list(ARCHS), "losses": list(LOSSES), "optimizers": list(OPTIMIZERS), "bayes": list(BAYES),
        "bayes_samples": DEFAULT_SAMPLES, "lr": LR, "weight_decay": WD,
        "readers": {"folder": "root/<class>/*.{png,jpg,bmp,tif,npy}", "csv": "path,label[,split] (+ extra columns)",
                    "npz": "X, y [, X_val, y_val, X_test, y_test, classes]; X (N,D), (N,H,W) or (N,C,H,W)",
                    "builtin": [f"builtin:{b}[:train|val|test]" for b in BUILTINS]},
        "corruptions": {k: list(v) for k, v in CONSTANTS.items()},
        "choices": {
            "cdb_tau": "dynamic = 2 sigmoid(b-1) (ImageNet-LT code); dynamic-sigmoid = sigmoid(b) (CIFAR-LT script)",
            "cdb_open_cases": "w = 0 at 100 % (loss.min_weight floors it); all at 100 %: uniform weights + warning",
            "schedule": "cosine after warmup_epochs linear warm-up; implicit: flat to 50 %, linear to 1 % by 90 %; "
                        "--faithful: constant lr, LAMBC m/v reset every epoch",
            "ibnn_beta": "min(1, epoch / ceil(2E/3)); variational lr 0.4 K lr / 0.1, no weight decay, not annealed",
            "demo_ok": "--quick: the shipped ring-cnn learned (balanced accuracy >= 0.75) and is exactly invariant "
                       "at 90/180/270° (the radial claim); the CDB and iBNN claims are findings, not shown; the full "
                       "demo (CDB + LAMBC + iBNN, trained) gates finiteness and invariance only",
            "ibnn_layers": "in wisecli/nn/implicit.py so load_classifier (shared) can rebuild them",
            "validation": "stratified val_fraction (10 %) of train when the data has no val part; split.json",
            "normalisation": "per channel (per feature) mean/std of train, stored in the checkpoint",
            "evaluate_part": "a named part is used whole; else the test part when present; else all rows",
            "corruptions": "CIFAR-C constants at every size; JPEG through OpenCV on the CPU",
        },
        "defaults": DEFAULTS["train"],
        "demo_weights": demo_weights.describe(WEIGHTS),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "extras": {k: find_spec(k) is not None for k in ("monai", "mlxtend", "timm", "escnn")},
    }


def benchmark(device=None, quick: bool = False, case: str | None = None) -> list:
    """Race our pieces against their peers in one process on one device (`runtime.bench.race`), spec §7:
    `optim` (foreach LAMBC, compiled, vs timm Lamb if installed and the plain per-tensor loop of
    `wisecli.optim.reference`), `radial` (one stacked conv vs R separate convs; radial/dwsep vs plain costs),
    `ibnn` (one pass over B K S replicas vs K S deterministic passes). Defaults: device "auto", quick False,
    case "all". Returns `runtime.results.BenchRecords`."""
    from wisecli.cli.config import one_of

    from .bench import run

    v, _ = _resolve("benchmark", {"device": device, "case": case})
    one_of("--case", v["case"], ("all", "optim", "radial", "ibnn"))
    return run(v["device"], quick, v["case"])
