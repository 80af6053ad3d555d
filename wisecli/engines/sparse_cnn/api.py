"""The Python API of `wise sparse-cnn` (the command calls only these): train, predict, evaluate, demo, info,
benchmark, and the `DEFAULTS` of every verb.

Tang, Sun, Yuan, Liu, "Adaptive Pixel-wise Structured Sparse Network for Efficient CNNs", arXiv 2010.11083: one
importance map per image, convolutions computed only at important pixels (all channels or none), density set at
run time. Counted MACs and measured latency are reported separately, with the execution path named.

    from wisecli.engines.sparse_cnn import api
    api.train("builtin:digits", "runs/d", task="classify", width=0.125, epochs=5)
    api.evaluate("builtin:digits:test", weights="runs/d", density="1,0.5,0.3")

Settings left at None come from `DEFAULTS[verb]`, then `--config`/`WISE_*`/`--set`; dotted settings
(`sparse.tile_slack`, `sparse.downsample_blocks`, `sr.batchnorm`, `sr.loss`) are reached with `--set` or
`**settings`. Where the spec is silent the choice is written in the module that makes it (`gating.py` masks,
paths and MACs; `model.py`/`sr.py` the networks; `train.py` the recipe; `predict.py` records and evaluation;
`data.py` bicubic and SR data) and listed by `info()`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

METHOD = "sparse-cnn"
DEFAULTS: dict[str, dict[str, Any]] = {
    "train": {
        "task": "classify", "arch": None, "scale": 2, "mask_rule": "regional", "tile": 8, "density_min": None,
        "epochs": 30, "batch_size": None, "lr": None, "patch": 48, "image_size": 32, "width": 1.0, "channels": 64,
        "blocks": 16, "steps_per_epoch": None, "lr_schedule": "cosine", "warmup_fraction": 0.1, "p_dense": 0.25, "val_fraction": 0.1,
        "sparse.tile_slack": 1.5, "sparse.downsample_blocks": False, "sparse.branch_channels": 16, "sr.batchnorm": False, "sr.loss": "l1", "threads": 0,
        "device": "auto", "amp": True, "seed": 0,
    },
    "predict": {"density": None, "mac_budget": None, "exec": "auto", "chunk": 512, "batch_size": 64,
                "force": False, "device": "auto"},
    "evaluate": {"density": "1,0.5,0.3,0.1", "mask": "learned", "exec": "masked", "latency": True,
                 "batch_size": 64, "force": False, "device": "auto", "seed": 0},
    "demo": {"task": "classify", "device": "auto"},
    "info": {},
    "benchmark": {"device": "auto", "size": "auto", "case": "all"},
}
_RUN_KEYS = ("device", "amp", "seed")


def _resolve(verb: str, flags: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """DEFAULTS[verb] < --config < WISE_* < --set < the given values."""
    from wisecli.cli.config import resolve
    from wisecli.cli.errors import InputError

    res = resolve(DEFAULTS[verb], flags=flags)
    values = dict(res.values)
    if values.get("seed") is not None and int(values["seed"]) < 0:
        raise InputError(f"--seed must be 0 or more, got {values['seed']}", hint="the default is 0")
    return values, res


def train(data: str | Path, out_dir: str | Path | None = None, *, init: str | Path | None = None,
          resume: bool = False, overwrite: bool = False, progress: bool = True, sink=None, **settings: Any) -> dict:
    """Train a gated network on DATA into the run folder `out_dir` with the shared trainer.

    Classification DATA: a class folder, CSV, .npz or `builtin:mnist5k|digits|textures` (shared readers); SR DATA:
    a folder of HR images or `builtin:skimage-sr`. `settings` are the keys of `DEFAULTS["train"]`: task "classify",
    arch None (resnet18 / srresnet by task), scale 2, mask_rule "regional", tile 8, density_min None (0.1 / 0.05),
    epochs 30, batch_size None (128 / 16), lr None (SGD 0.05 / Adam 2e-4), patch 48 (LR px), image_size 32,
    width 1.0, channels 64, blocks 16, steps_per_epoch None (SR: 100), lr_schedule "cosine" (over the steps;
    or "constant"), warmup_fraction 0.1 (of the steps), p_dense 0.25,
    val_fraction 0.1, sparse.tile_slack 1.5, sparse.downsample_blocks False, sparse.branch_channels 16, sr.batchnorm False, sr.loss "l1", threads 0 (CPU intra-op threads for the run; 0: torch's),
    device "auto", amp True, seed 0. `init`: a classify monai-resnet18 checkpoint. Writes config.json,
    metrics.jsonl, checkpoints/{last,best}.pt, density_curve.json; returns {run_dir, best_metric, best_epoch, last}."""
    from .train import run_training

    values, res = _resolve("train", settings)
    run = {k: values.pop(k) for k in _RUN_KEYS}
    return run_training(str(data), None if out_dir is None else Path(out_dir), cfg=values,
                        config_record=res.as_record(), device=run["device"], amp=bool(run["amp"]),
                        seed=int(run["seed"]), init=None if init is None else Path(init), resume=resume,
                        overwrite=overwrite, progress=progress, sink=sink)


def predict(inputs: list[str | Path], weights: str | Path | None = None, output: str | Path | None = None, *,
            density: float | None = None, mac_budget: float | None = None, exec: str | None = None,
            chunk: int | None = None, batch_size: int | None = None, force: bool | None = None,
            calibration: str | Path | None = None, save_masks: bool = False, pattern: str | None = None, shard: str | None = None,
            overwrite: bool = False, skip_existing: bool = False, device=None, sink=None, argv=None) -> dict:
    """Apply a trained gated network at a run-time density (`density` rho in (0, 1], or `mac_budget` f, a fraction
    of the dense MACs, inverted through the checkpoint's density curve; neither: rho = 1).

    Classification: records {input, label, prob, density, mac_saving, exec, status}; `output` a JSONL file
    (atomic). SR: `<stem>_x{scale}.png` (input bit depth) into the folder `output`, with `save_masks` also
    `<stem>_importance.png` and `<stem>_mask.png`, and run.json. Defaults: exec "auto" (CPU: masked, dense at
    rho = 1), chunk 512, batch_size 64, force False (allow rho below the trained minimum), device "auto".
    Returns {records, ...}."""
    from .predict import predict_inputs

    v, _ = _resolve("predict", {"density": density, "mac_budget": mac_budget, "exec": exec, "chunk": chunk,
                                "batch_size": batch_size, "force": force, "device": device})
    return predict_inputs([str(i) for i in inputs], weights, output, v, save_masks=save_masks, pattern=pattern,
                          shard=shard, overwrite=overwrite, skip_existing=skip_existing, sink=sink, argv=argv,
                          calibration=calibration)


def evaluate(data: str | Path, *, weights: str | Path | None = None, density: str | None = None,
             mask: str | None = None, exec: str | None = None, latency: bool | None = None,
             batch_size: int | None = None, force: bool | None = None, device=None, seed: int | None = None,
             plot: str | Path | None = None, sink=None) -> dict:
    """One row per density: the task metric (top-1/top-5, or PSNR/SSIM on Y beside bicubic), macs_dense/counted/
    executed, saving_counted/executed, tile_occupancy, and separately latency_ms with {device, exec, batch, size,
    dtype}. Defaults: density "1,0.5,0.3,0.1", mask "learned" (or random, sobel: same rule and density),
    exec "masked", latency True, batch_size 64, force False, device "auto", seed 0 (random masks).
    `plot` writes accuracy/PSNR against counted saving. Returns {rows, task, ...}."""
    from .predict import evaluate_model

    v, _ = _resolve("evaluate", {"density": density, "mask": mask, "exec": exec, "latency": latency,
                                 "batch_size": batch_size, "force": force, "device": device, "seed": seed})
    return evaluate_model(str(data), weights, v, plot=None if plot is None else Path(plot), sink=sink)


def demo(quick: bool = False, device=None, *, task: str | None = None, sink=None):
    """Classification (default): resnet18 (widths / 8) on `builtin:digits` at 32x32, trained over densities;
    held-out top-1 at rho = 1 and 0.3 (regional) with the counted saving; gates: saving at 0.3 >= 25 % and top-1
    at 0.3 >= top-1 at 1 - 3 points (quick: 1 epoch, gate on the saving and on accuracy over chance).
    `task="sr"`: a 4-block, 16-channel x2 srresnet on `builtin:skimage-sr`. Returns a DemoResult with headline
    {acc_d100, acc_d030, saving_d030} (SR: {psnr_d025, psnr_bicubic, saving_d025})."""
    from .demo import run_demo

    v, _ = _resolve("demo", {"device": device, "task": task})
    return run_demo(quick=quick, device=v["device"], task=v["task"], sink=sink, train_defaults=DEFAULTS["train"])


def info() -> dict:
    """Tasks, archs, mask rules, execution paths and what each measures, defaults and our choices."""
    _resolve("info", {})
    from .predict import CHOICES

    return {
        "method": METHOD,
        "paper": "Tang, Sun, Yuan, Liu: Adaptive Pixel-wise Structured Sparse Network for Efficient CNNs, arXiv 2010.11083",
        "tasks": ["classify", "sr"], "archs": {"classify": ["resnet18"], "sr": ["srresnet"]},
        "mask_rules": {"regional": "top tiles by mean P (ceil(min(1, 1.5 rho) n)), then the ceil(rho HW) top pixels in them",
                       "topk": "the ceil(rho HW) top pixels of the image", "threshold": "P > 0.5 (density not exact)"},
        "exec": {"dense": "masks ignored; the peer every number is compared with",
                 "masked": "dense convs times the mask; the reference and training path; saves no time",
                 "gather": "active tiles (halo 2) gathered once per stage, unpadded convs, written back (SBNet pattern)",
                 "auto": "CUDA: gather below the break-even density (calibration file), else dense; CPU: masked (dense at rho = 1)"},
        "macs": {"macs_dense": "every position", "macs_counted": "|dilate(M)| for first convs, |M| for second, plus branch",
                 "macs_executed": "what the path computed (gather: tiles x (T+2)^2)"},
        "tiles": [4, 8, 16, 32],
        "choices": CHOICES,
        "defaults": {k: dict(v) for k, v in DEFAULTS.items()},
    }


def benchmark(device=None, quick: bool = False, *, size: str | None = None, case: str | None = None) -> list:
    """Race the gather path against dense (the peer: the same net on every pixel) in one process, spec §7:
    per-layer 3x3 convs and whole networks at several densities; records {case, ours_s, peer_s, speedup, device,
    density, saving_counted, saving_executed, tile_occupancy} and a summary with the break-even density per case.
    Defaults: device "auto", size "auto" (CUDA: "gpu", the .ci preset; CPU: "quick"; "full" is spec §7), case
    "all" (layers, resnet18, srresnet). `quick` forces the smallest size. Returns `runtime.results.BenchRecords`."""
    from wisecli.cli.config import one_of

    from .bench import run

    v, _ = _resolve("benchmark", {"device": device, "size": size, "case": case})
    one_of("--size", v["size"], ("auto", "quick", "gpu", "full"))
    one_of("--case", v["case"], ("all", "layers", "resnet18", "srresnet"))
    from wisecli.runtime.device import as_device

    dev = as_device(v["device"])
    size = "quick" if quick else v["size"]
    if size == "auto":
        size = "gpu" if dev.type == "cuda" else "quick"
    return run(dev, size, v["case"])
