"""Valid, fast examples of every verb of sparse-cnn, for the conformance suite (tests/suite).

The data is a class folder of 16x16 PNGs (3 classes x 4 images: a bright square at a class-dependent place on
noise); the checkpoint is what `sparse-cnn train` writes (`save_checkpoint` of an untrained resnet18 / 8, built in
milliseconds, with the normalisation, classes, input, density curve and mask settings train stores).
"""

from __future__ import annotations

from pathlib import Path

VALID_EDGES: dict[str, set[str]] = {
    "train --seed": {"0"},
    "evaluate --seed": {"0"},
}
STDIN: set[str] = set()  # INPUTS take `@-` (a list on stdin) as a Path word; no verb reads data from "-"

_SIZE = 16
CLASSES = ("a", "b", "c")


def write_folder(root: Path, n_per_class: int = 4, size: int = _SIZE, seed: int = 0) -> Path:
    """root/<class>/<i>.png: noise with a bright 5x5 square at a class-dependent corner."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    for k, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            img = (rng.random((size, size)) * 80).astype(np.uint8)
            r, c = [(2, 2), (2, size - 7), (size - 7, 2)][k]
            img[r:r + 5, c:c + 5] = 230
            cv2.imwrite(str(root / name / f"{i}.png"), img)
    return root


def _data(tmp: Path) -> Path:
    root = tmp / "shapes"
    if not root.is_dir():
        write_folder(root)
    return root


def checkpoint(path: Path, *, width: float = 0.125, size: int = _SIZE, channels: int = 1) -> Path:
    """A sparse-cnn checkpoint as `train` writes it, from an untrained (seeded) resnet18."""
    import torch

    from wisecli.engines.sparse_cnn.model import SparseResNet18
    from wisecli.runtime.checkpoints import save_checkpoint

    mk = {"in_channels": channels, "num_classes": len(CLASSES), "image_size": size, "width": width,
          "downsample_blocks": False, "branch_channels": 4}
    torch.manual_seed(0)
    model = SparseResNet18(**mk)
    if not path.is_file():
        curve = [{"density": d, "saving_counted": 1 - f, "macs_fraction": f}
                 for d, f in ((0.1, 0.55), (0.3, 0.7), (0.5, 0.85), (1.0, 1.05))]
        save_checkpoint(path, method="sparse-cnn", arch="resnet18", config={}, state_dict=model.state_dict(),
                        task="classify", model=mk, classes=list(CLASSES),
                        normalize={"mean": [0.3] * channels, "std": [0.3] * channels},
                        input={"channels": channels, "image_size": size}, density_min=0.1, density_curve=curve,
                        mask={"rule": "regional", "tile": 8, "slack": 1.5})
    return path


def examples(tmp: Path) -> dict[str, list[str]]:
    """verb -> argv after `wise sparse-cnn <verb>`: a valid run (exit 0) taking at most ~2 s on 1 CPU core,
    reading inputs it creates under `tmp` and writing only into `tmp/out` (a folder) or `tmp/out.EXT`."""
    tmp = Path(tmp)
    data = _data(tmp)
    ckpt = checkpoint(tmp / "ckpt" / "best.pt")
    image = sorted((data / "a").iterdir())[0]
    out = tmp / "out"
    cpu = ["--device", "cpu"]
    return {
        "train": [str(data), "-o", str(out), "--epochs", "1", "--batch-size", "4", "--set", "width=0.125",
                  "--set", f"image_size={_SIZE}", "--set", "val_fraction=0.25", "--set", "threads=1", "--no-progress", *cpu],
        "predict": [str(image), "--weights", str(ckpt), "-o", str(out / "preds.jsonl"), "--density", "0.5", *cpu],
        "evaluate": [str(data), "--weights", str(ckpt), "--density", "1,0.5", "--no-latency", *cpu],
        "demo": ["--quick", *cpu],
        "info": [],
        "benchmark": ["--quick", "--case", "layers", *cpu],
    }


def batch(tmp: Path, corrupt: int | None = None) -> list[str] | None:
    """argv after `wise sparse-cnn` of `predict` over 3 images written under tmp, the records file in tmp/"out";
    with `corrupt=i` image i is replaced by random bytes (an item error: exit 3, the file keeps the rest)."""
    from conftest import copy_images

    tmp = Path(tmp)
    ckpt = checkpoint(tmp / "ckpt" / "best.pt")
    inputs = copy_images(sorted((_data(tmp) / "b").iterdir())[:3], tmp / "batch", corrupt)
    return ["predict", *inputs, "--weights", str(ckpt), "-o", str(tmp / "out" / "preds.jsonl"), "--device", "cpu"]
