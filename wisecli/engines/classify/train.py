"""Training for `wise classify train` (spec §2, §3) with the shared trainer (`wisecli.runtime.trainer.fit`).

Recipe [reconstructed]: SGD (momentum 0.9, wd 5e-4) by default; lr per optimizer (`LR`); cosine schedule after
`warmup_epochs` (1) linear warm-up epochs, set per epoch; `--bayes implicit` uses the iBNN schedule instead (flat
to 50 %, linear to 1 % by 90 %) and SGD-Nesterov when the optimizer is sgd, with the variational parameters in their
own group (no weight decay, lr 0.4 K lr / 0.1, not annealed: `make_scheduler`); `--faithful` (LAMBC only) keeps the lr constant and resets m, v at
every epoch (in the sampler's `set_epoch`, on every rank, also after `--resume`), as the public LAMBC script.
Monitor: `val_bal_acc` (max). Records add `val_cdb_tau` (CDB), `train_lambc_{tau_min,tau_med,tau_max,clipped}`
(epoch means of what LAMBC's step returns) and `train_ibnn_{kl,beta}`.
Validation of implicit models uses `bayes.val_samples` (1) sample per component, to keep epochs cheap; predict
and evaluate use `--samples` (4). Ensembles train every member on the same batches (one stacked module, the
loss is the mean over members). Weight decay [reconstructed]: sgd 5e-4, lars 5e-4, adamw 0.01, lamb/lambc 0.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from wisecli.cli.errors import InputError
from wisecli.runtime.loaders import EpochSampler, TensorLoader

from .bayes import beta_at, predictive, repeat_batch
from .data import (as_tensor, cpu_threads, fit_normalize, load_data, match_input,
                   normalizer, stratified_split)
from .loss import build_loss
from .metrics import balanced_accuracy, per_class_recall

METHOD = "classify"
LR = {"sgd": 0.05, "adamw": 1e-3, "lars": 0.1, "lamb": 0.01, "lambc": 0.01}
WD = {"sgd": 5e-4, "adamw": 0.01, "lars": 5e-4, "lamb": 0.0, "lambc": 0.0}
AUGMENTS = ("none", "basic", "rotate")


def lr_factor(i: int, epochs: int, warmup: int, schedule: str) -> float:
    """The lr multiplier of 0-based epoch `i`: cosine after warm-up, the iBNN schedule, or constant."""
    if schedule == "constant":
        return 1.0
    if schedule == "ibnn":
        t = i / max(1, epochs)
        if t <= 0.5:
            return 1.0
        if t <= 0.9:
            return 1.0 - 0.99 * (t - 0.5) / 0.4
        return 0.01
    if i < warmup:
        return (i + 1) / (warmup + 1)
    span = max(1, epochs - warmup)
    return 0.5 * (1 + math.cos(math.pi * (i - warmup) / span))


def check_config(cfg: dict, world: int = 1) -> None:
    """Refuse settings before any work (exit 2): choices, --tau, --components, --faithful, batch vs world size."""
    from wisecli.cli.config import one_of
    from wisecli.nn.zoo import ARCHS
    from wisecli.optim import OPTIMIZERS

    from .bayes import BAYES
    from .loss import LOSSES, parse_tau

    one_of("--arch", cfg["arch"], ARCHS)
    one_of("--optimizer", cfg["optimizer"], OPTIMIZERS)
    one_of("--loss", cfg["loss"], LOSSES)
    one_of("--bayes", cfg["bayes"], BAYES)
    one_of("--augment", cfg["augment"], AUGMENTS)
    one_of("loss.cdb_reduction", cfg["loss.cdb_reduction"], ("mean", "weighted-mean"))
    try:
        parse_tau(cfg["tau"])
    except ValueError as exc:
        raise InputError(str(exc), hint="--tau dynamic (2 sigmoid(b-1)), dynamic-sigmoid (sigmoid(b)) or e.g. 1.0") from None
    for key, lo in (("threads", 0), ("components", 1), ("members", 1), ("epochs", 1), ("batch_size", 2), ("warmup_epochs", 0),
                    ("bayes.train_samples", 1), ("bayes.val_samples", 1)):
        if int(cfg[key]) < lo:
            raise InputError(f"--{key.replace('_', '-')} must be at least {lo}, got {cfg[key]}",
                             hint="see wise classify train --help")
    for key in ("width", "dropout", "val_fraction", "loss.min_weight", "loss.gamma", "bayes.prior_std"):
        v = float(cfg[key])
        if not math.isfinite(v) or v < 0 or (key in ("width", "bayes.prior_std") and v == 0) or \
                (key in ("dropout", "val_fraction") and v >= 1):
            raise InputError(f"setting {key} = {cfg[key]} is out of range", hint="see wise classify info")
    for key in ("lr", "weight_decay"):
        if cfg[key] is not None:
            v = float(cfg[key])
            if not math.isfinite(v) or v < 0 or (key == "lr" and v == 0):
                raise InputError(f"--{key.replace('_', '-')} must be a finite number {'> 0' if key == 'lr' else '>= 0'}",
                                 hint="leave it out for the optimizer's default")
    if cfg["faithful"] and cfg["optimizer"] != "lambc":
        raise InputError("--faithful restores the public LAMBC script's quirks and needs --optimizer lambc",
                         hint="add --optimizer lambc or drop --faithful")
    if int(cfg["batch_size"]) % world:
        raise InputError(f"--batch-size {cfg['batch_size']} is not divisible by the {world} processes",
                         hint="the batch is global: give a multiple of the world size")


def model_kwargs(cfg: dict, lab, num_classes: int) -> dict:
    """The exact `wisecli.nn.zoo.build` keyword arguments (stored as the checkpoint's `model`)."""
    if lab.kind == "image":
        channels, size = int(lab.X.shape[1]), int(lab.X.shape[-1])
    else:
        channels, size = 1, int(lab.X.shape[1])
    mk = {"in_channels": channels, "num_classes": num_classes, "image_size": size, "width": float(cfg["width"]),
          "norm": cfg["norm"], "bayes": cfg["bayes"], "components": int(cfg["components"]),
          "dropout": float(cfg["dropout"]), "members": int(cfg["members"])}
    if cfg["bayes"] == "implicit":
        mk["prior_std"] = float(cfg["bayes.prior_std"])
    return mk


def build_optimizer_for(model, cfg: dict):
    """The optimizer with the iBNN variational group when `bayes` is implicit; LAMBC options from `optim.*`."""
    from wisecli.optim import build_optimizer

    name = cfg["optimizer"]
    lr = float(cfg["lr"]) if cfg["lr"] is not None else LR[name]
    wd = float(cfg["weight_decay"]) if cfg["weight_decay"] is not None else WD[name]
    opts: dict = {}
    if name in ("lamb", "lambc"):
        opts.update(bias_correction=bool(cfg["optim.bias_correction"]), decoupled_decay=bool(cfg["optim.decoupled_decay"]),
                    exclude_1d=bool(cfg["optim.exclude_1d"]), compile_step=bool(cfg["optim.compile_step"]))
        if cfg["optim.clip_low"] not in (None, "", "none"):
            opts["clip_low"] = float(cfg["optim.clip_low"])
        if name == "lambc":
            clip = cfg["optim.clip"]
            opts["clip"] = None if clip in (None, "", "none", "inf") or not math.isfinite(float(clip)) else float(clip)
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg["bayes"] == "implicit":
        from wisecli.nn.implicit import implicit_parameters

        var = list(implicit_parameters(model))
        ids = {id(p) for p in var}
        groups = [{"params": [p for p in params if id(p) not in ids]},
                  {"params": var, "weight_decay": 0.0, "lr": 0.4 * int(cfg["components"]) * lr / 0.1}]
        if name == "sgd":
            opts["nesterov"] = True
        params = groups
    return build_optimizer(name, params, lr=lr, weight_decay=wd, **opts), lr


def make_scheduler(optimizer, epochs: int, warmup: int, schedule: str):
    """The per-epoch LambdaLR. Under the iBNN schedule only the deterministic weights (group 0) are annealed; the
    variational group (`build_optimizer_for`'s second group) keeps its lr, as `trungtrinh44/ibnn`'s README runs
    (`lr_ratio_sto=1.0`) and spec §2.4 ("variational parameters: no wd or decay"). Every other schedule applies to
    every group."""
    def factor(i):
        return lr_factor(i, epochs, warmup, schedule)

    if schedule == "ibnn" and len(optimizer.param_groups) == 2:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, [factor, lambda i: 1.0])
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class _StepStats:
    """LAMBC's per-step statistics in 0-d tensors that the trainer reads after `optimizer.step()` (it stacks the
    step's metrics after the step), without any `.item()`: the optimizer's class is swapped for a subclass whose
    `step` copies the returned dict into them (made before the LR scheduler, which wraps `step` in turn)."""

    KEYS = ("lambc_tau_min", "lambc_tau_med", "lambc_tau_max", "lambc_clipped")

    def __init__(self, optimizer, device):
        self.values = {k: torch.zeros((), device=device) for k in self.KEYS}
        values, base = self.values, type(optimizer)

        def step(opt, *args, **kwargs):
            out = base.step(opt, *args, **kwargs)
            if isinstance(out, dict):
                for k in values:
                    if k in out:
                        values[k].copy_(torch.as_tensor(out[k]).float())
            return out

        optimizer.__class__ = type(base.__name__, (base,), {"step": step})


