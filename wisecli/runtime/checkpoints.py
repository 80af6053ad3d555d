"""Self-describing checkpoints (DESIGN.md): a dict of tensors and plain Python values only, saved
atomically and loaded with `torch.load(weights_only=True)`, refusing another method's checkpoint."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from wisecli.cli.errors import InputError
from wisecli.runtime.io.atomic import atomic_path
from wisecli.runtime.bench import versions
from wisecli.runtime.runrecord import now_iso

FORMAT = "wisecli/1"


def plain(obj: Any) -> Any:
    """Tensors stay; numpy arrays become tensors, numpy scalars Python numbers, Paths strings."""
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain(v) for v in obj)
    if isinstance(obj, Path):
        return str(obj)
    module = type(obj).__module__
    if module == "numpy":
        import numpy as np

        if isinstance(obj, np.ndarray):
            return torch.from_numpy(np.ascontiguousarray(obj))
        return obj.item()
    return obj


def save_checkpoint(path: Path | str, *, method: str, arch: str, config: dict, state_dict: dict,
                    metrics: dict | None = None, **extra: Any) -> Path:
    """Write the self-describing checkpoint dict atomically (tensors moved to CPU, numpy made plain)."""
    doc = {
        "format": FORMAT,
        "method": method,
        "arch": arch,
        "config": plain(config),
        "state_dict": {k: v.detach().cpu() if isinstance(v, torch.Tensor) else plain(v)
                       for k, v in state_dict.items()},
        "metrics": plain(metrics or {}),
        "versions": versions(),
        "created": now_iso(),
    }
    doc.update(plain(extra))
    with atomic_path(path) as tmp:
        torch.save(doc, tmp)
    return Path(path)


def load_checkpoint(path: Path | str, *, method: str, map_location: Any = "cpu", plain_ok: bool = False) -> dict:
    """Load a checkpoint of `method` (a file, or a run folder's best.pt) with weights_only=True; a missing,
    corrupt, foreign or other-method file is an InputError (exit 2).

    `plain_ok` (for `--pretrained`/`--init`) also accepts a plain state dict, names to tensors, as torchvision
    and timm publish ImageNet weights (or such a dict under a `state_dict` key): it comes back as
    `{"format": None, "method": None, "state_dict": it}`. A wisecli checkpoint of another method is still refused."""
    path = Path(path)
    if path.is_dir():
        for cand in (path / "checkpoints" / "best.pt", path / "best.pt"):
            if cand.is_file():
                path = cand
                break
    if not path.is_file():
        raise InputError(f"weights not found: {path}", hint="give a checkpoint written by 'train' (run/checkpoints/best.pt)")
    try:
        doc = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # any failure to unpickle a file is a bad file, never a bug of ours
        if isinstance(exc, pickle.UnpicklingError) and "global" in str(exc).lower():
            # torch's own text ends by suggesting weights_only=False: never here
            raise InputError(f"cannot load checkpoint {path}: it holds objects other than tensors and plain values",
                             hint="wisecli loads checkpoints with weights_only=True only; give a file 'train' wrote") from None
        raise InputError(f"cannot load checkpoint {path}: the file is corrupt or not a checkpoint ({type(exc).__name__})",
                         hint="give a checkpoint written by 'train' (run/checkpoints/best.pt); nothing is downloaded") from None
    if plain_ok and isinstance(doc, dict) and "format" not in doc:
        state = doc.get("state_dict", doc)
        if isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values()):
            return {"format": None, "method": None, "state_dict": state}
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InputError(f"{path} is not a wisecli checkpoint",
                         hint="weights from other projects must be converted; 'train' writes checkpoints/best.pt")
    if doc.get("method") != method:
        raise InputError(f"{path} is a '{doc.get('method')}' checkpoint, not '{method}'",
                         hint=f"use a checkpoint written by 'wise {method} train'")
    return doc
