"""WingsNet size, fold and DropLayer; General Union loss against hand computation (spec §9 Model, GUL)."""

import math

import numpy as np
import pytest
import torch

from wisecli.engines.segment_airway.loss import (distance_weight, general_union_loss, group_loss, nearest_e,
                                                 patch_q, skeleton_q, tversky_loss, union_weight)
from wisecli.engines.segment_airway.model import DropLayer, WingsNet, count_parameters

# one torch and one BLAS thread per module (conftest): a 2-core machine's second core runs the recipe retrain
# beside this folder (test_airway_demo.py), and two spinning OpenMP threads here cost ~28 CPU-s more [measured]
pytestmark = pytest.mark.usefixtures("one_thread_module")


def test_parameter_count_one_channel():
    assert count_parameters(WingsNet(in_channels=1)) == 1_473_186
    # a second HU window adds 8·27 weights to e1
    assert count_parameters(WingsNet(in_channels=2)) == 1_473_186 + 8 * 27


def test_output_shapes_and_group_heads():
    torch.manual_seed(0)
    m = WingsNet(width=0.5)
    x = torch.randn(2, 1, 16, 24, 32)
    m.train()
    enc, dec = m(x)
    assert enc.shape == dec.shape == (2, 1, 16, 24, 32)
    m.eval()
    assert m(x).shape == (2, 1, 16, 24, 32)


def test_fold_equals_unfolded():
    torch.manual_seed(1)
    m = WingsNet().eval()
    # make the heads non-trivial
    for p in (m.head_dec.weight, m.head_dec.bias):
        p.data.normal_()
    x = torch.randn(1, 1, 32, 32, 24)
    with torch.no_grad():
        a, b = m(x), m.folded_forward(x)
    assert a.abs().max() > 1e-3
    assert (a - b).abs().max().item() <= 1e-5


@pytest.mark.parametrize("batch", [1, 8])
def test_droplayer_mean_per_sample(batch):
    torch.manual_seed(2)
    d = DropLayer(0.7).train()
    x = torch.ones(batch, 24, 2, 2, 2)
    gains = torch.stack([d(x).mean(dim=(1, 2, 3, 4)) for _ in range(200)])
    # every sample keeps mean gain exactly 1 (C / Σ kept over the channels)
    assert torch.allclose(gains, torch.ones_like(gains), atol=1e-6)
    # and channels really are dropped at about 30 %
    zeros = torch.stack([(d(x)[:, :, 0, 0, 0] == 0).float().mean() for _ in range(200)]).mean()
    assert abs(zeros.item() - 0.3) < 0.03
    d.eval()
    assert torch.equal(d(x), x)


def _hand_gul(p, g, w, alpha):
    num = den = 0.0
    for pi, gi, wi in zip(p, g, w):
        num += wi * (pi + 1e-4) ** 0.7 * gi
        den += wi * (alpha * pi + (1 - alpha) * gi)
    return 1 - (num + 1) / (den + 1)


def test_gul_hand_computed():
    p = [0.9, 0.2, 0.6, 0.05, 0.7, 0.3]
    g = [1, 1, 0, 0, 1, 0]
    q = [0.4, 1.0, 0.0, 0.0, 0.7, 0.0]
    alpha = 0.2
    m = (1 - 2 * alpha) / (1 - alpha)
    w = [(1 - m * qi) if gi else 1.0 for qi, gi in zip(q, g)]
    logit = torch.logit(torch.tensor(p, dtype=torch.float64)).view(1, 1, 1, 2, 3)
    gt = torch.tensor(g, dtype=torch.float32).view(1, 1, 1, 2, 3)
    qt = torch.tensor(q, dtype=torch.float32).view(1, 1, 1, 2, 3)
    got = general_union_loss(logit, gt, qt, alpha=alpha).item()
    assert got == pytest.approx(_hand_gul(p, g, w, alpha), abs=1e-6)
    # background weight is 1 whatever q says
    assert torch.all(union_weight(torch.full_like(qt, 0.9), gt, alpha)[gt == 0] == 1)


