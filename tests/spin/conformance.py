"""Valid, fast examples of every verb of spin, for the conformance suite (tests/suite).

Inputs are tiny: TOML jobs on 4×4 to 16×4 lattices with a few steps, and a spins.npz holding an analytic
{Q1,Q2} wall (φ(m) from 0 to 90° along a tanh, S = cos φ x̂ s1 + sin φ ŷ s2). `run`'s inputs are `str` because a
lone `-` is one TOML document on stdin.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

LLG = """[lattice]
size = [4, 4]
boundary = ["periodic", "periodic"]
[init]
kind = "1q"
noise = 0.2
[solver]
method = "llg"
steps = {steps}
[output]
every = 5
"""


def wall_npz(path: Path, L1: int = 40, L2: int = 4, delta_rows: float = 4.0, with_wall: bool = True) -> Path:
    """An analytic {Q1,Q2} wall (or, without a wall, a uniform 1Q state) as a spins.npz."""
    m = np.arange(L1)[:, None] * np.ones((1, L2))
    n = np.ones((L1, 1)) * np.arange(L2)[None, :]
    s1, s2 = (1 - 2 * (m % 2)), (1 - 2 * (n % 2))
    phi = 0.5 * np.arccos(-np.tanh((m - L1 / 2) / delta_rows)) if with_wall else np.zeros((L1, L2))
    S = np.stack([np.cos(phi) * s1, np.sin(phi) * s2, np.zeros((L1, L2))])
    np.savez(path, spins=S, pinned=np.zeros((L1, L2), bool), a_nm=np.float64(0.2761))
    return path


def examples(tmp: Path) -> dict[str, list[str]]:
    """verb -> argv after `wise spin <verb>`: a valid run (exit 0) taking at most ~2 s on 1 CPU core,
    reading inputs it creates under `tmp` and writing only under `tmp / "out"` (or `-o tmp/out.ext`)."""
    tmp.mkdir(parents=True, exist_ok=True)
    job = tmp / "job.toml"
    job.write_text(LLG.format(steps=10))
    spins = wall_npz(tmp / "wall.npz")
    cpu = ["--device", "cpu"]
    return {
        "run": [str(job), "-o", str(tmp / "out"), *cpu],
        "evaluate": [str(spins), *cpu],
        "demo": ["--quick", *cpu],
        "info": cpu,
        "benchmark": ["--quick", "--peer", "numpy", *cpu],
    }


def batch(tmp: Path, corrupt: int | None = None) -> list[str] | None:
    """argv after `wise spin` (verb first) of a batch verb over >= 3 inputs written under tmp, outputs in
    tmp/"out"; with `corrupt=i` input i is replaced by random bytes."""
    tmp.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(3):
        p = tmp / f"job{i}.toml"
        p.write_text(LLG.format(steps=10 + 5 * i))
        paths.append(p)
    if corrupt is not None:
        paths[corrupt].write_bytes(np.random.default_rng(7).bytes(512))
    return ["run", *map(str, paths), "-o", str(tmp / "out"), "--device", "cpu"]


# "verb --option": which of {"0", "-1", "nan", "inf"} are VALID (zero steps writes the initial state; seed 0)
VALID_EDGES: dict[str, set[str]] = {"run --steps": {"0"}, "run --seed": {"0"}}
STDIN: set[str] = {"run INPUTS"}  # a lone `-` is one TOML document on stdin
