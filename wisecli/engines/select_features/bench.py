"""Our side of the `benchmark` race (spec §7): FM's time to a full ranking and its accuracy curve, raced against
each peer of `peers.py` (mi, rfe-lr, l1) with `runtime.bench.race` in one process, on one split and k grid.

Each race times FM afresh beside its peer (the median of `repeats` fits after one cheap warm-up fit of the same
batch shape, which also pays a `--compile`); rfe-lr and l1 are slow and deterministic, so they are timed once.
The curve is the logreg refit of `metrics.refit_logreg` on a fixed stratified 80/20 split; FM's is the mean
over seeds 0, 1, 2 (the raced seed 0 and two untimed fits), as the spec's own accuracy figures are, because one
seed's curve is off the mean by about the width of the `equal_accuracy` margin (0.01) on digits at 60
epochs: seed 0 0.830, seeds 0-2 0.836, seeds 0-9 0.841 [measured]; the peers are deterministic or (mi) only jitter. Beside the wall-clock
race the summary keeps each method's CPU seconds (`cpu_seconds`, the median over its timed calls; `cpu_ratios`
= peer / FM, above 1 where FM is cheaper): on shared cores wall time measures the neighbours too.

Data sets (issue 13.4's bands): breast-cancer-noise (569 × 60, the small-table path), digits (1,797 × 64, the
default: the middle band, real data), mnist5k (5,000 × 784, the large-table path, real data), synthetic
(1,000 × 100) and synthetic-10k (10,000 × 100, the largest table the issue names; large-table path)."""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from .config import FMConfig
from .data import bundled, split_arrays
from .metrics import refit_logreg
from .peers import RANKERS
from .train import Scaler, train_selector

PRESETS = {  # quick: a small synthetic set that runs on CPU in seconds; full: the GPU check
    True: {"dataset": "synthetic-small", "epochs": 20, "ks": [2, 4, 8, 16], "peers": ["mi", "rfe-lr", "l1"]},
    False: {"dataset": "digits", "epochs": FMConfig.epochs, "ks": [4, 8, 16, 32], "peers": ["mi", "rfe-lr", "l1"]},
}


def run_benchmark(device, *, quick: bool, dataset: str | None, repeats: int, epochs: int | None = None,
                  compile: bool = False, warn=None) -> BenchRecords:
    """One `BenchRecord` per peer (`case`, `ours_s`, `peer_s`, `speedup`, `device`, both curve means); the
    summary is the whole §7 document (dataset, device, n, d, methods with rank_seconds, curve and curve_mean
    each, ratios, equal_accuracy)."""
    from wisecli.runtime.bench import race
    from wisecli.runtime.device import device_name
    from wisecli.runtime.results import BenchRecords

    preset = dict(PRESETS[bool(quick)])
    if dataset:
        preset["dataset"] = dataset
    if epochs:
        preset["epochs"] = epochs
    if preset["dataset"] == "mnist5k":
        preset["ks"] = [10, 25, 50, 100]
    if preset["dataset"] == "breast-cancer-noise":
        preset["ks"] = [2, 5, 10, 20]
    x, y, *_ = bundled(preset["dataset"])
    x_tr, y_tr, x_te, y_te = split_arrays(x, y)
    xs = Scaler.fit(x_tr).transform(x_tr)
    cfg = FMConfig(epochs=preset["epochs"], compile=compile)
    n_classes = int(y.max()) + 1
    curves: dict = {}

    def curve(ranking) -> dict:
        return {k: refit_logreg(x_tr, y_tr, x_te, y_te, ranking[:k])["accuracy"] for k in preset["ks"]}

    cpu: dict[str, list[float]] = {}

    def cpu_timed(name, fn):
        """fn, also recording this process's CPU seconds per call under `name` (wall time lies on shared cores)."""
        def run():
            t0 = time.process_time()
            out = fn()
            cpu.setdefault(name, []).append(time.process_time() - t0)
            return out
        return run

    fm_rank = cpu_timed("fm", lambda: train_selector(xs, y_tr, n_classes, cfg, device, warn).ranking)
    # warm-up on 256 rows drawn at random (a table sorted by class, like synthetic-10k's, has one class in its head)
    w = np.sort(np.random.default_rng(0).permutation(len(y_tr))[:256])
    train_selector(xs[w], y_tr[w], n_classes, FMConfig(epochs=1, compile=compile), device, warn)
    records = []
    for p in preset["peers"]:
        def check(fm_r, peer_r, p=p) -> dict:
            if "fm" not in curves:  # FM is seeded: every race's ranking is seed 0's on one device
                more = [train_selector(xs, y_tr, n_classes, dataclasses.replace(cfg, seed=s), device, warn).ranking
                        for s in (1, 2)]
                per_seed = [curve(r) for r in (fm_r, *more)]
                curves["fm"] = {k: float(np.mean([c[k] for c in per_seed])) for k in preset["ks"]}
            curves[p] = curve(peer_r)
            return {"fm_curve_mean": float(np.mean(list(curves["fm"].values()))),
                    "peer_curve_mean": float(np.mean(list(curves[p].values())))}

        records.append(race(f"{preset['dataset']} rank vs {p}", fm_rank,
                            cpu_timed(p, lambda p=p: RANKERS[p](xs, y_tr, 0)),
                            device=device, peer_name=p, repeats=repeats, warmup=0,
                            peer_repeats=repeats if p == "mi" else 1, peer_warmup=0, check=check))
    t_fm = float(np.median([r.ours_s for r in records]))
    methods = {"fm": {"rank_seconds": t_fm}, **{r.peer: {"rank_seconds": r.peer_s} for r in records}}
    for m, v in methods.items():
        v["cpu_seconds"] = float(np.median(cpu[m]))
        v["curve"] = curves[m]
        v["curve_mean"] = float(np.mean(list(curves[m].values())))
    best_peer = max(v["curve_mean"] for m, v in methods.items() if m != "fm")
    report = {"dataset": preset["dataset"], "device": device_name(device), "n": int(x.shape[0]),
              "d": int(x.shape[1]), "epochs": cfg.epochs, "compile": compile, "methods": methods,
              "ratios": {r.peer: r.speedup for r in records},
              "cpu_ratios": {p: methods[p]["cpu_seconds"] / methods["fm"]["cpu_seconds"] for p in preset["peers"]},
              "equal_accuracy": methods["fm"]["curve_mean"] >= best_peer - 0.01}
    return BenchRecords(records, report)
