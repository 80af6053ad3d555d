"""CDC folding, backbones and the supervision losses (spec §9 unit tests)."""

import pytest
import torch
import torch.nn.functional as F

from wisecli.cli.errors import InputError
from wisecli.engines.fas.loss import (ContrastDepthLoss, FASLoss, map_scores, mask_bce_prob, parse_pyramid,
                                        pool_to)
from wisecli.engines.fas.model import CDCN, CDConv2d, ResNetFAS, build_model, cdc_two_conv


@pytest.mark.parametrize("stride", [1, 2])
def test_folded_cdc_equals_two_conv_with_gradients(stride):
    torch.manual_seed(0)
    conv = CDConv2d(5, 7, stride=stride, theta=0.7).double()
    x1 = torch.randn(2, 5, 11, 12, dtype=torch.float64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    w2 = conv.weight.detach().clone().requires_grad_(True)
    y1 = conv(x1)
    y2 = cdc_two_conv(x2, w2, 0.7, stride)
    assert y1.shape == y2.shape
    torch.testing.assert_close(y1, y2, atol=1e-10, rtol=0)
    g = torch.randn_like(y1)
    (y1 * g).sum().backward()
    (y2 * g).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, atol=1e-10, rtol=0)
    torch.testing.assert_close(conv.weight.grad, w2.grad, atol=1e-10, rtol=0)


@pytest.mark.parametrize("stride", [1, 2])
def test_folded_cdc_fp32_atol(stride):
    torch.manual_seed(1)
    conv = CDConv2d(8, 6, stride=stride, theta=0.7)
    x = torch.randn(3, 8, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), cdc_two_conv(x, conv.weight, 0.7, stride), atol=1e-5, rtol=0)


def test_folded_cache_follows_weight_updates():
    conv = CDConv2d(2, 3)
    x = torch.randn(1, 2, 6, 6)
    with torch.no_grad():
        a = conv(x)
        conv.weight.mul_(2.0)
        b = conv(x)
    torch.testing.assert_close(b, 2 * a)


def test_cdcn_shapes_and_map_grid():
    net = CDCN(width=0.25, map_size=16, depth_relu=True, binary_head=True)
    out = net(torch.randn(2, 3, 64, 64))
    assert out["map"].shape == (2, 1, 16, 16)
    assert out["logit"].shape == (2,)
    assert (out["map"] >= 0).all()  # ReLU for depth


def test_cdcn_full_width_parameter_count():
    # The spec counts 2.24 M parameters for CDCN from its layer list (convs; BN adds a few thousand).
    net = CDCN(width=1.0, map_size=32, depth_relu=True)
    conv = sum(m.weight.numel() for m in net.modules() if isinstance(m, CDConv2d))
    assert abs(conv - 2.24e6) / 2.24e6 < 0.01


def test_resnet_backbone_map():
    net = ResNetFAS(depth=18, map_size=8, depth_relu=False, binary_head=True)
    out = net(torch.randn(1, 3, 64, 64))
    assert out["map"].shape == (1, 1, 8, 8) and out["logit"].shape == (1,)


def test_build_model_heads():
    m = build_model({"supervision": "binary", "map_size": 8, "width": 0.25})
    assert m.head is None and m.binary is not None
    m = build_model({"supervision": "pyramid", "map_size": 8, "width": 0.25})
    assert m.head is not None and m.binary is None and m.depth_relu is False
    m = build_model({"supervision": "pyramid", "pyramid_base": "depth-map", "map_size": 8, "width": 0.25,
                     "aux_binary": 0.5})
    assert m.depth_relu is True and m.binary is not None


def test_cdl_zero_for_equal_maps_and_ramp_hand_value():
    cdl = ContrastDepthLoss()
    p = torch.rand(2, 1, 6, 6)
    assert float(cdl(p, p)) == 0.0
    ramp = torch.arange(4.0).repeat(4, 1)[None, None]  # P[i, j] = j
    # every neighbour difference equals its column offset dx; dx² over the 8 neighbours sums to 6
    assert float(cdl(ramp, torch.zeros_like(ramp))) == pytest.approx(6 / 8)


def test_cdl_kernels_are_a_buffer():
    cdl = ContrastDepthLoss()
    assert "kernels" in dict(cdl.named_buffers())
    assert cdl.kernels.shape == (8, 1, 3, 3) and torch.all(cdl.kernels.sum(dim=(1, 2, 3)) == 0)


def test_pooled_constant_stays_constant():
    x = torch.full((2, 1, 32, 32), 0.37)
    for s in (32, 16, 8, 4, 2, 1):
        p = pool_to(x, s)
        assert p.shape[-1] == s
        torch.testing.assert_close(p, torch.full_like(p, 0.37))


def _manual_bce(p, g):
    p = p.clamp(1e-6, 1 - 1e-6)
    return float((-(g * torch.log(p) + (1 - g) * torch.log(1 - p))).mean())


