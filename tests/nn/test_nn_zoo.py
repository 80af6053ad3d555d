"""The classifier zoo (spec §2.0, §2.4 baselines): shapes, the named layers other methods rely on, the MONAI stem
rule, bad arguments, the vmap ensemble against its members run one by one, mc-dropout, load_classifier."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wisecli.cli.errors import InputError
from wisecli.nn import ARCHS, build, load_classifier
from wisecli.nn.zoo import MCDropoutLayer, StackedEnsemble
from wisecli.runtime.checkpoints import save_checkpoint

SMALL = [a for a in ARCHS if not a.startswith("monai-")]


@pytest.mark.parametrize("arch", SMALL)
def test_small_archs_give_logits(arch):
    torch.manual_seed(0)
    size = 16
    model = build(arch, in_channels=3, num_classes=7, image_size=size, width=0.25)
    x = torch.randn(2, size) if arch == "mlp" else torch.randn(2, 3, size, size)
    if arch == "mlp":
        model = build(arch, in_channels=1, num_classes=7, image_size=size)
    y = model(x)
    assert y.shape == (2, 7) and torch.isfinite(y).all()


def test_named_layers_and_sizes():
    m = build("small-cnn", in_channels=1, num_classes=10, image_size=28, norm="none")
    assert [n for n, _ in m.named_children() if n.startswith(("conv", "fc"))] == ["conv1", "conv2", "fc1", "fc2"]
    assert (m.conv1.in_channels, m.conv1.out_channels, m.conv2.out_channels) == (1, 16, 32)
    assert m.fc1.in_features == 32 * 7 * 7 and m.fc1.out_features == 64
    assert not any(isinstance(x, nn.BatchNorm2d) for x in m.modules()) and m.conv1.bias is not None
    c = build("cnn-32", in_channels=3, num_classes=10, image_size=32)
    assert c.conv1.kernel_size == (5, 5) and c.fc1.in_features == 1600 and c.fc1.out_features == 256
    mlp = build("mlp", in_channels=1, num_classes=3, image_size=64)
    assert [l.out_features for l in mlp.modules() if isinstance(l, nn.Linear)] == [256, 128, 3]
    assert build("mlp", in_channels=1, num_classes=3, image_size=8, input="image").in_features == 64
    net = build("ring-cnn", in_channels=1, num_classes=3, image_size=16)
    assert [m.out_channels for m in net.features if hasattr(m, "out_channels")] == [32, 32, 64, 64, 128]


def _layer1_input_size(model: nn.Module, size: int) -> int:
    seen = []
    hook = model.layer1.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape[-1]))
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 1, size, size)).shape == (1, 3)
    hook.remove()
    return seen[0]


def test_monai_stem_rule():
    small = build("monai-resnet18", in_channels=1, num_classes=3, image_size=32, width=0.25)
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1) and small.no_max_pool
    assert _layer1_input_size(small, 32) == 32  # no downsampling before the first stage
    large = build("monai-resnet18", in_channels=1, num_classes=3, image_size=96, width=0.25)
    assert large.conv1.kernel_size == (7, 7) and large.conv1.stride == (2, 2) and not large.no_max_pool
    assert _layer1_input_size(large, 96) == 24  # stride-2 stem, then the max-pool


@pytest.mark.slow
def test_other_monai_archs_small_stem():
    """The stem replacement of the non-ResNet MONAI nets (construction of ~35 M parameters: a few seconds)."""
    dense = build("monai-densenet121", in_channels=1, num_classes=3, image_size=16)
    assert dense.features.conv0.stride == (1, 1) and isinstance(dense.features.pool0, nn.Identity)
    se = build("monai-seresnet50", in_channels=1, num_classes=3, image_size=16)
    assert se.layer0.conv1.kernel_size == (3, 3) and se.layer0.conv1.stride == (1, 1)
    assert isinstance(se.layer0.pool, nn.Identity)
    eff = build("monai-efficientnet-b0", in_channels=1, num_classes=3, image_size=16).eval()
    assert eff._conv_stem.stride == (1, 1)
    stem = []
    hook = eff._bn0.register_forward_hook(lambda mod, inp, out: stem.append(out.shape[-1]))
    with torch.no_grad():
        assert eff(torch.randn(1, 1, 16, 16)).shape == (1, 3)
    hook.remove()
    assert stem == [16]


@pytest.mark.parametrize("kw,needle", [
    (dict(arch="vgg"), "unknown arch"),
    (dict(bayes="laplace"), "unknown bayes"),
    (dict(norm="group"), "unknown norm"),
    (dict(components=0), "components"),
    (dict(width=0), "width"),
    (dict(dropout=1.5), "dropout"),
    (dict(pretrained=True), "pretrained"),
    (dict(ring_mode="x"), "unknown option"),
    (dict(arch="ring-cnn", ring_mode="spiral"), "ring_mode"),
    (dict(arch="cnn-32", image_size=8), "16x16"),
    (dict(arch="monai-resnet18", norm="none"), "norm=batch"),
    (dict(prior_std=0.1), "bayes=implicit"),
])
def test_bad_arguments_are_input_errors(kw, needle):
    args = dict(arch="small-cnn", in_channels=1, num_classes=3, image_size=16) | kw
    with pytest.raises(InputError, match=needle):
        build(args.pop("arch"), **args)


def test_ensemble_is_its_members_run_one_by_one():
    torch.manual_seed(0)
    kw = dict(in_channels=1, num_classes=4, image_size=8, width=0.25)
    ens = build("small-cnn", bayes="ensemble", members=3, **kw)
    assert isinstance(ens, StackedEnsemble) and ens.stack.conv1.weight.shape[0] == 3
    members = []
    for i in range(3):
        m = build("small-cnn", **kw)
        m.load_state_dict({k[len("stack."):]: v[i] for k, v in ens.state_dict().items()})
        members.append(m)
    assert not torch.allclose(members[0].conv1.weight, members[1].conv1.weight)  # independent inits
    x = torch.randn(6, 1, 8, 8)
    ens.train()
    for m in members:
        m.train()
    y = ens(x)  # training mode: batch statistics per member, running stats updated per member
    ref = torch.stack([m(x) for m in members])
    assert y.shape == (3, 6, 4) and torch.allclose(y, ref, atol=1e-5)
    for i, m in enumerate(members):
        assert torch.allclose(ens.stack.bn1.running_mean[i], m.bn1.running_mean, atol=1e-6)
    # gradients reach every member's slice as if trained separately
    y.sum().backward()
    ref.sum().backward()
    assert torch.allclose(ens.stack.fc2.weight.grad[1], members[1].fc2.weight.grad, atol=1e-5)
    ens.eval()
    for m in members:
        m.eval()
    with torch.no_grad():
        assert torch.allclose(ens(x), torch.stack([m(x) for m in members]), atol=1e-5)
        per = torch.randn(3, 2, 1, 8, 8)
        assert torch.allclose(ens(per, per_member=True), torch.stack([m(p) for m, p in zip(members, per)]), atol=1e-5)


def test_ensemble_of_radial_nets_keeps_its_gather_indices():
    ens = build("ring-cnn", in_channels=1, num_classes=3, image_size=8, width=0.125, bayes="ensemble", members=2).eval()
    ens = ens.to(torch.float64)
    with torch.no_grad():
        y = ens(torch.randn(2, 1, 8, 8, dtype=torch.float64))
    assert y.shape == (2, 2, 3) and y.dtype == torch.float64
    assert not any(k.endswith("index") for k in ens.state_dict())


def test_mc_dropout_wraps_every_layer_and_is_off_in_eval():
    torch.manual_seed(0)
    kw = dict(in_channels=1, num_classes=4, image_size=8)
    plain = build("small-cnn", **kw).eval()
    mc = build("small-cnn", bayes="mc-dropout", dropout=0.3, **kw)
    wrappers = [m for m in mc.modules() if isinstance(m, MCDropoutLayer)]
    assert len(wrappers) == 4 and all(w.dropout.p == 0.3 for w in wrappers)
    mc.load_state_dict({k: plain.state_dict()[k.replace(".layer.", ".")] for k in mc.state_dict()})
    mc.eval()
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(mc(x), plain(x), atol=1e-6)
        for w in wrappers:
            w.dropout.train()
        assert not torch.allclose(mc(x), plain(x))


@pytest.mark.parametrize("bayes", ["none", "implicit", "ensemble", "mc-dropout"])
def test_load_classifier_round_trip(tmp_path, bayes):
    torch.manual_seed(0)
    model_kw = dict(in_channels=1, num_classes=3, image_size=8, width=0.25, norm="batch", bayes=bayes, components=2,
                    dropout=0.1, members=2, ring_mode="joint")
    model = build("ring-cnn", **model_kw).eval()
    path = save_checkpoint(tmp_path / "best.pt", method="classify", arch="ring-cnn", config={},
                           state_dict=model.state_dict(), model=model_kw, classes=["a", "b", "c"],
                           normalize={"mean": [0.5], "std": [0.2]}, input={"kind": "image"})
    loaded, doc = load_classifier(path)
    assert not loaded.training and doc["classes"] == ["a", "b", "c"]
    x = torch.randn(4, 1, 8, 8)
    if bayes != "implicit":
        with torch.no_grad():
            assert torch.allclose(loaded(x), model(x), atol=1e-6)
    else:
        assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


def test_load_classifier_refusals(tmp_path):
    model = build("small-cnn", in_channels=1, num_classes=3, image_size=8)
    kw = dict(in_channels=1, num_classes=3, image_size=8)
    other = save_checkpoint(tmp_path / "reid.pt", method="reid", arch="small-cnn", config={},
                            state_dict=model.state_dict(), model=kw)
    with pytest.raises(InputError, match="'reid' checkpoint"):
        load_classifier(other)
    bad_arch = save_checkpoint(tmp_path / "a.pt", method="classify", arch="vgg", config={},
                               state_dict=model.state_dict(), model=kw)
    with pytest.raises(InputError, match="cannot be rebuilt"):
        load_classifier(bad_arch)
    wrong_shape = save_checkpoint(tmp_path / "b.pt", method="classify", arch="small-cnn", config={},
                                  state_dict=model.state_dict(), model=kw | {"num_classes": 5})
    with pytest.raises(InputError, match="do not fit"):
        load_classifier(wrong_shape)
    bad_kw = save_checkpoint(tmp_path / "c.pt", method="classify", arch="small-cnn", config={},
                             state_dict=model.state_dict(), model=kw | {"colour": "red"})
    with pytest.raises(InputError, match="do not build"):
        load_classifier(bad_kw)
    with pytest.raises(InputError, match="not found"):
        load_classifier(tmp_path / "missing.pt")


def test_forward_and_backward_never_read_a_tensor_to_the_host(monkeypatch):
    """No `.item()`/`float()`/`bool()` of a tensor in the layers' forward or backward (device-ready: no sync)."""
    models = [build("ring-cnn", in_channels=1, num_classes=3, image_size=8, width=0.125, bayes="implicit", components=2),
              build("dwsep-radial-cnn", in_channels=1, num_classes=3, image_size=8, width=0.125, bayes="ensemble",
                    members=2),
              build("small-cnn", in_channels=1, num_classes=3, image_size=8, bayes="mc-dropout")]
    x = torch.randn(4, 1, 8, 8)

    def refuse(*_a, **_k):
        raise AssertionError("a tensor was read to the host")

    for name in ("item", "__float__", "__bool__", "__int__", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    for model in models:
        model(x).sum().backward()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_forward_backward_without_host_sync():
    dev = torch.device("cuda")
    models = [build("ring-cnn", in_channels=1, num_classes=3, image_size=16, width=0.25, bayes="implicit",
                    components=4).to(dev),
              build("radial-cnn", in_channels=1, num_classes=3, image_size=16, width=0.25, bayes="ensemble",
                    members=3).to(dev)]
    x = torch.randn(8, 1, 16, 16, device=dev)
    for model in models:
        model(x).sum().backward()  # warm-up outside the check (cuDNN algorithm choice may sync)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for model in models:
            model(x).sum().backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_mlp_on_images_needs_input_image():
    feats = build("mlp", in_channels=1, num_classes=3, image_size=8)
    with pytest.raises(ValueError, match="input='image'"):
        feats(torch.randn(2, 1, 8, 8))
    imgs = build("mlp", in_channels=3, num_classes=3, image_size=8, input="image")
    assert imgs(torch.randn(2, 3, 8, 8)).shape == (2, 3)
