"""The Python API of `wise leakage` (the command calls only these): run, evaluate, demo, info, benchmark, and
the `DEFAULTS` of every verb.

Mo, Borovykh, Malekzadeh, Haddadi, Demetriou, "Layer-wise Characterization of Latent Information Leakage in
Federated Learning" (arXiv 2010.08762): per-layer empirical V-information of a private attribute in what clients
share (gradients or updates), with a permutation control, and per-layer Jacobian sensitivity.

    from wisecli.engines.leakage import api
    doc = api.run(dataset="digits", out_dir="audit", arch="small-cnn", fl_rounds=10, audit_rounds="0,5,10")
    doc["best_layer"], doc["records"][0]["vinfo_bits"]

Settings left at None come from `DEFAULTS[verb]`, then `--config`/`WISE_*`/`--set` (`cli.config.resolve`).
Choices where the spec is silent are written in the module that makes them (`algorithm.py` sketches,
`metrics.py` the estimator, `sensitivity.py` the estimators, `audit.py` the observation design and control,
`data.py` the readers and client dealing, `synthetic.py` the planted properties, `train.py` FedAvg,
`pipeline.py` outputs and resume, `demo.py` the demo preset) and listed by `info()`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

METHOD = "leakage"

DEFAULTS: dict[str, dict[str, Any]] = {
    "run": {
        "dataset": None, "arch": "small-cnn", "model_factory": None, "weights": None, "width": 1.0,
        "attribute": None, "task_label": None, "client": None, "image_size": None, "planted": "thick",
        "fl_rounds": 0, "clients": 10, "local_steps": 20, "train_batch": 16, "lr": 0.2, "audit_rounds": None,
        "observe": "grad", "batch_size": 8, "property_level": "client", "n_obs": 600, "families": "linear,quadratic",
        "sketch": 256, "folds": 5, "sensitivity": "hutchinson", "probes": 8, "n_sens": 256, "latent_layer": None,
        "layers": "tensors", "control": True, "save_features": False, "chunk": 128, "device": "auto", "seed": 0,
    },
    "evaluate": {"against": None, "metric": "both", "rounds": "last", "resamples": 1000, "seed": 0},
    "demo": {"device": "auto"},
    "info": {},
    "benchmark": {"device": "auto", "size": "quick"},
}


def _resolve(verb: str, flags: dict[str, Any]) -> dict[str, Any]:
    from wisecli.cli.config import resolve
    from wisecli.cli.errors import InputError

    values = dict(resolve(DEFAULTS[verb], flags=flags).values)
    if values.get("seed") is not None and int(values["seed"]) < 0:
        raise InputError(f"--seed must be 0 or more, got {values['seed']}", hint="the default is 0")
    return values


def run(data: str | Path | None = None, out_dir: str | Path | None = None, *, resume: bool = False,
        overwrite: bool = False, plot: str | Path | None = None, progress: bool = True, sink=None, argv=None,
        **settings: Any) -> dict:
    """Audit a model's per-layer leakage of a private attribute (spec §2–3) on DATA (an .npz X, y, s[, client];
    a CSV path,label,attribute[,client]) or `dataset="digits"|"shapes32"`; optional FedAvg first.

    `settings` are the keys of `DEFAULTS["run"]`: dataset None, arch "small-cnn" (mlp|small-cnn|cnn-32, BN-free),
    model_factory None ("pkg.mod:fn"), weights None (a state dict with the factory, else a classify checkpoint),
    width 1.0, attribute None (npz "s" / CSV "attribute"), task_label None, client None ("client"), image_size
    None, planted "thick", fl_rounds 0, clients 10, local_steps 20, train_batch 16, lr 0.2, audit_rounds None (the
    last round), observe "grad", batch_size 8, property_level "client", n_obs 600, families "linear,quadratic",
    sketch 256, folds 5, sensitivity "hutchinson", probes 8, n_sens 256, latent_layer None, layers "tensors",
    control True, save_features False, chunk 128, device "auto", seed 0.
    Writes into `out_dir` (optional): leakage.json, leakage.jsonl, leakage.png, run.json, fedavg/round_<r>.pt,
    features/round_<r>.npz (save_features). Returns the report {records, best_layer, accuracy, ...}."""
    from .pipeline import run as run_pipeline

    v = _resolve("run", settings)
    device = v.pop("device")
    return run_pipeline(None if data is None else Path(data), None if out_dir is None else Path(out_dir), v,
                        device=device, resume=resume, overwrite=overwrite, plot=None if plot is None else Path(plot),
                        progress=progress, sink=sink, argv=argv)


def evaluate(reports: list[str | Path], *, against: str | Path | None = None, metric: str | None = None,
             rounds: str | None = None, resamples: int | None = None, seed: int | None = None) -> dict:
    """Compare audits (spec §3 evaluate): per layer the differences of V-information (best family of each report)
    and sensitivity against `against` (or the first report), with bootstrap CIs when both reports saved features
    ("no CI" otherwise); per report the Spearman ρ between V-information and sensitivity rankings, the argmax
    layer of each metric and the top-3 overlap. `rounds` "last" (each report's last audited round) or "all"
    (every audited round). Returns {reports, rows (per layer), summary (one short row per report × round)}.
    Defaults: against None, metric "both", rounds "last", resamples 1000, seed 0."""
    from .predict import compare

    v = _resolve("evaluate", {"against": against, "metric": metric, "rounds": rounds, "resamples": resamples,
                              "seed": seed})
    return compare([Path(r) for r in reports], None if v["against"] is None else Path(v["against"]),
                   metric=v["metric"], resamples=int(v["resamples"]), seed=int(v["seed"]), rounds=v["rounds"])


def demo(quick: bool = False, device=None, *, sink=None, **overrides: Any):
    """The spec §3 demo: digits with planted thick strokes on the even clients, BN-free `small-cnn`, FedAvg, an
    audit of the last round with the permutation control and Hutchinson sensitivity; gates = the §9 claim
    (accuracy, leakage detected with CI excluding 0, control near 0, early layers leak more than fc2).
    `quick`: 3 rounds, 200 observations, the linear family. Defaults: quick False, device "auto".
    Returns a `runtime.results.DemoResult` (headline accuracy, best_layer, vinfo_bits, control_max_abs)."""
    from .demo import run_demo

    v = _resolve("demo", {"device": device})
    return run_demo(quick=quick, device=v["device"], sink=sink, run_defaults=DEFAULTS["run"], **overrides)


def info() -> dict:
    """Families, estimators, the §2.4 note, input formats, devices, defaults and our choices."""
    _resolve("info", {})
    import torch

    from .metrics import FAMILIES, MLP_ALPHA, MLP_HIDDEN, STRENGTHS
    from .model import ARCHS

    return {
        "method": METHOD,
        "paper": "Mo, Borovykh, Malekzadeh, Haddadi, Demetriou: Layer-wise Characterization of Latent Information "
                 "Leakage in Federated Learning, arXiv 2010.08762",
        "families": list(FAMILIES) + ["best"],
        "strengths": list(STRENGTHS), "archs": list(ARCHS),
        "sensitivity": ["hutchinson", "exact", "ones-vjp", "none"],
        "note_ones_vjp": "GradDefense's ones-vector VJP measures ||J^T 1||, not ||J||_F: it is exactly 0 for a last "
                         "linear layer under softmax cross-entropy (sum of p - y is 0); kept for comparison only",
        "readers": {"npz": "X, y, s [, client] (--attribute/--client/--task-label name other keys)",
                    "csv": "path,label,attribute[,client] + images (--image-size)",
                    "builtin": ["digits (planted thick strokes on even clients)", "shapes32 (brighter 16x16 patch)"]},
        "choices": {
            "observations": "n_obs balanced over clients; batches without replacement within a batch (audit.py)",
            "control": "client->attribute map permuted across clients (audit.py)",
            "sketch": "Gaussian N(0,1/D) in seeded row chunks; CountSketch to 4096 above 2^20; cached up to 2^22 entries",
            "probe": "sklearn-equal L2 logistic (mean CE + |w|^2/(2 C n)); binary: batched Newton; inner CV over C",
            "standardise": "per-column mean/std over all observations (labels unused)",
            "prior": "training-fold class frequencies with a +1/2 count",
            "mlp": f"one hidden layer of {MLP_HIDDEN} ReLU units on the standardised sketch; sklearn MLPClassifier's "
                   f"objective (mean CE + alpha (|W1|^2 + |W2|^2)/(2 n)), alpha = {MLP_ALPHA}; full-batch Adam (lr 1e-2, "
                   "at most 500 steps), output layer started at the prior; early stopping on one grouped inner fold "
                   "(about a quarter of the training part): the step with the lowest inner-fold CE is kept",
            "best": "per layer the family with the largest estimate among those run",
            "forest": "300 trees, min_samples_leaf 2, probabilities floored at 1e-3",
            "clients_without_ids": "samples dealt to clients within each attribute class (data.py)",
            "fedavg": "batches with replacement from the client's samples; no momentum; non-finite weights stop the run "
                      "(exit 1, hint: lower --lr; shapes32 + cnn-32 needs --lr 0.05) (train.py)",
            "cpu_threads": "one torch thread on CPU (pipeline.py)",
        },
        "defaults": DEFAULTS["run"],
        "verb_defaults": {verb: dict(d) for verb, d in DEFAULTS.items() if d},
        "reads": [".npz X (N, C, H, W) or (N, F), y, s [, client]", "CSV path,label,attribute[,client] + images",
                  "--dataset digits|shapes32 (built in, nothing downloaded)",
                  "--model-factory pkg.mod:fn + a state dict (--weights)", "classify checkpoints (--weights)",
                  "evaluate: leakage.json reports (+ features/round_<r>.npz for CIs)"],
        "writes": ["leakage.json", "leakage.jsonl (round x layer x family, appended per round)", "leakage.png",
                   "run.json", "fedavg/round_<r>.pt (--resume)", "features/round_<r>.npz (--save-features)"],
        "capabilities": {
            "observe": ["grad", "update"], "property_level": ["client", "sample"], "layers": ["tensors", "modules"],
            "families": list(FAMILIES) + ["best"], "sensitivity": ["hutchinson", "exact", "ones-vjp (comparison only)"],
            "latent_layer": True, "control": "permutation of the attribute across clients",
            "fedavg": True, "resume": "FedAvg restarts at the next round", "per_sample_gradients": "torch.func vmap(grad)",
            "evaluate": ["bootstrap CIs of differences (saved features)", "Spearman rho V-information vs S_s",
                         "argmax layer per metric", "top-3 overlap", "--rounds all", "--summary"],
            "devices": ["cpu", "cuda"],
        },
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    }


def benchmark(device=None, quick: bool = False, size: str | None = None) -> list:
    """Race (spec §7) in one process on one device: per-sample gradients by `vmap(grad)` vs a per-sample backward
    loop (and Opacus if installed); Hutchinson sensitivity (P = 1, 8, 32) vs the exact basis sweep (relative error
    of the layer means) and the ones-VJP recipe (speed only, a different quantity); without `quick`, the spec §5
    protocol on shapes32 end to end (`run` verb's code, timed once). Defaults: device "auto",
    quick False, size "quick" ("full": 256 samples for the exact sweep). Returns `runtime.results.BenchRecords`."""
    from wisecli.cli.config import one_of

    from .bench import run as run_bench

    v = _resolve("benchmark", {"device": device, "size": size})
    one_of("--size", v["size"], ("quick", "full"))
    return run_bench(v["device"], quick=quick, size=v["size"], run_defaults=DEFAULTS["run"])
