"""ATM'22 airway metrics (spec §5), after the challenge's evaluation (ATM-22-Related-Work
`evaluation/evaluation_atm_22.py`, MIT), without its smoothing and rounding; all in %.

P* = LCC(P) (P with `lcc=False`, the as-written variant), G the binarised reference, G′ = fill_holes(LCC(G)),
S = skeletonize(G′) and T = the branch parse of G′, both as the official `tree_parse.py` makes them
(`tree.parse_tree`: S thinned on the (x, y, z) array nibabel reads, T the official branches; the branch count
and every branch's BD equal the official code's, held by tests/segment_airway/test_airway_official_parse.py):
TD = |P*∩S|/|S|; BD = mean_b 1[|P*∩S∩T_b|/|S∩T_b| ≥ 0.8]; DSC = 2|P*∩G|/(|P*|+|G|);
precision = |P*∩G|/|P*|; FPR = |P*∖G|/|¬G|; FNR = |G∖P*|/|G|; sensitivity = 100 − FNR;
specificity = 100 − FPR; ATM score = mean(TD, BD, DSC, precision).
With `length_mm`, every skeleton voxel counts ℓ(v) mm instead of 1 (spacing-fair on anisotropic scans).

The reference side (S, branch of each skeleton voxel, ℓ) is cached per reference in an .npz keyed by the
SHA-256 of its voxels, spacing, parser version and options; scoring is then a gather and a bincount.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .tree import PARSER_VERSION, largest_component, parse_tree

METRIC_KEYS = ("td", "bd", "dsc", "precision", "fpr", "fnr", "sensitivity", "specificity", "atm_score",
               "n_branches", "n_detected")


@dataclass
class Reference:
    g: np.ndarray             # bool, binarised reference
    skel_idx: np.ndarray      # flat indices of S
    skel_branch: np.ndarray   # branch id per skeleton voxel (1..N)
    ell: np.ndarray           # mm per skeleton voxel
    n_branches: int
    from_cache: bool = False


def reference_key(g: np.ndarray, spacing_xyz) -> str:
    h = hashlib.sha256()
    h.update(np.packbits(g.astype(bool)).tobytes())
    h.update(repr((g.shape, tuple(round(float(s), 6) for s in spacing_xyz), PARSER_VERSION, "lcc6-fill")).encode())
    return h.hexdigest()


def prepare_reference(ref: np.ndarray, spacing_xyz, *, cache_dir: Path | None = None) -> Reference:
    """Binarise, parse and (optionally) cache a reference. Raises ValueError on an empty one."""
    g = np.asarray(ref) > 0
    if not g.any():
        raise ValueError("empty reference")
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"{reference_key(g, spacing_xyz)}.npz"
        if path.exists():
            z = np.load(path, allow_pickle=False)
            return Reference(g, z["skel_idx"], z["skel_branch"], z["ell"], int(z["n_branches"]), True)
    p = parse_tree(g, spacing_xyz)
    if p is None:
        raise ValueError("the reference has no parsable airway tree")
    r = Reference(g, p.skel_idx, p.skel_branch, p.ell, p.n_branches)
    if path is not None:
        from wisecli.runtime.io.atomic import save_npz

        path.parent.mkdir(parents=True, exist_ok=True)
        save_npz(path, skel_idx=r.skel_idx, skel_branch=r.skel_branch, ell=r.ell,
                 n_branches=np.array(r.n_branches))
    return r


def score(pred: np.ndarray, ref: Reference, *, lcc: bool = True, connectivity: int = 6,
          bd_threshold: float = 0.8, length_mm: bool = False) -> dict:
    """The ATM'22 metrics of one prediction against a prepared reference (unrounded %)."""
    p = np.asarray(pred) > 0
    if p.shape != ref.g.shape:
        raise ValueError(f"prediction shape {p.shape} differs from the reference {ref.g.shape}")
    if lcc:
        p = largest_component(p, connectivity)
    hit = p.ravel()[ref.skel_idx].astype(float)
    w = ref.ell if length_mm else np.ones(len(ref.skel_idx))
    n = ref.n_branches
    tot_b = np.bincount(ref.skel_branch, weights=w, minlength=n + 1)[1:]
    hit_b = np.bincount(ref.skel_branch, weights=w * hit, minlength=n + 1)[1:]
    detected = (hit_b / np.where(tot_b > 0, tot_b, 1) >= bd_threshold) & (tot_b > 0)
    g = ref.g
    n_p, n_g = int(p.sum()), int(g.sum())
    tp = int(np.count_nonzero(p & g))
    n_bg = g.size - n_g
    td = 100.0 * float((w * hit).sum() / w.sum())
    bd = 100.0 * float(detected.sum()) / max(int((tot_b > 0).sum()), 1)
    dsc = 100.0 * 2 * tp / (n_p + n_g)
    precision = 100.0 * tp / n_p if n_p else 0.0
    fpr = 100.0 * (n_p - tp) / n_bg if n_bg else 0.0
    fnr = 100.0 * (n_g - tp) / n_g
    return {"td": td, "bd": bd, "dsc": dsc, "precision": precision, "fpr": fpr, "fnr": fnr,
            "sensitivity": 100.0 - fnr, "specificity": 100.0 - fpr,
            "atm_score": (td + bd + dsc + precision) / 4.0, "n_branches": int(n),
            "n_detected": int(detected.sum())}


