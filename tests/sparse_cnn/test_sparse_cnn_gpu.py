"""GPU checks (spec §9): gather = masked on CUDA (fp32 1e-5, bf16 1e-2), CPU and GPU logits agree (1e-4), and
the benchmark's gpu preset runs. Skipped without CUDA."""

from __future__ import annotations

import pytest
import torch

from wisecli.engines.sparse_cnn.model import SparseResNet18
from wisecli.engines.sparse_cnn.sr import SRResNet

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.mark.parametrize("rho", [0.1, 0.5, 1.0])
def test_gather_equals_masked_on_cuda(rho):
    torch.manual_seed(0)
    net = SparseResNet18(3, 10, 32, width=0.5).cuda().eval()
    x = torch.randn(8, 3, 40, 56, device="cuda")
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    with torch.no_grad():
        a, b = net(x, rho, exec_="masked"), net(x, rho, exec_="gather")
        assert (a - b).abs().max() < 1e-5
        with torch.autocast("cuda", dtype=torch.bfloat16):
            a16, b16 = net(x, rho, exec_="masked"), net(x, rho, exec_="gather")
        assert (a16.float() - b16.float()).abs().max() < 1e-2 * max(1.0, float(a.abs().max()))
    sr = SRResNet(2, 16, 2).random_tail().cuda().eval()
    lr = torch.rand(2, 3, 37, 45, device="cuda")
    with torch.no_grad():
        assert (sr(lr, rho, exec_="masked") - sr(lr, rho, exec_="gather")).abs().max() < 1e-5


def test_cpu_and_gpu_logits_agree():
    torch.manual_seed(0)
    net = SparseResNet18(3, 10, 32, width=0.25).eval()
    x = torch.randn(4, 3, 32, 32)
    torch.backends.cudnn.allow_tf32 = False
    with torch.no_grad():
        cpu = net(x, 0.3, exec_="masked")
        gpu = net.cuda()(x.cuda(), 0.3, exec_="gather").cpu()
    assert (cpu - gpu).abs().max() < 1e-4


def test_benchmark_gpu_preset_runs():
    from wisecli.engines.sparse_cnn import api

    recs = api.benchmark(device="cuda", case="layers")
    assert recs and all(r.extra["max_err_vs_masked"] < 5e-2 for r in recs)
    assert "break_even" in recs.summary
