"""`predict` and `evaluate`: loading a gated network, run-time density control, records and evaluation rows.

Choices [reconstructed] (also in `info()["choices"]`):
- `--mac-budget f` is inverted through the checkpoint's density -> counted-MAC curve (measured by `train` on its
  val split) by linear interpolation; a budget below the dense floor (stem, branch, dense blocks, fc: the counted
  fraction with one active pixel per stage) is refused with the floor printed.
- `--exec auto`: on CUDA `gather` when slack*rho is below the break-even density (`--calibration`, a
  `benchmark --json` output's summary `break_even`; default 0.5), else `dense`; on CPU `masked` (`dense` at
  rho = 1). One decision for the whole net (not per stage).
- Classification predict reads images as the shared readers do (uint8, resized to the trained size with
  INTER_AREA/INTER_LINEAR, grey replicated or colour averaged to the trained channels), normalised with the
  training statistics. SR predict takes any size as it is (partial border tiles; the gather path zero-pads
  internally as the dense convs do, so rho is exact on the image: the spec's reflection padding would put
  mask pixels outside it), processes inputs larger
  than `--chunk` LR pixels in overlapping chunks (overlap 16 LR pixels), writes 8- or 16-bit PNGs as the input.
- `evaluate --mask random|sobel`: uniform noise (seeded) or the Sobel gradient magnitude of the input's grey image
  (pooled to the map's resolution) replaces P, with the same rule and density. Latency: median of 10 timed full
  forwards after 2 warm-ups (`runtime.device.timed`) of one batch, with its device, exec, batch, size, dtype.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from wisecli.cli.errors import InputError

METHOD = "sparse-cnn"
CHOICES = {
    "mask_rule": "regional: tiles of highest mean P (slack 1.5), then the top pixels inside them (gating.py)",
    "gating": "y = act(x + M F(x)); the stem, branch, projection blocks (unless sparse.downsample_blocks) and fc dense",
    "straight_through": "g = M + P - stopgrad(P) in training (masked path)",
    "density_training": "rho = 1 w.p. 0.25 else U[density_min, 1]; first 10 % of the steps at rho = 1; own generator saved",
    "sr_tail_init": "zero: a fresh SR net is exactly bicubic, training adds a correction (sr.py)",
    "schedule": "warm-up (10 %) and cosine counted in optimiser steps, not epochs; lr_schedule=constant for short SR runs",
    "sr_output": "bicubic(LR) + M_hr * tail; upsampler and tail counted at the positions an exact sparse run needs",
    "sr_gather": "gather covers the SR body blocks; the body conv, upsampler and tail run dense times the mask",
    "gather_small_stages": "a stage whose map is smaller than 2T runs masked on the gather path",
    "mac_budget": "linear interpolation of the checkpoint's density curve; below the dense floor: refused",
    "exec_auto": "one decision per net: CUDA gather below break-even (default 0.5), else dense; CPU masked",
    "inference": "BN folded into the convs on every path (predict, evaluate, benchmark); fp32 on CPU",
    "bicubic": "MATLAB imresize: Keys a=-0.5, antialias, symmetric borders (data.py)",
    "sr_validation": "builtin:skimage-sr holds out its last training photo; a folder its last 10 %",
}
IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def load_model(weights, device):
    """(model in eval mode on device, checkpoint dict) of a sparse-cnn checkpoint (file or run folder)."""
    from wisecli.runtime.checkpoints import load_checkpoint

    from .model import build, fold_bn

    if weights is None:
        raise InputError("--weights is required", hint="give a checkpoint written by 'wise sparse-cnn train'")
    doc = load_checkpoint(weights, method=METHOD)
    try:
        model = build(doc["arch"], **doc["model"])
        model.load_state_dict(doc["state_dict"])
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise InputError(f"{weights}: the checkpoint does not describe a sparse-cnn network ({type(exc).__name__})",
                         hint="give a checkpoint written by 'wise sparse-cnn train'") from None
    return fold_bn(model.eval()).to(device), doc


def dense_floor(model, doc, device) -> float:
    """The counted-MAC fraction with one active pixel per stage: what no density goes below."""
    from .gating import Stats

    x = _dummy(doc, device)
    st = Stats(1, device)
    with torch.no_grad():
        model(x, 1e-12, exec_="masked", rule=doc.get("mask", {}).get("rule", "regional"), stats=st)
    return float(st.counted[0] / st.dense[0])


def _dummy(doc, device):
    if doc.get("task") == "sr":
        return torch.rand(1, 3, 32, 32, device=device)
    inp = doc["input"]
    return torch.rand(1, int(inp["channels"]), int(inp["image_size"]), int(inp["image_size"]), device=device)


def resolve_density(v: dict, model, doc, device) -> float:
    """rho from --density or --mac-budget (spec §8 checks)."""
    rho, budget, force = v.get("density"), v.get("mac_budget"), bool(v.get("force"))
    if rho is not None and budget is not None:
        raise InputError("--density and --mac-budget exclude each other", hint="give one of them")
    rho_min = float(doc.get("density_min", 0.0))
    if budget is not None:
        budget = float(budget)
        if not (0 < budget <= 1) or not math.isfinite(budget):
            raise InputError(f"--mac-budget must be in (0, 1], got {budget}", hint="a fraction of the dense MACs, e.g. 0.5")
        floor = dense_floor(model, doc, device)
        if budget < floor:
            raise InputError(f"--mac-budget {budget:g} is below the dense floor {floor:.3f} of this network",
                             hint=f"the stem, importance branch and dense blocks alone cost {floor:.3f} of the dense MACs")
        return invert_budget(doc.get("density_curve") or [], budget, rho_min, force)
    rho = 1.0 if rho is None else float(rho)
    if not (0 < rho <= 1) or not math.isfinite(rho):
        raise InputError(f"--density must be in (0, 1], got {rho}", hint="the share of pixels computed, e.g. 0.3")
    if rho < rho_min - 1e-12 and not force:
        raise InputError(f"--density {rho:g} is below the trained minimum {rho_min:g}",
                         hint="pass --force to run it anyway, or train with a lower --density-min")
    return rho


def invert_budget(curve: list[dict], budget: float, rho_min: float, force: bool) -> float:
    """The largest density whose counted MAC fraction is at most `budget` (linear interpolation of the curve)."""
    pts = sorted((float(c["density"]), float(c["macs_fraction"])) for c in curve)
    if not pts:
        raise InputError("this checkpoint has no density curve for --mac-budget", hint="use --density")
    if budget >= pts[-1][1]:
        return pts[-1][0]
    if budget < pts[0][1]:
        if not force:
            raise InputError(f"--mac-budget {budget:g} needs a density below the trained minimum {rho_min:g} "
                             f"(which costs {pts[0][1]:.3f})", hint="pass --force, or raise the budget")
        return max(1e-6, pts[0][0] * budget / pts[0][1])
    for (d0, f0), (d1, f1) in zip(pts, pts[1:]):
        if f0 <= budget <= f1:
            return d0 if f1 == f0 else d0 + (d1 - d0) * (budget - f0) / (f1 - f0)
    return pts[0][0]


def pick_exec(exec_: str, rho: float, device, calibration=None, slack: float = 1.5) -> str:
    """The execution path for --exec auto (module docstring); a given calibration file is checked first."""
    be = 0.5
    if calibration is not None:
        try:
            doc = json.loads(Path(calibration).read_text())
            be = float(doc.get("summary", doc)["break_even"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            raise InputError(f"cannot read the break-even density from {calibration}",
                             hint="give the output of 'wise sparse-cnn benchmark --json'") from None
    if exec_ != "auto":
        return exec_
    if rho >= 1.0:
        return "dense"
    if device.type != "cuda":
        return "masked"
    return "gather" if slack * rho < be else "dense"


def _read_class_image(path: Path, doc) -> torch.Tensor:
    from wisecli.runtime.io.images import read_image
    from wisecli.runtime.io.labeled import resize_image  # the shared readers' resize rule

    inp = doc["input"]
    a = read_image(path)
    a = resize_image(a, int(inp["image_size"]))
    if a.ndim == 2:
        a = a[..., None]
    c = int(inp["channels"])
    if a.shape[2] != c:
        a = a.mean(2, keepdims=True) if c == 1 else np.repeat(a[..., :1], c, axis=2)
    x = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float() / 255.0
    mean = torch.tensor(doc["normalize"]["mean"]).view(-1, 1, 1)
    std = torch.tensor(doc["normalize"]["std"]).view(-1, 1, 1)
    return ((x - mean) / std)[None]


def predict_inputs(inputs, weights, output, v: dict, *, save_masks=False, pattern=None, shard=None, overwrite=False,
                   skip_existing=False, sink=None, argv=None, calibration=None) -> dict:
    """The `predict` verb (see `api.predict`)."""
    from wisecli.cli.inputs import apply_shard, expand_inputs, parse_shard
    from wisecli.runtime.device import as_device

    paths = expand_inputs(list(inputs), pattern=pattern, extensions=IMAGE_EXT)
    if weights is None:
        raise InputError("--weights is required", hint="give a checkpoint written by 'wise sparse-cnn train'")
    for key in ("chunk", "batch_size"):
        if int(v[key]) < 1:
            raise InputError(f"--{key.replace('_', '-')} must be at least 1, got {v[key]}", hint="see --help")
    if skip_existing and overwrite:
        raise InputError("--skip-existing and --overwrite exclude each other", hint="pick one")
    paths = apply_shard(paths, parse_shard(shard))
    if not paths:
        raise InputError("this shard has no inputs", hint="use fewer shards")
    device = as_device(v["device"], sink=sink)
    model, doc = load_model(weights, device)
    rho = resolve_density(v, model, doc, device)
    exec_ = pick_exec(v["exec"], rho, device, calibration, doc.get("mask", {}).get("slack", 1.5))
    if doc.get("task") == "sr":
        from .sr_predict import predict_sr

        return predict_sr(paths, model, doc, rho, exec_, output, v, save_masks=save_masks, shard=shard,
                          overwrite=overwrite, skip_existing=skip_existing, sink=sink, argv=argv)
    return _predict_classify(paths, model, doc, rho, exec_, output, shard=shard, overwrite=overwrite,
                             skip_existing=skip_existing, sink=sink, argv=argv, weights=weights, device=device,
                             batch_size=int(v["batch_size"]))


def _predict_classify(paths, model, doc, rho, exec_, output, *, shard, overwrite, skip_existing, sink, argv, weights,
                      device, batch_size) -> dict:
    from wisecli.cli.inputs import parse_shard
    from wisecli.runtime.device import device_name
    from wisecli.runtime.batch import jsonl_output
    from wisecli.runtime.io.atomic import write_text
    from wisecli.runtime.rundir import made_dir
    from wisecli.runtime.runrecord import RunRecord

    from .gating import Stats

    sh = parse_shard(shard)
    output, skipped = jsonl_output(output, sh, skip_existing=skip_existing, overwrite=overwrite, inputs=paths,
                                   verb="sparse-cnn predict", config={"weights": str(weights)}, argv=argv)
    if skipped is not None:
        return skipped
    mask = doc.get("mask", {})
    t0 = time.perf_counter()
    items = []
    for p in paths:
        try:
            items.append((str(p), _read_class_image(p, doc), None))
        except InputError as exc:
            if len(paths) == 1:
                raise
            items.append((str(p), None, exc.message))
    good = [t[1] for t in items if t[1] is not None]
    probs, saving = None, None
    if good:
        x = torch.cat(good).to(device)
        outs, sav = [], []
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                st = Stats(len(x[i:i + batch_size]), device)
                outs.append(model(x[i:i + batch_size], rho, exec_=exec_, rule=mask.get("rule", "regional"),
                                  tile=int(mask.get("tile", 8)), slack=float(mask.get("slack", 1.5)), stats=st).softmax(1))
                sav.append(1 - st.counted / st.dense)
        probs, saving = torch.cat(outs).cpu(), torch.cat(sav).cpu()
    records, gi = [], 0
    classes = doc["classes"]
    for name, x, err in items:
        if x is None:
            records.append({"input": name, "status": "error", "error": err})
            if sink is not None:
                sink.warn(err if name in err else f"{name}: {err}")
            continue
        j = int(probs[gi].argmax())
        records.append({"input": name, "label": classes[j], "prob": float(probs[gi, j]), "density": rho,
                        "mac_saving": float(saving[gi]), "exec": exec_, "status": "ok"})
        gi += 1
    for r in records:
        if sink is not None:
            sink.record(r)
    summary = {"output": None if output is None else str(output), "status": "ok", "inputs": len(items),
               "errors": sum(r["status"] == "error" for r in records), "density": rho, "exec": exec_,
               "device": device_name(device), "seconds": time.perf_counter() - t0}
    if output is not None:
        with made_dir(output.parent):
            write_text(output, "".join(json.dumps(r) + "\n" for r in records))
            rec = RunRecord("sparse-cnn predict", config={"weights": str(weights), "density": rho, "exec": exec_},
                            device=device_name(device), seed=None, inputs=[str(p) for p in paths], argv=argv)
            rec.add_output(output)
            rec.set("items", {"total": len(items), "failed": summary["errors"], "skipped": 0})
            rec.write(output.parent)
    return {**summary, "records": records}


def parse_densities(text) -> list[float]:
    """"1,0.5,0.3" -> [1.0, 0.5, 0.3], each in (0, 1]."""
    try:
        vals = [float(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise InputError(f"--density {text!r} is not a comma list of numbers", hint="e.g. --density 1,0.5,0.3") from None
    if not vals or any(not (0 < d <= 1) or not math.isfinite(d) for d in vals):
        raise InputError(f"--density values must be in (0, 1], got {text}", hint="e.g. --density 1,0.5,0.3")
    return vals


def sobel_importance(x: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of the mean channel, scaled to [0, 1] per image (a fixed, untrained map)."""
    g = x.mean(1, keepdim=True)
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], device=x.device, dtype=x.dtype).view(1, 1, 3, 3)
    gx = F.conv2d(F.pad(g, (1, 1, 1, 1), mode="replicate"), kx)
    gy = F.conv2d(F.pad(g, (1, 1, 1, 1), mode="replicate"), kx.transpose(-1, -2))
    m = (gx ** 2 + gy ** 2).sqrt()
    return m / m.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)


