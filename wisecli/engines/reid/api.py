"""The Python API of `wise reid` (the command calls only these): train, predict, evaluate, query, demo, info,
benchmark.  VCAM (Chen et al., CVPRW 2020) on a bag-of-tricks ResNet baseline; `use_vcam=False` is the baseline.

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
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from wisecli.cli.errors import InputError

METHOD = "reid"

TRAIN_DEFAULTS = {
    "layout": "veri", "viewpoints": "", "viewpoint_format": "span", "viewpoint_classes": 5, "pretrained": "",
    "arch": "resnet50", "vcam_stages": "1,2,3,4", "no_vcam": False, "vcam_gate": "scaled", "vcam_hidden": 0,
    "detach_viewpoint": True, "vp_weight": 1.0, "input_size": 256, "p": 16, "k": 4, "epochs": 120,
    "lr": 3.5e-4, "weight_decay": 5e-4, "warmup_epochs": 10, "milestones": "40,70", "eval_every": 10,
    "embed": "post-bn", "allow_partial": False, "val_ids": 0.1, "batch_size": 256, "width": 1.0,
}


def _stages(text: str) -> tuple[int, ...]:
    try:
        st = tuple(sorted({int(s) for s in str(text).split(",") if s.strip()}))
    except ValueError:
        st = ()
    if not st or any(s not in (1, 2, 3, 4) for s in st):
        raise InputError(f"--vcam-stages {text!r}: give stage numbers 1-4", hint="e.g. --vcam-stages 1,2,3,4")
    return st


def model_config(cfg: dict, num_ids: int, supervised: bool) -> dict:
    """The self-describing model part of checkpoints."""
    return {"num_ids": num_ids, "arch": cfg["arch"], "use_vcam": not cfg["no_vcam"],
            "vcam_stages": list(_stages(cfg["vcam_stages"])), "viewpoint_classes": int(cfg["viewpoint_classes"]),
            "vcam_gate": cfg["vcam_gate"], "vcam_hidden": int(cfg["vcam_hidden"]),
            "detach_viewpoint": bool(cfg["detach_viewpoint"] and supervised), "embed": cfg["embed"],
            "input_size": int(cfg["input_size"]), "width": float(cfg["width"])}


def check_train_config(cfg: dict) -> None:
    from .model import ARCHS

    if cfg["arch"] not in ARCHS:
        raise InputError(f"unknown --arch {cfg['arch']!r}", hint="resnet50, resnet34 or resnet18")
    if cfg["vcam_gate"] not in ("scaled", "sigmoid"):
        raise InputError(f"unknown --vcam-gate {cfg['vcam_gate']!r}", hint="scaled (2 sigmoid, default) or sigmoid")
    if int(cfg["viewpoint_classes"]) not in (5, 8):
        raise InputError("--viewpoint-classes must be 5 or 8", hint="5: SPAN classes; 8: the keypoint set")
    if cfg["embed"] not in ("post-bn", "pre-bn"):
        raise InputError(f"unknown --embed {cfg['embed']!r}", hint="post-bn or pre-bn")
    if not 0 < float(cfg["width"]) <= 4:
        raise InputError(f"--width must be in (0, 4], got {cfg['width']}", hint="1.0 is the ImageNet layout")
    for key in ("p", "k", "epochs", "input_size"):
        if int(cfg[key]) < 1 or (key in ("p", "k") and int(cfg[key]) < 2):
            raise InputError(f"--{key.replace('_', '-')} is too small: {cfg[key]}", hint="P >= 2, K >= 2, epochs >= 1")
    _stages(cfg["vcam_stages"])


# ---------------------------------------------------------------------------------------------- training
def _prepare_training(data, cfg: dict, device: torch.device, sink, seed: int, rank: int = 0, world: int = 1):
    """Splits, labels, the cached loader pieces and the model (with --pretrained); shared by train and demo."""
    from .data import attach_viewpoints, decode_images, load_layout, read_viewpoints
    from .predict import build_model
    from .model import load_pretrained

    check_train_config(cfg)
    splits = load_layout(data, cfg["layout"], allow_partial=cfg["allow_partial"], val_ids=cfg["val_ids"], seed=seed)
    train = splits["train"]
    if len(train) == 0:
        raise InputError("no training images", hint="check DATA and --layout")
    vp_report = {"viewpoint_supervision": "none"}
    if cfg["viewpoints"]:
        labels = read_viewpoints(cfg["viewpoints"], cfg["viewpoint_format"], int(cfg["viewpoint_classes"]))
        vp_report = {"viewpoint_supervision": "labels", **attach_viewpoints(train, labels)}
    elif (train.viewpoints >= 0).any():
        vp_report = {"viewpoint_supervision": "labels", "labelled": int((train.viewpoints >= 0).sum())}
    uniq = np.unique(train.ids)
    label_of = {int(u): i for i, u in enumerate(uniq)}
    from .sampler import PKSampler

    sampler = PKSampler(train.ids, int(cfg["p"]), int(cfg["k"]), seed=seed, rank=rank, world_size=world)
    labels = torch.tensor([label_of[int(i)] for i in train.ids], dtype=torch.long)
    vps = torch.as_tensor(train.viewpoints, dtype=torch.long)
    mc = model_config(cfg, len(uniq), vp_report["viewpoint_supervision"] == "labels")
    model = build_model(mc)
    pre = None
    if cfg["pretrained"]:
        pre_path = Path(cfg["pretrained"])
        if not pre_path.is_file():
            raise InputError(f"--pretrained {pre_path}: no such file", hint="give an ImageNet ResNet state dict (.pth)")
        try:
            state = torch.load(pre_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input
            raise InputError(f"cannot load --pretrained {pre_path}: {str(exc).splitlines()[0][:160]}",
                             hint="a torchvision-style state dict saved with torch.save") from None
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        try:
            pre = load_pretrained(model, state)
        except ValueError as exc:
            raise InputError(f"--pretrained shape mismatch: {exc}", hint=f"use an ImageNet {cfg['arch']} state dict") from None
        for kind in ("missing", "unexpected"):
            if pre[kind]:
                sink.warn(f"--pretrained: {len(pre[kind])} {kind} keys, e.g. {pre[kind][0]}")
    else:
        sink.info("no --pretrained weights: training starts from random initialisation")
    size = int(cfg["input_size"])
    t0 = time.perf_counter()
    images, errors = decode_images(train.paths, size)
    if errors:
        raise InputError(f"{len(errors)} training images are unreadable, e.g. {train.paths[errors[0][0]]}",
                         hint="remove them from the lists or the manifest")
    sink.info(f"decoded {len(train)} training images at {size}^2 in {time.perf_counter() - t0:.1f}s")
    if device.type == "cuda" and images.numel() < 0.4 * torch.cuda.mem_get_info(device)[0]:
        images = images.to(device)  # the whole set on the GPU as uint8 (spec §7)
    return splits, sampler, images, labels, vps, model, mc, vp_report, pre


def _validator(splits, mc, device, amp, batch, every: int, epochs: int):
    """validate(model, epoch) for the trainer (1-based epochs): query/gallery mAP, R1, mINP at epoch 1, every
    `every` epochs and at the last; between evaluations it repeats the latest values, marked by
    `evaluated_epoch`, so the trainer's monitor always exists and best.pt only moves on a real evaluation."""
    from .data import decode_images
    from .predict import embed_uint8
    from .metrics import evaluate_ranking

    q, g = splits["query"], splits["gallery"]
    if len(q) == 0 or len(g) == 0:
        return None
    qi, _ = decode_images(q.paths, mc["input_size"])
    gi, _ = decode_images(g.paths, mc["input_size"])
    latest: dict = {}

    def validate(model, epoch: int) -> dict:
        if latest and not (epoch == 1 or epoch == epochs or (every > 0 and epoch % every == 0)):
            return latest
        qf, _, _ = embed_uint8(model, qi, device, batch=batch, amp=amp)
        gf, _, _ = embed_uint8(model, gi, device, batch=batch, amp=amp)
        r = evaluate_ranking(q.ids, g.ids, q.cams, g.cams, qf=qf, gf=gf, device=device)
        latest.update({"mAP": r["mAP_standard"], "mAP_official": r["mAP_official"], "R1": r["cmc"][0],
                       "mINP": r["mINP"], "evaluated_epoch": epoch})
        return latest

    return validate


