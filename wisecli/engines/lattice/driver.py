"""What the verbs do with files and records (no CWROM code): build the lattice, run or analyse it, write the run
folder (design.npz, history.jsonl, design.png, u.npz, run.json), resume, and evaluate solvers.

Run folder rules ([reconstructed] where the spec is silent): besides the spec's files, `design.json` (ρ per strut
with its end points, as the issue asks) and `design.vtk` (legacy VTK for ParaView: Q4 cells with ρ, nodal
displacements) are written at the end; without `-o` nothing is written (the numbers go to
stdout; `--plot` still writes its PNG); `history.jsonl` is appended and flushed every iteration; `design.npz` is
rewritten atomically every 10 iterations and at the end; `--resume` continues from `design.npz`'s ρ and
iteration, keeping the history lines up to it. A PCG that misses its tolerance writes its last residual into
`history.jsonl` and stops the run (exit 1).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from wisecli.cli.errors import InputError
from wisecli.runtime.io.atomic import append_line, save_npz

from . import fem, geometry, topopt

SAVE_EVERY = 10


def lattice_doc(cfg: dict, lattice: Path | None) -> dict:
    """The lattice document: the file given, else the generated cantilever ground structure."""
    if lattice is not None:
        return geometry.read_lattice(lattice)
    return geometry.ground_structure(cfg["nx"], cfg["ny"], pitch=cfg["pitch"], joint_width=cfg["joint_width"],
                                     load=cfg["load"])


def parse_design(spec: str, n_vars: int, what: str = "--design") -> np.ndarray:
    """ρ of `uniform:V` or a `.npz` holding `rho` (one value per design variable), checked against the lattice."""
    spec = str(spec)
    if spec.startswith("uniform:"):
        try:
            v = float(spec.split(":", 1)[1])
        except ValueError:
            v = float("nan")
        if not (0.0 <= v <= 1.0):
            raise InputError(f"{what} {spec}: the uniform density must be in [0, 1]", hint="for example uniform:0.3")
        return np.full(n_vars, v)
    path = Path(spec)
    try:
        with np.load(path, allow_pickle=False) as z:
            rho = np.asarray(z["rho"], dtype=np.float64).ravel()
    except (OSError, ValueError, KeyError, EOFError, Exception) as exc:  # zip/npz readers raise many kinds
        raise InputError(f"{what} {path}: not a design .npz with an array 'rho' ({exc.__class__.__name__})",
                         hint="give uniform:V or a design.npz written by 'wise lattice run'") from None
    if rho.size != n_vars:
        raise InputError(f"{what} {path}: {rho.size} densities, the lattice has {n_vars} design variables",
                         hint="the design must come from the same lattice")
    if not np.all(np.isfinite(rho)) or rho.min() < 0 or rho.max() > 1:
        raise InputError(f"{what} {path}: densities must be finite and in [0, 1]", hint="check the file")
    return rho


def _design_arrays(mesh, rho, compliance, volume, iteration) -> dict:
    arrays = {"rho": np.asarray(rho, dtype=np.float64), "compliance": np.float64(compliance),
              "volume": np.float64(volume), "iteration": np.int64(iteration), "n_dof": np.int64(mesh.n_dof)}
    if mesh.kind == "lattice":
        arrays.update(strut_ends=mesh.strut_ends, struts=mesh.struts, design_struts=mesh.design_struts,
                      joints=mesh.joints)
    return arrays


def vtk_text(mesh, rho, u=None, problem_penal: float = 3.0) -> str:
    """The mesh as a legacy-ASCII VTK unstructured grid (ParaView): Q4 cells (VTK_QUAD) with each element's
    density ρ and design variable, and the nodal displacement when `u` is given."""
    rho = np.asarray(rho, dtype=np.float64)
    rho_e = np.where(mesh.var >= 0, rho[np.clip(mesh.var, 0, None)] if rho.size else 1.0, 1.0)
    nodes = mesh.edof[:, 0::2] // 2
    lines = ["# vtk DataFile Version 3.0", "wise lattice design", "ASCII", "DATASET UNSTRUCTURED_GRID",
             f"POINTS {len(mesh.coords)} double"]
    lines += [f"{x:.9g} {y:.9g} 0" for x, y in mesh.coords]
    lines.append(f"CELLS {len(nodes)} {5 * len(nodes)}")
    lines += [f"4 {a} {b} {c} {d}" for a, b, c, d in nodes]
    lines.append(f"CELL_TYPES {len(nodes)}")
    lines += ["9"] * len(nodes)
    lines += [f"CELL_DATA {len(nodes)}", "SCALARS density double 1", "LOOKUP_TABLE default"]
    lines += [f"{r:.9g}" for r in rho_e]
    lines += ["SCALARS variable int 1", "LOOKUP_TABLE default"] + [str(int(v)) for v in mesh.var]
    if u is not None:
        uu = np.asarray(u, dtype=np.float64).reshape(-1, 2)
        lines += [f"POINT_DATA {len(mesh.coords)}", "VECTORS displacement double"]
        lines += [f"{a:.12g} {b:.12g} 0" for a, b in uu]
    return "\n".join(lines) + "\n"


def design_json(mesh, rho, compliance, volume, iteration) -> dict:
    """The design as JSON: ρ per strut (1 for fixed struts), the struts' joint ids and end points."""
    doc = {"compliance": compliance, "volume": volume, "iteration": int(iteration)}
    if mesh.kind == "lattice":
        rs = np.ones(len(mesh.struts))
        rs[mesh.design_struts] = np.asarray(rho)[: len(mesh.design_struts)]
        doc.update(pitch=mesh.meta["pitch"], joint_width=mesh.meta["joint_width"], mesh=mesh.meta["m"],
                   joints=mesh.joints.tolist(), struts=mesh.struts.tolist(), rho=rs.tolist(),
                   strut_ends=mesh.strut_ends.tolist())
        if mesh.meta.get("design_joints"):
            doc["joint_rho"] = np.asarray(rho)[len(mesh.design_struts):].tolist()
    return doc


