"""`wise fas benchmark`: the folded CDCN against a reference-style CDCN in one process (spec §7).

Peer ("reference style", written from the spec's description, not copied): the same weights, every CDC layer as
two convolutions (conv3×3 − θ·conv1×1 with ΣW), fp32, NCHW, and for training the contrastive depth kernels rebuilt
from NumPy and copied to the device at every step. Ours: one folded 3×3 convolution per CDC layer (weights cached
at inference), `channels_last`, bf16 autocast and `cudnn.benchmark` on CUDA, the CDL kernels a registered buffer.
Both train with the pyramid loss on the depth base (so CDL is part of the step) and Adam.

Before timing, folded and two-conv fp32 outputs are compared (`max_abs_diff`, agreement at rtol 1e-4).
Presets: `quick` (CPU, seconds): width ×0.25, 64² input, 16² map, inference batch 16, training batch 8;
full (the GPU check): width 1, 256² input, 32² map, inference batch 64, training batch 32 (spec §7), plus the
end-to-end `predict` rate on generated videos (decode and Haar detection included).
"""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wisecli.engines.fas.model import CDCN, CDConv2d, cdc_two_conv


class TwoConvCDC(nn.Module):
    """The peer's CDC layer: two convolutions per forward pass."""

    def __init__(self, src: CDConv2d):
        super().__init__()
        self.weight, self.theta, self.stride = src.weight, src.theta, src.stride

    def forward(self, x):
        return cdc_two_conv(x, self.weight, self.theta, self.stride)


def reference_model(model: nn.Module) -> nn.Module:
    """A deep copy of `model` whose CDC layers run as two convolutions."""
    ref = copy.deepcopy(model)
    for name, mod in list(ref.named_modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, CDConv2d):
                setattr(mod, child_name, TwoConvCDC(child))
    return ref


def reference_pyramid_depth_loss(pred, target, scales, device):
    """The peer's loss: per-level MSE, CDL at the finest level with kernels rebuilt from NumPy every call."""
    k = np.zeros((8, 1, 3, 3), np.float32)
    n = 0
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == 0 and dx == 0:
                continue
            k[n, 0, 1 + dy, 1 + dx], k[n, 0, 1, 1] = 1.0, -1.0
            n += 1
    kt = torch.from_numpy(k).to(device)
    finest = max(scales)
    total = 0.0
    for s in scales:
        kk = pred.shape[-1] // s
        p = F.avg_pool2d(pred, kk) if kk > 1 else pred
        g = F.avg_pool2d(target, kk) if kk > 1 else target
        t = F.mse_loss(p, g)
        if s == finest:
            t = t + F.mse_loss(F.conv2d(p, kt), F.conv2d(g, kt))
        total = total + t
    return total / len(scales)


