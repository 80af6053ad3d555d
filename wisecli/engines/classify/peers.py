"""The peers' side of `wise classify benchmark` (spec §7): what our pieces race against.

- optim: `wisecli.optim.reference.ReferenceLAMBC` (the public per-tensor loop, one `.item()` per tensor), and timm's
  `Lamb(trust_clip=True, always_adapt=True, max_grad_norm=None, bias_correction=False)` when timm is installed.
- radial: the R orientations of a ring conv as R separate `conv2d` calls (then the max), the way a loop would.
- ibnn: K S separate passes of the model, one per sample (the loop an implicit BNN's one stacked pass replaces).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def reference_lambc(params, **kw):
    from wisecli.optim.reference import ReferenceLAMBC

    return ReferenceLAMBC(params, **kw)


def timm_lamb(params, lr: float):
    """timm's Lamb with LAMBC's math (clip at 1 via trust_clip), or None without timm."""
    try:
        from timm.optim import Lamb
    except ImportError:
        return None
    return Lamb(params, lr=lr, trust_clip=True, always_adapt=True, max_grad_norm=None, bias_correction=False)


def separate_convs(layer, x: torch.Tensor) -> torch.Tensor:
    """A joint-mode `RotatedRingConv2d` computed the looping way: its R rotated kernels as R `conv2d` calls, then
    the running max and the bias."""
    out = None
    for w in layer.kernels():
        y = F.conv2d(x, w, None, layer.stride, layer.padding, 1, layer.groups)
        out = y if out is None else torch.maximum(out, y)
    return out if layer.bias is None else out + layer.bias.view(1, -1, 1, 1)


def looped_samples(model, x: torch.Tensor, n: int):
    """n separate forward passes (one per sample)."""
    return torch.stack([model(x) for _ in range(n)])
