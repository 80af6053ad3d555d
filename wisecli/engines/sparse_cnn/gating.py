"""Masks, tile plans, the gated residual block on every execution path, and the MAC counts they imply.

Tang, Sun, Yuan, Liu, "Adaptive Pixel-wise Structured Sparse Network for Efficient CNNs", arXiv 2010.11083:
one importance map P per image; convolutions computed only at important pixels, for all channels or none
("structured"); "pixel-wise refined, regional adaptive". Only the abstract is public, so the rules below are
[reconstructed] (spec §2.2-2.4):

- `topk`: the ceil(rho*H*W) highest-P pixels of each image.
- `regional` (default): the ceil(min(1, slack*rho)*n_tiles) T x T tiles of highest mean P are active; inside
  them the ceil(rho*H*W) highest-P pixels are kept. Pixels outside the active tiles rank below every pixel in
  them (P - 2), so the pixel count is exact even where border tiles are partial (then, and only then, a pixel
  may fall outside the chosen tiles; with full tiles the tile count is at most the budget).
- `threshold`: M = 1[P > 0.5] (DynConv style; density not exact, trained with a budget loss).

A gated residual block computes y = act(x + g * F(x)), g the hard mask in the forward pass and
M + P - stopgrad(P) in training (straight-through: the gradient reaches the importance branch).

Execution paths: `dense` (masks ignored), `masked` (dense convs times the mask: the reference), `gather`
(SBNet pattern: active tiles with a halo of 2 gathered once per stage, two unpadded convs, conv1 outputs
outside the image zeroed as the dense net's zero padding would, written back with `index_put_`). The tile list
is built once per stage; its size is read once per stage (`nonzero`), the only host sync of the sparse forward.
`gather` is an inference path (BN in eval mode); training uses `masked`.

MACs: a conv costs positions x C_out x C_in/groups x k^2, a linear in x out. Per image and block: `dense` all
output positions; `counted` |dilate3x3(M)| positions for the first conv and |M| for the second; `executed`
what the path computed (masked/dense: dense; gather: tiles x (T+2)^2 and tiles x T^2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

RULES = ("regional", "topk", "threshold")
EXECS = ("dense", "masked", "gather")
TILES = (4, 8, 16, 32)


def n_keep(rho: float, n: int) -> int:
    """ceil(rho * n), at least 1 (a float product like 0.3 * 100 = 30.000000000000004 is not rounded up)."""
    return max(1, min(n, math.ceil(rho * n - 1e-9)))


def tile_scores(P: Tensor, tile: int) -> Tensor:
    """Mean of P over each T x T tile (partial border tiles: over their pixels), (B, nty, ntx)."""
    B, _, H, W = P.shape
    ph, pw = -H % tile, -W % tile
    s = F.avg_pool2d(F.pad(P, (0, pw, 0, ph)), tile)
    c = F.avg_pool2d(F.pad(torch.ones_like(P[:1]), (0, pw, 0, ph)), tile)
    return (s / c)[:, 0]


def make_mask(P: Tensor, rho: float, rule: str = "regional", tile: int = 8, slack: float = 1.5) -> Tensor:
    """The hard mask (B, 1, H, W) of 0/1 in P's dtype for the importance map P (B, 1, H, W) at density rho.
    Everything stays on P's device; no host sync."""
    B, _, H, W = P.shape
    if rule == "threshold":
        return (P > 0.5).to(P.dtype)
    if rho >= 1.0:
        return torch.ones_like(P)
    k = n_keep(rho, H * W)
    pri = P.detach().flatten(1)
    if rule == "regional":
        sc = tile_scores(P.detach(), tile)
        nty, ntx = sc.shape[1:]
        kt = n_keep(min(1.0, slack * rho), nty * ntx)
        on = torch.zeros_like(sc.flatten(1)).scatter_(1, sc.flatten(1).topk(kt, dim=1).indices, 1.0)
        on = on.view(B, 1, nty, ntx).repeat_interleave(tile, 2).repeat_interleave(tile, 3)[:, :, :H, :W]
        pri = pri + 2.0 * on.flatten(1)
    elif rule != "topk":
        raise ValueError(f"unknown mask rule {rule!r}")
    m = torch.zeros_like(pri).scatter_(1, pri.topk(k, dim=1).indices, 1.0)
    return m.view(B, 1, H, W)


