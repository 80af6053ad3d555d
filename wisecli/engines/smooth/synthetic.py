"""Data without downloads: the HPC-ODA-like synthetic fault task (spec §4) and BasicMotions via aeon.

Synthetic generator [reconstructed, spec §4]: T samples of S = 64 sensors in four groups of 16 (cpu, memory, io,
power). Eight latent random walks (steps N(0, 0.05), standardised), latent 0 plus a sine of period 300. Each sensor
loads its group's latent 2g with weight 1 plus two other random latents with weights U(0.3, 1). Faults of
U(60, 120) samples separated by U(100, 300) healthy samples, type uniform among cpuoccupy (+1.5 cpu, +0.8 power),
memleak (memory ramps 0 → 3), iometadata (io spikes Exp(1)·4 on 30 % of samples), dial (−1.0 cpu, −1.2 power).
Noise N(0, 0.3); per-sensor scale U(1, 10⁶) and offset U(0, 10³). Labels ``healthy`` + 4 faults; target ``power`` =
mean of the power group before noise, plus N(0, 0.1). Choices: time is 1 s per sample from 2021-01-01; the io
spike mask is drawn per sensor and sample; the S sensors split into four near-equal groups when S ≠ 64.
"""

from __future__ import annotations

import numpy as np

from wisecli.cli.errors import InputError

from .data import Series

GROUPS = ("cpu", "memory", "io", "power")
FAULTS = ("cpuoccupy", "memleak", "iometadata", "dial")


def synthetic(T: int = 20_000, S: int = 64, seed: int = 0) -> Series:
    rng = np.random.default_rng(seed)
    lat = np.cumsum(rng.normal(0.0, 0.05, size=(8, T)), axis=1)
    lat = (lat - lat.mean(axis=1, keepdims=True)) / (lat.std(axis=1, keepdims=True) + 1e-12)
    lat[0] += np.sin(2 * np.pi * np.arange(T) / 300.0)
    group = np.minimum(np.arange(S) * 4 // S, 3)
    load = np.zeros((S, 8))
    for s in range(S):
        g = group[s]
        load[s, 2 * g] = 1.0
        others = rng.choice([k for k in range(8) if k != 2 * g], size=2, replace=False)
        load[s, others] = rng.uniform(0.3, 1.0, size=2)
    clean = load @ lat
    labels = np.full(T, "healthy", dtype=object)
    t = int(rng.uniform(100, 300))
    while t < T:
        n = int(rng.uniform(60, 120))
        kind = FAULTS[rng.integers(4)]
        seg = slice(t, min(T, t + n))
        m = seg.stop - seg.start
        if kind == "cpuoccupy":
            clean[group == 0, seg] += 1.5
            clean[group == 3, seg] += 0.8
        elif kind == "memleak":
            clean[group == 1, seg] += np.linspace(0.0, 3.0, m)[None, :]
        elif kind == "iometadata":
            io = np.flatnonzero(group == 2)
            spikes = (rng.random((len(io), m)) < 0.3) * rng.exponential(1.0, size=(len(io), m)) * 4.0
            clean[io, seg] += spikes
        else:
            clean[group == 0, seg] -= 1.0
            clean[group == 3, seg] -= 1.2
        labels[seg] = kind
        t = seg.stop + int(rng.uniform(100, 300))
    power = clean[group == 3].mean(axis=0) + rng.normal(0.0, 0.1, size=T)
    noisy = clean + rng.normal(0.0, 0.3, size=(S, T))
    X = noisy * rng.uniform(1.0, 1e6, size=(S, 1)) + rng.uniform(0.0, 1e3, size=(S, 1))
    names = [f"{GROUPS[g]}{np.sum(group[:s] == g)}" for s, g in enumerate(group)]
    time = 1_609_459_200.0 + np.arange(T, dtype=np.float64)
    return Series(name="synthetic", values=X.T.copy(), sensors=names, time=time,
                  labels=labels.astype(str), target=power, group="synthetic")


def basic_motions() -> tuple[list[Series], list[Series]]:
    """BasicMotions (UEA; 40 + 40 runs × 100 samples × 6 sensors, 4 classes), official split, from aeon's bundled
    copy (no download). Each run becomes one series whose every sample carries the run's label."""
    try:
        from aeon.datasets import load_basic_motions
    except ImportError:
        raise InputError("the basicmotions data set needs aeon", hint="pip install 'wisecli[data]'") from None
    names = ["acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z"]
    out = []
    for split in ("train", "test"):
        X, y = load_basic_motions(split=split)
        runs = []
        for r in range(X.shape[0]):
            runs.append(Series(name=f"{split}[{r}]", values=np.asarray(X[r].T, dtype=np.float64), sensors=names,
                               labels=np.full(X.shape[2], str(y[r])), group=f"{split}[{r}]"))
        out.append(runs)
    return out[0], out[1]
