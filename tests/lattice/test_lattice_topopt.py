"""The optimiser: the OC bisection meets the volume, the demo lattice's compliance history falls and ends near a
400-iteration reference run, resume continues the same trajectory, and the lattice geometry is what the spec says."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from wisecli.engines.lattice import api, geometry, topopt


def test_oc_meets_the_volume_to_1e8():
    rng = np.random.default_rng(0)
    for n in (7, 50, 400):
        rho = torch.from_numpy(rng.uniform(0.05, 0.55, n))  # a design near the volume, as in the loop
        dc = torch.from_numpy(-rng.lognormal(0.0, 2.0, n))
        dv = torch.from_numpy(rng.uniform(0.5, 2.0, n))
        target = 0.3 * float(dv.sum())
        assert float(dv @ torch.clamp(rho - 0.2, min=0)) < target < float(dv @ torch.clamp(rho + 0.2, max=1))
        new = topopt.oc_update(rho, dc, dv, target)
        assert abs(float(dv @ new) - target) <= 1e-8 * target
        assert float(dv @ new) <= target * (1 + 1e-14)
        # move limit and box
        assert float((new - rho).abs().max()) <= 0.2 + 1e-15
        assert float(new.min()) >= 0 and float(new.max()) <= 1


def test_oc_step_is_the_top88_formula_at_its_multiplier():
    """A plain top88 bisection (to a 1e-14 bracket) gives the same design as ours."""
    rng = np.random.default_rng(1)
    x = rng.uniform(0.1, 0.9, 30)
    dc = -rng.lognormal(0, 1, 30)
    dv = np.ones(30)
    l1, l2 = 0.0, 1e9
    while (l2 - l1) / (l1 + l2) > 1e-14:
        lmid = 0.5 * (l2 + l1)
        xnew = np.maximum(0, np.maximum(x - 0.2, np.minimum(1, np.minimum(x + 0.2, x * np.sqrt(-dc / dv / lmid)))))
        if xnew.sum() > 0.4 * 30:
            l1 = lmid
        else:
            l2 = lmid
    ours = topopt.oc_update(torch.from_numpy(x), torch.from_numpy(dc), torch.from_numpy(dv), 0.4 * 30).numpy()
    np.testing.assert_allclose(ours, xnew, atol=1e-9)


def test_lattice_mesh_counts_and_volumes():
    m = 4
    mesh = geometry.build_mesh(geometry.ground_structure(3, 2), m)
    L = 16  # (h − w)/(w/m) = 0.8/0.05
    n_joints, n_struts = 4 * 3, 3 * 3 + 4 * 2
    assert mesh.meta["n_joints"] == n_joints and mesh.meta["n_struts"] == n_struts == mesh.n_vars
    assert mesh.n_el == n_joints * m * m + n_struts * L * m
    # conforming: a strut shares its m + 1 end nodes with each joint face, so nodes = Σ component nodes − shared
    nodes = n_joints * (m + 1) ** 2 + n_struts * (L + 1) * (m + 1) - 2 * n_struts * (m + 1)
    assert mesh.coords.shape[0] == nodes
    np.testing.assert_allclose(mesh.var_volume, 0.8 * 0.2)  # every strut is (h − w) × w
    assert mesh.fixed.sum() == 2 * 3 * (m + 1)  # left faces of the 3 left-column joints, x and y
    np.testing.assert_allclose(mesh.f.reshape(-1, 2).sum(axis=0), [0.0, -1.0], atol=1e-15)


def test_non_integer_strut_length_is_refused():
    from wisecli.cli.errors import InputError

    with pytest.raises(InputError, match="elements long"):
        geometry.check_mesh(1.0, 0.3, 4)


def _optimise(nx, ny, m, iters, tol):
    mesh = geometry.build_mesh(geometry.ground_structure(nx, ny), m)
    prob = topopt.Problem(mesh, linear_solver="direct")
    return topopt.optimise(prob, topopt.uniform(mesh.n_vars, 0.3), volume=0.3, max_iter=iters, tol=tol)


@pytest.mark.slow
def test_demo_lattice_history_and_400_iteration_reference():
    """The quick demo's lattice (4 × 2) at m = 2 (m = 4 takes ~20 s of CPU for 400 iterations, over the budget on a
    shared 2-core machine): one 400-iteration run; the default stop rule (max|Δρ| < 0.01 or 200
    iterations) picks a point on the same deterministic trajectory, which must be within 1 % of iteration 400.

    Finding: OC without a filter oscillates with period 2 late in the run, so the history is non-increasing only
    up to a relative rise of ~2.5e-5 (measured: 2.5e-5 at m = 4, 4.3e-5 at m = 2); we assert rises ≤ 1e-4 of c after iteration 5, not exact
    monotonicity."""
    rho, _, hist = _optimise(4, 2, 2, 400, 0.0)
    cs = np.array([h["compliance"] for h in hist])
    assert len(cs) == 400
    rises = (cs[6:] - cs[5:-1]) / cs[5:-1]
    assert rises.max() <= 1e-4
    assert cs[-1] < 0.5 * cs[0]
    stop = next((i for i, h in enumerate(hist) if h["max_change"] < 0.01), 199)
    stop = min(stop, 199)
    assert abs(cs[stop] - cs[-1]) / cs[-1] <= 0.01
    assert all(abs(h["volume"] - 0.3) < 1e-8 for h in hist[1:])


def test_resume_continues_the_same_trajectory(tmp_path):
    kw = dict(nx=2, ny=1, mesh=2, device="cpu", linear_solver="direct", tol=0.0)
    straight = api.run(max_iter=12, out_dir=tmp_path / "a", **kw)
    api.run(max_iter=10, out_dir=tmp_path / "b", **kw)
    resumed = api.run(max_iter=12, out_dir=tmp_path / "b", resume=True, **kw)
    assert resumed["iterations"] == 12
    a = np.load(tmp_path / "a" / "design.npz")["rho"]
    b = np.load(tmp_path / "b" / "design.npz")["rho"]
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert abs(straight["compliance"] - resumed["compliance"]) <= 1e-9 * straight["compliance"]
    lines = [json.loads(x) for x in (tmp_path / "b" / "history.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in lines] == list(range(1, 13))
    assert set(lines[0]) == {"iter", "compliance", "volume", "max_change", "solve_s", "pcg_iters", "rel_residual"}


def test_analyse_only_writes_displacements(tmp_path):
    res = api.run(nx=2, ny=1, mesh=2, device="cpu", analyse_only=True, design="uniform:0.5", out_dir=tmp_path / "o")
    z = np.load(tmp_path / "o" / "u.npz")
    assert z["u"].shape == z["coords"].shape
    assert abs(float(z["compliance"]) - res["compliance"]) < 1e-12 * res["compliance"]
    d = np.load(tmp_path / "o" / "design.npz")
    assert d["strut_ends"].shape == (d["rho"].size, 2, 2) and res["iterations"] == 0
    assert {"run.json", "design.png", "u.npz", "design.npz"} <= {p.name for p in (tmp_path / "o").iterdir()}


def test_design_joints_adds_variables():
    mesh = geometry.build_mesh(geometry.ground_structure(2, 1), 2, design_joints=True)
    assert mesh.n_vars == mesh.meta["n_struts"] + mesh.meta["n_joints"]
    assert np.all(mesh.var >= 0)


def _parse_vtk(text: str) -> dict:
    """A plain reader of the legacy-ASCII unstructured grid we write (no VTK library in the environment)."""
    lines = text.splitlines()
    assert lines[0].startswith("# vtk DataFile") and lines[2] == "ASCII" and lines[3] == "DATASET UNSTRUCTURED_GRID"
    out, i = {}, 4
    while i < len(lines):
        head = lines[i].split()
        if head[0] == "POINTS":
            n = int(head[1])
            out["points"] = np.array([[float(v) for v in ln.split()] for ln in lines[i + 1:i + 1 + n]])
            i += 1 + n
        elif head[0] == "CELLS":
            n = int(head[1])
            out["cells"] = np.array([[int(v) for v in ln.split()] for ln in lines[i + 1:i + 1 + n]])
            i += 1 + n
        elif head[0] == "CELL_TYPES":
            n = int(head[1])
            out["types"] = np.array([int(v) for v in lines[i + 1:i + 1 + n]])
            i += 1 + n
        elif head[0] in ("CELL_DATA", "POINT_DATA"):
            out[head[0]] = int(head[1])
            i += 1
        elif head[0] == "SCALARS":
            n = out["CELL_DATA"]
            out[head[1]] = np.array([float(v) for v in lines[i + 2:i + 2 + n]])
            i += 2 + n
        elif head[0] == "VECTORS":
            n = out["POINT_DATA"]
            out[head[1]] = np.array([[float(v) for v in ln.split()] for ln in lines[i + 1:i + 1 + n]])
            i += 1 + n
        else:
            raise AssertionError(f"unexpected line {lines[i]!r}")
    return out


def test_vtk_and_json_outputs(tmp_path):
    res = api.run(nx=2, ny=1, mesh=2, device="cpu", analyse_only=True, design="uniform:0.4", out_dir=tmp_path / "o")
    vtk = _parse_vtk((tmp_path / "o" / "design.vtk").read_text())
    u = np.load(tmp_path / "o" / "u.npz")
    mesh = geometry.build_mesh(geometry.ground_structure(2, 1), 2)
    np.testing.assert_allclose(vtk["points"][:, :2], mesh.coords)
    assert np.all(vtk["cells"][:, 0] == 4) and np.all(vtk["types"] == 9)
    np.testing.assert_array_equal(vtk["cells"][:, 1:], mesh.edof[:, 0::2] // 2)
    # VTK_QUAD wants the corners in order around the cell: every quad has a positive signed area
    p = vtk["points"][vtk["cells"][:, 1:], :2]
    area = 0.5 * np.sum(p[:, :, 0] * np.roll(p[:, :, 1], -1, axis=1) - np.roll(p[:, :, 0], -1, axis=1) * p[:, :, 1], axis=1)
    np.testing.assert_allclose(area, mesh.element_size ** 2)
    np.testing.assert_allclose(vtk["density"], np.where(mesh.var >= 0, 0.4, 1.0))
    np.testing.assert_allclose(vtk["displacement"][:, :2], u["u"], rtol=1e-9, atol=1e-12 * np.abs(u["u"]).max())
    doc = json.loads((tmp_path / "o" / "design.json").read_text())
    assert len(doc["rho"]) == len(doc["struts"]) == len(doc["strut_ends"]) == 7
    assert doc["compliance"] == pytest.approx(res["compliance"], rel=1e-12)


def test_fixed_struts_are_solid_and_not_variables():
    doc = geometry.ground_structure(2, 1)
    doc["fixed"] = [0, 3]
    mesh = geometry.build_mesh(doc, 2)
    assert mesh.n_vars == len(doc["struts"]) - 2
    assert set(mesh.design_struts.tolist()) == set(range(len(doc["struts"]))) - {0, 3}
    # a fixed strut's elements are solid: the lattice with those two struts fixed equals the free lattice
    # with ρ = 1 on them
    free = geometry.build_mesh(geometry.ground_structure(2, 1), 2)
    rho_free = np.full(free.n_vars, 0.3)
    rho_free[[0, 3]] = 1.0
    c_fixed = topopt.Problem(mesh, linear_solver="direct").analyse(topopt.uniform(mesh.n_vars, 0.3)).compliance
    c_free = topopt.Problem(free, linear_solver="direct").analyse(torch.from_numpy(rho_free)).compliance
    assert abs(c_fixed - c_free) <= 1e-10 * c_free


def test_evaluate_reads_a_design_file(tmp_path):
    api.run(nx=2, ny=1, mesh=2, device="cpu", max_iter=3, out_dir=tmp_path / "o")
    recs = api.evaluate(nx=2, ny=1, mesh=2, designs=str(tmp_path / "o" / "design.npz"), repeats=1, device="cpu")
    d = np.load(tmp_path / "o" / "design.npz")
    assert len(recs) == 1 and recs[0]["rel_err_compliance"] < 1e-8
    c = topopt.Problem(geometry.build_mesh(geometry.ground_structure(2, 1), 2), linear_solver="direct").analyse(
        torch.from_numpy(d["rho"])).compliance
    assert abs(recs[0]["compliance"] - c) <= 1e-8 * c