def dilate(m: Tensor, r: int = 1) -> Tensor:
    """Binary dilation by a (2r+1)^2 square (max-pool, zero outside the image)."""
    return F.max_pool2d(m, 2 * r + 1, stride=1, padding=r) if r > 0 else m


@dataclass
class Plan:
    """One stage's mask, its gate (straight-through in training) and, for `gather`, its tile list."""

    mask: Tensor                       # (B, 1, H, W) 0/1
    gate: Tensor                       # mask, or mask + P - stopgrad(P)
    tile: int = 8
    n_mask: Tensor | None = None       # (B,) |M|
    n_dil: Tensor | None = None        # (B,) |dilate(M)|
    tiles: dict = field(default_factory=dict)

    @classmethod
    def build(cls, P: Tensor, rho: float, rule: str, tile: int, slack: float, straight_through: bool) -> Plan:
        m = make_mask(P, rho, rule, tile, slack)
        gate = m + P - P.detach() if straight_through else m
        return cls(mask=m, gate=gate, tile=tile, n_mask=m.sum((1, 2, 3)), n_dil=dilate(m).sum((1, 2, 3)))

    def gather_index(self, halo: int = 2) -> dict:
        """Tile list (b, ty, tx), the row/column index of each tile with its halo in the map padded by `halo`,
        per-image tile counts, and the in-image mask of the first conv's (T+2)^2 outputs. Built once per stage."""
        if halo in self.tiles:
            return self.tiles[halo]
        T = self.tile
        m = self.mask
        B, _, H, W = m.shape
        on = F.max_pool2d(F.pad(m, (0, -W % T, 0, -H % T)), T)[:, 0] > 0       # (B, nty, ntx)
        b, ty, tx = on.nonzero(as_tuple=True)                                   # the one host sync per stage
        ar = torch.arange(T + 2 * halo, device=m.device)
        rows = ty[:, None] * T + ar                                             # padded coordinates
        cols = tx[:, None] * T + ar
        # the first conv's outputs cover image rows ty*T - (halo-1) + i; zero those outside the image
        ar1 = torch.arange(T + 2 * (halo - 1), device=m.device)
        r1 = ty[:, None] * T - (halo - 1) + ar1
        c1 = tx[:, None] * T - (halo - 1) + ar1
        inside = ((r1 >= 0) & (r1 < H))[:, :, None] & ((c1 >= 0) & (c1 < W))[:, None, :]
        doc = {"b": b, "rows": rows, "cols": cols, "inside": inside[:, None].to(m.dtype),
               "per_image": on.flatten(1).sum(1).to(torch.float64), "n_tiles": on[0].numel(), "H": H, "W": W}
        self.tiles[halo] = doc
        return doc


