"""LAMBC/LAMB against the plain per-tensor loop (`optim/reference.py`) and the spec's invariants (§9)."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from wisecli.optim import LAMB, LAMBC, STAT_KEYS
from wisecli.optim.lambc import ResetOnEpoch
from wisecli.optim.reference import ReferenceLAMBC

SHAPES = [(16, 8), (16,), (4, 3, 3, 3), (4,), (10, 16), (3, 5)]
MODES = [
    {},
    {"clip": None},
    {"clip": 3.0, "weight_decay": 0.01},
    {"clip": 2.0, "clip_low": 0.5, "bias_correction": True},
    {"weight_decay": 0.1, "decoupled_decay": True, "exclude_1d": True},
    {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-4, "weight_decay": 0.02, "exclude_1d": True},
]


def _params(dtype=torch.float64, zero=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    ps = [torch.randn(s, generator=g, dtype=dtype) for s in SHAPES]
    if zero is not None:
        ps[zero].zero_()  # a zero-norm tensor: τ = min(1, c)
    return [p.requires_grad_() for p in ps]


def _run(opt_a, opt_b, a, b, steps, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        for pa, pb in zip(a, b):
            grad = torch.randn(pa.shape, generator=g, dtype=dtype)
            pa.grad, pb.grad = grad.clone(), grad.clone()
        opt_a.step()
        opt_b.step()


@pytest.mark.parametrize("mode", MODES, ids=lambda m: ",".join(f"{k}={v}" for k, v in m.items()) or "default")
def test_twenty_steps_equal_the_reference_loop(mode):
    # float64 on both sides: the two compute the same formulas, so 1e-6 (the spec's bar) holds with a wide
    # margin; bias correction uses a float32 step count on our side (~1e-7 relative).
    a, b = _params(), _params()
    _run(LAMBC(a, **mode), ReferenceLAMBC(b, **mode), a, b, 20)
    for pa, pb in zip(a, b):
        torch.testing.assert_close(pa, pb, rtol=0, atol=1e-6)


def test_twenty_steps_in_float32_match_the_reference():
    # float32: a few ulps of difference per step (foreach norm vs pow-sum-sqrt) on O(1) values
    a, b = _params(torch.float32), _params(torch.float32)
    _run(LAMBC(a), ReferenceLAMBC(b), a, b, 20, dtype=torch.float32)
    for pa, pb in zip(a, b):
        torch.testing.assert_close(pa, pb, rtol=0, atol=1e-5)


def test_trust_ratio_never_exceeds_the_clip_and_stats_are_device_scalars():
    ps = _params(torch.float32)
    opt = LAMBC(ps, clip=0.7)
    ref = ReferenceLAMBC(_params(torch.float32), clip=0.7)
    g = torch.Generator().manual_seed(3)
    for _ in range(5):
        for p, q in zip(ps, ref.param_groups[0]["params"]):
            p.grad = torch.randn(p.shape, generator=g)
            q.grad = p.grad.clone()
        stats = opt.step()
        taus = ref.step()
        assert set(stats) == set(STAT_KEYS)
        assert all(v.ndim == 0 and v.device == ps[0].device for v in stats.values())
        assert float(stats["lambc_tau_max"]) <= 0.7 + 1e-7
        assert max(taus) <= 0.7
        assert float(stats["lambc_tau_min"]) == pytest.approx(min(taus), rel=1e-5)
        # every tensor here has ‖p‖/‖u‖ > 0.7 at step 1 except the zero one (1 > 0.7 too): all clipped
    assert opt.last_stats is stats


@pytest.mark.parametrize("clip", [0.5, 2.0, None])
def test_a_zero_norm_tensor_gets_min_one_c(clip):
    p = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    p.grad = torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0], dtype=torch.float64)
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-6
    stats = LAMBC([p], lr=lr, clip=clip).step()
    g = p.grad
    u = (1 - b1) * g / (torch.sqrt((1 - b2) * g * g) + eps)       # first step from m = v = 0
    tau = min(1.0, clip) if clip is not None else 1.0
    torch.testing.assert_close(p.detach(), -lr * tau * u, rtol=1e-12, atol=1e-12)
    assert float(stats["lambc_tau_max"]) == tau
    assert float(stats["lambc_clipped"]) == (1.0 if clip is not None and clip < 1 else 0.0)


def test_lamb_is_lambc_with_an_infinite_clip():
    runs = []
    for make in (lambda ps: LAMB(ps), lambda ps: LAMBC(ps, clip=math.inf), lambda ps: LAMBC(ps, clip=None)):
        ps = _params(torch.float32, zero=None)
        opt = make(ps)
        g = torch.Generator().manual_seed(5)
        for _ in range(6):
            for p in ps:
                p.grad = torch.randn(p.shape, generator=g)
            opt.step()
        runs.append(ps)
    for a, b, c in zip(*runs):
        assert torch.equal(a, b) and torch.equal(a, c)
    with pytest.raises(ValueError):
        LAMB(_params(), clip=1.0)


def test_step_never_calls_item_or_converts_tensors_to_python(monkeypatch):
    ps = _params(torch.float32)
    opt = LAMBC(ps, weight_decay=0.01, clip_low=0.1, bias_correction=True, exclude_1d=True,
                lr=torch.tensor(0.01))
    for p in ps:
        p.grad = torch.randn_like(p)

    def boom(*_a, **_k):
        raise AssertionError("host sync in step()")

    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, boom)
    opt.step()
    opt.step()
    monkeypatch.undo()
    assert math.isfinite(float(opt.last_stats["lambc_tau_med"]))


def test_tensor_lr_equals_float_lr():
    a, b = _params(torch.float32), _params(torch.float32)
    _run(LAMBC(a, lr=0.02, weight_decay=0.01), LAMBC(b, lr=torch.tensor(0.02), weight_decay=0.01), a, b, 5,
         dtype=torch.float32)
    for pa, pb in zip(a, b):
        torch.testing.assert_close(pa, pb, rtol=0, atol=1e-7)


def test_reset_state_makes_the_next_step_a_fresh_optimizers_step():
    a = _params(torch.float32)
    opt = LAMBC(a, bias_correction=True)
    g = torch.Generator().manual_seed(2)
    for _ in range(3):
        for p in a:
            p.grad = torch.randn(p.shape, generator=g)
        opt.step()
    b = [p.detach().clone().requires_grad_() for p in a]
    fresh = LAMBC(b, bias_correction=True)
    opt.reset_state()
    for p, q in zip(a, b):
        p.grad = torch.randn(p.shape, generator=g)
        q.grad = p.grad.clone()
    opt.step()
    fresh.step()
    for p, q in zip(a, b):
        assert torch.equal(p, q)


def test_faithful_sampler_resets_at_set_epoch():
    ps = _params(torch.float32)
    opt = LAMBC(ps)
    for p in ps:
        p.grad = torch.ones_like(p)
    opt.step()
    sampler = ResetOnEpoch(torch.utils.data.SequentialSampler(range(5)), opt)
    assert list(sampler) == [0, 1, 2, 3, 4] and len(sampler) == 5
    assert any(float(s["exp_avg"].abs().sum()) > 0 for s in opt.state.values())
    sampler.set_epoch(1)
    assert all(float(s["exp_avg"].abs().sum()) == 0 and float(s["exp_avg_sq"].abs().sum()) == 0
               and float(s["step"]) == 0 for s in opt.state.values())
    # a sampler with its own set_epoch (DistributedSampler) still gets the call
    ds = torch.utils.data.DistributedSampler(range(8), num_replicas=2, rank=0, shuffle=True, seed=0)
    wrapped = ResetOnEpoch(ds, opt)
    wrapped.set_epoch(3)
    assert ds.epoch == 3


def test_state_dict_round_trip_resumes_exactly():
    a = _params(torch.float32)
    opt = LAMBC(a, bias_correction=True, weight_decay=0.01)
    g = torch.Generator().manual_seed(4)
    grads = [[torch.randn(p.shape, generator=g) for p in a] for _ in range(6)]
    for k in range(3):
        for p, gr in zip(a, grads[k]):
            p.grad = gr.clone()
        opt.step()
    saved_p = [p.detach().clone() for p in a]
    saved = copy.deepcopy(opt.state_dict())
    for k in range(3, 6):
        for p, gr in zip(a, grads[k]):
            p.grad = gr.clone()
        opt.step()
    b = [p.clone().requires_grad_() for p in saved_p]
    opt2 = LAMBC(b, bias_correction=True, weight_decay=0.01)
    opt2.load_state_dict(saved)
    for k in range(3, 6):
        for p, gr in zip(b, grads[k]):
            p.grad = gr.clone()
        opt2.step()
    for p, q in zip(a, b):
        assert torch.equal(p, q)


def test_bf16_parameters_step_with_fp32_norms():
    ps = [torch.randn(8, 8, dtype=torch.bfloat16, requires_grad=True), torch.randn(8, requires_grad=True)]
    ref = [p.detach().float().clone().requires_grad_() for p in ps]
    opt, ropt = LAMBC(ps), ReferenceLAMBC(ref)
    for p, q in zip(ps, ref):
        p.grad = torch.randn(p.shape).to(p.dtype)
        q.grad = p.grad.float()
    stats = opt.step()
    ropt.step()
    assert stats["lambc_tau_med"].dtype == torch.float32
    for p, q in zip(ps, ref):
        torch.testing.assert_close(p.float(), q, rtol=2e-2, atol=2e-2)  # bf16 has 8 bits of mantissa


def test_bad_arguments_are_value_errors():
    for kw in ({"clip": 0.0}, {"clip": -1}, {"clip_low": 2.0, "clip": 1.0}, {"betas": (1.0, 0.9)}, {"lr": -1.0},
               {"eps": -1.0}, {"weight_decay": -0.1}):
        with pytest.raises(ValueError):
            LAMBC(_params(), **kw)


def test_parameters_without_grad_are_skipped():
    ps = _params(torch.float32)
    before = [p.detach().clone() for p in ps]
    ps[0].grad = torch.randn_like(ps[0])
    stats = LAMBC(ps).step()
    assert not torch.equal(ps[0], before[0])
    assert all(torch.equal(p, q) for p, q in zip(ps[1:], before[1:]))
    assert torch.isfinite(stats["lambc_tau_med"])
    assert torch.isnan(LAMBC(_params(torch.float32)).step()["lambc_tau_med"])


def test_timm_lamb_parity():
    timm_optim = pytest.importorskip("timm.optim")
    a, b = _params(torch.float32, zero=None), _params(torch.float32, zero=None)
    ours = LAMBC(a, lr=0.01, clip=1.0)
    kw = dict(lr=0.01, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, trust_clip=True, always_adapt=True,
              max_grad_norm=None, bias_correction=False)
    peer = timm_optim.Lamb(b, **kw)
    _run(ours, peer, a, b, 20, dtype=torch.float32)
    for pa, pb in zip(a, b):
        torch.testing.assert_close(pa, pb, rtol=0, atol=1e-5)