def test_pyramid_mask_loss_equals_manual_weighted_sum():
    torch.manual_seed(3)
    logits = torch.randn(3, 1, 8, 8)
    target = (torch.rand(3, 1, 8, 8) > 0.5).float()
    scales, weights = [8, 4, 2, 1], [1.0, 0.5, 2.0, 3.0]
    loss_fn = FASLoss("pyramid", map_size=8, scales=scales, weights=weights)
    loss, metrics = loss_fn({"map": logits}, torch.ones(3), target)
    prob = torch.sigmoid(logits)
    manual = 0.0
    for s, w in zip(scales, weights):
        k = 8 // s
        ps = prob.unfold(2, k, k).unfold(3, k, k).mean(dim=(-1, -2))  # block means, written independently
        gs = target.unfold(2, k, k).unfold(3, k, k).mean(dim=(-1, -2))
        manual += w * _manual_bce(ps, gs)
    manual /= sum(weights)
    assert float(loss) == pytest.approx(manual, rel=1e-5)
    assert set(metrics) == {f"loss_level_{s}" for s in scales}


def test_pyramid_depth_loss_mse_plus_cdl_at_finest_only():
    torch.manual_seed(4)
    pred, target = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    loss_fn = FASLoss("pyramid", map_size=8, pyramid_base="depth-map", scales=[8, 2], weights=[1.0, 3.0])
    loss, _ = loss_fn({"map": pred}, torch.ones(2), target)
    cdl = ContrastDepthLoss()
    fine = F.mse_loss(pred, target) + cdl(pred, target)
    coarse = F.mse_loss(F.avg_pool2d(pred, 4), F.avg_pool2d(target, 4))
    assert float(loss) == pytest.approx(float((fine + 3 * coarse) / 4), rel=1e-6)


def test_one_by_one_level_is_map_mean():
    m = torch.rand(4, 1, 16, 16)
    torch.testing.assert_close(pool_to(m, 1).flatten(), m.mean(dim=(1, 2, 3)))
    # and the full-mask score of a mask model is the 1x1 level of the probabilities
    full = torch.ones(16, 16)
    torch.testing.assert_close(map_scores(m, "mask", full), pool_to(torch.sigmoid(m), 1).flatten())


@pytest.mark.parametrize("scales,weights", [("32,16,5", None), ("0", None), ("16,8", "1,-1"), ("16,8", "1"),
                                             ("a,b", None), ("16,8", "0,0")])
def test_bad_pyramid_rejected(scales, weights):
    with pytest.raises(InputError):
        parse_pyramid(32, scales, weights)


def test_mask_bce_fp32_under_autocast():
    torch.manual_seed(5)
    p = torch.rand(2, 1, 4, 4)
    g = (torch.rand(2, 1, 4, 4) > 0.5).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = mask_bce_prob(p.bfloat16(), g)
        loss_fn = FASLoss("pyramid", map_size=4, scales=[4, 2, 1])
        lp, _ = loss_fn({"map": torch.randn(2, 1, 4, 4).bfloat16()}, torch.ones(2), g)
    assert out.dtype == torch.float32 and lp.dtype == torch.float32
    assert float(out) == pytest.approx(_manual_bce(p.bfloat16().float(), g), rel=1e-6)


def test_mask_loss_and_aux_binary():
    torch.manual_seed(6)
    logits, logit = torch.randn(2, 1, 4, 4), torch.randn(2)
    target, label = (torch.rand(2, 1, 4, 4) > 0.5).float(), torch.tensor([1.0, 0.0])
    loss, m = FASLoss("binary-mask", map_size=4, aux_binary=0.5)({"map": logits, "logit": logit}, label, target)
    expect = F.binary_cross_entropy_with_logits(logits, target) + 0.5 * F.binary_cross_entropy_with_logits(logit,
                                                                                                           label)
    assert float(loss) == pytest.approx(float(expect), rel=1e-6)
    assert {"loss_mask", "loss_binary"} <= set(m)


def test_depth_loss_is_mse_plus_cdl():
    pred, target = torch.rand(2, 1, 6, 6), torch.rand(2, 1, 6, 6)
    loss, _ = FASLoss("depth-map", map_size=6)({"map": pred}, torch.ones(2), target)
    assert float(loss) == pytest.approx(float(F.mse_loss(pred, target) + ContrastDepthLoss()(pred, target)))


def test_binary_loss():
    logit, label = torch.tensor([2.0, -1.0]), torch.tensor([1.0, 0.0])
    loss, _ = FASLoss("binary")({"logit": logit}, label)
    assert float(loss) == pytest.approx(float(torch.log1p(torch.exp(-logit[0])) + torch.log1p(torch.exp(logit[1]))) / 2)


def test_face_mask_normaliser_is_binarised():
    pred = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    soft = torch.tensor([[0.4, 0.6], [0.9, 0.2]])  # binarised: cells 1 and 2
    s = map_scores(pred, "depth", soft)
    assert float(s) == pytest.approx((1.0 + 2.0) / 2)
    weighted = float((pred[0, 0] * soft).sum() / soft.sum())  # the reference's soft normaliser
    assert float(s) != pytest.approx(weighted)


def test_folded_cache_under_autocast_matches_fp32():
    torch.manual_seed(7)
    conv = CDConv2d(4, 4)
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        ref = cdc_two_conv(x, conv.weight, 0.7)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = conv(x)
        assert y.dtype == torch.bfloat16 and conv._cache[1].dtype == torch.bfloat16
        torch.testing.assert_close(y.float(), ref, atol=0.1, rtol=0.05)
        torch.testing.assert_close(conv(x), ref, atol=1e-5, rtol=0)  # fp32 again after autocast
