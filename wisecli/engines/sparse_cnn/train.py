"""Training of the gated networks with the shared trainer (`runtime.trainer.fit`) [reconstructed, spec §2.2].

- Straight-through gate (forward: the hard mask; gradient: to P), the `masked` path.
- Run-time control by training over densities: each batch draws rho = 1 with probability `p_dense` (0.25), else
  U[density_min, 1] (0.1 classification, 0.05 SR) from its own seeded generator, saved in every checkpoint
  (`rho_rng`) and restored on `--resume`. The first `warmup_fraction` (10 %) of the training *steps* run at
  rho = 1 (the spec says epochs; counted in steps so that a one-epoch run, as the SR recipes are, still trains
  over densities after its warm-up; the position comes from the sampler's `set_epoch`, which the trainer calls
  on every rank, and the step within the epoch, so a resumed run continues the same schedule).
- Classification: CE, SGD (lr 0.05, momentum 0.9, wd 5e-4), cosine decay over the steps (both tasks; a
  per-epoch cosine never decays in a one-epoch SR recipe; `lr_schedule=constant` keeps the rate: the 300-step
  SR demo recipe, where the decay halved what the net learned: held-out rho = 1 PSNR 34.13 dB cosine vs 34.97
  constant, bicubic 34.03, seed 0); inputs resized to `image_size` (32),
  normalised per channel with the training statistics (stored in the checkpoint).
- SR: L1 (`sr.loss=mse`: MSE) on RGB in [0, 1], Adam 2e-4, cosine decay; LR = MATLAB bicubic of the whole
  (mod-cropped) HR image, 8-bit quantised; aligned LR/HR patches (`patch` LR pixels) with flips and 90°
  rotations; `steps_per_epoch` batches an epoch. Validation: `builtin:skimage-sr` holds out its last training
  photo (stereo_motorcycle); a folder its last 10 % of images (at least one; a single image validates on
  itself); PSNR on a central crop of at most 96 x 96 LR pixels.
- Validation (`metrics.jsonl`): `val_acc_d100/d050/d025/dmin` (or `val_psnr_*`), `val_saving_d*` (counted),
  `val_score` (the mean of the task metrics; the monitor, max). The density -> counted-saving curve on the val
  split is written to `density_curve.json` and stored in the checkpoint for `--mac-budget`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from wisecli.cli.errors import InputError
from wisecli.runtime.loaders import EpochSampler, TensorLoader

from .gating import Stats

METHOD = "sparse-cnn"
CURVE = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.7, 1.0)
VAL_DENSITIES = {"d100": 1.0, "d050": 0.5, "d025": 0.25}


class PatchLoader:
    """Random aligned LR/HR patches with flips and 90° rotations, drawn on the fly from a seeded generator."""

    def __init__(self, pairs: list[tuple[Tensor, Tensor]], patch: int, scale: int, batch: int, steps: int, seed: int):
        self.pairs, self.patch, self.scale, self.batch, self.steps = pairs, patch, scale, batch, steps
        self.sampler = EpochSampler(1, 1, seed)
        self.seed = seed

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.sampler.epoch)
        p, s = self.patch, self.scale
        for _ in range(self.steps):
            lrs, hrs = [], []
            for _ in range(self.batch):
                lr, hr = self.pairs[int(torch.randint(len(self.pairs), (1,), generator=g))]
                i = int(torch.randint(lr.shape[-2] - p + 1, (1,), generator=g))
                j = int(torch.randint(lr.shape[-1] - p + 1, (1,), generator=g))
                a, b = lr[:, i:i + p, j:j + p], hr[:, s * i:s * (i + p), s * j:s * (j + p)]
                k = int(torch.randint(8, (1,), generator=g))
                if k & 1:
                    a, b = a.flip(-1), b.flip(-1)
                if k & 2:
                    a, b = a.flip(-2), b.flip(-2)
                if k & 4:
                    a, b = a.transpose(-1, -2), b.transpose(-1, -2)
                lrs.append(a)
                hrs.append(b)
            yield torch.stack(lrs), torch.stack(hrs)


def sample_rho(g: torch.Generator, rho_min: float, p_dense: float) -> float:
    """rho = 1 with probability p_dense, else U[rho_min, 1] (CPU generator: no device sync)."""
    u = torch.rand(2, generator=g).tolist()
    return 1.0 if u[0] < p_dense else rho_min + (1.0 - rho_min) * u[1]


def warmup_steps(fraction: float, epochs: int, per_epoch: int) -> int:
    """Steps at rho = 1 before training over densities: the first `fraction` of all steps (rounded up), counted in
    steps, not epochs: the SR recipes train one long epoch, where 'the first 10 % of epochs' rounded up to a whole
    epoch was the whole run, so the net never saw a sparse mask in training."""
    return max(0, math.ceil(float(fraction) * epochs * per_epoch - 1e-9))


def measure(model, batches, rho: float, *, task: str, exec_: str = "masked", rule: str = "regional", tile: int = 8,
            slack: float = 1.5, importance_fn=None, scale: int = 2) -> dict:
    """Task metric and MAC sums of `model` over `batches` [(x, target)] at density rho (no grad)."""
    from .metrics import psnr_y, ssim_y, topk_correct

    sums: dict[str, Tensor] = {}
    n = 0
    with torch.no_grad():
        for x, t in batches:
            st = Stats(x.shape[0], x.device)
            imp = importance_fn(x) if importance_fn is not None else None
            out = model(x, rho, exec_=exec_, rule=rule, tile=tile, slack=slack, importance=imp, stats=st)
            vals = st.as_dict()
            if task == "classify":
                vals["top1"] = topk_correct(out.float(), t, 1)
                vals["top5"] = topk_correct(out.float(), t, 5)
            else:
                vals["psnr"] = psnr_y(out.float(), t, scale)
                vals["ssim"] = ssim_y(out.float(), t, scale)
            for k, v in vals.items():
                sums[k] = sums.get(k, 0) + v.double().sum()
            n += x.shape[0]
    out = {k: float(v) / n for k, v in sums.items()}
    out["saving_counted"] = 1 - out["macs_counted"] / out["macs_dense"]
    out["saving_executed"] = 1 - out["macs_executed"] / out["macs_dense"]
    return out


def sr_pairs(images, scale: int, device) -> list[tuple[Tensor, Tensor]]:
    """[(LR, HR)] tensors (3, h, w) on device from HR RGB arrays (mod-cropped; LR by MATLAB bicubic)."""
    from .data import make_lr, mod_crop

    out = []
    for _, a in images:
        hr = torch.from_numpy(np.ascontiguousarray(mod_crop(a, scale).transpose(2, 0, 1))).float().to(device)
        out.append((make_lr(hr.double(), scale).float(), hr))
    return out


def center_crop_pair(lr: Tensor, hr: Tensor, scale: int, size: int = 96) -> tuple[Tensor, Tensor]:
    """A central crop of at most size x size LR pixels and its HR."""
    h, w = lr.shape[-2:]
    ch, cw = min(h, size), min(w, size)
    i, j = (h - ch) // 2, (w - cw) // 2
    return lr[..., i:i + ch, j:j + cw], hr[..., scale * i:scale * (i + ch), scale * j:scale * (j + cw)]


def check_train_cfg(cfg: dict) -> None:
    """Exit-2 checks of the training settings."""
    if cfg["task"] not in ("classify", "sr"):
        raise InputError(f"--task must be classify or sr, not {cfg['task']!r}", hint="--task classify|sr")
    if int(cfg["tile"]) not in (4, 8, 16, 32):
        raise InputError(f"--tile must be 4, 8, 16 or 32, not {cfg['tile']}", hint="the default is 8")
    if int(cfg["scale"]) not in (2, 4):
        raise InputError(f"--scale must be 2 or 4, not {cfg['scale']}", hint="--scale 2 or --scale 4")
    for key in ("epochs", "batch_size", "patch", "image_size", "blocks", "channels", "steps_per_epoch",
                "sparse.branch_channels"):
        v = cfg.get(key)
        if v is not None and (isinstance(v, float) and not math.isfinite(v) or int(v) < 1):
            raise InputError(f"--{key.replace('_', '-')} must be at least 1, got {v}", hint="see --help")
    for key in ("lr", "width"):
        v = cfg.get(key)
        if v is not None and not (math.isfinite(float(v)) and float(v) > 0):
            raise InputError(f"--{key.replace('_', '-')} must be a finite number > 0, got {v}", hint="see --help")
    if cfg.get("lr_schedule", "cosine") not in ("cosine", "constant"):
        raise InputError(f"lr_schedule must be cosine or constant, not {cfg['lr_schedule']!r}",
                         hint="--set lr_schedule=cosine (the default) or constant")
    dm = cfg.get("density_min")
    if dm is not None and not (0 < float(dm) <= 1):
        raise InputError(f"--density-min must be in (0, 1], got {dm}", hint="e.g. --density-min 0.1")
    if cfg["task"] == "classify" and cfg.get("arch") not in (None, "resnet18"):
        raise InputError(f"--arch {cfg['arch']} is not a classification network", hint="--arch resnet18")
    if cfg["task"] == "sr" and cfg.get("arch") not in (None, "srresnet"):
        raise InputError(f"--arch {cfg['arch']} is not an SR network", hint="--arch srresnet")


def run_training(data: str, out_dir: Path | None, *, cfg: dict, config_record: dict, device, amp: bool, seed: int,
                 init: Path | None = None, resume: bool = False, overwrite: bool = False, progress: bool = True,
                 sink=None) -> dict:
    """Train into the run folder (spec §3 `train`); returns {run_dir, epochs, best_metric, best_epoch, last}.
    `threads` > 0 sets torch's CPU intra-op threads for the run (restored after)."""
    check_train_cfg(cfg)
    threads = cfg.get("threads") or 0
    if not float(threads) >= 0 or int(threads) != float(threads):
        raise InputError(f"threads must be 0 or a positive integer, got {threads}", hint="--set threads=1")
    if int(threads) > 0:
        old = torch.get_num_threads()
        torch.set_num_threads(int(threads))
        try:
            return _run(data, out_dir, cfg=cfg, config_record=config_record, device=device, amp=amp, seed=seed,
                        init=init, resume=resume, overwrite=overwrite, progress=progress, sink=sink)
        finally:
            torch.set_num_threads(old)
    return _run(data, out_dir, cfg=cfg, config_record=config_record, device=device, amp=amp, seed=seed, init=init,
                resume=resume, overwrite=overwrite, progress=progress, sink=sink)


