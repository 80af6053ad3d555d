"""Training glue (spec §2.3): two stages of WingsNet + group-supervised GUL over the patch sampler.

Schedule [public code: lr, α]: stage 1 α 0.1 (labels binarised at 0.7), lr ×0.1 at 60 % and 90 % of its
epochs (60 and 90 of 100); stage 2 from stage 1, α 0.2 (binarised at 0.9), lr ×0.1 at 50 % and 83 % (15 and 25
of 30). The optimizer is unpublished: SGD (momentum 0.9, Nesterov, wd 1e-4, lr 0.01) or AdamW (lr 1e-3).
Hard-skeleton targets are refreshed with the model in training every 20 epochs in stage 1 (from epoch 20) and
every 10 in stage 2; validation runs every 5 epochs and `best.pt` follows the ATM score.
"""

from __future__ import annotations

import numpy as np

def parse_windows(spec: str):
    """'-1000:400,-1000:-300' → ((−1000, 400), (−1000, −300))."""
    from wisecli.cli.errors import InputError

    try:
        out = tuple(tuple(float(v) for v in w.split(":")) for w in str(spec).split(",") if w.strip())
        assert out and all(len(w) == 2 and w[1] > w[0] for w in out)
    except (ValueError, AssertionError):
        raise InputError(f"model.hu_windows {spec!r} is not a list of lo:hi windows",
                         hint="for example --set model.hu_windows=-1000:400,-1000:-300") from None
    return out


def make_optimizer(model, cfg: dict):
    import torch

    name = cfg["optim.name"]
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg["optim.lr"] or 0.01, momentum=cfg["optim.momentum"],
                               nesterov=True, weight_decay=cfg["optim.weight_decay"])
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=cfg["optim.lr"] or 1e-3, weight_decay=cfg["optim.weight_decay"])
    from wisecli.cli.errors import InputError

    raise InputError(f"unknown optimizer {name!r}", hint="sgd or adamw")


def milestones(stage: int, epochs: int) -> list[int]:
    """Stage 1: 60 % and 90 % of its epochs; stage 2: 50 % and 83 % (the public 60/90 of 100, 15/25 of 30)."""
    fr = (0.6, 0.9) if stage == 1 else (0.5, 25 / 30)
    return sorted({max(1, int(round(f * epochs))) for f in fr})


def make_step(*, crop: int, binarise: float, alpha: float, loss_name: str, enc_weight: float, reduce: str,
              windows, generator=None, dist_mode: str = "skeleton"):
    """step(model, batch) → (loss, metrics) for the shared trainer; augmentation runs on the batch's device.
    With `dist_mode="nearest"` the batch carries the raw distance e and q is normalised per patch here."""
    from .data import augment
    from .loss import group_loss, patch_q

    nearest = dist_mode == "nearest"

    def step(model, batch):
        img, lab, q = batch
        x, g, qq = augment(img, lab, q, crop=crop, binarise=binarise, windows=windows, rng=generator,
                           q_max=None if nearest else 1.0)
        if nearest:
            qq = patch_q(qq, g)
        out = model(x)
        enc, dec = out if isinstance(out, tuple) else (None, out)
        loss = group_loss(enc, dec, g, qq if loss_name == "gul" else None, name=loss_name, alpha=alpha,
                          enc_weight=enc_weight, reduce=reduce)
        return loss, {"alpha": alpha, "fg_fraction": float(g.mean())}

    return step


def predict_case(model, img: np.ndarray, *, roi: int, sw_batch: int, windows, device, amp=True) -> np.ndarray:
    """Binary LCC prediction of a cached (canonical, cropped) case, used by validation and hard mining."""
    import torch

    from .predict import PredictOptions, normalise, postprocess, window_pass

    opts = PredictOptions(roi=roi, sw_batch=sw_batch, amp=amp)
    was = model.training
    model.eval()
    x = normalise(torch.from_numpy(np.asarray(img, np.float32)).to(device), windows)
    prob = window_pass(model, x, opts, device)[0, 0]
    model.train(was)
    return postprocess((prob >= 0.5).cpu().numpy(), 6, True)


