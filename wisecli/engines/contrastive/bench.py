"""Our side of `wise contrastive benchmark` (spec §7): device kNN (256 queries against the bank), spherical/
Lloyd k-means, batched MoCo v2 views and batched cutmix, each raced against its peer (`peers.py`) in one
process by `runtime.bench.race`. Inputs are synthetic (throughput only).

Sizes: `small` (CPU path): bank 20k x 64, 100 clusters, 32 px images, batch 32; `ci` (the GPU preset the
`.ci/gpu-check` runs): bank 256k x 128, 1,000 clusters, 224 px, batch 256; `full`: the spec's 1.28M bank.
`quick` shrinks `small` further (bank 4k, 20 clusters) for the conformance suite. k-means races Euclidean Lloyd
from the same k-means++ init as scikit-learn's `KMeans(n_init=1, algorithm="lloyd")` (20 iterations; ours stops
early only on zero reassignments here, so both do the same work).
"""

from __future__ import annotations

import numpy as np
import torch

SIZES = {
    "quick": {"bank": 4000, "dim": 64, "clusters": 20, "img": 32, "batch": 16, "iters": 5},
    "small": {"bank": 20000, "dim": 64, "clusters": 100, "img": 32, "batch": 32, "iters": 20},
    "ci": {"bank": 256000, "dim": 128, "clusters": 1000, "img": 224, "batch": 256, "iters": 20},
    "full": {"bank": 1280000, "dim": 128, "clusters": 1000, "img": 224, "batch": 256, "iters": 20},
}


def run(device: torch.device, quick: bool, size: str) -> list:
    """The records of every race (module docstring)."""
    import torch.nn.functional as F

    from wisecli.runtime import augment as A
    from wisecli.runtime.bench import race
    from wisecli.runtime.results import BenchRecords

    from . import peers
    from .algorithm import kmeans, kmeans_pp, knn
    from .synthetic import random_images

    p = SIZES["quick" if quick and size == "small" else size]
    g = torch.Generator().manual_seed(0)
    bank = F.normalize(torch.randn(p["bank"], p["dim"], generator=g), dim=1)
    queries = bank[:256]
    bank_d, q_d = bank.to(device), queries.to(device)
    records = []

    def check_knn(ours, peer):
        return {"agree_top1": float((ours[1][:, 0].cpu().numpy() == peer[:, 0]).mean())}

    records.append(race("knn 256 queries", lambda: knn(q_d, bank_d, 10, chunk=256), lambda: peers.sklearn_knn(
        bank.numpy(), queries.numpy(), 10), device=device, peer_name="scikit-learn NearestNeighbors brute cosine",
        check=check_knn, repeats=3, peer_repeats=1, peer_warmup=0, bank=p["bank"], dim=p["dim"]))
    init = kmeans_pp(bank_d, p["clusters"], torch.Generator(device=device).manual_seed(0), mode="euclidean")
    records.append(race("k-means", lambda: kmeans(bank_d, p["clusters"], mode="euclidean", init=init,
                                                 max_iter=p["iters"], tol=0),
                        lambda: peers.sklearn_kmeans(bank.numpy(), init.cpu().numpy(), p["iters"]), device=device,
                        peer_name="scikit-learn KMeans lloyd (same init)", repeats=1, warmup=0, peer_repeats=1,
                        peer_warmup=0, clusters=p["clusters"], iterations=p["iters"]))
    imgs = random_images(p["batch"], 3, p["img"], device=device)
    imgs_np = imgs.permute(0, 2, 3, 1).cpu().numpy()

    def ours_aug():
        v = A.random_resized_crop(imgs, p["img"])
        v = A.random_flip(v)
        v = A.color_jitter(v, 0.4, 0.4, 0.4, 0.1, p=0.8)
        v = A.grayscale(v, p=0.2)
        return A.gaussian_blur(v, sigma=(0.1 * p["img"] / 224, 2.0 * p["img"] / 224), p=0.5)

    records.append(race("augment views", ours_aug, lambda: peers.cpu_augment(imgs_np, p["img"]), device=device,
                        peer_name="per-sample OpenCV + numpy", repeats=3, peer_repeats=1, images=p["batch"],
                        size=p["img"]))
    a = A.to_float(imgs)
    b = a.flip(0)
    an, bn = a.permute(0, 2, 3, 1).cpu().numpy(), b.permute(0, 2, 3, 1).cpu().numpy()
    records.append(race("cutmix", lambda: A.cutmix(a, b), lambda: peers.cpu_cutmix(an, bn), device=device,
                        peer_name="per-sample numpy cutmix", repeats=3, peer_repeats=1, images=p["batch"]))
    return BenchRecords(records)