def run(device: str = "auto", quick: bool = True, *, iters: int | None = None, compile: bool = False,
        amp: bool = True, e2e: bool = True) -> dict:
    """Race ours against the reference style; returns the spec's JSON document with `records`."""
    from wisecli.engines.fas.loss import FASLoss
    from wisecli.runtime.device import autocast, device_name, resolve_device, timed

    dev = resolve_device(device)
    if quick:
        width, size, msize, b_inf, b_tr, iters, warm = 0.25, 64, 16, 16, 8, iters or 3, 1
    else:
        width, size, msize, b_inf, b_tr, iters, warm = 1.0, 256, 32, 64, 32, iters or 20, 3
    scales = [s for s in (32, 16, 8, 4, 2, 1) if s <= msize and msize % s == 0]
    torch.manual_seed(0)
    base = CDCN(width=width, map_size=msize, depth_relu=True).to(dev).eval()
    ref = reference_model(base).to(dev).eval()
    x = torch.randn(b_inf, 3, size, size, device=dev)
    with torch.no_grad():
        a, b = base(x)["map"], ref(x)["map"]
    max_abs = float((a - b).abs().max())
    agree = bool(torch.allclose(a, b, rtol=1e-4, atol=1e-5 * max(1.0, float(b.abs().max()))))

    ours = copy.deepcopy(base)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        ours = ours.to(memory_format=torch.channels_last)
    run_ours = torch.compile(ours) if compile else ours
    xo = x.contiguous(memory_format=torch.channels_last) if dev.type == "cuda" else x

    def inf_ours():
        with torch.no_grad(), autocast(dev, amp):
            run_ours(xo)

    def inf_ref():
        with torch.no_grad():
            ref(x)

    t_inf_ours = timed(inf_ours, dev, iters, warm)[1]
    t_inf_ref = timed(inf_ref, dev, iters, warm)[1]

    xt = torch.randn(b_tr, 3, size, size, device=dev)
    tgt = torch.rand(b_tr, 1, msize, msize, device=dev)
    ours_tr, ref_tr = copy.deepcopy(ours).train(), reference_model(base).train()
    loss_fn = FASLoss("pyramid", map_size=msize, pyramid_base="depth-map", scales=scales).to(dev)
    opt_o = torch.optim.Adam(ours_tr.parameters(), 1e-4)
    opt_r = torch.optim.Adam(ref_tr.parameters(), 1e-4)
    xto = xt.contiguous(memory_format=torch.channels_last) if dev.type == "cuda" else xt
    ones = torch.ones(b_tr, device=dev)
    run_tr = torch.compile(ours_tr) if compile else ours_tr

    def step_ours():
        opt_o.zero_grad(set_to_none=True)
        with autocast(dev, amp):
            loss, _ = loss_fn(run_tr(xto), ones, tgt)
        loss.backward()
        opt_o.step()

    def step_ref():
        opt_r.zero_grad(set_to_none=True)
        loss = reference_pyramid_depth_loss(ref_tr(xt)["map"], tgt, scales, dev)
        loss.backward()
        opt_r.step()

    t_tr_ours = timed(step_ours, dev, iters, warm)[1]
    t_tr_ref = timed(step_ref, dev, iters, warm)[1]
    name = device_name(dev)
    amp_on = bool(amp and dev.type == "cuda")
    doc = {"device": name, "preset": "quick" if quick else "full",
           "shape": {"input": size, "map": msize, "width": width, "batch_infer": b_inf, "batch_train": b_tr},
           "reference": {"faces_per_s": b_inf / t_inf_ref, "train_step_ms": 1e3 * t_tr_ref, "precision": "fp32"},
           "ours": {"faces_per_s": b_inf / t_inf_ours, "train_step_ms": 1e3 * t_tr_ours,
                    "precision": "bf16 autocast" if amp_on else "fp32", "compile": compile},
           "ratios": {"inference": t_inf_ref / t_inf_ours, "train_step": t_tr_ref / t_tr_ours},
           "max_abs_diff": max_abs, "outputs_agree_rtol_1e-4": agree,
           "targets": {"inference": 2.0, "train_step": 1.7, "faces_per_s_h100_bf16": 1500}}
    records = [
        {"case": f"inference b{b_inf} {size}px", "ours_s": t_inf_ours, "peer_s": t_inf_ref,
         "speedup": t_inf_ref / t_inf_ours, "device": name, "ours_faces_per_s": b_inf / t_inf_ours},
        {"case": f"train step b{b_tr} {size}px pyramid", "ours_s": t_tr_ours, "peer_s": t_tr_ref,
         "speedup": t_tr_ref / t_tr_ours, "device": name},
    ]
    if e2e:
        rate = _predict_rate(dev, quick, width, size, msize)
        doc["predict_videos_per_s"] = rate
        records.append({"case": "predict end-to-end (videos/s, decode + Haar)", "ours_s": 1.0 / rate,
                        "peer_s": None, "speedup": None, "device": name, "videos_per_s": rate})
    doc["records"] = records
    return doc


def _predict_rate(dev, quick: bool, width: float, size: int, msize: int) -> float:
    """Videos per second of `predict_samples` on generated clips of the astronaut face (decode, Haar, crop,
    network, aggregation)."""
    import cv2
    from skimage import data

    from wisecli.engines.fas.api import DEFAULTS, predict_samples
    from wisecli.engines.fas.data import Sample
    from wisecli.engines.fas.model import build_model
    from wisecli.runtime.checkpoints import save_checkpoint

    n_vid, n_frames, hw = (3, 8, (256, 256)) if quick else (32, 24, (480, 640))
    img = cv2.cvtColor(cv2.resize(data.astronaut(), (hw[1], hw[1]))[: hw[0]], cv2.COLOR_RGB2BGR)
    with tempfile.TemporaryDirectory(prefix="wise_fas_bench_") as tmp:
        tmp = Path(tmp)
        cfg = {**DEFAULTS, "width": width, "input_size": size, "map_size": msize,
               "pyramid_scales": ",".join(str(s) for s in (32, 16, 8, 4, 2, 1) if s <= msize and msize % s == 0)}
        cfg["target_kind"] = "mask"
        model = build_model(cfg)
        ckpt = save_checkpoint(tmp / "bench.pt", method="fas", arch="cdcn", config=cfg, state_dict=model.state_dict(),
                               threshold=0.5)
        samples = []
        for v in range(n_vid):
            p = tmp / f"v{v}.avi"
            w = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"MJPG"), 25, (hw[1], hw[0]))
            for f in range(n_frames):
                w.write(np.roll(img, f, axis=1))
            w.release()
            samples.append(Sample(str(p), 1, None, f"s{v}", "test", "video"))
        list(predict_samples(samples[:1], ckpt, device=str(dev), frames=8))  # warm-up
        t = time.perf_counter()
        recs = list(predict_samples(samples, ckpt, device=str(dev), frames=8, batch_size=128, workers=4))
        dt = time.perf_counter() - t
    assert all(r["status"] == "ok" for r in recs)
    return len(samples) / dt