def _volume(mesh, rho) -> float:
    v = np.asarray(mesh.var_volume)
    return float(v @ np.asarray(rho) / v.sum()) if v.sum() else 0.0


def _resume_state(out: Path, mesh):
    """(ρ, iteration, kept history lines) from a run folder, or None when it holds no design yet."""
    path = out / "design.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            rho, it, ndof = np.asarray(z["rho"], np.float64), int(z["iteration"]), int(z["n_dof"])
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user-facing problem
        raise InputError(f"--resume: {path} is unreadable ({exc.__class__.__name__})",
                         hint="use --overwrite to start again") from None
    if rho.size != mesh.n_vars or ndof != mesh.n_dof:
        raise InputError(f"--resume: {path} belongs to another lattice ({rho.size} variables, {ndof} DOF)",
                         hint="give the same lattice options as the run, or --overwrite")
    lines = []
    hist = out / "history.jsonl"
    if hist.is_file():
        for line in hist.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("iter"), int) and rec["iter"] <= it and "error" not in rec:
                lines.append(line)
    return rho, it, lines


def run(*, cfg: dict, doc: dict, design: np.ndarray | None, out: Path | None, resume: bool, analyse_only: bool,
        plot: Path | None, device: torch.device, record, sink, make_problem=None) -> dict:
    """Optimise (or analyse) the lattice `doc` with the settings `cfg`; write the run folder `out` (if given).
    `make_problem(mesh)` replaces the full-order `topopt.Problem` (the optional ROM, built by api.py)."""
    from wisecli.runtime.device import one_cpu_thread

    t_start = time.perf_counter()
    mesh = geometry.build_mesh(doc, cfg["mesh"], design_joints=cfg.get("design_joints", False))
    with one_cpu_thread(device):
        if make_problem is None:
            problem = topopt.Problem(mesh, device=device, penal=cfg["penal"], linear_solver=cfg["linear_solver"],
                                     precond=cfg["precond"])
        else:
            problem = make_problem(mesh)
    if make_problem is None:
        solver = fem.pick_solver(cfg["linear_solver"], device, mesh.n_dof)
        if solver == "pcg":
            solver = f"pcg ({fem.pick_precond(cfg['precond'], problem.system)})"
    else:
        solver = problem.rom.solver_name
    sink.debug(f"lattice: {mesh.meta['n_joints']} joints, {mesh.meta['n_struts']} struts, {mesh.n_el} elements, "
              f"{mesh.n_dof} DOF; solver {cfg.get('solver', 'fom')} ({solver}) on {device}")
    rho0 = np.full(mesh.n_vars, cfg["volume"]) if design is None else design
    start = 0
    if out is not None and resume and not analyse_only:
        state = _resume_state(out, mesh)
        if state is not None:
            rho0, start, lines = state
            from wisecli.runtime.io.atomic import write_text

            write_text(out / "history.jsonl", "".join(ln + "\n" for ln in lines))
            sink.info(f"resuming at iteration {start}")
    rho_t = torch.from_numpy(np.asarray(rho0, dtype=np.float64))
    if analyse_only:
        with one_cpu_thread(device):
            an = problem.analyse(rho_t, warm=False)
        rho, history, iters = rho_t, [], 0
    else:
        def on_iter(rec, rho_new):
            if out is not None:
                append_line(out / "history.jsonl", json.dumps(rec))
                if rec["iter"] % SAVE_EVERY == 0:
                    save_npz(out / "design.npz", **_design_arrays(mesh, rho_new.cpu().numpy(), rec["compliance"],
                                                                 _volume(mesh, rho_new.cpu().numpy()), rec["iter"]))
            sink.debug(f"iter {rec['iter']}: c = {rec['compliance']:.6g}, max change {rec['max_change']:.3g}")

        with one_cpu_thread(device):
            try:
                rho, an, history = topopt.optimise(problem, rho_t, volume=cfg["volume"], max_iter=cfg["max_iter"],
                                                   tol=cfg["tol"], start_iter=start, on_iter=on_iter)
            except fem.NotConverged as exc:
                if out is not None:
                    append_line(out / "history.jsonl", json.dumps({"iter": start + 1, "error": str(exc),
                                                                   "pcg_iters": exc.iters,
                                                                   "rel_residual": exc.rel_residual}))
                raise
            an = problem.analyse(rho)  # the compliance of the final design itself
        iters = start + len(history)
    rho_np = rho.cpu().numpy()
    c = topopt.check_finite(an.compliance, "the compliance")
    vol = _volume(mesh, rho_np)
    result = {"compliance": c, "volume": vol, "iterations": iters, "converged": bool(history and
              history[-1]["max_change"] < cfg["tol"]), "dofs": mesh.n_dof, "n_struts": mesh.meta["n_struts"],
              "n_design_variables": mesh.n_vars, "solver": cfg.get("solver", "fom"), "linear_solver": solver,
              "seconds": time.perf_counter() - t_start}
    if make_problem is not None:
        result.update(dofs_rom=problem.rom.N, modes=cfg.get("modes"))
    if out is not None:
        from wisecli.runtime.io.atomic import write_json, write_text

        files = [save_npz(out / "design.npz", **_design_arrays(mesh, rho_np, c, vol, iters)),
                 write_json(out / "design.json", design_json(mesh, rho_np, c, vol, iters)),
                 write_text(out / "design.vtk", vtk_text(mesh, rho_np, an.u.cpu().numpy()))]
        if analyse_only:
            u = an.u.cpu().numpy().reshape(-1, 2)
            files.append(save_npz(out / "u.npz", u=u, coords=mesh.coords, compliance=np.float64(c)))
        from .plots import design_png

        files.append(design_png(mesh, rho_np, out / "design.png", title=f"c = {c:.5g}, volume {vol:.3f}"))
        if not analyse_only:
            files.append(out / "history.jsonl")
        for f in files:
            record.add_output(f)
    if plot is not None:
        from .plots import design_png

        design_png(mesh, rho_np, plot, title=f"c = {c:.5g}, volume {vol:.3f}")
        record.add_output(plot)
    record.timing("run", result["seconds"])
    record.set("result", result)
    if out is not None:
        record.write(out)
    result["out_dir"] = None if out is None else str(out)
    return result


