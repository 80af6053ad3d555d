"""`wise contrastive train`: MoCo v2 + CLIM pretraining with `runtime.trainer.fit` (spec §2, §3).

Recipe and choices where the spec is silent [reconstructed]:
- Arms (spec §2.5): `baseline` (select none, mix none, no extra resolutions), `nn` (top-1 neighbour),
  `center` (§2.2, positive key only), `center-mix` (+ §2.3), `clim` (+ §2.4). `--select`, `--mix` and
  `--resolutions` override the arm's parts when given explicitly (`mix` and `resolutions` apply to the arms
  that mix / use multi-resolution; `select` to all).
- `clim_start` C_s (default max(1, round(0.1 E))): epochs 1..C_s are plain instance discrimination (the bank
  fills); clustering and selection run at the start of every epoch e > C_s, in the loader's `set_epoch`.
- Clusters default clip(round(N/500), 10, 1000), capped at N; k-means is seeded by (seed, epoch), so a resumed
  run rebuilds the same clusters from the restored bank.
- lr default 0.06·B/256 (the spec's small-data rate), SGD momentum 0.9, wd 1e-4, cosine decay per epoch;
  EMA momentum 0.99 under 100 epochs, else 0.999; queue 65,536 capped at N − B (warning).
- Resolutions `auto`: the 224-px set {192, 160, 128, 96} as ratios of the image size, rounded to multiples of
  4, kept when >= 8 and < S (16 px → 12, 8; 32 px → 28, 24, 20, 12).
- The data order and the positive draw of each epoch come from a generator seeded by (seed, epoch); the view
  randomness from torch's global RNG, which `last.pt` restores: a resumed run repeats the same epochs.
- `--val` (labelled): online kNN top-1 (k = 20, T = 0.07) of the val images by leave-one-out among
  themselves, every `eval_every` epochs (the last value is carried in between), monitored for best.pt.
- Diagnostics (flat trainer keys): `train_pos_nonempty`, `train_pos_mean`, `train_cluster_{min,median,max}`,
  `train_pos_share` (anchors of the epoch with j ≠ i) and, when the data or `--labels` give labels,
  `train_purity` (label agreement of P(i), averaged over anchors with non-empty P(i)) and `train_purity_nn`
  (plain top-1 neighbours of the same bank, over the same anchors: like for like, see algorithm.py);
  [additions] `train_purity_knn`, the label agreement of all k neighbours N_k(i), the pool the centre filter
  draws from (same anchors), and `train_purity_nn_all`, top-1 over all anchors. Before selection starts they are 0 / null.
- Shuffling BN (model.py): `shuffle_bn` (default on) shuffles the key batch across ranks under DDP;
  `bn_splits` S > 1 gives one process S BN sub-batches (MoCo's single-GPU SplitBatchNorm) with the key batch
  shuffled among them; S = 1 on one process is plain key BN (the spec's one-device rule).
- A collapse warning when the mean per-dimension std of the bank's normalised embeddings < 0.1/sqrt(D).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wisecli.cli.errors import InputError

ARMS = {
    "baseline": {"select": "none", "mix": "none", "multires": False},
    "nn": {"select": "nn", "mix": "none", "multires": False},
    "center": {"select": "center", "mix": "none", "multires": False},
    "center-mix": {"select": "center", "mix": None, "multires": False},
    "clim": {"select": "center", "mix": None, "multires": True},
}
BASE_RES = (192, 160, 128, 96)


def auto_resolutions(size: int) -> list[int]:
    out = []
    for r in BASE_RES:
        v = int(round(size * r / 224 / 4)) * 4
        if 8 <= v < size and v not in out:
            out.append(v)
    return out


def parse_list(text, what: str, cast=str) -> list:
    if isinstance(text, (list, tuple)):
        items = list(text)
    else:
        items = [t.strip() for t in str(text).split(",") if t.strip()]
    try:
        return [cast(t) for t in items]
    except ValueError:
        raise InputError(f"{what} {text!r} is not a comma list", hint=f"e.g. {what} 0,1,2") from None


def arm_config(arm: str, cfg: dict, image_size: int) -> dict:
    """The MoCo keywords of one arm (select, mix, resolutions) after the explicit overrides."""
    if arm not in ARMS:
        raise InputError(f"unknown arm {arm!r}", hint="arms: " + ", ".join(ARMS))
    a = ARMS[arm]
    select = cfg.get("select") or a["select"]
    mix = a["mix"] if a["mix"] is not None else cfg["mix"]
    if a["mix"] is None and mix == "none":
        mix = "none"
    res: list[int] = []
    if a["multires"]:
        r = str(cfg["resolutions"])
        res = auto_resolutions(image_size) if r == "auto" else ([] if r == "none" else parse_list(r, "--resolutions", int))
    for v in res:
        if not 1 <= v <= image_size:
            raise InputError(f"--resolutions {v} is above the image size {image_size} (or below 1)",
                             hint=f"use resolutions below {image_size}, or none")
    return {"select": select, "mix": mix, "resolutions": res}


class PairLoader:
    """Batches {"x", "xp", "idx", "pidx"} of uint8 images (anchors and one positive each) in a seeded order;
    `set_epoch` (called by the trainer on every rank, also after a resume) rebuilds the positive table."""

    def __init__(self, X: torch.Tensor, batch: int, seed: int, model, *, clim_start: int, clusters: int,
                 labels: torch.Tensor | None = None):
        self.X, self.batch, self.seed, self.model = X, int(batch), int(seed), model
        self.clim_start, self.clusters, self.labels = int(clim_start), int(clusters), labels
        self.sampler = self
        self.epoch = 1
        self._order: torch.Tensor | None = None
        self._pos: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.X.shape[0] // self.batch

    def set_epoch(self, epoch: int) -> None:
        import torch.distributed as dist

        self.epoch = int(epoch)
        self.model.prepare_epoch(self.epoch > self.clim_start, self.clusters, self.seed, self.epoch, self.labels, self.X)
        g = torch.Generator().manual_seed(self.seed * 1000003 + self.epoch)
        order = torch.randperm(self.X.shape[0], generator=g)
        pos = self.model.sample_positives(order, torch.Generator(device=self.model.table.device)
                                          .manual_seed(self.seed * 7919 + self.epoch)).cpu()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            r, w = dist.get_rank(), dist.get_world_size()
            per = len(order) // w
            order, pos = order[r * per:(r + 1) * per], pos[r * per:(r + 1) * per]
        self._order, self._pos = order, pos

    def __iter__(self):
        if self._order is None:
            self.set_epoch(self.epoch)
        for s in range(0, len(self._order) - self.batch + 1, self.batch):
            idx, pidx = self._order[s:s + self.batch], self._pos[s:s + self.batch]
            yield {"x": self.X[idx], "xp": self.X[pidx], "idx": idx, "pidx": pidx}


def _warn(msg: str, sink=None) -> None:
    if sink is not None and hasattr(sink, "warn"):
        sink.warn(msg)
    else:
        print(f"Warning: {msg}", file=sys.stderr)


def resolve_settings(cfg: dict, n: int, image_size: int, sink=None, warn: bool = True) -> dict:
    """Fill the data-dependent defaults and check the §8 limits (exit 2) before any work."""
    out = dict(cfg)
    epochs, batch = int(out["epochs"]), int(out["batch_size"])
    if batch > n:
        raise InputError(f"--batch-size {batch} is larger than the {n} training images", hint=f"use --batch-size {n} or less")
    if int(out["k"]) >= n:
        raise InputError(f"--k {out['k']} must be below the {n} training images", hint="e.g. --k 10")
    splits = int(out.get("bn_splits") or 1)
    if batch % splits:
        raise InputError(f"--batch-size {batch} is not divisible by --bn-splits {splits}",
                         hint=f"use a batch size that is a multiple of {splits}")
    clusters = out.get("clusters")
    clusters = int(min(max(round(n / 500), 10), 1000, n)) if clusters is None else int(clusters)
    if clusters > n:
        raise InputError(f"--clusters {clusters} is more than the {n} training images", hint=f"use at most {n}")
    out["clusters"] = clusters
    out["clim_start"] = max(1, round(0.1 * epochs)) if out.get("clim_start") is None else int(out["clim_start"])
    out["lr"] = 0.06 * batch / 256 if out.get("lr") is None else float(out["lr"])
    out["momentum"] = (0.99 if epochs < 100 else 0.999) if out.get("momentum") is None else float(out["momentum"])
    queue = int(out["queue"])
    cap = max(1, n - batch)
    if queue > cap:
        if warn:
            _warn(f"queue {queue} capped at N - batch = {cap}", sink)
        queue = cap
    out["queue"] = queue
    out["image_size"] = image_size
    return out


def build_model(cfg: dict, arm: dict, in_channels: int, n: int, mean, std):
    from .model import MoCo, pick_arch

    s = int(cfg["image_size"])
    return MoCo(arch=pick_arch(cfg["arch"], s), in_channels=in_channels, image_size=s, n_bank=n, queue=int(cfg["queue"]),
                k=int(cfg["k"]), width=float(cfg["width"]), dim=128, tau=float(cfg["tau"]),
                momentum=float(cfg["momentum"]), select=arm["select"], mix=arm["mix"],
                resolutions=tuple(arm["resolutions"]), positive_key=cfg["positive_key"],
                symmetric=bool(cfg["symmetric"]), same_cluster=bool(cfg["same_cluster"]),
                bank_view=cfg.get("bank_view", "key"), mean=mean, std=std,
                shuffle_bn=bool(cfg.get("shuffle_bn", True)), bn_splits=int(cfg.get("bn_splits", 1)))


def _loo_knn(feats: torch.Tensor, y: torch.Tensor, k: int = 20, t: float = 0.07) -> float:
    from .algorithm import knn

    n = feats.shape[0]
    k = min(k, n - 1)
    sims, idx = knn(feats, feats, k, exclude=torch.arange(n, device=feats.device))
    w = torch.exp(sims / t)
    c = int(y.max()) + 1
    scores = torch.zeros(n, c, device=w.device).scatter_add_(1, y[idx], w)
    return float((scores.argmax(1) == y).float().mean())


def embed(model, X: torch.Tensor, device, batch: int = 256, layer: str = "backbone") -> torch.Tensor:
    """Features of uint8 images X (CPU tensor) through the query encoder in eval mode, on `device`."""
    was = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, X.shape[0], batch):
            out.append(model.features(X[s:s + batch].to(device, non_blocking=True), layer).float())
    model.train(was)
    return torch.cat(out) if out else torch.zeros(0, 1, device=device)


def run_one(data, run_dir: Path | None, *, cfg: dict, arm_name: str, seed: int, device, amp: bool, resume: bool,
            overwrite: bool, progress: bool, sink=None, val=None, labels=None, config_record=None) -> dict:
    """Train one arm with one seed into `run_dir` (None: in memory); returns the run summary."""
    from wisecli.runtime.device import seed_everything
    from wisecli.runtime.io.atomic import write_json
    from wisecli.runtime.rundir import prepare_run_dir
    from wisecli.runtime.trainer import TrainSpec, fit

    t0 = time.perf_counter()
    ds = data if hasattr(data, "X") else None
    if ds is None:
        from .data import read_images
        ds = read_images(data, image_size=cfg.get("image_size"), labels=labels)
    n, c, h, w = ds.X.shape
    if h != w:
        from wisecli.runtime.io.labeled import resize_images
        ds.X = resize_images(ds.X, max(h, w))
        h = w = max(h, w)
    s = int(h)
    vs = None
    if val is not None:
        vs = val if hasattr(val, "X") else None
        if vs is None:
            from .data import read_images
            vs = read_images(val, image_size=s, need_labels=True, what="--val")
        if vs.X.shape[1] != c:
            raise InputError(f"--val has {vs.X.shape[1]} channels, the training data {c}", hint="use the same kind of images")
    full = resolve_settings(cfg, n, s, warn=False)
    arm = arm_config(arm_name, full, s)
    record = {**{k: v for k, v in full.items()}, "arm": arm_name, **arm, "seed": seed, "data": str(ds.source)}
    if run_dir is not None:
        prepare_run_dir(run_dir, resume=resume, overwrite=overwrite)
        if resume:
            _check_resume(Path(run_dir), record)
    resolve_settings(cfg, n, s, sink)  # now the queue-cap warning, after every check that can refuse the run
    seed_everything(seed)
    Xf = torch.from_numpy(ds.X).float() / 255
    mean = Xf.mean(dim=(0, 2, 3)).tolist()
    std = Xf.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()
    del Xf
    model = build_model(full, arm, c, n, mean, std)
    model_cfg = {**model.cfg, "mean": mean, "std": std}
    X = torch.from_numpy(ds.X)
    labels_t = torch.from_numpy(ds.y).to(device) if ds.y is not None else None
    model.to(device)
    loader = PairLoader(X, int(full["batch_size"]), seed, model, clim_start=full["clim_start"],
                        clusters=full["clusters"], labels=labels_t)
    params = [p for p in model.encoder_q.parameters()]
    opt = torch.optim.SGD(params, lr=full["lr"], momentum=0.9, weight_decay=1e-4)
    epochs = int(full["epochs"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 0.5 * (1 + math.cos(math.pi * min(e, epochs) / epochs)))
    validate = None
    last_val = {"knn_top1": float("nan")}
    if vs is not None:
        vx, vy = torch.from_numpy(vs.X), torch.from_numpy(vs.y).to(device)
        every = int(full["eval_every"])

        def validate(m, epoch):
            if epoch % every == 0 or epoch == epochs or math.isnan(last_val["knn_top1"]):
                feats = embed(m, vx, device)
                last_val["knn_top1"] = _loo_knn(torch.nn.functional.normalize(feats, dim=1), vy)
            return dict(last_val)

    def on_epoch_end(epoch, rec):
        b = torch.nn.functional.normalize(model.bank.float(), dim=1)
        filled = b.abs().sum(1) > 0
        if int(filled.sum()) > 1:
            spread = float(b[filled].std(0).mean())
            if spread < 0.1 / math.sqrt(b.shape[1]):
                _warn(f"epoch {epoch}: embeddings collapse (mean per-dimension std {spread:.2e})", sink)

    spec = TrainSpec(epochs=epochs, run_dir=None if run_dir is None else Path(run_dir), method="contrastive",
                     arch=model.cfg["arch"], config={"model": model_cfg, "train": record}, amp=amp,
                     monitor="val_knn_top1" if vs is not None else "train_loss",
                     mode="max" if vs is not None else "min", resume=resume, progress=progress)
    result = fit(model, opt, loader, lambda net, batch: net(batch), spec, device=device, scheduler=sched,
                 validate=validate, on_epoch_end=on_epoch_end)
    summary = {"run_dir": None if run_dir is None else str(run_dir), "arm": arm_name, "seed": seed,
               "epochs": epochs, "images": n, "image_size": s, "arch": model.cfg["arch"],
               "best_metric": result.best_metric, "best_epoch": result.best_epoch, "last": result.last_metrics,
               "seconds": time.perf_counter() - t0}
    if run_dir is not None:
        write_json(Path(run_dir) / "run.json", {"verb": "train", "method": "contrastive", "config": record,
                                                "config_sources": config_record, "summary": summary,
                                                "device": str(device), "seed": seed})
    summary["model"] = model
    summary["history"] = result.history
    return summary


def _check_resume(run_dir: Path, record: dict) -> None:
    import json

    from wisecli.runtime.checkpoints import load_checkpoint

    last = run_dir / "checkpoints" / "last.pt"
    if last.is_file():
        load_checkpoint(last, method="contrastive")  # a corrupt or foreign last.pt is exit 2 before any work
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        return
    try:
        old = json.loads(cfg_path.read_text()).get("config", {}).get("train", {})
    except (OSError, ValueError):
        return
    differ = sorted(k for k in set(old) | set(record) if old.get(k) != _plain(record.get(k)))
    if differ:
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {record.get(k)!r}" for k in differ[:6])
        raise InputError(f"--resume with a different configuration ({shown})",
                         hint="resume with the same options, or start a new run folder")


def _plain(v: Any) -> Any:
    if isinstance(v, tuple):
        return list(v)
    return v


def run_train(data, out_dir, *, cfg: dict, device, amp: bool, seeds: list[int], arms: list[str], resume: bool,
              overwrite: bool, progress: bool, sink=None, val=None, labels=None, config_record=None) -> dict:
    """One arm and seed: the standard run folder; several: `out_dir/<arm>/seed<s>/` plus `study.json`."""
    from wisecli.runtime.io.atomic import write_json
    from wisecli.runtime.rundir import prepare_run_dir

    from .data import read_images

    ds = read_images(data, image_size=cfg.get("image_size"), labels=labels)
    vs = None if val is None else read_images(val, image_size=ds.X.shape[-1] if cfg.get("image_size") is None else cfg["image_size"],
                                              need_labels=True, what="--val")
    for a in arms:
        arm_config(a, {**cfg, "mix": cfg["mix"]}, int(ds.X.shape[-1]))
    resolve_settings(cfg, ds.n, int(ds.X.shape[-1]), warn=False)
    if len(arms) == 1 and len(seeds) == 1:
        s = run_one(ds, Path(out_dir), cfg=cfg, arm_name=arms[0], seed=seeds[0], device=device, amp=amp, resume=resume,
                    overwrite=overwrite, progress=progress, sink=sink, val=vs, config_record=config_record)
        s.pop("model"), s.pop("history")
        return s
    root = prepare_run_dir(Path(out_dir), resume=resume, overwrite=overwrite)
    runs = []
    for a in arms:
        for sd in seeds:
            s = run_one(ds, root / a / f"seed{sd}", cfg=cfg, arm_name=a, seed=sd, device=device, amp=amp,
                        resume=resume, overwrite=False, progress=progress, sink=sink, val=vs, config_record=config_record)
            s.pop("model"), s.pop("history")
            runs.append(s)
    doc = {"method": "contrastive", "arms": arms, "seeds": seeds, "runs": runs, "data": str(data)}
    write_json(root / "study.json", doc)
    return {"run_dir": str(root), "study": True, "runs": runs}