def importance_fn(kind: str, seed: int):
    """None (learned), or a function x -> P for the random / Sobel masks."""
    if kind == "learned":
        return None
    if kind == "sobel":
        return sobel_importance
    if kind == "random":
        def rand(x):
            g = torch.Generator(device=x.device).manual_seed(seed)
            return torch.rand(x.shape[0], 1, *x.shape[-2:], generator=g, device=x.device)
        return rand
    raise InputError(f"--mask must be learned, random or sobel, not {kind!r}", hint="--mask learned|random|sobel")


def evaluate_model(data: str, weights, v: dict, *, plot=None, sink=None) -> dict:
    """The `evaluate` verb (see `api.evaluate`)."""
    from wisecli.runtime.device import as_device, device_name, timed

    from .train import center_crop_pair, measure, sr_pairs

    dens = parse_densities(v["density"])
    if int(v["batch_size"]) < 1:
        raise InputError(f"--batch-size must be at least 1, got {v['batch_size']}", hint="see --help")
    fn = importance_fn(v["mask"], int(v["seed"]))
    if v["exec"] not in ("dense", "masked", "gather", "auto"):
        raise InputError(f"--exec must be auto, dense, masked or gather, not {v['exec']!r}", hint="see --help")
    task_of_data = "sr" if str(data).startswith("builtin:skimage-sr") else None
    device = as_device(v["device"], sink=sink)
    model, doc = load_model(weights, device)
    task = doc.get("task", "classify")
    if task_of_data == "sr" and task != "sr":
        raise InputError(f"{weights} is a {task} checkpoint; {data} is SR data",
                         hint="evaluate SR data with an SR checkpoint (train --task sr)")
    rho_min = float(doc.get("density_min", 0.0))
    if min(dens) < rho_min - 1e-12 and not v["force"]:
        raise InputError(f"--density {min(dens):g} is below the trained minimum {rho_min:g}",
                         hint="pass --force to evaluate it anyway")
    mask = doc.get("mask", {})
    kw = {"rule": mask.get("rule", "regional"), "tile": int(mask.get("tile", 8)), "slack": float(mask.get("slack", 1.5))}
    bs = int(v["batch_size"])
    if task == "sr":
        from .data import hr_images

        imgs = hr_images(str(data))
        scale = int(doc["scale"])
        batches = [tuple(t[None] for t in center_crop_pair(lr, hr, scale, 10 ** 6)) for lr, hr in sr_pairs(imgs, scale, device)]
    else:
        batches = _class_batches(data, doc, device, bs)
        scale = 1
    rows = []
    for rho in dens:
        ex = pick_exec(v["exec"], rho, device, None, kw["slack"])
        m = measure(model, batches, rho, task=task, exec_=ex, importance_fn=fn, scale=scale, **kw)
        row = {"density": rho, "mask": v["mask"], "exec": ex}
        if task == "sr":
            row.update({"psnr": m["psnr"], "ssim": m["ssim"]})
        else:
            row.update({"top1": m["top1"], "top5": m["top5"]})
        row.update({k: m[k] for k in ("macs_dense", "macs_counted", "macs_executed", "saving_counted",
                                      "saving_executed", "tile_occupancy")})
        if v["latency"]:
            x = batches[0][0]
            imp = fn(x) if fn is not None else None
            with torch.no_grad():
                _, sec = timed(lambda: model(x, rho, exec_=ex, importance=imp, **kw), device, repeats=10, warmup=2)
            row["latency_ms"] = 1000 * sec
            row["latency"] = {"device": device_name(device), "exec": ex, "batch": int(x.shape[0]),
                              "size": list(x.shape[-2:]), "dtype": "float32"}
        rows.append(row)
    doc_out = {"task": task, "data": str(data), "weights": str(weights), "mask": v["mask"], "rows": rows,
               "device": device_name(device), "density_for_saving": _density_for_saving(doc, task)}
    if task == "sr":
        from .metrics import psnr_y, ssim_y
        from .data import imresize

        bic = [(psnr_y(imresize(lr, float(scale)), hr, scale), ssim_y(imresize(lr, float(scale)), hr, scale))
               for lr, hr in batches]
        doc_out["bicubic"] = {"psnr": float(torch.cat([b[0] for b in bic]).mean()),
                              "ssim": float(torch.cat([b[1] for b in bic]).mean())}
    if plot is not None:
        _plot(rows, task, plot)
        doc_out["plot"] = str(plot)
    return doc_out