def test_gul_reduces_to_root_tversky_and_sample_reduce():
    torch.manual_seed(3)
    logit = torch.randn(3, 1, 4, 4, 4)
    g = (torch.rand(3, 1, 4, 4, 4) > 0.6).float()
    p = torch.sigmoid(logit).flatten().tolist()
    gl = g.flatten().tolist()
    expect = _hand_gul(p, gl, [1.0] * len(p), 0.1)
    assert general_union_loss(logit, g, None, alpha=0.1).item() == pytest.approx(expect, abs=1e-6)
    # q = 0 makes d = 1 too
    assert general_union_loss(logit, g, torch.zeros_like(g), alpha=0.1).item() == pytest.approx(expect, abs=1e-6)
    per = [_hand_gul(torch.sigmoid(logit[i]).flatten().tolist(), g[i].flatten().tolist(), [1.0] * 64, 0.1)
           for i in range(3)]
    assert general_union_loss(logit, g, None, alpha=0.1, reduce="sample").item() == pytest.approx(
        sum(per) / 3, abs=1e-6)


def test_gul_zero_at_perfect_and_gradient_ratio():
    g = torch.zeros(1, 1, 8, 8, 8)
    g[..., 2:6, 2:6, 2:6] = 1
    logit = torch.where(g > 0, 30.0, -30.0)
    assert abs(general_union_loss(logit, g, None).item()) < 1e-3
    # foreground gradient is larger at low p than at high p (the root term)
    grads = []
    for pv in (0.1, 0.9):
        p = torch.full_like(g, pv, requires_grad=True)
        # differentiate with respect to p through the logit
        lg = torch.log(p) - torch.log1p(-p)
        general_union_loss(lg, g, None).backward()
        grads.append(p.grad[g > 0].abs().mean().item())
    assert grads[0] > grads[1]


def test_group_loss_sums_heads():
    torch.manual_seed(4)
    a, b = torch.randn(2, 1, 4, 4, 4), torch.randn(2, 1, 4, 4, 4)
    g = (torch.rand(2, 1, 4, 4, 4) > 0.5).float()
    tot = group_loss(a, b, g, None, alpha=0.1, enc_weight=0.5)
    assert tot.item() == pytest.approx(general_union_loss(b, g, None).item()
                                       + 0.5 * general_union_loss(a, g, None).item(), abs=1e-6)
    assert 0 < tversky_loss(a, g).item() < 1


def test_distance_weight_centreline_and_wall():
    # a straight tube of radius 4 voxels along z; the skeleton is its axis
    z, y, x = np.mgrid[:20, :21, :21]
    r2 = (y - 10) ** 2 + (x - 10) ** 2
    label = (r2 <= 16).astype(np.uint8)
    skel = np.zeros_like(label)
    skel[:, 10, 10] = 1
    q = skeleton_q(label, skel, (1.0, 1.0, 1.0)).astype(np.float32)
    e_max = np.sqrt(r2[label > 0].max())
    alpha = 0.1
    d = distance_weight(torch.from_numpy(q), alpha).numpy()
    m = (1 - 2 * alpha) / (1 - alpha)
    assert d[5, 10, 10] == pytest.approx(1 - m / math.sqrt(e_max + 1), abs=2e-3)
    wall = (r2 == r2[label > 0].max()) & (label > 0)
    assert np.allclose(d[wall], alpha / (1 - alpha), atol=2e-3)
    assert np.all(q[label == 0] == 0)


def _line_case():
    """A 1-voxel-thick line (shape 1×1×9): background at x = 0 and 8, airway x = 1..7, skeleton at x = 4.
    With nothing beside the line, distances run along x only, so they can be counted by hand."""
    label = np.zeros((1, 1, 9), np.uint8)
    label[..., 1:8] = 1
    skel = np.zeros_like(label)
    skel[..., 4] = 1
    return label, skel


