"""Our side of `wise classify benchmark` (spec §7), raced with `runtime.bench.race` against `peers.py`.

Cases: `optim` (100 timed LAMBC steps on the parameters of monai-resnet18 with random gradients, 10 warm-ups;
`quick`: small-cnn, 10 steps), against the plain per-tensor loop (and timm when installed); `radial` (one stacked
ring conv vs R separate convs; radial-cnn and dwsep-radial-cnn vs plain-cnn and ring-cnn forward+backward);
`ibnn` (one pass over B K S replicas of an implicit small-cnn vs K S passes). CPU numbers are not gated.
"""

from __future__ import annotations

import torch

from wisecli.runtime.bench import race
from wisecli.runtime.device import as_device
from wisecli.runtime.results import BenchRecord, BenchRecords

from . import peers


def _grads(model, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = (torch.randn(p.shape, generator=g) * 1e-3).to(p.device)
    return params


def optim_case(device, quick: bool) -> list:
    import copy

    from wisecli.nn.zoo import build
    from wisecli.optim import LAMBC

    arch, size, steps = ("small-cnn", 16, 10) if quick else ("monai-resnet18", 32, 100)
    model = build(arch, in_channels=3, num_classes=10, image_size=size).to(device)
    ours_p = _grads(model)
    peer_model = copy.deepcopy(model)
    peer_p = _grads(peer_model)
    ours = LAMBC(ours_p, lr=0.01, clip=1.0)
    ref = peers.reference_lambc(peer_p, lr=0.01, clip=1.0)

    def run(opt):
        def go():
            for _ in range(steps):
                opt.step()
        return go

    def check(_a, _b):
        err = max(float((a.detach() - b.detach()).abs().max()) for a, b in zip(ours_p, peer_p))
        return {"max_abs_diff_after": err, "tensors": len(ours_p), "params": sum(p.numel() for p in ours_p),
                "steps": steps}

    recs = [race(f"optim lambc foreach vs loop ({arch})", run(ours), run(ref), device=device,
                 peer_name="reference per-tensor loop (.item())", repeats=1 if quick else 3, warmup=1, check=check)]
    if not quick:  # (b): the same step compiled (optim.compile_step), against the same loop
        comp_p = _grads(copy.deepcopy(model))
        try:
            comp = LAMBC(comp_p, lr=0.01, clip=1.0, compile_step=True)
            recs.append(race(f"optim lambc compiled vs loop ({arch})", run(comp), run(ref), device=device,
                             peer_name="reference per-tensor loop (.item())", repeats=3, warmup=2))
        except Exception as exc:  # a compiler that cannot run here is reported, not fatal
            recs.append(BenchRecord(case=f"optim lambc compiled ({arch})", ours_s=float("nan"), peer_s=None,
                                    peer="-", device=str(device), extra={"error": f"{type(exc).__name__}: {exc}"[:200]}))
    t = peers.timm_lamb(_grads(copy.deepcopy(model)), 0.01)
    if t is not None:
        recs.append(race(f"optim lambc vs timm Lamb ({arch})", run(ours), run(t), device=device,
                         peer_name="timm Lamb(trust_clip)", repeats=1 if quick else 3, warmup=1))
    return recs


def ibnn_case(device, quick: bool) -> list:
    from wisecli.nn.zoo import build

    from .bayes import repeat_batch

    K, S, B, size = 4, 4, (16 if quick else 128), 16
    det = build("small-cnn", in_channels=1, num_classes=10, image_size=size).to(device).eval()
    imp = build("small-cnn", in_channels=1, num_classes=10, image_size=size, bayes="implicit",
                components=K).to(device).eval()
    x = torch.rand(B, 1, size, size, device=device)

    @torch.no_grad()
    def ours():
        return imp(repeat_batch(x, K * S))

    @torch.no_grad()
    def peer():
        return peers.looped_samples(imp, x, K * S)

    @torch.no_grad()
    def det_pass():
        return det(repeat_batch(x, K * S))

    rec = race(f"ibnn one pass over B*K*S={B * K * S} vs {K * S} passes", ours, peer, device=device,
               peer_name="K*S separate passes", repeats=3, warmup=1)
    rec2 = race("ibnn one pass vs deterministic pass (same replicas)", ours, det_pass, device=device,
                peer_name="deterministic small-cnn", repeats=3, warmup=1)
    rec2.extra["cost_ratio"] = rec2.ours_s / rec2.peer_s if rec2.peer_s else None
    return [rec, rec2]


def radial_case(device, quick: bool) -> list:
    from wisecli.nn.radial import RotatedRingConv2d
    from wisecli.nn.zoo import build

    B, C, size = (8, 16, 16) if quick else (128, 64, 32)
    layer = RotatedRingConv2d(C, C, 3).to(device)
    x = torch.randn(B, C, size, size, device=device)

    @torch.no_grad()
    def stacked():
        return layer(x)

    @torch.no_grad()
    def separate():
        return peers.separate_convs(layer, x)

    def agree(a, b):
        return {"max_abs_diff": float((a - b).abs().max())}

    recs = [race(f"ring conv: one stacked conv vs R=8 convs ({B}x{C}x{size}^2)", stacked, separate, device=device,
                 peer_name="R separate conv2d + max", repeats=3, warmup=1, check=agree)]
    nets = {a: build(a, in_channels=1, num_classes=10, image_size=size, width=0.25 if quick else 1.0).to(device)
            for a in ("plain-cnn", "radial-cnn", "ring-cnn", "dwsep-radial-cnn")}
    xb = torch.randn(B, 1, size, size, device=device)

    def train_step(net):
        def go():
            net.zero_grad(set_to_none=True)
            net(xb).sum().backward()
        return go

    for ours, peer in (("radial-cnn", "plain-cnn"), ("dwsep-radial-cnn", "ring-cnn")):
        rec = race(f"{ours} vs {peer} (forward+backward, batch {B}, {size}^2)", train_step(nets[ours]),
                   train_step(nets[peer]), device=device, peer_name=peer, repeats=3, warmup=1,
                   params_ours=sum(p.numel() for p in nets[ours].parameters()),
                   params_peer=sum(p.numel() for p in nets[peer].parameters()))
        recs.append(rec)
    return recs


def run(device, quick: bool = False, case: str = "all"):
    """All (or one `case` of) the races on `device`; a `BenchRecords` list."""
    from .data import cpu_threads

    device = as_device(device)
    recs = []
    with cpu_threads(device, 1 if quick else 0):  # the quick CPU preset is a smoke run: one thread, no contention
        if case in ("all", "optim"):
            recs += optim_case(device, quick)
        if case in ("all", "radial"):
            recs += radial_case(device, quick)
        if case in ("all", "ibnn"):
            recs += ibnn_case(device, quick)
    return BenchRecords(recs, summary={"device": str(device), "quick": quick, "case": case})
