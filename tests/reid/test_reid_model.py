"""Model, VCAM, losses and sampler (spec §9 "Model")."""

from pathlib import Path

import numpy as np
import pytest
import torch

from wisecli.cli.errors import InputError
from wisecli.engines.reid.loss import batch_hard_triplet, reid_losses
from wisecli.engines.reid.model import ReIDNet, build_backbone, load_pretrained
from wisecli.engines.reid.sampler import PKSampler
from wisecli.engines.reid.vcam import flip_viewpoint

KEYS = Path(__file__).parent / "data" / "resnet50_imagenet_keys.txt"


pytestmark = pytest.mark.usefixtures("one_torch_thread_module")  # tiny nets: a 2nd thread only spins


def _imagenet_keys():
    out = {}
    for line in KEYS.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, shape = line.partition(" ")
        out[name] = tuple(int(s) for s in shape.split(",")) if shape.strip() else ()
    return out


def test_resnet50_names_and_shapes_match_imagenet_layout():
    ref = {k: v for k, v in _imagenet_keys().items() if not k.startswith("fc.")}
    ours = {k: tuple(v.shape) for k, v in build_backbone("resnet50").state_dict().items()}
    assert ours == ref


def test_pretrained_state_dict_loads_and_shape_mismatch_is_refused():
    torch.manual_seed(0)
    state = {k: torch.randn(s) if s else torch.tensor(0) for k, s in _imagenet_keys().items()}
    model = ReIDNet(5, arch="resnet50", use_vcam=False)
    report = load_pretrained(model, state)
    assert report == {"missing": [], "unexpected": []}
    assert torch.equal(model.backbone.layer3[2].conv2.weight, state["layer3.2.conv2.weight"])
    state["layer1.0.conv1.weight"] = torch.randn(64, 3, 1, 1)
    with pytest.raises(ValueError, match="layer1.0.conv1.weight"):
        load_pretrained(model, state)


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_last_stride_one_gives_16x16_at_256(arch):
    net = build_backbone(arch).eval()
    seen = {}
    net.layer4.register_forward_hook(lambda m, i, o: seen.update(shape=o.shape))
    with torch.no_grad():
        net(torch.zeros(1, 3, 256, 256))
    assert tuple(seen["shape"][-2:]) == (16, 16)


def test_vcam_at_init_equals_baseline_with_same_weights():
    torch.manual_seed(1)
    vcam = ReIDNet(7, arch="resnet18").eval()
    base = ReIDNet(7, arch="resnet18", use_vcam=False).eval()
    res = base.load_state_dict(vcam.state_dict(), strict=False)
    assert not res.missing_keys and all(k.startswith(("viewpoint.", "vcam.")) for k in res.unexpected_keys)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        a, b = vcam(x), base(x)
    assert torch.equal(a["f_t"], b["f_t"]) and torch.equal(a["logits"], b["logits"])
    assert all(torch.equal(g, torch.ones_like(g)) for g in a["gates"].values())
    # once trained, the gates differ by viewpoint and the outputs separate
    with torch.no_grad():
        vcam.vcam["2"].mlp[0].weight.normal_()
        assert not torch.allclose(vcam(x)["f_t"], b["f_t"])


def test_vcam_parameter_count_and_sigmoid_gate():
    m = ReIDNet(3, arch="resnet50")
    assert sum(p.numel() for p in m.vcam.parameters()) == 5 * (256 + 512 + 1024 + 2048) + (256 + 512 + 1024 + 2048)
    s = ReIDNet(3, arch="resnet18", gate="sigmoid", vcam_stages=(4,)).eval()
    with torch.no_grad():
        g = s(torch.randn(1, 3, 64, 64))["gates"]
    assert list(g) == [4] and torch.allclose(g[4], torch.full_like(g[4], 0.5))


def test_bnneck_bias_is_frozen():
    m = ReIDNet(4, arch="resnet18", use_vcam=False)
    assert not m.bnneck.bias.requires_grad
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=0.1)
    out = m(torch.randn(8, 3, 64, 64))
    reid_losses(out, torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]), None)[0].backward()
    opt.step()
    assert torch.count_nonzero(m.bnneck.bias) == 0


def test_detached_viewpoint_gets_no_reid_gradient():
    m = ReIDNet(4, arch="resnet18", detach_viewpoint=True)
    out = m(torch.randn(8, 3, 64, 64))
    loss, _ = reid_losses(out, torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]), None)
    loss.backward()
    assert all(p.grad is None for p in m.viewpoint.parameters())
    m2 = ReIDNet(4, arch="resnet18", detach_viewpoint=False)
    with torch.no_grad():
        m2.vcam["4"].mlp[0].weight.normal_()
    loss2, _ = reid_losses(m2(torch.randn(8, 3, 64, 64)), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]), None)
    loss2.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m2.viewpoint.parameters())


def test_flip_swaps_8_class_labels_only():
    lab = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, -1])
    assert flip_viewpoint(lab, 8).tolist() == [0, 1, 5, 6, 7, 2, 3, 4, -1]
    assert torch.equal(flip_viewpoint(flip_viewpoint(lab, 8), 8), lab)
    five = torch.tensor([0, 1, 2, 3, 4, -1])
    assert torch.equal(flip_viewpoint(five, 5), five)


def test_batch_hard_triplet_equals_loop():
    torch.manual_seed(2)
    f = torch.randn(12, 5)
    y = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    want = []
    for a in range(12):
        dp = max(float((f[a] - f[p]).norm()) for p in range(12) if p != a and y[p] == y[a])
        dn = min(float((f[a] - f[n]).norm()) for n in range(12) if y[n] != y[a])
        want.append(max(0.0, dp - dn + 0.3))
    assert float(batch_hard_triplet(f, y, 0.3)) == pytest.approx(np.mean(want), abs=1e-5)


def test_viewpoint_loss_only_on_labelled():
    m = ReIDNet(2, arch="resnet18").eval()
    out = m(torch.randn(4, 3, 64, 64))
    _, parts = reid_losses(out, torch.tensor([0, 0, 1, 1]), torch.tensor([-1, 2, -1, 4]))
    ce = torch.nn.functional.cross_entropy(out["vp_logits"][[1, 3]], torch.tensor([2, 4]))
    assert parts["loss_vp"] == pytest.approx(float(ce.detach()), abs=1e-6)
    _, empty = reid_losses(out, torch.tensor([0, 0, 1, 1]), torch.full((4,), -1))
    assert empty["loss_vp"] == 0.0 and empty["vp_acc"] == 0.0  # same keys every step
    _, none = reid_losses(out, torch.tensor([0, 0, 1, 1]), None)
    assert "loss_vp" not in none


def test_pk_sampler_batches():
    ids = np.repeat(np.arange(10), [5, 5, 3, 8, 2, 4, 4, 6, 1, 9])
    s = PKSampler(ids, p=4, k=4, seed=3)
    batches = list(s)
    assert len(batches) == len(s) >= 1
    for b in batches:
        got = ids[b]
        assert len(b) == 16
        u, c = np.unique(got, return_counts=True)
        assert len(u) == 4 and (c == 4).all() and 8 not in u  # id 8 has one image: never sampled
    s.set_epoch(1)
    assert list(s) != batches
    ranks = [set(ids[[i for b in PKSampler(ids, p=2, k=2, seed=0, rank=r, world_size=2) for i in b]])
             for r in (0, 1)]
    assert not ranks[0] & ranks[1]
    with pytest.raises(InputError, match="identities with >= 2 images"):
        PKSampler(ids, p=10, k=4)
