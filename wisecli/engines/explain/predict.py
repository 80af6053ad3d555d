"""`wise explain run`: saliency maps of many images with a model loaded once (`runtime.batch.run_batch`), and
`explain_images`, the in-memory core that the demo and the benchmark share.

Choices where the spec is silent [reconstructed]:
- the keep probability default (`--keep-prob`, p1 for RISE, q for MC-RISE) is p1 = 0.5 for RISE (the paper's) and
  q = 0.9 for MC-RISE (`MCRISE_KEEP`; the spec's [reconstructed] 0.5 does not show colour effects: see below);
- the noise warning of MC-RISE fires when N(1-q)/K, the expected number of masks that paint a pixel a given colour,
  is below 100 (the spec's 500 would warn at every default run with q = 0.9, whose maps measured right at 33);

MC-RISE keep probability, the evidence (demo model = shipped weights, 8 test canvases with a known truth: the label
is the red digit, so painting it green must lower the score; colours red, green, blue; grid 7; seed 0; CPU):

    N     q     S_green<0 on red strokes   mean S_green   deletion margin   insertion margin (vs random maps)
    1000  0.5   4/8                        -0.006         +0.098            -0.032
    1000  0.7   6/8                        -0.019         +0.083            +0.028
    1000  0.8   7/8                        -0.021         +0.176            +0.008
    1000  0.9   8/8                        -0.054         +0.156            +0.089
    4000  0.5   5/8                        -0.011         +0.089            -0.027
    4000  0.7   7/8                        -0.020         +0.108            +0.012
    4000  0.8   8/8                        -0.026         +0.180            +0.061
    4000  0.9   8/8                        -0.057         +0.184            +0.085

At q = 0.5 half of every cell grid is painted solid colour, the perturbed images are far from anything the model
saw and its score sits near chance on almost all of them, so the map averages noise; at q = 0.9 each mask paints a
few cells of an otherwise intact image and E[f | painted k] - E[f | kept] is large. The variance factor K/(1-q) + 1/q
grows (8 -> 31) but the effect grows faster. RISE keeps p1 = 0.5 (its gates pass there: `demo.py`).
- `--batch` (forward batch) defaults to 256 on the CPU and 1024 on CUDA; an out-of-memory halves it once, then
  names `--batch`;
- images are read as RGB (or gray) uint8, or `.npy` (H, W[, C]) in [0, 1] or 0-255, converted to the model's
  channels (RGB -> gray by the mean, gray -> RGB by repetition) and resized to the model size (bilinear,
  anti-aliased). `--save-size image` resizes the maps back to the image's size (bilinear) before saving;
- `--softmax auto` decides per image from the clean output; the class probabilities of the record are the
  scores the maps are made of;
- colour names: red, green, blue, yellow, cyan, magenta, white, black, gray, orange (or `#rrggbb`).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from wisecli.cli.errors import InputError, WorkFailed

from .algorithm import MaskSpec, estimate, scores_of, softmax_needed

RISE_KEEP = 0.5      # p1 of RISE when --keep-prob is not given
MCRISE_KEEP = 0.9    # q of MC-RISE when --keep-prob is not given (evidence in the module docstring)
NOISY_BELOW = 100    # warn when N(1-q)/K is below this

IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".npy")
COLORS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0),
          "cyan": (0, 255, 255), "magenta": (255, 0, 255), "white": (255, 255, 255), "black": (0, 0, 0),
          "gray": (128, 128, 128), "orange": (255, 165, 0)}


def parse_colors(spec) -> list[list[int]]:
    """`red,green,blue` or `#ff0000,...` (or a list of RGB triples) -> [[r, g, b], ...]; unknown or duplicate
    colours are InputError."""
    if isinstance(spec, (list, tuple)) and spec and not isinstance(spec[0], str):
        out = [[int(v) for v in c] for c in spec]
    else:
        words = [w.strip().lower() for w in (spec.split(",") if isinstance(spec, str) else spec) if w.strip()]
        if not words:
            raise InputError("--colors is empty", hint="e.g. --colors red,green,blue or #ff8800")
        out = []
        for w in words:
            if w in COLORS:
                out.append(list(COLORS[w]))
            elif w.startswith("#") and len(w) == 7:
                try:
                    out.append([int(w[i:i + 2], 16) for i in (1, 3, 5)])
                except ValueError:
                    raise InputError(f"unknown colour {w!r}", hint="names: " + ", ".join(COLORS) + "; or #rrggbb") from None
            else:
                raise InputError(f"unknown colour {w!r}", hint="names: " + ", ".join(COLORS) + "; or #rrggbb")
    if any(len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in out):
        raise InputError("colours must be RGB triples in 0-255", hint="e.g. --colors red,#00ff00")
    if len({tuple(c) for c in out}) != len(out):
        raise InputError("duplicate colours in --colors", hint="give each colour once")
    return out


def parse_target(spec: str, classes: list[str]) -> tuple[str, object]:
    """`top1` | `top:N` | `ID,...` | `NAME,...` -> ("top", N) or ("ids", [ids])."""
    spec = str(spec).strip()
    if spec == "top1":
        return "top", 1
    if spec.startswith("top:"):
        try:
            n = int(spec[4:])
        except ValueError:
            n = 0
        if not 1 <= n <= len(classes):
            raise InputError(f"--target {spec}: N must be 1..{len(classes)}", hint="e.g. --target top:3")
        return "top", n
    ids = []
    for w in [w.strip() for w in spec.split(",") if w.strip()]:
        if w in classes:
            ids.append(classes.index(w))
        elif w.lstrip("-").isdigit() and 0 <= int(w) < len(classes):
            ids.append(int(w))
        else:
            raise InputError(f"--target {w!r} is not a class of the model ({len(classes)} classes)",
                             hint="give class ids 0..%d, names, top1 or top:N" % (len(classes) - 1))
    if not ids or len(set(ids)) != len(ids):
        raise InputError(f"--target {spec!r}: give distinct classes", hint="e.g. --target 3,7")
    return "ids", ids


def check_settings(box, v: dict) -> dict:
    """Validate and complete the run settings against the model (all InputError before work)."""
    method = v.get("method") or ("mcrise" if box.channels == 3 else "rise")
    if method not in ("rise", "mcrise"):
        raise InputError(f"--method {method!r}", hint="rise or mcrise")
    if method == "mcrise" and box.channels != 3:
        raise InputError(f"--method mcrise needs a 3-channel model; this one has {box.channels}",
                         hint="use --method rise")
    n, grid, q = v["masks"], v["grid"], v["keep_prob"]
    if q is None:
        q = MCRISE_KEEP if method == "mcrise" else RISE_KEEP
    if not isinstance(n, int) or n < 1:
        raise InputError(f"--masks must be at least 1, got {n}", hint="e.g. --masks 4000")
    if not (isinstance(q, (int, float)) and math.isfinite(q) and 0 < q < 1):
        raise InputError(f"--keep-prob must be in (0, 1), got {q}", hint="e.g. --keep-prob 0.5")
    if not isinstance(grid, int) or grid < 2 or grid > min(box.size):
        raise InputError(f"--grid must be 2..{min(box.size)} (the model's input size), got {grid}",
                         hint="e.g. --grid 7")
    if v.get("batch") is not None and int(v["batch"]) < 1:
        raise InputError(f"--batch must be at least 1, got {v['batch']}", hint="e.g. --batch 256")
    if v.get("fill", "mean") not in ("mean", "black", "blur"):
        raise InputError(f"--fill {v['fill']!r}", hint="mean, black or blur")
    out = dict(v, method=method, keep_prob=float(q))
    out["colors"] = parse_colors(v["colors"]) if method == "mcrise" else None
    out["target_spec"] = parse_target(v["target"], box.classes)
    return out


def read_image01(path: Path) -> Tensor:
    """(1, C, H, W) float in [0, 1] at the file's size; unreadable -> InputError."""
    from wisecli.runtime.io.images import read_image

    path = Path(path)
    if path.suffix.lower() == ".npy":
        try:
            a = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"cannot read {path}: {str(exc)[:100] or type(exc).__name__}", hint="give a .npy image") from None
        if a.ndim == 2:
            a = a[..., None]
        if a.ndim != 3 or a.shape[2] not in (1, 3) or a.dtype.kind not in "biuf" or a.size == 0 or not np.isfinite(a).all():
            raise InputError(f"{path}: a .npy image must be finite (H, W), (H, W, 1) or (H, W, 3)", hint="check the file")
        a = a.astype(np.float32)
        a = a / 255.0 if a.max() > 1 else a
    else:
        a = read_image(path).astype(np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].clamp(0, 1)


