"""Jacobian sensitivity (spec §2.3, §2.4, §9) against explicit Jacobians (fp64)."""

import math

import pytest
import torch
from torch.func import grad, jacrev

from wisecli.engines.leakage import sensitivity as sens
from wisecli.engines.leakage.algorithm import params_of
from wisecli.nn.zoo import build

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _mlp():
    torch.manual_seed(0)
    return build("mlp", in_channels=1, num_classes=3, image_size=6, hidden=(5, 4)).double()


def _data(n=4):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 6, generator=g, dtype=torch.float64), torch.tensor([0, 1, 2, 1][:n])


def _explicit_jacobian(m, x, y, name):
    """d vec(grad_theta_l loss) / dx for one sample, by nested autograd (a plain reference)."""
    p = params_of(m)

    def g_of_x(xi):
        def loss(pp):
            return torch.nn.functional.cross_entropy(torch.func.functional_call(m, pp, (xi[None],)), y[None])

        return grad(loss)(p)[name].reshape(-1)

    return jacrev(g_of_x)(x)  # (|theta_l|, |x|)


def test_ones_vjp_is_zero_for_the_last_layer_while_the_jacobian_is_not():
    m = _mlp()
    x, y = _data()
    ones = sens.ones_vjp(m, params_of(m), x, y)
    fro = sens.exact_norms(m, params_of(m), x, y, method="jacrev")
    for name in ("head.weight", "head.bias"):
        f = fro[name].sqrt()
        assert float(f.max()) > 1e-3
        assert bool((ones[name] < 1e-6 * f.clamp_min(1e-3)).all()), (name, ones[name], f)
    assert float(ones["body.0.weight"].max()) > 1e-3  # the recipe is not zero everywhere


def test_exact_sweep_equals_jacrev_and_the_explicit_jacobian():
    m = _mlp()
    x, y = _data()
    a = sens.exact_norms(m, params_of(m), x, y, method="jacrev")
    b = sens.exact_norms(m, params_of(m), x, y, method="sweep", chunk=4)
    for n in a:
        assert torch.allclose(a[n], b[n], rtol=0, atol=1e-10), n  # fp64, the same sums in another order
    J = _explicit_jacobian(m, x[2], y[2], "body.2.weight")
    assert math.isclose(float((J ** 2).sum()), float(a["body.2.weight"][2]), rel_tol=1e-10)


def test_hutchinson_is_unbiased_within_three_standard_errors_and_shrinks_like_root_p():
    m = _mlp()
    x, y = _data()
    x, y = x[2:3], y[2:3]  # a sample whose first-layer ReLUs are not all dead
    exact = sens.exact_norms(m, params_of(m), x, y, method="jacrev")
    h = sens.hutchinson(m, params_of(m), x, y, 4096, generator=torch.Generator().manual_seed(0), chunk=1)
    # the per-probe values: redo with per-probe output to get the standard error
    J = _explicit_jacobian(m, x[0], y[0], "body.0.weight")
    v = torch.randn(4096, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    per = ((v @ J.T) ** 2).sum(1)
    se = float(per.std() / math.sqrt(len(per)))
    assert float(exact["body.0.weight"][0]) > 1e-3
    assert abs(float(h["fro2"]["body.0.weight"][0]) - float(exact["body.0.weight"][0])) < 3 * se
    # error of the mean over P probes: the RMS error over repeated draws scales as 1/sqrt(P)
    errs = {}
    for P in (16, 256):
        ests = per[: (4096 // P) * P].reshape(-1, P).mean(1)
        errs[P] = float(((ests - float(exact["body.0.weight"][0])) ** 2).mean().sqrt())
    assert 2.0 < errs[16] / errs[256] < 8.0  # sqrt(256 / 16) = 4


def test_attribute_directed_value_equals_the_explicit_product():
    m = _mlp()
    x, y = _data()
    s = torch.tensor([0, 1, 1, 0])
    u = sens.attribute_directions(x, s)
    assert u.shape == (1, 6) and math.isclose(float(u.norm()), 1.0, rel_tol=1e-12)
    h = sens.hutchinson(m, params_of(m), x, y, 2, generator=torch.Generator().manual_seed(0), u=u)
    for i in range(4):
        J = _explicit_jacobian(m, x[i], y[i], "head.weight")
        assert math.isclose(float(h["attr2"]["head.weight"][i]), float(((J @ u[0]) ** 2).sum()), rel_tol=1e-9, abs_tol=1e-15)


def test_latent_layer_reports_downstream_layers_only():
    torch.manual_seed(0)
    m = build("small-cnn", in_channels=1, num_classes=4, image_size=8, norm="none")
    x, y = torch.rand(3, 1, 8, 8), torch.tensor([0, 1, 2])
    assert sens.downstream_params(m, "fc1", x) == ["fc2.weight", "fc2.bias"]
    h = sens.hutchinson(m, params_of(m), x, y, 4, generator=torch.Generator().manual_seed(0), latent="fc1")
    assert set(h["fro2"]) == {"fc2.weight", "fc2.bias"}
    # for fc2 = W relu(h) + b, d(grad_b)/dh is (diag(p) - p p^T) W diag(relu'): exact value by jacrev matches
    ex = sens.exact_norms(m, params_of(m), x, y, method="jacrev", latent="fc1")
    assert set(ex) == {"fc2.weight", "fc2.bias"} and float(ex["fc2.bias"].min()) >= 0
