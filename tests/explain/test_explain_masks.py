"""Masks (§9 tests 1, 2) and the saliency estimators against plain oracles (§9 tests 3-6)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wisecli.engines.explain.algorithm import CHUNK, MaskGenerator, MaskSpec, estimate
from wisecli.runtime.device import one_cpu_thread


@pytest.fixture(autouse=True)
def _one_thread():
    with one_cpu_thread(torch.device("cpu")):
        yield


@pytest.mark.parametrize("grid,h,w", [(3, 10, 11), (7, 16, 16), (7, 15, 9), (3, 8, 8)])
def test_masks_equal_skimage_resize_and_crop_at_every_offset(grid, h, w):
    from skimage.transform import resize

    spec = MaskSpec(h=h, w=w, grid=grid, keep=0.5, n=CHUNK, seed=3)
    gen = MaskGenerator(spec, "cpu")
    u, dy, dx = gen.draws(0)
    g = gen.grids(u)[:, 0].numpy()
    ch, cw = spec.cell
    up = ((grid + 1) * ch, (grid + 1) * cw)
    rng = np.random.default_rng(0)
    for i in range(3):   # every offset for a few grids
        big = resize(g[i], up, order=1, mode="reflect", anti_aliasing=False)
        for oy in range(ch):
            for ox in range(cw):
                gen_dy, gen_dx = torch.tensor([oy]), torch.tensor([ox])
                m = (gen.ay[gen_dy][:, None] @ torch.from_numpy(g[i:i + 1, None]).float()
                     @ gen.ax[gen_dx][:, None].transpose(-1, -2))[0, 0].numpy()
                np.testing.assert_allclose(m, big[oy:oy + h, ox:ox + w], atol=1e-5)
    m = gen.chunk(0)[:, 0].numpy()   # the chunk path with its own random offsets
    for i in rng.choice(CHUNK, 8, replace=False):
        big = resize(g[i], up, order=1, mode="reflect", anti_aliasing=False)
        np.testing.assert_allclose(m[i], big[int(dy[i]):int(dy[i]) + h, int(dx[i]):int(dx[i]) + w], atol=1e-5)


def test_mask_means_and_partition_of_unity():
    rise = MaskSpec(h=24, w=24, grid=7, keep=0.3, n=4 * CHUNK, seed=1)
    ms = torch.cat(list(MaskGenerator(rise, "cpu")))
    assert ms.shape == (4 * CHUNK, 1, 24, 24)
    assert abs(float(ms.mean()) - 0.3) < 0.01
    mc = MaskSpec(h=24, w=24, grid=7, keep=0.5, n=4 * CHUNK, colors=3, seed=1)
    ms = torch.cat(list(MaskGenerator(mc, "cpu")))
    assert ms.shape == (4 * CHUNK, 4, 24, 24)
    assert torch.equal(ms.sum(1), torch.ones(4 * CHUNK, 24, 24))
    for k in range(1, 4):
        assert abs(float(ms[:, k].mean()) - 0.5 / 3) < 0.01
    assert float(ms.min()) >= -1e-6 and float(ms.max()) <= 1 + 1e-6


def _tiny_cnn(channels=3, classes=4, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(channels, 6, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(32, classes)).eval()


def test_rise_equals_a_plain_per_mask_loop_and_is_batch_independent():
    net = _tiny_cnn()
    torch.manual_seed(1)
    imgs = torch.randn(3, 3, 16, 16)
    spec = MaskSpec(h=16, w=16, grid=5, keep=0.5, n=300, seed=7)
    targets = torch.tensor([[0, 2], [1, 3], [2, 0]])
    with torch.inference_mode():
        ours = estimate(net, imgs, targets, spec, batch=64).maps[:, 0]
        # oracle: one mask at a time, the reference's sum of p * M over N p1
        masks = torch.cat(list(MaskGenerator(spec, "cpu")))[:, 0]
        for b in range(3):
            ref = torch.zeros(2, 16, 16, dtype=torch.float64)
            for i in range(spec.n):
                p = torch.softmax(net((imgs[b] * masks[i])[None]), -1)[0]
                for c in range(2):
                    ref[c] += float(p[targets[b, c]]) * masks[i].double()
            ref /= spec.n * spec.keep
            np.testing.assert_allclose(ours[b].numpy(), ref.numpy(), atol=1e-5)
        one = torch.cat([estimate(net, imgs[b:b + 1], targets[b:b + 1], spec, batch=300).maps[:, 0] for b in range(3)])
        np.testing.assert_allclose(ours.numpy(), one.numpy(), atol=1e-5)
        other = estimate(net, imgs, targets, spec, batch=17).maps[:, 0]
        np.testing.assert_allclose(ours.numpy(), other.numpy(), atol=1e-5)


class _Const(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c

    def forward(self, x):
        return torch.full((x.shape[0], 2), self.c)


@pytest.mark.parametrize("q", [0.3, 0.5, 0.7])
def test_colour_weighting_proof_constant_black_box(q):
    """§9 test 4: ours is unbiased for every q; the XAITK weighting (q taken as the painting probability:
    weights K/q and 1/(1-q) in our units) has mean c(1-2q)/(q(1-q)) and the test sees it."""
    c, K = 0.4, 3
    spec = MaskSpec(h=32, w=32, grid=7, keep=q, n=8000, colors=K, seed=0)
    img = torch.rand(1, 3, 32, 32)
    colors = torch.eye(3)
    masks = list(MaskGenerator(spec, "cpu"))
    est = estimate(_Const(c), img, torch.tensor([[0]]), spec, colors=colors, softmax=False, batch=8192, masks=masks)
    s = est.maps
    assert abs(float(s.mean())) <= 0.02 * c
    assert float(s.abs().max()) <= 0.2 * c
    # the same masks and scores through the faulty weighting
    acc = torch.zeros(K + 1, 32, 32, dtype=torch.float64)
    for m in masks:
        acc += c * m.double().sum(0)
    faulty = acc[1:] * (K / (q * spec.n)) - acc[:1] * (1 / ((1 - q) * spec.n))
    expected = c * (1 - 2 * q) / (q * (1 - q))
    if q != 0.5:
        assert abs(float(faulty.mean()) - expected) <= 0.1 * abs(expected)
        assert abs(float(faulty.mean())) > 10 * 0.02 * c


def _hard_masks(n, h, w, q, K, seed):
    rng = np.random.default_rng(seed)
    u = rng.random((n, h, w))
    k = np.where(u < q, 0, 1 + np.minimum(np.floor((u - q) * K / (1 - q)), K - 1)).astype(int)
    return torch.from_numpy(np.eye(K + 1, dtype=np.float32)[k]).permute(0, 3, 1, 2)


@pytest.mark.parametrize("q", [0.3, 0.7])
def test_mcrise_analytic_linear_black_box(q):
    """§9 test 5: f(I) = Σ w(λ)<I(λ), a>; hard one-pixel masks; S_k(λ) = w(λ)(<c_k, a> - <I(λ), a>)
    within 4 standard errors (the per-mask terms' sample std / sqrt N) at every pixel."""
    H = W = 8
    K, N = 3, 20000
    rng = np.random.default_rng(1)
    w = torch.from_numpy(rng.uniform(-1, 1, (H, W))).float()
    a = torch.tensor([0.5, -1.0, 0.25])
    img = torch.from_numpy(rng.uniform(0, 1, (1, 3, H, W))).float()
    colors = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0.2, 0.3, 0.9]])

    def f(x):
        v = (x * a[None, :, None, None]).sum(1)
        return (v * w).sum((1, 2))[:, None]

    masks = _hard_masks(N, H, W, q, K, 5)
    spec = MaskSpec(h=H, w=W, grid=H, keep=q, n=N, colors=K)
    est = estimate(f, img, torch.tensor([[0]]), spec, colors=colors, softmax=False, batch=4096,
                   masks=masks.split(CHUNK)).maps[0, :, 0]
    truth = w[None] * ((colors @ a)[:, None, None] - (img[0] * a[:, None, None]).sum(0)[None])
    comp = img * masks[:, :1] + torch.einsum("nkhw,kc->nchw", masks[:, 1:], colors)
    fv = f(comp)[:, 0].double()
    terms = fv[:, None, None, None] * (masks[:, 1:].double() * K / (1 - q) - masks[:, :1].double() / q)
    se = terms.std(0) / math.sqrt(N)
    z = ((est.double() - truth.double()) / se).abs()
    assert float(z.max()) < 4.0, float(z.max())


def test_mcrise_one_mean_colour_is_debiased_rise():
    """§9 test 6: K = 1 with the mean colour (0 in input space): S_1 = E[f | painted] - E[f | kept] = minus
    debiased RISE (E[f | kept] - E[f | occluded]) on the same masks."""
    net = _tiny_cnn()
    img = torch.randn(2, 3, 12, 12)
    t = torch.tensor([[1], [2]])
    with torch.inference_mode():
        mc = estimate(net, img, t, MaskSpec(12, 12, 4, 0.4, 500, colors=1, seed=2), colors=torch.zeros(1, 3)).maps
        rd = estimate(net, img, t, MaskSpec(12, 12, 4, 0.4, 500, colors=0, seed=2), debias=True).maps
    np.testing.assert_allclose(mc.numpy(), -rd.numpy(), atol=1e-5)
