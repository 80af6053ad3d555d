"""Our side of the race (spec §7): R replicates in lock-step for rounds 1…T on the device, timed with
`runtime.bench.race` against the peer loop on the same host; plus the planner's agreement with scipy SLSQP."""

from __future__ import annotations

import math

import numpy as np
import torch

from wisecli.runtime.results import BenchRecords

from . import algorithm as alg
from . import synthetic as syn


def slsqp_gap(samples: int = 20, seed: int = 0) -> float:
    """Max relative gap |ours − SLSQP| / max(1, |SLSQP|) of the optimistic value over random small programs."""
    from scipy.optimize import minimize

    rng = np.random.default_rng(seed)
    worst = 0.0
    for _ in range(samples):
        d = int(rng.integers(2, 4))
        n = int(rng.integers(3, 30))
        X = syn.ball_points(rng, (n,), d)
        th_star = rng.standard_normal(d)
        y = (rng.random(n) < 1 / (1 + np.exp(-X @ th_star))).astype(float)
        lam, S = float(d), 3.0
        Xt, yt = torch.tensor(X)[None], torch.tensor(y)[None]
        th_hat, _ = alg.fit_mle(Xt, yt, lam, torch.zeros(1, d, dtype=torch.float64))
        L_hat = alg.log_loss(th_hat, Xt, yt, lam)
        beta = torch.tensor([float(rng.uniform(0.5, 5))], dtype=torch.float64)
        a = syn.ball_points(rng, (1,), d)
        if float(th_hat.norm()) >= 0.999 * S:
            continue
        val, _ = alg.plan(torch.tensor(a)[None], Xt, yt, lam, L_hat, beta, th_hat, S)

        def loss(th):
            z = X @ th
            return np.sum(np.logaddexp(0, z) - y * z) + lam / 2 * th @ th
        cons = [{"type": "ineq", "fun": lambda th: float(beta) + float(L_hat) - loss(th)},
                {"type": "ineq", "fun": lambda th: S * S - th @ th}]
        res = minimize(lambda th: -a[0] @ th, th_hat[0].numpy(), method="SLSQP", constraints=cons,
                       options={"ftol": 1e-14, "maxiter": 500})
        ref = -res.fun
        worst = max(worst, abs(float(val[0, 0]) - ref) / max(1.0, abs(ref)))
    return worst


def run_benchmark(device: torch.device, *, algos: list[str], replicates: int, rounds: int, peer: str,
                  quick: bool) -> BenchRecords:
    """One record per algorithm: seconds per replicate-round, ours (R replicates) and the peer (one replicate)."""
    import importlib.util

    from wisecli.runtime.bench import race
    from wisecli.runtime.device import one_cpu_thread

    from . import peers
    from .predict import simulate

    use = "loop"  # auto: the loop; calling an installed logbexp is not wired in (it is not on PyPI)
    if peer == "logbexp":
        from wisecli.cli.errors import InputError

        why = "is not importable" if importlib.util.find_spec("logbexp") is None else "has no adapter here yet"
        raise InputError(f"--peer logbexp: the package {why}", hint="use --peer loop (or auto)")
    S = syn.s_from_kappa(400.0)
    env = syn.make_env(dim=2, arms=20, theta_norm=S - 1, S=S, arm_set="fixed", horizon=rounds, seed=0,
                       replicates=list(range(replicates)))
    cfg = {"norm_constraint": True, "lazy_every": 1, "projection": "ball", "ts_scale": 1.0}
    peer_rounds = rounds if not quick else min(rounds, 5)
    recs = []
    for algo in algos:
        def ours():
            with one_cpu_thread(device):
                return simulate(algo, env, horizon=rounds, S=S, delta=0.05, seed=0, cfg=cfg, dtype=torch.float64,
                                device=device)

        arms0, th0, U0 = env.arms[0].numpy(), env.theta_star[0].numpy(), env.U[0].numpy()
        fn = peers.ofulogr_loop if algo == "ofulog-r" else peers.ecolog_loop

        def theirs():
            return fn(arms0, th0, U0, S, 0.05, peer_rounds)

        rec = race(algo, ours, theirs, device=device, peer_name=f"{use} ({algo})", repeats=1, warmup=0,
                   peer_repeats=1, peer_warmup=0, replicates=replicates, rounds=rounds, peer_rounds=peer_rounds)
        rec.ours_s = rec.ours_s / (replicates * rounds)
        rec.peer_s = rec.peer_s / peer_rounds if rec.peer_s is not None else None
        rec.extra["algo"] = algo
        recs.append(rec)
    gap = slsqp_gap(samples=5 if quick else 50)
    for r in recs:
        r.extra["slsqp_max_rel_gap"] = gap
    return BenchRecords(recs, summary={"device": recs[0].device if recs else None, "kappa": 400.0, "dim": 2,
                                       "arms": 20, "slsqp_max_rel_gap": gap,
                                       "note": "seconds per replicate-round; peer: one replicate"})