def fit_to_model(x01: Tensor, box) -> Tensor:
    """Channels and size of the model (see the module docstring)."""
    if x01.shape[1] != box.channels:
        x01 = x01.mean(1, keepdim=True) if box.channels == 1 else x01.expand(-1, box.channels, -1, -1)
    if tuple(x01.shape[-2:]) != tuple(box.size):
        x01 = torch.nn.functional.interpolate(x01.float(), size=box.size, mode="bilinear", align_corners=False,
                                              antialias=True).clamp(0, 1)
    return x01


def _forward(box, amp: bool, cuda_graph: bool = False):
    """`forward(x_input_space) -> (n, classes)` float32 of the box: channels_last and bf16 autocast on CUDA; with
    `cuda_graph` (CUDA and an nn.Module/TorchScript model only: `graph_usable`) each forward shape is captured once
    in a CUDA graph and replayed (`_GraphedForward`)."""
    from wisecli.runtime.device import autocast

    def fwd(x):
        if box.device.type == "cuda" and box.module is not None:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(box.device, enabled=amp):
            return box(x).float()
    if cuda_graph and graph_usable(box) is None:
        from wisecli.runtime.device import amp_dtype

        dtype = amp_dtype(box.device)

        def fwd_nocache(x):    # autocast's weight cache must be off under graph capture (PyTorch's CUDA graph notes)
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=dtype or torch.bfloat16, enabled=bool(amp and dtype), cache_enabled=False):
                return box(x).float()
        cache = box.__dict__.setdefault("_graphed", {})     # captured graphs live as long as the loaded model
        if amp not in cache:
            cache[amp] = _GraphedForward(fwd_nocache, box.device)
        return cache[amp]
    return fwd


