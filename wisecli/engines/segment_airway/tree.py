"""Airway tree parse and branch measures (spec §5), vectorised over voxels and branches.

The algorithm is the one of the ATM'22 parser (Zhang et al., ATM'22 challenge, `tree_parse.py`), re-derived:
1. skeletonize(G′) (scikit-image 3D, Lee et al. 1994); drop skeleton voxels whose 3³ count exceeds 3
   (junctions);
2. the 26-connected remaining pieces of ≥ 5 voxels are branch seeds;
3. every G′ voxel takes its nearest seed's label (KD-tree in voxel units);
4. the trachea is the largest region;
5. 6-adjacency = the unique label pairs across the three axis shifts;
6. BFS from the trachea gives generations; a branch's parents are its neighbours one generation up;
7. until stable: merge the parents of any branch with several (all such groups at once), else fold every
   only child into its parent (all at once); merges act on the graph through a relabel array and the voxels
   are relabelled once at the end.

Final ids are 1..N ordered by (generation, smallest seed id); the trachea is 1 and generation 0.
Branch measures [reconstructed]: length = Σ ℓ over the branch's skeleton voxels with
ℓ(v) = ½ Σ_{u ∈ N26(v) ∩ S} ‖(u − v) ⊙ spacing‖; radius = distance to the nearest background voxel minus half
the finest spacing (exact KD-tree over the background voxels that touch G′). start_mm is the branch's skeleton
voxel nearest its junction with the parent (for the trachea: the one farthest from its children), end_mm the
skeleton voxel farthest from the start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PARSER_VERSION = "1"
OFFSETS26 = np.array([(dz, dy, dx) for dz in (-1, 0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                      if (dz, dy, dx) != (0, 0, 0)])


@dataclass
class Parse:
    shape: tuple               # full volume shape (z, y, x)
    box: tuple                 # slices of the padded mask box inside the full volume
    labels: np.ndarray         # int32 branch ids 1..N inside the box (0 = background)
    skel_idx: np.ndarray       # flat indices (full volume) of the skeleton S
    skel_branch: np.ndarray    # branch id (1..N) of each skeleton voxel
    ell: np.ndarray            # ℓ(v) in mm per skeleton voxel
    parent: np.ndarray         # (N+1,) parent id per branch id (0 = none; index 0 unused)
    generation: np.ndarray     # (N+1,)
    n_branches: int

    def full_labels(self, dtype=np.uint16) -> np.ndarray:
        out = np.zeros(self.shape, dtype)
        out[self.box] = self.labels.astype(dtype)
        return out


def largest_component(mask: np.ndarray, connectivity: int = 6) -> np.ndarray:
    """Largest connected component (6, 18 or 26 connectivity) of a boolean mask, computed in its box."""
    from scipy import ndimage

    mask = np.asarray(mask, bool)
    box = mask_box(mask, pad=1)
    if box is None:
        return np.zeros_like(mask)
    structure = ndimage.generate_binary_structure(3, {6: 1, 18: 2, 26: 3}[connectivity])
    lab, n = ndimage.label(mask[box], structure)
    out = np.zeros_like(mask)
    if n:
        keep = np.bincount(lab.ravel())[1:].argmax() + 1
        out[box] = lab == keep
    return out


def mask_box(mask: np.ndarray, pad: int = 1):
    """Slices of the bounding box of `mask` grown by `pad` (clipped), or None if empty."""
    idx = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax))) for ax in range(3)]
    if any(len(i) == 0 for i in idx):
        return None
    return tuple(slice(max(i[0] - pad, 0), min(i[-1] + pad + 1, n)) for i, n in zip(idx, mask.shape))


def reference_mask(ref: np.ndarray) -> np.ndarray:
    """G′ = fill_holes(LCC(G, 6))."""
    from scipy import ndimage

    g = largest_component(np.asarray(ref) > 0, 6)
    box = mask_box(g, pad=1)
    if box is not None:
        g[box] = ndimage.binary_fill_holes(g[box])
    return g


def neighbour_count(sk: np.ndarray) -> np.ndarray:
    """3³ box count of a uint8 mask (separable sums)."""
    from scipy import ndimage

    c = sk.astype(np.uint8)
    for ax in range(3):
        c = ndimage.correlate1d(c, np.ones(3, np.uint8), axis=ax, mode="constant")
    return c


def skeleton_seeds(skel: np.ndarray, min_size: int = 5) -> tuple[np.ndarray, int]:
    """Steps 1–2: drop junction voxels (3³ count > 3) and label the 26-pieces of ≥ min_size voxels 1..K."""
    from scipy import ndimage

    pruned = skel & (neighbour_count(skel) <= 3)
    lab, n = ndimage.label(pruned, np.ones((3, 3, 3), bool))
    if n == 0:
        return lab, 0
    sizes = np.bincount(lab.ravel())
    keep = sizes >= min_size
    keep[0] = False
    remap = np.zeros(n + 1, np.int32)
    remap[keep] = np.arange(1, keep.sum() + 1)
    return remap[lab], int(keep.sum())


def nearest_seed_labels(mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Step 3: every mask voxel takes the label of its nearest seed voxel (KD-tree, voxel units)."""
    from scipy.spatial import cKDTree

    out = np.zeros(mask.shape, np.int32)
    sv = np.argwhere(seeds > 0)
    mv = np.argwhere(mask)
    _, j = cKDTree(sv).query(mv, k=1)
    out[tuple(mv.T)] = seeds[tuple(sv.T)][j]
    return out


