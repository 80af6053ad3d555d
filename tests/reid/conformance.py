"""Valid, fast examples of every verb of reid, for the conformance suite (tests/suite).

The data is the engine's synthetic VeRi set at its smallest (32 px, a few ids); the checkpoint is what
`reid train` writes (`save_checkpoint` of a quarter-width ResNet-18 at 32^2, built in a few milliseconds
instead of trained; the `train` example trains one tiny epoch itself); the features files are random unit
vectors of the model's dimension with ids and cameras that give valid queries.
"""

from __future__ import annotations

from pathlib import Path

VALID_EDGES: dict[str, set[str]] = {
    "train --vcam-hidden": {"0"},       # 0: a linear VCAM MLP
    "train --vp-weight": {"0"},         # 0: no viewpoint loss
    "train --eval-every": {"0"},        # 0: evaluate at the first and last epoch only
    "train --seed": {"0"},
    "evaluate --lambda": {"0"},         # 0: the Jaccard distance alone
    "evaluate --seed": {"0"},
    "query --lambda": {"0"},
    "query --camera": {"0"},            # camera ids start at 0 in manifests
}
STDIN: set[str] = set()  # INPUTS/QUERIES take `@-` (a list on stdin) as a Path word; no verb reads data from "-"

_SIZE = 32


def _data(tmp: Path) -> Path:
    from wisecli.engines.reid.synthetic import write_veri

    root = tmp / "veri"
    if not (root / "name_train.txt").is_file():
        write_veri(root, train_ids=3, test_ids=2, images_per_id=4, queries_per_id=1, size=_SIZE, seed=0)
    return root


def _checkpoint(tmp: Path) -> tuple[Path, int]:
    import torch

    from wisecli.engines.reid.api import DEFAULTS
    from wisecli.engines.reid.predict import build_model
    from wisecli.engines.reid.train import model_config
    from wisecli.runtime.checkpoints import save_checkpoint

    cfg = {**DEFAULTS["train"], "arch": "resnet18", "input_size": _SIZE, "width": 0.25}
    mc = model_config(cfg, 3, True)
    torch.manual_seed(0)
    model = build_model(mc)
    path = tmp / "ckpt" / "best.pt"
    if not path.is_file():
        save_checkpoint(path, method="reid", arch="resnet18", config={"model": mc}, state_dict=model.state_dict())
    return path, int(model.feat_dim)


def _features(path: Path, n: int, dim: int, cam: int, seed: int) -> Path:
    import numpy as np

    rng = np.random.default_rng(seed)
    f = rng.normal(size=(n, dim)).astype(np.float32)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, features=f, ids=np.arange(n) % 3, cameras=np.full(n, cam), normalised=np.array(True),
             paths=np.array([f"{i:04d}_c{cam:03d}_0_0.jpg" for i in range(n)]))
    return path


def _images(tmp: Path) -> list[Path]:
    return sorted((_data(tmp) / "image_query").iterdir())


def examples(tmp: Path) -> dict[str, list[str]]:
    """verb -> argv after `wise reid <verb>`: a valid run (exit 0) taking at most ~2 s on 1 CPU core,
    reading inputs it creates under `tmp` and writing only into `tmp/out` (a folder) or `tmp/out.EXT`."""
    tmp = Path(tmp)
    data = _data(tmp)
    ckpt, dim = _checkpoint(tmp)
    g = _features(tmp / "feats" / "g.npz", 9, dim, cam=2, seed=2)
    image = _images(tmp)[0]
    out = tmp / "out"
    cpu = ["--device", "cpu"]
    return {
        "train": [str(data), "-o", str(out), "--arch", "resnet18", "--width", "0.25", "--input-size",
                  str(_SIZE), "--p", "2", "--k", "2", "--epochs", "1", "--no-progress", *cpu],
        "predict": [str(image), "--weights", str(ckpt), "-o", str(out / "feats.npz"), *cpu],
        "evaluate": [str(data), "--weights", str(ckpt), "--per-query", str(tmp / "out.jsonl"), *cpu],
        "query": [str(image), "--gallery", str(g), "--weights", str(ckpt), "--top", "3", *cpu],
        "demo": ["--quick", *cpu],
        "info": [],
        "benchmark": ["--quick", *cpu],
    }


def batch(tmp: Path, corrupt: int | None = None) -> list[str] | None:
    """argv after `wise reid` of `predict` over 3 images written under tmp, the features file in tmp/"out";
    with `corrupt=i` image i is replaced by random bytes (an item error: exit 3, the file keeps the rest)."""
    from conftest import copy_images

    tmp = Path(tmp)
    ckpt, _ = _checkpoint(tmp)
    inputs = copy_images(sorted((_data(tmp) / "image_train").iterdir())[:3], tmp / "batch", corrupt, ".jpg")
    return ["predict", *inputs, "--weights", str(ckpt), "-o", str(tmp / "out" / "batch.npz"), "--device", "cpu"]
