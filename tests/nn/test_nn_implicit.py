"""Implicit-BNN layers (spec §2.4, §9 "iBNN"): MONAI resnet18 wraps, disjoint component indices, the KL surrogate
against the hand formula, sigma -> 0 with mu = 1 gives the deterministic net."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from wisecli.nn import ImplicitLayer, build, convert_to_implicit, implicit_kl, implicit_parameters
from wisecli.nn.implicit import WRAPPED_TYPES, component_index, implicit_layers


def _collapse(model: nn.Module, mean: float = 1.0) -> None:
    """sigma -> 0 (softplus(-40) ~ 4e-18) and every mean = `mean`."""
    with torch.no_grad():
        for layer in implicit_layers(model):
            layer.mu.fill_(mean)
            layer.rho.fill_(-40.0)


def test_monai_resnet18_wraps():
    model = build("monai-resnet18", in_channels=1, num_classes=3, image_size=16, width=0.25)
    n_layers = sum(isinstance(m, WRAPPED_TYPES) for m in model.modules())
    convert_to_implicit(model, 4)
    layers = implicit_layers(model)
    assert len(layers) == n_layers > 20  # every Conv2d (incl. the shortcut convs) and the final Linear
    assert not any(isinstance(m, WRAPPED_TYPES) and not isinstance(p, ImplicitLayer)
                   for p in model.modules() for m in p.children())
    assert len(implicit_parameters(model)) == 2 * n_layers
    y = model(torch.randn(4, 1, 16, 16))
    assert y.shape == (4, 3) and torch.isfinite(y).all()
    (y.square().mean() + implicit_kl(model)).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in implicit_parameters(model))


@pytest.mark.parametrize("n,k", [(8, 4), (12, 4), (10, 3), (5, 8), (6, 1)])
def test_component_indices_are_disjoint_equal_chunks(n, k):
    idx = component_index(n, k)
    assert idx.shape == (n,) and int(idx.min()) >= 0 and int(idx.max()) < k
    assert torch.all(idx[1:] >= idx[:-1])  # contiguous chunks
    counts = torch.bincount(idx, minlength=k)
    assert int(counts.max()) - int(counts[counts > 0].min()) <= 1  # as equal as n allows
    if n >= k:
        assert int((counts > 0).sum()) == k  # every component used


def test_replicas_draw_from_their_own_component():
    """A batch of B repeated L = K S times (x.repeat): replica i uses component floor(i K / L) only, so the K
    components get disjoint sets of S replicas; checked through the layer itself with sigma -> 0."""
    k, s, b, d = 4, 3, 5, 6
    lin = nn.Linear(d, d, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(d))
    layer = ImplicitLayer(lin, k)
    with torch.no_grad():
        layer.rho.fill_(-40.0)
        layer.mu.copy_(torch.arange(1, k + 1, dtype=torch.float32)[:, None].expand(k, d))
    x = torch.rand(b, d) + 0.5
    out = layer(x.repeat(k * s, 1)).view(k * s, b, d)
    used = (out / x).mean(dim=(1, 2))  # the mean of the component replica i used
    want = torch.tensor([1 + (i * k) // (k * s) for i in range(k * s)], dtype=torch.float32)
    assert torch.allclose(used, want, atol=1e-5)
    groups = [set(torch.nonzero(used.round() == c + 1).flatten().tolist()) for c in range(k)]
    assert all(len(g) == s for g in groups) and len(set().union(*groups)) == k * s


def test_kl_matches_the_hand_formula():
    torch.manual_seed(0)
    model = convert_to_implicit(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2, bias=False)), 3, prior_std=0.3)
    with torch.no_grad():
        for layer in implicit_layers(model):
            layer.rho.uniform_(-4, 0)
    got = float(implicit_kl(model).detach())
    want = 0.0
    s0 = 0.3
    for layer in implicit_layers(model):
        mu = layer.mu.detach().double().tolist()
        sig = torch.nn.functional.softplus(layer.rho.detach().double()).tolist()
        kk = len(mu)
        for j in range(len(mu[0])):
            m = sum(mu[c][j] for c in range(kk)) / kk
            s = math.sqrt(sum(sig[c][j] ** 2 for c in range(kk))) / kk
            # KL(N(m, s^2) || N(1, s0^2))
            want += math.log(s0 / s) + (s * s + (m - 1) ** 2) / (2 * s0 * s0) - 0.5
    assert sum(layer.mu.shape[1] for layer in implicit_layers(model)) == (3 + 1) + 4  # bias latent on the first only
    # float32 parameters; the sum of ~8 terms of size ~10 agrees to ~1e-5 relative
    assert got == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("arch,size,norm", [("small-cnn", 16, "batch"), ("ring-cnn", 16, "batch"), ("ring-cnn", 8, "none"),
                                            ("dwsep-radial-cnn", 8, "none"), ("radial-cnn", 8, "none"),
                                            ("mlp", 12, "batch"), ("cnn-32", 16, "none")])
def test_sigma_to_zero_mean_one_is_the_deterministic_net(arch, size, norm):
    """norm=none gives the convs a bias, so the bias latent zeta of each conv type is exercised too."""
    torch.manual_seed(0)
    kw = dict(in_channels=1, num_classes=5, image_size=size, width=0.25, norm=norm)
    plain = build(arch, **kw).eval()
    wrapped = build(arch, bayes="implicit", components=3, **kw)
    state = {}
    for name, value in wrapped.state_dict().items():
        src = name.replace(".layer.", ".")
        state[name] = plain.state_dict()[src] if src in plain.state_dict() else value
    wrapped.load_state_dict(state)
    _collapse(wrapped)
    wrapped.eval()
    x = torch.randn(6, size) if arch == "mlp" else torch.randn(6, 1, size, size)
    with torch.no_grad():
        assert torch.allclose(wrapped(x), plain(x), atol=1e-5)
    # and the bias latent zeta really scales the bias: mean 2 doubles it (linear layer, hand formula)
    lin = nn.Linear(4, 3)
    layer = ImplicitLayer(lin, 2)
    _collapse(nn.Sequential(layer), 2.0)
    v = torch.randn(5, 4)
    with torch.no_grad():
        assert torch.allclose(layer(v), 2 * v @ lin.weight.T + 2 * lin.bias, atol=1e-5)


def test_init_and_kl_gradients():
    torch.manual_seed(0)
    layer = ImplicitLayer(nn.Conv2d(64, 8, 3), 16)
    mu, sigma = layer.mu.detach(), layer.sigma().detach()
    assert mu.shape == (16, 65)
    # N(1, 0.5) means and |N(0.05, 0.02)| std over 1040 draws: 5-sigma bands
    assert abs(float(mu.mean()) - 1) < 5 * 0.5 / math.sqrt(mu.numel())
    assert abs(float(mu.std()) - 0.5) < 0.05
    assert abs(float(sigma.mean()) - 0.05) < 0.01 and float(sigma.min()) > 0
    kl = implicit_kl(nn.Sequential(layer))
    kl.backward()
    assert kl.ndim == 0 and layer.mu.grad is not None and layer.rho.grad is not None
    assert float(implicit_kl(nn.Linear(2, 2))) == 0.0


def test_samples_vary_and_train_eval_both_sample():
    torch.manual_seed(0)
    model = build("small-cnn", in_channels=1, num_classes=4, image_size=8, bayes="implicit", components=2).eval()
    x = torch.randn(1, 1, 8, 8).repeat(4, 1, 1, 1)
    with torch.no_grad():
        a, b = model(x), model(x)
    assert not torch.allclose(a, b)
    assert not torch.allclose(a[0], a[1])  # different draws within one pass