def refresh_hard(model, sampler, *, roi, sw_batch, windows, device, rank=0, world=1):
    """Hard-skeleton targets: GT skeleton voxels missed by LCC(prediction), per case of this rank."""
    for case in sampler.cases[rank::world]:
        img, _, _ = case.arrays()
        pred = predict_case(model, img, roi=roi, sw_batch=sw_batch, windows=windows, device=device)
        sk = case.skeleton
        missed = sk[pred[tuple(sk.T)] == 0] if len(sk) else sk
        sampler.hard[case.name] = missed


def validate_cases(model, cases, *, roi, sw_batch, windows, device) -> dict:
    """Mean ATM metrics over the validation cases (cached arrays)."""
    from .metrics import prepare_reference, score

    rows = []
    for case in cases:
        img, lab, _ = case.arrays()
        pred = predict_case(model, img, roi=roi, sw_batch=sw_batch, windows=windows, device=device)
        ref = prepare_reference(np.asarray(lab), case.spacing_zyx[::-1])
        rows.append(score(pred, ref))
    if not rows:
        return {}
    return {f"val_{k}": float(np.mean([r[k] for r in rows])) for k in ("atm_score", "td", "bd", "dsc", "precision")}


class _Loader:
    """The DataLoader over the patch sampler, exposing `sampler.set_epoch` to the shared trainer (which is
    where the stage, α and hard-skeleton refreshes switch at the start of each epoch)."""

    def __init__(self, dataset, set_epoch, batch_size: int, workers: int, pin: bool):
        from types import SimpleNamespace

        import torch

        self.dataset = dataset
        self.sampler = SimpleNamespace(set_epoch=set_epoch)
        self.loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers,
                                                  pin_memory=pin, drop_last=False)
        self.batch_size = batch_size

    def __iter__(self):
        return iter(self.loader)

    def __len__(self):
        return -(-len(self.dataset) // self.batch_size)


class _Stages:
    """Per-epoch stage state (epoch → stage, α, label binarisation, refresh schedule) shared by step/sampler."""

    def __init__(self, cfg: dict, e1: int, e2: int):
        self.cfg, self.e1, self.e2 = cfg, e1, e2
        self.stage = 1 if e1 > 0 else 2

    def at(self, epoch: int):
        self.stage = 1 if epoch <= self.e1 else 2
        return self

    @property
    def alpha(self):
        return self.cfg[f"schedule.alpha{self.stage}"]

    @property
    def binarise(self):
        return self.cfg[f"data.binarise{self.stage}"]

    def refresh_due(self, epoch: int) -> bool:
        """Stage 1: every refresh1 epochs from epoch refresh1; stage 2: every refresh2 epochs of the stage."""
        k = epoch - 1 if self.stage == 1 else epoch - 1 - self.e1
        every = self.cfg[f"schedule.refresh{self.stage}"]
        return k > 0 and every > 0 and k % every == 0

    def lr_factor(self, epoch0: int) -> float:
        """LambdaLR factor for the 0-based epoch index: ×0.1 at each milestone of the current stage."""
        e = epoch0 + 1
        if e <= self.e1:
            return 0.1 ** sum(e > m for m in milestones(1, self.e1))
        return 0.1 ** sum(e - self.e1 > m for m in milestones(2, self.e2))


SIZE_KEYS = ("data.batch_size", "data.patches_per_case", "data.crop", "data.patch", "val.roi", "val.sw_batch")
CPU_SIZES = {"data.batch_size": 1, "data.patches_per_case": 2, "data.crop": 64, "data.patch": 80, "val.roi": 96,
             "val.sw_batch": 1}
BASE_BYTES = 400 * 2**20  # Python, torch and the engine imported: 300 MB resident on CPU [measured], plus slack
STEP_FIXED = 256 * 2**20  # what a training step adds beyond its activations (allocator, oneDNN workspace,
                          # gradients and momentum): 150–250 MB at batch 1–2 × 32³–64³ on CPU [measured]
INFER_RATIO = 0.35        # no-grad forward peak / saved bytes per voxel: 840–1030 vs 2917 B on CPU [measured]
PROBE = 16


def memory_need(cfg: dict, per_voxel: float, params: int) -> int:
    """Bytes a run with `cfg`'s sizes needs: base + weights, gradients, momentum and a checkpoint copy + loader
    batches in flight (3 arrays a patch, 2 batches per worker and one in use) + the larger of a training step
    (saved activations × 1.15: backward transients, measured 1.03–1.19 between batch sizes) and a validation or
    hard-mining window batch (INFER_RATIO of the saved bytes)."""
    b, crop, patch = int(cfg["data.batch_size"]), int(cfg["data.crop"]), int(cfg["data.patch"])
    loader = (2 * int(cfg["data.workers"]) + 1) * b * 3 * patch ** 3 * 4
    train = 1.15 * per_voxel * b * crop ** 3
    infer = INFER_RATIO * per_voxel * int(cfg["val.sw_batch"]) * int(cfg["val.roi"]) ** 3
    return int(BASE_BYTES + STEP_FIXED + 16 * params + loader + max(train, infer))


def _smaller(cfg: dict):
    """Configurations with less memory, largest first: batch down to 1, then crop (and patch, same margin) by 16
    down to 32, each with the validation batch down to 1 and its window down to 64."""
    margin = int(cfg["data.patch"]) - int(cfg["data.crop"])
    for crop in range(int(cfg["data.crop"]), 31, -16):
        for b in range(int(cfg["data.batch_size"]), 0, -1):
            for swb, roi in ((int(cfg["val.sw_batch"]), int(cfg["val.roi"])), (1, int(cfg["val.roi"])), (1, 64)):
                yield {**cfg, "data.batch_size": b, "data.crop": crop, "data.patch": crop + margin,
                       "val.sw_batch": swb, "val.roi": min(roi, int(cfg["val.roi"]))}


def fit_memory(cfg: dict, dev, defaulted: set, in_channels: int, amp: bool, sink=None) -> dict:
    """Issue 13 point 8. On the CPU, sizes the user left at their defaults become CPU_SIZES (said on stderr).
    Then the run's memory (`memory_need`, activations measured with a 16³ probe on the device and autocast
    of the run) is checked against `runtime.memory.available_bytes`: over 90 % of it is refused with the
    largest smaller configuration that fits."""
    import torch

    from wisecli.cli.errors import InputError
    from wisecli.runtime.memory import available_bytes, gib, saved_bytes

    from .model import WingsNet

    cfg = dict(cfg)
    if dev.type == "cpu" and set(SIZE_KEYS) <= defaulted:
        cfg.update(CPU_SIZES)
        if sink is not None:
            sink.info("training on the CPU: batch 1, 2 patches a case, crop 64³ (patch 80³), validation windows 96³ "
                      "one at a time; the paper's batch 4 × 128³ needs a GPU (set data.* to change)")
    model = WingsNet(in_channels=in_channels, width=float(cfg["model.width"])).to(dev)
    x = torch.zeros(1, in_channels, PROBE, PROBE, PROBE, device=dev)
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp and dev.type == "cuda"):
        per_voxel = saved_bytes(model, x, exclude=list(model.parameters())) / PROBE ** 3
    params = sum(p.numel() for p in model.parameters())
    del model, x
    room = available_bytes(dev)
    need = memory_need(cfg, per_voxel, params)
    if room is None or need <= 0.9 * room:
        return cfg
    fits = next((c for c in _smaller(cfg) if memory_need(c, per_voxel, params) <= 0.9 * room), None)
    where = "on the GPU" if dev.type == "cuda" else "of memory"
    msg = (f"training needs about {gib(need)} (batch {cfg['data.batch_size']} × crop {cfg['data.crop']}³, "
           f"validation {cfg['val.sw_batch']} × {cfg['val.roi']}³) and {gib(room)} {where} is free")
    if fits is None:
        raise InputError(msg, hint="even batch 1 × crop 32³ does not fit: free memory, or train on a GPU")
    change = [f"--batch-size {fits['data.batch_size']}"] + [
        f"--set {k}={fits[k]}" for k in ("data.crop", "data.patch", "val.sw_batch", "val.roi") if fits[k] != cfg[k]]
    raise InputError(msg, hint=f"{' '.join(change)} fits (about {gib(memory_need(fits, per_voxel, params))})")


