"""`wise reid benchmark`: our torch evaluation, re-ranking and embedding raced against their peers in one
process, on one device (spec §7).

1. eval: VeRi-sized synthetic features (Q 1,678, G 11,579, D 2,048, 200 ids, 20 cameras; clustered Gaussians with
   N(0, 1) centres and sigma = 3.6 per dimension) - ours from host features (transfer included) against the
   per-query numpy loop of `peers` (and torchreid's `evaluate_rank` when importable); on one distance
   matrix the metrics must agree to 1e-6 (from features, the two GEMMs may order near-ties differently: that
   difference is reported as `feature_path_max_diff`).
2. rerank: ours against the dense numpy reference on the same features: mAP within 1e-3, top-1 identical for
   >= 99 % of queries.
3. embed (CUDA only): R50+VCAM at 256^2, batch 256: bf16 autocast + channels_last against fp32 (TF32); mean
   cosine between the two, and the viewpoint head's share of the embedding time.
`quick` shrinks everything to seconds on CPU (Q 200, G 1,500, D 256; re-ranking on Q 60, G 440). Ours is the median
of 3 runs after a warm-up; the peers are timed 3 times on `quick`, once at the full sizes (minutes of numpy).
Each case is one `runtime.bench.race()`; its agreement figures come from the race's `check`.
"""

from __future__ import annotations

import numpy as np
import torch

from wisecli.runtime.bench import race
from wisecli.runtime.device import timed
from wisecli.runtime.results import BenchRecord, BenchRecords

FULL = {"Q": 1678, "G": 11579, "D": 2048, "ids": 200, "cams": 20, "sigma": 3.6, "rq": 1678, "rg": 11579}
QUICK = {"Q": 200, "G": 1500, "D": 256, "ids": 60, "cams": 20, "sigma": 2.5, "rq": 60, "rg": 440}


def make_features(Q, G, D, ids, cams, sigma, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(ids, D)).astype(np.float32)
    qi = rng.integers(0, ids, Q)
    gi = np.concatenate([np.arange(ids), rng.integers(0, ids, G - ids)])
    qf = centres[qi] + sigma * rng.normal(size=(Q, D)).astype(np.float32)
    gf = centres[gi] + sigma * rng.normal(size=(G, D)).astype(np.float32)
    return qf, gf, qi, gi, rng.integers(0, cams, Q), rng.integers(0, cams, G)


def bench_eval(p, device) -> BenchRecord:
    """Our vectorised evaluation from host features against the per-query numpy loop of `peers`."""
    from . import peers as ref
    from .metrics import evaluate_ranking

    qf, gf, qi, gi, qc, gc = make_features(p["Q"], p["G"], p["D"], p["ids"], p["cams"], p["sigma"])

    def ours():
        return evaluate_ranking(qi, gi, qc, gc, qf=torch.from_numpy(qf), gf=torch.from_numpy(gf), device=device)

    def check(got, want):
        dist = ref.cosine_distance(qf, gf)
        # agreement of the ranking code on one distance matrix (the two GEMMs may order near-ties differently)
        same = evaluate_ranking(qi, gi, qc, gc, distmat=torch.from_numpy(dist), device=device)
        keys = ("mAP_standard", "mAP_official", "mINP")
        diff = max(abs(same[k] - want[k]) for k in keys)
        cmc_diff = float(np.max(np.abs(np.array(same["cmc"]) - np.array(want["cmc"]))))
        out = {"mAP": got["mAP_standard"], "max_metric_diff": diff, "max_cmc_diff": cmc_diff,
               "feature_path_max_diff": max(abs(got[k] - want[k]) for k in keys),
               "agree": diff <= 1e-6 and cmc_diff <= 1e-9}
        try:
            from torchreid.metrics import evaluate_rank  # optional peer

            _, out["torchreid_s"] = timed(lambda: evaluate_rank(dist, qi, gi, qc, gc, max_rank=50,
                                                                use_metric_cuhk03=False, use_cython=False),
                                          torch.device("cpu"))
        except ImportError:
            out["torchreid_s"] = None
        return out

    quick = p is QUICK
    return race(f"eval Q{p['Q']} G{p['G']} D{p['D']}", ours,
                lambda: ref.evaluate(ref.cosine_distance(qf, gf), qi, gi, qc, gc), device=device,
                peer_name="numpy per-query loop (peers.py)", peer_repeats=3 if quick else 1,
                peer_warmup=0, check=check)


