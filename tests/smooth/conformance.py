"""Valid, fast examples of every verb of smooth, for the conformance suite (tests/suite).

Inputs are tiny wide CSVs (200 samples, 4 sensors, a label column) and a hand-written model.json; everything
is written under ``tmp / "out"``. ``demo`` runs the synthetic source at 800 samples and 3 folds (about 1.5 CPU-s
once scikit-learn is imported; its accuracy gate holds there at seed 0); ``record`` samples /proc for 0.3 s.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path


def _csv(path: Path, n: int = 200, seed: int = 0) -> Path:
    """A wide CSV: time, s0..s3 (smooth random-ish walks), label (a/b in blocks of 25)."""
    rows = ["time,s0,s1,s2,s3,label"]
    x = [0.0, 0.0, 0.0, 0.0]
    for i in range(n):
        x = [v + math.sin(0.37 * i * (k + 1) + seed) + 0.1 * ((i * (k + 3) + seed) % 7) for k, v in enumerate(x)]
        rows.append(",".join([str(i), *(repr(v) for v in x), "ab"[(i // 25) % 2]]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")
    return path


def _model(path: Path) -> Path:
    """A valid wise-smooth/1 model for the 4 sensors of ``_csv`` (window 10, step 2, blocks 3)."""
    doc = {"format": "wise-smooth/1", "sensors": ["s0", "s1", "s2", "s3"], "order": [2, 0, 3, 1],
           "min": [-50.0, -50.0, -50.0, -50.0], "max": [250.0, 250.0, 250.0, 250.0], "eps": 1e-4, "blocks": 3,
           "window": 10, "step": 2, "scale": 1.0, "quirks": "fixed", "constant_sensors": [], "fit": {"rows": 200}}
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path


def examples(tmp: Path) -> dict[str, list[str]]:
    """verb -> argv after `wise smooth <verb>`: a valid run (exit 0), inputs under `tmp`, outputs under `tmp/out`."""
    tmp = Path(tmp)
    data = _csv(tmp / "node.csv")
    model = _model(tmp / "model.json")
    out = tmp / "out"
    return {
        "fit": [str(data), "--label-col", "label", "-o", str(out / "model.json"), "--window", "10", "--step", "2",
                "--blocks", "3"],
        "run": [str(model), str(data), "--label-col", "label", "-o", str(out), "--device", "cpu"],
        "evaluate": [str(data), "--label-col", "label", "--methods", "cs:2,stats", "--window", "10", "--step", "5",
                     "--folds", "2", "--repeats", "1"],
        "record": ["-o", str(out / "telemetry.csv"), "--duration", "0.3", "--interval", "0.1"],
        "demo": ["--quick", "--source", "synthetic", "--set", "samples=800", "--set", "folds=3", "-o", str(out),
                 "--device", "cpu"],
        "info": [],
        "benchmark": ["--quick", "--sensors", "4", "--windows", "200", "--blocks", "2", "--window", "10",
                      "--device", "cpu"],
    }


def batch(tmp: Path, corrupt: int | None = None) -> list[str] | None:
    """`run` over three CSVs under `tmp/in`, signatures into `tmp/out`; `corrupt=i` makes input i random bytes."""
    tmp = Path(tmp)
    model = _model(tmp / "model.json")
    files = [_csv(tmp / "in" / f"node{i}.csv", seed=i) for i in range(3)]
    if corrupt is not None:
        files[corrupt].write_bytes(os.urandom(512))
    return ["run", str(model), *map(str, files), "--label-col", "label", "-o", str(tmp / "out"), "--device", "cpu"]


# "verb --option": the edge values that are valid for it (all others must be exit 2 before any work).
VALID_EDGES: dict[str, set[str]] = {
    "fit --align-tolerance": {"0"},
    "run --align-tolerance": {"0"},
    "evaluate --align-tolerance": {"0"},
    "evaluate --seed": {"0"},
    "record --rest": {"0"},
    "demo --seed": {"0"},
    "benchmark --seed": {"0"},
}
# `run INPUTS` is a list of str because a lone "-" streams a wide CSV from stdin.
STDIN: set[str] = {"run inputs"}