def adjacency_pairs(lab: np.ndarray) -> np.ndarray:
    """Step 5: unique (a, b), a < b, of different nonzero labels that are 6-adjacent."""
    pairs = []
    for ax in range(3):
        a = np.moveaxis(lab, ax, 0)[:-1].ravel()
        b = np.moveaxis(lab, ax, 0)[1:].ravel()
        m = (a != b) & (a > 0) & (b > 0)
        pairs.append(np.stack([np.minimum(a[m], b[m]), np.maximum(a[m], b[m])], 1))
    p = np.concatenate(pairs)
    return np.unique(p, axis=0) if len(p) else p.reshape(0, 2)


def _generations(n: int, edges: np.ndarray, root: int) -> np.ndarray:
    """Hop distance from `root` over the undirected graph on labels 0..n (−1 if unreachable)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import shortest_path

    if len(edges) == 0:
        g = np.full(n + 1, -1)
        g[root] = 0
        return g
    a = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n + 1, n + 1))
    d = shortest_path(a, directed=False, unweighted=True, indices=root)
    return np.where(np.isfinite(d), d, -1).astype(int)


def _find(relabel: np.ndarray) -> np.ndarray:
    """Resolve a relabel array to its fixed point (path compression, vectorised)."""
    while True:
        nxt = relabel[relabel]
        if np.array_equal(nxt, relabel):
            return relabel
        relabel = nxt


def _union(relabel: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Union the groups of a[i] and b[i] (roots are the smallest ids), all pairs at once."""
    relabel = _find(relabel)
    while True:
        ra, rb = relabel[a], relabel[b]
        diff = ra != rb
        if not diff.any():
            return relabel
        lo, hi = np.minimum(ra[diff], rb[diff]), np.maximum(ra[diff], rb[diff])
        np.minimum.at(relabel, hi, lo)
        relabel = _find(relabel)


def merge_graph(n: int, edges: np.ndarray, root: int):
    """Steps 6–7 on the graph: returns (relabel array over 0..n, final edges, generations)."""
    relabel = np.arange(n + 1)
    while True:
        e = relabel[edges]
        e = e[e[:, 0] != e[:, 1]]
        e = np.unique(np.sort(e, 1), axis=0) if len(e) else e.reshape(0, 2)
        r = relabel[root]
        gen = _generations(n, e, r)
        # orient each edge parent → child where generations differ by one
        ga, gb = gen[e[:, 0]], gen[e[:, 1]]
        down = (gb == ga + 1) & (ga >= 0)
        up = (ga == gb + 1) & (gb >= 0)
        par = np.concatenate([e[down, 0], e[up, 1]])
        chi = np.concatenate([e[down, 1], e[up, 0]])
        n_par = np.bincount(chi, minlength=n + 1)
        multi = np.flatnonzero(n_par > 1)
        if len(multi):
            sel = np.isin(chi, multi)
            first = np.full(n + 1, -1)
            order = np.argsort(chi[sel], kind="stable")
            c_sorted, p_sorted = chi[sel][order], par[sel][order]
            _, start = np.unique(c_sorted, return_index=True)
            first[c_sorted[start]] = p_sorted[start]
            relabel = _union(relabel, p_sorted, first[c_sorted])
            continue
        n_chi = np.bincount(par, minlength=n + 1)
        only = n_chi[par] == 1
        if only.any():
            relabel = _union(relabel, par[only], chi[only])
            continue
        return relabel, e, gen


