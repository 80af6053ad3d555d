"""Simulation (the `run` verb and the demo): every algorithm over R replicates in lock-step on one device,
curve records appended to `curves.jsonl` as each algorithm finishes, then `summary.json`, the plot and
`run.json` written atomically.

Records: one per (algorithm, replicate), flushed together when the algorithm's batch finishes (replicates run
as one batch, so they finish together). `env_hash` is a hash of the environment settings and of the algorithm
settings that change curves (norm constraint, lazy refits, projection, TS scale, dtype); `--skip-existing`
skips the (algo, replicate) pairs whose record with that hash is already in the file and simulates only the
missing replicates (a replicate's curve does not depend on the others). A replicate whose regret is not
finite is recorded with `"status": "error"`; the run goes on and ends with exit 3.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from wisecli.cli.errors import InputError

from . import algorithm as alg
from . import synthetic as syn

CURVE_SETTINGS = ("norm_constraint", "lazy_every", "projection", "ts_scale", "beta_scale", "dtype")


def curve_grid(horizon: int, points: int) -> np.ndarray:
    """The recorded rounds: `points` rounds evenly spread over 1…T, 1 and T included (1-based)."""
    return np.unique(np.round(np.linspace(1, horizon, max(1, min(points, horizon)))).astype(np.int64))


def simulate(algo: str, env: syn.Env, *, horizon: int, S: float, delta: float, seed: int, cfg: dict,
             dtype: torch.dtype, device: torch.device) -> dict:
    """Play `algo` on `env` for `horizon` rounds; returns {"regret": (R, T) per-round pseudo-regret (host float64),
    "events": {name: (R,) counts}}. Runs under `torch.inference_mode` (no autograd bookkeeping per op)."""
    with torch.inference_mode():
        return _simulate(algo, env, horizon=horizon, S=S, delta=delta, seed=seed, cfg=cfg, dtype=dtype, device=device)


def _simulate(algo: str, env: syn.Env, *, horizon: int, S: float, delta: float, seed: int, cfg: dict,
              dtype: torch.dtype, device: torch.device) -> dict:
    R = env.theta_star.shape[0]
    d = env.theta_star.shape[1]
    K = 0 if env.arms is None else env.arms.shape[-2]
    rand = syn.algo_draws(algo_index=alg.ALGOS.index(algo), seed=seed, replicates=env.replicates, arms=K,
                          horizon=horizon, dim=d, dtype=dtype, device=device)
    pol = alg.POLICIES[algo](R, d, horizon, S, delta, rand, cfg, dtype, device)
    theta_star = env.theta_star.to(device=device, dtype=dtype)
    U = env.U.to(device=device, dtype=dtype)
    best = env.best.to(device=device, dtype=dtype)
    arms_all = None if env.arms is None else env.arms.to(device=device, dtype=dtype)
    if arms_all is not None and env.arm_set == "fixed" and hasattr(pol, "bind_arms"):
        pol.bind_arms(arms_all)
    regret = torch.zeros(R, horizon, dtype=dtype, device=device)
    rows = torch.arange(R, device=device)
    for t in range(horizon):
        if arms_all is None:
            x = pol.choose_ball(t)
        else:
            A = arms_all if env.arm_set == "fixed" else arms_all[:, t]
            k = pol.choose(A, t)
            x = A[rows, k]
        m = torch.sigmoid((x * theta_star).sum(-1))
        y = (U[:, t] < m).to(dtype)
        regret[:, t] = best[:, t] - m
        pol.update(x, y)
    events = {k: v.cpu().numpy() for k, v in pol.events.items()}
    return {"regret": regret.double().cpu().numpy(), "events": events}


def env_settings(p: dict) -> dict:
    """The environment part of a record (spec §3) from the resolved settings `p`."""
    return {"env": p["env"], "dim": p["dim"], "arms": p["arms"], "arm_set": p["arm_set"],
            "kappa": round(p["kappa"], 6), "S": round(p["S"], 6), "theta_norm": round(p["theta_norm"], 6),
            "theta_direction": p["theta_direction"], "horizon": p["horizon"], "delta": p["delta"]}


def env_hash(env: dict, settings: dict) -> str:
    """A short hash of the environment and the curve-changing algorithm settings."""
    doc = json.dumps({"env": env, "settings": settings}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


def build_env(p: dict, replicates: list[int], dtype, device) -> syn.Env:
    """The environment tensors for the listed replicates (synthetic or semi-synthetic)."""
    pool = theta = None
    if p["env"] != "synthetic":
        from .data import semi_synthetic

        pool, theta = semi_synthetic(p["env"], p["dim"], p["theta_norm"])
    return syn.make_env(dim=p["dim"], arms=p["arms"], theta_norm=p["theta_norm"], S=p["S"], arm_set=p["arm_set"],
                        horizon=p["horizon"], seed=p["seed"], replicates=replicates,
                        theta_direction=p["theta_direction"], pool=pool, pool_theta=theta, dtype=torch.float64,
                        device="cpu", delta=p["delta"], kappa=p["kappa"])


def records_for(algo: str, env: syn.Env, out: dict, p: dict, grid: np.ndarray, wall: float, device_name: str,
                ehash: str, settings: dict) -> list[dict]:
    """One curve record per replicate of a finished batch."""
    cum = np.cumsum(out["regret"], axis=1)
    recs = []
    envd = env_settings(p)
    for i, r in enumerate(env.replicates):
        finite = bool(np.isfinite(cum[i]).all())
        rec = {"algo": algo, "replicate": r, "seed": [p["seed"], r],
               "env": {**envd, "kappa_star": round(float(env.info["kappa_star"][i]), 4),
                       "kappa_arms_max": round(float(env.info["kappa_arms_max"][i]), 4)},
               "env_hash": ehash, "settings": settings,
               "t": grid.tolist(), "cum_regret": [round(float(v), 6) for v in cum[i, grid - 1]],
               "final_regret": round(float(cum[i, -1]), 6) if finite else None,
               "events": {k: int(v[i]) for k, v in out["events"].items()},
               "wall_s": round(wall, 4), "device": device_name, "status": "ok" if finite else "error"}
        if not finite:
            rec["error"] = "non-finite regret (NaN)"
        recs.append(rec)
    return recs


def read_existing(path: Path) -> list[dict]:
    """The records already in a `curves.jsonl` (for --skip-existing); a malformed line is an input error."""
    from .metrics import read_jsonl_lines

    if not path.is_file():
        return []
    return read_jsonl_lines(path.read_text(encoding="utf-8").splitlines(), str(path))


def run(p: dict, *, out: Path | None, algos: list[str], device: torch.device, dtype: torch.dtype,
        skip_existing: bool, save_full: bool, plot: Path | None, sink=None, settings=None,
        write: bool = True, regret_png: bool = True) -> dict:
    """Simulate every algorithm in `algos` on the environment `p` (resolved settings); with `write`, into `out`.
    Returns {"records": [...], "summary": {...}, "outputs": [...]}."""
    from wisecli.runtime.device import device_name, oom_guard
    from wisecli.runtime.io.atomic import append_line

    from .metrics import summarize_final

    cfg = {k: p[k] for k in ("norm_constraint", "lazy_every", "projection", "ts_scale")}
    cfg["beta_scale"] = float(p.get("beta_scale", 1.0))
    curve_settings = {**cfg, "dtype": p["dtype"]}
    if cfg["beta_scale"] == 1.0:
        del curve_settings["beta_scale"]  # the paper's β_t: records (and their hash) as before the option
    envd = env_settings(p)
    ehash = env_hash(envd, curve_settings)
    grid = curve_grid(p["horizon"], p["curve_points"])
    curves = out / "curves.jsonl" if out is not None else None
    existing = read_existing(curves) if (write and skip_existing and curves is not None) else []
    done = {(r["algo"], r["replicate"]) for r in existing if r.get("env_hash") == ehash and r.get("status") == "ok"}
    all_records = [r for r in existing if r.get("env_hash") == ehash]
    full = {}
    dname = device_name(device)
    for algo in algos:
        reps = [r for r in range(p["replicates"]) if (algo, r) not in done]
        if not reps:
            if sink is not None:
                sink.info(f"{algo}: all {p['replicates']} replicates present, skipped")
            continue
        env = build_env(p, reps, dtype, device)
        t0 = time.perf_counter()
        try:
            res = oom_guard(lambda: simulate(algo, env, horizon=p["horizon"], S=p["S"], delta=p["delta"],
                                             seed=p["seed"], cfg=cfg, dtype=dtype, device=device),
                            option_hint="--replicates")
        except MemoryError:
            from wisecli.cli.errors import WorkFailed

            raise WorkFailed("out of memory", hint="lower --replicates or --horizon") from None
        wall = time.perf_counter() - t0
        recs = records_for(algo, env, res, p, grid, wall, dname, ehash, curve_settings)
        for rec in recs:
            if write and curves is not None:
                append_line(curves, json.dumps(rec))
            if sink is not None:
                sink.record(rec)
        all_records.extend(recs)
        if save_full:
            full[algo] = (reps, res["regret"])
        if sink is not None:
            sink.info(f"{algo}: {len(reps)} replicates × {p['horizon']} rounds in {wall:.1f} s")
    summary = {"env": envd, "env_hash": ehash, "settings": curve_settings, "device": dname,
               "algorithms": summarize_final(all_records, algos)}
    outputs = []
    if write and out is not None:
        from wisecli.runtime.io.atomic import save_npz, write_json

        if save_full and full:
            arrays = {}
            for algo, (reps, reg) in full.items():
                arrays[f"{algo}/replicates"] = np.asarray(reps)
                arrays[f"{algo}/regret"] = reg
            outputs.append(save_npz(out / "curves.npz", **arrays))
        outputs.append(write_json(out / "summary.json", summary))
        from .plots import regret_plot

        if regret_png:
            outputs.append(regret_plot(all_records, out / "regret.png"))
        if plot is not None:
            outputs.append(regret_plot(all_records, plot))
        if curves is not None:
            outputs.insert(0, curves)
    return {"records": all_records, "summary": summary, "outputs": outputs}


def check_finite(name: str, value) -> None:
    """A float option must be finite (NaN and inf are refused before any work)."""
    if value is not None and not math.isfinite(value):
        raise InputError(f"{name} {value} is not finite", hint=f"give a finite number for {name}")
