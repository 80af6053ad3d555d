"""The peers' side of the `benchmark` races (spec §7): MONAI's UNet and BasicUNet, the ATM'22 baseline
post-processing (MONAI KeepLargestConnectedComponent + FillHoles), and the R7 tree-parse oracle written per
branch over the full volume. Our side is `bench.py`.
"""

from __future__ import annotations

from collections import deque

import numpy as np

UNET_CHANNELS = (32, 64, 128, 256, 320)


def monai_unet():
    """R1/R2/R4 peer: MONAI UNet (32…320, 2 residual units), the ATM'22 baseline network."""
    from monai.networks.nets import UNet

    return UNet(3, 1, 1, UNET_CHANNELS, (2, 2, 2, 2), num_res_units=2)


def basic_unet():
    """R3/R6 peer: MONAI BasicUNet."""
    from monai.networks.nets import BasicUNet

    return BasicUNet(3, 1, 1)


def baseline_postprocess(mask, device):
    """The ATM'22 baseline's post-processing on the device: MONAI KeepLargestConnectedComponent (6-connected)
    then FillHoles; returns the uint8 mask on the CPU."""
    import torch
    from monai.transforms import FillHoles, KeepLargestConnectedComponent

    keep = KeepLargestConnectedComponent(applied_labels=[1], connectivity=1)
    fill = FillHoles(applied_labels=[1])
    m = fill(keep(torch.from_numpy(np.asarray(mask)[None].astype(np.uint8)).to(device)))
    return np.asarray(m[0].cpu().numpy(), np.uint8)


def oracle_parse(g: np.ndarray, seeds_labels: np.ndarray) -> np.ndarray:
    """Steps 4–7 of the parse written per branch over the full volume (dilations for adjacency, voxel relabels
    for every merge), from step-3 labels. Returns the final label volume."""
    from scipy import ndimage

    six = ndimage.generate_binary_structure(3, 1)
    L = seeds_labels.astype(np.int32).copy()
    root_voxel = tuple(np.argwhere(L == np.bincount(L.ravel())[1:].argmax() + 1)[0])
    while True:
        ids = [int(i) for i in np.unique(L) if i > 0]
        adj = {}
        for i in ids:
            ring = ndimage.binary_dilation(L == i, six) & (L != i) & (L > 0)
            adj[i] = set(int(v) for v in np.unique(L[ring]))
        root = int(L[root_voxel])
        gen = {root: 0}
        dq = deque([root])
        while dq:
            u = dq.popleft()
            for v in sorted(adj[u]):
                if v not in gen:
                    gen[v] = gen[u] + 1
                    dq.append(v)
        parents = {v: [u for u in adj[v] if gen.get(u, -9) == gen.get(v, -9) - 1] for v in ids}
        groups = [p for p in parents.values() if len(p) > 1]
        if not groups:
            children = {u: [v for v in ids if u in parents[v]] for u in ids}
            groups = [[u, c[0]] for u, c in children.items() if len(c) == 1]
        if not groups:
            break
        rep = {}

        def find(x):
            while rep.get(x, x) != x:
                x = rep[x]
            return x

        for grp in groups:
            roots = [find(x) for x in grp]
            for x in roots:
                rep[x] = min(roots)
        for x in list(rep):
            if find(x) != x:
                L[L == x] = find(x)
    order = sorted((i for i in np.unique(L) if i > 0), key=lambda i: (gen.get(int(i), 10**6), i))
    out = np.zeros_like(L)
    for new, old in enumerate(order, 1):
        out[L == old] = new
    return out


def peer_parse(label: np.ndarray) -> np.ndarray:
    """The R7 peer, from the same label as ours: G′ with dense scipy passes (label, bincount, fill_holes on the
    full volume), the same scikit-image skeleton, steps 1–2 with a full-volume 3³ convolution and
    `ndimage.label`, the same step 3 (KD-tree, voxel units), steps 4–7 per branch (`oracle_parse`)."""
    from scipy import ndimage
    from scipy.spatial import cKDTree
    from skimage.morphology import skeletonize

    lab, _ = ndimage.label(np.asarray(label) > 0, ndimage.generate_binary_structure(3, 1))
    g = ndimage.binary_fill_holes(lab == np.bincount(lab.ravel())[1:].argmax() + 1)
    sk = skeletonize(g).astype(bool)
    pruned = sk & (ndimage.convolve(sk.astype(np.uint8), np.ones((3, 3, 3), np.uint8), mode="constant") <= 3)
    pieces, n = ndimage.label(pruned, np.ones((3, 3, 3), bool))
    big = np.bincount(pieces.ravel(), minlength=n + 1) >= 5
    big[0] = False
    ids = np.zeros(n + 1, np.int32)
    ids[big] = np.arange(1, big.sum() + 1)
    seeds = ids[pieces]
    sv, mv = np.argwhere(seeds > 0), np.argwhere(g)
    _, j = cKDTree(sv).query(mv, k=1, workers=-1)
    step3 = np.zeros(g.shape, np.int32)
    step3[tuple(mv.T)] = seeds[tuple(sv.T)][j]
    return oracle_parse(g, step3)