def _ell(skel_zyx: np.ndarray, shape, spacing_zyx) -> np.ndarray:
    """ℓ(v) = ½ Σ over 26-neighbours in S of the neighbour's distance in mm (vectorised over voxels)."""
    flat = np.ravel_multi_index(tuple(skel_zyx.T), shape)
    order = np.sort(flat)
    ell = np.zeros(len(flat))
    sp = np.asarray(spacing_zyx, float)
    for o in OFFSETS26:
        nb = skel_zyx + o
        ok = np.all((nb >= 0) & (nb < np.array(shape)), 1)
        nf = np.ravel_multi_index(tuple(nb[ok].T), shape)
        pos = np.searchsorted(order, nf)
        hit = order[np.minimum(pos, len(order) - 1)] == nf
        ell[np.flatnonzero(ok)[hit]] += 0.5 * float(np.linalg.norm(o * sp))
    return ell


def parse_tree(mask: np.ndarray, spacing_xyz=(1.0, 1.0, 1.0), *, is_reference_mask: bool = False,
               skeleton: np.ndarray | None = None) -> Parse | None:
    """Parse an airway mask (G′ is built from it unless `is_reference_mask`). None if it has no branch."""
    from skimage.morphology import skeletonize

    g = np.asarray(mask, bool) if is_reference_mask else reference_mask(mask)
    box = mask_box(g, pad=1)
    if box is None:
        return None
    gb = g[box]
    sk = skeletonize(gb).astype(bool) if skeleton is None else skeleton[box].astype(bool)
    seeds, k = skeleton_seeds(sk)
    if k == 0:
        return None
    lab = nearest_seed_labels(gb, seeds)
    root = int(np.bincount(lab.ravel(), minlength=k + 1)[1:].argmax() + 1)
    edges = adjacency_pairs(lab)
    relabel, e, gen = merge_graph(k, edges, root)
    # final ids ordered by (generation, smallest seed id)
    groups = np.unique(relabel[1:])
    g_gen = gen[groups]
    g_gen = np.where(g_gen < 0, g_gen.max() + 1, g_gen)
    order = np.lexsort((groups, g_gen))
    final = np.zeros(k + 1, np.int32)
    final[groups[order]] = np.arange(1, len(groups) + 1)
    to_final = final[relabel]
    n = len(groups)
    generation = np.zeros(n + 1, int)
    generation[final[groups]] = gen[groups]
    parent = np.zeros(n + 1, int)
    if len(e):
        fe = final[e]
        ga, gb_ = generation[fe[:, 0]], generation[fe[:, 1]]
        d = gb_ == ga + 1
        parent[fe[d, 1]] = fe[d, 0]
        u = ga == gb_ + 1
        parent[fe[u, 0]] = fe[u, 1]
    labels = to_final[lab]
    skz = np.argwhere(sk)
    off = np.array([s.start for s in box])
    full = skz + off
    skel_idx = np.ravel_multi_index(tuple(full.T), g.shape)
    sp_zyx = tuple(spacing_xyz)[::-1]
    ell = _ell(full, g.shape, sp_zyx)
    return Parse(g.shape, box, labels, skel_idx, labels[tuple(skz.T)], ell, parent, generation, n)


