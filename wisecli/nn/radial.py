"""Rotation-invariant convolutions (spec §2.3; Fuhl, Kasneci, IJCNN 2021, arXiv 2010.00873) and the small nets
built from them.

No formulas or licensed code of the paper are reachable; everything below the abstract is [reconstructed]:

- A k x k kernel (k odd, c = (k-1)/2) is its centre plus the square rings r = 1..c (the cells at Chebyshev
  distance r), each of 8r cells listed clockwise from the ring's top-left corner.
- `RotatedRingConv2d` (R = 8 orientations): orientation o shifts ring r by o*r cells along its clockwise list,
  so o = 2 is an exact 90 degree rotation of the kernel and o = 1 an approximate 45 degree one (`orientations=4`
  keeps the exact quarter turns only, shifting by 2*o*r cells; R must divide 8). The R kernels
  come from ONE precomputed gather of the flat weight (`index_select`, whose backward is a scatter-add),
  stacked to (R*C_out, C_in, k, k) and run as one `conv2d`; the max over the R orientations is taken per
  output channel, then the bias is added. `ring_mode="joint"` (default) turns all rings together;
  `"independent"` lets each ring pick its own best shift (the centre rides with ring 1) and sums the rings'
  maxima: the rings are still gathered into one conv with (c*R*C_out) outputs, about c times the cost.
- `RadialConv2d`: one weight per (out, in, ring), ring = round(sqrt(di^2 + dj^2)) (`rings="euclid"`, default)
  or max(|di|, |dj|) (`rings="square"`, Chebyshev), gathered into a k x k kernel and run as an ordinary conv.
  The kernel is symmetric under 90 degree turns, so the layer commutes with them exactly.
- `DWSepRadialConv2d`: a depth-wise radial (or ring, `spatial="ring"`) conv, then a 1x1 conv.

Because the set of R kernels is closed under 90 degree turns and the conv has stride 1 with symmetric padding,
each layer is exactly equivariant to 90 degree turns of its input (feature maps turn with it). The nets of
§2.3 ([conv-BN-ReLU x2, maxpool 2] x2, conv-BN-ReLU, global average pool, one FC; widths 32/64/128 times
`width`) are then exactly invariant when the pooled sizes are even, i.e. the image side is divisible by 4
(28, 16, 8 ...). `plain-cnn` is the same net with ordinary `nn.Conv2d`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

R_DEFAULT = 8


def ring_cells(k: int) -> list[list[tuple[int, int]]]:
    """The (row, col) offsets of each ring of a k x k kernel: [[(0, 0)], ring 1 (8 cells), ring 2 (16) ...],
    each ring clockwise from its top-left corner."""
    if k < 1 or k % 2 == 0:
        raise ValueError(f"kernel size must be odd and positive, not {k}")
    c = (k - 1) // 2
    rings = [[(0, 0)]]
    for r in range(1, c + 1):
        cells = [(-r, j) for j in range(-r, r)]            # top row, left to right
        cells += [(i, r) for i in range(-r, r)]             # right column, top to bottom
        cells += [(r, j) for j in range(r, -r, -1)]         # bottom row, right to left
        cells += [(i, -r) for i in range(r, -r, -1)]        # left column, bottom to top
        rings.append(cells)
    return rings


def rotation_index(k: int, orientations: int = R_DEFAULT, rings: list[int] | None = None) -> Tensor:
    """(R, k*k) long: kernel_o.flat[p] = weight.flat[index[o, p]]; orientation o turns the kernel by o*360/R
    degrees, shifting ring r by o*r*8/R cells (R = 8: o*r cells). R must divide 8 (1, 2, 4, 8): R = 4 is the
    exact quarter turns only, R = 8 adds the approximate 45 degree ones.

    With `rings` given, cells outside those rings point at index k*k (a zero the caller appends)."""
    check_orientations(orientations)
    step = 8 // orientations
    c = (k - 1) // 2
    keep = set(range(c + 1)) if rings is None else set(rings)
    flat = lambda ij: (ij[0] + c) * k + (ij[1] + c)  # noqa: E731
    idx = torch.full((orientations, k * k), k * k, dtype=torch.long)
    for o in range(orientations):
        for r, cells in enumerate(ring_cells(k)):
            if r not in keep:
                continue
            n = len(cells)
            for j, cell in enumerate(cells):
                src = cells[(j - o * step * r) % n] if r > 0 else cell
                idx[o, flat(cell)] = flat(src)
    return idx


def check_orientations(orientations: int) -> None:
    """R must divide 8 so that every ring's shift is a whole number of cells."""
    if orientations not in (1, 2, 4, 8):
        raise ValueError(f"orientations must be 1, 2, 4 or 8 (a divisor of 8), not {orientations!r}")


