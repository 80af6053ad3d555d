"""The peers' side of the races (spec §7): a per-sample backward loop (what one writes without torch.func),
Opacus `GradSampleModule` when installed, and GradDefense's ones-VJP layer sensitivity (a different quantity;
speed only)."""

from __future__ import annotations

import torch
from torch import nn


def per_sample_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """{name: (N, *shape)} per-sample gradients by one backward pass per sample."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    out: dict[str, list] = {n: [] for n in names}
    for i in range(len(y)):
        model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
        for n, p in model.named_parameters():
            if p.requires_grad:
                out[n].append(p.grad.detach().clone())
    return {n: torch.stack(v) for n, v in out.items()}


def opacus_available() -> bool:
    from importlib.util import find_spec

    return find_spec("opacus") is not None


def opacus_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample gradients by Opacus' GradSampleModule (hooks)."""
    from opacus import GradSampleModule

    gm = GradSampleModule(model)
    gm.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(gm(x), y, reduction="sum").backward()
    out = {n.removeprefix("_module."): p.grad_sample for n, p in gm.named_parameters()}
    gm._close()
    return out
