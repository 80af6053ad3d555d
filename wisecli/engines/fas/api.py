"""The Python API of `wise fas` (what the command calls): train, predict, evaluate, simulate, demo, info, benchmark.

Choices where the spec is silent [reconstructed]:
* The default supervision is `pyramid` on the binary-mask base (the paper's proposal; needs no depth labels).
* `best.pt` is chosen by dev ACER at the dev EER threshold; ties (frequent on small dev sets, e.g. several epochs at
  0 %) are broken by the lower dev loss: the monitor is `val_selection` = ACER + 10⁻³·tanh(dev loss), and
  `val_acer` is logged beside it.
* Training caches `frames` frames per video (8, as CDCN samples at test) and an epoch draws one of them per video.
* `evaluate --weights` writes `scores.jsonl` and `dev_scores.jsonl` into `--out-dir` (default `<run>/eval`) before
  computing the metrics, so `evaluate --scores` can reproduce it.
* `predict --save-maps DIR` writes, per input, one PNG per pyramid level of the map averaged over the used frames
  (probabilities for masks, depth for depth models; upsampled to 128 px with nearest neighbours).
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from wisecli.cli.errors import InputError

METHOD = "fas"
DEFAULTS: dict = {
    "layout": "manifest", "protocol": "", "fold": 0, "allow_partial": False,
    "supervision": "pyramid", "pyramid_base": "binary-mask", "pyramid_scales": "32,16,8,4,2,1",
    "pyramid_weights": "", "mask_label": "face", "aux_binary": 0.0, "depth_root": "", "depth_fallback": "none",
    "backbone": "cdcn", "resnet_depth": 18, "theta": 0.7, "width": 1.0, "input_size": 256, "map_size": 32,
    "pretrained": "", "epochs": 1400, "batch_size": 32, "lr": 1e-4, "weight_decay": 5e-5, "lr_step": 500,
    "lr_gamma": 0.5, "detector": "haar", "frames": 8, "agg": "mean", "cache": "", "workers": 2, "seed": 0,
}
BACKBONES = ("cdcn", "resnet")


# ------------------------------------------------------------------------------------------------ config
def check_config(cfg: dict) -> dict:
    """Validate and complete a training configuration (exit 2 on bad values)."""
    from wisecli.engines.fas.detect import DETECTORS
    from wisecli.engines.fas.loss import parse_pyramid
    from wisecli.engines.fas.model import SUPERVISIONS, map_target_kind

    cfg = {**DEFAULTS, **cfg}
    for key, allowed in (("supervision", SUPERVISIONS), ("backbone", BACKBONES), ("detector", DETECTORS),
                         ("pyramid_base", ("binary-mask", "depth-map")), ("mask_label", ("face", "full")),
                         ("depth_fallback", ("none", "template")), ("agg", ("mean", "median"))):
        if cfg[key] not in allowed:
            raise InputError(f"--{key.replace('_', '-')} {cfg[key]!r} is not known",
                             f"use one of {', '.join(allowed)}")
    if cfg["backbone"] == "resnet" and int(cfg["resnet_depth"]) not in (18, 34, 50):
        raise InputError(f"--resnet-depth {cfg['resnet_depth']} is not offered", "use 18, 34 or 50")
    for key in ("input_size", "map_size", "epochs", "batch_size", "frames"):
        if int(cfg[key]) < 1:
            raise InputError(f"--{key.replace('_', '-')} must be at least 1", "give a positive integer")
    if int(cfg["input_size"]) < int(cfg["map_size"]):
        raise InputError("--map-size exceeds --input-size", "the map is coarser than the input, e.g. 256 and 32")
    if float(cfg["aux_binary"]) < 0 or float(cfg["lr"]) <= 0:
        raise InputError("--aux-binary must be >= 0 and --lr > 0", "e.g. --aux-binary 0.5 --lr 1e-4")
    cfg["target_kind"] = map_target_kind(cfg["supervision"], cfg["pyramid_base"])
    if cfg["supervision"] == "pyramid":
        scales = cfg["pyramid_scales"]
        m = int(cfg["map_size"])
        if scales == DEFAULTS["pyramid_scales"] and m != 32:  # the default list, cut to the map size
            scales = ",".join(str(s) for s in (m, 16, 8, 4, 2, 1) if s <= m and m % s == 0)
            scales = ",".join(dict.fromkeys(scales.split(",")))
        sc, w = parse_pyramid(m, scales, cfg["pyramid_weights"] or None)
        cfg["pyramid_scales"], cfg["pyramid_weights"] = ",".join(map(str, sc)), ",".join(f"{x:g}" for x in w)
    return cfg


def _pyramid_of(cfg: dict) -> dict | None:
    if cfg["supervision"] != "pyramid":
        return None
    return {"scales": [int(s) for s in cfg["pyramid_scales"].split(",")],
            "weights": [float(w) for w in cfg["pyramid_weights"].split(",")], "base": cfg["pyramid_base"]}


def _build(cfg: dict, device: torch.device):
    from wisecli.engines.fas.loss import FASLoss
    from wisecli.engines.fas.model import build_model

    model = build_model(cfg)
    if cfg.get("pretrained"):
        p = Path(cfg["pretrained"])
        if not p.is_file():
            raise InputError(f"--pretrained {p} not found", "give a state dict saved with torch.save")
        try:
            sd = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input error
            raise InputError(f"cannot load --pretrained {p}: {exc}", "give a plain state dict (weights only)") from None
        sd = sd.get("state_dict", sd) if isinstance(sd, dict) else sd
        target = model.net if cfg["backbone"] == "resnet" else model
        missing, unexpected = target.load_state_dict(sd, strict=False)
        if len(missing) == len(target.state_dict()):
            raise InputError(f"--pretrained {p} matches none of the backbone's weights",
                             "give a state dict of the same backbone")
    loss = FASLoss(cfg["supervision"], map_size=int(cfg["map_size"]), pyramid_base=cfg["pyramid_base"],
                   scales=cfg["pyramid_scales"].split(",") if cfg["supervision"] == "pyramid" else None,
                   weights=cfg["pyramid_weights"] or None, aux_binary=float(cfg["aux_binary"]))
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
    return model, loss.to(device)


# ------------------------------------------------------------------------------------------------ scoring
def score_crops(model, cfg: dict, x: torch.Tensor, extent: torch.Tensor):
    """Per-face scores (spec §2.4), the score maps (probabilities/depth, or None) and the raw network outputs of
    normalised crops."""
    from wisecli.engines.fas.data import face_targets
    from wisecli.engines.fas.loss import map_scores

    if x.device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    out = model(x)
    kind = cfg["target_kind"]
    if kind is None:
        return torch.sigmoid(out["logit"].float()), None, out
    m = out["map"].float()
    if cfg.get("mask_label", "face") == "full":
        mask = torch.ones(m.shape[0], 1, m.shape[-1], m.shape[-1], device=m.device)
    else:
        mask, _ = face_targets(extent[:, 0], extent[:, 1], m.shape[-1])
    prob = torch.sigmoid(m) if kind == "mask" else m
    return map_scores(m, kind, mask), prob, out


def _aggregate(values: list[float], agg: str) -> float:
    return float(np.median(values) if agg == "median" else np.mean(values))


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


# ------------------------------------------------------------------------------------------------ train
def train(data, run_dir, cfg: dict, *, device: str = "auto", amp: bool = True, resume: bool = False,
          progress: bool = True, sink=None, log_every: int = 0) -> dict:
    """Train a model on a data set layout; writes the run folder (spec §3 `train`). Returns a summary."""
    from wisecli.engines.fas import metrics as M
    from wisecli.engines.fas.data import load_dataset, make_targets, augment
    from wisecli.engines.fas.detect import make_detector
    from wisecli.runtime.device import init_distributed, seed_everything
    from wisecli.runtime.io.atomic import write_text
    from wisecli.runtime.trainer import TrainSpec, fit

    info = sink.info if sink else (lambda m: None)
    warn = sink.warn if sink else (lambda m: None)
    cfg = check_config(cfg)
    dist_info, dev = init_distributed(device)
    seed_everything(int(cfg["seed"]))
    run_dir = Path(run_dir)
    splits = load_dataset(data, cfg["layout"], protocol=cfg["protocol"] or None, fold=int(cfg["fold"]) or None,
                          allow_partial=bool(cfg["allow_partial"]), seed=int(cfg["seed"]),
                          depth_root=cfg["depth_root"] or None, warn=warn)
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
    detector = make_detector(cfg["detector"])
    t0 = time.perf_counter()
    tr = _cache(splits["train"], detector, cfg, train=True).to(dev)
    dv = _cache(splits["dev"], detector, cfg, train=False).to(dev)
    if tr.no_face:
        warn(f"{len(tr.no_face)} training presentation(s) without a detected face are left out")
    info(f"face cache: {tr.crops.shape[0]} train and {dv.crops.shape[0]} dev faces in {time.perf_counter() - t0:.1f} s")
    model, loss_fn = _build(cfg, dev)
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
                                        "map_size": int(cfg["map_size"]), "pyramid": _pyramid_of(cfg),
                                        "depth_source": depth_source, "loader_rng": cpu_gen.get_state(),
                                        "augment_rng": gen.get_state().cpu()})
    best = next((r for r in res.history if r["epoch"] == res.best_epoch), res.last_metrics)
    return {"run_dir": str(run_dir), "best_epoch": res.best_epoch, "dev_acer": best.get("val_acer"),
            "dev_eer": best.get("val_eer"), "threshold": best.get("val_threshold"),
            "epochs": len(res.history), "n_train": len(splits["train"]), "n_dev": len(splits["dev"]),
            "depth_source": depth_source, "model": res.model, "config": cfg}


# ------------------------------------------------------------------------------------------------ predict
def load_model(weights, device: torch.device):
    """A trained model, its configuration and stored dev threshold, from a `wisecli/1` checkpoint."""
    from wisecli.runtime.checkpoints import load_checkpoint

    doc = load_checkpoint(Path(weights), method=METHOD)
    cfg = check_config({k: v for k, v in doc["config"].items() if k in DEFAULTS or k == "depth_source"})
    cfg["pretrained"] = ""
    model, _ = _build(cfg, device)
    model.load_state_dict(doc["state_dict"])
    model.eval()
    return model, cfg, doc.get("threshold")


def _prepare_one(sample, detector, frames: int, size: int) -> dict:
    from wisecli.engines.fas.detect import TEST_SCALE, box_extent, crop_face
    from wisecli.engines.fas.data import read_frames

    crops, exts, used, no_face, errors = [], [], [], 0, []
    k = 1.0 if detector.name == "none" else TEST_SCALE
    for fr in read_frames(sample, frames):
        if fr["image"] is None:
            errors.append({"index": fr["index"], "error": fr["error"]})
            continue
        box = detector.detect(fr["image"], fr["box"] if fr["box"] is not None else sample.box)
        if box is None:
            no_face += 1
            continue
        c = crop_face(fr["image"], box, k, size)
        crops.append(c if c.ndim == 3 else np.repeat(c[..., None], 3, axis=2))
        exts.append(box_extent(box, k))
        used.append({"index": fr["index"], "box": [int(round(v)) for v in box]})
    return {"crops": crops, "extent": exts, "frames": used, "no_face": no_face, "errors": errors}


def predict_samples(samples, weights, *, device: str = "auto", frames: int = 8, agg: str | None = None,
                    detector: str | None = None, threshold: float | None = None, batch_size: int = 128,
                    workers: int = 2, amp: bool = True, save_maps=None, with_labels: bool = False,
                    sink=None) -> Iterator[dict]:
    """Score presentations; yields one record per input, in order, as soon as its chunk is done.

    Faces of consecutive inputs are batched together (≥ `batch_size` faces per forward pass) while a thread pool
    decodes and detects the next chunk."""
    from wisecli.engines.fas.data import augment
    from wisecli.engines.fas.detect import make_detector
    from wisecli.runtime.device import autocast, resolve_device

    dev = resolve_device(device, sink=sink)
    model, cfg, stored = load_model(weights, dev)
    agg = agg or cfg.get("agg", "mean")
    det = make_detector(detector or cfg["detector"])
    tau = threshold if threshold is not None else stored
    size = int(cfg["input_size"])
    per_chunk = max(1, batch_size // max(1, frames))
    pyr = _pyramid_of(cfg)
    levels = pyr["scales"] if pyr else ([int(cfg["map_size"])] if cfg["target_kind"] else [])

    def prep(s):
        try:
            return _prepare_one(s, det, frames, size)
        except InputError as exc:
            if len(samples) == 1:  # the only input: a usage error (exit 2), not an item error
                raise
            return {"fatal": exc.message}

    chunks = [samples[i:i + per_chunk] for i in range(0, len(samples), per_chunk)]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending = [pool.submit(lambda ch: [prep(s) for s in ch], chunks[0])] if chunks else []
        for ci, chunk in enumerate(chunks):
            prepared = pending.pop(0).result()
            if ci + 1 < len(chunks):
                pending.append(pool.submit(lambda ch: [prep(s) for s in ch], chunks[ci + 1]))
            flat = [c for p in prepared if "crops" in p for c in p["crops"]]
            ext = [e for p in prepared if "crops" in p for e in p["extent"]]
            scores = np.zeros(0)
            maps = None
            if flat:
                x = torch.from_numpy(np.stack(flat)).permute(0, 3, 1, 2).to(dev)
                e = torch.tensor(ext, dtype=torch.float32, device=dev)
                out_s, out_m = [], []
                with torch.no_grad(), autocast(dev, amp):
                    for i in range(0, x.shape[0], batch_size):
                        xn, en, _ = augment(x[i:i + batch_size], None, e[i:i + batch_size], None, size=size,
                                            gen=None, train=False)
                        s, m, _ = score_crops(model, cfg, xn, en)
                        out_s.append(s.float().cpu())
                        if save_maps and m is not None:
                            out_m.append(m.float().cpu())
                scores = torch.cat(out_s).numpy()
                maps = torch.cat(out_m) if out_m else None
            j = 0
            for s, p in zip(chunk, prepared):
                rec = {"input": s.path, "kind": s.kind}
                if with_labels:
                    rec.update(s.record())
                if "fatal" in p:
                    rec.update(status="error", score=None, error=p["fatal"])
                    yield rec
                    continue
                n = len(p["crops"])
                fs = scores[j:j + n].tolist()
                fm = maps[j:j + n] if maps is not None else None
                j += n
                frames_out = [{"index": f["index"], "score": float(v), "box": f["box"]} for f, v in zip(p["frames"], fs)]
                frames_out += [{"index": e["index"], "status": "error", "error": e["error"]} for e in p["errors"]]
                frames_out.sort(key=lambda f: f["index"])
                if n:
                    score = _aggregate(fs, agg)
                    status = "error" if p["errors"] else "ok"
                    rec.update(status=status, score=score, threshold=tau,
                               decision=None if tau is None else ("bona_fide" if score >= tau else "attack"))
                    if p["errors"]:
                        rec["error"] = f"unreadable frame(s) {[e['index'] for e in p['errors']]}"
                else:
                    rec.update(status="error" if p["errors"] and not p["no_face"] else "no_face", score=None,
                               threshold=tau, decision=None)
                rec.update(frames_used=n, frames_no_face=p["no_face"], frames=frames_out)
                if save_maps and fm is not None and n:
                    rec["maps"] = _save_maps(Path(save_maps), s, fm.mean(dim=0, keepdim=True), levels)
                yield rec


def _save_maps(folder: Path, sample, m: torch.Tensor, levels: list[int]) -> list[str]:
    import torch.nn.functional as F

    from wisecli.engines.fas.loss import pool_to
    from wisecli.runtime.batch import stem_of
    from wisecli.runtime.io.images import write_image

    out = []
    for s in levels:
        p = pool_to(m, s)
        up = F.interpolate(p, size=(128, 128), mode="nearest")[0, 0].clamp(0, 1)
        path = folder / f"{stem_of(sample.path)}_level{s}.png"
        write_image(path, (up.numpy() * 255 + 0.5).astype(np.uint8))
        out.append(str(path))
    return out


# ------------------------------------------------------------------------------------------------ evaluate
def read_scores(path) -> list[dict]:
    """A JSONL score file (records with label, attack_type, subject, score)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"score file {p} not found", "give the JSONL written by `wise fas predict --jsonl` or train")
    recs = []
    for n, line in enumerate(p.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            recs.append(json.loads(line))
        except json.JSONDecodeError:
            raise InputError(f"{p.name} line {n} is not JSON", "one JSON record per line") from None
    return recs


def evaluate(*, scores=None, dev_scores=None, weights=None, test=None, dev=None, layout: str = "manifest",
             dev_layout: str | None = None, protocol: str = "", fold: int = 0, allow_partial: bool = False,
             out_dir=None, overwrite: bool = False, threshold: str = "dev-eer", level: str = "video",
             species: str = "type", cross: bool = False, compat: bool = False, bootstrap: int = 0,
             device: str = "auto", frames: int = 8, detector: str | None = None, batch_size: int = 128,
             seed: int = 0, amp: bool = True, sink=None) -> dict:
    """Metrics of spec §5, from score files or from a checkpoint and data (whose scores are written first)."""
    from wisecli.engines.fas import metrics as M
    from wisecli.engines.fas.data import load_dataset

    warn = sink.warn if sink else None
    if level not in ("video", "frame") or species not in ("type", "instrument"):
        raise InputError("--level is video|frame and --species type|instrument", "e.g. --level video --species type")
    if weights is None:
        if scores is None:
            raise InputError("evaluate needs --scores FILE or --weights CKPT with test data",
                             "e.g. wise fas evaluate --scores test.jsonl --dev-scores dev.jsonl")
        test_recs = read_scores(scores)
        dev_recs = read_scores(dev_scores) if dev_scores else None
    else:
        if test is None:
            raise InputError("--weights needs the test data (a data root or manifest)", "wise fas evaluate DATA --weights CKPT")
        from wisecli.runtime.io.atomic import write_text

        out = Path(out_dir) if out_dir else Path(weights).resolve().parent.parent / "eval"
        files = [out / "scores.jsonl", out / "dev_scores.jsonl"]
        clash = [f for f in files if f.exists()]
        if clash and not overwrite:
            raise InputError(f"output exists: {clash[0]}", "pass --overwrite to replace it, or -o another folder")
        tsplits = load_dataset(test, layout, protocol=protocol or None, fold=fold or None,
                               allow_partial=allow_partial, seed=seed, warn=warn)
        dsplits = tsplits if dev is None else load_dataset(dev, dev_layout or layout, protocol=protocol or None,
                                                           fold=fold or None, allow_partial=allow_partial,
                                                           seed=seed, warn=warn)
        kw = dict(device=device, frames=frames, detector=detector, batch_size=batch_size, amp=amp,
                  with_labels=True, sink=sink)
        test_recs = list(predict_samples(tsplits["test"], weights, **kw))
        write_text(files[0], "".join(json.dumps(r) + "\n" for r in test_recs))
        dev_recs = list(predict_samples(dsplits["dev"], weights, **kw)) if dsplits.get("dev") else None
        if dev_recs is not None:
            write_text(files[1], "".join(json.dumps(r) + "\n" for r in dev_recs))
    res = M.evaluate_scores(test_recs, dev_recs, threshold=threshold, level=level, species=species, cross=cross,
                            compat=compat, bootstrap=bootstrap, seed=seed, warn=warn)
    failed = sum(r.get("status", "ok") != "ok" for r in test_recs)
    if failed:
        res["n_not_scored"] = failed
    return res


# ------------------------------------------------------------------------------------------------ simulate
def simulate(inputs, out_dir, *, size: int = 64, seed: int = 0, detector: str = "haar", sink=None) -> dict:
    """Simulated print and replay attacks of live faces (the user's images, or scikit-image's faces)."""
    from wisecli.engines.fas.synthetic import skimage_live_pool, user_live_pool, write_simulated

    if size < 16:
        raise InputError(f"--size {size} is too small", "use 32 or more")
    rng = np.random.default_rng(seed)
    errors = []
    if inputs:
        pool = user_live_pool(inputs, size, detector, lambda p, m: errors.append({"input": str(p), "error": m}))
        if not pool:
            raise InputError("no face found in any input image", "try --detector lbp, or crop the faces and use none")
    else:
        pool = skimage_live_pool(size, rng)
    res = write_simulated(pool, Path(out_dir), size=size, seed=seed)
    res["source"] = "user images" if inputs else "scikit-image lfw_subset + astronaut"
    res["errors"] = errors
    return res


# ------------------------------------------------------------------------------------------------ info
def info() -> dict:
    """What `wise fas` reads and writes, its modes, backbones, detectors, layouts and defaults."""
    from wisecli.engines.fas.data import LAYOUTS
    from wisecli.engines.fas.detect import opencv_status
    from wisecli.engines.fas.model import SUPERVISIONS

    try:
        cv = opencv_status()
    except Exception as exc:  # noqa: BLE001 - report, don't fail
        cv = {"error": str(exc)}
    from skimage import data as skdata

    return {"method": METHOD, "paper": "Yu et al., Revisiting Pixel-Wise Supervision for Face Anti-Spoofing, "
                                       "IEEE T-BIOM 2021 (arXiv 2011.12032)",
            "supervisions": list(SUPERVISIONS), "backbones": ["cdcn", "resnet18", "resnet34", "resnet50"],
            "detectors": {"haar": {"opencv": cv.get("version"), "cascade": cv.get("cascade"),
                                   "available": bool(cv.get("cascade")) and cv.get("major", 5) < 5,
                                   "opencv_wheels": cv.get("distributions")},
                          "lbp": {"cascade": skdata.lbp_frontal_face_cascade_filename(), "available": True},
                          "boxes": {"available": True}, "none": {"available": True}},
            "layouts": list(LAYOUTS), "defaults": {k: v for k, v in DEFAULTS.items()},
            "reads": "videos (.avi/.mov/.mp4), images, frame folders; manifests path,label,attack_type,subject",
            "writes": "run folder (config.json, metrics.jsonl, checkpoints/, dev_scores.jsonl); JSONL scores"}


# ------------------------------------------------------------------------------------------------ demo
DEMO_TITLE = "SIMULATED ATTACKS ON SCIKIT-IMAGE FACES: NOT A BENCHMARK"
DEMO_WIDTH = 0.125  # channels 8/16/24/16: about 2 CPU-seconds per epoch of 210 faces at 64² on one core
DEMO_LR = 3e-3      # tiny data and few steps: 30× the paper's rate reaches dev ACER 0 within ~10 epochs


def demo(quick: bool = False, device: str = "cpu", *, full: bool = False, seeds: int | None = None,
         epochs: int | None = None, sink=None, progress: bool = False) -> dict:
    """Simulated attacks on scikit-image faces → tiny CDCN (pyramid and binary-mask; `full` adds binary and
    template-depth depth-map) → predict on the held-out LFW test faces and the astronaut cross split → evaluate.

    Tiny CDCN [reconstructed]: width ×0.125, 64² input, 16² map, scales 16,8,4,2,1, batch 16, Adam at 3e-3, 13 epochs
    (2 on a third of the training faces with `quick`), `--detector none` (the LFW faces are tight crops).

    Returns the summary dict of the suite (`method`, `ok`, `headline`, `seconds`) with the table rows."""
    from wisecli.engines.fas import metrics as M
    from wisecli.engines.fas.data import load_dataset

    t0 = time.perf_counter()
    modes = ["pyramid"] if quick else ["pyramid", "binary-mask"] + (["binary", "depth-map"] if full else [])
    n_seeds = seeds or (1 if quick else 2)
    n_epochs = epochs or (2 if quick else 13)
    rows = []
    with tempfile.TemporaryDirectory(prefix="wise_fas_demo_") as tmp:
        tmp = Path(tmp)
        sim = simulate(None, tmp / "sim", size=64, seed=0)
        man = Path(sim["manifest"])
        splits = load_dataset(man, "manifest")
        if quick:  # a subset keeps the smoke test to seconds
            splits["train"] = splits["train"][::3]
            splits["dev"] = splits["dev"][::2]
        sub = tmp / "manifest_used.csv"
        _write_manifest(sub, splits, man.parent)
        for mode in modes:
            for seed in range(n_seeds):
                cfg = {"layout": "manifest", "supervision": mode, "backbone": "cdcn", "width": DEMO_WIDTH,
                       "input_size": 64, "map_size": 16, "pyramid_scales": "16,8,4,2,1", "detector": "none",
                       "epochs": n_epochs, "batch_size": 16, "lr": DEMO_LR, "lr_step": 10 ** 6, "frames": 1,
                       "seed": seed, "depth_fallback": "template", "workers": 1}
                run = tmp / f"run_{mode}_{seed}"
                res = train(sub, run, cfg, device=device, amp=True, progress=progress, sink=None)
                ckpt = run / "checkpoints" / "best.pt"
                dev_recs = read_scores(run / "dev_scores.jsonl")
                row = {"mode": mode, "seed": seed, "best_epoch": res["best_epoch"]}
                for split in ("test", "cross"):
                    recs = list(predict_samples(splits[split], ckpt, device=device, frames=1, detector="none",
                                                with_labels=True, batch_size=128, workers=1))
                    ev = M.evaluate_scores(recs, dev_recs)
                    row[f"{split}_acer"] = ev["acer"]
                    row[f"{split}_apcer"] = ev["apcer"]
                    row[f"{split}_bpcer"] = ev["bpcer"]
                    row[f"{split}_auc"] = ev["auc"]
                rows.append(row)
    mean = {}
    for mode in modes:
        rs = [r for r in rows if r["mode"] == mode]
        mean[mode] = {k: float(np.mean([r[k] for r in rs])) for k in ("test_acer", "cross_acer", "test_auc")}
    gate = None if quick else all(mean[m]["test_acer"] <= 0.10 for m in ("pyramid", "binary-mask"))
    headline = {f"{m}_test_acer": mean[m]["test_acer"] for m in modes}
    headline.update({f"{m}_cross_acer": mean[m]["cross_acer"] for m in modes})
    return {"method": METHOD, "ok": bool(gate) if gate is not None else all(math.isfinite(v) for v in headline.values()),
            "gate": {"rule": "pyramid and binary-mask mean test ACER <= 10 %", "passed": gate},
            "headline": headline, "seconds": time.perf_counter() - t0, "title": DEMO_TITLE, "rows": rows,
            "mean": mean, "simulated": True, "epochs": n_epochs, "seeds": n_seeds,
            "note": "simulated print/replay attacks on scikit-image LFW faces (test: LFW 85-99) and astronaut "
                    "crops (cross); not a benchmark"}


def _write_manifest(path: Path, splits: dict, base: Path) -> None:
    import csv

    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "attack_type", "subject", "split", "depth"])
        for split, items in splits.items():
            for s in items:
                w.writerow([s.path, s.label, s.attack_type or "", s.subject, split, s.depth or ""])


# ------------------------------------------------------------------------------------------------ benchmark
def benchmark(device: str = "auto", quick: bool = True, **kw) -> list[dict]:
    """Folded CDCN against the reference-style two-conv CDCN (spec §7); see `bench.run`."""
    from wisecli.engines.fas.bench import run

    return run(device=device, quick=quick, **kw)["records"]