def _pair_padding(k: int, padding: int | None) -> int:
    return k // 2 if padding is None else int(padding)


class RotatedRingConv2d(nn.Module):
    """Max over R ring-shifted copies of one k x k kernel, run as one stacked conv (see the module docstring).

    weight: (C_out, C_in/groups, k*k); `kernels()` gives the (R, C_out, C_in/groups, k, k) stack."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int | None = None, groups: int = 1, bias: bool = True, orientations: int = R_DEFAULT,
                 ring_mode: str = "joint"):
        super().__init__()
        if ring_mode not in ("joint", "independent"):
            raise ValueError(f"ring_mode must be joint or independent, not {ring_mode!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError("in_channels and out_channels must be divisible by groups")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.stride, self.padding, self.groups = stride, _pair_padding(kernel_size, padding), groups
        self.orientations, self.ring_mode = orientations, ring_mode
        k = kernel_size
        c = (k - 1) // 2
        if ring_mode == "joint" or c <= 1:
            parts = [rotation_index(k, orientations)]
        else:  # ring 1 carries the centre; each further ring alone
            parts = [rotation_index(k, orientations, [0, 1])] + [rotation_index(k, orientations, [r])
                                                                  for r in range(2, c + 1)]
        self.n_parts = len(parts)
        # (P, R, k*k) -> flat (P*R*k*k,) index into the weight with one zero appended
        self.register_buffer("index", torch.stack(parts).reshape(-1), persistent=False)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, k * k))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        fan_in = in_channels // groups * k * k
        nn.init.kaiming_uniform_(self.weight.view(out_channels, -1, k, k), a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    def kernels(self) -> Tensor:
        """(P*R, C_out, C_in/groups, k, k): every rotated kernel (P = ring parts: 1 when joint)."""
        k = self.kernel_size
        w = torch.cat([self.weight, self.weight.new_zeros(*self.weight.shape[:2], 1)], dim=-1)
        g = torch.index_select(w, -1, self.index)                      # (Co, Ci, P*R*k*k), backward: scatter-add
        g = g.view(*self.weight.shape[:2], self.n_parts * self.orientations, k, k)
        return g.permute(2, 0, 1, 3, 4)

    def stacked_weight(self) -> Tensor:
        """(C_out*P*R, C_in/groups, k, k), ordered [c_out][part][orientation] so groups stay contiguous."""
        k = self.kernel_size
        return self.kernels().permute(1, 0, 2, 3, 4).reshape(-1, self.in_channels // self.groups, k, k)

    def forward(self, x: Tensor) -> Tensor:
        y = F.conv2d(x, self.stacked_weight(), None, self.stride, self.padding, 1, self.groups)
        b, _, h, w = y.shape
        y = y.view(b, self.out_channels, self.n_parts, self.orientations, h, w).amax(dim=3).sum(dim=2)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, groups={self.groups}, orientations={self.orientations}, "
                f"ring_mode={self.ring_mode}, bias={self.bias is not None}")


def radial_index(k: int, rings: str = "euclid") -> tuple[Tensor, int]:
    """(k*k,) ring id of each cell and the number of rings."""
    if rings not in ("euclid", "square"):
        raise ValueError(f"rings must be euclid or square, not {rings!r}")
    c = (k - 1) // 2
    ids = []
    for i in range(-c, c + 1):
        for j in range(-c, c + 1):
            ids.append(int(round(math.sqrt(i * i + j * j))) if rings == "euclid" else max(abs(i), abs(j)))
    t = torch.tensor(ids, dtype=torch.long)
    return t, int(t.max()) + 1


class RadialConv2d(nn.Module):
    """One weight per (out, in, ring), gathered into a k x k kernel (weight: (C_out, C_in/groups, n_rings))."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int | None = None, groups: int = 1, bias: bool = True, rings: str = "euclid"):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError("in_channels and out_channels must be divisible by groups")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel size must be odd, not {kernel_size}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.stride, self.padding, self.groups, self.rings = stride, _pair_padding(kernel_size, padding), groups, rings
        idx, n = radial_index(kernel_size, rings)
        self.n_rings = n
        self.register_buffer("index", idx, persistent=False)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, n))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        fan_in = in_channels // groups * kernel_size * kernel_size
        bound = 1 / math.sqrt(fan_in)
        # the gathered kernel is distributed as nn.Conv2d's default init (uniform +-1/sqrt(fan_in))
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def kernel(self) -> Tensor:
        """(C_out, C_in/groups, k, k): the ring weights gathered into the kernel (backward: scatter-add)."""
        k = self.kernel_size
        return torch.index_select(self.weight, -1, self.index).view(*self.weight.shape[:2], k, k)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.kernel(), self.bias, self.stride, self.padding, 1, self.groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"rings={self.rings}, n_rings={self.n_rings}, groups={self.groups}, bias={self.bias is not None}")


