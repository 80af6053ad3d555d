"""Shipped demo weights: small trained models inside the package, for quick demos that cannot train in 15 s.

DESIGN.md's exception (issue 13 point 9): a method whose claim needs a trained model ships weights made by
its own training code on its own synthetic data, from a recorded recipe and seed. They live beside the
method's `demo.py` as `demo_weights.npz` (float arrays stored as float32, other dtypes as they are; read
with `allow_pickle=False`, so loading never runs code) and `demo_weights.json` (the recipe, what the models
were trained on, the torch version and anything the loader needs, such as model configurations). A slow test
retrains from the recipe and checks the metrics the weights give; `info` shows `trained_on`.

One file holds several named models (`groups`): array `"<group>.<name>"` is entry `name` of group `group`.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import torch

MAX_BYTES = 4 * 1024 * 1024   # issue 13 point 9: at most 4 MB a method


def _array(v) -> np.ndarray:
    a = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
    return a.astype(np.float32) if np.issubdtype(a.dtype, np.floating) else a


def save(path: Path, groups: dict[str, dict], meta: dict) -> Path:
    """Write `groups` ({group: {name: tensor or array}}, e.g. state dicts) to `path` (.npz) and `meta` plus
    the torch version to `path.with_suffix(".json")`, both atomically. `meta` should carry `recipe` and
    `trained_on`. Refuses more than `MAX_BYTES`."""
    from wisecli.runtime.io.atomic import save_npz, write_json

    arrays = {f"{g}.{k}": _array(v) for g, entries in groups.items() for k, v in entries.items()}
    size = sum(a.nbytes for a in arrays.values())
    if size > MAX_BYTES:
        raise ValueError(f"demo weights of {size / 2**20:.1f} MB exceed the {MAX_BYTES // 2**20} MB limit")
    path = Path(path)
    save_npz(path, **arrays)
    write_json(path.with_suffix(".json"), {**meta, "torch": torch.__version__})
    return path


def load(path: Path) -> tuple[dict, dict[str, dict[str, torch.Tensor]]] | None:
    """(meta, {group: {name: tensor}}) from `save`'s pair of files, or None when either is missing or does not
    read (a quick demo then says so instead of failing)."""
    path = Path(path)
    meta_path = path.with_suffix(".json")
    if not (path.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        groups: dict[str, dict[str, torch.Tensor]] = {}
        with np.load(path, allow_pickle=False) as z:
            for key in z.files:
                g, _, name = key.partition(".")
                groups.setdefault(g, {})[name] = torch.from_numpy(z[key].copy())
        return meta, groups
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """Load a group into `module` (strict: every key present, same shapes), cast to each parameter's dtype,
    and return it in eval mode."""
    own = module.state_dict()
    module.load_state_dict({k: state[k].to(own[k].dtype) for k in own}, strict=True)
    return module.eval()


def describe(path: Path) -> dict | None:
    """What `info` says of a method's shipped weights: file, size, what they were trained on, the recipe."""
    path = Path(path)
    try:
        meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        size = path.stat().st_size
    except (OSError, ValueError):
        return None
    return {"file": path.name, "bytes": size, "trained_on": meta.get("trained_on"), "recipe": meta.get("recipe"),
            "torch": meta.get("torch")}