def branch_table(p: Parse, mask_ref: np.ndarray, spacing_xyz, origin=(0, 0, 0),
                 direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)) -> list[dict]:
    """Per-branch measures (length, radii, endpoints in LPS mm), vectorised over branches."""
    from scipy import ndimage
    from scipy.spatial import cKDTree

    sp_zyx = np.asarray(spacing_xyz, float)[::-1]
    gb = p.labels > 0
    bg = ndimage.binary_dilation(gb) & ~gb
    off = np.array([s.start for s in p.box])
    bgv = (np.argwhere(bg) + off) * sp_zyx
    skz = np.column_stack(np.unravel_index(p.skel_idx, p.shape))
    skm = skz * sp_zyx
    if len(bgv):
        dist, _ = cKDTree(bgv).query(skm, k=1)
    else:
        dist = np.zeros(len(skm))
    radius = np.maximum(dist - sp_zyx.min() / 2, 0)
    n = p.n_branches
    b = p.skel_branch
    cnt = np.bincount(b, minlength=n + 1).astype(float)
    length = np.bincount(b, weights=p.ell, minlength=n + 1)
    mean_r = np.bincount(b, weights=radius, minlength=n + 1) / np.maximum(cnt, 1)
    min_r = np.full(n + 1, np.inf)
    np.minimum.at(min_r, b, radius)
    # junction point of each branch with its parent: mean position of its skeleton voxels adjacent (by
    # label) to the parent region is approximated by the parent's skeleton voxel nearest to the branch centroid
    cen = np.zeros((n + 1, 3))
    for ax in range(3):
        cen[:, ax] = np.bincount(b, weights=skm[:, ax], minlength=n + 1) / np.maximum(cnt, 1)
    anchor = np.zeros((n + 1, 3))
    has_par = p.parent > 0
    anchor[has_par] = cen[p.parent[has_par]]
    # the trachea's anchor is the centroid of its children, and its start is the farthest voxel from it
    kids = np.flatnonzero(p.parent == 1)
    anchor[1] = cen[kids].mean(0) if len(kids) else cen[1]
    d_anchor = np.linalg.norm(skm - anchor[b], axis=1)
    key_start = np.where(b == 1, -d_anchor, d_anchor)
    order = np.lexsort((key_start, b))
    first = np.searchsorted(b[order], np.arange(n + 1))
    start_vox = np.full(n + 1, -1)
    valid = (first < len(b)) & (cnt > 0)
    start_vox[valid] = order[first[valid]]
    d_start = np.linalg.norm(skm - skm[np.maximum(start_vox[b], 0)], axis=1)
    order2 = np.lexsort((-d_start, b))
    end_vox = np.full(n + 1, -1)
    end_vox[valid] = order2[np.searchsorted(b[order2], np.arange(n + 1))[valid]]
    D = np.asarray(direction, float).reshape(3, 3)
    org = np.asarray(origin, float)

    def phys(i):
        return (org + D @ (skz[i][::-1] * np.asarray(spacing_xyz, float))).round(3).tolist()

    children = [[] for _ in range(n + 1)]
    for c in range(1, n + 1):
        if p.parent[c]:
            children[p.parent[c]].append(c)
    rows = []
    for i in range(1, n + 1):
        rows.append({"id": i, "parent": int(p.parent[i]) or None, "generation": int(p.generation[i]),
                     "children": children[i], "length_mm": round(float(length[i]), 3),
                     "mean_radius_mm": round(float(mean_r[i]), 3),
                     "min_radius_mm": round(float(min_r[i]) if np.isfinite(min_r[i]) else 0.0, 3),
                     "start_mm": phys(start_vox[i]) if start_vox[i] >= 0 else None,
                     "end_mm": phys(end_vox[i]) if end_vox[i] >= 0 else None})
    return rows


def tree_summary(rows: list[dict], mask: np.ndarray, spacing_xyz) -> dict:
    vol = float(np.count_nonzero(mask)) * float(np.prod(spacing_xyz)) / 1000.0
    return {"n_branches": len(rows), "max_generation": max((r["generation"] for r in rows), default=None),
            "total_length_mm": round(sum(r["length_mm"] for r in rows), 3), "volume_ml": round(vol, 4)}
