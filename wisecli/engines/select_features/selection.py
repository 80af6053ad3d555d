"""The selection file (`wise-selection/1`, spec §3): every column with its rank, index, name and FM score,
plus the k that was chosen and how. Written atomically as selection.json and selection.csv."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from wisecli.cli.errors import InputError
from wisecli.runtime.io.atomic import write_json, write_text

FORMAT = "wise-selection/1"


def build(scores: np.ndarray, ranking: np.ndarray, names: list[str], constant: np.ndarray, *, k: int, k_rule: str,
          target: str, batch_size: int, seed: int, scaler: dict, run_dir: str | None, data_sha256: str | None,
          id_col: str | None = None, classes: list[str] | None = None, epoch: int | None = None) -> dict:
    from wisecli import __version__

    features = [{"rank": r + 1, "index": int(j), "name": names[j], "score": float(scores[j]),
                 "constant": bool(constant[j])} for r, j in enumerate(ranking)]
    return {"format": FORMAT, "method": "fm", "target": target, "n_features": len(names), "k": int(k),
            "k_rule": k_rule, "features": features, "selected": [f["name"] for f in features[:k]],
            "batch_size": int(batch_size), "seed": int(seed), "data_sha256": data_sha256,
            "scaler": {"mean": [float(v) for v in scaler["mean"]], "std": [float(v) for v in scaler["std"]]},
            "id_col": id_col, "classes": classes, "epoch": epoch, "run_dir": run_dir, "wise_version": __version__}


def write(doc: dict, folder: Path) -> None:
    """selection.json and selection.csv (rank,index,name,score), each atomically."""
    write_json(folder / "selection.json", doc)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["rank", "index", "name", "score"])
    for f in doc["features"]:
        w.writerow([f["rank"], f["index"], f["name"], repr(f["score"])])
    write_text(folder / "selection.csv", buf.getvalue())


def load(path: str | Path) -> dict:
    """Read a selection file (or a run folder holding selection.json); unknown formats are refused."""
    import json

    path = Path(path)
    if path.is_dir():
        path = path / "selection.json"
    if not path.is_file():
        raise InputError(f"selection not found: {path}", hint="give the selection.json that 'train' wrote")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a JSON selection file ({exc})", hint="give the selection.json that 'train' wrote") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else None
        raise InputError(f"{path}: unknown selection format {got!r}", hint=f"this wise reads '{FORMAT}'; retrain with 'train'")
    return doc


def check_k(k: int, d: int) -> None:
    if not 1 <= k <= d:
        raise InputError(f"--k {k} is out of range", hint=f"k must be between 1 and the number of features ({d})")
