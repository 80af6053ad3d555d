"""Valid, fast examples of every verb of classify, for the conformance suite (tests/suite).

The data is the engine's stroke glyphs written as a class folder of 16x16 PNGs (3 classes x 4 images); the
checkpoint is what `classify train` writes (`save_checkpoint` of a quarter-width `small-cnn`, built in
milliseconds instead of trained, with the normalisation, classes and input description train stores).
"""

from __future__ import annotations

from pathlib import Path

VALID_EDGES: dict[str, set[str]] = {
    "train --seed": {"0"},
    "evaluate --seed": {"0"},
}
STDIN: set[str] = set()  # INPUTS take `@-` (a list on stdin) as a Path word; no verb reads data from "-"

_SIZE = 16


def _data(tmp: Path) -> Path:
    from wisecli.engines.classify.synthetic import write_folder

    root = tmp / "glyphs"
    if not root.is_dir():
        write_folder(root, n_per_class=4, num_classes=3, size=_SIZE, seed=0)
    return root


def checkpoint(path: Path, *, arch: str = "small-cnn", classes=("class0", "class1", "class2"), channels: int = 3,
               size: int = _SIZE, bayes: str = "none", components: int = 1, width: float = 0.25) -> Path:
    """A classify checkpoint as `train` writes it, from an untrained model (seeded)."""
    import torch

    from wisecli.nn.zoo import build
    from wisecli.runtime.checkpoints import save_checkpoint

    mk = {"in_channels": channels, "num_classes": len(classes), "image_size": size, "width": width, "norm": "batch",
          "bayes": bayes, "components": components, "dropout": 0.1, "members": 2}
    torch.manual_seed(0)
    model = build(arch, **mk)
    if not path.is_file():
        save_checkpoint(path, method="classify", arch=arch, config={}, state_dict=model.state_dict(), model=mk,
                        classes=list(classes), normalize={"mean": [0.2] * channels, "std": [0.3] * channels},
                        input={"kind": "image", "channels": channels, "image_size": size, "layout": "nchw"},
                        train_counts=[3] * len(classes))
    return path


def examples(tmp: Path) -> dict[str, list[str]]:
    """verb -> argv after `wise classify <verb>`: a valid run (exit 0) taking at most ~2 s on 1 CPU core,
    reading inputs it creates under `tmp` and writing only into `tmp/out` (a folder) or `tmp/out.EXT`."""
    tmp = Path(tmp)
    data = _data(tmp)
    ckpt = checkpoint(tmp / "ckpt" / "best.pt")
    image = sorted((data / "class0").iterdir())[0]
    out = tmp / "out"
    cpu = ["--device", "cpu"]
    return {
        "train": [str(data), "-o", str(out), "--arch", "small-cnn", "--epochs", "1", "--batch-size", "4",
                  "--set", "width=0.25", "--set", "val_fraction=0.25", "--no-progress", *cpu],
        "predict": [str(image), "--weights", str(ckpt), "-o", str(out / "preds.jsonl"), *cpu],
        "evaluate": [str(data), "--weights", str(ckpt), "--rotate", "0:360:90", *cpu],
        "study": ["radial", "-o", str(out), "--data", str(data), "--seeds", "1", "--set", "profile=quick",
                  "--set", "epochs=1", *cpu],
        "demo": ["--quick", *cpu],
        "info": [],
        "benchmark": ["--quick", "--case", "radial", *cpu],
    }


def batch(tmp: Path, corrupt: int | None = None) -> list[str] | None:
    """argv after `wise classify` of `predict` over 3 images written under tmp, the records file in tmp/"out";
    with `corrupt=i` image i is replaced by random bytes (an item error: exit 3, the file keeps the rest)."""
    from conftest import copy_images

    tmp = Path(tmp)
    ckpt = checkpoint(tmp / "ckpt" / "best.pt")
    inputs = copy_images(sorted((_data(tmp) / "class1").iterdir())[:3], tmp / "batch", corrupt)
    return ["predict", *inputs, "--weights", str(ckpt), "-o", str(tmp / "out" / "preds.jsonl"), "--device", "cpu"]