def make_step(cfg: dict, criterion, norm, model, device, *, n_train: int, epochs_total: int, seed: int, stats,
              sampler: EpochSampler, kind: str):
    """step(net, (x, y)) -> (loss, metrics) for the trainer: augment on the device, normalise, forward, loss."""
    from wisecli.runtime.augment import augment

    gen = torch.Generator(device=device).manual_seed(seed + 1)
    bayes, mode = cfg["bayes"], cfg["augment"]
    L = int(cfg["bayes.train_samples"])

    def step(net, batch):
        x, y = batch
        if kind == "image":
            xf = x.float() / 255
            if mode != "none":
                xf = augment(xf, mode, gen)
            x = norm(xf)
        else:
            x = norm(x)
        metrics: dict = {}
        if bayes == "implicit":
            from wisecli.nn.implicit import implicit_kl

            logits = net(repeat_batch(x, L))
            beta = beta_at(sampler.epoch, epochs_total)
            kl = implicit_kl(model)
            loss = criterion(logits, y.repeat(L)) + beta * kl / n_train
            metrics.update(ibnn_kl=kl.detach(), ibnn_beta=torch.full((), beta, device=x.device))
        elif bayes == "ensemble":
            logits = net(x)
            m = logits.shape[0]
            loss = criterion(logits.reshape(m * y.shape[0], -1), y.repeat(m))
        else:
            loss = criterion(net(x), y)
        if stats is not None:
            metrics.update(stats.values)
        return loss, metrics

    return step


