"""The Python API of `wise reid` (the command calls only these): train, predict, evaluate, query, demo, info,
benchmark, and the `DEFAULTS` of every verb.  VCAM (Chen et al., CVPRW 2020) on a bag-of-tricks ResNet
baseline; `no_vcam=True` is the baseline.  A notebook user gets what a terminal user gets:

    from wisecli.engines.reid import api
    api.train("VeRi", "run", viewpoints="dataset.csv", epochs=120)
    api.predict(["VeRi/image_query"], weights="run", output="q.npz", parse_names="veri")
    api.evaluate(query=["q.npz"], gallery=["g.npz"], rerank=True)["mAP"]

Settings left at None come from `DEFAULTS[verb]`, then `--config`/`WISE_*`/`--set` (`cli.config.resolve`).
A device is "auto", "cpu", "cuda", "cuda:N" or a torch.device.

Choices where the spec is silent (each an option):
- `--no-vcam` models have no viewpoint head; their features files carry no `viewpoint_probs`.
- The viewpoint head reads the image at min(128, input size)^2 (128^2 in the paper-sized setting; the CPU demo
  runs at 64^2).
- `query --exclude-same-camera` drops every gallery item of the query's camera (the query's id is unknown in
  general; with known ids this includes the VeRi junk rule).
- Training without a viewpoint file learns the head only through the re-ID loss and records
  `viewpoint_supervision: "none"`; the re-ID gradient is then not stopped (nothing else would train the head).
- `evaluate --explain` groups the channel weights by the head's predicted viewpoint class.
- `evaluate --aic-submit FILE` (format and choices in `submit.py`) keeps reporting the metrics where there is
  ground truth (the held-out id split of an AIC folder with train_label.xml; features files with ids) and skips
  them otherwise (`metrics_skipped`), since the submission itself needs none.
- `predict` writes one features file for all its inputs: `--skip-existing` skips it when it is there and
  whole (writes are atomic); an unreadable image among several is an item error (exit 3, the file keeps the
  rest), a lone unreadable input is an input error (exit 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

METHOD = "reid"

_RUN = {"batch_size": 256, "device": "auto", "amp": True}
_RERANK = {"rerank": False, "k1": 20, "k2": 6, "lam": 0.3}

DEFAULTS: dict[str, dict[str, Any]] = {
    "train": {
        "layout": "veri", "viewpoints": None, "viewpoint_format": "span", "viewpoint_classes": 5, "pretrained": None,
        "arch": "resnet50", "vcam_stages": "1,2,3,4", "no_vcam": False, "vcam_gate": "scaled", "vcam_hidden": 0,
        "detach_viewpoint": True, "vp_weight": 1.0, "input_size": 256, "p": 16, "k": 4, "epochs": 120,
        "lr": 3.5e-4, "weight_decay": 5e-4, "warmup_epochs": 10, "milestones": "40,70", "eval_every": 10,
        "embed": "post-bn", "allow_partial": False, "val_ids": 0.1, "width": 1.0, "seed": 0, **_RUN,
    },
    "predict": {"half": False, "parse_names": None, **_RUN},
    "evaluate": {"layout": "veri", "ap_mode": "standard", **_RERANK, "max_rank": 50, "viewpoint_format": "span",
                 "check_lists": False, "allow_partial": False, "val_ids": 0.1, "fast": False, "seed": 0, **_RUN},
    "query": {"top": 10, **_RERANK, "exclude_same_camera": False, "camera": None, **_RUN},
    "demo": {"device": "auto", "arch": "resnet18"},
    "info": {},
    "benchmark": {"device": "auto"},
}
_RUN_KEYS = ("device", "amp", "seed")


def _resolve(verb: str, flags: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """DEFAULTS[verb] < --config < WISE_* < --set < the given values (a torch.device passes as it is)."""
    from wisecli.cli.config import resolve

    res = resolve(DEFAULTS[verb], flags=flags)
    return dict(res.values), res


def train(data: str | Path, out_dir: str | Path | None = None, *, resume: bool = False, overwrite: bool = False,
          progress: bool = True, sink=None, **settings: Any) -> dict:
    """Train VCAM (or the `no_vcam=True` baseline) into the run folder `out_dir` with the shared trainer.

    `data`: a VeRi-776 or AIC folder, or a manifest CSV (`layout`). The run folder follows the rule of every
    train: a non-empty folder needs `resume` (continue from checkpoints/last.pt) or `overwrite` (start again).
    `settings` are the keys of `DEFAULTS["train"]` (None: the default): layout "veri", viewpoints None (a label
    file), viewpoint_format "span", viewpoint_classes 5, pretrained None (an ImageNet state dict or a reid
    checkpoint), arch "resnet50", vcam_stages "1,2,3,4", no_vcam False, vcam_gate "scaled", vcam_hidden 0,
    detach_viewpoint True, vp_weight 1.0, input_size 256, p 16, k 4, epochs 120, lr 3.5e-4, weight_decay 5e-4,
    warmup_epochs 10, milestones "40,70", eval_every 10, embed "post-bn", allow_partial False, val_ids 0.1,
    width 1.0, batch_size 256 (evaluation), device "auto", amp True, seed 0.
    Writes config.json, metrics.jsonl, checkpoints/last.pt|best.pt and run.json; returns the summary
    {run_dir, epochs, best_metric, best_epoch, last, device, viewpoint_supervision, seconds}."""
    from .train import run_training

    values, res = _resolve("train", settings)
    run = {k: values.pop(k) for k in _RUN_KEYS}
    return run_training(Path(data), None if out_dir is None else Path(out_dir), cfg=values,
                        config_record=res.as_record(), device=run["device"], amp=run["amp"], seed=int(run["seed"]),
                        resume=resume, overwrite=overwrite, progress=progress, sink=sink)


def predict(inputs: list[str | Path], weights: str | Path | None = None, output: str | Path | None = None, *,
            half: bool | None = None, parse_names: str | None = None, pattern: str | None = None,
            shard: str | None = None, overwrite: bool = False, skip_existing: bool = False,
            batch_size: int | None = None, device=None, amp: bool | None = None, sink=None, argv=None) -> dict:
    """Embed images (files, folders, globs, @list.txt) with the model `weights` (a checkpoint or its run folder)
    loaded once, into one features file `output` (.npz, atomic; `shard` "I/N" writes `.part-I-of-N.npz`).

    Defaults: half False (float16 features), parse_names None ("veri": ids and cameras from VeRi names),
    batch_size 256, device "auto", amp True. An existing output is refused unless `overwrite`; with
    `skip_existing` a whole one is skipped (status "skipped"). Unreadable images among several go to
    `<output>.errors.jsonl` and leave the file (their records have status "error": exit 3); a lone unreadable
    input is an InputError. Returns {output, status, images, errors, dim, embed, model_sha256, device, seconds,
    images_per_s, records: one per image}."""
    from .predict import predict_features

    v, _ = _resolve("predict", {"half": half, "parse_names": parse_names, "batch_size": batch_size,
                                "device": device, "amp": amp})
    return predict_features(list(inputs), weights, None if output is None else Path(output), half=v["half"],
                            parse_names=v["parse_names"], pattern=pattern, shard=shard, overwrite=overwrite,
                            skip_existing=skip_existing, device=v["device"], amp=v["amp"],
                            batch_size=int(v["batch_size"]), sink=sink, argv=argv)


def evaluate(data: str | Path | None = None, *, weights: str | Path | None = None,
             query: list[str | Path] | None = None, gallery: list[str | Path] | None = None,
             layout: str | None = None, ap_mode: str | None = None, rerank: bool | None = None, k1: int | None = None,
             k2: int | None = None, lam: float | None = None, max_rank: int | None = None,
             per_query: str | Path | None = None, explain: str | Path | None = None,
             viewpoints: str | Path | None = None, viewpoint_format: str | None = None,
             check_lists: bool | None = None, allow_partial: bool | None = None, val_ids: float | None = None,
             aic_submit: str | Path | None = None, overwrite: bool = False, fast: bool | None = None,
             batch_size: int | None = None, device=None, amp: bool | None = None, seed: int | None = None,
             sink=None) -> dict:
    """mAP (standard and official AP), CMC and mINP of query against gallery: from features files
    (`query`/`gallery`, several parts each) or by embedding `data` with `weights` (layout veri|aic|manifest).

    Defaults: layout "veri", ap_mode "standard" (the headline `mAP`; both are reported), rerank False (k1 20,
    k2 6, lam 0.3), max_rank 50, viewpoint_format "span", check_lists False, allow_partial False, val_ids 0.1
    (AIC: held-out id fraction), fast False (TF32 on CUDA), batch_size 256, device "auto", amp True, seed 0.
    Optional outputs: per_query (JSONL streamed as computed), explain (folder: VCAM channel weights per
    viewpoint, CSV + PNG), aic_submit (the AI City 2020 Track 2 file; refused when it exists unless overwrite).
    Returns the metrics document (see the spec §3), with `seconds` and `device`."""
    from wisecli.cli.errors import InputError

    from .metrics import evaluate_run

    if weights is None and data is not None:
        raise InputError("DATA needs --weights", hint="or give --query q.npz --gallery g.npz")
    v, _ = _resolve("evaluate", {"layout": layout, "ap_mode": ap_mode, "rerank": rerank, "k1": k1, "k2": k2,
                                 "lam": lam, "max_rank": max_rank, "viewpoint_format": viewpoint_format,
                                 "check_lists": check_lists, "allow_partial": allow_partial, "val_ids": val_ids,
                                 "fast": fast, "seed": seed, "batch_size": batch_size, "device": device, "amp": amp})
    p = lambda x: None if x is None else Path(x)  # noqa: E731
    return evaluate_run(query_files=query, gallery_files=gallery, weights=p(weights), data=p(data),
                        layout=v["layout"], ap_mode=v["ap_mode"], rerank=v["rerank"], k1=v["k1"], k2=v["k2"],
                        lam=v["lam"], max_rank=v["max_rank"], per_query=p(per_query), explain=p(explain),
                        check_lists=v["check_lists"], allow_partial=v["allow_partial"], val_ids=v["val_ids"],
                        seed=int(v["seed"]), viewpoints=p(viewpoints), viewpoint_format=v["viewpoint_format"],
                        aic_submit=p(aic_submit), overwrite=overwrite, device=v["device"], amp=v["amp"],
                        fast=v["fast"], batch_size=int(v["batch_size"]), sink=sink)


def query(queries: list[str | Path], *, gallery: list[str | Path] | None = None, weights: str | Path | None = None,
          top: int | None = None, rerank: bool | None = None, k1: int | None = None, k2: int | None = None,
          lam: float | None = None, exclude_same_camera: bool | None = None, camera: int | None = None,
          plot: str | Path | None = None, gallery_cache: str | Path | None = None, batch_size: int | None = None,
          device=None, amp: bool | None = None, sink=None) -> list[dict]:
    """The top gallery matches of each query image; `gallery` is features parts (.npz) or one image folder
    (embedded once; cached in `gallery_cache` .npz when given).

    Defaults: top 10, rerank False (k1 20, k2 6, lam 0.3), exclude_same_camera False (the query camera from its
    VeRi name, or `camera`), batch_size 256, device "auto", amp True; `plot` writes a rank-list montage PNG.
    Returns [{query, results: [{rank, path, distance, id, camera}]}]."""
    from .query import query_gallery

    v, _ = _resolve("query", {"top": top, "rerank": rerank, "k1": k1, "k2": k2, "lam": lam,
                              "exclude_same_camera": exclude_same_camera, "camera": camera,
                              "batch_size": batch_size, "device": device, "amp": amp})
    return query_gallery(list(queries), gallery=gallery, weights=weights, top=int(v["top"]), rerank=v["rerank"],
                         k1=int(v["k1"]), k2=int(v["k2"]), lam=float(v["lam"]),
                         exclude_same_camera=v["exclude_same_camera"], camera=v["camera"], plot=plot,
                         gallery_cache=gallery_cache, device=v["device"], amp=v["amp"],
                         batch_size=int(v["batch_size"]), sink=sink)


def demo(quick: bool = False, device=None, *, sink=None, work_dir: str | Path | None = None, arch: str | None = None,
         **overrides: Any):
    """Render synthetic vehicles, train a small VCAM model and its --no-vcam baseline from the same initial
    weights, evaluate both in both AP modes: SYNTHETIC VEHICLES, NOT A BENCHMARK. Nothing survives in $TMPDIR.

    Defaults: quick False (True: no training; the shipped pair from `demo.RECIPE` on the held-out identities,
    gated on `demo.GATE_QUICK`: viewpoint accuracy and mAP; the gain is reported), device "auto", arch "resnet18";
    `overrides` change the preset (epochs, seeds, size, ...). Returns a `runtime.results.DemoResult`: gates
    "finite mAP" (not quick), the quick gate above, and on CUDA (not quick) "VCAM mAP > baseline mAP, mean of the seeds" (spec §9); details
    hold title, rows (VCAM, baseline), runs, seeds, device."""
    from .demo import run_demo

    v, _ = _resolve("demo", {"device": device, "arch": arch})
    return run_demo(quick=quick, device=v["device"], sink=sink, work_dir=None if work_dir is None else Path(work_dir),
                    arch=v["arch"], train_defaults=DEFAULTS["train"], **overrides)


def info() -> dict:
    """Layouts, viewpoint formats, the train defaults, the device and importable extras (torchreid)."""
    from importlib.util import find_spec

    import torch

    from wisecli.runtime import demo_weights

    from . import demo as demo_mod

    _resolve("info", {})  # reads --config/--set like every verb (an unreadable file is exit 2)
    cuda = torch.cuda.is_available()
    return {"method": METHOD,
            "paper": "Chen et al., Viewpoint-Aware Channel-Wise Attentive Network for Vehicle Re-Identification, "
                     "CVPRW 2020 (arXiv 2010.05810)",
            "layouts": {"veri": "image_{train,query,test}/ + name_{train,query,test}.txt (+ gt_image.txt, jk_image.txt)",
                        "aic": "AIC20_ReID: image_train/ + train_label.xml; evaluation on a held-out id split (--val-ids); "
                               "evaluate --aic-submit FILE ranks image_test/ for image_query/ (Track 2 file)",
                        "manifest": "CSV path,id,camera,split[,viewpoint]; split in train/query/gallery"},
            "viewpoint_formats": {"span": "CSV filename,viewpoint (0 front,1 rear,2 side,3 front-side,4 rear-side)",
                                  "keypoint": "img_path x1 y1 ... x20 y20 orien (8 orientations)",
                                  "csv": "CSV filename,viewpoint with class names or indices"},
            "defaults": DEFAULTS["train"],
            "demo_weights": demo_weights.describe(demo_mod.WEIGHTS),
            "evaluate": {"ap_modes": ["standard", "official"], "rerank": {"k1": 20, "k2": 6, "lambda": 0.3},
                         "junk": "same id and same camera; id -1 distractors"},
            "features_npz": ["features", "paths", "ids", "cameras", "viewpoint_probs", "model_sha256", "embed",
                             "normalised"],
            "device": torch.cuda.get_device_name(0) if cuda else "cpu",
            "extras": {"torchreid": find_spec("torchreid") is not None}}


def benchmark(device=None, quick: bool = False) -> list:
    """Race our evaluation, re-ranking and (CUDA) embedding against the peers (`peers.py`: numpy per-query loop,
    dense numpy re-ranking; fp32 embedding) in one process on one device, with `runtime.bench.race`.

    Defaults: device "auto", quick False (True: seconds-sized cases). Returns `runtime.results.BenchRecords`
    (case, ours_s, peer, peer_s, speedup, device, and each case's agreement figures with `agree`) whose summary
    is the spec's document {device, eval, rerank, ratios}."""
    from .bench import run

    v, _ = _resolve("benchmark", {"device": device})
    return run(v["device"], quick)


if __name__ == "__main__":  # python -m wisecli.engines.reid.api: regenerate the shipped demo weights (demo.RECIPE)
    from wisecli.engines.reid import demo as _demo

    print(_demo.write_demo_weights(DEFAULTS["train"]))
