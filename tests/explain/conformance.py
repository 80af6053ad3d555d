"""Valid, fast examples of every verb of explain, for the conformance suite (tests/suite).

Inputs: four 16x16 RGB PNGs (coloured squares on noise) and a classify checkpoint as `classify train` writes it
(`save_checkpoint` of a quarter-width `small-cnn`, seeded, not trained: explaining needs a model, not a good one).
Runs use 64 masks so each example takes well under 2 s on one core. The `run` example is RISE: MC-RISE at 64 masks
warns that its maps are noisy (N(1-q)/K < 500), and the fault tests want stderr to hold the error alone; the batch
(and the CLI tests in test_explain_cli.py) cover MC-RISE.
"""

from __future__ import annotations

from pathlib import Path

VALID_EDGES: dict[str, set[str]] = {
    "run --seed": {"0"},
    "evaluate --seed": {"0"},
    "demo --seed": {"0"},
}
STDIN: set[str] = set()  # INPUTS take `@-` (a list on stdin) as a Path word; no verb reads data from "-"

_SIZE = 16
_FAST = ["--masks", "64", "--grid", "4", "--no-png", "--device", "cpu"]


def checkpoint(path: Path, *, channels: int = 3, size: int = _SIZE, classes=("a", "b", "c"), seed: int = 0) -> Path:
    """A classify checkpoint as `train` writes it, from an untrained (seeded) small-cnn."""
    import torch

    from wisecli.nn.zoo import build
    from wisecli.runtime.checkpoints import save_checkpoint

    mk = {"in_channels": channels, "num_classes": len(classes), "image_size": size, "width": 0.25, "norm": "batch",
          "bayes": "none", "components": 1, "dropout": 0.1, "members": 2}
    if not path.is_file():
        torch.manual_seed(seed)
        model = build("small-cnn", **mk)
        save_checkpoint(path, method="classify", arch="small-cnn", config={}, state_dict=model.state_dict(), model=mk,
                        classes=list(classes), normalize={"mean": [0.4] * channels, "std": [0.3] * channels},
                        input={"kind": "image", "channels": channels, "image_size": size, "layout": "nchw"},
                        train_counts=[3] * len(classes))
    return path


def images(folder: Path, n: int = 4, size: int = _SIZE, seed: int = 0) -> list[Path]:
    """n RGB PNGs: a coloured square at a random place on dark noise."""
    import numpy as np

    from wisecli.runtime.io.images import write_image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = folder / f"img{i}.png"
        if not p.is_file():
            a = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
            y, x = rng.integers(0, size - 6, 2)
            a[y:y + 6, x:x + 6] = [(220, 30, 30), (30, 200, 40), (40, 40, 230)][i % 3]
            write_image(p, a)
        out.append(p)
    return out


def examples(tmp: Path) -> dict[str, list[str]]:
    """verb -> argv after `wise explain <verb>`: a valid run (exit 0) taking at most ~2 s on 1 CPU core,
    reading inputs it creates under `tmp` and writing only into `tmp/out`."""
    tmp = Path(tmp)
    ckpt = checkpoint(tmp / "ckpt" / "best.pt")
    imgs = images(tmp / "imgs", n=2)
    maps = tmp / "maps"
    if not maps.is_dir():
        import numpy as np

        maps.mkdir()
        for p in imgs:
            np.save(maps / f"{p.stem}.npy", np.random.default_rng(0).random((_SIZE, _SIZE)).astype(np.float32))
    out = tmp / "out"
    return {
        "run": [str(imgs[0]), "--model", str(ckpt), "-o", str(out), "--method", "rise", *_FAST],
        "evaluate": [*map(str, imgs), "--maps", str(maps), "--model", str(ckpt), "--device", "cpu"],
        "demo": ["--quick", "--device", "cpu"],
        "info": [],
        "benchmark": ["--quick", "--device", "cpu"],
    }


def batch(tmp: Path, corrupt: int | None = None) -> list[str] | None:
    """argv after `wise explain` of `run` over 3 images written under tmp, outputs in tmp/"out"; with `corrupt=i`
    image i is replaced by random bytes (an item error: exit 3, the others written)."""
    import os

    tmp = Path(tmp)
    ckpt = checkpoint(tmp / "ckpt" / "best.pt")
    imgs = images(tmp / "batch", n=3)
    if corrupt is not None:
        imgs[corrupt].write_bytes(os.urandom(2048))
    return ["run", *map(str, imgs), "--model", str(ckpt), "-o", str(tmp / "out"), *_FAST]