def train(data: Path, run_dir: Path, *, cfg: dict, config_record: dict, device_spec: str = "auto", amp: bool = True,
          seed: int = 0, resume: bool = False, progress: bool = True, sink=None) -> dict:
    """Train a VCAM (or baseline) model into `run_dir` with the shared trainer; returns the summary."""
    from wisecli.runtime.device import device_name, init_distributed, seed_everything
    from wisecli.runtime.runrecord import RunRecord

    from .train import CachedPKLoader, lr_at, make_step

    dist, device = init_distributed(device_spec)
    seed_everything(seed + dist.rank)
    splits, sampler, images, labels, vps, model, mc, vp_report, pre = _prepare_training(
        data, cfg, device, sink, seed, dist.rank, dist.world_size)
    loader = CachedPKLoader(images, labels, vps, sampler)
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"]))
    milestones = tuple(int(m) for m in str(cfg["milestones"]).split(",") if m.strip())
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda e: lr_at(e, 1.0, int(cfg["warmup_epochs"]), milestones))
    step = make_step(mc["viewpoint_classes"], vp_weight=float(cfg["vp_weight"]), amp=amp, device=device, seed=seed,
                     supervised=vp_report["viewpoint_supervision"] == "labels")
    validate = _validator(splits, mc, device, amp, int(cfg["batch_size"]), int(cfg["eval_every"]), int(cfg["epochs"]))
    config = {"model": mc, "train": cfg, "sources": config_record, **vp_report,
              "pretrained": {"path": cfg["pretrained"] or None, **(pre or {})}, "seed": seed}
    run_dir.mkdir(parents=True, exist_ok=True)
    from wisecli.runtime.trainer import TrainSpec, fit

    spec = TrainSpec(epochs=int(cfg["epochs"]), run_dir=run_dir, method=METHOD, arch=mc["arch"], config=config,
                     amp=amp, monitor="val_mAP" if validate else "train_loss", mode="max" if validate else "min",
                     resume=resume, progress=progress)
    t0 = time.perf_counter()
    result = fit(model, opt, loader, step, spec, device=device, scheduler=sched, validate=validate)
    summary = {"run_dir": str(run_dir), "epochs": int(cfg["epochs"]), "best_metric": result.best_metric,
               "best_epoch": result.best_epoch, "last": result.last_metrics, "device": device_name(device),
               "viewpoint_supervision": vp_report["viewpoint_supervision"], "seconds": time.perf_counter() - t0}
    if dist.is_main:
        rec = RunRecord("reid train", config=config_record, device=device_name(device), seed=seed, inputs=[str(data)])
        rec.timing("train", summary["seconds"])
        for name in ("config.json", "metrics.jsonl", "checkpoints/last.pt", "checkpoints/best.pt"):
            rec.add_output(run_dir / name)
        rec.write(run_dir)
    return summary


