"""Valid, fast examples of every verb of nnls, for the conformance suite (tests/suite).

The data are tiny: B is 20 × 24 (a sparse nonnegative mix of 4 random atoms plus a little noise), A the 4 atoms,
so the exact fronts (`enum`, 16 subsets) and the DP take milliseconds. `--dictionary` is a `str` option because it
also takes the learned specs `nmf:R` and `spa:R`; given a path, it is read before the work starts like any input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

M, R, N = 20, 4, 24


def _data(tmp: Path, names: list[str], seed: int = 0) -> tuple[list[Path], Path]:
    rng = np.random.default_rng(seed)
    tmp.mkdir(parents=True, exist_ok=True)
    A = rng.random((M, R))
    np.save(tmp / "A.npy", A)
    paths = []
    for name in names:
        X = rng.random((R, N)) * (rng.random((R, N)) < 0.5)
        np.save(tmp / name, A @ X + 0.01 * rng.random((M, N)))
        paths.append(tmp / name)
    return paths, tmp / "A.npy"


def examples(tmp: Path) -> dict[str, list[str]]:
    """verb -> argv after `wise nnls <verb>`: a valid run (exit 0) taking at most ~2 s on 1 CPU core,
    reading inputs it creates under `tmp` and writing only under `tmp / "out"` (or `-o tmp/out.ext`)."""
    (B,), A = _data(tmp, ["B.npy"])
    out = str(tmp / "out")
    cpu = ["--device", "cpu"]
    return {
        "run": [str(B), "-A", str(A), "--avg-nnz", "1.5", "-o", out, *cpu],
        "pareto": [str(B), "-A", str(A), "-o", out, *cpu],
        "evaluate": [str(B), "-A", str(A), "--avg-nnz", "1,2", "--methods", "matrixwise-exact,global-topq", *cpu],
        "demo": ["--quick", "--dataset", "hsi", *cpu],
        "info": cpu,
        "benchmark": ["--quick", "--n", "20", "--peer-columns", "5", "--cases", "nnls,select", *cpu],
    }


def batch(tmp: Path, corrupt: int | None = None) -> list[str] | None:
    """argv after `wise nnls` (verb first) of a batch verb over >= 3 inputs written under tmp, outputs in
    tmp/"out"; with `corrupt=i` input i is replaced by random bytes."""
    paths, A = _data(tmp, ["B0.npy", "B1.npy", "B2.npy"], seed=1)
    if corrupt is not None:
        paths[corrupt].write_bytes(np.random.default_rng(7).bytes(512))
    return ["run", *map(str, paths), "-A", str(A), "--avg-nnz", "1", "-o", str(tmp / "out"), "--device", "cpu"]


# "verb --option": which of {"0", "-1", "nan", "inf"} are VALID (0 means "automatic" for --kmax, --max-steps and
# --enum-max-subsets; a zero budget, ridge or seed is a legitimate value)
VALID_EDGES: dict[str, set[str]] = {
    "run --nnz": {"0"}, "run --avg-nnz": {"0"}, "run --kmax": {"0"}, "run --enum-max-subsets": {"0"},
    "run --max-steps": {"0"}, "run --ridge": {"0"}, "run --seed": {"0"},
    "pareto --kmax": {"0"}, "pareto --enum-max-subsets": {"0"}, "pareto --max-steps": {"0"}, "pareto --ridge": {"0"},
    "pareto --seed": {"0"},
    "evaluate --kmax": {"0"}, "evaluate --seed": {"0"},
    "demo --seed": {"0"},
}
STDIN: set[str] = set()  # inputs take `@-` (a list of paths on stdin), never the data itself
