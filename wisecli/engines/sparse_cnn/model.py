"""The gated networks: `resnet18` for classification (this file) and `srresnet` for super-resolution.

`resnet18` [reconstructed, spec §2.1]: basic blocks [2, 2, 2, 2], widths 64/128/256/512 times `width`, BN; the
CIFAR stem (3x3/1, no max-pool) for inputs <= 64 px, else 7x7/2 plus max-pool. Parameter names mirror MONAI's
`ResNet` (conv1, bn1, layer1.0.conv1, ..., layerN.0.downsample.{0,1}, fc), so a dense `classify`
`monai-resnet18` checkpoint initialises it (`--init`); the importance branch (`importance.*`) is new.

Importance branch: on the stem features, conv3x3 C->16, ReLU, conv3x3 16->1, sigmoid: one map P per image at
stage-1 resolution; stage s uses P average-pooled to its resolution. Its MACs count as overhead. The stem, the
branch, the stride-2 projection blocks (unless `downsample_blocks`: then their residual branch is gated with the
shortcut dense; run as `masked` on the gather path) and the fc stay dense.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .gating import Branch, Plan, Stats, conv_macs, gated_residual

SMALL_STEM_MAX = 64


class BasicBlock(nn.Module):
    """MONAI-named basic block: conv1, bn1, conv2, bn2, downsample (Sequential(conv1x1, bn))."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride), nn.BatchNorm2d(cout))

    def _mid(self, h: Tensor) -> Tensor:
        return F.relu(self.bn1(h))

    def forward(self, x: Tensor, plan: Plan | None, exec_: str, stats: Stats | None, gate_down: bool) -> Tensor:
        if self.downsample is None:
            return gated_residual(x, plan, exec_, self.conv1, self._mid, self.conv2, self.bn2, F.relu, stats)
        short = self.downsample(x)
        f = self.bn2(self.conv2(self._mid(self.conv1(x))))
        H, W = f.shape[-2:]
        dense = conv_macs(self.conv1, H * W) + conv_macs(self.conv2, H * W)
        sc = conv_macs(self.downsample[0], H * W)
        if plan is None or exec_ == "dense":
            if stats is not None:
                stats.add_dense(dense + sc)
            return F.relu(short + f)
        if stats is not None:
            stats.add_dense(sc)
            stats.dense += dense
            stats.counted += conv_macs(self.conv1, plan.n_dil) + conv_macs(self.conv2, plan.n_mask)
            stats.executed += dense
            stats.sparse_dense += dense
            stats.occupied += dense
        return F.relu(short + plan.gate * f)


