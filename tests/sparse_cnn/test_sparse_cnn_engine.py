"""Engine tests of sparse-cnn against oracles: dense nets, a slow per-pixel conv reference, hand-counted MACs,
the analytic ResNet-18 count, hand-computed Keys weights, PIL's bicubic, scikit-image's PSNR/SSIM.

Tolerances: fp32 results of the same convolutions summed in another order (unpadded tiles vs padded maps) differ
by a few ulps of activations of order 1; 1e-5 leaves two orders of margin on any BLAS."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wisecli.engines.sparse_cnn.data import contributions, cubic, imresize
from wisecli.engines.sparse_cnn.gating import Plan, Stats, conv_macs, gated_residual, make_mask, n_keep
from wisecli.engines.sparse_cnn.metrics import psnr_y, quantise, ssim_y, y_channel
from wisecli.engines.sparse_cnn.model import SparseResNet18, analytic_dense_macs
from wisecli.engines.sparse_cnn.sr import SRResNet


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _randomise_bn(model):
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) * 0.4 - 0.2)
    return model


@pytest.mark.parametrize("size", [(32, 32), (37, 29)])
def test_density_one_equals_dense_on_every_path(size):
    torch.manual_seed(0)
    net = _randomise_bn(SparseResNet18(3, 10, 32, width=0.125)).eval()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        dense = net(x, exec_="dense")
        for ex in ("masked", "gather"):
            assert (net(x, 1.0, exec_=ex) - dense).abs().max() < 1e-6


@pytest.mark.parametrize("rho", [0.1, 0.5])
@pytest.mark.parametrize("rule", ["regional", "topk"])
def test_gather_equals_masked_resnet_odd_sizes(rho, rule):
    torch.manual_seed(0)
    net = _randomise_bn(SparseResNet18(3, 10, 32, width=0.125, downsample_blocks=True)).eval()
    x = torch.randn(2, 3, 37, 45)
    with torch.no_grad():
        a = net(x, rho, exec_="masked", rule=rule)
        b = net(x, rho, exec_="gather", rule=rule)
    assert (a - b).abs().max() < 1e-5


@pytest.mark.parametrize("rho", [0.1, 0.5])
def test_gather_equals_masked_sr(rho):
    torch.manual_seed(0)
    net = SRResNet(2, 8, 2).random_tail().eval()
    x = torch.rand(1, 3, 21, 35)
    with torch.no_grad():
        a = net(x, rho, exec_="masked", tile=4)
        b = net(x, rho, exec_="gather", tile=4)
    assert (a - b).abs().max() < 1e-5


def test_fresh_sr_net_is_exactly_bicubic():
    """The tail starts at zero: before any training the output is MATLAB bicubic at every density and path (with
    PyTorch's default init it was bicubic plus noise of about 0.1, below bicubic by several dB)."""
    from wisecli.engines.sparse_cnn.data import imresize

    torch.manual_seed(0)
    net = SRResNet(2, 8, 2)
    lr = torch.rand(2, 3, 19, 23)
    ref = imresize(lr, 2.0)
    with torch.no_grad():
        for rho in (1.0, 0.3):
            assert (net(lr, rho, exec_="masked") - ref).abs().max() == 0
        net.eval()
        assert (net(lr, 0.3, exec_="gather") - ref).abs().max() == 0
    with torch.no_grad():
        assert (net.random_tail()(lr, 1.0) - ref).abs().max() > 1e-2    # random_tail: the default init again


def _slow_conv(x, w):
    """3x3 conv, zero padding 1, one output pixel at a time (numpy loops): the plain reference."""
    C, H, W = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    out = np.zeros((w.shape[0], H, W))
    for o in range(w.shape[0]):
        for i in range(H):
            for j in range(W):
                out[o, i, j] = float((xp[:, i:i + 3, j:j + 3] * w[o]).sum())
    return out


def test_gated_block_matches_slow_masked_reference():
    torch.manual_seed(3)
    C, H, W = 3, 11, 13
    conv1, conv2 = torch.nn.Conv2d(C, C, 3, padding=1, bias=False), torch.nn.Conv2d(C, C, 3, padding=1, bias=False)
    x = torch.relu(torch.randn(1, C, H, W))
    P = torch.rand(1, 1, H, W)
    plan = Plan.build(P, 0.3, "regional", 4, 1.5, False)
    with torch.no_grad():
        out = gated_residual(x, plan, "gather", conv1, torch.relu, conv2, lambda t: t, torch.relu, None)[0].numpy()
    x0 = x[0].double().numpy()
    f = _slow_conv(np.maximum(_slow_conv(x0, conv1.weight.detach().double().numpy()), 0),
                   conv2.weight.detach().double().numpy())
    ref = np.maximum(x0 + plan.mask[0].numpy() * f, 0)
    assert np.abs(out - ref).max() < 1e-5


@pytest.mark.parametrize("rule", ["regional", "topk"])
def test_masks_are_exact_and_regional_tiles_bounded(rule):
    g = torch.Generator().manual_seed(0)
    for rho in (0.05, 0.1, 0.3, 0.5, 0.77):
        P = torch.rand(3, 1, 32, 32, generator=g)
        m = make_mask(P, rho, rule, 8, 1.5)
        assert m.sum((1, 2, 3)).tolist() == [math.ceil(rho * 1024 - 1e-9)] * 3
        if rule == "regional":
            tiles = F.max_pool2d(m, 8).flatten(1).sum(1)
            assert (tiles <= math.ceil(1.5 * rho * 16 - 1e-9)).all()


def test_masks_exact_per_stage_and_no_host_sync(monkeypatch):
    torch.manual_seed(0)
    net = SparseResNet18(3, 10, 32, width=0.125).eval()

    def boom(self):
        raise AssertionError("Tensor.item called while masks are built")

    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        P = net.importance(F.relu(net.bn1(net.conv1(x))))
    monkeypatch.setattr(torch.Tensor, "item", boom)
    for s, size in enumerate((32, 16, 8, 4)):
        Ps = F.adaptive_avg_pool2d(P, size)
        plan = Plan.build(Ps, 0.3, "regional", 8, 1.5, False)
        assert plan.mask.sum((1, 2, 3)).tolist() == [n_keep(0.3, size * size)] * 2
    with torch.no_grad():
        _, _, masks = net(x, 0.3, exec_="masked", return_maps=True)
    assert [int(m[0].sum()) for m in masks] == [n_keep(0.3, s * s) for s in (32, 16, 8, 4)]


def test_mac_counter_toy_hand_count():
    """Two 2->2 3x3 convs on 8x8, mask pixels (0, 0) and (5, 5), T = 4: dilate gives 4 + 9 = 13 positions."""
    conv1 = torch.nn.Conv2d(2, 2, 3, padding=1, bias=False)
    conv2 = torch.nn.Conv2d(2, 2, 3, padding=1, bias=False)
    m = torch.zeros(1, 1, 8, 8)
    m[0, 0, 0, 0] = m[0, 0, 5, 5] = 1
    plan = Plan(mask=m, gate=m, tile=4, n_mask=m.sum((1, 2, 3)), n_dil=F.max_pool2d(m, 3, 1, 1).sum((1, 2, 3)))
    x = torch.relu(torch.randn(1, 2, 8, 8))
    for ex, executed in (("masked", 2 * 64 * 36), ("gather", 2 * (36 * 36 + 16 * 36))):
        st = Stats(1, "cpu")
        with torch.no_grad():
            gated_residual(x, plan, ex, conv1, torch.relu, conv2, lambda t: t, torch.relu, st)
        assert st.dense.tolist() == [2 * 64 * 36]
        assert st.counted.tolist() == [13 * 36 + 2 * 36]
        assert st.executed.tolist() == [executed]
    assert conv_macs(conv1, 10) == 360


def test_dense_resnet18_224_equals_analytic_count_without_running():
    net = SparseResNet18(3, 1000, 224).to("meta")
    st = Stats(1, "cpu")  # the dense path adds plain integers from shapes: the meta forward computes nothing
    net(torch.empty(1, 3, 224, 224, device="meta"), exec_="dense", stats=st)
    assert int(st.dense[0]) == analytic_dense_macs(3, 1000, 224) == 1_814_073_344


def test_counter_equals_hooks_on_a_dense_run_and_branch_overhead():
    torch.manual_seed(0)
    net = SparseResNet18(1, 10, 32, width=0.125).eval()
    total = []

    def hook(mod, inp, out):
        k = mod.kernel_size[0] * mod.kernel_size[1] if isinstance(mod, torch.nn.Conv2d) else 1
        cin = mod.in_channels // mod.groups if isinstance(mod, torch.nn.Conv2d) else mod.in_features
        total.append(out[0].numel() * cin * k)

    hs = [m.register_forward_hook(hook) for n, m in net.named_modules()
          if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and not n.startswith("importance")]
    st = Stats(1, "cpu")
    with torch.no_grad():
        net(torch.randn(1, 1, 32, 32), exec_="dense", stats=st)
    for h in hs:
        h.remove()
    assert int(st.dense[0]) == sum(total) == analytic_dense_macs(1, 10, 32, 0.125)
    st1 = Stats(1, "cpu")
    with torch.no_grad():
        net(torch.randn(1, 1, 32, 32), 1.0, exec_="masked", stats=st1)
    assert int(st1.dense[0]) == sum(total)
    assert 1 - float(st1.counted[0] / st1.dense[0]) < 0          # the branch is overhead at rho = 1


def test_straight_through_gate_reaches_the_branch():
    torch.manual_seed(0)
    net = SparseResNet18(3, 10, 32, width=0.125).train()
    out = net(torch.randn(4, 3, 32, 32), 0.3, exec_="masked")
    F.cross_entropy(out, torch.arange(4)).backward()
    g = net.importance.conv1.weight.grad
    assert g is not None and float(g.abs().sum()) > 0


def test_mac_budget_lands_within_two_points():
    from wisecli.engines.sparse_cnn.predict import invert_budget
    from wisecli.engines.sparse_cnn.train import CURVE, measure

    torch.manual_seed(0)
    net = SparseResNet18(1, 10, 32, width=0.125).eval()
    batches = [(torch.randn(8, 1, 32, 32), torch.zeros(8, dtype=torch.long))]
    curve = []
    for rho in CURVE:
        m = measure(net, batches, rho, task="classify")
        curve.append({"density": rho, "macs_fraction": m["macs_counted"] / m["macs_dense"]})
    for budget in (0.6, 0.75, 0.9):
        rho = invert_budget(curve, budget, 0.05, False)
        m = measure(net, batches, rho, task="classify")
        assert abs(m["macs_counted"] / m["macs_dense"] - budget) <= 0.02


def test_keys_weights_by_hand():
    h = {0.25: 0.8671875, 0.75: 0.2265625, 1.25: -0.0703125, 1.75: -0.0234375}
    for d, v in h.items():
        assert cubic(np.array([d]))[0] == pytest.approx(v, abs=1e-15)
        assert cubic(np.array([-d]))[0] == pytest.approx(v, abs=1e-15)
    M = contributions(8, 16, 2.0)
    # output 7 (1-based) sits at input 3.75: inputs 2..5 are 1.75, 0.75, 0.25, 1.25 away
    assert M[6, 1:5].tolist() == [h[1.75], h[0.75], h[0.25], h[1.25]]
    # output 3 sits at 1.75: input 0 mirrors onto input 1 (symmetric border), so their weights add
    assert M[2, :4].tolist() == [h[0.75] + h[1.75], h[0.25], h[1.25], 0.0]
    assert np.allclose(M.sum(1), 1.0)


def test_bicubic_matches_pil_interior_and_keeps_constants():
    from PIL import Image

    rng = np.random.default_rng(0)
    a = rng.random((40, 52)).astype(np.float32)
    for s in (0.5, 0.25, 2.0):
        out = imresize(torch.tensor(a, dtype=torch.float64), s).numpy()
        pil = np.asarray(Image.fromarray(a, mode="F").resize((out.shape[1], out.shape[0]), Image.BICUBIC))
        b = 6 if s > 1 else 2   # PIL renormalises cut kernels at the border; MATLAB mirrors: interior only
        assert np.abs(out - pil)[b:-b, b:-b].max() < 1e-5  # PIL computes in float32
    c = imresize(torch.full((1, 3, 17, 23), 0.37, dtype=torch.float64), 0.5)
    assert c.shape[-2:] == (9, 12) and torch.allclose(c, torch.tensor(0.37, dtype=torch.float64))


def test_psnr_ssim_match_skimage():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    g = torch.Generator().manual_seed(0)
    hr = torch.rand(2, 3, 30, 34, generator=g, dtype=torch.float64)
    sr = (hr + 0.05 * torch.randn(hr.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    p, s = psnr_y(sr, hr, 2), ssim_y(sr, hr, 2)
    for i in range(2):
        yh = y_channel(hr)[i, 2:-2, 2:-2].numpy()
        ys = y_channel(quantise(sr))[i, 2:-2, 2:-2].numpy()
        assert float(p[i]) == pytest.approx(peak_signal_noise_ratio(yh, ys, data_range=255), abs=1e-6)
        ref = structural_similarity(yh, ys, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                    data_range=255)
        assert float(s[i]) == pytest.approx(ref, abs=1e-4)


def test_unfold_gemm_peer_equals_masked_block():
    from wisecli.engines.sparse_cnn.bench import _Block
    from wisecli.engines.sparse_cnn.peers import unfold_gemm_block

    torch.manual_seed(0)
    blk = _randomise_bn(_Block(6)).eval()
    x = torch.relu(torch.randn(2, 6, 19, 23))
    plan = Plan.build(torch.rand(2, 1, 19, 23), 0.3, "regional", 8, 1.5, False)
    with torch.no_grad():
        ref = blk(x, plan, "masked")
        out = unfold_gemm_block(x, plan.mask, blk.conv1, lambda h: F.relu(blk.bn1(h)), blk.conv2, blk.bn2, F.relu)
    assert (out - ref).abs().max() < 1e-5


def test_folded_bn_equals_unfolded_on_every_path():
    from wisecli.engines.sparse_cnn.model import fold_bn

    torch.manual_seed(0)
    net = _randomise_bn(SparseResNet18(3, 10, 32, width=0.125)).eval()
    folded = fold_bn(net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(2, 3, 35, 33)
    with torch.no_grad():
        for ex, rho in (("dense", 1.0), ("masked", 0.3), ("gather", 0.3)):
            assert (net(x, rho, exec_=ex) - folded(x, rho, exec_=ex)).abs().max() < 1e-5
    sr = _randomise_bn(SRResNet(2, 8, 2, batchnorm=True).random_tail()).eval()
    lr = torch.rand(1, 3, 17, 19)
    with torch.no_grad():
        assert (sr(lr, 0.3, exec_="gather") - fold_bn(sr)(lr, 0.3, exec_="gather")).abs().max() < 1e-5
