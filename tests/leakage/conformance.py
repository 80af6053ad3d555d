"""Valid, fast examples of every verb of leakage, for the conformance suite (tests/suite).

The data is a small feature `.npz` (X (48, 6), y, s, client: 4 clients, the even ones with a shifted feature);
`run` audits a 1/16-width `mlp` with 48 observations, 2 folds, the linear family and 4 sensitivity samples;
`evaluate` reads a report written by hand in the `run` verb's format.
"""

from __future__ import annotations

import json
from pathlib import Path

VALID_EDGES: dict[str, set[str]] = {
    "run --seed": {"0"},
    "run --fl-rounds": {"0"},
    "evaluate --seed": {"0"},
}
STDIN: set[str] = set()


def write_data(path: Path, n: int = 48, clients: int = 4, seed: int = 0) -> Path:
    import numpy as np

    rng = np.random.default_rng(seed)
    client = np.arange(n) % clients
    s = (client % 2 == 0).astype(np.int64)
    X = rng.standard_normal((n, 6)).astype(np.float32)
    X[:, 0] += s
    y = (X[:, 1] > 0).astype(np.int64)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, X=X, y=y, s=s, client=client)
    return path


def write_report(path: Path) -> Path:
    recs = [{"round": 0, "layer": name, "n_params": 10, "family": "linear", "vinfo_bits": v, "ci95": [v - 0.1, v + 0.1],
             "vinfo_clipped": max(v, 0), "control_bits": 0.0, "h_prior_bits": 1.0, "sens_attr_per_param": sa}
            for name, v, sa in (("a.weight", 0.3, 0.2), ("b.weight", 0.1, 0.05), ("c.weight", 0.0, 0.01))]
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"method": "leakage", "records": recs}))
    return path


def examples(tmp: Path) -> dict[str, list[str]]:
    """verb -> argv after `wise leakage <verb>`: a valid run (exit 0) taking at most ~2 s on 1 CPU core,
    reading inputs it creates under `tmp` and writing only into `tmp/out`."""
    tmp = Path(tmp)
    data = write_data(tmp / "data" / "toy.npz")
    report = write_report(tmp / "rep" / "leakage.json")
    cpu = ["--device", "cpu"]
    return {
        "run": [str(data), "-o", str(tmp / "out"), "--arch", "mlp", "--set", "width=0.0625", "--n-obs", "48",
                "--folds", "2", "--families", "linear", "--sketch", "8", "--n-sens", "4", "--probes", "2",
                "--batch-size", "2", *cpu],
        "evaluate": [str(report)],
        "demo": ["--quick", *cpu],
        "info": [],
        "benchmark": ["--quick", *cpu],
    }


def batch(tmp: Path, corrupt: int | None = None) -> list[str] | None:
    """leakage has no batch verb."""
    return None