def conv_macs(conv: nn.Conv2d, positions) -> float:
    """MACs of `conv` at `positions` output positions (a number or a tensor)."""
    kh, kw = conv.kernel_size
    return positions * conv.out_channels * (conv.in_channels // conv.groups) * kh * kw


class Stats:
    """Per-image MAC sums (float64 tensors on the device, read once at the end), and the MAC-weighted tile
    occupancy of the sparse layers."""

    def __init__(self, batch: int, device):
        z = torch.zeros(batch, dtype=torch.float64, device=device)
        self.dense, self.counted, self.executed = z.clone(), z.clone(), z.clone()
        self.sparse_dense = z.clone()       # dense MACs of the gated layers
        self.occupied = z.clone()           # their dense MACs times the tile occupancy

    def add_dense(self, macs: float, executed: bool = True) -> None:
        """A layer computed everywhere (stem, branch, projection blocks, fc)."""
        self.dense += macs
        self.counted += macs
        if executed:
            self.executed += macs

    def add_overhead(self, macs: float) -> None:
        """A layer the dense network does not have (the importance branch): counted and executed only."""
        self.counted += macs
        self.executed += macs

    def as_dict(self) -> dict:
        d, c, e = self.dense, self.counted, self.executed
        occ = torch.where(self.sparse_dense > 0, self.occupied / self.sparse_dense.clamp_min(1), torch.ones_like(d))
        return {"macs_dense": d, "macs_counted": c, "macs_executed": e, "tile_occupancy": occ}


def _valid_conv(x: Tensor, conv: nn.Conv2d) -> Tensor:
    return F.conv2d(x, conv.weight, conv.bias, stride=1, padding=0, dilation=conv.dilation, groups=conv.groups)


def gated_residual(x: Tensor, plan: Plan | None, exec_: str, conv1: nn.Conv2d, mid: nn.Module, conv2: nn.Conv2d,
                   post: nn.Module, act, stats: Stats | None, tile_occupancy: bool = True) -> Tensor:
    """y = act(x + g * post(conv2(mid(conv1(x))))) for a stride-1 block of two 3x3 convs with padding 1 and
    C_in = C_out (ResNet basic block: mid = BN+ReLU, post = BN, act = ReLU; SR block: mid = PReLU, post and
    act identity). `plan` None or exec "dense": every pixel."""
    H, W = x.shape[-2:]
    if plan is None or exec_ == "dense":
        if stats is not None:
            stats.add_dense(conv_macs(conv1, H * W) + conv_macs(conv2, H * W))
        return act(x + post(conv2(mid(conv1(x)))))
    dense = conv_macs(conv1, H * W) + conv_macs(conv2, H * W)
    use_gather = exec_ == "gather" and min(H, W) >= 2 * plan.tile
    if stats is not None:
        stats.dense += dense
        stats.counted += conv_macs(conv1, plan.n_dil) + conv_macs(conv2, plan.n_mask)
        stats.sparse_dense += dense
    if not use_gather:
        if stats is not None:
            stats.executed += dense
            stats.occupied += dense
        return act(x + plan.gate * post(conv2(mid(conv1(x)))))
    T = plan.tile
    g = plan.gather_index(halo=2)
    if stats is not None:
        per = g["per_image"]
        stats.executed += conv_macs(conv1, per * (T + 2) ** 2) + conv_macs(conv2, per * T * T)
        stats.occupied += dense * per / g["n_tiles"]
    B, C = x.shape[:2]
    Hp, Wp = H + (-H % T), W + (-W % T)
    xp = F.pad(x, (2, 2 + Wp - W, 2, 2 + Hp - H))                  # the dense net's zero padding, and more
    b, rows, cols = g["b"], g["rows"], g["cols"]
    bi = b[:, None, None]
    patch = xp.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # (n,C,T+4,T+4)
    h = mid(_valid_conv(patch, conv1)) * g["inside"]                # (n, C', T+2, T+2), zero outside the image
    f = post(_valid_conv(h, conv2))                                 # (n, C, T, T)
    out = xp[:, :, 2:2 + Hp, 2:2 + Wp].clone()
    r, c = rows[:, 2:2 + T] - 2, cols[:, 2:2 + T] - 2               # unpadded coordinates of the tile
    mp = F.pad(plan.mask, (0, Wp - W, 0, Hp - H))
    idx = (bi, r[:, :, None], c[:, None, :])
    onhwc = out.permute(0, 2, 3, 1)
    m_t = mp[:, 0][idx][..., None]                                   # (n, T, T, 1)
    onhwc.index_put_(idx, act(onhwc[idx] + m_t * f.permute(0, 2, 3, 1)))
    return out[:, :, :H, :W]


class Branch(nn.Module):
    """The importance branch: conv3x3 C->16, ReLU, conv3x3 16->1, sigmoid."""

    def __init__(self, channels: int, hidden: int = 16):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, 1, 3, padding=1)

    def forward(self, x: Tensor, stats: Stats | None = None) -> Tensor:
        if stats is not None:
            hw = x.shape[-2] * x.shape[-1]
            stats.add_overhead(conv_macs(self.conv1, hw) + conv_macs(self.conv2, hw))
        return torch.sigmoid(self.conv2(F.relu(self.conv1(x))))
