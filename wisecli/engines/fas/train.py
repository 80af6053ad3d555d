"""Training (spec §3 `train`): the face caches, the epoch loader and the loop over `runtime.trainer.fit`.

Choices where the spec is silent [reconstructed]:
* `best.pt` is chosen by dev ACER at the dev EER threshold; ties (frequent on small dev sets, e.g. several epochs at
  0 %) are broken by the lower dev loss: the monitor is `val_selection` = ACER + 10⁻³·tanh(dev loss), and
  `val_acer` is logged beside it.
* Training caches `frames` frames per video (8, as CDCN samples at test) and an epoch draws one of them per video.
* The run folder follows `runtime.rundir.prepare_run_dir` (refused when not empty unless `--resume`/`--overwrite`);
  under torchrun only rank 0 judges and prepares it.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from wisecli.cli.errors import InputError
from wisecli.engines.fas.model import build, check_config, pyramid_of
from wisecli.engines.fas.predict import _aggregate, score_crops

METHOD = "fas"


class _Loader:
    """One epoch of batches from a device-resident face cache: one random frame per video, shuffled; under
    torchrun each rank takes its share."""

    def __init__(self, cache, labels: torch.Tensor, batch_size: int, gen: torch.Generator):
        self.cache, self.labels, self.bs, self.gen = cache, labels, batch_size, gen

    def _picks(self):
        from wisecli.engines.fas.data import epoch_frames

        pick = epoch_frames(self.cache, self.gen)
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            pick = pick[dist.get_rank()::dist.get_world_size()]
        return pick

    def __len__(self):
        n = int(self.cache.owner.max()) + 1
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            n = math.ceil(n / dist.get_world_size())
        return math.ceil(n / self.bs)

    def __iter__(self):
        c = self.cache
        pick = self._picks().to(c.crops.device)
        for i in range(0, pick.numel(), self.bs):
            idx = pick[i:i + self.bs]
            yield {"crops": c.crops[idx], "kc": c.kc[idx], "extent": c.extent[idx],
                   "label": self.labels[c.owner[idx]],
                   "depth": c.depth[idx] if c.depth is not None else None, "has_depth": c.has_depth[idx]}


def _cache_key(samples, cfg: dict, train: bool) -> str:
    h = hashlib.sha256()
    for s in samples:
        h.update(f"{s.path}|{s.label}|{s.depth}|{s.box}\n".encode())
    h.update(json.dumps([cfg["detector"], cfg["input_size"], cfg["frames"], train,
                         cfg["target_kind"] == "depth"]).encode())
    return h.hexdigest()[:16]


def _cache(samples, detector, cfg: dict, *, train: bool, sink=None):
    """Build (or load from `--cache DIR`) the uint8 face cache of a split."""
    from wisecli.engines.fas.data import FaceCache, build_cache

    want_depth = cfg["target_kind"] == "depth"
    path = None
    if cfg.get("cache"):
        path = Path(cfg["cache"]) / f"fas_{'train' if train else 'eval'}_{_cache_key(samples, cfg, train)}.pt"
        if path.is_file():
            d = torch.load(path, map_location="cpu", weights_only=True)
            return FaceCache(d["crops"], d["owner"], d["extent"], d["kc"], d.get("depth"), d["has_depth"], samples,
                             d["frame_index"], d["no_face"], {int(k): v for k, v in d["frames_no_face"].items()})
    c = build_cache(samples, detector, frames=int(cfg["frames"]), train=train, input_size=int(cfg["input_size"]),
                    want_depth=want_depth, workers=int(cfg["workers"]))
    if path is not None:
        from wisecli.runtime.io.atomic import atomic_path

        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"crops": c.crops, "owner": c.owner, "extent": c.extent, "kc": c.kc, "has_depth": c.has_depth,
               "frame_index": c.frame_index, "no_face": c.no_face,
               "frames_no_face": {str(k): v for k, v in c.frames_no_face.items()}}
        if c.depth is not None:
            doc["depth"] = c.depth
        with atomic_path(path) as tmp:
            torch.save(doc, tmp)
    return c


def score_cache(model, cfg: dict, cache, *, batch: int = 128, agg: str = "mean", amp: bool = True,
                loss_fn=None) -> tuple[list[dict], float | None]:
    """Score every cached face and aggregate per presentation: records in sample order (+ mean loss)."""
    from wisecli.engines.fas.data import augment, make_targets
    from wisecli.runtime.device import autocast

    dev = cache.crops.device
    scores, losses, n = [], 0.0, 0
    labels = torch.tensor([s.label for s in cache.samples], device=dev)
    with torch.no_grad(), autocast(dev, amp):
        for i in range(0, cache.crops.shape[0], batch):
            sl = slice(i, i + batch)
            x, ext, dep = augment(cache.crops[sl], cache.kc[sl], cache.extent[sl],
                                  cache.depth[sl] if cache.depth is not None else None,
                                  size=int(cfg["input_size"]), gen=None, train=False)
            s, _, out = score_crops(model, cfg, x, ext)
            scores.append(s.float().cpu())
            if loss_fn is not None:
                lab = labels[cache.owner[sl]]
                tgt = make_targets(cfg, lab, ext, dep, cache.has_depth[sl])
                l, _ = loss_fn(out, lab, tgt)
                losses += float(l) * x.shape[0]
                n += x.shape[0]
    frame_scores = torch.cat(scores).numpy() if scores else np.zeros(0)
    owner = cache.owner.cpu().numpy()
    recs = []
    for i, s in enumerate(cache.samples):
        sel = np.nonzero(owner == i)[0]
        nf = int(cache.frames_no_face.get(i, 0))
        rec = {"input": s.path, "kind": s.kind, **s.record(), "frames_used": int(sel.size), "frames_no_face": nf}
        if sel.size:
            rec.update(status="ok", score=_aggregate(frame_scores[sel].tolist(), agg),
                       frames=[{"index": int(cache.frame_index[j]), "score": float(frame_scores[j])} for j in sel])
        else:
            rec.update(status="no_face", score=None, frames=[])
        recs.append(rec)
    return recs, (losses / n if n else None)


def train(data, run_dir, cfg: dict, *, defaults: dict | None = None, device="auto", amp: bool = True,
          resume: bool = False, overwrite: bool = False, progress: bool = True, sink=None, log_every: int = 0,
          run_record=None) -> dict:
    """Train a model on a data set layout and write the run folder (spec §3 `train`): `config.json`,
    `metrics.jsonl`, `checkpoints/last.pt|best.pt`, `dev_scores.jsonl` and, with `run_record`, `run.json`.
    The data is read and the configuration checked (against `defaults`) before the folder is touched. Returns a
    summary (best epoch, dev ACER/EER, threshold, counts; `model` and the checked `config` too)."""
    from wisecli.engines.fas.data import load_dataset
    from wisecli.runtime.device import init_distributed
    from wisecli.runtime.rundir import made_dir, prepare_run_dir

    info = sink.debug if sink else (lambda m: None)  # detail (-v): on a failure the Error line stays alone
    warn = sink.warn if sink else (lambda m: None)
    cfg = {**(defaults or {}), **cfg}
    splits = load_dataset(data, cfg["layout"], protocol=cfg["protocol"] or None, fold=int(cfg["fold"]) or None,
                          allow_partial=bool(cfg["allow_partial"]), seed=int(cfg["seed"]),
                          depth_root=cfg["depth_root"] or None, warn=warn)
    cfg = check_config(cfg, defaults)
    for split in ("train", "dev"):
        if not splits.get(split):
            raise InputError(f"the {split} split is empty", "check --layout/--protocol, or the manifest's split column")
    depth_source = None
    if cfg["target_kind"] == "depth":
        lacking = [s for sp in ("train", "dev") for s in splits[sp] if s.label == 1 and not s.depth]
        if lacking and cfg["depth_fallback"] != "template":
            raise InputError(f"{len(lacking)} live sample(s) have no depth map (first: {lacking[0].path})",
                             "give --depth-root DIR or a manifest depth column, or --depth-fallback template")
        depth_source = "template" if lacking and len(lacking) == sum(
            s.label == 1 for sp in ("train", "dev") for s in splits[sp]) else "user+template" if lacking else "user"
    cfg["depth_source"] = depth_source
    from wisecli.runtime.checkpoints import load_checkpoint
    from wisecli.runtime.rundir import last_checkpoint

    if cfg.get("pretrained"):  # a foreign or corrupt --pretrained is refused before the run folder is touched
        load_checkpoint(cfg["pretrained"], method=METHOD)
    if resume and not overwrite and last_checkpoint(run_dir) is not None:  # and so is a bad last.pt to resume
        load_checkpoint(last_checkpoint(run_dir), method=METHOD)
    dist_info, dev = init_distributed(device if isinstance(device, str) else str(device))
    run_dir = Path(run_dir)
    with made_dir(run_dir):
        prepare_run_dir(run_dir, resume=resume, overwrite=overwrite, is_main=dist_info.rank == 0)
        summary = _fit(splits, run_dir, cfg, dist_info, dev, amp=amp, resume=resume, progress=progress,
                       info=info, warn=warn, log_every=log_every)
    if run_record is not None and dist_info.rank == 0:
        run_record.set("effective", cfg)
        for name in ("config.json", "metrics.jsonl", "checkpoints/last.pt", "checkpoints/best.pt",
                     "dev_scores.jsonl"):
            run_record.add_output(run_dir / name)
        run_record.write(run_dir)
    return summary


def _fit(splits, run_dir: Path, cfg: dict, dist_info, dev, *, amp, resume, progress, info, warn, log_every) -> dict:
    from wisecli.engines.fas import metrics as M
    from wisecli.engines.fas.data import augment, make_targets
    from wisecli.engines.fas.detect import make_detector
    from wisecli.runtime.device import seed_everything
    from wisecli.runtime.io.atomic import write_text
    from wisecli.runtime.trainer import TrainSpec, fit

    seed_everything(int(cfg["seed"]))
    depth_source = cfg["depth_source"]
    detector = make_detector(cfg["detector"])
    t0 = time.perf_counter()
    tr = _cache(splits["train"], detector, cfg, train=True).to(dev)
    dv = _cache(splits["dev"], detector, cfg, train=False).to(dev)
    if tr.no_face:
        warn(f"{len(tr.no_face)} training presentation(s) without a detected face are left out")
    info(f"face cache: {tr.crops.shape[0]} train and {dv.crops.shape[0]} dev faces in {time.perf_counter() - t0:.1f} s")
    model, loss_fn = build(cfg, dev)
    opt = torch.optim.Adam(model.parameters(), lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"]))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=int(cfg["lr_step"]), gamma=float(cfg["lr_gamma"]))
    gen = torch.Generator(device=dev).manual_seed(int(cfg["seed"]) + 1000 * dist_info.rank)
    cpu_gen = torch.Generator().manual_seed(int(cfg["seed"]))
    labels = torch.tensor([s.label for s in tr.samples], device=dev)
    loader = _Loader(tr, labels, int(cfg["batch_size"]), cpu_gen)
    size = int(cfg["input_size"])

    def step(net, batch):
        x, ext, dep = augment(batch["crops"], batch["kc"], batch["extent"], batch["depth"], size=size, gen=gen,
                              train=True)
        tgt = make_targets(cfg, batch["label"], ext, dep, batch["has_depth"])
        if x.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        return loss_fn(net(x), batch["label"], tgt)

    state: dict = {"threshold": 0.5, "best": None, "records": None}

    def validate(m, epoch):
        recs, dev_loss = score_cache(m, cfg, dv, agg=cfg["agg"], amp=amp, loss_fn=loss_fn)
        ok = [r for r in recs if r["status"] == "ok"]
        y = np.array([r["label"] for r in ok])
        s = np.array([r["score"] for r in ok])
        sp = [r["attack_type"] or "bona_fide" for r in ok]
        e, tau = M.eer(s, y)
        rates = M.error_rates(s, y, sp, tau)
        state["threshold"], state["records"] = float(tau), recs
        return {"loss": dev_loss, "acer": rates["acer"], "apcer": rates["apcer"], "bpcer": rates["bpcer"],
                "eer": e, "threshold": tau, "selection": rates["acer"] + 1e-3 * math.tanh(dev_loss)}

    def on_epoch_end(epoch, record):
        if state["best"] is None or record["val_selection"] < state["best"]:
            state["best"] = record["val_selection"]
            write_text(run_dir / "dev_scores.jsonl",
                       "".join(json.dumps({**r, "epoch": epoch, "threshold": state["threshold"]}) + "\n"
                               for r in state["records"]))

    last_pt = run_dir / "checkpoints" / "last.pt"
    if resume and last_pt.is_file():  # our generators continue where they stopped (the trainer restores the rest)
        from wisecli.runtime.checkpoints import load_checkpoint

        doc = load_checkpoint(last_pt, method=METHOD)
        if "loader_rng" in doc:
            cpu_gen.set_state(doc["loader_rng"])
            gen.set_state(doc["augment_rng"])
    if resume and (run_dir / "dev_scores.jsonl").exists():
        last = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()] \
            if (run_dir / "metrics.jsonl").exists() else []
        if last:
            state["best"] = min(r["val_selection"] for r in last)
    arch = f"{cfg['backbone']}{cfg['resnet_depth'] if cfg['backbone'] == 'resnet' else ''}"
    spec = TrainSpec(epochs=int(cfg["epochs"]), run_dir=run_dir, method=METHOD, arch=arch, config=cfg,
                     amp=amp, monitor="val_selection", mode="min", resume=resume, progress=progress,
                     log_every=log_every)
    res = fit(model, opt, loader, step, spec, device=dev, scheduler=sched, validate=validate,
              on_epoch_end=on_epoch_end,
              checkpoint_extra=lambda: {"threshold": state["threshold"], "supervision": cfg["supervision"],
                                        "map_size": int(cfg["map_size"]), "pyramid": pyramid_of(cfg),
                                        "depth_source": depth_source, "loader_rng": cpu_gen.get_state(),
                                        "augment_rng": gen.get_state().cpu()})
    best = next((r for r in res.history if r["epoch"] == res.best_epoch), res.last_metrics)
    return {"run_dir": str(run_dir), "best_epoch": res.best_epoch, "dev_acer": best.get("val_acer"),
            "dev_eer": best.get("val_eer"), "threshold": best.get("val_threshold"),
            "epochs": len(res.history), "n_train": len(splits["train"]), "n_dev": len(splits["dev"]),
            "depth_source": depth_source, "model": res.model, "config": cfg}


