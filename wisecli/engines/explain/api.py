"""The Python API of `wise explain` (the command calls only these): run, evaluate, demo, info, benchmark, and the
`DEFAULTS` of every verb.

RISE (Petsiuk, Das, Saenko, BMVC 2018) and MC-RISE (Hatakeyama, Sakuma, Konishi, Suenaga, "Visualizing
Color-wise Saliency of Black-Box Image Classification Models", ACCV 2020) for `classify` checkpoints,
TorchScript and ONNX models: masks made on the device two matmuls at a time and never stored, colour weights
right for every keep probability, deletion/insertion as in the RISE reference and the pointing game.

    from wisecli.engines.explain import api
    api.run(["photo.png"], model="runs/c/best.pt", out_dir="sal", method="mcrise", colors="red,green,blue")
    api.evaluate(from_dir="sal", metrics="deletion,insertion")["summary"]

Settings left at None come from `DEFAULTS[verb]`, then `--config`/`WISE_*`/`--set` (`cli.config.resolve`). Where
the spec is silent the choice is written in the module that makes it (`algorithm.py` masks and estimators,
`model.py` preprocessing of foreign models, `predict.py` run defaults and image handling, `metrics.py` the
metric details, `data.py` the box formats, `synthetic.py` the demo canvases, `demo.py` the recipe) and listed
by `info()`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

METHOD = "explain"

DEFAULTS: dict[str, dict[str, Any]] = {
    "run": {"method": None, "masks": 4000, "grid": 7, "keep_prob": None, "colors": "red,green,blue", "fill": "mean",
            "debias": False, "target": "top1", "softmax": "auto", "batch": None, "save_size": "model",
            "cuda_graph": False, "device": "auto", "amp": True, "seed": 0},
    "evaluate": {"metrics": "deletion,insertion", "step": "auto", "tolerance": 15.0, "rank_by": "total",
                 "baseline": "none", "softmax": "auto", "device": "auto", "seed": 0},
    "demo": {"device": "auto", "data": "digits", "seed": 0},
    "info": {},
    "benchmark": {"device": "auto", "size": None},
}


def _resolve(verb: str, flags: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    from wisecli.cli.config import resolve

    res = resolve(DEFAULTS[verb], flags=flags)
    return dict(res.values), res


def _model_opts(input_size, mean, std, value_range, bgr, class_names) -> dict:
    from wisecli.cli.errors import InputError

    def floats(x, name):
        if x is None:
            return None
        vals = x if isinstance(x, (list, tuple)) else str(x).split(",")
        try:
            out = [float(v) for v in vals]
        except ValueError:
            raise InputError(f"{name} must be comma-separated numbers, got {x!r}", hint=f"e.g. {name} 0.5,0.5,0.5") from None
        import math

        if not out or not all(math.isfinite(v) for v in out):
            raise InputError(f"{name} must be finite numbers, got {x!r}", hint=f"e.g. {name} 0.5,0.5,0.5")
        return out

    if input_size is not None:
        if len(input_size) != 2 or any(int(s) < 2 for s in input_size):
            raise InputError(f"--input-size needs H W of at least 2, got {input_size}", hint="e.g. --input-size 224 224")
        input_size = (int(input_size[0]), int(input_size[1]))
    if value_range not in ("0-1", "0-255"):
        raise InputError(f"--range {value_range!r}", hint="0-1 or 0-255")
    return {"input_size": input_size, "mean": floats(mean, "--mean"), "std": floats(std, "--std"),
            "value_range": value_range, "bgr": bool(bgr), "class_names": class_names}


def run(inputs: list[str | Path], *, model: str | Path | None = None, out_dir: str | Path | None = None,
        method: str | None = None, masks: int | None = None, grid: int | None = None, keep_prob: float | None = None,
        colors: str | None = None, fill: str | None = None, debias: bool | None = None, target: str | None = None,
        softmax: str | None = None, batch: int | None = None, save_size: str | None = None,
        cuda_graph: bool | None = None, input_size=None, mean=None, std=None, value_range: str = "0-1", bgr: bool = False, class_names=None,
        png: bool = True, pattern: str | None = None, shard: str | None = None, skip_existing: bool = False,
        overwrite: bool = False, fail_fast: bool = False, device=None, amp: bool | None = None,
        seed: int | None = None, sink=None, argv=None) -> list[dict]:
    """Saliency maps of images (files, folders, globs, @list.txt, @-) for the model `model` (a classify checkpoint
    or run folder, TorchScript, or ONNX), loaded once; outputs per stem in `out_dir`: `<stem>.rise.npy` float32
    [C_sel, H, W] or `<stem>.mcrise.npy` [K, C_sel, H, W], `<stem>.json`, PNG overlays (unless `png=False`),
    and `run.json`.

    Defaults: method None (mcrise for 3-channel models, rise otherwise), masks 4000, grid 7, keep_prob None
    (0.5 for RISE, 0.9 for MC-RISE: `predict.py` has the evidence),
    colors "red,green,blue", fill "mean", debias False, target "top1", softmax "auto", batch None (256 CPU,
    1024 CUDA), save_size "model", cuda_graph False (replay the forward from CUDA graphs; on CPU or an ONNX model
    a warning and the eager forward), device "auto", amp True, seed 0. Images are explained in groups
    (`predict.images_per_group`: 8 to 64) that share the masks and the forward batches. Foreign models: input_size (H, W), mean/std
    (ImageNet's), value_range "0-1", bgr False, class_names FILE. Returns the batch records."""
    from wisecli.cli.config import one_of

    from .predict import run_inputs

    v, res = _resolve("run", {"method": method, "masks": masks, "grid": grid, "keep_prob": keep_prob,
                              "colors": colors, "fill": fill, "debias": debias, "target": target, "softmax": softmax,
                              "batch": batch, "save_size": save_size, "cuda_graph": cuda_graph, "device": device,
                              "amp": amp, "seed": seed})
    one_of("--method", v["method"], (None, "rise", "mcrise"))
    one_of("--fill", v["fill"], ("mean", "black", "blur"))
    one_of("--softmax", v["softmax"], ("auto", "on", "off"))
    one_of("--save-size", v["save_size"], ("model", "image"))
    _check_seed(v["seed"])
    mo = _model_opts(input_size, mean, std, value_range, bgr, class_names)
    run_keys = ("device", "amp", "seed")
    settings = {k: x for k, x in v.items() if k not in run_keys}
    return run_inputs(inputs, model=model, out_dir=out_dir, settings=settings, model_opts=mo, pattern=pattern,
                      shard=shard, skip_existing=skip_existing, overwrite=overwrite, fail_fast=fail_fast, png=png,
                      device=v["device"], amp=bool(v["amp"]), seed=int(v["seed"]), sink=sink, argv=argv,
                      config_record=res.as_record())


def _check_seed(seed) -> None:
    from wisecli.cli.errors import InputError

    if seed is not None and int(seed) < 0:
        raise InputError(f"--seed must be 0 or more, got {seed}", hint="the default is 0")


def evaluate(inputs: list[str | Path] | None = None, *, from_dir: str | Path | None = None,
             maps: str | Path | None = None, model: str | Path | None = None, metrics: str | None = None,
             boxes: str | Path | None = None, step: str | None = None, tolerance: float | None = None,
             rank_by: str | None = None, baseline: str | None = None, softmax: str | None = None,
             curves: bool = False, plot: str | Path | None = None, input_size=None, mean=None, std=None,
             value_range: str = "0-1", bgr: bool = False, class_names=None, device=None, seed: int | None = None,
             sink=None) -> dict:
    """Score saliency maps: `from_dir` (the out folder of a `run`: its model, inputs and maps) or `inputs` with
    `maps` (a folder of `<stem>[.rise|.mcrise].npy`, [H, W], [C, H, W] or [K, C, H, W]) and `model`.

    Defaults: metrics "deletion,insertion" (also pointing, which needs `boxes`, and color-deletion), step "auto"
    (224 steps at any size), tolerance 15 px, rank_by "total" (Σ_k |S_k| of MC-RISE maps, or "color:K"),
    baseline "none" ("random": random maps, 3 seeds), softmax "auto", device "auto", seed 0. `curves` adds the
    score curves to the records, `plot` writes a PNG of the mean curves. Returns {records, summary, protocol}."""
    from .predict import evaluate_maps

    v, _ = _resolve("evaluate", {"metrics": metrics, "step": step, "tolerance": tolerance, "rank_by": rank_by,
                                 "baseline": baseline, "softmax": softmax, "device": device, "seed": seed})
    _check_seed(v["seed"])
    mo = _model_opts(input_size, mean, std, value_range, bgr, class_names)
    return evaluate_maps(inputs or [], from_dir=from_dir, maps_dir=maps, model=model, settings=v, model_opts=mo,
                         boxes=boxes, curves=curves, plot=plot, sink=sink)


def demo(quick: bool = False, device=None, *, data: str | None = None, seed: int | None = None, out_dir=None,
         sink=None):
    """Train `small-cnn` 5 epochs on two-colour digit canvases (label = the red digit, a green distractor), explain
    16 test canvases with MC-RISE and RISE (N = 2000) and score them against random maps (`quick`: 1 epoch, N = 500,
    4 canvases). Defaults: device "auto", data "digits" (or mnist5k, photos), seed 0. Returns a
    `runtime.results.DemoResult` (headline accuracy, deletion_auc, deletion_auc_random, pointing, s_green_red);
    PNGs go to `out_dir` when given."""
    from .demo import run_demo

    v, _ = _resolve("demo", {"device": device, "data": data, "seed": seed})
    _check_seed(v["seed"])
    return run_demo(quick=quick, device=v["device"], data=v["data"], seed=int(v["seed"]), out_dir=out_dir, sink=sink)


def info() -> dict:
    """Formats, defaults, onnxruntime and CUDA, the formulas, the N for a target standard error, our choices."""
    from importlib.util import find_spec

    _resolve("info", {})
    import torch

    from wisecli.runtime import demo_weights

    from .demo import WEIGHTS
    from .predict import COLORS

    return {
        "method": METHOD,
        "papers": {"rise": "Petsiuk, Das, Saenko: RISE, BMVC 2018 (arXiv 1806.07421)",
                   "mcrise": "Hatakeyama, Sakuma, Konishi, Suenaga: Visualizing Color-wise Saliency of Black-Box "
                             "Image Classification Models, ACCV 2020 (arXiv 2010.02468)"},
        "models": {"classify": "checkpoint or run folder of 'wise classify train' (its normalisation and size)",
                   "torchscript": "torch.jit file; --input-size H W, --mean, --std, --range, --bgr, --class-names",
                   "onnx": "needs onnxruntime (pip install \"wisecli[onnx]\"); the same options"},
        "onnxruntime": find_spec("onnxruntime") is not None,
        "cuda": torch.cuda.is_available(),
        "inputs": "PNG, JPEG, TIFF, BMP, PPM/PGM images or .npy (H, W[, C])",
        "outputs": {"rise": "<stem>.rise.npy float32 [C_sel, H, W]", "mcrise": "<stem>.mcrise.npy float32 "
                    "[K, C_sel, H, W]", "record": "<stem>.json", "png": "<stem>.c<class>.png / .colors.png",
                    "run": "run.json"},
        "boxes": "Pascal VOC XML folder, COCO instances JSON, CSV/JSONL image,x0,y0,x1,y1,class[,difficult]",
        "colors": {k: list(c) for k, c in COLORS.items()},
        "formulas": {
            "masks": "M = A_y[dy] G A_x[dx]^T (skimage resize order 1 reflect + crop), U = (s+1) ceil(H/s)",
            "rise": "S = 1/(N p1) sum_i f_i M_i; debias: 1/N sum_i f_i (M_i - p1)/(p1 (1 - p1))",
            "mcrise": "S_k = K/(1-q) 1/N sum_i f_i M_ik - 1/q 1/N sum_i f_i M_i0 = E[f | painted k] - E[f | kept]",
            "auc": "(sum s - s_0/2 - s_n/2)/n, step = ceil(HW/224)",
        },
        "suggested_masks": {"note": "N for a standard error of 0.01 at a score std of 0.25, per pixel: "
                            "N ~ (0.25/0.01)^2 (K/(1-q) + 1/q) x mask variance (~0.25)",
                            "mcrise_K3_q0.9": int((0.25 / 0.01) ** 2 * (3 / 0.1 + 1 / 0.9) * 0.25),
                            "mcrise_K3_q0.5": int((0.25 / 0.01) ** 2 * (3 / 0.5 + 1 / 0.5) * 0.25),
                            "rise_p0.5": int((0.25 / 0.01) ** 2 * (1 / 0.5) * 0.25)},
        "choices": {
            "keep_prob": "p1 = 0.5 for RISE, q = 0.9 for MC-RISE (--keep-prob sets either): on the demo's known-truth "
                         "canvases the colour claim held on 4/8 (N = 1000) and 5/8 (N = 4000) at q = 0.5, on 8/8 at "
                         "q = 0.9 for both, and MC-RISE insertion beat random maps only at q >= 0.7",
            "groups": "run explains 8-64 images together (enough that one chunk of masks each fills --batch): "
                      "masks made once per group, forward batches hold masks of several images",
            "cuda_graph": "--cuda-graph captures one CUDA graph per forward shape (PyTorch models on CUDA); on CPU "
                          "or ONNX a warning and the eager forward (same maps); off by default",
            "noise_warning": "run warns when N(1-q)/K < 100 (paintings per pixel and colour)",
            "masks_seed": "chunks of 256 masks seeded by (seed, chunk): maps independent of --batch and device",
            "mcrise_weights": "K/(1-q) and 1/q for every q (XAITK's weights are right only at q = 0.5)",
            "mcrise_space": "composed in the model's input space with normalised colours (equal: affine)",
            "units": "maps in probability units (raw); PNGs normalise",
            "foreign_models": "--mean/--std in the units of --range; defaults ImageNet's (x255 under 0-255)",
            "batch": "256 on CPU, 1024 on CUDA; OOM halves once",
            "rank_by": "MC-RISE deletion ranks sum_k |S_k| (total) or one colour",
            "ties": "stable ranking, ties to the lower pixel index",
            "pointing": "box pixels inclusive; hit when distance < tolerance; all-difficult classes skipped",
        },
        "defaults": {verb: dict(d) for verb, d in DEFAULTS.items() if d},
        "extras": {k: find_spec(k) is not None for k in ("onnxruntime", "xaitk_saliency", "monai")},
        "demo_weights": demo_weights.describe(WEIGHTS),
    }


def benchmark(device=None, quick: bool = False, size: str | None = None) -> list:
    """Race our device RISE/MC-RISE against the public per-mask loop (masks one by one on the CPU with
    scikit-image, stacked, copied, forwarded in fp32 batches of 100), spec §7, on MONAI resnet (random weights):
    `size` "small" (resnet18, 64², N = 500, 2 images; the default with `quick` or on CPU) or "full" (resnet50,
    224², N = 4000, K = 3, 8 images, the loop on 2). Defaults: device "auto", quick False. Returns
    `runtime.results.BenchRecords` (with the constant-box correctness line in its summary)."""
    from wisecli.cli.config import one_of

    from .bench import run as run_bench

    v, _ = _resolve("benchmark", {"device": device, "size": size})
    one_of("--size", v["size"], (None, "small", "full"))
    return run_bench(v["device"], quick=quick, size=v["size"])
