"""Valid, fast examples of every verb of lattice, for the conformance suite (tests/suite).

The lattice is a 2 × 1 cantilever written as a lattice JSON file (6 joints, 7 struts) meshed at m = 2 (about
900 DOF), so a run of a few OC iterations takes well under a second. `train` (the optional, patented CWROM
component) runs at m = 3 with 20 traces per port type. `--design`/`--designs` are `str` options
because they also take `uniform:V` and `random:N`; a path given there is read before the work starts.
"""

from __future__ import annotations

import json
from pathlib import Path


def lattice_file(tmp: Path) -> Path:
    """A small valid lattice JSON under tmp."""
    tmp.mkdir(parents=True, exist_ok=True)
    nodes = [[i, j] for i in range(3) for j in range(2)]
    idx = {(i, j): k for k, (i, j) in enumerate(nodes)}
    struts = [[idx[i, j], idx[i + 1, j]] for i in range(2) for j in range(2)] + [[idx[i, 0], idx[i, 1]] for i in range(3)]
    doc = {"pitch": 1.0, "joint_width": 0.2, "nodes": nodes, "struts": struts,
           "supports": [{"node": idx[0, 0], "face": "left", "dofs": "xy"}, {"node": idx[0, 1], "face": "left", "dofs": "xy"}],
           "loads": [{"node": idx[2, 0], "face": "right", "force": [0.0, -1.0]}], "fixed": []}
    path = tmp / "lattice.json"
    path.write_text(json.dumps(doc))
    return path


def examples(tmp: Path) -> dict[str, list[str]]:
    """verb -> argv after `wise lattice <verb>`: a valid run (exit 0) taking at most ~2 s on 1 CPU core,
    reading inputs it creates under `tmp` and writing only under `tmp / "out"` (or `-o tmp/out.ext`)."""
    lat = lattice_file(tmp)
    cpu = ["--device", "cpu"]
    return {
        "run": ["--lattice", str(lat), "--mesh", "2", "--max-iter", "3", "-o", str(tmp / "out"), *cpu],
        "train": ["--mesh", "3", "--samples", "20", "-o", str(tmp / "out"), *cpu],
        "evaluate": ["--lattice", str(lat), "--mesh", "2", "--designs", "uniform:0.3", "--repeats", "1", *cpu],
        "demo": ["--quick", *cpu],
        "info": cpu,
        "benchmark": ["--quick", "--max-dof", "1500", "--repeats", "1", *cpu],
    }


def batch(tmp: Path, corrupt: int | None = None) -> list[str] | None:
    """lattice has no batch verb (one lattice per run)."""
    return None


# "verb --option": which of {"0", "-1", "nan", "inf"} are VALID (--tol 0 runs max-iter iterations; seed 0)
VALID_EDGES: dict[str, set[str]] = {"run --tol": {"0"}, "evaluate --seed": {"0"}, "evaluate --tol": {"0"}, "train --seed": {"0"},
                                    "train --nu": {"0"}}
STDIN: set[str] = set()
