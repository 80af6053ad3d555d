"""`wise lattice`: compliance design of lattice structures with a full-order FEM (CPU or GPU).

Verbs: run, train, evaluate, demo, info, benchmark. The component-wise reduced-order model (CWROM) of the paper is
patented (US11514210B2) and optional: only `train` and `--solver sc|cwrom` use it, and they print the notice
(`info` prints it too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from wisecli.cli import options as o
from wisecli.cli.common import MethodApp
from wisecli.cli.output import Sink

app = MethodApp("lattice", help="Compliance design of lattice structures: full-order FEM, optimality criteria; "
                "the patented component-wise ROM is optional (see info).",
                context_settings={"help_option_names": ["-h", "--help"]})

_LAT = "Lattice"
_SOL = "Solver"
Nx = Annotated[Optional[int], typer.Option("--nx", help="Cells along x.", callback=o.at_least_one, rich_help_panel=_LAT)]
Ny = Annotated[Optional[int], typer.Option("--ny", help="Cells along y.", callback=o.at_least_one, rich_help_panel=_LAT)]
Pitch = Annotated[Optional[float], typer.Option("--pitch", help="Joint spacing h.", callback=o.positive,
                                                rich_help_panel=_LAT)]
JointWidth = Annotated[Optional[float], typer.Option("--joint-width", help="Joint side w (< pitch/2).",
                                                     callback=o.positive, rich_help_panel=_LAT)]
MeshN = Annotated[Optional[int], typer.Option("--mesh", help="Q4 elements across a joint (m ≥ 2).",
                                              callback=o.at_least_one, rich_help_panel=_LAT)]
Penal = Annotated[Optional[float], typer.Option("--penal", help="SIMP exponent p (≥ 1).", callback=o.positive,
                                                rich_help_panel=_LAT)]
Load = Annotated[Optional[Literal["mid", "bottom"]], typer.Option("--load", help="Load row of the right column.",
                                                                  rich_help_panel=_LAT)]
LatticeFile = Annotated[Optional[Path], typer.Option("--lattice", help="Lattice JSON (replaces the ground structure).",
                                                     rich_help_panel=_LAT)]
Solver = Annotated[Optional[Literal["fom", "sc", "cwrom"]], typer.Option(
    "--solver", help="fom: full order; sc/cwrom: the optional patented ROM (needs --rom).", rich_help_panel=_SOL)]
Rom = Annotated[Optional[Path], typer.Option("--rom", help="CWROM library (optional component).", rich_help_panel=_SOL)]
LinSolver = Annotated[Optional[Literal["auto", "pcg", "direct"]], typer.Option(
    "--linear-solver", help="auto: direct on CPU below 300k DOF, else PCG.", rich_help_panel=_SOL)]
Precond = Annotated[Optional[Literal["auto", "jacobi", "twolevel", "mg"]], typer.Option(
    "--precond", help="PCG preconditioner: auto = twolevel (joint rigid-body coarse space) on lattices, jacobi on "
    "grids; mg: planned.", rich_help_panel=_SOL)]


@app.command()
def run(
    nx: Nx = None, ny: Ny = None, pitch: Pitch = None, joint_width: JointWidth = None, mesh: MeshN = None,
    volume: Annotated[Optional[float], typer.Option("--volume", help="Volume fraction f_V in (0, 1).",
                                                    callback=o.positive)] = None,
    penal: Penal = None, load: Load = None, lattice: LatticeFile = None, solver: Solver = None, rom: Rom = None,
    modes: Annotated[Optional[int], typer.Option("--modes", help="ROM port modes n_p (3..2(m-1); default: the "
                                                 "library's).",
                                                 callback=o.at_least_one)] = None,
    linear_solver: LinSolver = None, precond: Precond = None,
    max_iter: Annotated[Optional[int], typer.Option("--max-iter", help="OC iterations at most.",
                                                    callback=o.at_least_one)] = None,
    tol: Annotated[Optional[float], typer.Option("--tol", help="Stop when max|Δρ| < tol.", callback=o.not_negative)] = None,
    analyse_only: Annotated[bool, typer.Option("--analyse-only", help="Solve one design, no optimisation.")] = False,
    design: Annotated[Optional[str], typer.Option("--design", help="uniform:V or a design.npz (start or analysed).")] = None,
    design_joints: Annotated[bool, typer.Option("--design-joints", help="Joints are design variables too.")] = False,
    plot: o.Plot = None, resume: o.Resume = False, overwrite: o.Overwrite = False, out_dir: o.OutDir = None,
    device: o.Device = None, json: o.Json = False,
) -> None:
    """Optimise the strut densities for minimum compliance (or --analyse-only one design). Writes design.npz,
    design.json, design.vtk, history.jsonl, design.png (u.npz with --analyse-only) and run.json into -o.
    --solver sc|cwrom --rom LIB.pt uses the optional, patented ROM (prints the notice; see info)."""
    from wisecli.engines.lattice import api

    sink = Sink(json=json)
    res = api.run(nx=nx, ny=ny, pitch=pitch, joint_width=joint_width, mesh=mesh, volume=volume, penal=penal,
                  load=load, lattice=lattice, solver=solver, rom=rom, modes=modes, linear_solver=linear_solver,
                  precond=precond, max_iter=max_iter, tol=tol, analyse_only=analyse_only, design=design,
                  design_joints=design_joints, plot=plot, resume=resume, overwrite=overwrite, out_dir=out_dir,
                  device=device, sink=sink)
    keys = ("compliance", "volume", "iterations", "converged", "dofs", "linear_solver", "seconds")
    sink.result(res, rows=[{k: res[k] for k in keys}], title="wise lattice run")


@app.command()
def train(
    mesh: MeshN = None, pitch: Pitch = None, joint_width: JointWidth = None,
    nu: Annotated[Optional[float], typer.Option("--nu", help="Poisson's ratio.", callback=o.not_negative)] = None,
    modes: Annotated[Optional[int], typer.Option("--modes", help="Port modes kept (3..2(m-1); default 8).",
                                                 callback=o.at_least_one)] = None,
    samples: Annotated[Optional[int], typer.Option("--samples", help="Training traces per port type.",
                                                   callback=o.at_least_one)] = None,
    rho_range: Annotated[Optional[str], typer.Option("--rho-range", help="Strut densities LOW,HIGH (log-uniform).")] = None,
    seed: o.Seed = None, resume: o.Resume = False, overwrite: o.Overwrite = False, out_dir: o.OutDir = None,
    device: o.Device = None, json: o.Json = False,
) -> None:
    """OPTIONAL, patented (US11514210B2, see info): train the component-wise ROM library (port modes per port type,
    component archetypes). Writes config.json, metrics.jsonl, checkpoints/last.pt and best.pt, run.json into -o."""
    from wisecli.engines.lattice import api

    sink = Sink(json=json)
    res = api.train(mesh=mesh, pitch=pitch, joint_width=joint_width, nu=nu, modes=modes, samples=samples,
                    rho_range=rho_range, seed=seed, out_dir=out_dir, resume=resume, overwrite=overwrite, device=device,
                    sink=sink)
    keys = ("library", "modes", "samples", "port_dim", "archetypes", "seconds")
    sink.result(res, rows=[{k: res[k] for k in keys}], title="wise lattice train")


@app.command()
def evaluate(
    nx: Nx = None, ny: Ny = None, pitch: Pitch = None, joint_width: JointWidth = None, mesh: MeshN = None,
    penal: Penal = None, load: Load = None, lattice: LatticeFile = None, solver: Solver = None, rom: Rom = None,
    modes: Annotated[Optional[str], typer.Option("--modes", help="ROM port modes, comma-separated.")] = None,
    designs: Annotated[Optional[str], typer.Option("--designs", help="uniform:V, random:N, design.npz; comma-separated.")] = None,
    linear_solver: LinSolver = None, precond: Precond = None,
    repeats: Annotated[Optional[int], typer.Option("--repeats", help="Timed repeats (median).", callback=o.at_least_one)] = None,
    compare_optimised: Annotated[bool, typer.Option("--compare-optimised", help="With --solver cwrom: optimise with "
                                                    "the FOM and the ROM from the same start and compare.")] = False,
    volume: Annotated[Optional[float], typer.Option("--volume", help="Volume fraction for --compare-optimised.",
                                                    callback=o.positive)] = None,
    max_iter: Annotated[Optional[int], typer.Option("--max-iter", help="OC iterations for --compare-optimised.",
                                                    callback=o.at_least_one)] = None,
    tol: Annotated[Optional[float], typer.Option("--tol", help="OC stop for --compare-optimised.",
                                                 callback=o.not_negative)] = None,
    device: o.Device = None, seed: o.Seed = None, json: o.Json = False, jsonl: o.Jsonl = False,
) -> None:
    """Full-order solver accuracy and speed: the linear solver against scipy's direct solve on each design; with
    --solver sc|cwrom --rom LIB.pt (optional, patented component): the ROM against the full-order model
    (--compare-optimised: also ROM- against FOM-optimised designs)."""
    from wisecli.engines.lattice import api

    sink = Sink(json=json, jsonl=jsonl)
    recs = api.evaluate(nx=nx, ny=ny, pitch=pitch, joint_width=joint_width, mesh=mesh, penal=penal, load=load,
                        lattice=lattice, solver=solver, rom=rom, modes=modes, designs=designs,
                        linear_solver=linear_solver, precond=precond, repeats=repeats, seed=seed,
                        compare_optimised=compare_optimised, volume=volume, max_iter=max_iter, tol=tol, device=device,
                        sink=sink)
    cols = ["design", "solver", "dofs_fom", "rel_err_compliance", "rel_err_energy", "iters", "t_fom_s", "t_ref_s"]
    if recs and "modes" in recs[0]:  # the optional ROM
        cols = ["design", "modes", "dofs_fom", "dofs_rom", "rel_err_compliance", "rel_err_energy", "t_fom_s",
                "t_rom_s", "speedup"]
        opt = [r for r in recs if "c_ratio" in r]
        if opt and not (json or jsonl):
            sink.table(opt, title="ROM- against FOM-optimised designs",
                       columns=["modes", "c_ratio", "rho_l1", "volume_fom", "volume_rom", "t_opt_fom_s", "t_opt_rom_s"])
            recs_shown = [r for r in recs if "c_ratio" not in r]
            sink.result(recs, rows=recs_shown, columns=cols, title="wise lattice evaluate")
            return
    sink.result(recs, rows=recs, columns=cols, title="wise lattice evaluate")


@app.command()
def demo(quick: o.Quick = False, out_dir: o.OutDir = None, device: o.Device = None, json: o.Json = False,
         cwrom: Annotated[bool, typer.Option("--cwrom", help="Also train a small library of the optional, patented "
                                             "ROM and print its evaluate table (prints the notice).")] = False) -> None:
    """Full-order design of an 8 × 4 lattice at m = 4 (--quick: 4 × 2, 40 iterations); prints the compliance
    history; gates: compliance ≤ 0.8 of the start, volume met, PCG = direct to 1e-9. Writes design.png into -o."""
    from wisecli.engines.lattice import api

    sink = Sink(json=json)
    result = api.demo(quick=quick, device=device, out_dir=out_dir, cwrom=cwrom)
    if not json:
        sink.table(result.details["rows"], title="compliance history")
        if cwrom:
            cols = ["design", "modes", "dofs_fom", "dofs_rom", "rel_err_compliance", "rel_err_energy", "t_fom_s",
                    "t_rom_s"]
            sink.table([{k: r[k] for k in cols} for r in result.details["cwrom_rows"]],
                       title="CWROM (optional) against the full-order model")
    if cwrom:
        sink.err.print(f"Notice: {result.details['patent_notice']}", markup=False, soft_wrap=True)
    if result.details.get("png"):
        sink.info(f"wrote {result.details['png']}")
    sink.demo(result, title="wise lattice demo")


@app.command()
def info(device: o.Device = None, json: o.Json = False) -> None:
    """The patent note of the optional CWROM component, solvers, defaults, the device."""
    from wisecli.engines.lattice import api

    doc = api.info(device=device)
    rows = [{"key": k, "value": v if isinstance(v, str) else str(v)} for k, v in doc.items()]
    Sink(json=json).result(doc, rows=rows, title="wise lattice info")


@app.command()
def benchmark(
    size: Annotated[Optional[Literal["quick", "ci", "full"]], typer.Option("--size", help="Case set.")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="The quick size (seconds on CPU).")] = False,
    cpu_timeout: Annotated[Optional[float], typer.Option("--cpu-timeout", help="Seconds scipy may take per case.",
                                                         callback=o.positive)] = None,
    repeats: Annotated[Optional[int], typer.Option("--repeats", help="Timed repeats (median).", callback=o.at_least_one)] = None,
    max_dof: Annotated[Optional[int], typer.Option("--max-dof", help="Leave out larger cases.", callback=o.at_least_one)] = None,
    cwrom: Annotated[bool, typer.Option("--cwrom", help="Also race the optional, patented ROM (online) against the "
                                        "full-order direct solve (prints the notice).")] = False,
    rom: Annotated[Optional[Path], typer.Option("--rom", help="CWROM library for --cwrom (default: train one).")] = None,
    modes: Annotated[Optional[int], typer.Option("--modes", help="ROM port modes for --cwrom.",
                                                 callback=o.at_least_one)] = None,
    device: o.Device = None, json: o.Json = False,
) -> None:
    """Race the full-order solve (assembly + PCG) against scipy spsolve on top88 grids and a lattice (--cwrom:
    also the optional ROM's online solve against the full-order direct solve)."""
    from wisecli.engines.lattice import api

    sink = Sink(json=json)
    records = api.benchmark(device=device, quick=quick, size=size, cpu_timeout=cpu_timeout, repeats=repeats,
                            max_dof=max_dof, cwrom=cwrom, rom=rom, modes=modes, sink=sink)
    sink.benchmark(records, title="wise lattice benchmark")
