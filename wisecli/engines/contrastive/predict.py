"""Loading trained encoders, `predict` (embeddings of images) and `evaluate` (kNN, linear probe, semi) (spec §3, §5).

- A checkpoint is what `train` wrote (`checkpoints/best.pt` or `last.pt`, or the run folder: best.pt, else
  last.pt); another method's file or a wrong channel count is exit 2.
- predict writes parts of `part_rows` (4,096) rows, `part-00000.npy` (float16 [n, D]) + `part-00000.jsonl`
  ({"row", "input"}), each atomically, then merges them into `embeddings.npy` + `index.jsonl` (under
  `--shard I/N`: `embeddings.part-I-of-N.npy` + `index.part-I-of-N.jsonl`). `--skip-existing` keeps the parts
  already written (both files present) and the merged pair when present. An unreadable image among several
  is a record with status "error" (exit 3); alone it is exit 2. `row` is the image's row in the merged array.
  Images are resized (OpenCV, as the readers do) to the model's size; gray images are copied to 3 channels
  for an RGB model and RGB images turned to ITU-R 601 gray for a 1-channel model.
- evaluate: a study folder (`study.json`) is evaluated arm by arm and seed by seed with the same protocol and
  subsets; one row per (arm, protocol, k or fraction) with mean, std (over seeds; 0 for one run), n_runs and
  the paired difference to the `baseline` arm (same seeds) when present.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from wisecli.cli.errors import InputError


def resolve_checkpoint(path: Path) -> Path:
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / "checkpoints" / name).is_file():
                return path / "checkpoints" / name
        raise InputError(f"no checkpoint in {path}", hint="give a run folder that train wrote, or a .pt file")
    if not path.is_file():
        raise InputError(f"checkpoint not found: {path}", hint="give a run folder that train wrote, or a .pt file")
    return path


def load_model(path: Path, device) -> tuple[torch.nn.Module, dict]:
    """(MoCo model in eval mode on device, checkpoint dict) from a contrastive checkpoint or run folder."""
    from wisecli.runtime.checkpoints import load_checkpoint

    from .model import MoCo

    ckpt = resolve_checkpoint(Path(path))
    doc = load_checkpoint(ckpt, method="contrastive")
    try:
        kw = dict(doc["config"]["model"])
        model = MoCo(**kw)
        model.load_state_dict(doc["state_dict"])
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise InputError(f"{ckpt} is not a checkpoint of wise contrastive train ({type(exc).__name__})",
                         hint="give a checkpoint that train wrote") from None
    model.to(device).eval()
    return model, doc


def _features(model, X: np.ndarray, device, layer: str = "backbone", batch: int = 256) -> torch.Tensor:
    from .train import embed

    return embed(model, torch.from_numpy(X), device, batch=batch, layer=layer)


def _read_eval(source, model, what: str):
    from .data import read_images

    s, c = int(model.cfg["image_size"]), int(model.cfg["in_channels"])
    ds = read_images(source, image_size=s, need_labels=True, what=what)
    if ds.X.shape[1] != c:
        raise InputError(f"{what} has {ds.X.shape[1]}-channel images, the model takes {c}",
                         hint="evaluate on the same kind of images the encoder was trained on")
    return ds


def _runs_of(inputs: list[Path]) -> list[dict]:
    runs = []
    for p in inputs:
        p = Path(p)
        if p.is_dir() and (p / "study.json").is_file():
            try:
                doc = json.loads((p / "study.json").read_text())
            except (OSError, ValueError):
                raise InputError(f"cannot read {p / 'study.json'}", hint="a study folder that train wrote") from None
            for r in doc.get("runs", []):
                runs.append({"arm": r["arm"], "seed": int(r["seed"]), "path": Path(r["run_dir"])})
        else:
            runs.append({"arm": None, "seed": None, "path": p})
    if not runs:
        raise InputError("no run or checkpoint to evaluate", hint="give RUN folders, study folders or .pt files")
    return runs


def evaluate_runs(inputs: list[Path], train, test, *, protocols: list[str], knn_k: list[int], knn_t: float,
                  linear: str, fractions: list[float], subsets: int, label_subset=None, device, seed: int = 0,
                  sink=None, linear_epochs: int = 100) -> dict:
    """The evaluation document {rows, runs} (module docstring)."""
    runs = _runs_of(inputs)
    for r in runs:
        r["ckpt"] = resolve_checkpoint(r["path"])
    per_run = []
    cache = {}
    for r in runs:
        model, doc = load_model(r["ckpt"], device)
        arm = r["arm"] or doc["config"].get("train", {}).get("arm", "run")
        sd = r["seed"] if r["seed"] is not None else doc["config"].get("train", {}).get("seed", 0)
        key = (int(model.cfg["image_size"]), int(model.cfg["in_channels"]))
        if key not in cache:
            tr, te = _read_eval(train, model, "--train"), _read_eval(test, model, "--test")
            cache[key] = (tr, te)
        tr, te = cache[key]
        ytr, yte = torch.from_numpy(tr.y).to(device), torch.from_numpy(te.y).to(device)
        ftr, fte = _features(model, tr.X, device), _features(model, te.X, device)
        res = {"arm": arm, "seed": int(sd), "checkpoint": str(r["ckpt"]), "results": []}
        if "knn" in protocols:
            for k in knn_k:
                res["results"].append({"protocol": "knn", "k": min(int(k), len(ytr)),
                                       "top1": _knn(ftr, ytr, fte, yte, int(k), knn_t)})
        if "linear" in protocols:
            if linear == "augmented":
                from .metrics import linear_augmented

                lp = linear_augmented(model, torch.from_numpy(tr.X), ytr, torch.from_numpy(te.X), yte, device=device,
                                      seed=seed, epochs=linear_epochs)
                res["results"].append({"protocol": "linear", "k": None, "linear": "augmented", "top1": lp["top1"],
                                       "top5": lp["top5"], "epochs": lp["epochs"]})
            else:
                lp = _linear(ftr, ytr, fte, yte, seed)
                res["results"].append({"protocol": "linear", "k": None, "linear": "cached", "top1": lp["top1"],
                                       "top5": lp["top5"], "l2": lp["l2"]})
        if "semi" in protocols:
            res["results"].extend(_semi(model, tr, te, ytr, yte, fractions, subsets, label_subset, device))
        per_run.append(res)
    rows = _aggregate(per_run, train=str(train), test=str(test))
    return {"rows": rows, "runs": per_run, "train": str(train), "test": str(test), "device": str(device)}


def _knn(ftr, ytr, fte, yte, k, t):
    from .metrics import knn_accuracy

    return knn_accuracy(ftr, ytr, fte, yte, k, t)


def _linear(ftr, ytr, fte, yte, seed):
    from .metrics import linear_probe

    return linear_probe(ftr, ytr, fte, yte, seed=seed)


def _semi(model, tr, te, ytr, yte, fractions, subsets, label_subset, device) -> list[dict]:
    from .metrics import finetune, stratified_subset

    out = []
    Xtr, Xte = torch.from_numpy(tr.X), torch.from_numpy(te.X)
    if label_subset is not None:
        try:
            rows = np.array([int(v) for v in Path(label_subset).read_text().split()], dtype=np.int64)
        except (OSError, ValueError):
            raise InputError(f"cannot read --label-subset {label_subset}", hint="one training row index per line") from None
        if rows.size == 0 or rows.min() < 0 or rows.max() >= len(tr.y):
            raise InputError(f"--label-subset {label_subset} holds rows outside 0..{len(tr.y) - 1}", hint="row indices of --train")
        plans = [("file", 0, rows)]
    else:
        plans = [(f, s, stratified_subset(tr.y, f, s)) for f in fractions for s in range(subsets)]
    for frac, s, rows in plans:
        epochs = 60 if (frac == "file" or frac <= 0.01) else 30
        r = torch.from_numpy(rows)
        acc = finetune(model, Xtr[r], ytr.cpu()[r], Xte, yte.cpu(), epochs=epochs, device=device, seed=s)
        out.append({"protocol": "semi", "k": None, "fraction": frac, "subset": s, "labels": int(len(rows)), "top1": acc})
    return out


def _aggregate(per_run: list[dict], *, train: str, test: str) -> list[dict]:
    groups: dict[tuple, dict[int, list[float]]] = {}
    for r in per_run:
        for x in r["results"]:
            key = (r["arm"], x["protocol"], x.get("k"), x.get("fraction"))
            groups.setdefault(key, {}).setdefault(r["seed"], []).append(float(x["top1"]))
    rows = []
    for (arm, proto, k, frac), by_seed in groups.items():
        vals = {s: float(np.mean(v)) for s, v in by_seed.items()}
        arr = np.array(list(vals.values()))
        row = {"arm": arm, "protocol": proto, "k": k, "fraction": frac, "top1_mean": float(arr.mean()),
               "top1_std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0, "n_runs": len(arr),
               "delta_vs_baseline": None, "delta_std": None, "train": train, "test": test}
        base = groups.get(("baseline", proto, k, frac))
        if base is not None and arm != "baseline":
            pairs = [vals[s] - float(np.mean(base[s])) for s in vals if s in base]
            if pairs:
                row["delta_vs_baseline"] = float(np.mean(pairs))
                row["delta_std"] = float(np.std(pairs, ddof=1)) if len(pairs) > 1 else 0.0
        rows.append(row)
    return rows


# ---------------------------------------------------------------- predict

def _image_for(path: Path, size: int, channels: int) -> np.ndarray:
    import cv2

    from wisecli.runtime.io.images import read_image

    try:
        img = read_image(path)
    except InputError:
        raise
    except Exception as exc:  # a decoder's own failure on a corrupt file
        raise InputError(f"cannot read image {path}: {type(exc).__name__}", hint="a PNG/JPEG/BMP/TIFF image") from None
    if img.ndim == 2:
        img = img[..., None]
    img = img[..., :3]
    if img.shape[2] == 1 and channels == 3:
        img = np.repeat(img, 3, axis=2)
    elif img.shape[2] == 3 and channels == 1:
        img = (img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
        img = np.clip(np.round(img), 0, 255).astype(np.uint8)
    if img.shape[:2] != (size, size):
        interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR
        img = cv2.resize(img, (size, size), interpolation=interp)
        if img.ndim == 2:
            img = img[..., None]
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def predict_inputs(inputs: list[str], weights, out_dir, *, layer: str, normalize: bool, batch_size: int,
                   part_rows: int, shard: str | None, overwrite: bool, skip_existing: bool, device, sink=None) -> dict:
    """Embed the images; returns {output, records, embeddings, index, rows, dim, device}."""
    from wisecli.cli.inputs import parse_shard
    from wisecli.runtime.io.atomic import open_atomic, save_npy
    from wisecli.runtime.io.labeled import list_images
    from wisecli.runtime.rundir import made_dir

    items = list_images([str(i) for i in inputs])
    if not items:
        raise InputError("no images to embed", hint="give image files, folders, globs or @list.txt")
    if out_dir is None:
        raise InputError("predict needs -o OUT (a folder for the embeddings)", hint="e.g. -o emb/")
    if weights is None:
        raise InputError("predict needs --weights CKPT", hint="a checkpoint or run folder that train wrote")
    if skip_existing and overwrite:
        raise InputError("--skip-existing and --overwrite exclude each other", hint="pick one")
    tag = ""
    if shard:
        i, n = parse_shard(shard)
        items = [p for j, p in enumerate(items) if j % n == i]
        tag = f".part-{i}-of-{n}"
    model, _ = load_model(Path(weights), device)
    out = Path(out_dir)
    emb_path, idx_path = out / f"embeddings{tag}.npy", out / f"index{tag}.jsonl"
    part_name = (lambda p: f"part{tag}-{p:05d}") if tag else (lambda p: f"part-{p:05d}")
    nparts = math.ceil(len(items) / part_rows)
    if not overwrite and not skip_existing:
        clash = [p for p in (emb_path, idx_path) if p.exists()] + [
            out / f"{part_name(p)}.npy" for p in range(nparts) if (out / f"{part_name(p)}.npy").exists()]
        if clash:
            raise InputError(f"output exists: {clash[0]}", hint="pass --skip-existing to resume or --overwrite to replace")
    size, channels = int(model.cfg["image_size"]), int(model.cfg["in_channels"])
    records: list[dict] = []
    lone = len(items) == 1
    done_merged = skip_existing and emb_path.exists() and idx_path.exists()
    with made_dir(out):
        row = 0
        for p in range(nparts):
            chunk = items[p * part_rows:(p + 1) * part_rows]
            npy, jsl = out / f"{part_name(p)}.npy", out / f"{part_name(p)}.jsonl"
            if skip_existing and npy.exists() and jsl.exists():
                for line in jsl.read_text().splitlines():
                    rec = json.loads(line)
                    rec.update(status="skipped", row=rec.get("row"))
                    records.append(rec)
                    if sink is not None:
                        sink.record(rec)
                row += sum(1 for r in records[-len(chunk):] if r.get("row") is not None)
                continue
            arrays, part_recs = [], []
            for path in chunk:
                try:
                    arrays.append(_image_for(path, size, channels))
                    part_recs.append({"input": str(path), "status": "ok"})
                except InputError as exc:
                    if lone:
                        raise
                    part_recs.append({"input": str(path), "status": "error", "error": str(exc)})
            X = np.stack(arrays) if arrays else np.zeros((0, channels, size, size), np.uint8)
            feats = _features(model, X, device, layer=layer, batch=batch_size) if len(X) else torch.zeros(0, 1)
            if normalize and len(X):
                feats = torch.nn.functional.normalize(feats, dim=1)
            save_npy(npy, feats.cpu().numpy().astype(np.float16))
            with open_atomic(jsl, "w") as fh:
                for r in part_recs:
                    if r["status"] == "ok":
                        r["row"] = row
                        row += 1
                    else:
                        r["row"] = None
                    fh.write(json.dumps(r) + "\n")
            for r in part_recs:
                records.append(r)
                if sink is not None:
                    sink.record(r)
        if not done_merged or overwrite:
            parts = [np.load(out / f"{part_name(p)}.npy") for p in range(nparts)]
            parts = [a for a in parts if a.size]
            merged = np.concatenate(parts) if parts else np.zeros((0, 0), np.float16)
            save_npy(emb_path, merged)
            with open_atomic(idx_path, "w") as fh:
                for r in records:
                    if r.get("row") is not None:
                        fh.write(json.dumps({"row": r["row"], "input": r["input"]}) + "\n")
    dim = int(model.cfg["dim"]) if layer == "projection" else int(model.encoder_q.feat_dim)
    return {"output": str(out), "embeddings": str(emb_path), "index": str(idx_path), "rows": row, "dim": dim,
            "layer": layer, "device": str(device), "records": records}
