"""Our side of `wise explain benchmark` (spec §7): device masks (two matmuls a chunk, never stored), composition and
accumulation in one pass per chunk, several images a batch, bf16 on CUDA; raced against `peers.loop_*` with
`runtime.bench.race`, one process, one device. When `xaitk-saliency` is importable (not a dependency: `pip install
xaitk-saliency`, which pulls smqtk-*) its `MCRISEStack` is raced too (`peers.xaitk_mcrise`, one image, q = 0.5 where
its weighting is right); otherwise the summary says so and the loop peer (our transcription of the public per-mask
pattern) stands in.

Cases: `masks` (mask generation alone, masks/s), `rise` and `mcrise` (end to end: N masks for the images; the loop
peer explains 2 of them, its time scaled to all), and the correctness line of §9 test 4 (a constant black box at
q = 0.7: our mean |S| against the offset of the faulty weighting, c(1−2q)/(q(1−q))). The bf16 maps' Pearson
correlation with fp32 maps is recorded on CUDA. `small`: MONAI resnet18 at 64², N = 500, 2 images; `full`: MONAI
resnet50 at 224², N = 4000, K = 3, 8 images (the CPU default is small); `--quick` without `--size` is a smoke
run (wisecli's small-cnn at 32², N = 32, 1 image; importing MONAI alone takes seconds) that checks the race runs, not its speed.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from wisecli.runtime.results import BenchRecords


def _model(arch: str, size: int, device):
    torch.manual_seed(0)
    if arch == "small-cnn":
        from wisecli.nn.zoo import build

        return build("small-cnn", in_channels=3, num_classes=10, image_size=size).eval().to(device)
    from monai.networks.nets import resnet18, resnet50

    make = resnet18 if arch == "resnet18" else resnet50
    net = make(spatial_dims=2, n_input_channels=3, num_classes=1000).eval().to(device)
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    return net


def _constant_line(device, n: int = 4000) -> dict:
    from .algorithm import MaskGenerator, MaskSpec, estimate

    q, c, K = 0.7, 0.4, 3
    spec = MaskSpec(h=32, w=32, grid=7, keep=q, n=n, colors=K, seed=0)
    masks = list(MaskGenerator(spec, device))

    def const(x):
        return torch.full((x.shape[0], 2), c, device=x.device)

    est = estimate(const, torch.rand(1, 3, 32, 32, device=device), torch.tensor([[0]], device=device), spec,
                   colors=torch.eye(3, device=device), softmax=False, batch=n, masks=masks)
    acc = sum(c * m.double().sum(0) for m in masks)
    faulty = acc[1:] * (K / (q * spec.n)) - acc[:1] * (1 / ((1 - q) * spec.n))
    return {"q": q, "c": c, "ours_mean_abs_S": float(est.maps.abs().mean()),
            "faulty_mean_S": float(faulty.mean()), "faulty_expected": c * (1 - 2 * q) / (q * (1 - q))}


def run(device="auto", *, quick: bool = False, size: str | None = None) -> BenchRecords:
    from wisecli.runtime.bench import race
    from wisecli.runtime.device import as_device, device_name

    from .algorithm import MaskGenerator, MaskSpec
    from .model import from_module
    from .peers import loop_masks, loop_saliency, xaitk_available, xaitk_mcrise
    from .predict import explain_images

    dev = as_device(device)
    size = size or ("tiny" if quick else "small" if dev.type != "cuda" else "full")
    arch, hw, n, n_img, n_peer = {"tiny": ("small-cnn", 32, 32, 1, 1), "small": ("resnet18", 64, 500, 2, 1),
                                  "full": ("resnet50", 224, 4000, 8, 2)}[size]
    colors = [[255, 0, 0], [0, 255, 0], [0, 0, 255]]
    net = _model(arch, hw, dev)
    box = from_module(net, channels=3, size=(hw, hw), device=dev)
    g = torch.Generator().manual_seed(0)
    x01 = torch.rand(n_img, 3, hw, hw, generator=g).to(dev)
    records = BenchRecords(summary={"size": size, "arch": f"{arch} (random weights)",
                                    "input": hw, "masks": n, "images": n_img, "peer_images": n_peer,
                                    "device": device_name(dev)})

    spec = MaskSpec(h=hw, w=hw, grid=7, keep=0.5, n=n, colors=3, seed=0)
    n_const = 256 if size == "tiny" else 4000

    def ours_masks():
        gen = MaskGenerator(spec, dev)
        last = None
        for m in gen:
            last = m
        return last

    rec = race("mask generation (K=3)", ours_masks, lambda: loop_masks(n, hw, hw, 7, 0.5, 3), device=dev,
               peer_name="skimage loop", repeats=2, warmup=1, peer_repeats=1, peer_warmup=0)
    rec.extra["ours_masks_per_s"] = n / rec.ours_s
    rec.extra["peer_masks_per_s"] = n / rec.peer_s
    records.append(rec)

    for method in ("rise", "mcrise"):
        kw = dict(method=method, masks=n, grid=7, keep_prob=0.5, colors=colors if method == "mcrise" else None,
                  amp=True, seed=0)

        def ours():
            return explain_images(box, x01, **kw)["maps"]

        cin = box.color_input(colors) if method == "mcrise" else None

        def peer():
            t0 = time.perf_counter()
            for i in range(n_peer):
                m = loop_masks(n, hw, hw, 7, 0.5, 3 if method == "mcrise" else 0, seed=i)
                loop_saliency(net, box.to_input(x01[i:i + 1])[0], m, 0.5, cin)
            return time.perf_counter() - t0

        r = race(f"{method} end to end, {n_img} images", ours, peer, device=dev, peer_name="per-mask loop (fp32, batch 100)",
                 repeats=1, warmup=1, peer_repeats=1, peer_warmup=0)
        if r.peer_s is not None:
            r.peer_s = r.peer_s * n_img / n_peer          # the loop explained n_peer images: scaled to all
        r.extra.update(ours_masks_per_s=n * n_img / r.ours_s, s_per_image=r.ours_s / n_img,
                       peer_scaled_from=n_peer)
        if dev.type == "cuda":
            fp32 = explain_images(box, x01[:1], **dict(kw, amp=False))["maps"].flatten()
            bf16 = explain_images(box, x01[:1], **kw)["maps"].flatten()
            r.extra["pearson_bf16_fp32"] = float(np.corrcoef(fp32.numpy(), bf16.numpy())[0, 1])
        if dev.type == "cuda":
            r.extra["peak_memory_gb"] = torch.cuda.max_memory_allocated(dev) / 1e9
        records.append(r)
    if size == "tiny":
        records.summary["xaitk"] = "not raced in the --quick smoke run"
    elif xaitk_available():
        kw = dict(method="mcrise", masks=n, grid=7, keep_prob=0.5, colors=colors, amp=True, seed=0)

        def ours_one():
            return explain_images(box, x01[:1], **kw)["maps"]

        def xaitk_peer():
            return xaitk_mcrise(box, x01[0], n, 7, 0.5, colors)

        r = race("mcrise end to end, 1 image, vs xaitk", ours_one, xaitk_peer, device=dev,
                 peer_name="xaitk-saliency MCRISEStack (numpy, CPU masks)", repeats=1, warmup=1, peer_repeats=1,
                 peer_warmup=0)
        records.append(r)
        records.summary["xaitk"] = "raced (MCRISEStack, p1 = q = 0.5 where its weighting is right)"
    else:
        records.summary["xaitk"] = "not installed (pip install xaitk-saliency to race it); the loop peer stands in"
    records.summary["correctness_constant_box"] = _constant_line(dev, n_const)
    return records
