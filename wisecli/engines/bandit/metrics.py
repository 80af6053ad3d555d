"""Regret summaries (spec §5): mean with a percentile-bootstrap CI over replicates, median and IQR, paired
differences against a reference algorithm (bootstrap CI and a two-sided sign-flip permutation p-value), and
the ordering check of `evaluate --expect-order`.

Choices: the cumulative regret at a round t that the record's grid does not hold is linearly interpolated
between the recorded rounds (exact on the grid, and exact everywhere for `--curve-points` = horizon); the
bootstrap and the sign flips use numpy generators seeded with 0, so a summary is reproducible. Pairs match on
(seed, replicate); a record without a partner is summarised unpaired and the row says `paired: false`.
"""

from __future__ import annotations

import json
import math

import numpy as np

from wisecli.cli.errors import InputError


def read_jsonl_lines(lines: list[str], where: str) -> list[dict]:
    """Curve records from JSONL lines; a malformed line is an input error naming `where` and the line."""
    out = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}:{i}: not a JSON record ({exc.msg})",
                             hint="curves.jsonl holds one JSON object per line, as `wise bandit run` writes it") from None
        if not isinstance(rec, dict) or not {"algo", "replicate", "t", "cum_regret", "env"} <= set(rec):
            raise InputError(f"{where}:{i}: not a curve record (needs algo, replicate, env, t, cum_regret)",
                             hint="give the curves.jsonl that `wise bandit run` writes")
        t, c = rec["t"], rec["cum_regret"]
        if not (isinstance(t, list) and isinstance(c, list) and len(t) == len(c) and t):
            raise InputError(f"{where}:{i}: t and cum_regret must be lists of equal length",
                             hint="give the curves.jsonl that `wise bandit run` writes")
        out.append(rec)
    return out


def value_at(rec: dict, t: float) -> float:
    """Cumulative regret at round t (linear interpolation on the recorded grid, 0 at round 0)."""
    ts = np.concatenate([[0.0], np.asarray(rec["t"], dtype=np.float64)])
    cs = np.concatenate([[0.0], np.asarray([np.nan if v is None else v for v in rec["cum_regret"]], dtype=np.float64)])
    return float(np.interp(t, ts, cs))