@pytest.mark.parametrize("mode", ["skeleton", "nearest"])
def test_dist_mode_maps_and_loss_hand_computed(mode):
    label, skel = _line_case()
    if mode == "skeleton":
        e = [3, 2, 1, 0, 1, 2, 3]            # |x - 4|: distance to the skeleton
        q_map = torch.from_numpy(skeleton_q(label, skel, (1.0, 1.0, 1.0)).astype(np.float32))[None]
    else:
        e = [1, 2, 1, 0, 1, 2, 1]            # min(distance to the skeleton, distance to the background)
        got_e = nearest_e(label, skel, (1.0, 1.0, 1.0)).astype(np.float32)
        assert got_e[0, 0].tolist() == [0] + e + [0]
        g_t = torch.from_numpy(label.astype(np.float32))[None]
        q_map = patch_q(torch.from_numpy(got_e)[None], g_t)
    e_max = max(e)
    q_hand = [math.sqrt((ei + 1) / (e_max + 1)) for ei in e]
    assert q_map[0, 0, 0].tolist() == pytest.approx([0.0] + q_hand + [0.0], abs=1e-3)
    # the loss with these weights, against the formula evaluated by hand
    alpha = 0.1
    m = (1 - 2 * alpha) / (1 - alpha)
    p = [0.3, 0.8, 0.6, 0.9, 0.4, 0.7, 0.2, 0.5, 0.1]
    g = label.ravel().tolist()
    w = [1.0] + [1 - m * qi for qi in q_hand] + [1.0]
    logit = torch.logit(torch.tensor(p, dtype=torch.float64)).view(1, 1, 1, 1, 9)
    got = general_union_loss(logit, torch.tensor(g, dtype=torch.float32).view(1, 1, 1, 1, 9),
                             q_map.view(1, 1, 1, 1, 9), alpha=alpha).item()
    assert got == pytest.approx(_hand_gul(p, g, w, alpha), abs=2e-4)


def test_nearest_mode_spacing_units_and_per_patch_max():
    label, skel = _line_case()
    # finest-spacing units: spacing 0.5 mm along x gives the same e as unit spacing
    assert np.array_equal(nearest_e(label, skel, (1.0, 1.0, 0.5)), nearest_e(label, skel, (1.0, 1.0, 1.0)))
    # e_max is taken per patch: a patch whose distances are doubled gets the same q where e scales with it
    e = torch.tensor([[0.0, 1, 2, 3, 0], [0.0, 2, 4, 6, 0]]).view(2, 1, 1, 1, 5)
    g = torch.tensor([[0.0, 1, 1, 1, 0], [0.0, 1, 1, 1, 0]]).view(2, 1, 1, 1, 5)
    q = patch_q(e, g)
    assert q[0].flatten().tolist() == pytest.approx([0, math.sqrt(2 / 4), math.sqrt(3 / 4), 1, 0], abs=1e-6)
    assert q[1].flatten().tolist() == pytest.approx([0, math.sqrt(3 / 7), math.sqrt(5 / 7), 1, 0], abs=1e-6)
    # highest weight on the centreline and next to the wall, lowest halfway (the nearest variant's shape)
    z, y, x = np.mgrid[:5, :21, :21]
    r2 = (y - 10) ** 2 + (x - 10) ** 2
    tube = (r2 <= 36).astype(np.uint8)
    axis = np.zeros_like(tube)
    axis[:, 10, 10] = 1
    et = torch.from_numpy(nearest_e(tube, axis, (1.0, 1.0, 1.0)).astype(np.float32))[None, None]
    d = distance_weight(patch_q(et, torch.from_numpy(tube.astype(np.float32))[None, None]), 0.1)[0, 0, 2, 10]
    assert d[10] > d[13] and d[16] > d[13]  # centre, halfway (r = 3), inside the wall (r = 6)
