"""Leakage-free evaluation of CS signatures and the baselines (spec §5).

Classifier/regressor: random forest with 50 trees (the authors' harness), ``random_state`` = seed + repeat.
Scores: weighted and per-class F1, or NRMSE = RMSE / (max y − min y) of the fold's true values; mean ± 1.96·std/√n.

Protocols:
- ``blocked`` (default): K contiguous time folds per series; ⌈W/step⌉ windows on each side of the test fold are
  dropped from training, and the CS model (min, max, π) is fitted on the samples of the training windows only.
- ``shuffled``: the paper's window-level K-fold after a seeded shuffle, distinct per repeat.
- ``group``: folds by series (a run of a 3-D array, a file, a node); with a single labelled series, by
  repetition (the k-th contiguous segment of each label is repetition k), which is leave-one-repetition-out for
  ``record`` files.
- ``split``: fit and train on the inputs, test on ``--test`` inputs.

Quirks: Q1 fits the CS model once on all data (test included); Q7 joins all series end to end before windowing;
Q8 uses one unseeded partial-swap shuffle with identical folds in every repeat and treats all folds × repeats as
independent scores. Without Q8, repeats that share their folds (blocked, group, split) are averaged per fold
before the confidence interval, so n is the number of distinct test folds.

Choices where the spec is silent: a window's label is the label at its last sample (``mixed='drop'`` discards
windows whose W+1 samples hold two labels); windows with an empty label or any NaN are skipped and counted; the
regression target is the target at the window's last sample; timings run single-threaded on up to 2 000 windows.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from wisecli.cli.errors import InputError

from . import peers as BL
from .algorithm import Quirks, fit, signatures, window_ends
from .data import Series, concat

DEFAULT_METHODS = "cs:5,cs:10,cs:20,cs:40,tuncer,bodik,lan,stats"


@dataclass
class Windows:
    """The usable windows of one series: end samples, targets and group ids."""

    series: Series
    ends: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    skipped: int


def parse_methods(spec: str) -> list[tuple[str, int | None]]:
    out = []
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        if part.startswith("cs"):
            b = part.split(":", 1)[1] if ":" in part else "20"
            if not b.isdigit() or int(b) < 1:
                raise InputError(f"bad method {part!r}", hint="CS methods are written cs:B with B ≥ 1, e.g. cs:20")
            out.append(("cs", int(b)))
        elif part in BL.BASELINES:
            if part == "minirocket" and not BL.have_aeon():
                raise InputError("the minirocket baseline needs aeon", hint="pip install 'wisecli[rocket]'")
            out.append((part, None))
        else:
            raise InputError(f"unknown method {part!r}", hint=f"choose from cs:B, {', '.join(BL.BASELINES)}")
    if not out:
        raise InputError("no methods given", hint=f"e.g. --methods {DEFAULT_METHODS}")
    return out


def repetitions(labels: np.ndarray) -> np.ndarray:
    """Per sample, the repetition number: the k-th contiguous segment of a label is repetition k."""
    seg_start = np.r_[True, labels[1:] != labels[:-1]]
    rep = np.zeros(len(labels), dtype=np.int64)
    count: dict = {}
    cur = 0
    for i in np.flatnonzero(seg_start).tolist() + [len(labels)]:
        if i < len(labels):
            lab = labels[i]
            cur = count.get(lab, 0)
            count[lab] = cur + 1
            nxt = np.flatnonzero(seg_start[i + 1:])
            stop = i + 1 + int(nxt[0]) if len(nxt) else len(labels)
            rep[i:stop] = cur
    return rep


def make_windows(series: list[Series], W: int, step: int, task: str, quirks: Quirks, mixed: str = "last",
                 by_repetition: bool = False) -> list[Windows]:
    if "Q7" in quirks and len(series) > 1:
        series = [concat(series)]
    out = []
    for k, s in enumerate(series):
        if s.T < W + 1:
            continue
        ends = window_ends(s.T, W, step, quirks)
        bad = np.isnan(s.values).any(axis=1).astype(np.int64)
        cb = np.r_[0, np.cumsum(bad)]
        ok = cb[ends + 1] - cb[ends - W] == 0
        if task == "classify":
            if s.labels is None:
                raise InputError(f"{s.name}: no labels", hint="give --label-col NAME or --labels FILE")
            y = s.labels[ends]
            ok &= y != ""
            if mixed == "drop":
                change = np.r_[0, np.cumsum(s.labels[1:] != s.labels[:-1])]
                ok &= change[ends] == change[ends - W]
        else:
            tgt = s.target if s.target is not None else None
            if tgt is None:
                raise InputError(f"{s.name}: no regression target", hint="give --target-col NAME")
            y = tgt[ends]
            ok &= ~np.isnan(y)
        if by_repetition and s.labels is not None:
            groups = repetitions(s.labels)[ends].astype(str)
        else:
            groups = np.full(len(ends), s.group or s.name or str(k), dtype=object).astype(str)
        out.append(Windows(s, ends[ok], y[ok], groups[ok], int((~ok).sum())))
    if not out or sum(len(w.ends) for w in out) == 0:
        raise InputError(f"no usable windows (every series shorter than W+1 = {W + 1} samples, or all skipped)",
                         hint="lower --window, or give longer inputs")
    return out


def partial_swap_shuffle(n: int) -> np.ndarray:
    """Q8: the reference's unseeded shuffle, n/2 random swaps (not a uniform permutation)."""
    rng = np.random.default_rng()
    p = np.arange(n)
    for _ in range(n // 2):
        i, j = rng.integers(n, size=2)
        p[i], p[j] = p[j], p[i]
    return p


def make_folds(cv: str, wins: list[Windows], k: int, repeats: int, seed: int, W: int, step: int,
               quirks: Quirks) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """(repeat, split id, train indices, test indices) over the concatenated windows of ``wins``."""
    offs = np.cumsum([0] + [len(w.ends) for w in wins])
    n = int(offs[-1])
    out = []
    if cv == "blocked":
        gap = math.ceil(W / step)
        for f in range(k):
            test, drop = [], []
            for w, o in zip(wins, offs):
                m = len(w.ends)
                lo, hi = f * m // k, (f + 1) * m // k
                test.append(np.arange(lo, hi) + o)
                drop.append(np.arange(max(0, lo - gap), min(m, hi + gap)) + o)
            te, dr = np.concatenate(test), np.concatenate(drop)
            tr = np.setdiff1d(np.arange(n), dr)
            if len(te) and len(tr):
                out += [(r, f, tr, te) for r in range(repeats)]
    elif cv == "shuffled":
        same = "Q8" in quirks
        base = partial_swap_shuffle(n) if same else None
        for r in range(repeats):
            p = base if same else np.random.default_rng(seed + r).permutation(n)
            for f in range(k):
                te = np.sort(p[f * n // k:(f + 1) * n // k])
                out.append((r, f if same else r * k + f, np.setdiff1d(np.arange(n), te), te))
    elif cv == "group":
        g = np.concatenate([w.groups for w in wins])
        uniq = sorted(set(g.tolist()))
        if len(uniq) < 2:
            raise InputError("--cv group needs at least two groups (runs, files or repetitions)",
                             hint="give several inputs or runs, or use --cv blocked")
        kk = min(k, len(uniq))
        fold_of = {u: i % kk for i, u in enumerate(uniq)}
        fg = np.array([fold_of[v] for v in g.tolist()])
        for f in range(kk):
            te = np.flatnonzero(fg == f)
            out += [(r, f, np.flatnonzero(fg != f), te) for r in range(repeats)]
    else:
        raise InputError(f"unknown --cv {cv!r}", hint="blocked, shuffled, group or split")
    return out


def training_samples(wins: list[Windows], idx: np.ndarray, W: int) -> list[np.ndarray]:
    """Per series, the samples covered by the given windows (what the CS model may be fitted on)."""
    offs = np.cumsum([0] + [len(w.ends) for w in wins])
    out = []
    for w, o in zip(wins, offs):
        sel = idx[(idx >= o) & (idx < o + len(w.ends))] - o
        if len(sel) == 0:
            continue
        cover = np.zeros(w.series.T + 1, dtype=np.int64)
        np.add.at(cover, w.ends[sel] - W, 1)
        np.add.at(cover, w.ends[sel] + 1, -1)
        mask = np.cumsum(cover[:-1]) > 0
        out.append(w.series.values[mask])
    return out


def cs_features(model, wins: list[Windows], W: int, step: int, blocks: int) -> np.ndarray:
    return np.concatenate([signatures(model, w.series.values, window=W, step=step, blocks=blocks, ends=w.ends)
                           for w in wins], axis=0)


def info_loss(model, series: list[Series], W: int, step: int, blocks: int, renormalize: bool = False) -> float:
    """Jensen–Shannon information loss of CS signatures (the authors' ``csdivergence``; spec §5)."""
    from scipy.spatial.distance import jensenshannon

    vals = []
    for s in series:
        if s.T < W + 2:
            continue
        N = np.clip((s.values - model.fmin) / (model.fmax - model.fmin + model.eps), 0, 1)[:, model.order].T
        S = N.shape[0]
        re_u, im_u = N[:, 1:], np.diff(N, axis=1)
        sig = signatures(model, s.values, window=W, step=step, blocks=blocks)
        nb = sig.shape[1] // 2
        re_s, im_s = sig[:, :nb].T, sig[:, nb:].T
        if renormalize:
            def mm(a):
                lo, hi = a.min(axis=1, keepdims=True), a.max(axis=1, keepdims=True)
                return (a - lo) / np.where(hi > lo, hi - lo, 1.0)
            re_s, im_s = mm(re_s), mm(im_s) * 2 - 1
        rows = np.minimum(np.arange(S) * nb // S, nb - 1)  # nearest-neighbour resampling to S rows

        def hist(a, bins, rng):
            h = np.stack([np.histogram(r, bins=bins, range=rng)[0] for r in a]).astype(np.float64)
            return h / a.shape[1] / S

        out = []
        for u, sg, bins, rng in ((re_u, re_s, 100, (0, 1)), (im_u, im_s, 200, (-1, 1))):
            p, q = hist(u, bins, rng).ravel(), hist(sg, bins, rng)[rows].ravel()
            out.append(float(jensenshannon(p, q, base=2) ** 2))
        vals.append(np.mean(out))
    return float(np.mean(vals)) if vals else float("nan")


def majority_accuracy(groups: np.ndarray, y: np.ndarray, pred: np.ndarray) -> float:
    """Run-level accuracy: per group (run, file, repetition) the majority prediction against the majority label."""
    from collections import Counter

    hits = []
    for g in sorted(set(groups.tolist())):
        m = groups == g
        hits.append(Counter(pred[m].tolist()).most_common(1)[0][0] == Counter(y[m].tolist()).most_common(1)[0][0])
    return float(np.mean(hits))


def _time_features(fn, n: int) -> float:
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ts = []
        for _ in range(5):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(old)
    return float(np.median(ts)) / max(1, n) * 1e6


def evaluate(series: list[Series], *, methods: str = DEFAULT_METHODS, window: int = 60, step: int = 10,
             cv: str = "blocked", folds: int = 5, repeats: int = 5, seed: int = 0, task: str = "classify",
             test: list[Series] | None = None, info: bool = False, renormalize: bool = False, quirks=None,
             mixed: str = "last", progress=None, convention: str = "scripts") -> list[dict]:
    """One record per method (spec §3 ``evaluate``)."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.metrics import f1_score

    q = Quirks.parse(quirks)
    if window < 1 or step < 1:
        raise InputError("--window and --step must be at least 1", hint="e.g. --window 60 --step 10")
    if folds < 2 and cv != "split":
        raise InputError("--folds must be at least 2", hint="e.g. --folds 5")
    meths = parse_methods(methods)
    if cv == "split" and not test:
        raise InputError("--cv split needs --test inputs", hint="give --test FILE, or another --cv")
    if test and cv != "split":
        cv = "split"
    single = len(series) == 1 and cv == "group"
    wins = make_windows(series, window, step, task, q, mixed, by_repetition=single)
    if cv == "split":
        twins = make_windows(test, window, step, task, q, mixed)
        allw = wins + twins
        ntr = sum(len(w.ends) for w in wins)
        nall = ntr + sum(len(w.ends) for w in twins)
        splits = [(r, 0, np.arange(ntr), np.arange(ntr, nall)) for r in range(repeats)]
    else:
        allw = wins
        splits = make_folds(cv, wins, folds, repeats, seed, window, step, q)
    from wisecli.runtime.progress import progress as progress_lines

    with progress_lines("smooth evaluate", len(meths) * len(splits)) as advance:
        y = np.concatenate([w.y for w in allw])
        classes = sorted(set(y.tolist())) if task == "classify" else None
        ref_model = fit([w.series.values for w in allw], blocks=20, window=window, step=step, quirks=q,
                        convention=convention)
        base_cache: dict[str, np.ndarray] = {}
        records = []
        for name, B in meths:
            label = f"cs:{B}" if name == "cs" else name
            scores, per_class, fit_secs, split_ids, run_acc = [], [], [], [], []
            gids = np.concatenate([w.groups for w in allw])
            q1_model = None
            for r, sid, tr, te in splits:
                if progress:
                    progress(f"{label}: split {sid} repeat {r}")
                advance()
                if name == "cs":
                    t0 = time.perf_counter()
                    if "Q1" in q:
                        q1_model = q1_model or fit([w.series.values for w in allw], blocks=B, window=window, step=step,
                                                   quirks=q, convention=convention)
                        model = q1_model
                    else:
                        model = fit(training_samples(allw, tr, window), blocks=B, window=window, step=step, quirks=q,
                                    convention=convention)
                    fit_secs.append(time.perf_counter() - t0)
                    F = cs_features(model, allw, window, step, B)
                elif name == "minirocket":
                    wv = np.concatenate([BL.windows_view(w.series.values, w.ends, window) for w in allw])
                    t0 = time.perf_counter()
                    mr = BL.MiniRocketFeatures(seed + r).fit(wv[tr])
                    fit_secs.append(time.perf_counter() - t0)
                    F = np.zeros((len(wv), 0))
                    Ftr, Fte = mr.transform(wv[tr]), mr.transform(wv[te])
                else:
                    if name not in base_cache:
                        base_cache[name] = np.concatenate([BL.features(name, w.series.values, w.ends, window, q)
                                                           for w in allw])
                    F = base_cache[name]
                if name != "minirocket":
                    Ftr, Fte = F[tr], F[te]
                if task == "classify":
                    clf = RandomForestClassifier(n_estimators=50, random_state=seed + r, n_jobs=1).fit(Ftr, y[tr])
                    pred = clf.predict(Fte)
                    scores.append(f1_score(y[te], pred, average="weighted", zero_division=0))
                    per_class.append(f1_score(y[te], pred, average=None, labels=classes, zero_division=0))
                    run_acc.append(majority_accuracy(gids[te], y[te], pred))
                else:
                    reg = RandomForestRegressor(n_estimators=50, random_state=seed + r, n_jobs=1).fit(Ftr, y[tr])
                    pred = reg.predict(Fte)
                    span = float(y[te].max() - y[te].min()) or 1.0
                    scores.append(float(np.sqrt(np.mean((pred - y[te]) ** 2)) / span))
                split_ids.append(sid)
            scores = np.asarray(scores, dtype=np.float64)
            if "Q8" in q:
                per_split = scores
            else:
                ids = np.asarray(split_ids)
                per_split = np.array([scores[ids == i].mean() for i in sorted(set(split_ids))])
            n = len(per_split)
            ci = 1.96 * (per_split.std(ddof=1) if n > 1 else 0.0) / math.sqrt(n)
            w0 = allw[0]
            nt = min(2000, len(w0.ends))
            if name == "cs":
                sig_len = 2 * min(B, ref_model.n_sensors)
                m_all = fit([w.series.values for w in allw], blocks=B, window=window, step=step, quirks=q,
                            convention=convention)
                us = _time_features(lambda: signatures(m_all, w0.series.values, window=window, blocks=B,
                                                       ends=w0.ends[:nt]), nt)
            elif name == "minirocket":
                sig_len = int(Ftr.shape[1])
                us = _time_features(lambda: mr.transform(BL.windows_view(w0.series.values, w0.ends[:nt], window)), nt)
            else:
                sig_len = BL.PER_SENSOR[name] * ref_model.n_sensors
                us = _time_features(lambda: BL.features(name, w0.series.values, w0.ends[:nt], window, q), nt)
            rec = {"method": label, "signature_len": sig_len}
            if task == "classify":
                rec.update(f1_weighted=float(per_split.mean()), f1_ci95=float(ci),
                           f1_per_class={c: float(v) for c, v in zip(classes, np.mean(per_class, axis=0))})
                if cv in ("split", "group"):
                    rec["run_accuracy"] = float(np.mean(run_acc))
            else:
                rec.update(nrmse=float(per_split.mean()), nrmse_ci95=float(ci))
            rec.update(us_per_signature=us, fit_seconds=float(np.mean(fit_secs)) if fit_secs else 0.0,
                       windows=int(len(y)), cv=cv)
            if info and name == "cs":
                rec["info_loss"] = info_loss(m_all, [w.series for w in allw], window, step, B, renormalize)
            records.append(rec)
        return records
