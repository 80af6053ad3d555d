"""Our side of `wise fas benchmark` (spec §7): the folded CDCN raced against the reference style (`peers.py`) in one
process with `runtime.bench.race`.

Ours: one folded 3×3 convolution per CDC layer (weights cached at inference), `channels_last`, bf16 autocast and
`cudnn.benchmark` on CUDA, the CDL kernels a registered buffer. Both sides train with the pyramid loss on the depth
base (so CDL is part of the step) and Adam. The training step is timed one step at a time (`race` repeats it), so
no training loop (`runtime.trainer.fit_in_memory`) is involved.

Before timing, folded and two-conv fp32 outputs are compared (`max_abs_diff`, agreement at rtol 1e-4).
Presets: `quick` (CPU, seconds): width ×0.25, 64² input, 16² map, inference batch 16, training batch 8;
full (the GPU check): width 1, 256² input, 32² map, inference batch 64, training batch 32 (spec §7), plus the
end-to-end `predict` rate on generated videos (decode and Haar detection included; `e2e=False` leaves it out).
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import numpy as np
import torch

from wisecli.engines.fas.model import CDCN
from wisecli.engines.fas.peers import reference_model, reference_pyramid_depth_loss


def run(base_config: dict, *, device="auto", quick: bool = True, iters: int | None = None, compile: bool = False,
        amp: bool = True, e2e: bool = True):
    """Race ours against the reference style; returns `runtime.results.BenchRecords` whose `summary` is the spec's
    JSON document (device, preset, shape, reference, ours, ratios, max_abs_diff, targets, predict_videos_per_s).
    `base_config` is the `train` defaults table (for the end-to-end predict model)."""
    from wisecli.engines.fas.loss import FASLoss
    from wisecli.runtime.bench import race
    from wisecli.runtime.device import as_device, autocast, device_name
    from wisecli.runtime.results import BenchRecords

    dev = as_device(device)
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

    peer = "reference-style CDCN (two convs per CDC layer, fp32, NCHW)"
    inf = race(f"inference b{b_inf} {size}px", inf_ours, inf_ref, device=dev, peer_name=peer, repeats=iters,
               warmup=warm)
    inf.extra.update(ours_faces_per_s=b_inf / inf.ours_s, peer_faces_per_s=b_inf / inf.peer_s)

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

    tr = race(f"train step b{b_tr} {size}px pyramid", step_ours, step_ref, device=dev, peer_name=peer,
              repeats=iters, warmup=warm)
    name = device_name(dev)
    amp_on = bool(amp and dev.type == "cuda")
    summary = {"device": name, "preset": "quick" if quick else "full",
               "shape": {"input": size, "map": msize, "width": width, "batch_infer": b_inf, "batch_train": b_tr},
               "reference": {"faces_per_s": b_inf / inf.peer_s, "train_step_ms": 1e3 * tr.peer_s, "precision": "fp32"},
               "ours": {"faces_per_s": b_inf / inf.ours_s, "train_step_ms": 1e3 * tr.ours_s,
                        "precision": "bf16 autocast" if amp_on else "fp32", "compile": compile},
               "ratios": {"inference": inf.speedup, "train_step": tr.speedup},
               "max_abs_diff": max_abs, "outputs_agree_rtol_1e-4": agree,
               "targets": {"inference": 2.0, "train_step": 1.7, "faces_per_s_h100_bf16": 1500}}
    records = [inf, tr]
    if e2e:
        rec = _predict_rate(base_config, dev, quick, width, size, msize)
        summary["predict_videos_per_s"] = rec.extra["videos_per_s"]
        records.append(rec)
    return BenchRecords(records, summary)


def _predict_rate(base_config: dict, dev, quick: bool, width: float, size: int, msize: int):
    """The record of `predict_samples` on generated clips of the astronaut face (decode, Haar, crop, network,
    aggregation): seconds per video, and videos per second in `extra`."""
    import cv2
    from skimage import data

    from wisecli.engines.fas.data import Sample
    from wisecli.engines.fas.model import build_model
    from wisecli.engines.fas.predict import predict_samples
    from wisecli.runtime.bench import race
    from wisecli.runtime.checkpoints import save_checkpoint

    n_vid, n_frames, hw = (3, 8, (256, 256)) if quick else (32, 24, (480, 640))
    img = cv2.cvtColor(cv2.resize(data.astronaut(), (hw[1], hw[1]))[: hw[0]], cv2.COLOR_RGB2BGR)
    with tempfile.TemporaryDirectory(prefix="wise_fas_bench_") as tmp:
        tmp = Path(tmp)
        cfg = {**base_config, "width": width, "input_size": size, "map_size": msize,
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
        list(predict_samples(samples[:1], ckpt, device=dev, frames=8))  # warm-up
        out: dict = {}

        def ours():
            out["recs"] = list(predict_samples(samples, ckpt, device=dev, frames=8, batch_size=128, workers=4))

        rec = race("predict end-to-end (s per video, decode + Haar)", ours, None, device=dev, peer_name="-",
                   repeats=1, warmup=0)
    if not all(r["status"] == "ok" for r in out["recs"]):
        from wisecli.cli.errors import WorkFailed

        raise WorkFailed("the end-to-end predict benchmark found no face in a generated clip",
                         hint="check the OpenCV install (wise fas info); --no-e2e leaves this case out")
    rec.ours_s = rec.ours_s / len(samples)
    rec.extra["videos_per_s"] = 1.0 / rec.ours_s
    return rec