def parse_designs(spec: str, n_vars: int, seed: int) -> list[tuple[str, np.ndarray]]:
    """`uniform:V`, `random:N` (ρ ~ U[0, 1] per variable, seeded) and design files, comma-separated."""
    rng = np.random.default_rng(seed)
    out = []
    for part in [p.strip() for p in str(spec).split(",") if p.strip()]:
        if part.startswith("random:"):
            try:
                n = int(part.split(":", 1)[1])
            except ValueError:
                n = -1
            if not 1 <= n <= 10_000:
                raise InputError(f"--designs {part}: random:N needs 1 ≤ N ≤ 10000", hint="for example random:20")
            out += [(f"random#{k}", rng.random(n_vars)) for k in range(n)]
        else:
            out.append((part, parse_design(part, n_vars, what="--designs")))
    if not out:
        raise InputError("--designs is empty", hint="for example uniform:0.3,random:20")
    return out


def evaluate_fom(*, cfg: dict, doc: dict, designs: str, device: torch.device, sink) -> list[dict]:
    """Solver accuracy of the full-order model: the chosen linear solver against scipy's direct solve on every
    design; per design {design, solver, dofs_fom, rel_err_compliance, rel_err_energy, rel_err_l2, iters, t_fom_s,
    t_ref_s, device}. Times: median of `repeats` (after a warm-up when `repeats` > 1) (`runtime.device.timed`), assemble + solve."""
    from wisecli.runtime.device import device_name, one_cpu_thread, timed

    mesh = geometry.build_mesh(doc, cfg["mesh"])
    todo = parse_designs(designs, mesh.n_vars, cfg["seed"])
    cpu = torch.device("cpu")
    with one_cpu_thread(device):
        problem = topopt.Problem(mesh, device=device, penal=cfg["penal"], linear_solver=cfg["linear_solver"],
                                 precond=cfg["precond"])
    with one_cpu_thread(cpu):
        ref = topopt.Problem(mesh, device=cpu, penal=cfg["penal"], linear_solver="direct")
    solver = fem.pick_solver(cfg["linear_solver"], device, mesh.n_dof)
    if solver == "pcg":
        solver = f"pcg ({fem.pick_precond(cfg['precond'], problem.system)})"
    records = []
    warm = 1 if cfg["repeats"] > 1 else 0  # one timed call is a smoke run (or a first look), not a benchmark
    for name, rho in todo:
        rho_t = torch.from_numpy(rho)
        with one_cpu_thread(device):
            an, t_fom = timed(lambda: problem.analyse(rho_t, warm=False), device, repeats=cfg["repeats"], warmup=warm)
        with one_cpu_thread(cpu):
            rf, t_ref = timed(lambda: ref.analyse(rho_t, warm=False), cpu, repeats=cfg["repeats"], warmup=warm)
            values = ref.system.assemble(ref.moduli(rho_t))
            d = an.u.cpu() - rf.u
            Kd = ref.system.matrix(values) @ d
            e_energy = math.sqrt(max(float(torch.dot(d, Kd)), 0.0) / float(torch.dot(rf.u, ref.system.f)))
        rec = {"design": name, "solver": solver, "dofs_fom": mesh.n_dof,
               "compliance": an.compliance, "rel_err_compliance": abs(an.compliance - rf.compliance) / abs(rf.compliance),
               "rel_err_energy": e_energy,
               "rel_err_l2": float(torch.linalg.vector_norm(d) / torch.linalg.vector_norm(rf.u)),
               "iters": an.info.iters, "t_fom_s": t_fom, "t_ref_s": t_ref, "device": device_name(device)}
        records.append(rec)
    return records


