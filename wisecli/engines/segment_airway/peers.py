"""The peers' side of the `benchmark` races (spec §7): MONAI's UNet and BasicUNet, the ATM'22 baseline
post-processing (MONAI KeepLargestConnectedComponent + FillHoles), and the R7 tree-parse peer: the official
ATM'22 parse written as that code runs it, per branch over the full volume. Our side is `bench.py`.
"""

from __future__ import annotations

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


def _official_bb(mask):
    """`find_bb_3D`: the mask's bounding box grown to length + 8 (centred, shifted inside the volume)."""
    box = []
    for ax in range(3):
        f = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax)))
        length = f[-1] - f[0] + 1
        cs = min(length + 8, mask.shape[ax])
        lo = min(max(f[0] - (cs - length) // 2, 0), mask.shape[ax] - cs)
        box.append(slice(lo, lo + cs))
    return tuple(box)


def _official_relations(tp, num):
    """`loc_trachea`, `adjacent_map` (a dilation per branch in its box) and `parent_children_map` (BFS)."""
    from scipy import ndimage

    six = ndimage.generate_binary_structure(3, 1)
    volume = np.array([np.count_nonzero(tp == k + 1) for k in range(num)], float)
    trachea = int(np.argsort(volume)[-1])
    ad = np.zeros((num, num), bool)
    for i in range(num):
        cur = tp == i + 1
        box = _official_bb(cur)
        ring = ndimage.binary_dilation(cur[box], six) & ~cur[box]
        found = np.unique(tp[box][ring])
        ad[i, found[found > 0] - 1] = True
    pm = np.zeros((num, num), bool)
    gen = np.zeros(num, int)
    pm[trachea, trachea] = True
    level = [trachea]
    while level:
        nxt = []
        for cur in reversed(level):
            for c in np.flatnonzero(ad[cur]):
                if not pm[c].any():
                    pm[c, cur] = True
                    gen[c] = gen[cur] + 1
                    nxt.append(c)
                elif gen[cur] + 1 == gen[c]:
                    pm[c, cur] = True
        level = nxt
    cm = pm.T.copy()
    cm[trachea, trachea] = False
    return pm, cm, gen


def official_parse(g: np.ndarray) -> np.ndarray:
    """The R7 peer: the official ATM'22 `tree_parse.py` steps after G′, dense over the volume and per branch as
    written there (EndoluminalSurgicalVision-IMR/ATM-22-Related-Work, MIT): skeleton of the (x, y, z) array (as
    nibabel reads it), 3³ convolve (mode reflect), `ndimage.label`, EDT feature transform, then the refinement
    loop (`whether_refinement` fuses on the volume, `tree_refinement` fuses again and renumbers). Returns the
    labels in our (z, y, x) order, renumbered by (generation, official label) as `tree.parse_tree` numbers them."""
    from scipy import ndimage
    from skimage.morphology import skeletonize

    x = np.ascontiguousarray(np.asarray(g, bool).T)
    sk = skeletonize(x).astype(np.uint8)
    cube = ndimage.generate_binary_structure(3, 3)
    sk[(ndimage.convolve(sk, cube.astype(np.uint8)) * sk) > 3] = 0
    cd, n = ndimage.label(sk, cube)
    sk[np.isin(cd, np.flatnonzero(np.bincount(cd.ravel()) < 5))] = 0
    cd, num = ndimage.label(sk, cube)
    _, inds = ndimage.distance_transform_edt(1 - sk, return_indices=True)
    tp = cd[inds[0], inds[1], inds[2]] * x
    pm, cm, gen = _official_relations(tp, num)
    while True:
        delete = []
        ops = []
        for w in np.flatnonzero(pm.sum(1) > 1):
            ps = np.flatnonzero(pm[w])
            for pj in ps[1:]:
                ops.append((pj, ps[0]))
                if pj not in delete:
                    delete.append(pj)
        for loc in np.flatnonzero(cm.sum(1) == 1):
            if loc not in delete:
                c = np.flatnonzero(cm[loc])[0]
                if c not in delete:
                    ops.append((c, loc))
                    delete.append(c)
        if not delete:
            break
        for _ in range(2):                       # whether_refinement, then tree_refinement
            for src, dst in ops:
                tp[tp == src + 1] = dst + 1
        for i in range(num):
            if i not in delete:
                tp[tp == i + 1] = i + 1 - sum(d < i for d in delete)
        num -= len(delete)
        pm, cm, gen = _official_relations(tp, num)
    order = sorted(range(num), key=lambda i: (gen[i], i))
    lut = np.zeros(num + 1, np.int32)
    lut[np.array(order) + 1] = np.arange(1, num + 1)
    return lut[tp].T


def peer_parse(label: np.ndarray) -> np.ndarray:
    """The R7 peer, from the same label as ours: G′ with dense scipy passes (label, bincount, fill_holes on the
    full volume), then `official_parse`."""
    from scipy import ndimage

    lab, _ = ndimage.label(np.asarray(label) > 0, ndimage.generate_binary_structure(3, 1))
    g = ndimage.binary_fill_holes(lab == np.bincount(lab.ravel())[1:].argmax() + 1)
    return official_parse(g)