def summarise(records: list[dict]) -> dict:
    """mean, sd, median, min, max per metric over the ok records (unrounded %)."""
    ok = [r["metrics"] for r in records if r.get("status") == "ok" and r.get("metrics")]
    out = {}
    for k in METRIC_KEYS:
        v = np.array([m[k] for m in ok], float)
        if len(v):
            out[k] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                      "median": float(np.median(v)), "min": float(v.min()), "max": float(v.max())}
    out["n"] = len(ok)
    return out


def evaluate_pairs(pairs: list, *, lcc: bool = True, connectivity: int = 6, bd_threshold: float = 0.8,
                   length_mm: bool = False, cache_dir: Path | None = None, sink=None) -> tuple[list[dict], dict]:
    """ATM'22 metrics for every (prediction, reference) pair. A pair's error is recorded (status `error`) and
    the others go on; a lone pair's error is raised (exit 2). Returns (records, summary)."""
    import time

    from wisecli.cli.errors import InputError, WiseError
    from wisecli.runtime.io.volumes import read_volume

    variant = f"{'lcc' if lcc else 'raw'}{connectivity}" + ("+length-mm" if length_mm else "")
    records = []
    for pred, rf in pairs:
        t = time.perf_counter()
        rec = {"pred": str(pred), "ref": str(rf) if rf else None, "variant": variant}
        try:
            if rf is None:
                raise InputError(f"{Path(pred).name}: no reference with the same name",
                                 hint="check --ref or use --pairs")
            pv, rv = read_volume(pred), read_volume(rf)
            if pv.array.shape != rv.array.shape or not np.allclose(pv.spacing, rv.spacing, atol=1e-4) \
                    or not np.allclose(pv.origin, rv.origin, atol=1e-3) \
                    or not np.allclose(pv.direction, rv.direction, atol=1e-4):
                raise InputError(f"{Path(pred).name}: geometry differs from the reference {Path(rf).name}",
                                 hint="predictions must share the reference's size, spacing, origin and direction")
            try:
                r = prepare_reference(rv.array, rv.spacing, cache_dir=cache_dir)
            except ValueError as e:
                raise InputError(f"{Path(rf).name}: {e}", hint="the reference must hold an airway") from None
            m = score(pv.array, r, lcc=lcc, connectivity=connectivity, bd_threshold=bd_threshold,
                      length_mm=length_mm)
            rec.update(status="ok", metrics=m)
        except WiseError as e:
            if len(pairs) == 1:
                raise
            rec.update(status="error", error=e.message)
            if sink is not None:
                sink.warn(e.message)
        rec["seconds"] = round(time.perf_counter() - t, 4)
        records.append(rec)
        if sink is not None:
            sink.record(rec)
    summary = summarise(records)
    summary.update(variant=variant, connectivity=connectivity, lcc=lcc)
    return records, summary