def _run(data, out_dir, *, cfg, config_record, device, amp, seed, init, resume, overwrite, progress, sink) -> dict:
    from wisecli.runtime.checkpoints import load_checkpoint
    from wisecli.runtime.device import as_device, device_name, seed_everything
    from wisecli.runtime.io.atomic import write_json
    from wisecli.runtime.rundir import last_checkpoint, prepare_run_dir
    from wisecli.runtime.trainer import TrainSpec, fit

    from .model import build

    task = cfg["task"]
    if out_dir is None:
        raise InputError("train needs -o RUN_DIR", hint="e.g. -o runs/sparse")
    prev = Path(out_dir) / "checkpoints" / "last.pt"
    if resume and prev.is_file():
        old = load_checkpoint(prev, method=METHOD)
        if old.get("task") != task:
            raise InputError(f"{prev} is a '{old.get('task')}' run, not '{task}'", hint="resume with the same --task")
        if task == "sr" and int(old.get("scale", 0)) != int(cfg["scale"]):
            raise InputError(f"{prev} was trained at --scale {old.get('scale')}, not {cfg['scale']}",
                             hint="resume with the same --scale, or start a new run folder")
    init_doc = None
    if init is not None:
        init_doc = load_checkpoint(init, method="classify")
        if task != "classify" or init_doc.get("arch") != "monai-resnet18":
            raise InputError(f"--init {init}: a classify 'monai-resnet18' checkpoint initialises resnet18 only "
                             f"(it holds '{init_doc.get('arch')}')", hint="train classify with --arch monai-resnet18")
    dev = as_device(device, sink=sink)
    rho_min = float(cfg["density_min"] if cfg["density_min"] is not None else (0.1 if task == "classify" else 0.05))
    slack, rule, tile = float(cfg["sparse.tile_slack"]), cfg["mask_rule"], int(cfg["tile"])
    if task == "classify":
        prep = _prepare_classify(data, cfg, seed, dev)
    else:
        prep = _prepare_sr(data, cfg, seed, dev)
    run_dir = prepare_run_dir(out_dir, resume=resume, overwrite=overwrite)
    seed_everything(seed)
    model = build(prep["arch"], **prep["model"]).to(dev)
    if init_doc is not None:
        _load_init(model, init_doc["state_dict"], init)
    epochs = int(cfg["epochs"])
    if task == "classify":
        lr = float(cfg["lr"] or 0.05)
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    else:
        lr = float(cfg["lr"] or 2e-4)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    loader = prep["loader"]
    per_epoch = len(loader)
    # cosine decay over the optimiser steps (the trainer steps it per step): the SR recipes train one epoch,
    # where a per-epoch cosine never decayed at all
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * per_epoch)
             if cfg.get("lr_schedule", "cosine") == "cosine" else None)
    rho_gen = torch.Generator().manual_seed(seed + 17)
    last = last_checkpoint(run_dir) if resume else None
    if last is not None:
        doc = load_checkpoint(last, method=METHOD)
        if "rho_rng" in doc:
            rho_gen.set_state(doc["rho_rng"])
    warm = warmup_steps(float(cfg["warmup_fraction"]), epochs, per_epoch)
    p_dense = float(cfg["p_dense"])
    loss_kind = cfg["sr.loss"]
    pos = {"epoch": None, "i": 0}

    def step(net, batch):
        x, t = batch
        if pos["epoch"] != loader.sampler.epoch:           # a new epoch (or a resumed run): count from its start
            pos["epoch"], pos["i"] = loader.sampler.epoch, 0
        done = (pos["epoch"] - 1) * per_epoch + pos["i"]     # optimiser steps before this one
        pos["i"] += 1
        rho = 1.0 if done < warm else sample_rho(rho_gen, rho_min, p_dense)
        out = net(x, rho, exec_="masked", rule=rule, tile=tile, slack=slack)
        if task == "classify":
            loss = F.cross_entropy(out, t)
            return loss, {"acc": (out.argmax(1) == t).float().mean()}
        loss = F.l1_loss(out, t) if loss_kind == "l1" else F.mse_loss(out, t)
        return loss, {}

    state: dict = {}
    dens = dict(VAL_DENSITIES, dmin=rho_min)
    metric = "acc" if task == "classify" else "psnr"
    key = "top1" if task == "classify" else "psnr"

    def validate(net, epoch):
        rec, curve = {}, []
        for name, rho in dens.items():
            m = measure(net, prep["val"], rho, task=task, rule=rule, tile=tile, slack=slack, scale=prep["scale"])
            rec[f"val_{metric}_{name}"] = m[key]
            rec[f"val_saving_{name}"] = m["saving_counted"]
        for rho in sorted(set(CURVE) | {rho_min}):
            if rho >= rho_min:
                m = measure(net, [(x[:32], t[:32]) for x, t in prep["val"][:1]], rho, task=task, rule=rule, tile=tile, slack=slack, scale=prep["scale"])
                curve.append({"density": rho, "saving_counted": m["saving_counted"],
                              "macs_fraction": m["macs_counted"] / m["macs_dense"]})
        state["curve"] = curve
        rec["val_score"] = sum(rec[f"val_{metric}_{n}"] for n in dens) / len(dens)
        return rec

    def extra():
        return {"task": task, "model": prep["model"], "rho_rng": rho_gen.get_state(), "density_curve": state.get("curve", []),
                "density_min": rho_min, "mask": {"rule": rule, "tile": tile, "slack": slack}, **prep["extra"]}

    def on_epoch_end(epoch, record):
        write_json(run_dir / "density_curve.json", {"task": task, "rule": rule, "tile": tile, "curve": state.get("curve", [])})

    spec = TrainSpec(epochs=epochs, run_dir=run_dir, method=METHOD, arch=prep["arch"], config=config_record,
                     grad_clip=None, amp=amp, monitor="val_score", mode="max", resume=resume, progress=progress,
                     scheduler_interval="step")
    res = fit(model, opt, loader, step, spec, device=dev, scheduler=sched, validate=validate,
              on_epoch_end=on_epoch_end, checkpoint_extra=extra)
    return {"run_dir": str(run_dir), "task": task, "arch": prep["arch"], "epochs": epochs, "best_metric": res.best_metric,
            "best_epoch": res.best_epoch, "device": device_name(dev), "last": res.last_metrics}


