"""Device augmentation ops (`runtime/augment.py`) against plain per-sample references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wisecli.runtime.augment import _rotate_grid, augment, random_crop, random_flip, rotate


def _batch(dtype=torch.float32, b=6, c=2, h=8, w=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.uint8:
        return torch.randint(0, 256, (b, c, h, w), generator=g, dtype=torch.uint8)
    return torch.rand((b, c, h, w), generator=g, dtype=dtype)


def test_random_crop_is_a_padded_window_per_sample():
    x = _batch()
    out = random_crop(x, 3, torch.Generator().manual_seed(1))
    xp = F.pad(x, (3, 3, 3, 3))
    for i in range(len(x)):  # each sample is one of the (2p+1)^2 windows of its padded image
        windows = [xp[i, :, r:r + 8, c:c + 8] for r in range(7) for c in range(7)]
        assert any(torch.equal(out[i], w) for w in windows)
    again = random_crop(x, 3, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)
    assert torch.equal(random_crop(x, 0, None), x)
    u = _batch(torch.uint8)
    assert random_crop(u, 2, torch.Generator().manual_seed(0)).dtype == torch.uint8


def test_random_flip_mirrors_about_half():
    x = _batch(b=400, h=4, w=5)
    out = random_flip(x, torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(o, s.flip(-1)) for o, s in zip(out, x)])
    kept = torch.tensor([torch.equal(o, s) for o, s in zip(out, x)])
    assert bool((flipped | kept).all())
    assert 150 < int(flipped.sum()) < 250


def test_rotate_matches_rot90_and_numpy_direction():
    x = _batch(h=7, w=7)
    for k in range(4):
        assert torch.equal(rotate(x, 90 * k), torch.rot90(x, k, dims=(-2, -1)))
        # the bilinear path at a multiple of 90° lands on pixel centres: same up to fp rounding
        torch.testing.assert_close(_rotate_grid(x, torch.full((len(x),), 90.0 * k)), torch.rot90(x, k, dims=(-2, -1)),
                                   rtol=0, atol=1e-5)
    a = np.arange(4).reshape(2, 2)
    t = torch.tensor(a, dtype=torch.float32)[None, None]
    assert rotate(t, 90)[0, 0].numpy().tolist() == np.rot90(a).tolist()     # counter-clockwise as displayed
    assert torch.equal(rotate(x, -90), rotate(x, 270))


def test_rotate_per_sample_angles_and_bilinear_reference():
    x = _batch(b=4, h=9, w=9)
    deg = torch.tensor([0.0, 90.0, 30.0, 180.0])
    out = rotate(x, deg)
    assert torch.equal(out[0], x[0]) and torch.equal(out[1], torch.rot90(x[1], 1, dims=(-2, -1)))
    assert torch.equal(out[3], torch.rot90(x[3], 2, dims=(-2, -1)))
    # 30°: a plain bilinear reference (inverse mapping about the centre, zero outside)
    img = x[2, 0].double().numpy()
    n = 9
    th = np.deg2rad(30.0)
    ref = np.zeros((n, n))
    c = (n - 1) / 2
    for r in range(n):
        for q in range(n):
            xo, yo = q - c, r - c                     # x right, y down
            xi = np.cos(th) * xo - np.sin(th) * yo
            yi = np.sin(th) * xo + np.cos(th) * yo
            fx, fy = xi + c, yi + c
            x0, y0 = int(np.floor(fx)), int(np.floor(fy))
            val = 0.0
            for dy in (0, 1):
                for dx in (0, 1):
                    xx, yy = x0 + dx, y0 + dy
                    wgt = (1 - abs(fx - xx)) * (1 - abs(fy - yy))
                    if 0 <= xx < n and 0 <= yy < n:
                        val += wgt * img[yy, xx]
            ref[r, q] = val
    np.testing.assert_allclose(out[2, 0].numpy(), ref, atol=1e-5)
    # a rotation by 30° then -30° is close to the original near the centre
    back = rotate(rotate(x, 30.0), -30.0)
    assert (back[..., 3:6, 3:6] - x[..., 3:6, 3:6]).abs().mean() < 0.2


def test_rotate_uint8_and_non_square():
    u = _batch(torch.uint8, h=6, w=6)
    r = rotate(u, 45.0)
    assert r.dtype == torch.uint8 and r.shape == u.shape
    ns = _batch(h=4, w=6)
    assert torch.equal(rotate(ns, 180), torch.rot90(ns, 2, dims=(-2, -1)))
    assert rotate(ns, 90).shape == ns.shape            # non-square: bilinear, shape kept
    assert rotate(ns, torch.tensor([90.0] * 6)).shape == ns.shape
    with pytest.raises(ValueError):
        rotate(ns, torch.tensor([1.0, 2.0]))


def test_augment_modes_are_seeded():
    x = _batch(torch.uint8, b=8, h=16, w=16)
    assert augment(x, "none") is x
    for mode in ("basic", "rotate"):
        a = augment(x, mode, torch.Generator().manual_seed(3))
        b = augment(x, mode, torch.Generator().manual_seed(3))
        c = augment(x, mode, torch.Generator().manual_seed(4))
        assert a.shape == x.shape and a.dtype == x.dtype and torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError):
        augment(x, "mixup")


@pytest.mark.gpu
def test_augment_on_cuda_matches_cpu_with_a_cpu_generator():
    x = _batch(b=8, h=12, w=12)
    for mode in ("basic", "rotate"):
        cpu = augment(x, mode, torch.Generator().manual_seed(0))
        gpu = augment(x.cuda(), mode, torch.Generator().manual_seed(0))
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-4)
