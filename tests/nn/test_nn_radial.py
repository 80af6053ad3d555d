"""Rotation-invariant convolutions (spec §2.3, §9 "Radial"): ring geometry, the gather and its scatter-add
backward, stacked conv = R separate convs, exact 90 degree equivariance of each layer and invariance of the nets."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from wisecli.nn import build
from wisecli.nn.radial import (DWSepRadialConv2d, RadialConv2d, RotatedRingConv2d, radial_index, ring_cells,
                               rotation_index)

# float32 convs of O(1) values summed over <= a few hundred terms: rounding stays near 1e-6; 1e-5 leaves margin
TOL = 1e-5


@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_ring_cells_partition_the_kernel_clockwise(k):
    rings = ring_cells(k)
    c = (k - 1) // 2
    cells = [cell for ring in rings for cell in ring]
    assert sorted(cells) == sorted((i, j) for i in range(-c, c + 1) for j in range(-c, c + 1))
    for r, ring in enumerate(rings[1:], start=1):
        assert len(ring) == 8 * r
        assert all(max(abs(i), abs(j)) == r for i, j in ring)
        # consecutive cells are neighbours (a closed walk), and the walk turns clockwise: top row goes right
        for a, b in zip(ring, ring[1:] + ring[:1]):
            assert abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1
        assert ring[0] == (-r, -r) and ring[1] == (-r, -r + 1)


@pytest.mark.parametrize("k", [3, 5, 7])
def test_two_orientation_steps_are_an_exact_quarter_turn(k):
    w = torch.randn(k * k)
    idx = rotation_index(k, 8)
    kernels = w[idx].view(8, k, k)
    assert torch.equal(kernels[0], w.view(k, k))
    for o in range(8):
        # the clockwise shift by 2r cells per ring is a clockwise quarter turn: rot90 with k=-1
        assert torch.equal(kernels[(o + 2) % 8], torch.rot90(kernels[o], -1, (0, 1)))
    # R = 4 keeps the exact quarter turns only
    four = w[rotation_index(k, 4)].view(4, k, k)
    assert all(torch.equal(four[o], torch.rot90(kernels[0], -o, (0, 1))) for o in range(4))
    with pytest.raises(ValueError, match="divisor of 8"):
        rotation_index(k, 3)


def test_gather_backward_is_scatter_add_and_passes_gradcheck():
    torch.manual_seed(0)
    layer = RotatedRingConv2d(2, 3, 5, ring_mode="independent").double()
    g = torch.randn_like(layer.kernels())
    (layer.kernels() * g).sum().backward()
    # oracle: every kernel cell adds its upstream gradient to the weight cell it was gathered from
    ref = torch.zeros(3, 2, 26, dtype=torch.float64)
    flat_g = g.permute(1, 2, 0, 3, 4).reshape(3, 2, -1)
    for pos, src in enumerate(layer.index.tolist()):
        ref[:, :, src] += flat_g[:, :, pos]
    assert torch.allclose(layer.weight.grad, ref[:, :, :25], atol=1e-12)

    layer.weight.grad = None
    w = layer.weight.detach().clone().requires_grad_(True)

    def gathered(weight):
        full = torch.cat([weight, weight.new_zeros(3, 2, 1)], -1)
        return torch.index_select(full, -1, layer.index)

    # fast mode checks the analytic Jacobian against finite differences along random directions
    assert torch.autograd.gradcheck(gathered, (w,), fast_mode=True)
    one = RotatedRingConv2d(1, 1, 3).double()
    w1 = one.weight.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda weight: torch.index_select(torch.cat([weight, weight.new_zeros(1, 1, 1)], -1),
                                                                      -1, one.index), (w1,))
    # the whole layer (the max over orientations is piecewise linear: random inputs have no ties)
    small = RotatedRingConv2d(1, 2, 3).double()
    x = torch.randn(1, 1, 5, 5, dtype=torch.float64, requires_grad=True)
    wt = small.weight.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda inp, weight: functional_call(small, {"weight": weight}, (inp,)), (x, wt),
                                    fast_mode=True)


@pytest.mark.parametrize("mode,k,groups", [("joint", 3, 1), ("joint", 5, 1), ("independent", 5, 1), ("joint", 3, 4),
                                           ("independent", 7, 2)])
def test_stacked_conv_equals_R_separate_convs(mode, k, groups):
    torch.manual_seed(1)
    layer = RotatedRingConv2d(4, 8, k, groups=groups, ring_mode=mode)
    x = torch.randn(2, 4, 11, 11)
    c = (k - 1) // 2
    ring_sets = [None] if mode == "joint" or c <= 1 else [[0, 1]] + [[r] for r in range(2, c + 1)]
    total = 0
    for rings in ring_sets:
        idx = rotation_index(k, 8, rings)
        w = torch.cat([layer.weight.detach(), torch.zeros(8, 4 // groups, 1)], -1)
        outs = [F.conv2d(x, w[..., idx[o]].view(8, 4 // groups, k, k), padding=k // 2, groups=groups) for o in range(8)]
        total = total + torch.stack(outs).amax(0)
    ref = total + layer.bias.detach().view(1, -1, 1, 1)
    with torch.no_grad():
        assert torch.allclose(layer(x), ref, atol=TOL)


@pytest.mark.parametrize("rings", ["euclid", "square"])
def test_radial_kernel_is_the_hand_gather_and_turn_symmetric(rings):
    torch.manual_seed(2)
    layer = RadialConv2d(3, 2, 5, rings=rings)
    kern = layer.kernel().detach()
    for i in range(5):
        for j in range(5):
            di, dj = i - 2, j - 2
            ring = round(math.sqrt(di * di + dj * dj)) if rings == "euclid" else max(abs(di), abs(dj))
            assert torch.equal(kern[:, :, i, j], layer.weight.detach()[:, :, ring])
    assert torch.equal(kern, torch.rot90(kern, 1, (2, 3)))
    assert radial_index(5, "euclid")[1] == 4 and radial_index(5, "square")[1] == 3
    x = torch.randn(2, 3, 9, 9)
    with torch.no_grad():
        assert torch.allclose(layer(x), F.conv2d(x, kern, layer.bias, padding=2), atol=TOL)


@pytest.mark.parametrize("make", [
    lambda: RotatedRingConv2d(3, 4, 3), lambda: RotatedRingConv2d(3, 4, 5, ring_mode="independent"),
    lambda: RadialConv2d(3, 4, 5), lambda: RadialConv2d(3, 4, 3, rings="square"),
    lambda: DWSepRadialConv2d(3, 4, 3), lambda: DWSepRadialConv2d(3, 4, 5, spatial="ring"),
    lambda: RotatedRingConv2d(3, 4, 5, orientations=4),
], ids=["ring3", "ring5-indep", "radial5", "radial3-square", "dwsep-radial", "dwsep-ring", "ring5-R4"])
def test_each_layer_commutes_with_quarter_turns(make):
    torch.manual_seed(3)
    layer = make()
    x = torch.randn(2, 3, 10, 10)
    with torch.no_grad():
        y = layer(x)
        for t in (1, 2, 3):
            assert torch.allclose(layer(torch.rot90(x, t, (2, 3))), torch.rot90(y, t, (2, 3)), atol=TOL)


def _calibrated(arch: str, x: torch.Tensor) -> torch.nn.Module:
    """An eval-mode net whose BatchNorm statistics are those of `x` (so the logits are O(1), not the tiny values
    of untouched running statistics)."""
    torch.manual_seed(0)
    model = build(arch, in_channels=1, num_classes=10, image_size=28, width=0.25)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average: one pass sets the batch statistics exactly
    model.train()
    with torch.no_grad():
        model(x)
    return model.eval()


def test_invariant_nets_are_exactly_invariant_at_28px_and_plain_cnn_is_not():
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    diffs = {}
    for arch in ("plain-cnn", "ring-cnn", "radial-cnn", "dwsep-radial-cnn"):
        model = _calibrated(arch, x)
        with torch.no_grad():
            y = model(x)
            assert y.abs().max() > 0.1  # logits of a usable scale, so 1e-4 is a real bound
            diffs[arch] = [float((model(torch.rot90(x, t, (2, 3))) - y).abs().max()) for t in (1, 2, 3)]
    for arch in ("ring-cnn", "radial-cnn", "dwsep-radial-cnn"):
        assert max(diffs[arch]) < 1e-4, (arch, diffs[arch])
    assert min(diffs["plain-cnn"]) > 1e-2, diffs["plain-cnn"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_radial_logits_agree_on_cuda():
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    for arch in ("ring-cnn", "radial-cnn", "dwsep-radial-cnn"):
        model = _calibrated(arch, x)
        with torch.no_grad():
            cpu = model(x)
            gpu = model.cuda()(x.cuda()).cpu()
            turned = model(torch.rot90(x.cuda(), 1, (2, 3))).cpu()
        assert torch.allclose(cpu, gpu, atol=1e-4), arch
        assert torch.allclose(turned, gpu, atol=1e-4), arch
