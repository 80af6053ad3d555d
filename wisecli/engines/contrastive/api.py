"""The Python API of `wise contrastive` (the command calls only these): train, evaluate, predict, demo, info,
benchmark, and the `DEFAULTS` of every verb.

CLIM (Li, Zhang, Xiong, "Center-wise Local Image Mixture For Contrastive Representation Learning", BMVC 2021,
arXiv 2011.02697) on a MoCo v2 base: extra positives from the anchor's nearest neighbours that lie closer to
the anchor's cluster centre, mixed with the anchor by cutmix, plus lower-resolution query views.

    from wisecli.engines.contrastive import api
    api.train("builtin:digits", "runs/c", arms="baseline,clim", epochs=6, image_size=16, width=0.125)
    api.evaluate(["runs/c"], train="builtin:digits:train", test="builtin:digits:test")["rows"]

Settings left at None come from `DEFAULTS[verb]`, then `--config`/`WISE_*`/`--set`. Where the spec is silent
the choice is written in the module that makes it (`model.py` views, backbone and bank; `train.py` the recipe,
arms and diagnostics; `algorithm.py` selection and k-means; `metrics.py` the protocols; `predict.py` outputs)
and listed by `info()`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

METHOD = "contrastive"

DEFAULTS: dict[str, dict[str, Any]] = {
    "train": {
        "arms": "clim", "seeds": "0", "arch": "auto", "width": 1.0, "image_size": None, "epochs": 200,
        "batch_size": 256, "lr": None, "tau": 0.2, "queue": 65536, "momentum": None, "k": 10, "clusters": None,
        "clim_start": None, "select": None, "mix": "cutmix", "resolutions": "auto", "positive_key": "bank",
        "same_cluster": True, "symmetric": False, "bank_view": "key", "shuffle_bn": True, "bn_splits": 1, "eval_every": 10, "device": "auto",
        "amp": True,
    },
    "evaluate": {"protocol": "knn,linear", "knn_k": "20,200", "knn_t": 0.07, "linear": "cached", "linear_epochs": 100,
                 "label_fractions": "0.01,0.1", "subsets": 3, "device": "auto", "seed": 0},
    "predict": {"layer": "backbone", "normalize": True, "batch_size": 256, "part_rows": 4096, "device": "auto"},
    "demo": {"device": "auto", "data": "digits"},
    "info": {},
    "benchmark": {"device": "auto", "size": "small"},
}


def _resolve(verb: str, flags: dict[str, Any]) -> dict[str, Any]:
    from wisecli.cli.config import resolve

    return dict(resolve(DEFAULTS[verb], flags=flags).values)


def _bad(msg: str, hint: str):
    from wisecli.cli.errors import InputError

    return InputError(msg, hint=hint)


def _positive(values: dict, *keys: str, allow_zero: tuple = ()) -> None:
    import math

    for k in keys:
        v = values.get(k)
        if v is None:
            continue
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise _bad(f"--{k.replace('_', '-')} {v!r} is not a number", "see --help") from None
        if not math.isfinite(f) or f < 0 or (f == 0 and k not in allow_zero):
            raise _bad(f"--{k.replace('_', '-')} must be a positive number, got {v}", "see --help")


def train(data: str | Path, out_dir: str | Path | None = None, *, val: str | Path | None = None,
          labels: str | Path | None = None, resume: bool = False, overwrite: bool = False, progress: bool = True,
          sink=None, **settings: Any) -> dict:
    """Pretrain an encoder on the images DATA (flat folder, class folder, CSV, .npz, builtin:NAME[:part]) into
    `out_dir`: one arm and seed → the standard run folder (config.json, metrics.jsonl, checkpoints/{last,best}.pt
    with bank and queue, run.json); several → `out_dir/<arm>/seed<s>/` + study.json.

    `settings` are DEFAULTS["train"]: arms "clim", seeds "0", arch "auto", width 1.0, image_size None, epochs
    200, batch_size 256, lr None (0.06 B/256), tau 0.2, queue 65536 (capped at N - B), momentum None (0.99 under
    100 epochs, else 0.999), k 10, clusters None (clip(N/500, 10, 1000)), clim_start None (10 % of the epochs,
    >= 1), select None (the arm's), mix "cutmix", resolutions "auto", positive_key "bank", same_cluster True,
    symmetric False, bank_view "key", shuffle_bn True (MoCo's shuffling BN across DDP ranks), bn_splits 1 (S > 1:
    S BN sub-batches on one process with the key batch shuffled among them), eval_every 10, device "auto", amp True. `val`: labelled data for online
    kNN; `labels`: a CSV path,label for diagnostics. Returns the run summary (or {study, runs})."""
    from wisecli.runtime.device import as_device

    from .train import ARMS, parse_list, run_train

    v = _resolve("train", settings)
    arms = parse_list(v["arms"], "--arms")
    for a in arms:
        if a not in ARMS:
            raise _bad(f"unknown arm {a!r}", "arms: " + ", ".join(ARMS))
    seeds = parse_list(v["seeds"], "--seeds", int)
    if not arms or not seeds or min(seeds) < 0:
        raise _bad("--arms and --seeds need at least one value (seeds >= 0)", "e.g. --arms baseline,clim --seeds 0,1")
    _positive(v, "width", "epochs", "batch_size", "lr", "tau", "queue", "k", "clusters", "clim_start", "eval_every",
              "image_size", "bn_splits", allow_zero=("clim_start",))
    for key in ("epochs", "batch_size", "queue", "k", "clusters", "eval_every", "image_size", "clim_start", "bn_splits"):
        if v.get(key) is not None and float(v[key]) != int(float(v[key])):
            raise _bad(f"--{key.replace('_', '-')} must be a whole number, got {v[key]}", "see --help")
    if int(float(v["batch_size"])) % int(float(v["bn_splits"])):
        raise _bad(f"--batch-size {v['batch_size']} is not divisible by --bn-splits {v['bn_splits']}",
                   f"use a batch size that is a multiple of {v['bn_splits']}")
    if v["momentum"] is not None and not 0 <= float(v["momentum"]) < 1:
        raise _bad(f"--momentum must be in [0, 1), got {v['momentum']}", "e.g. 0.99")
    choices = {"arch": ("auto", "monai-resnet18", "monai-resnet34", "monai-resnet50"),
               "select": (None, "center", "nn", "none"), "mix": ("cutmix", "mixup", "none"),
               "positive_key": ("bank", "fresh"), "bank_view": ("key", "eval")}
    for k, allowed in choices.items():
        if v[k] not in allowed:
            raise _bad(f"--{k.replace('_', '-')} {v[k]!r} is not one of {', '.join(a for a in allowed if a)}", "see --help")
    if out_dir is None:
        raise _bad("train needs -o RUN (the run folder)", "e.g. -o runs/clim")
    device = as_device(v.pop("device"), sink=sink)
    amp = bool(v.pop("amp"))
    cfg = {k: v[k] for k in v if k not in ("arms", "seeds")}
    for k in ("epochs", "batch_size", "queue", "k", "bn_splits"):
        cfg[k] = int(float(cfg[k]))
    cfg["shuffle_bn"] = bool(cfg["shuffle_bn"])
    return run_train(data, Path(out_dir), cfg=cfg, device=device, amp=amp, seeds=seeds, arms=arms, resume=resume,
                     overwrite=overwrite, progress=progress, sink=sink, val=val, labels=labels)


def evaluate(inputs: list[str | Path], *, train: str | Path | None = None, test: str | Path | None = None,
             protocol: str | None = None, knn_k: str | None = None, knn_t: float | None = None,
             linear: str | None = None, linear_epochs: int | None = None, label_fractions: str | None = None, subsets: int | None = None,
             label_subset: str | Path | None = None, device=None, seed: int | None = None, sink=None) -> dict:
    """Evaluate runs, checkpoints or study folders on labelled `train`/`test` data with frozen features:
    `knn` (k list, T), `linear` (`cached` L-BFGS probe on cached features, or `augmented`: MoCo's SGD lr 30
    probe on fresh crops for `linear_epochs` epochs), `semi` (fine-tuning on label fractions, `subsets` draws).

    Defaults: protocol "knn,linear", knn_k "20,200", knn_t 0.07, linear "cached", linear_epochs 100, label_fractions "0.01,0.1",
    subsets 3, device "auto", seed 0. Returns {rows: [{arm, protocol, k, fraction, top1_mean, top1_std, n_runs,
    delta_vs_baseline, delta_std, train, test}], runs, ...}."""
    from wisecli.runtime.device import as_device

    from .predict import evaluate_runs
    from .train import parse_list

    v = _resolve("evaluate", {"protocol": protocol, "knn_k": knn_k, "knn_t": knn_t, "linear": linear,
                              "linear_epochs": linear_epochs, "label_fractions": label_fractions, "subsets": subsets, "device": device, "seed": seed})
    if not inputs:
        raise _bad("evaluate needs RUN, study folder or checkpoint", "e.g. wise contrastive evaluate runs/c --train D --test D")
    for p in inputs:
        if not Path(p).exists():
            raise _bad(f"run or checkpoint not found: {p}", "give a run folder, a study folder or a .pt file")
    if train is None or test is None:
        raise _bad("evaluate needs --train and --test (labelled data)", "class sub-folders, a CSV path,label or builtin:NAME:part")
    protocols = parse_list(v["protocol"], "--protocol")
    for p in protocols:
        if p not in ("knn", "linear", "semi"):
            raise _bad(f"unknown protocol {p!r}", "protocols: knn, linear, semi")
    ks = parse_list(v["knn_k"], "--knn-k", int)
    fracs = parse_list(v["label_fractions"], "--label-fractions", float)
    if not ks or min(ks) < 1:
        raise _bad("--knn-k needs positive integers", "e.g. 20,200")
    if not fracs or not all(0 < f <= 1 for f in fracs):
        raise _bad("--label-fractions must lie in (0, 1]", "e.g. 0.01,0.1")
    _positive(v, "knn_t", "subsets", "linear_epochs")
    if float(v["linear_epochs"]) != int(float(v["linear_epochs"])):
        raise _bad(f"--linear-epochs must be a whole number, got {v['linear_epochs']}", "the default is 100")
    if int(v["seed"]) < 0:
        raise _bad(f"--seed must be 0 or more, got {v['seed']}", "the default is 0")
    if v["linear"] not in ("cached", "augmented"):
        raise _bad(f"--linear {v['linear']!r} is not cached or augmented", "see --help")
    return evaluate_runs([Path(p) for p in inputs], train, test, protocols=protocols, knn_k=ks,
                         knn_t=float(v["knn_t"]), linear=v["linear"], fractions=fracs, subsets=int(v["subsets"]),
                         label_subset=label_subset, device=as_device(v["device"], sink=sink), seed=int(v["seed"]),
                         sink=sink, linear_epochs=int(float(v["linear_epochs"])))


def predict(inputs: list[str | Path], weights: str | Path | None = None, out_dir: str | Path | None = None, *,
            layer: str | None = None, normalize: bool | None = None, batch_size: int | None = None,
            part_rows: int | None = None, shard: str | None = None, overwrite: bool = False,
            skip_existing: bool = False, device=None, sink=None) -> dict:
    """Embed images (files, folders, globs, @list.txt, @-) with the encoder `weights` into `out_dir`:
    parts of `part_rows` rows, merged into embeddings.npy (float16 [n, D]) + index.jsonl ({row, input}).

    Defaults: layer "backbone" (or "projection"), normalize True (L2), batch_size 256, part_rows 4096, device
    "auto". Returns {output, embeddings, index, rows, dim, records: [{input, status, row}]}."""
    from wisecli.runtime.device import as_device

    from .predict import predict_inputs

    v = _resolve("predict", {"layer": layer, "normalize": normalize, "batch_size": batch_size,
                             "part_rows": part_rows, "device": device})
    _positive(v, "batch_size", "part_rows")
    if v["layer"] not in ("backbone", "projection"):
        raise _bad(f"--layer {v['layer']!r} is not backbone or projection", "see --help")
    return predict_inputs([str(i) for i in inputs], weights, out_dir, layer=v["layer"], normalize=bool(v["normalize"]),
                          batch_size=int(v["batch_size"]), part_rows=int(v["part_rows"]), shard=shard,
                          overwrite=overwrite, skip_existing=skip_existing, device=as_device(v["device"], sink=sink),
                          sink=sink)


def demo(quick: bool = False, device=None, *, data: str | None = None, sink=None, **overrides: Any):
    """Train `baseline` and `clim` on sklearn digits at 16x16 (8 epochs, quick: 2 epochs on 512 images), evaluate
    kNN and the linear probe, and check the selection claim. Defaults: quick False, device "auto", data "digits".
    Returns a `runtime.results.DemoResult` with headline {knn_baseline, knn_clim, purity_center, purity_nn}."""
    from wisecli.runtime.device import as_device

    from .demo import run_demo

    v = _resolve("demo", {"device": device, "data": data})
    if v["data"] not in ("digits", "mnist5k"):
        raise _bad(f"--data {v['data']!r} is not digits or mnist5k", "see --help")
    return run_demo(quick=quick, device=as_device(v["device"], sink=sink), data=v["data"], sink=sink, **overrides)


def info() -> dict:
    """Formats, defaults, arms, our choices and the extras present (faiss, mlxtend)."""
    from importlib.util import find_spec

    _resolve("info", {})
    return {
        "method": METHOD,
        "paper": "Li, Zhang, Xiong: Center-wise Local Image Mixture For Contrastive Representation Learning, BMVC 2021 (arXiv 2011.02697)",
        "base": "MoCo v2 (He et al. CVPR 2020; Chen et al. arXiv 2003.04297)",
        "arms": {"baseline": "MoCo v2 instance discrimination", "nn": "top-1 neighbour positive (NNCLR-like)",
                 "center": "centre-filtered neighbours, positive key only", "center-mix": "+ cutmix/mixup with the anchor",
                 "clim": "+ multi-resolution query views (default)"},
        "backbones": ["auto", "monai-resnet18", "monai-resnet34", "monai-resnet50"],
        "readers": {"folder": "flat folder (unlabelled) or root/<class>/*.png", "csv": "path,label[,split]",
                    "npz": "X [, y]", "builtin": ["builtin:digits[:part]", "builtin:mnist5k[:part]"]},
        "choices": {
            "selection": "P(i) = {j in N_k(i): cluster(j) = cluster(i), <v_j, c(i)> > <v_i, c(i)>}; empty -> j = i",
            "purity": "train_purity: label agreement of a uniform draw from P(i), over anchors with a positive; "
                      "train_purity_nn / train_purity_knn: top-1 neighbour / all k neighbours over the same anchors and "
                      "bank; train_purity_nn_all: top-1 over all anchors",
            "clim_start": "epochs 1..clim_start are instance discrimination; selection from epoch clim_start + 1",
            "bank_view": "key (spec: training keys, no extra pass) or eval (refresh from eval views each epoch)",
            "blur": "sigma range [0.1, 2] scaled by image_size / 224",
            "hue": "a rotation of the YIQ chroma plane (affine per sample), fixed jitter order",
            "resolutions_auto": "224-px ratios 192,160,128,96 rounded to multiples of 4, kept if >= 8 and < S",
            "linear": "cached (default): L-BFGS probe on standardised cached features, l2 from a grid on a 10% hold-out; "
                      "augmented: MoCo's protocol (SGD lr 30, momentum 0.9, no wd, 100 epochs, lr x 0.1 at 60/80, "
                      "random resized crop 0.08-1 + flip on the device, frozen eval-mode backbone)",
            "ddp": "keys/indices all-gathered; shuffling BN across ranks (MoCo's batch shuffle/unshuffle) with --shuffle-bn",
            "shuffle_bn": "one process: plain key BN unless --bn-splits S > 1 (S BN sub-batches, MoCo's SplitBatchNorm, "
                          "key batch shuffled among them)",
        },
        "defaults": DEFAULTS["train"],
        "extras": {k: find_spec(k) is not None for k in ("faiss", "mlxtend", "monai", "cv2")},
    }


def benchmark(device=None, quick: bool = False, *, size: str | None = None) -> list:
    """Race our device kNN, k-means, augmentation and cutmix against scikit-learn / per-sample CPU peers in one
    process (`runtime.bench.race`), spec §7. Defaults: device "auto", quick False, size "small" (CPU-sized:
    bank 20k x 64, 100 clusters, 32 px, batch 32), "ci" (256k bank, GPU preset) or "full" (the spec's table).
    Returns `runtime.results.BenchRecords`."""
    from wisecli.runtime.device import as_device

    from .bench import run

    v = _resolve("benchmark", {"device": device, "size": size})
    if v["size"] not in ("small", "ci", "full"):
        raise _bad(f"--size {v['size']!r} is not small, ci or full", "see --help")
    return run(as_device(v["device"]), quick, v["size"])