# ---------------------------------------------------------------------------------------------- predict
def predict(paths: list[Path], weights: Path, output: Path, *, half: bool = False, parse_names: str | None = None,
            device_spec: str = "auto", amp: bool = True, batch: int = 256, sink=None, argv=None) -> dict:
    """Embed images with the model loaded once into one `.npz` (atomic); unreadable images are recorded in
    `<output stem>.errors.jsonl` and leave the file (exit 3 via PartialFailure after writing)."""
    from wisecli.runtime.device import device_name, resolve_device
    from wisecli.runtime.io.atomic import write_text
    from wisecli.runtime.runrecord import RunRecord

    from .predict import embed_paths, labels_from_names, load_model, save_features

    device = resolve_device(device_spec, sink=sink)
    ids, cams = labels_from_names(paths, parse_names)
    model, mc, sha = load_model(weights, device)
    t0 = time.perf_counter()
    feats, probs, _, ok, errors = embed_paths(model, paths, mc["input_size"], device, batch=batch, amp=amp)
    seconds = time.perf_counter() - t0
    kept = [p for p, k in zip(paths, ok) if k]
    save_features(output, features=feats, paths=[str(p) for p in kept], ids=ids[ok], cams=cams[ok], probs=probs,
                  sha=sha, embed=mc["embed"], half=half)
    err_file = output.with_name(output.name.removesuffix(".npz") + ".errors.jsonl")
    if errors:
        write_text(err_file, "".join(json.dumps({"input": str(paths[i]), "status": "error", "error": msg}) + "\n"
                                     for i, msg in errors))
    elif err_file.exists():  # a stale record of an earlier run into the same (overwritten) file
        err_file.unlink()
    rec = RunRecord("reid predict", config={"weights": str(weights), "half": half, "parse_names": parse_names,
                                            "batch": batch, "amp": amp}, device=device_name(device), seed=None,
                    inputs=[str(p) for p in paths], argv=argv)
    rec.add_output(output)
    rec.timing("embed", seconds)
    rec.write(output.parent)
    summary = {"output": str(output), "images": len(kept), "errors": len(errors), "dim": int(feats.shape[1]),
               "embed": mc["embed"], "model_sha256": sha, "device": device_name(device), "seconds": seconds,
               "images_per_s": len(kept) / max(seconds, 1e-9)}
    if errors:
        summary["errors_file"] = str(err_file)
    return summary


# --------------------------------------------------------------------------------------------- evaluate
def check_rerank(k1: int, k2: int, lam: float) -> None:
    if k1 < 1:
        raise InputError(f"--k1 must be >= 1, got {k1}", hint="the default is 20")
    if k2 < 1 or k2 > k1:
        raise InputError(f"--k2 must be in 1..k1 ({k1}), got {k2}", hint="the default is 6")
    if not 0.0 <= lam <= 1.0:
        raise InputError(f"--lambda must be in [0, 1], got {lam}", hint="the default is 0.3")


def _valid_query_count(q_ids, q_cams, g_ids, g_cams) -> int:
    q_ids, q_cams = torch.as_tensor(q_ids), torch.as_tensor(q_cams)
    g_ids, g_cams = torch.as_tensor(g_ids), torch.as_tensor(g_cams)
    count = 0
    for s in range(0, len(q_ids), 1024):
        qi, qc = q_ids[s:s + 1024, None], q_cams[s:s + 1024, None]
        count += int(((g_ids[None] == qi) & (g_cams[None] != qc) & (qi >= 0)).any(1).sum())
    return count


