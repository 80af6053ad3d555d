"""Presentation-attack-detection metrics (ISO/IEC 30107-3; OULU-NPU / IJCB 2017 competition conventions).

Scores are higher for bona fide; a presentation is called an attack when s < τ.

* APCER_S(τ) = |attacks of species S with s ≥ τ| / N_S and **APCER = max_S APCER_S** (ISO/IEC 30107-3 reports
  per species; the OULU-NPU protocols take the worst case). The pooled rate is reported only as
  `apcer_pooled_info`. BPCER(τ) = |bona fide with s < τ| / N_BF; ACER = (APCER + BPCER)/2 (OULU-NPU convention).
* EER: FAR(t) = pooled attack acceptance, FRR(t) = BPCER(t) over t ∈ unique dev scores ∪ {±∞}; between the two
  candidates where FAR − FRR changes sign both curves are interpolated linearly, giving the EER and τ_dev.
  τ_dev is fixed on dev and applied unchanged to test (HTER included: the source-dev threshold, never the
  target test set's own).
* AUC = Mann–Whitney U / (N_BF·N_A), ties counted ½. BPCER20/100: the lowest BPCER with worst-case APCER ≤ 5 %/1 %.

Defects of the public reference (`ZitongYu/CDCN` utils) avoided here: pooled instead of worst-case APCER, a
threshold search that never updates BPCER, test-set thresholds for cross-dataset HTER, a soft face-mask
normaliser (see `losses.map_scores`). [reconstructed] Where FAR = FRR holds on a whole stretch of thresholds (separable
dev scores: between the highest attack and the lowest bona fide score), τ_dev is the centre of that stretch, not its
edge, so it does not sit on the lowest live dev score; when τ would fall above every score, it is placed just above
the largest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from wisecli.cli.errors import InputError


def _arrays(scores, labels):
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=np.int64).ravel()
    if s.shape != y.shape:
        raise ValueError("scores and labels differ in length")
    return s, y


def far_frr(scores, labels, thresholds) -> tuple[np.ndarray, np.ndarray]:
    """Pooled attack acceptance and bona fide rejection at each threshold (vectorised with sorted searches)."""
    s, y = _arrays(scores, labels)
    t = np.asarray(thresholds, dtype=np.float64)
    att, bf = np.sort(s[y == 0]), np.sort(s[y == 1])
    far = (att.size - np.searchsorted(att, t, side="left")) / max(att.size, 1)
    frr = np.searchsorted(bf, t, side="left") / max(bf.size, 1)
    return far, frr


def eer(scores, labels) -> tuple[float, float]:
    """(EER, τ) by linear interpolation at the sign change of FAR − FRR over unique scores ∪ {±∞}."""
    s, y = _arrays(scores, labels)
    _require_two_classes(y, "EER")
    t = np.concatenate([[-np.inf], np.unique(s), [np.inf]])
    far, frr = far_frr(s, y, t)
    d = far - frr
    i = int(np.nonzero((d[:-1] > 0) & (d[1:] <= 0))[0][0])  # d(−∞) = 1 > 0 and d(+∞) = −1 < 0
    if d[i + 1] < 0:  # a strict sign change: linear interpolation
        alpha = d[i] / (d[i] - d[i + 1])
        rate = far[i] + alpha * (far[i + 1] - far[i])
        tau = t[i] + alpha * (t[i + 1] - t[i]) if np.isfinite(t[i + 1]) else float(np.nextafter(t[i], np.inf))
    else:  # FAR = FRR on a stretch (t_i, t_c]: τ at its centre
        c = i + 1
        while c + 1 < d.size and d[c + 1] == 0:
            c += 1
        rate, tau = far[i + 1], (t[i] + t[c]) / 2
    return float(rate), float(tau)


def error_rates(scores, labels, species: Iterable[str], tau: float) -> dict:
    """APCER (worst species), per-species APCER, pooled APCER (info), BPCER, ACER at τ."""
    s, y = _arrays(scores, labels)
    sp = np.asarray(list(species), dtype=object)
    att = y == 0
    per = {}
    for name in sorted({str(v) for v in sp[att]}):
        m = att & (sp == name)
        per[name] = float(np.mean(s[m] >= tau))
    apcer = max(per.values()) if per else float("nan")
    bpcer = float(np.mean(s[y == 1] < tau)) if np.any(y == 1) else float("nan")
    pooled = float(np.mean(s[att] >= tau)) if np.any(att) else float("nan")
    return {"apcer": apcer, "apcer_per_species": per, "apcer_pooled_info": pooled, "bpcer": bpcer,
            "acer": (apcer + bpcer) / 2}


def hter(scores, labels, tau: float) -> float:
    """Half total error rate at a given τ: (FAR + FRR)/2 with pooled attacks."""
    far, frr = far_frr(scores, labels, [tau])
    return float((far[0] + frr[0]) / 2)


def auc(scores, labels) -> float:
    """Mann–Whitney U/(N_BF·N_A) from mid-ranks (ties count ½)."""
    s, y = _arrays(scores, labels)
    _require_two_classes(y, "AUC")
    _, inv, counts = np.unique(s, return_inverse=True, return_counts=True)
    r = (np.cumsum(counts) - (counts - 1) / 2)[inv]  # mid-ranks, 1-based
    n1, n0 = int(np.sum(y == 1)), int(np.sum(y == 0))
    u = r[y == 1].sum() - n1 * (n1 + 1) / 2
    return float(u / (n1 * n0))


def bpcer_at_apcer(scores, labels, species, max_apcer: float) -> tuple[float, float]:
    """(lowest BPCER, its τ) among thresholds whose worst-case APCER ≤ max_apcer."""
    s, y = _arrays(scores, labels)
    sp = np.asarray(list(species), dtype=object)
    t = np.concatenate([np.unique(s), [np.inf]])
    worst = np.zeros(t.size)
    for name in {str(v) for v in sp[y == 0]}:
        a = np.sort(s[(y == 0) & (sp == name)])
        worst = np.maximum(worst, (a.size - np.searchsorted(a, t, side="left")) / a.size)
    ok = worst <= max_apcer + 1e-12
    i = int(np.argmax(ok))  # APCER falls with t, BPCER rises: the smallest feasible t wins
    bf = np.sort(s[y == 1])
    tau = float(t[i]) if np.isfinite(t[i]) else float(np.nextafter(s.max(), np.inf))
    return float(np.searchsorted(bf, t[i], side="left") / max(bf.size, 1)), tau


def _require_two_classes(y: np.ndarray, what: str, where: str = "") -> None:
    if not (np.any(y == 1) and np.any(y == 0)):
        have = "bona fide" if np.any(y == 1) else "attack" if np.any(y == 0) else "no"
        raise InputError(f"{what} needs bona fide and attack scores{where}; only {have} samples found",
                         "score both live and spoof presentations")


def _species_of(rec: dict, by: str) -> str:
    if by == "instrument" and rec.get("instrument"):
        return str(rec["instrument"])
    return str(rec.get("attack_type") or "attack")


def flatten(records: list[dict], level: str) -> list[dict]:
    """Scored records at video level (as given) or frame level (one entry per scored frame)."""
    out = []
    for r in records:
        if r.get("status", "ok") != "ok" or r.get("score") is None:
            continue
        if level == "frame" and r.get("frames"):
            for f in r["frames"]:
                if f.get("score") is not None:
                    out.append({**r, "score": f["score"], "frames": None})
        else:
            out.append(r)
    return out


def _columns(records: list[dict], species: str):
    for r in records:
        if "label" not in r or r["label"] is None:
            raise InputError(f"score record for {r.get('input', '?')} has no label",
                             "score a dataset layout or manifest (--layout/--manifest) so records carry labels")
    try:
        s = np.array([float(r["score"]) for r in records])
        y = np.array([1 if int(r["label"]) == 1 else 0 for r in records])
    except (TypeError, ValueError):
        raise InputError("a score record holds a score or label that is not a number",
                         "records carry a numeric score and label 1 (bona fide) or 0 (attack)") from None
    if not np.isfinite(s).all():
        raise InputError("a score record holds a NaN or infinite score", "scores are finite numbers")
    sp = [_species_of(r, species) if yy == 0 else "bona_fide" for r, yy in zip(records, y)]
    subj = [str(r.get("subject", r.get("input", i))) for i, r in enumerate(records)]
    return s, y, sp, subj


def evaluate_scores(test: list[dict], dev: list[dict] | None, *, threshold: str = "dev-eer", level: str = "video",
                    species: str = "type", cross: bool = False, compat: bool = False, bootstrap: int = 0,
                    seed: int = 0, warn=None) -> dict:
    """Every metric of spec §5 for test records, with τ chosen on dev records by `threshold`."""
    test = flatten(test, level)
    dev = flatten(dev or [], level)
    if not test:
        raise InputError("no scored test records", "check the --scores file (records need status ok and a score)")
    s, y, sp, subj = _columns(test, species)
    _require_two_classes(y, "evaluation", " in the test scores")
    rule = threshold
    if threshold.startswith("fixed:"):
        try:
            tau = float(threshold.split(":", 1)[1])
        except ValueError:
            raise InputError(f"bad threshold rule {threshold!r}", "use fixed:0.5") from None
    elif threshold == "dev-eer" or threshold.startswith("bpcer-at-apcer:"):
        if not dev:
            raise InputError(f"--threshold {threshold} needs dev scores", "give --dev-scores dev.jsonl (or --dev DIR), "
                             "or use --threshold fixed:X")
        ds, dy, dsp, _ = _columns(dev, species)
        _require_two_classes(dy, "the dev threshold", " in the dev scores")
        if threshold == "dev-eer":
            _, tau = eer(ds, dy)
        else:
            try:
                target = float(threshold.split(":", 1)[1])
            except ValueError:
                raise InputError(f"bad threshold rule {threshold!r}", "use bpcer-at-apcer:0.05") from None
            _, tau = bpcer_at_apcer(ds, dy, dsp, target)
        expected = {x for x, yy in zip(dsp, dy) if yy == 0}
        missing = sorted(expected - {x for x, yy in zip(sp, y) if yy == 0})
        if missing and warn:
            warn(f"attack species absent from test, left out of the worst-case APCER: {', '.join(missing)}")
    else:
        raise InputError(f"unknown threshold rule {threshold!r}", "use dev-eer, fixed:X or bpcer-at-apcer:0.05")
    out = {"threshold": tau, "threshold_rule": rule, "level": level, "species": species}
    out.update(error_rates(s, y, sp, tau))
    test_eer, test_tau = eer(s, y)
    out["eer"] = test_eer
    out["auc"] = auc(s, y)
    out["bpcer20"] = bpcer_at_apcer(s, y, sp, 0.05)[0]
    out["bpcer100"] = bpcer_at_apcer(s, y, sp, 0.01)[0]
    out["hter"] = hter(s, y, tau)
    out["cross"] = bool(cross)
    out["n_bona_fide"], out["n_attack"] = int(np.sum(y == 1)), int(np.sum(y == 0))
    if compat:
        out["compat"] = {"hter_target_eer": hter(s, y, test_tau),
                         "note": "optimistic: threshold chosen on test"}
    if bootstrap:
        out["bootstrap"] = bootstrap_ci(s, y, sp, subj, tau, bootstrap, seed)
    return out


def bootstrap_ci(s, y, sp, subj, tau: float, n: int, seed: int = 0) -> dict:
    """Subject-level bootstrap (resample subjects with replacement, τ fixed): 95 % percentile intervals."""
    rng = np.random.default_rng(seed)
    subjects = sorted(set(subj))
    index = {k: np.nonzero(np.asarray(subj, dtype=object) == k)[0] for k in subjects}
    sp = np.asarray(sp, dtype=object)
    draws = {"apcer": [], "bpcer": [], "acer": [], "hter": []}
    for _ in range(int(n)):
        pick = rng.integers(0, len(subjects), len(subjects))
        idx = np.concatenate([index[subjects[k]] for k in pick])
        yy = y[idx]
        if not (np.any(yy == 1) and np.any(yy == 0)):
            continue
        r = error_rates(s[idx], yy, sp[idx], tau)
        for k in ("apcer", "bpcer", "acer"):
            draws[k].append(r[k])
        draws["hter"].append(hter(s[idx], yy, tau))
    return {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] if v else [math.nan, math.nan]
            for k, v in draws.items()} | {"n": int(n), "unit": "subject"}