def bench_rerank(p, device) -> BenchRecord:
    """Our sparse k-reciprocal re-ranking against the dense numpy reference of `peers`."""
    from . import peers as ref
    from .metrics import evaluate_ranking
    from .rerank import re_ranking

    qf, gf, qi, gi, qc, gc = make_features(p["rq"], p["rg"], p["D"], p["ids"], p["cams"], p["sigma"], seed=1)
    qn = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)

    def ours():
        return re_ranking(torch.from_numpy(qn).to(device), torch.from_numpy(gn).to(device)).cpu()

    def check(d_ours, d_ref):
        m_ours = evaluate_ranking(qi, gi, qc, gc, distmat=d_ours, device=device)["mAP_standard"]
        m_ref = evaluate_ranking(qi, gi, qc, gc, distmat=torch.from_numpy(d_ref), device=device)["mAP_standard"]
        top1 = float((d_ours.argmin(1).numpy() == d_ref.argmin(1)).mean())
        return {"mAP_ours": m_ours, "mAP_peer": m_ref, "max_abs_dist_diff": float(np.abs(d_ours.numpy() - d_ref).max()),
                "top1_identical": top1, "agree": abs(m_ours - m_ref) <= 1e-3 and top1 >= 0.99}

    quick = p is QUICK
    return race(f"rerank N{p['rq'] + p['rg']}", ours, lambda: ref.re_ranking(qn, gn), device=device,
                peer_name="numpy dense (peers.py)", peer_repeats=3 if quick else 1, peer_warmup=0, check=check)


def bench_embed(device, quick) -> BenchRecord:
    """bf16 autocast + channels_last against fp32 (TF32) embedding of R50+VCAM (CUDA only)."""
    from wisecli.runtime.device import autocast

    from .data import normalise
    from .model import ReIDNet

    n, size, arch, bs = (64, 128, "resnet50", 32) if quick else (1024, 256, "resnet50", 256)
    model = ReIDNet(576, arch=arch).to(device).eval()
    x = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, device=device)

    @torch.no_grad()
    def run(fast: bool, head_only: bool = False):
        outs = []
        for s in range(0, n, bs):
            xb = normalise(x[s:s + bs])
            if fast:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with autocast(device, fast):
                outs.append(model.viewpoint(xb) if head_only else model.embed(xb)[0].float())
        return torch.cat(outs)

    def fast():
        model.to(memory_format=torch.channels_last)
        return run(True)

    def fp32():
        model.to(memory_format=torch.contiguous_format)
        return run(False)

    def check(fast_f, ref_f):
        model.to(memory_format=torch.channels_last)
        _, t_head = timed(lambda: run(True, head_only=True), device)
        _, t_fast = timed(lambda: run(True), device)
        cos = float(torch.nn.functional.cosine_similarity(ref_f, fast_f, dim=1).mean())
        return {"images_per_s": n / t_fast, "mean_cosine": cos, "viewpoint_head_share": t_head / t_fast,
                "agree": cos >= 0.999}

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    try:
        return race(f"embed {arch}+VCAM {size}^2 x{n}", fast, fp32, device=device, peer_name="fp32 (TF32)",
                    repeats=1, warmup=1, check=check)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = True


def run(device="auto", quick: bool = False) -> BenchRecords:
    """The race on one device: eval and rerank always, embed on CUDA (spec §7); the summary is the spec's
    document {device, eval, rerank[, embed], ratios}."""
    from wisecli.runtime.device import as_device

    device = as_device(device)
    p = QUICK if quick else FULL
    recs = [bench_eval(p, device), bench_rerank(p, device)]
    if device.type == "cuda":
        recs.append(bench_embed(device, quick))
    named = {r.case.split()[0]: r.as_dict() for r in recs}
    return BenchRecords(recs, {"device": recs[0].device, **named,
                               "ratios": {k: r["speedup"] for k, r in named.items()}})
