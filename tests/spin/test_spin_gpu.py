"""GPU checks of `wise spin` (skipped without CUDA): CPU and GPU agree on 200 Heun steps (perturbed 1Q, α = 0.3,
float32) to 1e-5, and the compiled step agrees with the eager one to 1e-5."""

from __future__ import annotations

import pytest
import torch

from wisecli.engines.spin import algorithm as alg
from wisecli.engines.spin.bench import standin
from wisecli.engines.spin.model import Hamiltonian, Lattice
from wisecli.engines.spin.synthetic import add_noise, reference

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _setup(device, L=64):
    ham = Hamiltonian(Lattice(L, L, device=device, dtype=torch.float32), standin())
    S = add_noise(reference("1q", L, L)[None], 0.3, generator=torch.Generator().manual_seed(0))
    return ham, S.to(device, torch.float32)


@pytest.mark.gpu
@cuda
def test_cpu_and_gpu_agree_on_200_heun_steps():
    out = []
    for dev in ("cpu", "cuda"):
        ham, S = _setup(dev)
        out.append(alg.integrate(ham, S, dt=0.0005, alpha=0.3, steps=200).cpu())
    assert float((out[0] - out[1]).abs().max()) < 1e-5


@pytest.mark.gpu
@cuda
def test_compiled_step_agrees_with_eager():
    ham, S = _setup("cuda")
    eager = alg.integrate(ham, S, dt=0.0005, alpha=0.3, steps=200)
    step = torch.compile(lambda X, dt, a: alg.heun_step(ham, X, dt, a))
    comp = alg.integrate(ham, S, dt=0.0005, alpha=0.3, steps=200, step_fn=step)
    assert float((eager - comp).abs().max()) < 1e-5
