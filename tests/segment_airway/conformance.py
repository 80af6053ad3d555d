"""Valid, fast examples of every verb of segment-airway, for the conformance suite (tests/suite).

Every example shares one tiny phantom set per `tmp` (coarse 6 mm `tiny` phantoms, 32³ voxels) and one
quarter-width WingsNet checkpoint saved the way `train` saves them (`runtime.checkpoints.save_checkpoint`).
"""

from __future__ import annotations

from pathlib import Path

SMALL = dict(size=(32, 32, 32), spacing=(6.0, 6.0, 6.0))  # one 32³ window
FAST = ["--roi", "32", "--overlap", "0", "--sw-batch", "1", "--device", "cpu", "--no-crop", "--no-hu-check"]


def _phantoms(tmp: Path) -> Path:
    """tmp/data/{images,labels}/c{0,1,2}.nii.gz (written once per tmp)."""
    root = tmp / "data"
    if not (root / "labels" / "c2.nii.gz").is_file():
        from wisecli.engines.segment_airway.synthetic import make_phantom
        from wisecli.runtime.io.volumes import write_volume

        for i in range(3):
            ph = make_phantom("tiny", seed=i, **SMALL)
            write_volume(root / "images" / f"c{i}.nii.gz", ph.image, spacing=ph.spacing, origin=ph.origin)
            write_volume(root / "labels" / f"c{i}.nii.gz", ph.label, spacing=ph.spacing, origin=ph.origin)
    return root


def _weights(tmp: Path) -> Path:
    """A quarter-width WingsNet checkpoint with random weights (seed 0)."""
    path = tmp / "weights.pt"
    if not path.is_file():
        import torch

        from wisecli.engines.segment_airway.model import WingsNet
        from wisecli.runtime.checkpoints import save_checkpoint

        torch.manual_seed(0)
        model = WingsNet(width=0.25)
        save_checkpoint(path, method="segment-airway", arch="wingsnet", config={"in_channels": 1, "width": 0.25},
                        state_dict=model.state_dict(), train_spacing_median=[6.0, 6.0, 6.0])
    return path


def examples(tmp: Path) -> dict[str, list[str]]:
    """verb -> argv after `wise segment-airway <verb>`: a valid run (exit 0) of a few seconds on one core."""
    data, w = _phantoms(tmp), _weights(tmp)
    out = str(tmp / "out")
    train_data = tmp / "train"
    if not (train_data / "labels" / "c0.nii.gz").is_file():
        import shutil

        for sub in ("images", "labels"):
            (train_data / sub).mkdir(parents=True, exist_ok=True)
            shutil.copy(data / sub / "c0.nii.gz", train_data / sub / "c0.nii.gz")
    return {
        "phantom": ["-o", out, "-n", "1", "--size", "32", "24", "24", "--spacing", "6", "6", "6", "--seed", "1"],
        "train": [str(train_data), "-o", out, "--epochs1", "1", "--epochs2", "0", "--batch-size", "1",
                  "--patches-per-case", "1", "--optimizer", "adamw", "--workers", "0", "--device", "cpu",
                  "--no-progress", "--set", "data.crop=16", "--set", "data.patch=16", "--set", "model.width=0.25",
                  "--set", "val.roi=32", "--set", "val.sw_batch=1"],
        "predict": [str(data / "images" / "c0.nii.gz"), "-o", out, "--weights", str(w), *FAST],
        "evaluate": [str(data / "labels" / "c0.nii.gz"), "--ref", str(data / "labels" / "c0.nii.gz"), "--no-cache"],
        "demo": ["--quick", "--device", "cpu"],
        "info": ["--weights", str(w)],
        "benchmark": ["--quick", "--device", "cpu", "--no-train", "--repeats", "1"],
    }


def batch(tmp: Path, corrupt: int | None = None) -> list[str] | None:
    """`predict` over the three tiny phantoms (copied to tmp/batch; input `corrupt` replaced by random bytes)."""
    import shutil

    import numpy as np

    data, w = _phantoms(tmp), _weights(tmp)
    folder = tmp / "batch"
    folder.mkdir(exist_ok=True)
    inputs = []
    for i in range(3):
        p = folder / f"c{i}.nii.gz"
        if i == corrupt:
            p.write_bytes(np.random.default_rng(i).bytes(4096))
        else:
            shutil.copy(data / "images" / f"c{i}.nii.gz", p)
        inputs.append(str(p))
    return ["predict", *inputs, "-o", str(tmp / "out"), "--weights", str(w), *FAST]


VALID_EDGES: dict[str, set[str]] = {
    "predict --overlap": {"0"},
    "predict --hu-offset": {"0", "-1"},
    "phantom --noise-hu": {"0"},
    "phantom --emphysema": {"0"},
    "phantom --nodules": {"0"},
    "phantom --seed": {"0"},
    "train --epochs1": {"0"},
    "train --epochs2": {"0"},
    "train --workers": {"0"},
    "train --val-fraction": {"0"},
    "train --seed": {"0"},
    "demo --seed": {"0"},
}
STDIN: set[str] = set()