def _load_init(model, state: dict, path) -> None:
    own = model.state_dict()
    fit_keys = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    missing = [k for k in own if not k.startswith("importance.") and k not in fit_keys]
    if missing:
        raise InputError(f"--init {path}: its weights do not fit this resnet18 (e.g. {missing[0]})",
                         hint="use a monai-resnet18 classify checkpoint of the same width, channels and classes")
    model.load_state_dict(fit_keys, strict=False)


def _prepare_classify(data: str, cfg: dict, seed: int, dev) -> dict:
    from wisecli.runtime.io.labeled import read_labeled

    size = int(cfg["image_size"])
    lab = read_labeled(data, image_size=size, seed=seed, val_fraction=float(cfg["val_fraction"]))
    if lab.kind != "image":
        raise InputError(f"{data} holds feature vectors, not images", hint="sparse-cnn classifies images")
    tr = lab.split.get("train")
    va = lab.split.get("val")
    if tr is None or len(tr) == 0:
        raise InputError(f"{data} has no training images", hint="give a folder, CSV, .npz or builtin with images")
    if va is None or len(va) == 0:
        va = tr
    x = torch.from_numpy(np.ascontiguousarray(lab.X)).float()
    x = x / 255.0 if lab.X.dtype == np.uint8 else x
    mean = x[tr].mean((0, 2, 3))
    std = x[tr].std((0, 2, 3)).clamp_min(1e-6) if len(tr) > 1 else torch.ones_like(mean)
    x = ((x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)).to(dev)
    y = torch.from_numpy(lab.y.astype(np.int64)).to(dev)
    trt, vat = torch.from_numpy(tr).to(dev), torch.from_numpy(va).to(dev)
    sampler = EpochSampler(len(tr), int(cfg["batch_size"] or 128), seed, drop_last=True)
    loader = TensorLoader(x[trt], y[trt], sampler)
    xv, yv = x[vat], y[vat]
    val = [(xv[i:i + 256], yv[i:i + 256]) for i in range(0, len(xv), 256)]
    C, H, W = lab.input_shape
    return {"arch": "resnet18", "loader": loader, "val": val, "scale": 1,
            "model": {"in_channels": C, "num_classes": lab.num_classes, "image_size": H,
                      "width": float(cfg["width"]), "downsample_blocks": bool(cfg["sparse.downsample_blocks"]),
                      "branch_channels": int(cfg["sparse.branch_channels"])},
            "extra": {"classes": list(lab.classes), "normalize": {"mean": mean.tolist(), "std": std.tolist()},
                      "input": {"channels": C, "image_size": H}}}


