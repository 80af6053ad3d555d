"""The audited model (spec §3): the shared zoo's BN-free nets (`mlp`, `small-cnn`, `cnn-32` with
`norm="none"`), a user factory `pkg.mod:fn` (+ a plain state dict through `torch.load(weights_only=True)`), or a
`classify` checkpoint rebuilt by `wisecli.nn.zoo.load_classifier` (its stored per-channel normalisation is
applied to the inputs [reconstructed: the model was trained on normalised inputs]).
Every problem is an InputError before any work: a factory that does not import or returns no `nn.Module`,
weights with missing/unexpected keys (the first few named), another method's checkpoint, BatchNorm (per-sample
gradients need a BN-free net), no trainable parameters, outputs that cannot index the task labels.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from wisecli.cli.errors import InputError

ARCHS = ("mlp", "small-cnn", "cnn-32")


def _factory(spec: str) -> nn.Module:
    mod_name, sep, fn_name = spec.partition(":")
    if not sep or not mod_name or not fn_name:
        raise InputError(f"--model-factory {spec!r} is not pkg.module:function", hint="e.g. --model-factory mypkg.nets:make")
    try:
        mod = importlib.import_module(mod_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's module
        raise InputError(f"--model-factory: cannot import {mod_name!r} ({type(exc).__name__}: {str(exc)[:120]})",
                         hint="the module must be importable (check PYTHONPATH)") from None
    fn = getattr(mod, fn_name, None)
    if not callable(fn):
        raise InputError(f"--model-factory: {mod_name} has no callable {fn_name!r}", hint="name a function returning an nn.Module")
    try:
        model = fn()
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"--model-factory: {spec}() failed ({type(exc).__name__}: {str(exc)[:120]})",
                         hint="the factory is called without arguments") from None
    if not isinstance(model, nn.Module):
        raise InputError(f"--model-factory: {spec}() returned {type(model).__name__}, not an nn.Module",
                         hint="return a torch.nn.Module")
    return model


def _load_state(model: nn.Module, path: Path) -> None:
    if not Path(path).is_file():
        raise InputError(f"weights not found: {path}", hint="give a state dict saved with torch.save(model.state_dict(), f)")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any unpickling failure is a bad file
        raise InputError(f"cannot load weights {path}: not a torch state dict of plain tensors",
                         hint="save them with torch.save(model.state_dict(), f)") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        if "method" in sd or str(sd.get("format", "")).startswith("wisecli"):
            raise InputError(f"{path} is a wisecli checkpoint of {sd.get('method')!r}, not a plain state dict",
                             hint="--model-factory takes a state dict; a classify checkpoint goes with --weights alone")
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise InputError(f"{path} is not a state dict (names to tensors)", hint="save it with torch.save(model.state_dict(), f)")
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else ""))
        if unexpected:
            parts.append("unexpected " + ", ".join(unexpected[:3]) + (" ..." if len(unexpected) > 3 else ""))
        raise InputError(f"{path}: the weights do not fit the model ({'; '.join(parts)})",
                         hint="give the weights of the model the factory builds")
    bad = [k for k in own if tuple(own[k].shape) != tuple(sd[k].shape)]
    if bad:
        raise InputError(f"{path}: shape mismatch for {', '.join(bad[:3])}", hint="give the weights of the model the factory builds")
    model.load_state_dict(sd, strict=True)


def build_model(*, arch: str, data, model_factory: str | None, weights: Path | None, seed: int,
                width: float = 1.0) -> tuple[nn.Module, dict]:
    """(model on CPU in eval mode, info {source, arch, normalize}) for the audit data; see the module docstring."""
    from wisecli.nn.zoo import build, load_classifier

    from .algorithm import check_model

    info: dict = {"normalize": None}
    shape = data.X.shape[1:]
    if model_factory:
        model = _factory(model_factory)
        if weights is not None:
            _load_state(model, Path(weights))
        info.update(source="factory", arch=model_factory)
    elif weights is not None:
        model, doc = load_classifier(weights, method="classify")
        norm = doc.get("normalize")
        if isinstance(norm, dict) and "mean" in norm:
            info["normalize"] = {"mean": list(norm["mean"]), "std": list(norm["std"])}
        info.update(source="classify", arch=doc.get("arch"))
    else:
        torch.manual_seed(seed)
        if data.kind == "features":
            model = build("mlp", in_channels=1, num_classes=data.n_classes, image_size=int(shape[0]), width=width)
            if arch != "mlp":
                raise InputError(f"--arch {arch} needs images; the data are feature vectors ({shape[0]} features)",
                                 hint="use --arch mlp for feature data")
        else:
            if shape[-1] != shape[-2]:
                raise InputError(f"the zoo's nets need square images, got {shape[-2]}x{shape[-1]}",
                                 hint="resize with --image-size")
            kw = {"in_channels": int(shape[0]), "num_classes": data.n_classes, "image_size": int(shape[-1]), "width": width}
            model = build("mlp", **kw, input="image") if arch == "mlp" else build(arch, **kw, norm="none")
        info.update(source="zoo", arch=arch)
    check_model(model)
    model.eval()
    return model, info


def prepare_inputs(X: np.ndarray, info: dict) -> torch.Tensor:
    """The model's input tensor (fp32), normalised as a classify checkpoint expects."""
    t = torch.as_tensor(X, dtype=torch.float32)
    norm = info.get("normalize")
    if norm is not None and t.ndim == 4 and len(norm["mean"]) == t.shape[1]:
        mean = torch.tensor(norm["mean"]).view(1, -1, 1, 1)
        std = torch.tensor(norm["std"]).view(1, -1, 1, 1)
        t = (t - mean) / std
    return t


def check_outputs(model: nn.Module, x: torch.Tensor, n_classes: int) -> None:
    """One forward pass on two samples: the output must be (B, ≥ n_classes) logits."""
    try:
        with torch.no_grad():
            out = model(x[:2])
    except Exception as exc:  # noqa: BLE001 - a model that cannot take the data is a user error
        raise InputError(f"the model cannot take the data of shape {tuple(x.shape[1:])} ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:160] if str(exc) else ''})",
                         hint="check the model's input size against the data (or --image-size)") from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        raise InputError("the model's output is not (batch, classes) logits", hint="return logits from forward()")
    if out.shape[1] < n_classes:
        raise InputError(f"the model has {out.shape[1]} outputs but the task labels go up to {n_classes - 1}",
                         hint="class index out of range: give a model with as many outputs as task classes")
