"""LARS against a plain per-tensor loop written here (You et al. 2017, Algorithm 1), and `build_optimizer`."""

from __future__ import annotations

import pytest
import torch

from wisecli.cli.errors import InputError
from wisecli.optim import LAMB, LAMBC, LARS, OPTIMIZERS, build_optimizer

SHAPES = [(6, 5), (6,), (2, 3, 3, 3), (2,)]


def _plain_lars(params, grads_per_step, lr, momentum, wd, eta, exclude_1d):
    """The paper's rule, one tensor at a time, with PyTorch SGD's placement of the lr."""
    bufs = [torch.zeros_like(p) for p in params]
    for grads in grads_per_step:
        for p, g, b in zip(params, grads, bufs):
            if exclude_1d and p.ndim <= 1:
                d = g
            else:
                wn, gn = p.norm().item(), g.norm().item()
                trust = eta * wn / (gn + wd * wn) if wn > 0 and gn > 0 else 1.0
                d = (g + wd * p) * trust
            b.mul_(momentum).add_(d)
            p.sub_(lr * b)
    return params


@pytest.mark.parametrize("exclude_1d", [True, False])
def test_lars_equals_the_plain_rule(exclude_1d):
    g = torch.Generator().manual_seed(0)
    init = [torch.randn(s, generator=g, dtype=torch.float64) for s in SHAPES]
    init[3].zero_()
    grads = [[torch.randn(s, generator=g, dtype=torch.float64) for s in SHAPES] for _ in range(10)]
    ours = [p.clone().requires_grad_() for p in init]
    opt = LARS(ours, lr=2.0, momentum=0.9, weight_decay=5e-4, eta=0.001, exclude_1d=exclude_1d)
    for step in grads:
        for p, gr in zip(ours, step):
            p.grad = gr.clone()
        stats = opt.step()
    ref = _plain_lars([p.clone() for p in init], grads, 2.0, 0.9, 5e-4, 0.001, exclude_1d)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a.detach(), b, rtol=0, atol=1e-10)  # float64, same formulas
    assert set(stats) == {"lars_trust_min", "lars_trust_med", "lars_trust_max"}


def test_build_optimizer_names_and_defaults():
    assert OPTIMIZERS == ("sgd", "adamw", "lars", "lamb", "lambc")
    ps = [torch.nn.Parameter(torch.randn(3, 3))]
    sgd = build_optimizer("sgd", ps, lr=0.05)
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.defaults["momentum"] == 0.9 and sgd.defaults["weight_decay"] == 5e-4
    assert isinstance(build_optimizer("adamw", ps, lr=1e-3), torch.optim.AdamW)
    lars = build_optimizer("lars", ps, lr=0.1)
    assert isinstance(lars, LARS) and lars.defaults["eta"] == 0.001 and lars.defaults["weight_decay"] == 5e-4
    lamb = build_optimizer("lamb", ps, lr=0.01)
    assert isinstance(lamb, LAMB) and lamb.defaults["clip"] is None and lamb.defaults["weight_decay"] == 0.0
    lambc = build_optimizer("lambc", ps, lr=0.01, clip="3", exclude_1d="true", betas="0.9,0.99")
    assert isinstance(lambc, LAMBC)
    assert lambc.defaults["clip"] == 3.0 and lambc.defaults["exclude_1d"] is True
    assert lambc.defaults["betas"] == (0.9, 0.99)
    assert build_optimizer("lambc", ps, lr=0.01, clip="none").defaults["clip"] is None
    assert build_optimizer("lambc", ps, lr=0.01).defaults["clip"] == 1.0
    assert build_optimizer("sgd", ps, lr=0.1, weight_decay=0.0).defaults["weight_decay"] == 0.0
    groups = [{"params": ps, "weight_decay": 0.0}]
    assert build_optimizer("lambc", groups, lr=0.01).param_groups[0]["weight_decay"] == 0.0


@pytest.mark.parametrize("name, kw, words", [
    ("adam", {}, "did you mean 'adamw'"),
    ("lambc", {"clipp": 1.0}, "did you mean 'clip'"),
    ("lamb", {"clip": 1.0}, "no option 'clip'"),
    ("lambc", {"clip": -1}, "positive"),
    ("lambc", {"clip": "big"}, "not a number"),
    ("lambc", {"clip_low": 5.0, "clip": 1.0}, "clip_low"),
    ("sgd", {"momentum": 1.5}, "[0, 1)"),
    ("sgd", {"nesterov": "maybe"}, "true/false"),
    ("adamw", {"betas": "0.9"}, "two numbers"),
    ("lars", {"eta": 0}, "positive"),
])
def test_build_optimizer_refuses_bad_names_and_options(name, kw, words):
    with pytest.raises(InputError) as err:
        build_optimizer(name, [torch.nn.Parameter(torch.randn(2))], lr=0.01, **kw)
    assert words in err.value.message + " " + (err.value.hint or "")


@pytest.mark.parametrize("lr, wd", [(0, None), (-1, None), ("x", None), (0.1, -1.0), (0.1, "x")])
def test_build_optimizer_refuses_bad_lr_and_weight_decay(lr, wd):
    with pytest.raises(InputError):
        build_optimizer("sgd", [torch.nn.Parameter(torch.randn(2))], lr=lr, weight_decay=wd)
    with pytest.raises(InputError):
        build_optimizer("lambc", [], lr=0.1)
