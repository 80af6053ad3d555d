"""The `predict` verb: models from checkpoints, batched embedding on the device, and the features file
(`.npz`, spec §3).

Embedding: uint8 images are normalised on the device, run in `channels_last` under bf16 autocast on CUDA
(`amp`), in batches; the embedding is the L2-normalised BNNeck output (or pre-BN feature) in float32.
The features file holds `features` (N x D, float32 or float16 with `half`), `paths`, `ids`, `cameras` (-1 when
unknown), `viewpoint_probs` (N x K, absent for the baseline), `model_sha256`, `embed`, `normalised`.
`--shard I/N` parts (`feats.part-I-of-N.npz`) are concatenated by `load_features`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import time
import zipfile
import zlib
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


def load_model(weights: Path | str, device: torch.device) -> tuple[ReIDNet, dict, str]:
    """(model in eval mode on `device`, model config, sha256 of the checkpoint file)."""
    from wisecli.runtime.checkpoints import load_checkpoint
    from wisecli.runtime.io.atomic import sha256_file

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
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
            raise InputError(f"cannot read {f}: the file is corrupt or truncated ({type(exc).__name__})",
                             hint="give a .npz written by 'wise reid predict'") from None
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


IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp")
_FS_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO}


@contextlib.contextmanager
def write_guard(where: Path):
    """A file-system error of a write not done by `atomic_path` (a folder made, a log appended) becomes an
    OutputError naming `where` (exit 1, one line) instead of a traceback."""
    from wisecli.cli.errors import OutputError

    try:
        yield
    except OSError as exc:
        if exc.errno not in _FS_ERRNOS:
            raise
        raise OutputError(f"cannot write into {where}: {exc.strerror or exc}",
                          hint="free some disk space or choose another output folder (-o)"
                          if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "check the folder is writable") from None


def announce_device(sink, spec, device: torch.device) -> None:
    """Say which device `auto` picked, once the inputs have been read (so an input error is the only line)."""
    from wisecli.runtime.device import device_name

    if sink is not None and (spec is None or (isinstance(spec, str) and spec.strip().lower() == "auto")):
        sink.info(f"device: {device_name(device)} (auto)")


def is_complete_features(path: Path) -> bool:
    """Whether `path` is a whole features file (a readable zip holding `features.npy`): what --skip-existing
    may skip. Writes are atomic, so a file under the final name is whole unless something else wrote it."""
    try:
        with zipfile.ZipFile(path) as z:
            return "features.npy" in z.namelist() and z.testzip() is None
    except (OSError, zipfile.BadZipFile):
        return False


def predict_features(inputs: list, weights: Path | None, output: Path | None, *, half: bool = False,
                     parse_names: str | None = None, pattern: str | None = None, shard: str | None = None,
                     overwrite: bool = False, skip_existing: bool = False, device="auto", amp: bool = True,
                     batch_size: int = 256, sink=None, argv=None) -> dict:
    """The `predict` verb (see `api.predict`): returns the summary with one record per image."""
    from wisecli.cli.inputs import apply_shard, expand_inputs, parse_shard
    from wisecli.runtime.device import as_device, device_name
    from wisecli.runtime.io.atomic import refuse_existing, write_text
    from wisecli.runtime.rundir import made_dir
    from wisecli.runtime.runrecord import RunRecord

    paths = expand_inputs([str(i) for i in inputs], pattern=pattern, extensions=IMAGE_EXT)
    if weights is None:
        raise InputError("predict needs --weights", hint="a checkpoint written by 'wise reid train'")
    if output is None or not Path(output).name.endswith(".npz"):
        raise InputError("predict needs -o FILE.npz", hint="e.g. -o gallery.npz")
    if parse_names not in (None, "veri"):
        raise InputError(f"unknown --parse-names {parse_names!r}", hint="only 'veri' is known")
    if int(batch_size) < 1:
        raise InputError(f"--batch-size must be at least 1, got {batch_size}", hint="the default is 256")
    if skip_existing and overwrite:
        raise InputError("--skip-existing and --overwrite exclude each other", hint="pick one")
    output = Path(output)
    sh = parse_shard(shard)
    if sh is not None:
        output = output.with_name(f"{output.name[:-4]}.part-{sh[0]}-of-{sh[1]}.npz")
    paths = apply_shard(paths, sh)
    if not paths:
        raise InputError("this shard has no images", hint="use fewer shards")
    config = {"weights": str(weights), "half": half, "parse_names": parse_names, "batch_size": batch_size, "amp": amp}
    if skip_existing and output.exists() and is_complete_features(output):
        rec = RunRecord("reid predict", config=config, device=None, seed=None, inputs=[str(p) for p in paths], argv=argv)
        rec.add_output(output)
        rec.set("items", {"total": len(paths), "failed": 0, "skipped": len(paths)})
        with write_guard(output.parent):
            rec.write(output.parent)
        return {"output": str(output), "status": "skipped", "images": len(paths), "errors": 0,
                "records": [{"input": str(p), "status": "skipped", "output": str(output)} for p in paths]}
    if not skip_existing:
        refuse_existing(output, overwrite)
    ids, cams = labels_from_names(paths, parse_names)
    spec, device = device, as_device(device)
    model, mc, sha = load_model(weights, device)
    announce_device(sink, spec, device)
    t0 = time.perf_counter()
    feats, probs, _, ok, errors = embed_paths(model, paths, mc["input_size"], device, batch=batch_size, amp=amp)
    seconds = time.perf_counter() - t0
    if errors and len(paths) == 1:  # a lone input that fails is the user's input error (exit 2), not a batch
        msg = errors[0][1]
        raise InputError(msg if str(paths[0]) in msg else f"{paths[0]}: {msg}", hint="give readable JPEG/PNG/BMP images")
    kept = [p for p, k in zip(paths, ok) if k]
    err_file = output.with_name(output.name.removesuffix(".npz") + ".errors.jsonl")
    with write_guard(output.parent), made_dir(output.parent):
        save_features(output, features=feats, paths=[str(p) for p in kept], ids=ids[ok], cams=cams[ok], probs=probs,
                      sha=sha, embed=mc["embed"], half=half)
        if errors:
            write_text(err_file, "".join(json.dumps({"input": str(paths[i]), "status": "error", "error": msg}) + "\n"
                                         for i, msg in errors))
        elif err_file.exists():  # a stale record of an earlier run into the same (overwritten) file
            err_file.unlink()
        rec = RunRecord("reid predict", config=config, device=device_name(device), seed=None,
                        inputs=[str(p) for p in paths], argv=argv)
        rec.add_output(output)
        rec.timing("embed", seconds)
        rec.write(output.parent)
    failed = {i: msg for i, msg in errors}
    records = [{"input": str(p), "status": "error", "error": failed[i]} if i in failed
               else {"input": str(p), "status": "ok", "output": str(output)} for i, p in enumerate(paths)]
    summary = {"output": str(output), "status": "ok", "images": len(kept), "errors": len(errors),
               "dim": int(feats.shape[1]), "embed": mc["embed"], "model_sha256": sha, "device": device_name(device),
               "seconds": seconds, "images_per_s": len(kept) / max(seconds, 1e-9)}
    if errors:
        summary["errors_file"] = str(err_file)
    summary["records"] = records
    return summary
