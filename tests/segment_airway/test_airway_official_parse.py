"""The tree parse and BD against a plain transcription of the official ATM'22 evaluation code (issue 13 point 5).

`official_*` below transcribe `evaluation/tree_parse.py` and `evaluation/evaluation_atm_22.py` of
EndoluminalSurgicalVision-IMR/ATM-22-Related-Work (MIT) step by step, on dense volumes, sharing nothing with
the engine: the volume is read as nibabel reads it ((x, y, z): our (z, y, x) array transposed), LCC with
`skimage.measure.label` and fill holes, `skeletonize` (Lee; the official `skeletonize_3d` is the same function
in older scikit-image), the 3³ `ndimage.convolve` (default mode), `ndimage.label` twice, the EDT feature
transform, the per-branch dilations of `adjacent_map` in `find_bb_3D` boxes, `parent_children_map`'s BFS and the
`whether_refinement` / `tree_refinement` loop, which fuses on the volume twice per iteration as written. Only
the prints, file I/O and the commented-out third refinement step are left out; volumes are counted with a sum.
"""

import numpy as np
import pytest
from scipy import ndimage
from skimage import measure
from skimage.morphology import skeletonize

from wisecli.engines.segment_airway import metrics as M
from wisecli.engines.segment_airway import tree as T
from wisecli.engines.segment_airway.synthetic import make_phantom

# one torch and one BLAS thread per module (conftest): a 2-core machine's second core runs the recipe retrain
# beside this folder (test_airway_demo.py), and two spinning OpenMP threads here cost ~28 CPU-s more [measured]
pytestmark = pytest.mark.usefixtures("one_thread_module")


# ---- transcription of tree_parse.py -------------------------------------------------------------------------

def official_find_bb_3d(label):
    box = []
    for ax in range(3):
        f = np.where(np.sum(label, axis=tuple(a for a in range(3) if a != ax)))[0]
        length = f.max() - f.min() + 1
        cs = min(length + 8, label.shape[ax])
        lo = f.min() - (cs - length) // 2
        if lo < 0:
            lo = 0
        if lo + cs > label.shape[ax]:
            lo = label.shape[ax] - cs
        box.append(slice(lo, lo + cs))
    return tuple(box)


def official_large_connected_domain(label):
    cd, num = measure.label(label, return_num=True, connectivity=1)
    volume = np.zeros([num])
    for k in range(num):
        volume[k] = (cd == (k + 1)).sum()
    label = (cd == (np.argsort(volume)[-1] + 1)).astype(np.uint8)
    return ndimage.binary_fill_holes(label).astype(np.uint8)


def official_skeleton_parsing(skeleton):
    neighbor_filter = ndimage.generate_binary_structure(3, 3)
    skeleton_filtered = ndimage.convolve(skeleton, neighbor_filter) * skeleton
    skeleton_parse = skeleton.copy()
    skeleton_parse[skeleton_filtered > 3] = 0
    cd, num = ndimage.label(skeleton_parse, structure=neighbor_filter)
    for i in range(num):
        if cd[cd == (i + 1)].shape[0] < 5:
            skeleton_parse[cd == (i + 1)] = 0
    cd, num = ndimage.label(skeleton_parse, structure=neighbor_filter)
    return skeleton_parse, cd, num


def official_tree_parsing_func(skeleton_parse, label, cd):
    _, inds = ndimage.distance_transform_edt(1 - skeleton_parse, return_indices=True)
    return cd[inds[0, ...], inds[1, ...], inds[2, ...]] * label


def official_loc_trachea(tree_parsing, num):
    volume = np.zeros([num])
    for k in range(num):
        volume[k] = (tree_parsing == (k + 1)).sum()
    return np.argsort(volume)[-1] + 1


def official_adjacent_map(tree_parsing, num):
    ad_matric = np.zeros((num, num), dtype=np.uint8)
    for i in range(num):
        cd_cur = (tree_parsing == (i + 1)).astype(np.uint8)
        box = official_find_bb_3d(cd_cur)
        cd_cur = cd_cur[box]
        boundary = ndimage.binary_dilation(cd_cur, ndimage.generate_binary_structure(3, 1)).astype(np.uint8) - cd_cur
        adjacency = boundary * tree_parsing[box]
        for e in np.unique(adjacency[adjacency > 0]):
            ad_matric[i, e - 1] = 1
    return ad_matric


def official_parent_children_map(ad_matric, trachea, num):
    parent_map = np.zeros((num, num), dtype=np.uint8)
    children_map = np.zeros((num, num), dtype=np.uint8)
    generation = np.zeros((num), dtype=np.uint8)
    processing = [trachea - 1]
    parent_map[trachea - 1, trachea - 1] = 1
    while len(processing) > 0:
        iteration = processing
        processing = []
        while len(iteration) > 0:
            cur = iteration.pop()
            for cur_child in np.where(ad_matric[cur, :] > 0)[0]:
                if parent_map[cur_child, :].sum() == 0:
                    parent_map[cur_child, cur] = 1
                    children_map[cur, cur_child] = 1
                    generation[cur_child] = generation[cur] + 1
                    processing.append(cur_child)
                elif generation[cur] + 1 == generation[cur_child]:
                    parent_map[cur_child, cur] = 1
                    children_map[cur, cur_child] = 1
    return parent_map, children_map, generation


