"""Valid, fast examples of every verb of select-features, for the conformance suite (tests/suite)."""

from __future__ import annotations

import json
import os
from pathlib import Path

_FEATURES = ["a", "b", "c", "d"]


def _table(path: Path, seed: int = 0, rows: int = 32) -> Path:
    """A tiny labelled CSV: 4 numeric features (a and c carry the label), an id column, string labels."""
    import random

    rng = random.Random(seed)
    lines = ["id," + ",".join(_FEATURES) + ",label"]
    for i in range(rows):
        y = i % 2
        vals = [y + rng.gauss(0, 0.3), rng.gauss(0, 1), 1 - y + rng.gauss(0, 0.3), rng.gauss(0, 1)]
        lines.append(f"r{i}," + ",".join(f"{v:.4f}" for v in vals) + (",yes" if y else ",no"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _selection(path: Path) -> Path:
    """A valid `wise-selection/1` file over the tiny table's columns (what `train` writes), made without
    training so predict's examples stay instant."""
    scores = [0.4, 0.1, 0.35, 0.15]
    order = sorted(range(4), key=lambda j: (-scores[j], j))
    features = [{"rank": r + 1, "index": j, "name": _FEATURES[j], "score": scores[j], "constant": False}
                for r, j in enumerate(order)]
    doc = {"format": "wise-selection/1", "method": "fm", "target": "label", "n_features": 4, "k": 2,
           "k_rule": "m>=1/d", "features": features, "selected": [f["name"] for f in features[:2]],
           "batch_size": 128, "seed": 0, "data_sha256": None,
           "scaler": {"mean": [0.0] * 4, "std": [1.0] * 4}, "id_col": "id", "classes": ["no", "yes"],
           "epoch": 1, "run_dir": None, "wise_version": "0"}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def examples(tmp: Path) -> dict[str, list[str]]:
    """verb -> argv after `wise select-features <verb>`: a valid run (exit 0) taking at most ~2 s on 1 CPU
    core, reading inputs it creates under `tmp` and writing only under `tmp / "out"`."""
    tmp = Path(tmp)
    data = str(_table(tmp / "data.csv"))
    sel = str(_selection(tmp / "selection.json"))
    out = str(tmp / "out")
    cpu = ["--device", "cpu"]
    return {
        "train": [data, "--target", "label", "--id-col", "id", "-o", out, "--epochs", "1", "--hidden", "8",
                  *cpu],
        "predict": [sel, data, "-o", out, "--k", "2"],
        "evaluate": [data, "--target", "label", "--id-col", "id", "--baselines", "random,all", "--k", "1,2",
                     "--seeds", "0", "--epochs", "1", "-o", out, *cpu],
        "demo": ["--quick", *cpu],
        "info": [],
        "benchmark": ["--quick", "--repeats", "1", *cpu],
    }


def batch(tmp: Path, corrupt: int | None = None) -> list[str] | None:
    """argv after `wise select-features` of `predict` over 3 tables written under tmp, outputs in tmp/"out";
    with `corrupt=i` table i is replaced by random bytes."""
    tmp = Path(tmp)
    sel = str(_selection(tmp / "selection.json"))
    tables = []
    for i in range(3):
        path = _table(tmp / "tables" / f"t{i}.csv", seed=i)
        if corrupt == i:
            path.write_bytes(os.urandom(2048))
        tables.append(str(path))
    return ["predict", sel, *tables, "-o", str(tmp / "out"), "--k", "2"]


VALID_EDGES: dict[str, set[str]] = {
    "train --val-fraction": {"0"},   # no hold-out: best.pt follows the training loss
    "train --seed": {"0"},
    "evaluate --split-seed": {"0"},
    "evaluate --epochs": {"0"},      # FM's mask at initialisation (a baseline of its own)
}
STDIN: set[str] = {"train data", "predict data", "evaluate data"}  # '-' reads the table from stdin