def graph_usable(box) -> str | None:
    """None when `--cuda-graph` can be used with this model on its device, else why not (the run warns and runs
    eagerly: a CUDA graph changes the speed, never the maps)."""
    if box.device.type != "cuda":
        return f"--cuda-graph needs a CUDA device (this run is on {box.device.type}); running without it"
    if box.module is None:
        return f"--cuda-graph needs a PyTorch model (this is {box.kind}); running without it"
    return None


class _GraphedForward:
    """A forward replayed from CUDA graphs, one per input shape (the full forward batches share one; the last,
    shorter batch of a run gets its own): capture after 2 warm-up passes on a side stream (PyTorch's
    `torch.cuda.graph` recipe), then each call copies the input into the static buffer, replays, and clones the
    static output. Inputs keep the memory format of the eager path (channels_last)."""

    def __init__(self, fwd, device):
        self.fwd, self.device, self.graphs = fwd, device, {}

    def __call__(self, x: Tensor) -> Tensor:
        key = (tuple(x.shape), x.dtype)
        if key not in self.graphs:
            static_in = x.clone()
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(2):
                    self.fwd(static_in)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self.fwd(static_in)
            self.graphs[key] = (graph, static_in, static_out)
        graph, static_in, static_out = self.graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out.clone()


def explain_images(box, x01: Tensor, *, method: str, masks: int, grid: int, keep_prob: float, colors=None,
                   fill: str = "mean", debias: bool = False, target=("top", 1), softmax: str = "auto",
                   batch: int | None = None, amp: bool = True, seed: int = 0, cuda_graph: bool = False) -> dict:
    """Maps of a group of images `x01` (B, C, H, W) in [0, 1] at the model size, explained together: the masks are
    made once for the group and each forward batch holds masks of several images (`algorithm.estimate`). Returns
    {maps (B, K or 1, C_sel, H, W) cpu float32, targets (B, C_sel), probs (B, C_sel), softmax (B bools, decided
    per image under "auto"), bad_chunk (B ints)}."""
    from wisecli.runtime.device import oom_guard

    dev = box.device
    fwd = _forward(box, amp)
    with torch.inference_mode():
        xin = box.to_input(x01.to(dev))
        clean = fwd(xin)
        if not torch.isfinite(clean).all():
            raise InputError("the model returns NaN/Inf on the clean image", hint="check the model and the input")
        if softmax == "auto":
            use_sm = torch.tensor([softmax_needed(row[None]) for row in clean], device=dev)
        else:
            use_sm = torch.full((len(clean),), softmax == "on", device=dev)
        p = scores_of(clean, use_sm)
        kind, val = target
        tg = p.topk(int(val), dim=1).indices if kind == "top" else torch.tensor([val] * len(p), device=dev)
        spec = MaskSpec(h=box.size[0], w=box.size[1], grid=grid, keep=keep_prob, n=masks,
                        colors=len(colors) if method == "mcrise" else 0, seed=seed)
        cin = box.color_input(colors) if method == "mcrise" else None
        fill_t = None
        if method == "rise" and fill == "black":
            fill_t = box.to_input(torch.zeros_like(x01)).to(dev)
        elif method == "rise" and fill == "blur":
            from .metrics import blur

            fill_t = blur(xin)
        bs = int(batch or (1024 if dev.type == "cuda" else 256))
        mfwd = _forward(box, amp, cuda_graph)

        def go(b):
            return estimate(mfwd, xin, tg, spec, colors=cin, fill=fill_t, debias=debias, softmax=use_sm, batch=b,
                            device=dev)
        try:
            est = go(bs)
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            est = oom_guard(lambda: go(max(1, bs // 2)), option_hint="--batch")
    return {"maps": est.maps.float().cpu(), "targets": tg.cpu(), "probs": p.gather(1, tg).cpu(),
            "softmax": [bool(v) for v in use_sm.cpu()], "bad_chunk": est.bad_chunk}


def images_per_group(batch, masks: int, device) -> int:
    """How many images `run` explains together: enough that one chunk of masks (256, or N when smaller) for each of
    them fills a forward batch, at least 8 (the masks are made once per group), at most 64 (a result is written
    when its group is done)."""
    from .algorithm import CHUNK

    bs = int(batch or (1024 if torch.device(device).type == "cuda" else 256))
    return int(min(64, max(8, bs // max(1, min(CHUNK, int(masks))))))


def _outputs(out_dir: Path, stem: str, method: str) -> list[Path]:
    return [out_dir / f"{stem}.{method}.npy", out_dir / f"{stem}.json"]


def run_inputs(inputs, *, model, out_dir, settings: dict, model_opts: dict, pattern=None, shard=None,
               skip_existing=False, overwrite=False, fail_fast=False, png=True, device="auto", amp=True, seed=0,
               sink=None, argv=None, config_record=None) -> list[dict]:
    """The `run` verb (see `api.run`)."""
    from wisecli.cli.inputs import apply_shard, expand_inputs, parse_shard
    from wisecli.runtime.batch import BatchOptions, run_batch, stem_of
    from wisecli.runtime.device import as_device, device_name
    from wisecli.runtime.io.atomic import save_npy, write_json
    from wisecli.runtime.runrecord import RunRecord

    from .model import load_model
    from .plots import overlay_mcrise, overlay_rise

    paths = expand_inputs([str(i) for i in inputs], pattern=pattern, extensions=IMAGE_EXT)
    sh = parse_shard(shard)
    paths = apply_shard(paths, sh)
    if not paths:
        raise InputError("this shard has no inputs", hint="use fewer shards")
    if out_dir is None:
        raise InputError("-o/--out-dir is required", hint="e.g. -o sal/")
    out_dir = Path(out_dir)
    dev = as_device(device, sink=sink)
    box = load_model(model, device=dev, **model_opts)
    v = check_settings(box, settings)
    method = v["method"]
    warned = []

    def warn_noise():   # once, after the first image was read (a lone unreadable input stays one Error: line)
        if warned or method != "mcrise" or sink is None:
            return
        warned.append(True)
        k = len(v["colors"])
        if v["masks"] * (1 - v["keep_prob"]) / k < NOISY_BELOW:
            sink.warn(f"N(1-q)/K = {v['masks'] * (1 - v['keep_prob']) / k:.0f} < {NOISY_BELOW}: the maps will be noisy "
                      f"(see 'wise explain info' for the N of a target standard error)")
    cfg = {"model": str(model), "model_info": box.describe(), "method": method, "masks": v["masks"],
           "grid": v["grid"], "keep_prob": v["keep_prob"], "colors": v["colors"], "fill": v["fill"],
           "debias": bool(v["debias"]), "target": v["target"], "softmax": v["softmax"], "batch": v["batch"],
           "save_size": v["save_size"], "amp": bool(amp), "cuda_graph": bool(v.get("cuda_graph")), "seed": int(seed),
           "model_opts": {
               k: (list(x) if isinstance(x, tuple) else (str(x) if isinstance(x, Path) else x))
               for k, x in model_opts.items()}}
    rec = RunRecord("explain run", config={"values": cfg, "sources": config_record or {}}, device=device_name(dev),
                    seed=int(seed), inputs=[str(p) for p in paths], argv=argv)

    group_size = images_per_group(v["batch"], v["masks"], dev)
    rec.set("images_per_group", group_size)
    graph_note = graph_usable(box) if v.get("cuda_graph") else None
    if graph_note and sink is not None:
        sink.warn(graph_note)
    rec.set("cuda_graph", bool(v.get("cuda_graph")) and graph_note is None)
    done: dict[Path, tuple] = {}          # path -> ("ok", x, result, seconds, group size) or ("error", exception)
    position = {p: i for i, p in reversed(list(enumerate(paths)))}

    def pending(path: Path) -> list[Path]:
        """`path` and the next inputs that run_batch will hand to `process` (not done, not skipped), in order."""
        out = []
        for p in paths[position[path]:]:
            if len(out) == group_size:
                break
            if p in done:
                continue
            if skip_existing and all(q.exists() for q in _outputs(out_dir, stem_of(p), method)):
                continue
            out.append(p)
        return out or [path]

    def explain_group(group: list[Path]) -> None:
        """Read the group's images, explain the readable ones together, keep each result or error for `process`."""
        t0 = time.perf_counter()
        xs = []
        for p in group:
            try:
                xs.append((p, read_image01(p)))
            except Exception as exc:  # noqa: BLE001 - recorded for this item when run_batch reaches it
                done[p] = ("error", exc)
        if xs:
            warn_noise()
        fitted = []
        with torch.inference_mode():
            for p, x in xs:
                fx = fit_to_model(x, box)
                out = _forward(box, amp)(box.to_input(fx.to(dev)))
                if not torch.isfinite(out).all():
                    done[p] = ("error", WorkFailed(f"{p}: the model returns NaN/Inf on the clean image",
                                                   hint="check the model and the input"))
                else:
                    fitted.append((p, x, fx))
        if not fitted:
            return
        try:
            r = explain_images(box, torch.cat([fx for _, _, fx in fitted]), method=method, masks=v["masks"],
                               grid=v["grid"], keep_prob=v["keep_prob"], colors=v["colors"], fill=v["fill"],
                               debias=bool(v["debias"]), target=v["target_spec"], softmax=v["softmax"],
                               batch=v["batch"], amp=amp, seed=seed, cuda_graph=bool(v.get("cuda_graph")))
        except Exception as exc:  # noqa: BLE001 - a failure of the group's work is each member's error
            for p, _, _ in fitted:
                done[p] = ("error", exc)
            return
        share = (time.perf_counter() - t0) / len(group)
        for j, (p, x, _) in enumerate(fitted):
            one = {"maps": r["maps"][j], "targets": r["targets"][j], "probs": r["probs"][j],
                   "softmax": r["softmax"][j], "bad_chunk": r["bad_chunk"][j]}
            done[p] = ("ok", x, one, share, len(group))

    def process(path: Path) -> dict:
        t0 = time.perf_counter()
        if path not in done:
            explain_group(pending(path))
        entry = done.pop(path)
        if entry[0] == "error":
            raise entry[1]
        _, x, r, share, n_group = entry
        h0, w0 = x.shape[-2:]
        if r["bad_chunk"] >= 0:
            raise WorkFailed(f"{path}: the model returned NaN/Inf on mask chunk {r['bad_chunk']}",
                             hint="check the model on perturbed inputs")
        maps = r["maps"]                                           # (K or 1, C_sel, H, W)
        if not torch.isfinite(maps).all():
            raise WorkFailed(f"{path}: the map has NaN values", hint="check the model")
        if v["save_size"] == "image" and (h0, w0) != tuple(maps.shape[-2:]):
            k, c = maps.shape[:2]
            maps = torch.nn.functional.interpolate(maps.reshape(1, k * c, *maps.shape[-2:]), size=(h0, w0),
                                                   mode="bilinear", align_corners=False).reshape(k, c, h0, w0)
        arr = (maps[0] if method == "rise" else maps).numpy().astype(np.float32)
        stem = stem_of(path)
        npy = save_npy(out_dir / f"{stem}.{method}.npy", arr)
        ids = [int(i) for i in r["targets"]]
        classes = [{"id": i, "name": box.classes[i], "prob": float(pv)} for i, pv in zip(ids, r["probs"])]
        pngs = []
        if png:
            img = x[0] if v["save_size"] == "image" else fit_to_model(x, box)[0]
            img8 = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            for j, i in enumerate(ids):
                if method == "rise":
                    pngs.append(str(overlay_rise(out_dir / f"{stem}.c{i}.png", img8, arr[j])))
                else:
                    pngs.append(str(overlay_mcrise(out_dir / f"{stem}.c{i}.colors.png", img8, arr[:, j], v["colors"])))
        doc = {"input": str(path), "status": "ok", "method": method, "masks": v["masks"], "grid": v["grid"],
               "keep_prob": v["keep_prob"], "colors": v["colors"], "classes": classes, "softmax": r["softmax"],
               "shape": list(arr.shape), "outputs": {"npy": str(npy), "png": pngs}, "group": n_group,
               "seconds": round(share + time.perf_counter() - t0, 4)}
        write_json(out_dir / f"{stem}.json", doc)
        return {k: doc[k] for k in ("method", "classes", "outputs")} | {"output": str(npy)}

    opts = BatchOptions(out_dir=out_dir, skip_existing=skip_existing, overwrite=overwrite, fail_fast=fail_fast)
    return run_batch(paths, process, outputs_for=lambda p: _outputs(out_dir, stem_of(p), method), options=opts,
                     sink=sink, run_record=rec)


# ------------------------------------------------------------------------------------------------ evaluate

METRICS = ("deletion", "insertion", "pointing", "color-deletion")


def _find_map(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.mcrise.npy", f"{stem}.rise.npy", f"{stem}.npy"):
        if (folder / name).is_file():
            return folder / name
    return None


def _select(a: np.ndarray, cls: int, ids: list[int] | None, n_classes: int, path: Path) -> np.ndarray | None:
    """The map of class `cls`: [H, W] (or [K, H, W] for an MC-RISE [K, C, H, W] file); None if the file has none."""
    if a.ndim == 2:
        return a
    axis_c = a.shape[-3]
    pick = None
    if ids is not None:
        pick = ids.index(cls) if cls in ids else None
    elif axis_c == n_classes:
        pick = cls
    elif axis_c == 1:
        pick = 0
    if pick is None:
        return None
    return a[pick] if a.ndim == 3 else a[:, pick]


def evaluate_maps(inputs, *, from_dir=None, maps_dir=None, model=None, settings: dict, model_opts: dict, boxes=None,
                  curves=False, plot=None, sink=None) -> dict:
    """The `evaluate` verb (see `api.evaluate`)."""
    import json as _json

    from wisecli.cli.inputs import expand_inputs
    from wisecli.runtime.batch import stem_of
    from wisecli.runtime.device import as_device

    from . import metrics as M
    from .data import class_boxes, read_boxes, read_map
    from .model import load_model

    names = [m.strip() for m in str(settings["metrics"]).split(",") if m.strip()]
    bad = [m for m in names if m not in METRICS]
    if bad or not names:
        raise InputError(f"unknown metric(s) {', '.join(bad) or '(none)'}", hint="choose from " + ", ".join(METRICS))
    colors_run = None
    if from_dir is not None:
        from_dir = Path(from_dir)
        rj = from_dir / "run.json"
        if not rj.is_file():
            raise InputError(f"--from {from_dir}: no run.json", hint="give the -o folder of 'wise explain run'")
        try:
            cfg = _json.loads(rj.read_text())["config"]["values"]
        except (ValueError, KeyError, TypeError):
            raise InputError(f"{rj} is not the run.json of 'wise explain run'", hint="rerun 'wise explain run'") from None
        inputs = list(inputs) or _json.loads(rj.read_text()).get("inputs", [])
        maps_dir, model = from_dir, model or cfg.get("model")
        mo = dict(cfg.get("model_opts") or {})
        if mo.get("input_size"):
            mo["input_size"] = tuple(mo["input_size"])
        model_opts = mo
        colors_run = cfg.get("colors")
    elif maps_dir is None:
        raise InputError("evaluate needs --from OUT_DIR, or IMAGES with --maps DIR and --model M",
                         hint="e.g. wise explain evaluate --from sal/")
    paths = expand_inputs([str(i) for i in inputs], extensions=IMAGE_EXT)
    maps_dir = Path(maps_dir)
    if not maps_dir.is_dir():
        raise InputError(f"maps folder not found: {maps_dir}", hint="give the folder of <stem>.npy maps")
    if "pointing" in names and boxes is None:
        raise InputError("--metrics pointing needs --boxes", hint="VOC XML folder, COCO JSON or CSV image,x0,y0,x1,y1,class")
    step_s = str(settings["step"])
    if step_s != "auto" and not (step_s.isdigit() and int(step_s) >= 1):
        raise InputError(f"--step must be auto or a positive integer, got {step_s!r}", hint="e.g. --step auto")
    rank_by = str(settings["rank_by"])
    if rank_by != "total" and not (rank_by.startswith("color:") and rank_by[6:].isdigit()):
        raise InputError(f"--rank-by {rank_by!r}", hint="total or color:K (K from 0)")
    tol = float(settings["tolerance"])
    if not (np.isfinite(tol) and tol > 0):
        raise InputError(f"--tolerance must be positive, got {tol}", hint="e.g. --tolerance 15")
    if settings["baseline"] not in ("none", "random") or settings["softmax"] not in ("auto", "on", "off"):
        raise InputError("--baseline none|random and --softmax auto|on|off", hint="see --help")
    items = []
    for p in paths:     # every map, shape and box checked before any work
        mp = _find_map(maps_dir, stem_of(p))
        if mp is None:
            raise InputError(f"no map for {p} in {maps_dir}", hint="maps are <stem>[.rise|.mcrise].npy")
        a = read_map(mp)
        meta = maps_dir / f"{stem_of(p)}.json"
        ids, colors = None, colors_run
        if meta.is_file() and mp.name.endswith((".rise.npy", ".mcrise.npy")):
            try:
                m = _json.loads(meta.read_text())
                ids, colors = [int(c["id"]) for c in m["classes"]], m.get("colors") or colors
            except (ValueError, KeyError, TypeError):
                raise InputError(f"{meta} is not a record of 'wise explain run'", hint="rerun the run") from None
        items.append((p, mp, a, ids, colors))
    dev = as_device(settings["device"], sink=sink)
    box = load_model(model, device=dev, **model_opts)
    gt = read_boxes(boxes) if "pointing" in names else {}
    if "color-deletion" in names and not any(a.ndim == 4 for _, _, a, _, _ in items):
        raise InputError("--metrics color-deletion needs MC-RISE maps [K, C, H, W]", hint="run with --method mcrise")
    loaded = []
    for p, mp, a, ids, colors in items:
        if a.ndim >= 3 and ids is not None and a.shape[-3] != len(ids):
            raise InputError(f"map {mp} has {a.shape[-3]} classes, its record {len(ids)}", hint="keep maps and records together")
        x = read_image01(p)
        h0, w0 = x.shape[-2:]
        if tuple(a.shape[-2:]) not in (tuple(box.size), (h0, w0)):
            raise InputError(f"map {mp} is {a.shape[-2]}x{a.shape[-1]}; the model takes {box.size[0]}x{box.size[1]} "
                             f"and the image is {h0}x{w0}", hint="maps must be at the model's or the image's size")
        if a.ndim == 4 and rank_by != "total" and int(rank_by[6:]) >= a.shape[0]:
            raise InputError(f"--rank-by {rank_by}: the maps have {a.shape[0]} colours", hint="K counts from 0")
        cb = class_boxes(gt.get(stem_of(p), []), box.classes, h0, w0, stem_of(p), warn=getattr(sink, "warn", None)) \
            if gt else {}
        loaded.append((p, a, ids, colors, x, cb))

    fwd = _forward(box, amp=False)
    H, W = box.size
    step = M.auto_step(H, W) if step_s == "auto" else int(step_s)
    n_steps = (H * W + step - 1) // step
    rng = np.random.default_rng(int(settings["seed"]))
    records, rand_rows = [], []

    def to_model(m: np.ndarray) -> Tensor:
        t = torch.from_numpy(np.ascontiguousarray(m, dtype=np.float32)).to(dev)
        if tuple(t.shape[-2:]) != (H, W):
            lead = t.shape[:-2]
            t = torch.nn.functional.interpolate(t.reshape(1, -1, *t.shape[-2:]), size=(H, W), mode="bilinear",
                                                align_corners=False).reshape(*lead, H, W)
        return t

    with torch.inference_mode():
        for p, a, ids, colors, x, cb in loaded:
            xin = box.to_input(fit_to_model(x, box).to(dev))[0]
            clean = fwd(xin[None])
            use_sm = settings["softmax"] == "on" or (settings["softmax"] == "auto" and softmax_needed(clean))

            def prob_fn(z, _sm=use_sm):
                return scores_of(fwd(z), _sm)

            cls = int(prob_fn(xin[None]).argmax())
            rec = {"input": str(p), "class": cls, "class_name": box.classes[cls], "status": "ok"}
            sel = _select(a, cls, ids, len(box.classes), p)
            if sel is None and (a.ndim > 2):
                rec.update(status="error", error=f"the map has no class {cls} (the model's top-1)")
                records.append(rec)
                if sink is not None:
                    sink.record(rec)
                continue
            sm = to_model(sel)
            rank_map = (sm.abs().sum(0) if rank_by == "total" else sm[int(rank_by[6:])]) if a.ndim == 4 else sm
            di = [m for m in ("deletion", "insertion") if m in names]
            if di:
                cur = M.deletion_insertion(prob_fn, xin, rank_map, cls, step, which=di)
                for m in di:
                    rec[f"{m}_auc"] = M.auc(cur[m].cpu().numpy())
                    if curves or plot is not None:
                        rec[f"{m}_curve"] = cur[m].cpu().tolist()
                if settings["baseline"] == "random":
                    rr = {m: [] for m in di}
                    for s in range(3):
                        rc = M.deletion_insertion(prob_fn, xin, M.random_saliency((H, W), 1000 * s + len(records), dev),
                                                  cls, step, which=di)
                        for m in di:
                            rr[m].append(M.auc(rc[m].cpu().numpy()))
                    for m in di:
                        rec[f"{m}_auc_random"] = float(np.mean(rr[m]))
            if "pointing" in names:
                h0, w0 = x.shape[-2:]
                hits = []
                for c, bxs in sorted(cb.items()):
                    mc = _select(a, c, ids, len(box.classes), p)
                    if mc is None:
                        continue
                    mc = np.abs(mc).sum(0) if mc.ndim == 3 else mc
                    pt = M.max_point(mc, (h0, w0))
                    mask = M.box_mask(bxs, h0, w0)
                    hit = M.pointing_hit(pt, mask, tol)
                    rp = [M.pointing_hit((rng.integers(0, h0), rng.integers(0, w0)), mask, tol) for _ in range(3)]
                    hits.append({"class": box.classes[c], "hit": hit, "random": float(np.mean(rp))})
                rec["pointing"] = hits
                rec["pointing_hit"] = next((h["hit"] for h in hits if h["class"] == box.classes[cls]),
                                           hits[0]["hit"] if hits else None)
            if "color-deletion" in names and a.ndim == 4:
                cols = colors if colors is not None and len(colors) == a.shape[0] else None
                if cols is None:
                    rec["color_deletion_auc"] = None
                else:
                    cin = box.color_input(cols)
                    out = {}
                    for k, c in enumerate(cols):
                        cur = M.color_deletion(prob_fn, xin, sm[k], cin[k], cls, step)
                        rnd = [M.auc(M.color_deletion(prob_fn, xin, M.random_saliency((H, W), 7 + s, dev), cin[k],
                                                      cls, step).cpu().numpy()) for s in range(3)]
                        out["#%02x%02x%02x" % tuple(c)] = {"auc": M.auc(cur.cpu().numpy()), "random": float(np.mean(rnd))}
                    rec["color_deletion_auc"] = out
            records.append(rec)
            if sink is not None:
                sink.record(rec)
    summary = _summary(records)
    protocol = {"step": step, "n_steps": n_steps, "substrates": {"deletion": "zeros in input space (mean colour)",
                "insertion": "blur 11x11, sigma 5, zero padding 5, input space"}, "kernel": "gaussian_filter(impulse, 5)",
                "score": "softmax probability of the clean top-1 class" if settings["softmax"] != "off" else "raw output",
                "tie_rule": "stable, ties to the lower pixel index", "tolerance": tol, "n": len(records),
                "rank_by": rank_by, "model_size": [H, W]}
    if plot is not None:
        _plot_curves(plot, records, curves)
    return {"records": records, "summary": summary, "protocol": protocol}


def _summary(records: list[dict]) -> dict:
    from .metrics import bootstrap_ci, pointing_summary

    out = {}
    ok = [r for r in records if r["status"] == "ok"]
    for key in ("deletion_auc", "insertion_auc", "deletion_auc_random", "insertion_auc_random"):
        vals = [r[key] for r in ok if r.get(key) is not None]
        if vals:
            out[key] = {"mean": float(np.mean(vals)), "ci95": bootstrap_ci(vals), "n": len(vals)}
    pts = [(h["class"], h["hit"]) for r in ok for h in r.get("pointing") or []]
    if pts:
        ps = pointing_summary(pts)
        rnd = [h["random"] for r in ok for h in r.get("pointing") or []]
        out["pointing"] = {"mean": ps["overall"], "mean_per_class": ps["mean_per_class"],
                           "ci95": bootstrap_ci([float(h) for _, h in pts]), "n": ps["n"]}
        out["pointing_random"] = {"mean": float(np.mean(rnd)), "ci95": None, "n": len(rnd)}
    cd = [r["color_deletion_auc"] for r in ok if r.get("color_deletion_auc")]
    for col in (cd[0] if cd else {}):
        vals = [d[col]["auc"] for d in cd if col in d]
        out[f"color_deletion_auc {col}"] = {"mean": float(np.mean(vals)), "ci95": bootstrap_ci(vals), "n": len(vals)}
        rv = [d[col]["random"] for d in cd if col in d]
        out[f"color_deletion_auc_random {col}"] = {"mean": float(np.mean(rv)), "ci95": bootstrap_ci(rv), "n": len(rv)}
    return out


def _plot_curves(path, records, have_curves) -> None:
    from wisecli.runtime.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(1, 1, figsize=(5, 3.5))
    for key in ("deletion", "insertion"):
        cs = [r[f"{key}_curve"] for r in records if r.get(f"{key}_curve")]
        if cs:
            m = np.mean(np.asarray(cs, dtype=np.float64), 0)
            ax.plot(np.linspace(0, 1, len(m)), m, label=f"{key} (AUC {np.mean([r[key + '_auc'] for r in records if key + '_auc' in r]):.3f})")
    ax.set_xlabel("fraction of pixels changed")
    ax.set_ylabel("class probability")
    ax.legend()
    save_figure(fig, path)
