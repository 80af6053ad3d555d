"""Valid, fast examples of every verb of contrastive, for the conformance suite (tests/suite).

Data: 16x16 RGB PNGs drawn from scikit-image's astronaut (crops of two regions as two classes), written as a
class folder (labelled, for evaluate) and a flat folder (unlabelled, for train and predict). The checkpoint is
what `contrastive train` writes (`save_checkpoint` of an untrained monai-resnet18 at width 1/8 with its MoCo
buffers), built in well under a second instead of trained.
"""

from __future__ import annotations

from pathlib import Path

VALID_EDGES: dict[str, set[str]] = {
    "train --clim-start": {"0"},
    "train --momentum": {"0"},
    "evaluate --seed": {"0"},
}
STDIN: set[str] = set()  # inputs take `@-` as a Path word; no verb reads data from "-"

_SIZE = 16
_CFG = dict(arch="monai-resnet18", in_channels=3, image_size=_SIZE, n_bank=8, queue=4, k=2, width=0.125, dim=128,
            tau=0.2, momentum=0.99, select="center", mix="cutmix", resolutions=[12], positive_key="bank",
            symmetric=False, same_cluster=True, bank_view="key", w_mix=1.0, w_mr=1.0,
            mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])


def _crops(n: int, cls: int, seed: int):
    import numpy as np
    from skimage import data
    from skimage.transform import resize

    img = data.astronaut()
    rng = np.random.default_rng(seed + 10 * cls)
    out = []
    for _ in range(n):
        y, x = (rng.integers(0, 80), rng.integers(0, 80)) if cls == 0 else (rng.integers(300, 400), rng.integers(300, 400))
        out.append((resize(img[y:y + 96, x:x + 96], (_SIZE, _SIZE), anti_aliasing=True) * 255).round().astype(np.uint8))
    return out


def _folders(tmp: Path) -> tuple[Path, Path]:
    from wisecli.runtime.io.images import write_image

    lab, flat = tmp / "labelled", tmp / "flat"
    if not lab.is_dir():
        for c in (0, 1):
            for i, im in enumerate(_crops(4, c, 0)):
                write_image(lab / f"class{c}" / f"img{i}.png", im)
                write_image(flat / f"c{c}_{i}.png", im)
    return lab, flat


def checkpoint(path: Path, channels: int = 3) -> Path:
    """A contrastive checkpoint as `train` writes it, from an untrained (seeded) model."""
    import torch

    from wisecli.engines.contrastive.model import MoCo
    from wisecli.runtime.checkpoints import save_checkpoint

    if not path.is_file():
        torch.manual_seed(0)
        cfg = {**_CFG, "in_channels": channels, "mean": [0.5] * channels, "std": [0.25] * channels}
        model = MoCo(**cfg)
        save_checkpoint(path, method="contrastive", arch=cfg["arch"], config={"model": cfg, "train": {"arm": "clim", "seed": 0}},
                        state_dict=model.state_dict())
    return path


def examples(tmp: Path) -> dict[str, list[str]]:
    """verb -> argv after `wise contrastive <verb>`: a valid run (exit 0) taking at most ~2 s on 1 CPU core,
    reading inputs it creates under `tmp` and writing only into `tmp/out`."""
    tmp = Path(tmp)
    lab, flat = _folders(tmp)
    ckpt = checkpoint(tmp / "ckpt" / "best.pt")
    out = tmp / "out"
    cpu = ["--device", "cpu"]
    return {
        "train": [str(flat), "-o", str(out), "--arch", "monai-resnet18", "--width", "0.125", "--epochs", "2",
                  "--batch-size", "4", "--queue", "4", "--k", "2", "--clusters", "2", "--clim-start", "1", "--resolutions", "12",
                  "--no-progress", *cpu],
        "evaluate": [str(ckpt), "--train", str(lab), "--test", str(lab), "--protocol", "knn,linear", "--knn-k", "3", *cpu],
        "predict": [str(flat), "--weights", str(ckpt), "-o", str(out), *cpu],
        "demo": ["--quick", *cpu],
        "info": [],
        "benchmark": ["--quick", *cpu],
    }


def batch(tmp: Path, corrupt: int | None = None) -> list[str] | None:
    """argv after `wise contrastive` of `predict` over 3 images written under tmp, outputs in tmp/"out";
    with `corrupt=i` image i is replaced by random bytes (an item error: exit 3). One row per part, so the
    batch writes several atomic files in turn (the interrupt test stops it between two)."""
    from conftest import copy_images

    tmp = Path(tmp)
    _, flat = _folders(tmp)
    ckpt = checkpoint(tmp / "ckpt" / "best.pt")
    inputs = copy_images(sorted(flat.iterdir())[:3], tmp / "batch", corrupt)
    return ["predict", *inputs, "--weights", str(ckpt), "-o", str(tmp / "out"), "--set", "part_rows=1", "--device", "cpu"]