def run_training(data, run_dir, cfg: dict, *, val=None, device="auto", amp=True, seed=0, init=None,
                 resume=False, overwrite=False, sink=None, progress=True, defaulted: set = frozenset()) -> dict:
    """Both stages in one shared-trainer run (stage 2 continues from stage 1's last epoch with a fresh schedule
    and α 0.2); `checkpoints/stage1.pt` is the model at the end of stage 1. `cfg` holds every setting of
    `api.DEFAULTS["train"]`, resolved; `defaulted` names the settings left at their defaults (`fit_memory` may
    size those for the CPU). Every check (options, run folder, training pairs, --init, memory) comes before
    the first write."""
    import shutil
    from pathlib import Path

    import torch

    from wisecli.cli.errors import InputError
    from wisecli.runtime.checkpoints import load_checkpoint
    from wisecli.runtime.device import init_distributed, seed_everything
    from wisecli.runtime.rundir import prepare_run_dir
    from wisecli.runtime.trainer import TrainSpec, fit

    from .data import PatchSampler, build_case, check_pairs, discover_pairs
    from .loss import DIST_MODES
    from .model import WingsNet, cpu_layout

    run_dir = Path(run_dir)
    stage = str(cfg["schedule.stage"])
    if stage not in ("both", "1", "2"):
        raise InputError(f"--stage {stage!r} must be both, 1 or 2", hint="the default is both")
    if stage == "2" and init is None and not resume:
        raise InputError("--stage 2 starts from a stage-1 model", hint="pass --init RUN/checkpoints/stage1.pt")
    for key in ("data.batch_size", "data.patches_per_case", "schedule.epochs1", "schedule.epochs2"):
        if cfg[key] < (0 if key.startswith("schedule") else 1):
            raise InputError(f"{key} must be positive", hint="see 'wise segment-airway info'")
    crop, patch = int(cfg["data.crop"]), int(cfg["data.patch"])
    if crop % 8 or crop < 16 or patch < crop:
        raise InputError(f"data.crop {crop} must be a multiple of 8 (≥ 16) and data.patch {patch} ≥ crop",
                         hint="for example --set data.crop=128 --set data.patch=160")
    windows = parse_windows(cfg["model.hu_windows"])
    if cfg["loss.name"] not in ("gul", "root-tversky", "dice", "tversky"):
        raise InputError(f"loss.name {cfg['loss.name']!r} is unknown", hint="gul, root-tversky, dice or tversky")
    if cfg["loss.dist_mode"] not in DIST_MODES:
        raise InputError(f"loss.dist_mode {cfg['loss.dist_mode']!r} is unknown",
                         hint="skeleton (distance to the GT skeleton) or nearest (nearest of centreline or wall)")
    if cfg["optim.name"] not in ("sgd", "adamw"):
        raise InputError(f"--optimizer {cfg['optim.name']!r} is unknown", hint="sgd or adamw")
    if not 0 <= cfg["data.val_fraction"] < 1:
        raise InputError(f"--val-fraction {cfg['data.val_fraction']} must lie in [0, 1)", hint="for example 0.2")
    prepare_run_dir(run_dir, resume=resume, overwrite=overwrite, is_main=False)  # refuse before reading the data
    pairs = discover_pairs(list(data))
    val_pairs = discover_pairs(list(val)) if val else []
    checked = check_pairs(pairs + val_pairs)  # every invalid pair listed at once, before any work
    init_doc = load_checkpoint(Path(init), method="segment-airway") if init is not None else None
    last = run_dir / "checkpoints" / "last.pt"
    prev = load_checkpoint(last, method="segment-airway") if resume and last.is_file() else None  # before any write
    dist, dev = init_distributed(device)
    cfg = fit_memory(cfg, dev, defaulted, len(windows), amp, sink)  # refuse what cannot fit, before any write
    crop, patch = int(cfg["data.crop"]), int(cfg["data.patch"])
    prepare_run_dir(run_dir, resume=resume, overwrite=overwrite, is_main=dist.rank == 0)
    seed_everything(seed + dist.rank)

    cache = run_dir / "cache"
    cases = [build_case(f"{i:04d}_{Path(im).name.split('.')[0]}", im, lb, cache, cfg["loss.dist_mode"])
             for i, (im, lb) in enumerate(checked)]
    n_val = len(val_pairs)
    train_cases, val_cases = (cases[:-n_val], cases[-n_val:]) if n_val else (cases, [])
    if not n_val and cfg["data.val_fraction"] > 0:
        k = max(1, int(round(cfg["data.val_fraction"] * len(cases))))
        if k >= len(cases):
            raise InputError("--val-fraction leaves no training case", hint="lower it or add cases")
        order = np.random.default_rng(seed).permutation(len(cases))
        val_cases = [cases[i] for i in sorted(order[:k])]
        train_cases = [cases[i] for i in sorted(order[k:])]
    spacing_median = np.median([c.spacing_zyx[::-1] for c in cases], axis=0).tolist()

    e1 = 0 if stage == "2" else int(cfg["schedule.epochs1"])
    e2 = 0 if stage == "1" else int(cfg["schedule.epochs2"])
    if e1 + e2 < 1:
        raise InputError("no epochs to train", hint="raise --epochs1/--epochs2")
    st = _Stages(cfg, e1, e2)
    width = float(cfg["model.width"])
    model = WingsNet(in_channels=len(windows), width=width)
    if init_doc is not None:
        try:
            model.load_state_dict(init_doc["state_dict"])
        except RuntimeError:
            raise InputError(f"--init {init} does not fit this WingsNet", hint="same width and HU windows") from None
    model = cpu_layout(model.to(dev), dev)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    opt = make_optimizer(model, cfg)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, st.lr_factor)

    sampler = PatchSampler(train_cases, patch=patch, patches_per_case=int(cfg["data.patches_per_case"]), seed=seed,
                           rank=dist.rank, world=dist.world_size)
    if prev is not None:
        for name, pts in (prev.get("hard") or {}).items():
            sampler.hard[name] = pts.numpy() if hasattr(pts, "numpy") else np.asarray(pts)
    roi = int(cfg["val.roi"])
    swb = int(cfg["val.sw_batch"])
    step_state = {}

    def set_epoch(epoch):
        st.at(epoch)
        sampler.set_epoch(epoch)
        step_state["step"] = make_step(crop=crop, binarise=st.binarise, alpha=st.alpha, loss_name=cfg["loss.name"],
                                       enc_weight=float(cfg["loss.enc_weight"]), reduce=cfg["loss.reduce"],
                                       windows=windows, dist_mode=cfg["loss.dist_mode"])
        if st.refresh_due(epoch):
            refresh_hard(model, sampler, roi=roi, sw_batch=swb, windows=windows, device=dev, rank=dist.rank,
                         world=dist.world_size)

    loader = _Loader(sampler, set_epoch, int(cfg["data.batch_size"]), int(cfg["data.workers"]), dev.type == "cuda")
    val_cache: dict = {}
    total = e1 + e2

    def validate(m, epoch):
        due = epoch == 1 or epoch == total or epoch % int(cfg["schedule.val_every"]) == 0
        if due or not val_cache:
            val_cache.update(validate_cases(m, val_cases, roi=roi, sw_batch=swb, windows=windows, device=dev))
        return {**val_cache, "val_fresh": float(due)}

    def step(m, batch):
        loss, metrics = step_state["step"](m, batch)
        return loss, {**metrics, "stage": float(st.stage)}

    def on_epoch_end(epoch, record):
        if epoch == e1 and e1 and stage != "1":
            shutil.copyfile(last, run_dir / "checkpoints" / "stage1.pt")
        if epoch == e1 and stage == "1":
            shutil.copyfile(last, run_dir / "checkpoints" / "stage1.pt")

    mcfg = {"in_channels": len(windows), "width": width, "hu_windows": [list(w) for w in windows], "roi": crop,
            "train": dict(cfg)}
    spec = TrainSpec(epochs=total, run_dir=run_dir, method="segment-airway", arch="wingsnet", config=mcfg,
                     amp=amp, monitor="val_atm_score" if val_cases else "train_loss",
                     mode="max" if val_cases else "min", resume=resume, progress=progress)
    res = fit(model, opt, loader, step, spec, device=dev, scheduler=sched, validate=validate if val_cases else None,
              on_epoch_end=on_epoch_end,
              checkpoint_extra=lambda: {"stage": st.stage, "train_spacing_median": spacing_median,
                                        "hard": {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in
                                                 sampler.hard.items()}})
    return {"run_dir": str(run_dir), "epochs": total, "stage1_epochs": e1, "stage2_epochs": e2,
            "train_cases": len(train_cases), "val_cases": len(val_cases), "best_metric": res.best_metric,
            "best_epoch": res.best_epoch, "monitor": spec.monitor, "last": res.last_metrics}
