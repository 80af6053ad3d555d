"""Our side of the ``benchmark`` race (spec §7): the numpy prefix-sum path and the torch path on the device,
raced with ``runtime.bench.race`` against the reference-form per-window loop (``peers.reference_loop``).

The loop is timed on at most 2 000 windows (300 with ``--quick``) spread over the series, and its time is scaled
to all windows of the case (``peer_s``; ``peer_windows_timed`` says how many were timed), so ``speedup`` compares
the same work. Data: a synthetic random walk per sensor with scales U(1, 10³), float32 on CUDA, float64 on CPU.
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np

from wisecli.cli.errors import InputError

from . import algorithm as A
from .peers import reference_loop

QUICK_SIZES = {"sensors": [16, 64], "windows": [20000, 5000], "blocks": [20, 20]}


def numpy_prefix(model: A.Model, X: np.ndarray, ends: np.ndarray, W: int, B: int) -> np.ndarray:
    """The spec's vectorised form in numpy: gather by π, float64 prefix sums, two gathers, one GEMM."""
    M = A.block_matrix(model.n_sensors, B)
    N = np.clip((X - model.fmin) / (model.fmax - model.fmin + model.eps), 0.0, 1.0)[:, model.order]
    P = np.zeros((N.shape[0] + 1, N.shape[1]))
    np.cumsum(N, axis=0, out=P[1:])
    avg = (P[ends + 1] - P[ends - W + 1]) / W
    der = (N[ends] - N[ends - W]) / W
    return np.concatenate([avg @ M.T, der @ M.T], axis=1)


def check_sizes(sensors: list[int], windows: list[int], blocks: list[int]) -> None:
    """The three size lists: the same length, every value at least 1 (exit 2 otherwise)."""
    for name, vals in (("sensors", sensors), ("windows", windows), ("blocks", blocks)):
        if not vals or min(vals) < 1:
            raise InputError(f"--{name} values must be at least 1, got {vals}", hint=f"e.g. --{name} 128,1024")
    if not (len(sensors) == len(windows) == len(blocks)):
        raise InputError("--sensors, --windows and --blocks need the same number of values",
                         hint="e.g. --sensors 128,1024 --windows 200000,100000 --blocks 20,40")


def race_all(device, *, quick: bool, sensors: list[int], windows: list[int], blocks: list[int], window: int,
             step: int, seed: int, info=None) -> list:
    """One ``BenchRecord`` per (S, windows, B) case: ours = the torch path on ``device`` (data already there),
    peer = the per-window loop; extra keys give the numpy and end-to-end throughputs and the max error."""
    import torch

    from wisecli.runtime.bench import race, versions
    from wisecli.runtime.device import timed

    dev = torch.device(device)
    n_loop = 300 if quick else 2000
    prec = "fp32" if dev.type == "cuda" else "fp64"
    rng = np.random.default_rng(seed)
    cpu = f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"
    vers = {k: v for k, v in versions().items() if k in ("torch", "numpy", "wisecli")}
    out = []
    for S, nw, B in zip(sensors, windows, blocks):
        T = window + step * (nw - 1) + 1
        if info:
            info(f"S={S} windows={nw} B={B}: T={T}")
        X = np.cumsum(rng.standard_normal((T, S), dtype=np.float32), axis=0, dtype=np.float32).astype(np.float64)
        X *= rng.uniform(1, 1e3, size=S)
        t0 = time.perf_counter()
        model = A.fit(X[: min(T, 50_000)], blocks=B, window=window, step=step, device=str(dev))
        fit_s = time.perf_counter() - t0
        ends = A.window_ends(T, window, step)
        le = ends[np.linspace(0, len(ends) - 1, min(n_loop, len(ends))).astype(np.int64)]
        _, np_s = timed(lambda: numpy_prefix(model, X, ends, window, B), torch.device("cpu"))
        xd = torch.as_tensor(X, dtype=torch.float32 if prec == "fp32" else torch.float64).to(dev)
        kw = dict(window=window, step=step, blocks=B, precision=prec, device=str(dev), return_tensor=True,
                  chunk_elems=(1 << 27) if dev.type == "cuda" else (1 << 24))
        pick = np.searchsorted(ends, le)

        def check(got, ref):
            return {"max_abs_err": float(np.abs(got[torch.as_tensor(pick, device=got.device)].double().cpu().numpy()
                                                - ref).max())}

        rec = race(f"S={S} B={B} windows={nw}", lambda: A.signatures(model, xd, **kw),
                   lambda: reference_loop(model, X, le, window, B), device=dev, peer_name="per-window loop (numpy)",
                   repeats=3, warmup=1, peer_repeats=1, peer_warmup=0, check=check)
        del xd
        host = X.astype(np.float32) if prec == "fp32" else X
        _, e2e_s = timed(lambda: A.signatures(model, host, **kw), dev)
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        loop_wps = len(le) / rec.peer_s
        dev_wps = nw / rec.ours_s
        rec.peer_s = nw / loop_wps  # the loop's time scaled to all windows of the case
        rec.extra.update({
            "S": S, "windows": nw, "B": B, "W": window, "step": step, "peer_windows_timed": int(len(le)),
            "loop_win_per_s": round(loop_wps, 1), "numpy_win_per_s": round(nw / np_s, 1),
            "device_win_per_s": round(dev_wps, 1), "device_e2e_win_per_s": round(nw / e2e_s, 1),
            "numpy_vs_loop": round(nw / np_s / loop_wps, 1), "max_abs_err": rec.extra["max_abs_err"],
            "precision": prec, "fit_s": round(fit_s, 4), "cpu": cpu, "versions": vers})
        out.append(rec)
    return out
