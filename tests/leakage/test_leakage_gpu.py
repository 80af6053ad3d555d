"""GPU agreement (spec §9): per-sample gradients and Hutchinson values on CUDA equal the CPU ones (fp32)."""

import pytest
import torch

from wisecli.engines.leakage import algorithm as alg
from wisecli.engines.leakage import sensitivity as sens
from wisecli.nn.zoo import build

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _setup():
    torch.manual_seed(0)
    m = build("cnn-32", in_channels=3, num_classes=10, image_size=32, width=0.5, norm="none")
    x, y = torch.rand(32, 3, 32, 32), torch.randint(0, 10, (32,))
    return m, x, y


def test_per_sample_grads_agree_on_gpu():
    m, x, y = _setup()
    cpu = alg.per_sample_grads(m, alg.params_of(m), x, y)
    mg = m.cuda()
    gpu = alg.per_sample_grads(mg, alg.params_of(mg), x.cuda(), y.cuda())
    torch.backends.cuda.matmul.allow_tf32 = False
    for k in cpu:
        assert torch.allclose(cpu[k], gpu[k].cpu(), atol=1e-5, rtol=1e-4), k


def test_hutchinson_agrees_on_gpu():
    m, x, y = _setup()
    x, y = x[:8], y[:8]
    a = sens.hutchinson(m, alg.params_of(m), x, y, 4, generator=torch.Generator().manual_seed(0))
    mg = m.cuda()
    b = sens.hutchinson(mg, alg.params_of(mg), x.cuda(), y.cuda(), 4, generator=torch.Generator().manual_seed(0))
    for k in a["fro2"]:
        assert torch.allclose(a["fro2"][k], b["fro2"][k].cpu(), rtol=1e-4, atol=1e-5), k


def test_benchmark_runs_on_gpu():
    from wisecli.engines.leakage import api

    recs = api.benchmark(device="cuda", quick=True)
    assert any(r.case == "per-sample-grads" for r in recs)
