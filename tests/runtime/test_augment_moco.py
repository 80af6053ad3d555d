"""The MoCo v2 view ops of `runtime/augment.py` (added for `contrastive`, spec §9 tests 4 and 6) against OpenCV,
analytic values and plain per-sample references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wisecli.runtime.augment import (LUMA_601, blur_kernels, color_jitter, cutmix, cutmix_boxes, gaussian_blur,
                                     grayscale, mixup, random_boxes, random_resized_crop, resized_crop, to_float)


def _photo(size=48):
    from skimage import data
    from skimage.transform import resize

    img = resize(data.astronaut()[:256, 100:356], (size, size), anti_aliasing=True)
    return (img * 255).round().astype(np.uint8)


def test_resized_crop_equals_opencv_bilinear_of_the_crop():
    cv2 = pytest.importorskip("cv2")
    img = _photo(48)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].repeat(3, 1, 1, 1)
    boxes = torch.tensor([[4, 6, 32, 24], [0, 0, 48, 48], [10, 3, 20, 40]], dtype=torch.float32)
    out = resized_crop(x, boxes, 16)
    for i, (x0, y0, w, h) in enumerate(boxes.long().tolist()):
        ref = cv2.resize(img[y0:y0 + h, x0:x0 + w].astype(np.float32) / 255, (16, 16), interpolation=cv2.INTER_LINEAR)
        got = out[i].permute(1, 2, 0).numpy()
        assert np.abs(got - ref).max() <= 2 / 255  # float32 maths on both sides; 2/255 is the spec's bound


def test_random_boxes_stay_inside_and_follow_the_scale():
    g = torch.Generator().manual_seed(0)
    b = random_boxes(4000, 32, 40, (0.2, 1.0), (3 / 4, 4 / 3), g)
    x0, y0, w, h = b.unbind(1)
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x0 + w <= 40 + 1e-4).all() and (y0 + h <= 32 + 1e-4).all()
    frac = w * h / (32 * 40)
    assert frac.max() <= 1 + 1e-5 and frac.min() >= 0.2 * 0.7  # clipping only shrinks the box
    out = random_resized_crop(torch.zeros(5, 3, 32, 40, dtype=torch.uint8), 12, generator=g)
    assert out.shape == (5, 3, 12, 12) and out.dtype == torch.float32


def test_zero_strength_jitter_is_identity_and_full_jitter_changes_images():
    x = to_float(torch.from_numpy(_photo(24)).permute(2, 0, 1)[None].repeat(4, 1, 1, 1))
    g = torch.Generator().manual_seed(1)
    assert torch.equal(color_jitter(x, 0, 0, 0, 0, p=1.0, generator=g), x)
    assert torch.allclose(color_jitter(x, 0.4, 0.4, 0.4, 0.1, p=0.0, generator=g), x, atol=1e-5)
    y = color_jitter(x, 0.4, 0.4, 0.4, 0.1, p=1.0, generator=g)
    assert y.shape == x.shape and 0 <= float(y.min()) and float(y.max()) <= 1 and not torch.allclose(x, y)
    # brightness alone multiplies by a per-sample factor in [0.6, 1.4]
    z = color_jitter(x * 0.5, 0.4, 0, 0, 0, p=1.0, generator=g)
    ratio = (z / (x * 0.5).clamp_min(1e-3))[(x > 0.1)]
    assert float(ratio.min()) >= 0.6 - 1e-4 and float(ratio.max()) <= 1.4 + 1e-4
    # one channel: brightness/contrast only, no crash
    assert color_jitter(x[:, :1], 0.4, 0.4, 0.4, 0.1, p=1.0, generator=g).shape == (4, 1, 24, 24)


def test_grayscale_uses_itu_r_601_weights():
    x = torch.rand(2, 3, 5, 5)
    g = grayscale(x, p=1.0)
    ref = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    assert LUMA_601 == (0.299, 0.587, 0.114)
    for c in range(3):
        assert torch.allclose(g[:, c], ref, atol=1e-6)
    assert torch.equal(grayscale(x, p=0.0), x)


def test_blur_kernels_sum_to_one_and_blur_matches_scipy_on_the_interior():
    from scipy.ndimage import gaussian_filter1d

    sig = torch.tensor([0.1, 0.7, 2.0])
    k = blur_kernels(sig, 6)
    assert torch.allclose(k.sum(1), torch.ones(3), atol=1e-6)
    x = torch.rand(3, 2, 20, 20)
    y = gaussian_blur(x, sigma=sig, p=1.0)
    for i in range(3):
        r = int(np.ceil(3 * 2.0))
        ref = gaussian_filter1d(gaussian_filter1d(x[i].numpy(), float(sig[i]), axis=-1, mode="mirror", truncate=r / float(sig[i])),
                                float(sig[i]), axis=-2, mode="mirror", truncate=r / float(sig[i]))
        assert np.abs(y[i].numpy() - ref)[:, r:-r, r:-r].max() < 1e-5
    assert torch.equal(gaussian_blur(x, sigma=(0.1, 2.0), p=0.0), x)


def test_cutmix_lambda_is_the_exact_kept_fraction_and_pixels_follow_the_box():
    g = torch.Generator().manual_seed(3)
    a, b = torch.zeros(64, 1, 9, 7), torch.ones(64, 1, 9, 7)
    lam0 = torch.rand(64, generator=g)
    g2 = torch.Generator().manual_seed(5)
    mixed, lam = cutmix(a, b, lam0, generator=g2)
    boxes = cutmix_boxes(64, 9, 7, lam0, torch.Generator().manual_seed(5))
    for i in range(64):
        y0, y1, x0, x1 = boxes[i].tolist()
        ref = np.zeros((9, 7))
        ref[y0:y1, x0:x1] = 1
        assert np.array_equal(mixed[i, 0].numpy(), ref)
        assert abs(float(lam[i]) - (1 - ref.mean())) < 1e-6
    one, lam1 = cutmix(a, b, torch.ones(64))
    assert torch.equal(one, a) and torch.equal(lam1, torch.ones(64))


def test_mixup_half_is_symmetric():
    a, b = torch.rand(3, 3, 4, 4), torch.rand(3, 3, 4, 4)
    assert torch.allclose(mixup(a, b, 0.5), mixup(b, a, 0.5))
    assert torch.allclose(mixup(a, b, torch.tensor([1.0, 0.0, 0.25])),
                          torch.stack([a[0], b[1], 0.25 * a[2] + 0.75 * b[2]]))
