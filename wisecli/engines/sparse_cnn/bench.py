"""Our side of the race (spec §7): the `gather` path against `dense` (the peer: the same net on every pixel),
one process, one device, random weights, smooth random importance fields (blurred noise, correlation length
16 px at full resolution). Counted MACs and measured latency are reported separately; a speed-up is only ever
the ratio of two latencies measured here. Each record carries density, saving_counted, saving_executed,
tile_occupancy and the max |gather - masked| of the outputs; the summary gives the break-even density of each
case (the highest measured density at which gather beat dense; 0 when it never did) and `break_even` (their
minimum over the network cases), which `predict --calibration` reads. The layer cases also race gather against
the SMSR-style sparse form (im2col columns of the active pixels times the weights, `peers.py`) below rho = 1.

Sizes: `quick` (CPU seconds): a 16-channel block at 32x32, resnet18 / 8 at 32x32, srresnet 4x16 x2 at LR 32x32;
`gpu` (the .ci preset): the four ResNet 3x3 layers at batch 64, srresnet x4 at LR 128x128 batch 8, densities
{1, 0.3, 0.1}; `full`: resnet18 at 224x224 batch 64, srresnet x4 at LR 256x256, densities {1, 0.7, 0.5, 0.3, 0.1}.
Networks have BN folded into the convs (both sides); on CUDA both sides run in bf16 autocast with
channels_last.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from wisecli.runtime.bench import race
from wisecli.runtime.results import BenchRecords

from .gating import Plan, Stats, gated_residual


def smooth_field(batch: int, h: int, w: int, corr: float, seed: int, device) -> torch.Tensor:
    """Blurred uniform noise scaled to [0, 1] per image: a smooth random importance map."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 1, h, w, generator=g).to(device)
    s = max(1.0, corr / 2)
    r = int(3 * s)
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, device=device, dtype=x.dtype) / s) ** 2)
    k = k / k.sum()
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    lo, hi = x.flatten(1).amin(1).view(-1, 1, 1, 1), x.flatten(1).amax(1).view(-1, 1, 1, 1)
    return (x - lo) / (hi - lo).clamp_min(1e-12)


