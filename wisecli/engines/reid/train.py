"""Training: the model config and its checks, `--pretrained`, the cached P x K loader, the step and validate
callables for the shared trainer (`wisecli.runtime.trainer.fit`), the BoT learning-rate schedule, and the
`train` verb's run (`run_training`).

Schedule (BoT, spec §2.5): Adam, lr = base * warm(e) * 0.1^(#milestones <= e), with a linear warm-up from
base/10 over `warmup_epochs`; it is set per epoch by a LambdaLR.  The demo trains in memory
(`runtime.trainer.fit_in_memory`: no run folder, nothing written) with the same step and schedule, so it is the
same training the `train` verb runs.  Epochs are 1-based, as in the trainer, for the sampler's seed.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from wisecli.cli.errors import InputError
from wisecli.runtime.device import autocast

from .data import augment
from .loss import reid_losses
from .sampler import PKSampler

METHOD = "reid"


def _stages(text) -> tuple[int, ...]:
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
    """Refuse settings the model or the sampler cannot take (InputError, before any work)."""
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
    for key in ("vcam_hidden", "eval_every", "warmup_epochs"):
        if int(cfg[key]) < 0:
            raise InputError(f"--{key.replace('_', '-')} must be 0 or more, got {cfg[key]}", hint="see --help")
    for key in ("lr", "vp_weight", "weight_decay"):
        v = float(cfg[key])
        if not np.isfinite(v) or v < 0 or (key == "lr" and v == 0):
            raise InputError(f"--{key.replace('_', '-')} must be a finite number {'> 0' if key == 'lr' else '>= 0'}, "
                             f"got {cfg[key]}", hint="see --help for the default")
    if not 0 < float(cfg["val_ids"]) < 1:
        raise InputError(f"--val-ids must be in (0, 1), got {cfg['val_ids']}", hint="e.g. --val-ids 0.1")
    _stages(cfg["vcam_stages"])


def load_pretrained_file(model, path, arch: str, sink=None) -> dict:
    """`--pretrained`: an ImageNet state dict (torchvision names) or a reid checkpoint's backbone, read through
    `runtime.checkpoints.load_checkpoint` (another method's checkpoint, a corrupt file: exit 2). Shape
    mismatches, and a file none of whose tensors fits the backbone, are input errors; missing and
    unexpected keys are warnings (recorded in config.json)."""
    from wisecli.runtime.checkpoints import load_checkpoint

    from .model import load_pretrained

    doc = load_checkpoint(path, method=METHOD, plain_ok=True)
    state = doc["state_dict"]
    if doc.get("format"):  # a reid checkpoint: its backbone
        state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    try:
        pre = load_pretrained(model, state)
    except ValueError as exc:
        raise InputError(f"--pretrained shape mismatch: {exc}", hint=f"use an ImageNet {arch} state dict") from None
    if len(pre["missing"]) == len(model.backbone.state_dict()):
        raise InputError(f"--pretrained {path}: none of its {len(state)} tensors fits the {arch} backbone",
                         hint=f"give an ImageNet {arch} state dict with torchvision names (conv1.weight, layer1...)")
    for kind in ("missing", "unexpected"):
        if pre[kind] and sink is not None:
            sink.warn(f"--pretrained: {len(pre[kind])} {kind} keys, e.g. {pre[kind][0]}")
    return pre


class CachedPKLoader:
    """P x K batches (uint8 images, id labels, viewpoint labels) from tensors cached in memory or on the GPU."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, viewpoints: torch.Tensor, sampler: PKSampler):
        self.images, self.labels, self.viewpoints, self.sampler = images, labels, viewpoints, sampler

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        for idx in self.sampler:
            i = torch.as_tensor(idx, device=self.images.device)
            yield self.images[i], self.labels[i.to(self.labels.device)], self.viewpoints[i.to(self.labels.device)]


def lr_at(epoch: int, base: float, warmup: int, milestones: tuple[int, ...]) -> float:
    """BoT schedule for 0-based `epoch`."""
    warm = 1.0 if warmup <= 0 or epoch >= warmup else 0.1 + 0.9 * epoch / warmup
    return base * warm * 0.1 ** sum(epoch >= m for m in milestones)


def make_step(num_classes: int, *, vp_weight: float, amp: bool, device: torch.device, seed: int,
              supervised: bool = True):
    """step(model, batch) -> (loss, metrics) for the trainer: augment on the device, forward, losses
    (the viewpoint loss only when `supervised`)."""
    gen = torch.Generator(device=device).manual_seed(seed)

    def step(model, batch):
        x, ids, vp = batch
        x, vp = augment(x.to(device), vp.to(device), num_classes, gen)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            out = model(x)
        return reid_losses(out, ids.to(device), vp if supervised else None, vp_weight=vp_weight)

    return step



def prepare_training(data, cfg: dict, device: torch.device, sink, seed: int, rank: int = 0, world: int = 1):
    """Splits, labels, the cached loader pieces and the model (with --pretrained); shared by train and demo."""
    from .data import attach_viewpoints, decode_images, load_layout, read_viewpoints
    from .predict import build_model

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
    sampler = PKSampler(train.ids, int(cfg["p"]), int(cfg["k"]), seed=seed, rank=rank, world_size=world)
    labels = torch.tensor([label_of[int(i)] for i in train.ids], dtype=torch.long)
    vps = torch.as_tensor(train.viewpoints, dtype=torch.long)
    mc = model_config(cfg, len(uniq), vp_report["viewpoint_supervision"] == "labels")
    model = build_model(mc)
    pre = None
    if cfg["pretrained"]:
        pre = load_pretrained_file(model, Path(cfg["pretrained"]), cfg["arch"], sink)
    elif sink is not None:
        sink.debug("no --pretrained weights: training starts from random initialisation")
    size = int(cfg["input_size"])
    t0 = time.perf_counter()
    images, errors = decode_images(train.paths, size)
    if errors:
        raise InputError(f"{len(errors)} training images are unreadable, e.g. {train.paths[errors[0][0]]}",
                         hint="remove them from the lists or the manifest")
    if sink is not None:
        sink.debug(f"decoded {len(train)} training images at {size}^2 in {time.perf_counter() - t0:.1f}s")
    if device.type == "cuda" and images.numel() < 0.4 * torch.cuda.mem_get_info(device)[0]:
        images = images.to(device)  # the whole set on the GPU as uint8 (spec §7)
    return splits, sampler, images, labels, vps, model, mc, vp_report, pre


def validator(splits, mc, device, amp, batch, every: int, epochs: int):
    """validate(model, epoch) for the trainer (1-based epochs): query/gallery mAP, R1, mINP at epoch 1, every
    `every` epochs and at the last; between evaluations it repeats the latest values, marked by
    `evaluated_epoch`, so the trainer's monitor always exists and best.pt only moves on a real evaluation."""
    from .data import decode_images
    from .metrics import evaluate_ranking
    from .predict import embed_uint8

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


def run_training(data: Path, run_dir: Path | None, *, cfg: dict, config_record: dict, device="auto",
                 amp: bool = True, seed: int = 0, resume: bool = False, overwrite: bool = False,
                 progress: bool = True, sink=None) -> dict:
    """The `train` verb: check the inputs and the run folder (`runtime.rundir.prepare_run_dir`: a non-empty
    folder needs --resume or --overwrite), then train with the shared trainer; returns the summary."""
    from wisecli.runtime.device import device_name, init_distributed, seed_everything
    from wisecli.runtime.rundir import made_dir, prepare_run_dir
    from wisecli.runtime.runrecord import RunRecord
    from wisecli.runtime.trainer import TrainSpec, fit

    data = Path(data)
    if not data.exists():
        raise InputError(f"no such data: {data}", hint="give the VeRi-776/AIC folder or a manifest CSV")
    if run_dir is None:
        raise InputError("train needs a run folder", hint="wise reid train DATA -o RUN")
    run_dir = Path(run_dir)
    prepare_run_dir(run_dir, resume=resume, overwrite=overwrite, is_main=False)  # refuse before any work
    if resume and (run_dir / "checkpoints" / "last.pt").is_file():  # a bad last.pt is named before any work
        from wisecli.runtime.checkpoints import load_checkpoint

        load_checkpoint(run_dir / "checkpoints" / "last.pt", method=METHOD)
    check_train_config(cfg)
    dist, device = init_distributed(device if isinstance(device, str) else str(device))
    seed_everything(seed + dist.rank)
    splits, sampler, images, labels, vps, model, mc, vp_report, pre = prepare_training(
        data, cfg, device, sink, seed, dist.rank, dist.world_size)
    loader = CachedPKLoader(images, labels, vps, sampler)
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"]))
    milestones = tuple(int(m) for m in str(cfg["milestones"]).split(",") if m.strip())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: lr_at(e, 1.0, int(cfg["warmup_epochs"]), milestones))
    step = make_step(mc["viewpoint_classes"], vp_weight=float(cfg["vp_weight"]), amp=amp, device=device, seed=seed,
                     supervised=vp_report["viewpoint_supervision"] == "labels")
    validate = validator(splits, mc, device, amp, int(cfg["batch_size"]), int(cfg["eval_every"]), int(cfg["epochs"]))
    config = {"model": mc, "train": cfg, "sources": config_record, **vp_report,
              "pretrained": {"path": str(cfg["pretrained"]) if cfg["pretrained"] else None, **(pre or {})},
              "seed": seed}
    spec = TrainSpec(epochs=int(cfg["epochs"]), run_dir=run_dir, method=METHOD, arch=mc["arch"], config=config,
                     amp=amp, monitor="val_mAP" if validate else "train_loss", mode="max" if validate else "min",
                     resume=resume, progress=progress)
    t0 = time.perf_counter()
    from .predict import write_guard

    with write_guard(run_dir), made_dir(run_dir):  # a run that fails before writing leaves no empty folder
        prepare_run_dir(run_dir, resume=resume, overwrite=overwrite, is_main=dist.is_main)
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