def _density_for_saving(doc, task) -> dict:
    """The density at which the counted saving reaches 50 % (classification) / 90 % (SR), from the checkpoint's
    curve (linear interpolation; None when the trained range does not reach it)."""
    target = 0.9 if task == "sr" else 0.5
    try:
        rho = invert_budget(doc.get("density_curve") or [], 1 - target, 0.0, False)
    except InputError:
        rho = None
    return {"saving": target, "density": rho}


def _class_batches(data, doc, device, bs):
    from wisecli.runtime.io.labeled import read_labeled

    inp = doc["input"]
    lab = read_labeled(data, image_size=int(inp["image_size"]), val_fraction=0.0)
    if lab.kind != "image":
        raise InputError(f"{data} holds feature vectors, not images", hint="sparse-cnn classifies images")
    part = lab.part("test") if "test" in lab.split and ":" not in str(data).replace("builtin:", "") else lab
    if part.X.shape[1] != int(inp["channels"]):
        raise InputError(f"{data} has {part.X.shape[1]} channels, the model takes {inp['channels']}",
                         hint="evaluate on data like the training data")
    names = list(doc["classes"])
    remap = {c: names.index(c) if c in names else -1 for c in part.classes}
    y = torch.tensor([remap[part.classes[i]] for i in part.y], device=device)
    x = torch.from_numpy(np.ascontiguousarray(part.X)).float() / 255.0
    mean = torch.tensor(doc["normalize"]["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(doc["normalize"]["std"]).view(1, -1, 1, 1)
    x = ((x - mean) / std).to(device)
    return [(x[i:i + bs], y[i:i + bs]) for i in range(0, len(x), bs)]


def _plot(rows, task, path) -> None:
    from wisecli.runtime.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    key = "psnr" if task == "sr" else "top1"
    ax.plot([100 * r["saving_counted"] for r in rows], [r[key] for r in rows], "o-")
    for r in rows:
        ax.annotate(f"ρ={r['density']:g}", (100 * r["saving_counted"], r[key]), fontsize=7)
    ax.set_xlabel("counted MAC saving (%)")
    ax.set_ylabel("PSNR (dB)" if task == "sr" else "top-1")
    save_figure(fig, path)