def _ctx(device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class _Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(c)
        self.conv2 = torch.nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(c)

    def forward(self, x, plan, exec_, stats=None):
        return gated_residual(x, plan, exec_, self.conv1, lambda h: F.relu(self.bn1(h)), self.conv2, self.bn2,
                              F.relu, stats)


SIZES = {
    "quick": {"layers": [(16, 32, 4)], "resnet18": (0.125, 32, 4), "srresnet": (2, 16, 4, 32, 2),
              "densities": (1.0, 0.3, 0.1), "repeats": 3},
    "gpu": {"layers": [(64, 56, 64), (128, 28, 64), (256, 14, 64), (512, 7, 64)], "resnet18": None,
            "srresnet": (4, 64, 16, 128, 8), "densities": (1.0, 0.3, 0.1), "repeats": 10},
    "full": {"layers": [(64, 56, 64), (128, 28, 64), (256, 14, 64), (512, 7, 64)], "resnet18": (1.0, 224, 64),
             "srresnet": (4, 64, 16, 256, 8), "densities": (1.0, 0.7, 0.5, 0.3, 0.1), "repeats": 20},
}


def _race_net(name, net, x, P, rho, device, reps, tile=8):
    if device.type == "cuda" and isinstance(net, torch.nn.Module):
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    kw = {"rule": "regional", "tile": tile, "importance": P}
    st_g, st_m = Stats(x.shape[0], device), Stats(x.shape[0], device)
    with torch.no_grad(), _ctx(device):
        ref = net(x, rho, exec_="masked", stats=st_m, **kw)
        out = net(x, rho, exec_="gather", stats=st_g, **kw)
        err = float((out.float() - ref.float()).abs().max())
        ours = lambda: net(x, rho, exec_="gather", **kw)  # noqa: E731
        peer = lambda: net(x, rho, exec_="dense", **kw)  # noqa: E731
        d = st_g.as_dict()
        rec = race(name, ours, peer, device=device, peer_name="dense", repeats=reps, warmup=2,
                   density=rho, tile=tile, saving_counted=float(1 - d["macs_counted"].sum() / d["macs_dense"].sum()),
                   saving_executed=float(1 - d["macs_executed"].sum() / d["macs_dense"].sum()),
                   tile_occupancy=float(d["tile_occupancy"].mean()), max_err_vs_masked=err,
                   dtype="bfloat16" if device.type == "cuda" else "float32", batch=int(x.shape[0]),
                   size=list(x.shape[-2:]))
    return rec


def _race_unfold(name, blk, x, plan, rho, device, reps):
    """gather against the SMSR-style im2col GEMM over the active pixels (peers.py), same block and mask."""
    from .peers import unfold_gemm_block

    def peer():
        return unfold_gemm_block(x, plan.mask, blk.conv1, lambda h: F.relu(blk.bn1(h)), blk.conv2, blk.bn2, F.relu)

    with torch.no_grad(), _ctx(device):
        err = float((blk(x, plan, "gather").float() - peer().float()).abs().max())
        return race(name, lambda: blk(x, plan, "gather"), peer, device=device, peer_name="unfold-GEMM (SMSR)",
                    repeats=reps, warmup=2, density=rho, max_err_vs_peer=err,
                    dtype="bfloat16" if device.type == "cuda" else "float32", batch=int(x.shape[0]),
                    size=list(x.shape[-2:]))


def run(device, size: str, case: str) -> BenchRecords:
    from wisecli.runtime.device import as_device, device_name, one_cpu_thread

    from .model import SparseResNet18, fold_bn
    from .sr import SRResNet

    dev = as_device(device)
    cfg = SIZES[size]
    reps = cfg["repeats"]
    records = []
    torch.manual_seed(0)
    with one_cpu_thread(dev, enabled=size == "quick"):
        if case in ("all", "layers"):
            for c, hw, b in cfg["layers"]:
                blk = _Block(c).to(dev).eval()
                x = torch.relu(torch.randn(b, c, hw, hw, device=dev))
                P = smooth_field(b, hw, hw, 16 * hw / 56, 0, dev)
                if dev.type == "cuda":
                    blk, x = blk.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
                for rho in cfg["densities"]:
                    plan = Plan.build(P, rho, "regional", 8, 1.5, False)
                    records.append(_race_net(f"layer {c}@{hw}", lambda x_, r, exec_, stats=None, **k:
                                             blk(x_, plan, exec_, stats), x, P, rho, dev, reps))
                    if rho < 1.0:
                        records.append(_race_unfold(f"layer {c}@{hw} vs unfold-GEMM", blk, x, plan, rho, dev, reps))
        if case in ("all", "resnet18") and cfg["resnet18"] is not None:
            w, hw, b = cfg["resnet18"]
            net = fold_bn(SparseResNet18(3, 1000 if hw > 64 else 10, hw, width=w).eval()).to(dev)
            x = torch.randn(b, 3, hw, hw, device=dev)
            s1 = hw if hw <= 64 else hw // 4
            P = smooth_field(b, s1, s1, 16 * s1 / 56, 1, dev)
            for rho in cfg["densities"]:
                records.append(_race_net(f"resnet18 {hw}", net, x, P, rho, dev, reps))
        if case in ("all", "srresnet") and cfg["srresnet"] is not None:
            s, c, nb, hw, b = cfg["srresnet"]
            net = SRResNet(s, c, nb).random_tail().to(dev).eval()
            x = torch.rand(b, 3, hw, hw, device=dev)
            P = smooth_field(b, hw, hw, 16, 2, dev)
            for rho in cfg["densities"]:
                records.append(_race_net(f"srresnet x{s} {hw}", net, x, P, rho, dev, reps))
    cases: dict[str, float] = {}
    for r in records:
        if r.peer != "dense":
            continue
        best = cases.setdefault(r.case, 0.0)
        if r.speedup is not None and r.speedup > 1 and r.extra["density"] > best:
            cases[r.case] = r.extra["density"]
    nets = [v for k, v in cases.items() if not k.startswith("layer")] or list(cases.values()) or [0.0]
    return BenchRecords(records, summary={"device": device_name(dev), "size": size, "break_even_by_case": cases,
                                          "break_even": min(nets), "peer": "dense (same net, every pixel)"})
