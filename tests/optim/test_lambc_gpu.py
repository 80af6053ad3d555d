"""LAMBC on CUDA (spec §9 GPU): CPU and CUDA steps agree to 1e-5 in fp32; a CUDA step never syncs with the
host (`set_sync_debug_mode("error")`), with a tensor lr too; the compiled step equals the eager one."""

from __future__ import annotations

import pytest
import torch

from wisecli.optim import LAMBC, LARS

pytestmark = pytest.mark.gpu

SHAPES = [(64, 32), (64,), (16, 8, 3, 3), (16,), (10, 64)]


def _pair(device, seed=0):
    g = torch.Generator().manual_seed(seed)
    ps = [torch.randn(s, generator=g) for s in SHAPES]
    ps[3].zero_()
    return [p.to(device).requires_grad_() for p in ps]


def _grads(steps, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(s, generator=g) for s in SHAPES] for _ in range(steps)]


@pytest.mark.parametrize("kw", [{}, {"weight_decay": 0.01, "bias_correction": True, "clip_low": 0.05}])
def test_cpu_and_cuda_steps_agree(kw):
    cpu, gpu = _pair("cpu"), _pair("cuda")
    oc, og = LAMBC(cpu, **kw), LAMBC(gpu, **kw)
    for step in _grads(20):
        for a, b, g in zip(cpu, gpu, step):
            a.grad, b.grad = g.clone(), g.to("cuda")
        oc.step()
        og.step()
    for a, b in zip(cpu, gpu):
        torch.testing.assert_close(b.detach().cpu(), a.detach(), rtol=0, atol=1e-5)


def test_a_cuda_step_does_not_sync():
    ps = _pair("cuda")
    opt = LAMBC(ps, lr=torch.tensor(0.01, device="cuda"), weight_decay=0.01, exclude_1d=True,
                bias_correction=True)
    lars = LARS([p.detach().clone().requires_grad_() for p in ps])
    for p in ps + lars.param_groups[0]["params"]:
        p.grad = torch.randn_like(p)
    opt.step()  # first step allocates state
    lars.step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        stats = opt.step()
        lars.step()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert all(v.device.type == "cuda" for v in stats.values())


def test_compiled_step_equals_eager():
    a, b = _pair("cuda"), _pair("cuda")
    oa, ob = LAMBC(a), LAMBC(b, compile_step=True)
    for step in _grads(5):
        for p, q, g in zip(a, b, step):
            p.grad, q.grad = g.to("cuda"), g.to("cuda")
        oa.step()
        ob.step()
    for p, q in zip(a, b):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6)