def official_fusions(parent_map, children_map, tree_parsing):
    """The body shared by whether_refinement and tree_refinement: fuse on the volume, return delete_ids."""
    witems = np.where(np.sum(parent_map, axis=1) > 1)[0]
    problem1_loc = np.where(np.sum(children_map, axis=1) == 1)[0]
    delete_ids = []
    for w in witems:
        cur_witem = np.where(parent_map[w, :] > 0)[0]
        for j in range(1, len(cur_witem)):
            tree_parsing[tree_parsing == (cur_witem[j] + 1)] = cur_witem[0] + 1
            if cur_witem[j] not in delete_ids:
                delete_ids.append(cur_witem[j])
    for cur_loc in problem1_loc:
        if cur_loc not in delete_ids:
            cur_child = np.where(children_map[cur_loc, :] == 1)[0][0]
            if cur_child not in delete_ids:
                tree_parsing[tree_parsing == (cur_child + 1)] = cur_loc + 1
                delete_ids.append(cur_child)
    return delete_ids


def official_tree_refinement(parent_map, children_map, tree_parsing, num):
    delete_ids = official_fusions(parent_map, children_map, tree_parsing)
    for i in range(num):
        if i not in delete_ids:
            move = len(np.where(np.array(delete_ids) < i)[0])
            tree_parsing[tree_parsing == (i + 1)] = i + 1 - move
    return tree_parsing, num - len(delete_ids)


def official_whether_refinement(parent_map, children_map, tree_parsing):
    return len(official_fusions(parent_map, children_map, tree_parsing)) > 0


def official_tree_parse(label_zyx):
    """`tree_parse()` on one label. Returns (tree_parsing, skeleton, num, parent_map, generation), the volumes
    transposed back to our (z, y, x) order."""
    label = (np.asarray(label_zyx).T > 0).astype(np.uint8)          # nibabel's (x, y, z)
    label = official_large_connected_domain(label)
    skeleton = skeletonize(label).astype(np.uint8)
    skeleton_parse, cd, num = official_skeleton_parsing(skeleton)
    tree_parsing = official_tree_parsing_func(skeleton_parse, label, cd)
    trachea = official_loc_trachea(tree_parsing, num)
    ad_matric = official_adjacent_map(tree_parsing, num)
    parent_map, children_map, generation = official_parent_children_map(ad_matric, trachea, num)
    while official_whether_refinement(parent_map, children_map, tree_parsing) is True:
        tree_parsing, num = official_tree_refinement(parent_map, children_map, tree_parsing, num)
        trachea = official_loc_trachea(tree_parsing, num)
        ad_matric = official_adjacent_map(tree_parsing, num)
        parent_map, children_map, generation = official_parent_children_map(ad_matric, trachea, num)
    return tree_parsing.T, skeleton.T, num, parent_map, generation


# ---- transcription of evaluation_atm_22.py (without its rounding) --------------------------------------------

def official_branch_detected(pred, label_parsing, label_skeleton, thresh=0.8):
    label_branch = label_skeleton * label_parsing
    label_branch_bincount = np.bincount(label_branch.flatten())[1:]
    total_branch_num = label_branch_bincount.shape[0]
    pred_branch_bincount = np.bincount((label_branch * pred).flatten())[1:]
    if total_branch_num != pred_branch_bincount.shape[0]:
        pred_branch_bincount = np.concatenate((pred_branch_bincount,
                                               np.zeros(total_branch_num - pred_branch_bincount.shape[0])))
    detected = np.count_nonzero(np.where(pred_branch_bincount / label_branch_bincount >= thresh, 1, 0))
    return total_branch_num, detected, detected * 100 / total_branch_num


def official_tree_length(pred, label_skeleton):
    return np.sum(pred.flatten() * label_skeleton.flatten()) / np.sum(label_skeleton) * 100


# ---- the comparisons -------------------------------------------------------------------------------------------

def crop(label, margin=2):
    """The label's bounding box grown by `margin` voxels, clipped at the volume: the official steps see the same
    thing there (a zero margin, or the volume's own face), at a fraction of the cost."""
    idx = np.argwhere(label > 0)
    return tuple(slice(max(a - margin, 0), min(b + margin + 1, n)) for a, b, n in zip(idx.min(0), idx.max(0),
                                                                                       label.shape))


