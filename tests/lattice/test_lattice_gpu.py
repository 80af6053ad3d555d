"""GPU: the CUDA PCG equals the CPU direct solve (compliance to 1e-10) on the demo lattice and a 300 × 100 top88
grid, and a short optimisation on CUDA follows the CPU one (skipped without CUDA). The benchmark's targets are
checked by `.ci/gpu-check` (`wise benchmark --only lattice --device cuda`), not here."""

from __future__ import annotations

import pytest
import torch

from wisecli.engines.lattice import geometry, topopt

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.mark.parametrize("case", ["demo-lattice", "top88-300x100"])
def test_cuda_pcg_equals_cpu_direct(case):
    if case == "demo-lattice":
        mesh = geometry.build_mesh(geometry.ground_structure(8, 4), 4)
        rho = torch.rand(mesh.n_vars, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.9 + 0.1
    else:
        mesh = geometry.cantilever_top88(300, 100)
        rho = topopt.uniform(mesh.n_vars, 0.5)
    cpu = topopt.Problem(mesh, device="cpu", linear_solver="direct").analyse(rho)
    gpu = topopt.Problem(mesh, device="cuda", linear_solver="pcg").analyse(rho)
    assert gpu.u.device.type == "cuda" and gpu.info.iters > 0
    # PCG stops at ||r|| <= 1e-8 ||f||; the compliance error is quadratic in the energy-norm error (spec: 1e-10)
    assert abs(gpu.compliance - cpu.compliance) / cpu.compliance < 1e-10
    assert float((gpu.dc.cpu() - cpu.dc).norm() / cpu.dc.norm()) < 1e-5


def test_cuda_optimisation_matches_cpu():
    mesh = geometry.build_mesh(geometry.ground_structure(4, 2), 4)
    runs = []
    for dev, solver in (("cpu", "direct"), ("cuda", "pcg")):
        prob = topopt.Problem(mesh, device=dev, linear_solver=solver)
        rho, _, hist = topopt.optimise(prob, topopt.uniform(mesh.n_vars, 0.3), volume=0.3, max_iter=20)
        runs.append((rho.cpu(), hist[-1]["compliance"]))
    assert torch.allclose(runs[0][0], runs[1][0], atol=1e-5)
    assert abs(runs[0][1] - runs[1][1]) / runs[0][1] < 1e-7


def test_cuda_rom_equals_cpu_rom():
    """The optional CWROM on CUDA (dense Cholesky) equals the CPU one."""
    from wisecli.engines.lattice.cwrom import library, rom

    lib = library.build(m=4, pitch=1.0, joint_width=0.2, nu=0.3, modes=6, samples=50, rho_range=(0.05, 1.0), seed=0)
    mesh = geometry.build_mesh(geometry.ground_structure(4, 2), 4)
    rho = torch.rand(mesh.n_vars, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.9 + 0.1
    cpu = rom.RomProblem(mesh, lib, 4, device="cpu").analyse(rho)
    gpu = rom.RomProblem(mesh, lib, 4, device="cuda").analyse(rho)
    assert gpu.u.device.type == "cuda" and "dense" in gpu.info.solver
    assert abs(gpu.compliance - cpu.compliance) / cpu.compliance < 1e-10
    assert float((gpu.dc.cpu() - cpu.dc).abs().max() / cpu.dc.abs().max()) < 1e-9
    assert float((gpu.u.cpu() - cpu.u).norm() / cpu.u.norm()) < 1e-9
