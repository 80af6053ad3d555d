"""Valid, fast examples of every verb of fas, for the conformance suite (tests/suite)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

TINY = ["--width", "0.125", "--input-size", "32", "--map-size", "8", "--pyramid-scales", "8,4,2,1",
        "--detector", "none", "--frames", "1", "--batch-size", "4", "--device", "cpu", "--no-progress"]


def _faces(folder: Path, n: int, seed: int = 0, size: int = 32) -> list[Path]:
    """n small PNG 'faces' (a bright ellipse on noise); detector none reads them as crops."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        img = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
        cv2.ellipse(img, (size // 2, size // 2), (size // 3, size // 2 - 2), 0, 0, 360,
                    tuple(int(v) for v in rng.integers(120, 255, 3)), -1)
        p = folder / f"face{seed}_{i}.png"
        cv2.imwrite(str(p), img)
        out.append(p)
    return out


def _checkpoint(path: Path) -> Path:
    """A tiny CDCN checkpoint saved through the engine (as train would write it)."""
    import torch

    from wisecli.engines.fas.api import DEFAULTS
    from wisecli.engines.fas.model import build_model, check_config
    from wisecli.runtime.checkpoints import save_checkpoint

    torch.manual_seed(0)
    cfg = check_config({**DEFAULTS["train"], "width": 0.125, "input_size": 32, "map_size": 8,
                        "pyramid_scales": "8,4,2,1", "detector": "none", "frames": 1})
    model = build_model(cfg)
    return save_checkpoint(path, method="fas", arch="cdcn", config=cfg, state_dict=model.state_dict(),
                           threshold=0.5, supervision=cfg["supervision"], map_size=8)


def examples(tmp: Path) -> dict[str, list[str]]:
    """verb -> argv after `wise fas <verb>`: a valid run (exit 0) reading inputs it creates under `tmp` and
    writing only under `tmp / "out"`."""
    data = tmp / "data"
    live = _faces(data / "live", 6, seed=1)
    spoof = _faces(data / "spoof", 6, seed=2)
    man = data / "manifest.csv"
    with open(man, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "attack_type", "subject", "split"])
        for i, (a, b) in enumerate(zip(live, spoof)):
            split = "train" if i < 3 else "dev" if i < 5 else "test"
            w.writerow([a.relative_to(data), 1, "", f"s{i}", split])
            w.writerow([b.relative_to(data), 0, "print", f"s{i}", split])
    ckpt = _checkpoint(tmp / "model.pt")
    scores, dev = tmp / "test.jsonl", tmp / "dev.jsonl"
    for path, shift in ((scores, 0.0), (dev, 0.05)):
        path.write_text("".join(json.dumps({"input": f"x{i}", "label": lab, "attack_type": "print" if lab == 0 else None,
                                            "subject": f"s{i}", "score": 0.2 + 0.6 * lab + 0.05 * i - shift}) + "\n"
                                for i, lab in enumerate([1, 0, 1, 0, 1, 0])))
    return {
        "train": [man, "--layout", "manifest", "-o", tmp / "out", "--epochs", "1", *TINY],
        "predict": [live[0], spoof[0], "--weights", ckpt, "--detector", "none", "--device", "cpu",
                    "-o", tmp / "out"],
        "evaluate": ["--scores", scores, "--dev-scores", dev],
        "simulate": [live[0], live[1], "--size", "16", "--detector", "none", "-o", tmp / "out"],
        "demo": ["--quick", "--device", "cpu"],
        "info": [],
        "benchmark": ["--quick", "--iters", "1", "--no-e2e", "--device", "cpu"],
    }


def batch(tmp: Path, corrupt: int | None = None) -> list[str] | None:
    """argv after `wise fas` of `predict` over 3 images written under tmp, one record file each in tmp/out;
    with `corrupt=i` input i is random bytes."""
    import numpy as np

    faces = _faces(tmp / "batch", 3, seed=3)
    if corrupt is not None:
        faces[corrupt].write_bytes(np.random.default_rng(corrupt).bytes(500))
    ckpt = tmp / "batch_model.pt"
    if not ckpt.exists():
        _checkpoint(ckpt)
    return ["predict", *faces, "--weights", ckpt, "--detector", "none", "--device", "cpu", "--workers", "0",
            "-o", tmp / "out"]


VALID_EDGES: dict[str, set[str]] = {
    "train --fold": {"0"}, "train --aux-binary": {"0"}, "train --theta": {"0"}, "train --workers": {"0"},
    "train --seed": {"0"}, "train --epochs": set(),
    "predict --fold": {"0"}, "predict --threshold": {"0"}, "predict --workers": {"0"}, "predict --seed": {"0"},
    "evaluate --fold": {"0"}, "evaluate --bootstrap": {"0"}, "evaluate --seed": {"0"},
    "simulate --seed": {"0"},
}
STDIN: set[str] = {"predict inputs"}  # INPUTS are str: they take @list.txt and @- (a list on stdin)
