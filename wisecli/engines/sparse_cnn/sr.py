"""`srresnet` with gated residual blocks (spec §2.1-2.2) [reconstructed].

Head 9x9 conv 3->C + PReLU (dense); `blocks` residual blocks conv3x3-PReLU-conv3x3 (no BN unless `batchnorm`);
body conv3x3, long skip; log2(scale) x [conv C->4C, PixelShuffle 2, PReLU]; 9x9 tail C->3.
**Output = bicubic(LR) + M_hr * tail**: a skipped pixel falls back to MATLAB bicubic. The tail starts at zero
[reconstructed], so a fresh net is exactly bicubic and training only adds a correction: with PyTorch's default
init the random tail put noise of about 0.1 on every pixel, and the 300-step demo recipe spent its steps undoing it
(held-out val crop at rho = 1: 27.38 dB with the default init, 28.35 dB zero-initialised, seed 0). The importance branch
runs on the head features (LR); every body block is gated with the LR mask M; M_hr is M upsampled (nearest).

Counted MACs of the layers after the blocks are the positions an exact sparse execution needs, propagated
backwards from M_hr: the tail at |M_hr|; its input at dilate(M_hr, 4); an upsampler conv at the max-pool (2x2)
of what its PixelShuffled output must supply, its input at that dilated by 1; the body conv at what the first
upsampler conv needs. Execution: the blocks take every path (`gather` included); the body conv, upsampler and
tail run dense times the mask on every path (their tile-gather is not implemented: counted < executed there).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .data import bicubic_macs, imresize
from .gating import Branch, Plan, Stats, conv_macs, dilate, gated_residual


class SRBlock(nn.Module):
    """conv3x3 - (BN) - PReLU - conv3x3 - (BN), gated residual, no final activation."""

    def __init__(self, c: int, batchnorm: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, 1, 1, bias=not batchnorm)
        self.bn1 = nn.BatchNorm2d(c) if batchnorm else nn.Identity()
        self.act = nn.PReLU(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=not batchnorm)
        self.bn2 = nn.BatchNorm2d(c) if batchnorm else nn.Identity()

    def _mid(self, h: Tensor) -> Tensor:
        return self.act(self.bn1(h))

    def forward(self, x: Tensor, plan: Plan | None, exec_: str, stats: Stats | None) -> Tensor:
        return gated_residual(x, plan, exec_, self.conv1, self._mid, self.conv2, self.bn2, _identity, stats)


def _identity(x: Tensor) -> Tensor:
    return x


def _wide_conv(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """The 9x9 head/tail conv (3 channels on one side) run in channels_last and returned contiguous: the same
    convolution, but on CPU oneDNN's NCHW kernel for these shapes is 3-4x slower (fwd 25 vs 6 ms, bwd 14 vs 9 ms for
    16->3 at 48x48, batch 8, one thread): the tail was two thirds of an SR training step."""
    return conv(x.contiguous(memory_format=torch.channels_last)).contiguous()


class SRResNet(nn.Module):
    """SRResNet x2/x4 with one importance map and the bicubic fallback (module docstring)."""

    def __init__(self, scale: int = 2, channels: int = 64, blocks: int = 16, batchnorm: bool = False,
                 branch_channels: int = 16):
        super().__init__()
        if scale not in (2, 4):
            raise ValueError("scale must be 2 or 4")
        self.scale = scale
        self.head = nn.Conv2d(3, channels, 9, 1, 4)
        self.head_act = nn.PReLU(channels)
        self.importance = Branch(channels, int(branch_channels))
        self.blocks = nn.ModuleList([SRBlock(channels, batchnorm) for _ in range(blocks)])
        self.body = nn.Conv2d(channels, channels, 3, 1, 1)
        ups = []
        for _ in range(int(math.log2(scale))):
            ups += [nn.Conv2d(channels, 4 * channels, 3, 1, 1), nn.PixelShuffle(2), nn.PReLU(channels)]
        self.up = nn.Sequential(*ups)
        self.tail = nn.Conv2d(channels, 3, 9, 1, 4)
        nn.init.zeros_(self.tail.weight)       # a fresh net is exactly bicubic (see the module docstring)
        nn.init.zeros_(self.tail.bias)

    def forward(self, lr: Tensor, rho: float = 1.0, *, exec_: str = "masked", rule: str = "regional", tile: int = 8,
                slack: float = 1.5, importance: Tensor | None = None, stats: Stats | None = None,
                return_maps: bool = False):
        """SR of LR images (B, 3, h, w) in [0, 1] at density rho (see `SparseResNet18.forward`)."""
        h0, w0 = lr.shape[-2:]
        s = self.scale
        base = imresize(lr, float(s))
        feat = self.head_act(_wide_conv(self.head, lr))
        if stats is not None:
            stats.add_dense(bicubic_macs(base.numel() // base.shape[0]) + conv_macs(self.head, h0 * w0))
        plan, P = None, None
        if exec_ != "dense":
            P = self.importance(feat, stats) if importance is None else importance
            if P.shape[-2:] != feat.shape[-2:]:
                P = F.adaptive_avg_pool2d(P, feat.shape[-2:])
            plan = Plan.build(P, rho, rule, tile, slack, straight_through=self.training)
        h = feat
        for blk in self.blocks:
            h = blk(h, plan, exec_, stats)
        h = self.body(h) + feat
        h = self.up(h)
        out = _wide_conv(self.tail, h)
        if plan is not None:
            out = F.interpolate(plan.gate, scale_factor=s, mode="nearest") * out
        if stats is not None:
            self._count_tail(stats, plan, (h0, w0))
        out = base + out
        return (out, P, [] if plan is None else [plan.mask]) if return_maps else out

    def random_tail(self) -> SRResNet:
        """Give the tail PyTorch's default (random) init instead of zeros: for races and path-equality checks
        with random weights, where a zero tail would make every path trivially equal to bicubic."""
        self.tail.reset_parameters()
        return self

    def _convs_after_blocks(self):
        return [self.body] + [m for m in self.up if isinstance(m, nn.Conv2d)] + [self.tail]

    def _count_tail(self, stats: Stats, plan: Plan | None, lr_size) -> None:
        h0, w0 = lr_size
        convs = self._convs_after_blocks()
        res = [(h0, w0)] + [(h0 * 2 ** i, w0 * 2 ** i) for i in range(len(convs) - 2)] + [(h0 * self.scale, w0 * self.scale)]
        dense = sum(conv_macs(c, r[0] * r[1]) for c, r in zip(convs, res))
        stats.dense += dense
        stats.executed += dense
        if plan is None:
            stats.counted += dense
            return
        need = F.interpolate(plan.mask, scale_factor=self.scale, mode="nearest")     # tail outputs
        counted = conv_macs(self.tail, need.sum((1, 2, 3)))
        need = dilate(need, 4)                                                       # tail inputs
        for conv in reversed(convs[1:-1]):                                           # upsampler convs
            need = F.max_pool2d(need, 2)
            counted = counted + conv_macs(conv, need.sum((1, 2, 3)))
            need = dilate(need, 1)
        counted = counted + conv_macs(self.body, need.sum((1, 2, 3)))
        stats.counted += counted
        stats.sparse_dense += dense
        stats.occupied += dense