def evaluate(*, query_files: list[Path] | None = None, gallery_files: list[Path] | None = None,
             weights: Path | None = None, data: Path | None = None, layout: str = "veri", ap_mode: str = "standard",
             rerank: bool = False, k1: int = 20, k2: int = 6, lam: float = 0.3, max_rank: int = 50,
             per_query: Path | None = None, explain: Path | None = None, check_lists: bool = False,
             allow_partial: bool = False, val_ids: float = 0.1, seed: int = 0, viewpoints: Path | None = None,
             viewpoint_format: str = "span", aic_submit: Path | None = None, overwrite: bool = False,
             device_spec: str = "auto", amp: bool = True, fast: bool = False, batch: int = 256, sink=None) -> dict:
    """Ranking metrics of query against gallery, from features files or by embedding a data set.

    With `aic_submit`, also the AI City 2020 Track 2 submission file (`submit.py`): from `--weights` and an AIC
    folder, image_query/ and image_test/ are embedded (model loaded once) and ranked; from features files, the
    query and gallery files are.  The metrics are still computed where there is ground truth (an AIC folder
    with train_label.xml: the held-out id split, as without `aic_submit`; features files: ids with a valid
    query); otherwise they are skipped, said on stderr, and the document holds `metrics_skipped`."""
    from wisecli.runtime.device import device_name, resolve_device, sync

    from .metrics import evaluate_ranking, summarise
    from .rerank import re_ranking

    if ap_mode not in ("standard", "official"):
        raise InputError(f"unknown --ap-mode {ap_mode!r}", hint="standard or official")
    if rerank:
        check_rerank(k1, k2, lam)
    if max_rank < 1:
        raise InputError("--max-rank must be >= 1", hint="the default is 50")
    if aic_submit is not None:
        from .submit import check_output

        check_output(aic_submit, overwrite)
    device = resolve_device(device_spec, sink=sink)
    seconds = {}
    extra = {}
    has_gt = True
    sub = None  # (query features, gallery features, gallery image numbers, query row order or None)
    if weights is not None:
        if data is None:
            raise InputError("evaluate --weights needs DATA", hint="wise reid evaluate --weights best.pt VeRi --layout veri")
        from .data import good_junk_sets, load_layout, read_veri_lists
        from .predict import embed_paths, load_model

        aic = None
        if aic_submit is not None:
            from .data import load_aic_test
            from .submit import check_gallery_size

            if layout != "aic":
                raise InputError("--aic-submit needs --layout aic",
                                 hint="or give --query/--gallery features of image_query/ and image_test/")
            aic = load_aic_test(data, allow_partial=allow_partial)
            check_gallery_size(len(aic["gallery"][0]))
            has_gt = (Path(data) / "train_label.xml").is_file()
            if not has_gt:
                for flag, given in (("--per-query", per_query), ("--explain", explain), ("--viewpoints", viewpoints)):
                    if given is not None:
                        raise InputError(f"{flag} needs the held-out split, but {data} has no train_label.xml",
                                         hint=f"drop {flag}, or add train_label.xml and image_train/")
                _say(sink, f"{data} has no train_label.xml: writing the submission without metrics")
        elif layout == "aic" and not (Path(data) / "train_label.xml").is_file():
            raise InputError("AIC query/test identities are unpublished: no ground truth to evaluate against",
                             hint="evaluate on a held-out split of the training ids with --val-ids 0.1")
        if has_gt:
            splits = load_layout(data, layout, allow_partial=allow_partial, val_ids=val_ids, seed=seed)
            q, g = splits["query"], splits["gallery"]
        if check_lists:
            if layout != "veri":
                raise InputError("--check-lists needs --layout veri", hint="gt_image.txt/jk_image.txt are VeRi files")
            gt, jk = read_veri_lists(data)
            good, junk = good_junk_sets(q, g)
            if len(gt) != len(q):
                raise InputError(f"gt_image.txt has {len(gt)} lines for {len(q)} queries", hint="check the VeRi lists")
            extra["check_lists"] = {"queries": len(q), "good_mismatches": sum(a != b for a, b in zip(good, gt)),
                                    "junk_mismatches": sum(a != b for a, b in zip(junk, jk))}
        model, mc, _ = load_model(weights, device)
        vp_labels = None
        if viewpoints is not None:
            if not mc["use_vcam"]:
                raise InputError("--viewpoints needs a VCAM model", hint="a --no-vcam model has no viewpoint head")
            from .data import read_viewpoints

            vp_labels = read_viewpoints(viewpoints, viewpoint_format, mc["viewpoint_classes"])
        if aic is not None:
            t0 = time.perf_counter()
            tq, _, _, _, terr = embed_paths(model, aic["query"][0], mc["input_size"], device, batch=batch, amp=amp)
            tg, _, _, _, gerr = embed_paths(model, aic["gallery"][0], mc["input_size"], device, batch=batch, amp=amp)
            seconds["embed_submit"] = time.perf_counter() - t0
            if terr or gerr:
                first = (terr or gerr)[0][1]
                raise InputError(f"{len(terr) + len(gerr)} AIC query/test images are unreadable, e.g. {first}",
                                 hint="a submission needs every listed image; fix or re-extract them")
            sub = (tq, tg, aic["gallery"][1], None)
        if has_gt:
            t0 = time.perf_counter()
            qf, qp, qg, qok, qerr = embed_paths(model, q.paths, mc["input_size"], device, batch=batch, amp=amp,
                                                gates=explain is not None)
            gf, gp, _, gok, gerr = embed_paths(model, g.paths, mc["input_size"], device, batch=batch, amp=amp)
            seconds["embed"] = time.perf_counter() - t0
            if qerr or gerr:
                raise InputError(f"{len(qerr) + len(gerr)} query/gallery images are unreadable",
                                 hint="fix or remove them (predict records such items and goes on)")
            q_ids, q_cams, g_ids, g_cams = q.ids, q.cams, g.ids, g.cams
            if vp_labels is not None:
                extra["viewpoint"] = viewpoint_accuracy(list(q.paths) + list(g.paths), torch.cat([qp, gp]), vp_labels)
            if explain is not None:
                if qg is None or not qg:
                    raise InputError("--explain needs a VCAM model", hint="this checkpoint was trained with --no-vcam")
                extra["explain"] = write_explain(explain, qg, qp)
    else:
        if not query_files or not gallery_files:
            raise InputError("give --query and --gallery features, or --weights with DATA",
                             hint="wise reid evaluate --query q.npz --gallery g.npz")
        if explain is not None:
            raise InputError("--explain needs --weights and DATA", hint="the channel weights come from the model")
        from .predict import load_features

        qd, gd = load_features(query_files, "query"), load_features(gallery_files, "gallery")
        if qd["features"].shape[1] != gd["features"].shape[1]:
            raise InputError(f"query features have {qd['features'].shape[1]} dimensions, gallery "
                             f"{gd['features'].shape[1]}", hint="embed both with the same model")
        if qd["normalised"] != gd["normalised"]:
            raise InputError("query and gallery features differ in normalisation",
                             hint="embed both with 'wise reid predict' of one model")
        qf, gf = torch.from_numpy(qd["features"]), torch.from_numpy(gd["features"])
        q_ids, q_cams, g_ids, g_cams = qd["ids"], qd["cameras"], gd["ids"], gd["cameras"]
        if aic_submit is not None:
            from .data import aic_image_ids
            from .submit import check_gallery_size

            q_numbers = aic_image_ids([Path(str(x)).name for x in qd["paths"]], "the query features' paths")
            g_numbers = aic_image_ids([Path(str(x)).name for x in gd["paths"]], "the gallery features' paths")
            check_gallery_size(len(g_numbers))
            sub = (qf, gf, g_numbers, torch.from_numpy(np.argsort(q_numbers, kind="stable")))
    if has_gt and _valid_query_count(q_ids, q_cams, g_ids, g_cams) == 0:
        if sub is None:
            raise InputError("no valid query: no query has a gallery match of its id on another camera",
                             hint="check ids and cameras (predict --parse-names veri), or the query/gallery pairing")
        if per_query is not None:
            raise InputError("--per-query needs ground truth, and no query has a match of its id on another camera",
                             hint="drop --per-query (the test ids of AIC are unpublished)")
        has_gt = False
        _say(sink, "no query has a match of its id on another camera: writing the submission without metrics")
    metric_dist = None
    if has_gt:
        fh = open(per_query, "w") if per_query else None  # streamed as computed (spec §8)
        try:
            def on_query(i, r):
                fh.write(json.dumps({"query": i, **r}) + "\n")
                fh.flush()

            t0 = time.perf_counter()
            if rerank:
                metric_dist = re_ranking(torch.nn.functional.normalize(qf.to(device).float(), dim=1),
                                         torch.nn.functional.normalize(gf.to(device).float(), dim=1), k1, k2, lam,
                                         fast=fast)
                raw = evaluate_ranking(q_ids, g_ids, q_cams, g_cams, distmat=metric_dist, max_rank=max_rank,
                                       device=device, on_query=on_query if fh else None)
            else:
                raw = evaluate_ranking(q_ids, g_ids, q_cams, g_cams, qf=qf, gf=gf, max_rank=max_rank, device=device,
                                       fast=fast, on_query=on_query if fh else None)
            sync(device)
            seconds["rank"] = time.perf_counter() - t0
        finally:
            if fh:
                fh.close()
        doc = summarise(raw, ap_mode=ap_mode)
    else:
        doc = {"metrics_skipped": "no ground truth (AIC query/test identities are unpublished)"}
    if sub is not None:
        from .submit import TOP, rank_top, write_submission

        sq, sg, numbers, order = sub
        t0 = time.perf_counter()
        if rerank:
            if metric_dist is not None and weights is None:  # features files: the metrics' queries are these
                dist = metric_dist
            else:
                dist = re_ranking(torch.nn.functional.normalize(sq.to(device).float(), dim=1),
                                  torch.nn.functional.normalize(sg.to(device).float(), dim=1), k1, k2, lam, fast=fast)
            top = rank_top(None, None, TOP, device, dist=dist if order is None else dist[order.to(dist.device)])
        else:
            top = rank_top(sq if order is None else sq[order], sg, TOP, device, fast=fast)
        sync(device)
        seconds["rank_submit"] = time.perf_counter() - t0
        doc["aic_submit"] = {**write_submission(aic_submit, top, numbers),
                             "query_order": "name_query.txt" if order is None else "ascending image number"}
    doc.update({"rerank": {"k1": k1, "k2": k2, "lambda": lam} if rerank else None, "distance": "cosine",
                "seconds": seconds, "device": device_name(device), **extra})
    return doc