def evaluate_logp(model, x, norm, cfg_bayes: str, samples, components: int, batch: int = 256):
    """log p̄ (N, C) of data tensor `x` (on the model's device) in chunks."""
    from .bayes import replicas

    reps = max(1, replicas(cfg_bayes, samples, components))
    chunk = max(1, batch // reps) if reps > 1 else batch
    out = [predictive(model, norm(x[s:s + chunk]), cfg_bayes, samples, components) for s in range(0, len(x), chunk)]
    return torch.cat(out)


def restore_cdb(criterion, run_dir: Path) -> bool:
    """On `--resume`: the CDB weights of `run_dir/checkpoints/last.pt` into the loss (True when restored)."""
    from wisecli.runtime.checkpoints import load_checkpoint

    last = Path(run_dir) / "checkpoints" / "last.pt"
    if not last.is_file():
        return False
    doc = load_checkpoint(last, method=METHOD)
    if doc.get("cdb_weights") is None:
        return False
    criterion.weights.copy_(doc["cdb_weights"].to(criterion.weights.device))
    return True


def run_training(data, out_dir: Path | None, *, cfg: dict, config_record: dict, device, amp: bool, seed: int,
                 val=None, test=None, init=None, resume: bool = False, overwrite: bool = False,
                 progress: bool = True, sink=None) -> dict:
    """The `train` verb: read and check everything, then `runtime.trainer.fit` into the run folder; returns the
    summary {run_dir, epochs, best_metric, best_epoch, last, test, classes, device, seconds}."""
    import os

    from wisecli.nn.zoo import build
    from wisecli.runtime.checkpoints import load_checkpoint
    from wisecli.runtime.device import as_device, device_name, init_distributed
    from wisecli.runtime.io.atomic import append_line, write_json
    from wisecli.runtime.rundir import prepare_run_dir
    from wisecli.runtime.runrecord import RunRecord
    from wisecli.runtime.trainer import TrainSpec, fit

    t0 = time.perf_counter()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    check_config(cfg, world)
    if out_dir is None:
        raise InputError("train needs a run folder", hint="pass -o RUN")
    device = as_device(device, sink=sink)
    lab = load_data(data, {**cfg, "val_fraction": 0.0} if val is not None else cfg, seed)  # --val: no carve
    classes = list(lab.classes)
    if len(classes) < 2:
        raise InputError(f"{data}: only one class ({classes[0] if classes else 'none'})",
                         hint="a classifier needs at least two classes")
    tr = np.asarray(lab.split.get("train", np.arange(len(lab.y))))
    va_x = va_y = None
    if val is not None:
        vl = load_data(val, cfg, seed)
        if list(vl.classes) != classes:
            raise InputError(f"--val {val}: its classes {vl.classes[:5]} differ from the training classes {classes[:5]}",
                             hint="give a validation set with the same class names")
        va_x, va_y = vl.X, vl.y
        split = {"train": tr, "val": None}
    elif "val" in lab.split and len(lab.split["val"]):
        va = np.asarray(lab.split["val"])
        split = {"train": tr, "val": va}
    else:
        tr, va = stratified_split(lab.y[tr], float(cfg["val_fraction"]), seed)
        tr, va = np.asarray(lab.split.get("train", np.arange(len(lab.y))))[tr], \
            np.asarray(lab.split.get("train", np.arange(len(lab.y))))[va]
        split = {"train": tr, "val": va}
    if va_x is None:
        va_x, va_y = lab.X[split["val"]], lab.y[split["val"]]
    if len(va_y) == 0:
        raise InputError(f"{data}: no validation images", hint="give --val or more images per class")
    C = len(classes)
    val_counts = np.bincount(va_y, minlength=C)
    if cfg["loss"] == "cdb" and val_counts.min() < 2:
        c = int(np.argmin(val_counts))
        raise InputError(f"--loss cdb needs at least 2 validation images of every class; '{classes[c]}' has "
                         f"{int(val_counts[c])}", hint="give --val with more images, or raise --set val_fraction")
    train_counts = np.bincount(lab.y[tr], minlength=C)
    mk = model_kwargs(cfg, lab, C)
    from wisecli.runtime.device import seed_everything

    seed_everything(seed)  # the initial weights, the implicit latents and dropout follow --seed
    try:
        model = build(cfg["arch"], **mk)
    except InputError:
        raise
    except (ValueError, RuntimeError) as exc:
        raise InputError(f"--arch {cfg['arch']} cannot take this data ({mk['in_channels']}x{mk['image_size']}): {exc}",
                         hint="choose another --arch or --image-size") from None
    if init is not None:
        doc = load_checkpoint(init, method=METHOD)
        try:
            model.load_state_dict(doc["state_dict"])
        except RuntimeError:
            raise InputError(f"--init {init}: its weights do not fit --arch {cfg['arch']} with these settings",
                             hint="give a checkpoint of the same arch, classes and width") from None
    run_dir = prepare_run_dir(out_dir, resume=resume, overwrite=overwrite, is_main=int(os.environ.get("RANK", "0")) == 0)
    if resume and (run_dir / "checkpoints" / "last.pt").is_file():  # a bad last.pt is refused before any write
        last_doc = load_checkpoint(run_dir / "checkpoints" / "last.pt", method=METHOD)
        if last_doc.get("arch") != cfg["arch"]:
            raise InputError(f"{run_dir / 'checkpoints' / 'last.pt'} was trained with arch '{last_doc.get('arch')}', "
                             f"not '{cfg['arch']}'", hint="resume with the same --arch, or start a new run folder")
    rank = 0
    if world > 1:
        info, device = init_distributed(str(device))
        rank = info.rank
    is_main = rank == 0

    x_tr = as_tensor(lab.X[tr]).to(device)
    y_tr = torch.as_tensor(lab.y[tr], dtype=torch.long, device=device)
    x_va = as_tensor(va_x).to(device)
    y_va = torch.as_tensor(va_y, dtype=torch.long, device=device)
    norm_doc = fit_normalize(x_tr, lab.kind)
    norm = normalizer(norm_doc, lab.kind, device)
    if lab.kind == "image" and tuple(x_va.shape[1:]) != tuple(x_tr.shape[1:]):
        x_va = match_input(x_va, "image", x_tr.shape[1], x_tr.shape[-1])
    if cfg["sync_bn"] and world > 1:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    criterion = build_loss(cfg["loss"], C, counts=train_counts.tolist(), tau=cfg["tau"],
                           reduction=cfg["loss.cdb_reduction"], min_weight=float(cfg["loss.min_weight"]),
                           gamma=float(cfg["loss.gamma"]), beta=float(cfg["loss.beta"])).to(device)
    optimizer, base_lr = build_optimizer_for(model, cfg)
    epochs = int(cfg["epochs"])
    schedule = "constant" if cfg["faithful"] else ("ibnn" if cfg["bayes"] == "implicit" else "cosine")
    warm = int(cfg["warmup_epochs"])
    stats = _StepStats(optimizer, device) if cfg["optimizer"] in ("lambc", "lamb") else None  # before the scheduler
    scheduler = make_scheduler(optimizer, epochs, warm, schedule)
    sampler = EpochSampler(len(y_tr), int(cfg["batch_size"]), seed, rank, world)
    if cfg["faithful"]:
        sampler.on_epoch.append(lambda e: optimizer.reset_state())
    loader = TensorLoader(x_tr, y_tr, sampler)
    step = make_step(cfg, criterion, norm, model, device, n_train=len(y_tr), epochs_total=epochs, seed=seed,
                     stats=stats, sampler=sampler, kind=lab.kind)
    per_class: dict = {}

    def validate(m, epoch):
        logp = evaluate_logp(m, x_va, norm, cfg["bayes"], int(cfg["bayes.val_samples"]) if cfg["bayes"] == "implicit"
                             else None, int(cfg["components"]))
        pred = logp.argmax(1)
        recall = per_class_recall(y_va, pred, C).nan_to_num(0.0)
        out = {"loss": -logp.gather(1, y_va[:, None]).mean(), "acc": (pred == y_va).float().mean(),
               "bal_acc": balanced_accuracy(y_va, pred, C)}
        if cfg["loss"] == "cdb":
            criterion.update(recall)
            out["cdb_tau"] = criterion.last_tau
        per_class["acc"] = recall.tolist()
        return {k: float(v) for k, v in out.items()}

    def on_epoch_end(epoch, record):
        line = {"epoch": epoch, "classes": classes, "val_acc": per_class.get("acc")}
        if cfg["loss"] == "cdb":
            line.update(cdb_weights=criterion.weights.tolist(), cdb_tau=float(criterion.last_tau))
            if bool(criterion.all_solved) and sink is not None:
                sink.warn(f"epoch {epoch}: every class is at 100 % validation accuracy; CDB weights are uniform")
        append_line(run_dir / "per_class.jsonl", __import__("json").dumps(line))

    def extra():
        return {"model": mk, "classes": classes, "normalize": norm_doc,
                "input": {"kind": lab.kind, "channels": mk["in_channels"], "image_size": mk["image_size"],
                          "layout": cfg["layout"]},
                "cdb_weights": criterion.weights.detach().cpu() if cfg["loss"] == "cdb" else None,
                "train_counts": train_counts.tolist()}

    if resume and cfg["loss"] == "cdb":
        restore_cdb(criterion, run_dir)
    if is_main:
        write_json(run_dir / "classes.json", classes)
        write_json(run_dir / "split.json", {"source": str(data), "val_source": None if val is None else str(val),
                                            **{k: (None if v is None else np.asarray(v).tolist()) for k, v in split.items()}})
        if not resume:
            (run_dir / "per_class.jsonl").unlink(missing_ok=True)
    spec = TrainSpec(epochs=epochs, run_dir=run_dir, method=METHOD, arch=cfg["arch"], config=cfg, amp=amp,
                     monitor="val_bal_acc", mode="max", resume=resume, progress=progress)
    from wisecli.runtime.device import oom_guard

    with cpu_threads(device, int(cfg.get("threads", 0) or 0)):
        res = oom_guard(lambda: fit(model, optimizer, loader, step, spec, device=device, scheduler=scheduler,
                                    validate=validate, on_epoch_end=on_epoch_end if is_main else None,
                                    checkpoint_extra=extra),
                        option_hint="--batch-size (or --set bayes.train_samples / --components)")
    summary = {"run_dir": str(run_dir), "epochs": epochs, "best_metric": res.best_metric, "best_epoch": res.best_epoch,
               "last": res.last_metrics, "classes": len(classes), "train_images": int(len(y_tr)),
               "val_images": int(len(y_va)), "device": device_name(device), "lr": base_lr}
    if test is not None or "test" in lab.split:
        from .predict import evaluate_model

        best = run_dir / "checkpoints" / "best.pt"
        t_src = test if test is not None else None
        if is_main and best.is_file():
            with cpu_threads(device, int(cfg.get("threads", 0) or 0)):  # --threads covers the test pass too
                if t_src is not None:
                    doc = evaluate_model(t_src, best, cfg_read=cfg, device=device, seed=seed)
                else:
                    te = np.asarray(lab.split["test"])
                    doc = evaluate_model(None, best, arrays=(lab.X[te], lab.y[te], lab.kind), device=device, seed=seed)
            summary["test"] = {k: doc[k] for k in ("accuracy", "balanced_accuracy", "nll", "ece_top15")}
    summary["seconds"] = time.perf_counter() - t0
    if is_main:
        rec = RunRecord("classify train", config=config_record, device=device_name(device), seed=seed,
                        inputs=[str(data)] + [str(p) for p in (val, test) if p is not None])
        for name in ("config.json", "metrics.jsonl", "classes.json", "split.json", "per_class.jsonl",
                     "checkpoints/last.pt", "checkpoints/best.pt"):
            rec.add_output(run_dir / name)
        rec.set("summary", {k: v for k, v in summary.items() if k != "last"})
        rec.write(run_dir)
    return summary
