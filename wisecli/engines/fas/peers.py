"""The peer's side of `wise fas benchmark` (spec §7): a "reference-style" CDCN written from the spec's description,
not copied. The same weights, every CDC layer as two convolutions (conv3×3 − θ·conv1×1 with ΣW), fp32, NCHW, and
for training the contrastive depth kernels rebuilt from NumPy and copied to the device at every step.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wisecli.engines.fas.model import CDConv2d, cdc_two_conv


class TwoConvCDC(nn.Module):
    """The peer's CDC layer: two convolutions per forward pass."""

    def __init__(self, src: CDConv2d):
        super().__init__()
        self.weight, self.theta, self.stride = src.weight, src.theta, src.stride

    def forward(self, x):
        return cdc_two_conv(x, self.weight, self.theta, self.stride)


def reference_model(model: nn.Module) -> nn.Module:
    """A deep copy of `model` whose CDC layers run as two convolutions."""
    ref = copy.deepcopy(model)
    for name, mod in list(ref.named_modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, CDConv2d):
                setattr(mod, child_name, TwoConvCDC(child))
    return ref


def reference_pyramid_depth_loss(pred, target, scales, device):
    """The peer's loss: per-level MSE, CDL at the finest level with kernels rebuilt from NumPy every call."""
    k = np.zeros((8, 1, 3, 3), np.float32)
    n = 0
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == 0 and dx == 0:
                continue
            k[n, 0, 1 + dy, 1 + dx], k[n, 0, 1, 1] = 1.0, -1.0
            n += 1
    kt = torch.from_numpy(k).to(device)
    finest = max(scales)
    total = 0.0
    for s in scales:
        kk = pred.shape[-1] // s
        p = F.avg_pool2d(pred, kk) if kk > 1 else pred
        g = F.avg_pool2d(target, kk) if kk > 1 else target
        t = F.mse_loss(p, g)
        if s == finest:
            t = t + F.mse_loss(F.conv2d(p, kt), F.conv2d(g, kt))
        total = total + t
    return total / len(scales)