def bootstrap_ci(values: np.ndarray, *, resamples: int = 2000, level: float = 0.95, seed: int = 0) -> list[float]:
    """Percentile-bootstrap CI of the mean over replicates (one value: [v, v])."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return [math.nan, math.nan]
    if v.size == 1:
        return [float(v[0]), float(v[0])]
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(resamples, v.size))].mean(1)
    a = (1 - level) / 2
    return [float(np.quantile(means, a)), float(np.quantile(means, 1 - a))]


def sign_flip_p(diffs: np.ndarray, *, flips: int = 10_000, seed: int = 0) -> float:
    """Two-sided sign-flip permutation p-value of mean(diffs) = 0: (1 + #{|flipped mean| ≥ |mean|})/(1 + flips)."""
    d = np.asarray(diffs, dtype=np.float64)
    if d.size == 0:
        return math.nan
    rng = np.random.default_rng(seed)
    signs = rng.integers(0, 2, size=(flips, d.size)) * 2 - 1
    null = np.abs((signs * d).mean(1))
    obs = abs(d.mean())
    return float((1 + np.sum(null >= obs * (1 - 1e-12))) / (1 + flips))


def _by_key(records: list[dict], algo: str) -> dict:
    return {(tuple(r["seed"]) if isinstance(r.get("seed"), list) else r.get("seed"), r["replicate"]): r
            for r in records if r["algo"] == algo and r.get("status", "ok") == "ok"}


def paired(records: list[dict], a: str, b: str, t: float, *, resamples: int, level: float) -> dict:
    """A − B at round t over matched (seed, replicate) pairs: mean, bootstrap CI, sign-flip p, n pairs."""
    ra, rb = _by_key(records, a), _by_key(records, b)
    keys = sorted(set(ra) & set(rb), key=str)
    if keys:
        d = np.array([value_at(ra[k], t) - value_at(rb[k], t) for k in keys])
        return {"diff": float(d.mean()), "ci": bootstrap_ci(d, resamples=resamples, level=level),
                "p": sign_flip_p(d), "n": len(keys), "paired": True}
    va = np.array([value_at(r, t) for r in ra.values()])
    vb = np.array([value_at(r, t) for r in rb.values()])
    if va.size == 0 or vb.size == 0:
        return {"diff": math.nan, "ci": [math.nan, math.nan], "p": math.nan, "n": 0, "paired": False}
    rng = np.random.default_rng(0)
    boots = (va[rng.integers(0, va.size, (resamples, va.size))].mean(1)
             - vb[rng.integers(0, vb.size, (resamples, vb.size))].mean(1))
    q = (1 - level) / 2
    return {"diff": float(va.mean() - vb.mean()), "ci": [float(np.quantile(boots, q)), float(np.quantile(boots, 1 - q))],
            "p": math.nan, "n": 0, "paired": False}


def summarize(records: list[dict], *, at: list[float], level: float = 0.95, resamples: int = 2000,
              reference: str | None = None, group: str | None = None) -> list[dict]:
    """The evaluate rows: one per (algorithm, t): algo, t, n, mean, ci, median, iqr, diff_vs_ref, diff_ci,
    p_paired, paired, d_sqrt_t_over_kstar (d·√(t/κ*) averaged over replicates)."""
    algos = []
    for r in records:
        if r["algo"] not in algos:
            algos.append(r["algo"])
    rows = []
    for algo in algos:
        recs = [r for r in records if r["algo"] == algo and r.get("status", "ok") == "ok"]
        for t in at:
            v = np.array([value_at(r, t) for r in recs])
            ks = [r["env"].get("kappa_star") for r in recs if r["env"].get("kappa_star")]
            order = float(np.mean([r["env"]["dim"] * math.sqrt(t / k) for r, k in
                                   zip(recs, ks)])) if ks else math.nan
            row = {"algo": algo, "t": t, "n": int(v.size), "mean": float(v.mean()) if v.size else math.nan,
                   "ci": bootstrap_ci(v, resamples=resamples, level=level),
                   "median": float(np.median(v)) if v.size else math.nan,
                   "iqr": [float(np.quantile(v, 0.25)), float(np.quantile(v, 0.75))] if v.size else [math.nan] * 2,
                   "diff_vs_ref": None, "diff_ci": None, "p_paired": None, "paired": None,
                   "d_sqrt_t_over_kstar": order}
            if group is not None:
                row = {"group": group, **row}
            if reference is not None and algo != reference:
                pr = paired(records, algo, reference, t, resamples=resamples, level=level)
                row.update(diff_vs_ref=pr["diff"], diff_ci=pr["ci"], p_paired=pr["p"], paired=pr["paired"])
            rows.append(row)
    return rows


def parse_order(text: str) -> list[tuple[str, str]]:
    """"a<b<c" → [(a, b), (b, c)]."""
    parts = [p.strip() for p in text.split("<")]
    if len(parts) < 2 or not all(parts):
        raise InputError(f"--expect-order {text!r}: write algorithms joined by '<'",
                         hint='for example --expect-order "ofulog-r<ecolog<glm-ucb"')
    return list(zip(parts[:-1], parts[1:]))


def check_order(records: list[dict], pairs: list[tuple[str, str]], t: float, *, resamples: int,
                level: float) -> list[dict]:
    """Each stated pair a < b at round t: the paired CI of a − b must lie below 0."""
    out = []
    for a, b in pairs:
        pr = paired(records, a, b, t, resamples=resamples, level=level)
        hi = pr["ci"][1]
        out.append({"pair": f"{a}<{b}", "t": t, "diff": pr["diff"], "ci": pr["ci"], "paired": pr["paired"],
                    "ok": bool(hi is not None and math.isfinite(hi) and hi < 0)})
    return out


def summarize_final(records: list[dict], algos: list[str]) -> dict:
    """Final-regret summary per algorithm (the run's summary.json and its table)."""
    out = {}
    for algo in algos:
        recs = [r for r in records if r["algo"] == algo]
        ok = [r for r in recs if r.get("status", "ok") == "ok"]
        v = np.array([r["final_regret"] for r in ok], dtype=np.float64)
        out[algo] = {"n": int(v.size), "errors": len(recs) - len(ok),
                     "final_regret_mean": float(v.mean()) if v.size else None,
                     "ci": bootstrap_ci(v) if v.size else None,
                     "final_regret_median": float(np.median(v)) if v.size else None}
    return out
