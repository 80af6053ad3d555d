"""Models from checkpoints, batched embedding on the device, and the features file (`.npz`, spec §3).

Embedding: uint8 images are normalised on the device, run in `channels_last` under bf16 autocast on CUDA
(`amp`), in batches; the embedding is the L2-normalised BNNeck output (or pre-BN feature) in float32.
The features file holds `features` (N x D, float32 or float16 with `half`), `paths`, `ids`, `cameras` (-1 when
unknown), `viewpoint_probs` (N x K, absent for the baseline), `model_sha256`, `embed`, `normalised`.
`--shard I/N` parts (`feats.part-I-of-N.npz`) are concatenated by `load_features`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from wisecli.cli.errors import InputError
from wisecli.runtime.device import autocast

from .data import decode_images, normalise, parse_veri_name
from .model import ReIDNet

MODEL_KEYS = ("num_ids", "arch", "use_vcam", "vcam_stages", "viewpoint_classes", "vcam_gate", "vcam_hidden",
              "detach_viewpoint", "embed", "input_size", "width")


def build_model(mc: dict) -> ReIDNet:
    """The network described by a model config (the self-describing part of a checkpoint)."""
    return ReIDNet(int(mc["num_ids"]), arch=mc["arch"], use_vcam=bool(mc["use_vcam"]),
                   vcam_stages=tuple(int(s) for s in mc["vcam_stages"]),
                   viewpoint_classes=int(mc["viewpoint_classes"]), gate=mc["vcam_gate"],
                   hidden=int(mc["vcam_hidden"]), detach_viewpoint=bool(mc["detach_viewpoint"]), embed=mc["embed"],
                   vp_size=min(128, int(mc["input_size"])), width=float(mc["width"]))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_model(weights: Path | str, device: torch.device) -> tuple[ReIDNet, dict, str]:
    """(model in eval mode on `device`, model config, sha256 of the checkpoint file)."""
    from wisecli.runtime.checkpoints import load_checkpoint

    path = Path(weights)
    if path.is_dir():
        path = path / "checkpoints" / "best.pt" if (path / "checkpoints" / "best.pt").is_file() else path / "best.pt"
    doc = load_checkpoint(path, method="reid")
    mc = doc["config"].get("model")
    if not isinstance(mc, dict) or any(k not in mc for k in MODEL_KEYS):
        raise InputError(f"{path} does not describe a reid model", hint="use a checkpoint 'wise reid train' wrote")
    model = build_model(mc)
    model.load_state_dict(doc["state_dict"])
    model.to(device).eval()
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    return model, mc, sha256_file(path)


@torch.no_grad()
def embed_uint8(model: ReIDNet, images: torch.Tensor, device: torch.device, *, batch: int = 256, amp: bool = True,
                gates: bool = False):
    """Embeddings (float32, CPU), viewpoint probabilities (or None) and, with `gates`, the per-stage channel
    weights (dict stage -> N x C) of a uint8 N x 3 x S x S tensor."""
    feats, probs, gate_acc = [], [], {}
    for s in range(0, len(images), batch):
        x = normalise(images[s:s + batch].to(device, non_blocking=True))
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            f, p, g = model.embed(x)
        feats.append(f.float().cpu())
        if p is not None:
            probs.append(p.float().cpu())
        if gates and g:
            for k, v in g.items():
                gate_acc.setdefault(k, []).append(v.float().cpu())
    F = torch.cat(feats) if feats else torch.zeros(0, model.feat_dim)
    P = torch.cat(probs) if probs else None
    G = {k: torch.cat(v) for k, v in gate_acc.items()} if gates else None
    return F, P, G


def embed_paths(model: ReIDNet, paths: list[Path], size: int, device: torch.device, *, batch: int = 256,
                amp: bool = True, chunk: int = 4096, gates: bool = False):
    """Decode and embed image files in chunks; returns (features, probs, gates, ok mask, errors [(i, msg)])."""
    feats, probs, gate_parts, errors = [], [], {}, []
    ok = np.ones(len(paths), dtype=bool)
    for s in range(0, len(paths), chunk):
        imgs, errs = decode_images(paths[s:s + chunk], size)
        for i, msg in errs:
            ok[s + i] = False
            errors.append((s + i, msg))
        keep = torch.from_numpy(ok[s:s + chunk])
        f, p, g = embed_uint8(model, imgs[keep], device, batch=batch, amp=amp, gates=gates)
        feats.append(f)
        if p is not None:
            probs.append(p)
        for k, v in (g or {}).items():
            gate_parts.setdefault(k, []).append(v)
    F = torch.cat(feats) if feats else torch.zeros(0, model.feat_dim)
    P = torch.cat(probs) if probs else None
    G = {k: torch.cat(v) for k, v in gate_parts.items()} if gates else None
    return F, P, G, ok, errors


def labels_from_names(paths: list[Path], parse: str | None) -> tuple[np.ndarray, np.ndarray]:
    """ids and cameras from VeRi names with parse='veri' (off-pattern names are an input error), else -1."""
    n = len(paths)
    if parse != "veri":
        return np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int64)
    parsed = [parse_veri_name(p.name) for p in paths]
    bad = [p.name for p, q in zip(paths, parsed) if q is None]
    if bad:
        raise InputError(f"{len(bad)} names do not follow the VeRi pattern, e.g. {bad[0]!r}",
                         hint="drop --parse-names veri, or rename the files VVVV_cCCC_TTTTTTTT_K.jpg")
    return (np.array([q[0] for q in parsed], dtype=np.int64), np.array([q[1] for q in parsed], dtype=np.int64))


def save_features(path: Path, *, features: torch.Tensor, paths: list[str], ids, cams, probs, sha: str, embed: str,
                  half: bool = False) -> Path:
    from wisecli.runtime.io.atomic import save_npz

    arrays = {"features": features.numpy().astype(np.float16 if half else np.float32),
              "paths": np.array([str(p) for p in paths]), "ids": np.asarray(ids, dtype=np.int64),
              "cameras": np.asarray(cams, dtype=np.int64), "model_sha256": np.array(sha), "embed": np.array(embed),
              "normalised": np.array(True)}
    if probs is not None:
        arrays["viewpoint_probs"] = probs.numpy().astype(np.float32)
    return save_npz(path, **arrays)


def load_features(files: list[Path | str], role: str) -> dict:
    """One features set from one or more `.npz` parts (features, ids, cameras required)."""
    parts = []
    for f in files:
        f = Path(f)
        if not f.is_file():
            raise InputError(f"{role} features not found: {f}", hint="write them with 'wise reid predict ... -o FILE.npz'")
        try:
            with np.load(f, allow_pickle=False) as z:
                missing = [k for k in ("features", "ids", "cameras") if k not in z.files]
                if missing:
                    raise InputError(f"{f} lacks {', '.join(missing)}",
                                     hint="a features file needs features, ids and cameras")
                d = {k: z[k] for k in z.files}
        except (ValueError, OSError) as exc:
            raise InputError(f"cannot read {f}: {exc}", hint="give a .npz written by 'wise reid predict'") from None
        if d["features"].ndim != 2 or len(d["ids"]) != len(d["features"]) or len(d["cameras"]) != len(d["features"]):
            raise InputError(f"{f}: features, ids and cameras must have one row per image",
                             hint="write it with 'wise reid predict'")
        parts.append(d)
    dims = {p["features"].shape[1] for p in parts}
    if len(dims) > 1:
        raise InputError(f"{role} parts have different dimensions {sorted(dims)}", hint="use parts of one model")
    norm = {bool(p.get("normalised", np.array(False))) for p in parts}
    if len(norm) > 1:
        raise InputError(f"{role} parts mix normalised and raw features", hint="use parts of one predict run")
    out = {"features": np.concatenate([p["features"] for p in parts]).astype(np.float32),
           "ids": np.concatenate([p["ids"] for p in parts]).astype(np.int64),
           "cameras": np.concatenate([p["cameras"] for p in parts]).astype(np.int64),
           "normalised": norm.pop(), "files": [str(f) for f in files]}
    out["paths"] = (np.concatenate([p["paths"] for p in parts]) if all("paths" in p for p in parts)
                    else np.array([f"{role}[{i}]" for i in range(len(out["ids"]))]))
    if all("viewpoint_probs" in p for p in parts):
        out["viewpoint_probs"] = np.concatenate([p["viewpoint_probs"] for p in parts])
    shas = {str(p["model_sha256"]) for p in parts if "model_sha256" in p}
    out["model_sha256"] = shas.pop() if len(shas) == 1 else None
    return out