class DWSepRadialConv2d(nn.Module):
    """Depth-wise radial (`spatial="radial"`) or rotated-ring (`"ring"`) k x k conv, then a 1x1 conv; the final
    bias is this module's own `bias` (added last, so the implicit-BNN wrapper can scale it)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int | None = None, bias: bool = True, spatial: str = "radial", rings: str = "euclid",
                 orientations: int = R_DEFAULT):
        super().__init__()
        if spatial not in ("radial", "ring"):
            raise ValueError(f"spatial must be radial or ring, not {spatial!r}")
        self.in_channels, self.out_channels, self.kernel_size, self.spatial = in_channels, out_channels, kernel_size, spatial
        if spatial == "radial":
            self.depthwise = RadialConv2d(in_channels, in_channels, kernel_size, stride, padding, groups=in_channels,
                                          bias=False, rings=rings)
        else:
            self.depthwise = RotatedRingConv2d(in_channels, in_channels, kernel_size, stride, padding,
                                               groups=in_channels, bias=False, orientations=orientations)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        y = self.pointwise(self.depthwise(x))
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y


# ---------------------------------------------------------------- the §2.3 nets

CONV_KINDS = ("plain", "ring", "radial", "dwsep")


def make_conv(kind: str, cin: int, cout: int, bias: bool, **opts) -> nn.Module:
    """One 3x3 stride-1 conv of the given kind (options: ring_mode, orientations, rings, spatial, kernel_size)."""
    k = int(opts.get("kernel_size", 3))
    if kind == "plain":
        return nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias)
    if kind == "ring":
        return RotatedRingConv2d(cin, cout, k, bias=bias, orientations=int(opts.get("orientations", R_DEFAULT)),
                                 ring_mode=opts.get("ring_mode", "joint"))
    if kind == "radial":
        return RadialConv2d(cin, cout, k, bias=bias, rings=opts.get("rings", "euclid"))
    if kind == "dwsep":
        return DWSepRadialConv2d(cin, cout, k, bias=bias, spatial=opts.get("spatial", "radial"),
                                 rings=opts.get("rings", "euclid"),
                                 orientations=int(opts.get("orientations", R_DEFAULT)))
    raise ValueError(f"unknown conv kind {kind!r}")


class InvariantNet(nn.Module):
    """[conv-BN-ReLU x2, maxpool 2] x2, conv-BN-ReLU, global average pool, one FC (widths 32/64/128 x width).

    `kind="plain"` is `plain-cnn`; ring/radial/dwsep are the invariant nets of §2.3."""

    def __init__(self, kind: str, in_channels: int, num_classes: int, width: float = 1.0, norm: str = "batch",
                 **conv_opts):
        super().__init__()
        w1, w2, w3 = (max(1, int(round(c * width))) for c in (32, 64, 128))
        bn = norm == "batch"

        def block(cin: int, cout: int) -> list[nn.Module]:
            layers: list[nn.Module] = [make_conv(kind, cin, cout, bias=not bn, **conv_opts)]
            if bn:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.ReLU())
            return layers

        self.features = nn.Sequential(
            *block(in_channels, w1), *block(w1, w1), nn.MaxPool2d(2),
            *block(w1, w2), *block(w2, w2), nn.MaxPool2d(2),
            *block(w2, w3),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(w3, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))