@pytest.fixture(scope="module")
def cases():
    """`tiny` (2 mm) seeds 0 and 1 on their full volume, and the `demo` preset (1.5 mm, 19 branches) in its box;
    each with the official parse."""
    out = []
    for preset, seed, cropped in (("tiny", 0, False), ("tiny", 1, False), ("demo", 0, True)):
        ph = make_phantom(preset, seed=seed, noise_hu=0, vessels=False)
        label = ph.label[crop(ph.label)] if cropped else ph.label
        out.append((f"{preset}{seed}", label, ph.spacing, official_tree_parse(label)))
    return out


def test_parse_equals_the_official_procedure(cases):
    for name, label, spacing, (off, off_skel, num, parent_map, generation) in cases:
        p = T.parse_tree(label, spacing)
        ours = p.full_labels(np.int32)
        assert p.n_branches == num >= 8, name
        assert np.array_equal(np.sort(p.skel_idx), np.flatnonzero(off_skel)), name
        # the same voxels in each branch: the two numberings are a bijection
        assert np.array_equal(ours > 0, off > 0), name
        pairs = np.unique(np.stack([ours[ours > 0], off[off > 0]]), axis=1)
        assert pairs.shape[1] == num, name
        to_off = dict(zip(pairs[0].tolist(), pairs[1].tolist()))
        assert sorted(to_off.values()) == list(range(1, num + 1)), name
        # the same tree: generation and parent of every branch
        for b in range(1, num + 1):
            o = to_off[b] - 1
            assert p.generation[b] == generation[o], (name, b)
            par = np.flatnonzero(parent_map[o])
            if p.parent[b]:
                assert par.tolist() == [to_off[p.parent[b]] - 1], (name, b)
            else:
                assert par.tolist() == [o] and p.generation[b] == 0, (name, b)


def test_bd_and_td_equal_the_official_metric(cases):
    rng = np.random.default_rng(0)
    n_partial = 0
    for name, label, spacing, (off, off_skel, num, _, _) in cases:
        ref = M.prepare_reference(label, spacing)
        drop = rng.choice(np.arange(1, num + 1), size=max(2, num // 3), replace=False)
        preds = [label > 0,
                 (label > 0) & ~np.isin(off, drop),
                 ndimage.binary_erosion(label > 0) | ((label > 0) & (rng.random(label.shape) < 0.3))]
        for pred in preds:
            got = M.score(pred, ref, lcc=False)
            total, detected, bd = official_branch_detected(pred.astype(np.uint8), off, off_skel)
            assert (got["n_branches"], got["n_detected"]) == (total, detected), name
            assert got["bd"] == pytest.approx(bd, abs=1e-9)
            assert got["td"] == pytest.approx(official_tree_length(pred.astype(np.uint8), off_skel), abs=1e-9)
            n_partial += 0 < detected < total
    assert n_partial >= 4


def test_nearest_seed_ties_follow_the_edt_feature_transform():
    # step 3 against scipy's feature transform on the (x, y, z) array, on random seed sets dense enough that
    # exact distance ties are common; a plain nearest-neighbour query resolves some of them otherwise
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(1)
    kd_differs = 0
    for _ in range(30):
        shape = tuple(int(v) for v in rng.integers(4, 14, 3))
        seeds = rng.random(shape) < rng.uniform(0.01, 0.1)
        if not seeds.any():
            continue
        sv = np.argwhere(seeds)
        ids = np.zeros(shape, np.int32)
        ids[tuple(sv.T)] = rng.permutation(len(sv)) + 1
        _, inds = ndimage.distance_transform_edt(1 - seeds.T.astype(np.uint8), return_indices=True)
        expect = ids.T[inds[0], inds[1], inds[2]].T
        allv = np.argwhere(np.ones(shape, bool))
        got = T.nearest_seed_labels(allv, sv, ids[tuple(sv.T)]).reshape(shape)
        assert np.array_equal(got, expect)
        kd_differs += int((ids[tuple(sv[cKDTree(sv).query(allv)[1]].T)].reshape(shape) != expect).any())
    assert kd_differs >= 5


def test_seeds_follow_the_official_count_and_numbering():
    # steps 1–2 on random sparse "skeletons" that touch the box faces: junctions by the official 3³ convolve
    # (mode reflect: a voxel on a face counts its in-face neighbours twice), pieces numbered as ndimage.label
    # numbers them on the (x, y, z) array
    rng = np.random.default_rng(2)
    for _ in range(30):
        shape = tuple(int(v) for v in rng.integers(5, 16, 3))
        sk = (rng.random(shape) < rng.uniform(0.05, 0.2)).astype(np.uint8)
        _, cd, num = official_skeleton_parsing(np.ascontiguousarray(sk.T))
        flat = np.flatnonzero(sk)
        got, k = T.skeleton_seeds(flat, shape, min_size=5)
        expect = np.zeros(shape, np.int32)
        expect.ravel()[flat] = got
        assert k == num and np.array_equal(expect, cd.T)