def _say(sink, message: str) -> None:
    if sink is not None:
        sink.info(message)


def viewpoint_accuracy(paths: list[Path], probs: torch.Tensor, labels: dict[str, int]) -> dict:
    """The viewpoint head's accuracy on the images that have a label (spec §5 side metric)."""
    idx = [i for i, p in enumerate(paths) if p.name in labels]
    if not idx:
        raise InputError("no evaluated image has a viewpoint label", hint="check --viewpoints against the data")
    truth = torch.tensor([labels[paths[i].name] for i in idx])
    pred = probs[idx].argmax(1)
    return {"accuracy": float((pred == truth).float().mean()), "labelled_images": len(idx)}


def write_explain(folder: Path, gates: dict, probs: torch.Tensor | None) -> dict:
    """Mean channel weight a_i per predicted viewpoint class: `vcam_gates.csv` and a heatmap PNG (classes x
    channels, sorted by the variance across classes) - the paper's study of which channels each viewpoint
    up- or down-weights."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wisecli.runtime.io.atomic import write_text
    from wisecli.runtime.plots import save_figure

    from .vcam import VIEWPOINTS_5, VIEWPOINTS_8

    folder.mkdir(parents=True, exist_ok=True)
    K = probs.shape[1]
    names = VIEWPOINTS_8 if K == 8 else VIEWPOINTS_5
    cls = probs.argmax(1)
    rows = ["viewpoint,stage,channel,mean_gate,images"]
    blocks = []
    for stage in sorted(gates):
        a = gates[stage]
        means = torch.stack([a[cls == c].mean(0) if (cls == c).any() else torch.full((a.shape[1],), float("nan"))
                             for c in range(K)])
        blocks.append(means)
        for c in range(K):
            n = int((cls == c).sum())
            if n:
                rows += [f"{names[c]},{stage},{j},{means[c, j]:.6f},{n}" for j in range(a.shape[1])]
    write_text(folder / "vcam_gates.csv", "\n".join(rows) + "\n")
    M = torch.cat(blocks, dim=1).numpy()
    present = ~np.isnan(M).all(1)
    Mp = M[present]
    order = np.argsort(-np.nan_to_num(Mp.var(0)), kind="stable")
    fig, ax = plt.subplots(figsize=(10, 0.5 + 0.5 * len(Mp)))
    im = ax.imshow(Mp[:, order], aspect="auto", cmap="coolwarm", vmin=0, vmax=2, interpolation="nearest")
    ax.set_yticks(range(len(Mp)), [n for n, p in zip(names, present) if p])
    ax.set_xlabel("channel (all VCAM stages), sorted by variance across viewpoints")
    fig.colorbar(im, ax=ax, label="mean channel weight a_i")
    save_figure(fig, folder / "vcam_gates.png", dpi=100, bbox_inches="tight")
    return {"csv": str(folder / "vcam_gates.csv"), "png": str(folder / "vcam_gates.png"),
            "images_per_class": {names[c]: int((cls == c).sum()) for c in range(K)}}


# ------------------------------------------------------------------------------------------------ query
def query(queries: list[Path], *, gallery: list[Path], weights: Path, top: int = 10, rerank: bool = False, k1: int = 20,
          k2: int = 6, lam: float = 0.3, exclude_same_camera: bool = False, camera: int | None = None,
          plot: Path | None = None, gallery_cache: Path | None = None, device_spec: str = "auto", amp: bool = True,
          batch: int = 256, sink=None) -> list[dict]:
    """Top gallery matches of each query image; the gallery is features parts or one image folder."""
    from wisecli.cli.inputs import expand_inputs
    from wisecli.runtime.device import resolve_device

    from .data import parse_veri_name
    from .predict import embed_paths, load_features, load_model, save_features
    from .rerank import re_ranking

    if top < 1:
        raise InputError("--top must be >= 1", hint="e.g. --top 10")
    if rerank:
        check_rerank(k1, k2, lam)
    device = resolve_device(device_spec, sink=sink)
    model, mc, sha = load_model(weights, device)
    gallery = [Path(g) for g in gallery]
    if len(gallery) == 1 and gallery[0].is_dir():
        cache = gallery_cache
        gd = None
        if cache is not None and cache.is_file():
            gd = load_features([cache], "gallery")
            if gd.get("model_sha256") != sha:
                sink.warn(f"gallery cache {cache} was made by another model: embedding again")
                gd = None
        if gd is None:
            gpaths = expand_inputs([str(gallery[0])], extensions=(".jpg", ".jpeg", ".png", ".bmp"))
            gf, gp, _, ok, errs = embed_paths(model, gpaths, mc["input_size"], device, batch=batch, amp=amp)
            for i, msg in errs:
                sink.warn(f"gallery image skipped: {msg}")
            kept = [p for p, k in zip(gpaths, ok) if k]
            parsed = [parse_veri_name(p.name) for p in kept]
            gids = np.array([p[0] if p else -1 for p in parsed], dtype=np.int64)
            gcams = np.array([p[1] if p else -1 for p in parsed], dtype=np.int64)
            if cache is not None:
                save_features(cache, features=gf, paths=[str(p) for p in kept], ids=gids, cams=gcams, probs=gp,
                              sha=sha, embed=mc["embed"])
                sink.info(f"gallery embedded once and cached in {cache}")
            gd = {"features": gf.numpy(), "ids": gids, "cameras": gcams, "paths": np.array([str(p) for p in kept])}
    else:
        gd = load_features(gallery, "gallery")
    gf = torch.as_tensor(gd["features"]).float()
    if gf.shape[1] != model.feat_dim:
        raise InputError(f"gallery features have {gf.shape[1]} dimensions, the model {model.feat_dim}",
                         hint="embed the gallery with the same model")
    qf, _, _, ok, errs = embed_paths(model, queries, mc["input_size"], device, batch=batch, amp=amp)
    if errs:
        raise InputError(f"query image unreadable: {errs[0][1]}", hint="give readable JPEG/PNG files")
    parsed = [parse_veri_name(p.name) for p in queries]
    q_cams = [camera if camera is not None else (p[1] if p else None) for p in parsed]
    if exclude_same_camera and any(c is None for c in q_cams):
        raise InputError("--exclude-same-camera needs the query camera",
                         hint="name queries VVVV_cCCC_... or pass --camera N")
    qn = torch.nn.functional.normalize(qf.to(device), dim=1)
    gn = torch.nn.functional.normalize(gf.to(device), dim=1)
    dist = re_ranking(qn, gn, k1, k2, lam) if rerank else 1.0 - qn @ gn.T
    g_cams = torch.as_tensor(gd["cameras"], device=device)
    out = []
    for i, qpath in enumerate(queries):
        d = dist[i].clone()
        if exclude_same_camera:
            d[g_cams == q_cams[i]] = float("inf")
        order = torch.sort(d, stable=True).indices[:top]
        order = order[torch.isfinite(d[order])].tolist()
        results = [{"rank": r + 1, "path": str(gd["paths"][j]), "distance": float(dist[i, j]),
                    "id": int(gd["ids"][j]), "camera": int(gd["cameras"][j])} for r, j in enumerate(order)]
        out.append({"query": str(qpath), "results": results})
    if plot is not None:
        plot_ranks(plot, out, [parse_veri_name(p.name) for p in queries])
    return out


def plot_ranks(path: Path, records: list[dict], query_labels: list) -> Path:
    """A rank-list montage: one row per query (query, then its top matches; green border = same id, red =
    other id, grey = unknown), written atomically as PNG."""
    import cv2

    from wisecli.runtime.io.atomic import atomic_path

    tile, pad = 96, 4
    cols = 1 + max(len(r["results"]) for r in records)
    canvas = np.full((len(records) * (tile + 2 * pad), cols * (tile + 2 * pad), 3), 255, dtype=np.uint8)

    def put(img_path, row, col, colour):
        im = cv2.imread(str(img_path))
        im = np.zeros((tile, tile, 3), np.uint8) if im is None else cv2.resize(im, (tile, tile))
        y, x = row * (tile + 2 * pad), col * (tile + 2 * pad)
        canvas[y:y + tile + 2 * pad, x:x + tile + 2 * pad] = colour
        canvas[y + pad:y + pad + tile, x + pad:x + pad + tile] = im

    for r, rec in enumerate(records):
        qid = query_labels[r][0] if query_labels[r] else None
        put(rec["query"], r, 0, (0, 0, 0))
        for c, res in enumerate(rec["results"], start=1):
            colour = (160, 160, 160) if qid is None or res["id"] < 0 else (0, 180, 0) if res["id"] == qid else (0, 0, 220)
            put(res["path"], r, c, colour)
    path = Path(path)
    with atomic_path(path) as tmp:
        ok, buf = cv2.imencode(".png", canvas)
        tmp.write_bytes(buf.tobytes())
    return path


# ------------------------------------------------------------------------------------------------- demo
DEMO_CPU = {"train_ids": 80, "test_ids": 30, "images_per_id": 16, "size": 48, "epochs": 8, "p": 16, "k": 4,
            "seeds": (0, 1), "lr": 1e-3, "warmup": 1, "width": 0.25}
DEMO_GPU = {**DEMO_CPU, "size": 64, "epochs": 30, "width": 1.0}
DEMO_QUICK = {"train_ids": 10, "test_ids": 6, "images_per_id": 4, "size": 32, "epochs": 1, "p": 5, "k": 4,
              "seeds": (0,), "lr": 1e-3, "warmup": 0, "width": 0.25}


def _quiet_sink(sink):
    if sink is not None:
        return sink
    from wisecli.cli.output import Sink

    return Sink(quiet=True)


def _demo_runs(p: dict, dev: torch.device, sink, arch: str, work_dir: Path | None) -> tuple[list[dict], dict]:
    """Render the set, then per seed train and evaluate VCAM and the baseline from the same initial weights."""
    import tempfile

    from wisecli.runtime.device import seed_everything

    from .data import decode_images, load_veri, read_viewpoints
    from .predict import embed_uint8
    from .metrics import evaluate_ranking
    from .synthetic import write_veri
    from .train import CachedPKLoader, make_step, train_in_memory

    with tempfile.TemporaryDirectory(prefix="wise-reid-demo-", dir=work_dir) as tmp:
        root = Path(tmp) / "synthetic_veri"
        counts = write_veri(root, train_ids=p["train_ids"], test_ids=p["test_ids"], images_per_id=p["images_per_id"],
                            size=p["size"], seed=0)
        splits = load_veri(root)
        test_vp = read_viewpoints(root / "viewpoints_test.csv", "span")
        qi, _ = decode_images(splits["query"].paths, p["size"])
        gi, _ = decode_images(splits["gallery"].paths, p["size"])
        q_true = torch.tensor([test_vp[x.name] for x in splits["query"].paths])
        runs = []
        for seed in p["seeds"]:
            init = None
            for variant in ("vcam", "baseline"):
                cfg = {**TRAIN_DEFAULTS, "arch": arch, "input_size": p["size"], "p": p["p"], "k": p["k"], "width": p["width"],
                       "epochs": p["epochs"], "viewpoints": str(root / "viewpoints.csv"), "no_vcam": variant == "baseline"}
                seed_everything(seed)
                _, sampler, images, labels, vps, model, mc, _, _ = _prepare_training(root, cfg, dev, sink, seed)
                if init is None:
                    init = {k: v.clone() for k, v in model.state_dict().items()}
                else:
                    model.load_state_dict(init, strict=False)  # the baseline starts from VCAM's weights
                model.to(dev)
                step = make_step(mc["viewpoint_classes"], vp_weight=1.0, amp=True, device=dev, seed=seed)
                t0 = time.perf_counter()
                hist = train_in_memory(model, CachedPKLoader(images, labels, vps, sampler), step, epochs=p["epochs"],
                                       lr=p["lr"], weight_decay=5e-4, warmup=p["warmup"], milestones=(), device=dev)
                train_s = time.perf_counter() - t0
                qf, qp, _ = embed_uint8(model, qi, dev)
                gf, _, _ = embed_uint8(model, gi, dev)
                r = evaluate_ranking(splits["query"].ids, splits["gallery"].ids, splits["query"].cams,
                                     splits["gallery"].cams, qf=qf, gf=gf, device=dev)
                run = {"variant": variant, "seed": seed, "mAP_standard": r["mAP_standard"],
                       "mAP_official": r["mAP_official"], "R1": r["cmc"][0], "R5": r["cmc"][4], "mINP": r["mINP"],
                       "train_s": train_s, "final_loss": hist[-1]["loss"]}
                if qp is not None:
                    run["vp_acc"] = float((qp.argmax(1) == q_true).float().mean())
                runs.append(run)
                sink.info(f"[seed {seed}] {variant}: mAP {run['mAP_standard']:.4f} (official "
                          f"{run['mAP_official']:.4f}), R1 {run['R1']:.4f}, trained in {train_s:.1f}s")
    return runs, counts


def demo(quick: bool = False, device: str = "auto", *, sink=None, work_dir: Path | None = None,
         arch: str = "resnet18", **overrides) -> dict:
    """Render synthetic vehicles, train a small VCAM model and its --no-vcam baseline from the same initial
    weights (same seed, same schedule), evaluate both in both AP modes.  SYNTHETIC VEHICLES: NOT A BENCHMARK.

    Settings: `quick` (the smoke test: 10 ids, one epoch, one seed, no gate); on CPU a quarter-width ResNet-18
    at 48^2 for 8 epochs and 2 seeds, so it fits 5 minutes on 2 cores (the gain is reported, not gated: 2 shared
    cores cannot separate the two beyond seed noise in that time); on CUDA the full-width ResNet-18 at 64^2 for
    30 epochs, gated: VCAM's mean mAP over the seeds must beat the baseline's (spec §9)."""
    from wisecli.runtime.device import device_name, resolve_device

    sink = _quiet_sink(sink)
    t_start = time.perf_counter()
    dev = resolve_device(device, sink=sink)
    p = {**(DEMO_QUICK if quick else DEMO_GPU if dev.type == "cuda" else DEMO_CPU), **overrides}
    gated = not quick and dev.type == "cuda"
    threads = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(1)
    try:
        runs, counts = _demo_runs(p, dev, sink, arch, work_dir)
    finally:
        torch.set_num_threads(threads)
    rows = []
    for variant in ("vcam", "baseline"):
        rs = [r for r in runs if r["variant"] == variant]
        row = {"model": "VCAM" if variant == "vcam" else "baseline (--no-vcam)"}
        for key in ("mAP_standard", "mAP_official", "R1", "R5", "mINP"):
            row[key] = float(np.mean([r[key] for r in rs]))
        if variant == "vcam":
            row["vp_acc"] = float(np.mean([r["vp_acc"] for r in rs]))
        rows.append(row)
    gain = rows[0]["mAP_standard"] - rows[1]["mAP_standard"]
    finite = all(np.isfinite(r["mAP_standard"]) for r in runs)
    ok = finite and (gain > 0 if gated else True)
    return {"method": METHOD, "title": "SYNTHETIC VEHICLES: NOT A BENCHMARK", "synthetic": True, "ok": ok,
            "quick": quick, "gate": "VCAM mAP > baseline mAP (mean of seeds)" if gated else None,
            "headline": {"mAP_vcam": rows[0]["mAP_standard"], "mAP_baseline": rows[1]["mAP_standard"],
                         "mAP_gain": gain},
            "rows": rows, "runs": runs, "data": counts, "arch": arch, "width": p["width"], "epochs": p["epochs"],
            "seeds": list(p["seeds"]),
            "device": device_name(dev), "seconds": time.perf_counter() - t_start}


# ------------------------------------------------------------------------------------------------- info
def info() -> dict:
    """Layouts, defaults, device and importable extras."""
    from importlib.util import find_spec

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
            "defaults": TRAIN_DEFAULTS,
            "evaluate": {"ap_modes": ["standard", "official"], "rerank": {"k1": 20, "k2": 6, "lambda": 0.3},
                         "junk": "same id and same camera; id -1 distractors"},
            "features_npz": ["features", "paths", "ids", "cameras", "viewpoint_probs", "model_sha256", "embed",
                             "normalised"],
            "device": torch.cuda.get_device_name(0) if cuda else "cpu",
            "extras": {"torchreid": find_spec("torchreid") is not None}}


def benchmark(device: str = "auto", quick: bool = False) -> list[dict]:
    """Records {case, ours_s, peer_s, speedup, device, ...}: evaluation, re-ranking and (CUDA) embedding."""
    from .bench import run

    return run(device, quick)