class SparseResNet18(nn.Module):
    """ResNet-18 with one importance map and gated stride-1 blocks (see the module docstring)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, image_size: int = 32, width: float = 1.0,
                 downsample_blocks: bool = False, branch_channels: int = 16):
        super().__init__()
        w = [max(1, int(round(c * width))) for c in (64, 128, 256, 512)]
        self.small = image_size <= SMALL_STEM_MAX
        self.conv1 = nn.Conv2d(in_channels, w[0], 3 if self.small else 7, 1 if self.small else 2,
                               1 if self.small else 3, bias=False)
        self.bn1 = nn.BatchNorm2d(w[0])
        self.maxpool = None if self.small else nn.MaxPool2d(3, 2, 1)
        cin = w[0]
        for s, c in enumerate(w, start=1):
            stride = 1 if s == 1 else 2
            setattr(self, f"layer{s}", nn.ModuleList([BasicBlock(cin, c, stride), BasicBlock(c, c, 1)]))
            cin = c
        self.fc = nn.Linear(cin, num_classes)
        self.importance = Branch(w[0], int(branch_channels))
        self.downsample_blocks = bool(downsample_blocks)

    def forward(self, x: Tensor, rho: float = 1.0, *, exec_: str = "masked", rule: str = "regional", tile: int = 8,
                slack: float = 1.5, importance: Tensor | None = None, stats: Stats | None = None,
                return_maps: bool = False):
        """Logits for images x (B, C, H, W) at density rho. `importance` replaces the learned map (random or
        Sobel masks of the same rule and density); `stats` accumulates the MACs; `return_maps` also returns
        (P, per-stage masks)."""
        h = self.conv1(x)
        if stats is not None:
            stats.add_dense(conv_macs(self.conv1, h.shape[-2] * h.shape[-1]))
        h = F.relu(self.bn1(h))
        if self.maxpool is not None:
            h = self.maxpool(h)
        P, masks = None, []
        if exec_ != "dense":
            P = self.importance(h, stats) if importance is None else importance
            if P.shape[-2:] != h.shape[-2:]:
                P = F.adaptive_avg_pool2d(P, h.shape[-2:])
        for s in range(1, 5):
            blocks = getattr(self, f"layer{s}")
            plan = None
            for blk in blocks:
                gated = P is not None and (blk.downsample is None or self.downsample_blocks)
                if gated and plan is None:
                    size = _strided(h.shape[-2:], blk.conv1)
                    Ps = F.adaptive_avg_pool2d(P, size) if tuple(size) != tuple(P.shape[-2:]) else P
                    plan = Plan.build(Ps, rho, rule, tile, slack, straight_through=self.training)
                    masks.append(plan.mask)
                h = blk(h, plan if gated else None, exec_, stats, self.downsample_blocks)
        h = torch.flatten(F.adaptive_avg_pool2d(h, 1), 1)
        if stats is not None:
            stats.add_dense(self.fc.in_features * self.fc.out_features)
        out = self.fc(h)
        return (out, P, masks) if return_maps else out


def _strided(size, conv: nn.Conv2d) -> tuple[int, int]:
    k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
    return tuple((n + 2 * p - k) // s + 1 for n in size)


def build(arch: str, **kw) -> nn.Module:
    """A fresh network of `arch` ("resnet18" | "srresnet")."""
    if arch == "resnet18":
        return SparseResNet18(**kw)
    if arch == "srresnet":
        from .sr import SRResNet

        return SRResNet(**kw)
    raise ValueError(f"unknown arch {arch!r}")


def analytic_dense_macs(in_channels: int, num_classes: int, size: int, width: float = 1.0) -> int:
    """ResNet-18's dense MACs written out by hand, stage by stage (no branch): the oracle of the counter."""
    w = [max(1, int(round(c * width))) for c in (64, 128, 256, 512)]
    small = size <= SMALL_STEM_MAX
    if small:
        s1 = size
        total = s1 * s1 * w[0] * in_channels * 9
    else:
        h = (size + 6 - 7) // 2 + 1
        total = h * h * w[0] * in_channels * 49
        s1 = (h + 2 - 3) // 2 + 1
    hw, cin = s1, w[0]
    for s, c in enumerate(w, start=1):
        if s > 1:
            hw = (hw + 2 - 3) // 2 + 1
            total += hw * hw * c * cin * 9 + hw * hw * c * c * 9 + hw * hw * c * cin   # projection block
            total += hw * hw * c * c * 9 * 2                                           # second block
        else:
            total += 2 * (hw * hw * c * c * 9 * 2)
        cin = c
    return total + w[3] * num_classes


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """conv followed by BN (eval) as one conv with a bias: w' = w g/s, b' = (b - mu) g/s + beta."""
    s = (bn.running_var + bn.eps).sqrt()
    g = bn.weight / s
    out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, bias=True).to(conv.weight.device, conv.weight.dtype)
    b = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        out.weight.copy_(conv.weight * g.view(-1, 1, 1, 1))
        out.bias.copy_((b - bn.running_mean) * g + bn.bias)
    return out


@torch.no_grad()
def fold_bn(model: nn.Module) -> nn.Module:
    """Inference copy of a SparseResNet18 / SRResNet (sr.batchnorm) with every BN folded into its conv (spec §2.3);
    BN becomes identity. The model must be in eval mode; the input model is not changed."""
    import copy

    m = copy.deepcopy(model).eval()
    if isinstance(m, SparseResNet18):
        m.conv1, m.bn1 = _fold(m.conv1, m.bn1), nn.Identity()
        for s in range(1, 5):
            for blk in getattr(m, f"layer{s}"):
                blk.conv1, blk.bn1 = _fold(blk.conv1, blk.bn1), nn.Identity()
                blk.conv2, blk.bn2 = _fold(blk.conv2, blk.bn2), nn.Identity()
                if blk.downsample is not None:
                    blk.downsample = nn.Sequential(_fold(blk.downsample[0], blk.downsample[1]), nn.Identity())
        return m
    for blk in getattr(m, "blocks", []):
        if isinstance(blk.bn1, nn.BatchNorm2d):
            blk.conv1, blk.bn1 = _fold(blk.conv1, blk.bn1), nn.Identity()
            blk.conv2, blk.bn2 = _fold(blk.conv2, blk.bn2), nn.Identity()
    return m
