"""The optional, patented CWROM component (spec §2.4, §9 "CWROM" and the claim gate), at m = 4 on the 4 × 2 cantilever
lattice unless named:

- `sc` (exact static condensation) equals the full-order direct solve: compliance to 1e-10 on uniform:0.3 and
  1e-9 on ρ ~ U[0.05, 1] (`ROUND_OFF`: the FOM direct solve's own residual is 7.5e-11 there), energy-norm error
  ≤ 1e-9, sensitivities to 1e-8. With ρ → 0 (E = 1e-6) the condition number grows further and both solves move
  at ~1e-9 (measured 2e-9 at m = 8): that is the solvers' round-off, not the method.
- ROM: c_ROM ≤ c_FOM, e_c non-increasing in n_p, and 0 (1e-10) at n_p = 2(m − 1) = 6 — our port dimension: a port
  is a strut end face's m − 1 interior nodes, the joint corners are exact vertex unknowns (see
  `cwrom.condensation`); the spec's 2(m + 1) counted the corners, which faces share.
- ROM sensitivities = five-point finite differences of the ROM compliance (h = 1e-3, 1e-6 of max |∂c/∂ρ|).
- A library saved and reloaded (weights_only=True) gives bit-identical results; foreign libraries are refused.
- CLI: train → run/evaluate --solver cwrom and benchmark --cwrom print the notice on stderr (run.json and the
  benchmark document record it).
- Claim gate (slow): 4 × 2, m = 8, 200 samples per port type, uniform:0.3 + 5 random designs: e_c < 1 % and
  e_E < 1 % at n_p = 8; c_FOM(ρ*_ROM)/c_FOM(ρ*_FOM) ≤ 1.01.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from wisecli.cli.errors import InputError
from wisecli.engines.lattice import geometry, topopt
from wisecli.engines.lattice.cwrom import NOTICE, library, rom

M = 4


@pytest.fixture(scope="module")
def lib4():
    return library.build(m=M, pitch=1.0, joint_width=0.2, nu=0.3, modes=6, samples=200, rho_range=(0.05, 1.0), seed=0)


@pytest.fixture(scope="module")
def case():
    mesh = geometry.build_mesh(geometry.ground_structure(4, 2), M)
    rng = np.random.default_rng(3)
    designs = [np.full(mesh.n_vars, 0.3), rng.uniform(0.05, 1.0, mesh.n_vars)]
    fom = topopt.Problem(mesh, linear_solver="direct")
    ref = [fom.analyse(torch.from_numpy(r), warm=False) for r in designs]
    return mesh, designs, fom, ref


# compliance agreement of two exact solves: 1e-10 on uniform:0.3; on the random design the FOM's own direct solve
# leaves a relative residual of 7.5e-11 (measured; ours 2.9e-11) and the two compliances differ by 3.7e-10
ROUND_OFF = (1e-10, 1e-9)


def test_sc_equals_the_full_order_model(lib4, case):
    mesh, designs, fom, ref = case
    p = rom.RomProblem(mesh, lib4, None)
    for rho, a, tol in zip(designs, ref, ROUND_OFF):
        r = p.analyse(torch.from_numpy(rho))
        assert abs(r.compliance - a.compliance) / a.compliance < tol
        d = r.u - a.u
        K = fom.system.matrix(fom.system.assemble(fom.moduli(torch.from_numpy(rho))))
        assert float(torch.dot(d, K @ d) / torch.dot(a.u, fom.system.f)) ** 0.5 < 1e-9
        assert float((r.dc - a.dc).abs().max() / a.dc.abs().max()) < 1e-8


def test_rom_is_bounded_by_the_fom_monotone_and_exact_at_the_port_dimension(lib4, case):
    mesh, designs, _, ref = case
    for rho, a, tol in zip(designs, ref, ROUND_OFF):
        errs = []
        for n in range(3, 2 * (M - 1) + 1):
            c = rom.RomProblem(mesh, lib4, n).analyse(torch.from_numpy(rho)).compliance
            assert c <= a.compliance * (1 + tol)  # Galerkin on a conforming subspace: never stiffer than the FOM
            errs.append((a.compliance - c) / a.compliance)
        assert all(e2 <= e1 + 1e-12 for e1, e2 in zip(errs, errs[1:])), errs  # nested bases
        assert errs[0] > 1e-4 and abs(errs[-1]) < tol, errs  # the reduction does something; full n_p is exact


def test_rom_sensitivities_are_finite_differences_of_the_rom_compliance(lib4, case):
    mesh, designs, _, _ = case
    p = rom.RomProblem(mesh, lib4, 4)
    rho = torch.from_numpy(designs[1])
    dc = p.analyse(rho).dc
    # five-point stencil, h = 1e-3: truncation O(h⁴); the solves' round-off is ~1e-11 of c
    h = 1e-3
    for k in np.random.default_rng(0).choice(mesh.n_vars, 5, replace=False):
        def c_at(step):
            r = rho.clone()
            r[k] += step
            return p.analyse(r).compliance

        fd = (-c_at(2 * h) + 8 * c_at(h) - 8 * c_at(-h) + c_at(-2 * h)) / (12 * h)
        # relative to the gradient's scale: a strut with |∂c/∂ρ| ~ 1e-4·max sees the same absolute noise
        assert abs(fd - float(dc[k])) <= 1e-6 * float(dc.abs().max()), (k, fd, float(dc[k]))


def test_library_save_reload_is_identical_and_checked(lib4, case, tmp_path):
    mesh, designs, _, _ = case
    path = library.save(tmp_path / "lib.pt", lib4)
    doc = torch.load(path, weights_only=True)  # plain tensors and values only
    assert doc["method"] == "lattice" and doc["arch"] == library.ARCH
    again = library.load(path, m=M, width_ratio=0.2, nu=0.3, modes=6)
    for n in (None, 3, 5):
        a = rom.RomProblem(mesh, lib4, n).analyse(torch.from_numpy(designs[1]))
        b = rom.RomProblem(mesh, again, n).analyse(torch.from_numpy(designs[1]))
        assert a.compliance == b.compliance and torch.equal(a.dc, b.dc) and torch.equal(a.u, b.u)
    for kw, field in (({"m": 8}, "--mesh"), ({"width_ratio": 0.25}, "--joint-width"), ({"nu": 0.25}, "nu"),
                      ({"modes": 7}, "--modes")):
        with pytest.raises(InputError, match=field):
            library.load(path, **kw)


def _bad(wise, *args, match):
    code, out, err = wise(*args)
    assert code == 2 and out == "" and "Traceback" not in err, (code, out, err)
    errors = [ln for ln in err.splitlines() if ln.startswith("Error: ")]
    assert len(errors) == 1 and match in errors[0], err


def test_cli_train_and_run_cwrom_carry_the_notice(wise, tmp_path):
    lib = tmp_path / "rom"
    code, out, err = wise("lattice", "train", "--mesh", "3", "--samples", "30", "-o", str(lib), "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["modes"] == 4 and res["port_dim"] == 4 and "US11514210B2" in err
    assert {p.name for p in lib.iterdir()} == {"config.json", "metrics.jsonl", "checkpoints", "run.json"}
    assert json.loads((lib / "run.json").read_text())["patent_notice"] == NOTICE
    lines = [json.loads(ln) for ln in (lib / "metrics.jsonl").read_text().splitlines()]
    assert [ln["port_type"] for ln in lines[:2]] == ["x", "y"] and [ln["modes"] for ln in lines[2:]] == [3, 4]
    assert lines[-1]["heldout_rel_err_compliance"] < 1e-9  # n_p = 2(m − 1): exact
    best = str(lib / "checkpoints" / "best.pt")
    small = ["--nx", "2", "--ny", "1", "--mesh", "3", "--device", "cpu"]
    out_dir = tmp_path / "run"
    code, out, err = wise("lattice", "run", *small, "--solver", "cwrom", "--rom", best, "--max-iter", "3", "-o",
                          str(out_dir), "--json")
    assert code == 0, err
    assert "US11514210B2" in err and json.loads(out)["solver"] == "cwrom"
    run = json.loads((out_dir / "run.json").read_text())
    assert run["patent_notice"] == NOTICE and run["result"]["modes"] == 4
    code, out, err = wise("lattice", "evaluate", *small, "--solver", "cwrom", "--rom", best, "--designs",
                          "uniform:0.3", "--repeats", "1", "--json")
    assert code == 0 and "US11514210B2" in err, err
    recs = json.loads(out)
    assert [r["modes"] for r in recs] == [3, 4] and recs[-1]["rel_err_compliance"] < 1e-9
    code, out, err = wise("lattice", "evaluate", *small, "--solver", "cwrom", "--rom", best, "--designs",
                          "uniform:0.3", "--repeats", "1", "--modes", "4", "--compare-optimised", "--max-iter", "5",
                          "--json")
    assert code == 0, err
    opt = [r for r in json.loads(out) if r["design"] == "optimised"]
    assert len(opt) == 1 and abs(opt[0]["volume_rom"] - 0.3) < 1e-8 and abs(opt[0]["volume_fom"] - 0.3) < 1e-8
    assert abs(opt[0]["c_ratio"] - 1) < 1e-6  # n_p = 2(m − 1) is the FOM: same trajectory over 5 iterations
    code, out, err = wise("lattice", "benchmark", "--quick", "--cwrom", "--rom", best, "--max-dof", "1500",
                          "--repeats", "1", "--device", "cpu", "--json")
    assert code == 0 and "US11514210B2" in err, err
    doc = json.loads(out)
    row = doc["records"][-1]
    assert row["case"] == "cwrom lattice 4x2 m=3 n_p=4" and row["rel_diff_compliance"] < 1e-9  # n_p = 2(m − 1)
    assert doc["patent_notice"] == NOTICE
    # bad input against this library
    _bad(wise, "lattice", "run", *small[:4], "--mesh", "4", "--solver", "cwrom", "--rom", best, match="--mesh")
    _bad(wise, "lattice", "run", *small, "--solver", "sc", "--rom", best, "--design-joints", match="--design-joints")
    _bad(wise, "lattice", "run", *small, "--solver", "cwrom", "--rom", best, "--modes", "5", match="--modes")
    _bad(wise, "lattice", "train", "--mesh", "2", "-o", str(tmp_path / "t2"), match="--mesh")
    _bad(wise, "lattice", "evaluate", *small, "--compare-optimised", match="--solver cwrom")
    _bad(wise, "lattice", "benchmark", "--quick", "--rom", best, match="--cwrom")
    _bad(wise, "lattice", "train", "--rho-range", "0,1", "-o", str(tmp_path / "t3"), match="--rho-range")
    _bad(wise, "lattice", "train", "--mesh", "3", "--samples", "5", "-o", str(lib), match="not empty")
    assert not (tmp_path / "t2").exists() and not (tmp_path / "t3").exists()


@pytest.mark.slow
def test_claim_gate_m8(tmp_path):
    """§9 claim gate at its spec size. ρ*_FOM is optimised with `sc` — the full-order model's exact static
    condensation, equal to the direct FOM to ~1e-9 here (checked below on both optimised designs) — because the
    direct FOM loop costs ~25 CPU-s for the 200 iterations (measured on this machine), over the test budget."""
    lib = library.build(m=8, pitch=1.0, joint_width=0.2, nu=0.3, modes=8, samples=200, rho_range=(0.05, 1.0), seed=0)
    mesh = geometry.build_mesh(geometry.ground_structure(4, 2), 8)
    rng = np.random.default_rng(0)
    designs = [("uniform:0.3", np.full(mesh.n_vars, 0.3))] + [(f"random#{k}", rng.random(mesh.n_vars))
                                                              for k in range(5)]
    recs = rom.evaluate(mesh=mesh, library=lib, designs=designs, modes=[8], device="cpu", linear_solver="direct",
                        repeats=1)
    worst = {k: max(r[k] for r in recs) for k in ("rel_err_compliance", "rel_err_energy")}
    assert worst["rel_err_compliance"] < 0.01 and worst["rel_err_energy"] < 0.01, worst  # measured 8e-6, 3e-3
    fom = topopt.Problem(mesh, linear_solver="direct")
    start = topopt.uniform(mesh.n_vars, 0.3)
    rho_rom, _, _ = topopt.optimise(rom.RomProblem(mesh, lib, 8), start, volume=0.3)
    rho_ref, _, _ = topopt.optimise(rom.RomProblem(mesh, lib, None), start, volume=0.3)
    c_rom, c_ref = fom.analyse(rho_rom, warm=False).compliance, fom.analyse(rho_ref, warm=False).compliance
    c_ref_sc = rom.RomProblem(mesh, lib, None).analyse(rho_ref).compliance
    assert abs(c_ref_sc - c_ref) / c_ref < 1e-8  # the reference optimum is the full-order model's
    assert c_rom / c_ref <= 1.01, (c_rom, c_ref)  # measured 0.99995


def test_cpu_sparse_reduced_solve_equals_the_dense_one(lib4, case, monkeypatch):
    mesh, designs, _, _ = case
    rho = torch.from_numpy(designs[1])
    dense = rom.RomProblem(mesh, lib4, 4).analyse(rho)
    monkeypatch.setattr(rom, "CPU_DENSE_MAX", 0)
    p = rom.RomProblem(mesh, lib4, 4)
    sparse = p.analyse(rho)
    assert "sparse LU" in sparse.info.solver and "dense" in dense.info.solver
    assert abs(sparse.compliance - dense.compliance) / dense.compliance < 1e-10  # two exact solves, round-off
    assert float((sparse.dc - dense.dc).abs().max() / dense.dc.abs().max()) < 1e-9


def test_pcg_reduced_solve_equals_the_dense_one(lib4, case, monkeypatch):
    """The path above `DENSE_MAX` unknowns on a GPU (Jacobi PCG, ‖r‖ ≤ 1e-10‖b‖), forced here on the CPU."""
    mesh, designs, _, _ = case
    rho = torch.from_numpy(designs[1])
    dense = rom.RomProblem(mesh, lib4, 4).analyse(rho)
    monkeypatch.setattr(rom, "CPU_DENSE_MAX", 10**9)
    monkeypatch.setattr(rom, "DENSE_MAX", 0)
    it = rom.RomProblem(mesh, lib4, 4).analyse(rho)
    assert "pcg" in it.info.solver and it.info.iters > 0
    assert abs(it.compliance - dense.compliance) / dense.compliance < 1e-9  # quadratic in the 1e-10 residual
    assert float((it.dc - dense.dc).abs().max() / dense.dc.abs().max()) < 1e-6


def test_demo_quick_cwrom_adds_the_rom_table_and_the_notice(wise):
    code, out, err = wise("lattice", "demo", "--quick", "--cwrom", "--device", "cpu", "--json")
    assert code == 0 and "US11514210B2" in err, err
    doc = json.loads(out)
    assert doc["ok"] is True and doc["patent_notice"] == NOTICE
    rows = doc["cwrom_rows"]
    assert [r["modes"] for r in rows[:3]] == [3, 4, 6] and len(rows) == 12
    assert max(r["rel_err_compliance"] for r in rows if r["modes"] == 6) < 1e-9  # n_p = 2(m − 1): exact
    assert max(r["rel_err_compliance"] for r in rows if r["modes"] == 4) < 0.01