def demo(*, quick: bool, device: torch.device, out_dir: Path | None, sink=None):
    """The full-order optimisation of the demo lattice (8 × 4 at m = 4, up to 200 iterations; `quick`: 4 × 2,
    40 iterations) on `device` (direct solver on CPU, PCG on a GPU), then the final design solved by PCG on
    `device` and by the direct solver on the CPU. Gates: the optimised compliance at most 0.8 of the uniform
    start's, the volume met to 1e-8, PCG equal to the direct solve to 1e-9 in compliance (measured ~1e-12)."""
    from wisecli.runtime.device import one_cpu_thread
    from wisecli.runtime.results import DemoResult, Gate

    t0 = time.perf_counter()
    nx, ny, iters = (4, 2, 40) if quick else (8, 4, 200)
    mesh = geometry.build_mesh(geometry.ground_structure(nx, ny), 4)
    cpu = torch.device("cpu")
    with one_cpu_thread(device):  # the optimisation on the device: direct on CPU, PCG on a GPU
        problem = topopt.Problem(mesh, device=device, linear_solver="auto")
        rho, _, history = topopt.optimise(problem, topopt.uniform(mesh.n_vars, 0.3), volume=0.3, max_iter=iters)
        rho = rho.cpu()
        pcg = topopt.Problem(mesh, device=device, linear_solver="pcg").analyse(rho, warm=False)
    with one_cpu_thread(cpu):
        final = topopt.Problem(mesh, device=cpu, linear_solver="direct").analyse(rho, warm=False)
    c0 = history[0]["compliance"]
    vol = _volume(mesh, rho.numpy())
    gates = [Gate("compliance / uniform start", final.compliance / c0, "<=", 0.8),
             Gate("volume - 0.3", vol - 0.3, "<=", 1e-8),
             Gate("|c_pcg - c_direct| / c_direct", abs(pcg.compliance - final.compliance) / final.compliance, "<=",
                  1e-9)]
    details = {"lattice": f"{nx}x{ny}, m=4, {mesh.n_dof} DOF", "seconds": time.perf_counter() - t0,
               "rows": [{"iter": h["iter"], "compliance": h["compliance"], "max_change": h["max_change"]}
                        for h in history]}
    if out_dir is not None:
        from wisecli.runtime.rundir import made_dir

        from .plots import design_png

        with made_dir(out_dir) as out:
            details["png"] = str(design_png(mesh, rho.numpy(), Path(out) / "design.png",
                                            title=f"demo {nx}x{ny}: c = {final.compliance:.5g}"))
    return DemoResult("lattice", gates, headline={"compliance": final.compliance, "volume": vol,
                                                   "iterations": len(history)}, details=details)