def _prepare_sr(data: str, cfg: dict, seed: int, dev) -> dict:
    from .data import hr_images

    scale, patch = int(cfg["scale"]), int(cfg["patch"])
    images = hr_images(data)
    if data.startswith("builtin:") and len(images) > 1:
        train_imgs, val_imgs = images[:-1], images[-1:]
    elif len(images) > 1:
        nv = max(1, len(images) // 10)
        train_imgs, val_imgs = images[:-nv], images[-nv:]
    else:
        train_imgs, val_imgs = images, images
    big = [im for im in train_imgs if min(im[1].shape[:2]) // scale > patch]
    if not big:
        raise InputError(f"no training image in {data} is larger than the patch ({patch} LR px = {patch * scale} HR px)",
                         hint="lower --patch or give larger images")
    pairs = sr_pairs(big, scale, dev)
    val = [tuple(t[None] for t in center_crop_pair(lr, hr, scale)) for lr, hr in sr_pairs(val_imgs, scale, dev)]
    loader = PatchLoader(pairs, patch, scale, int(cfg["batch_size"] or 16), int(cfg["steps_per_epoch"] or 100), seed)
    return {"arch": "srresnet", "loader": loader, "val": val, "scale": scale,
            "model": {"scale": scale, "channels": int(cfg["channels"]), "blocks": int(cfg["blocks"]),
                      "batchnorm": bool(cfg["sr.batchnorm"]),
                      "branch_channels": int(cfg["sparse.branch_channels"])},
            "extra": {"scale": scale, "train_images": [n for n, _ in big], "val_images": [n for n, _ in val_imgs]}}
