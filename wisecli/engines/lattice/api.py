"""Python API of `wise lattice`, one function per verb with the CLI's defaults (`DEFAULTS`): compliance design of
lattice structures (McBane & Choi, "Component-wise reduced order model lattice-type structure design", CMAME 381
(2021) 113813) with a full-order Q4 finite-element model.

Verbs: `run` (optimise or analyse a lattice), `train` (the optional CWROM library), `evaluate` (solver or ROM
accuracy and speed), `demo`, `info`, `benchmark`. The component-wise reduced-order model (CWROM) of the paper is
the subject of US patent US11514210B2 (`notice.PATENT_NOTE`, the one notice; `cwrom.NOTICE` is this constant).
Per the spec's scope decision it lives in the optional subpackage `cwrom/`, which nothing runs by default: only
`train` and `--solver sc|cwrom` import it, lazily, inside the functions below (`_library`, `train`, `evaluate`);
they print the notice on stderr and record it in run.json. `info` carries the note and `cwrom_installed` (found
with `importlib.util.find_spec`, without importing it). Without the subpackage every default path works unchanged
and `--solver sc|cwrom` and `train` are refused with a hint.

Choices where the spec is silent are written in the modules' docstrings (`geometry`, `fem`, `topopt`, `driver`,
`bench`) and listed by `info`. Standard library only at module level: the command reads `DEFAULTS` without
loading numpy or torch.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

from wisecli.cli.errors import InputError

from .notice import PATENT_NOTE  # noqa: E402,F401 - the one notice (cwrom.NOTICE is the same constant)

_LATTICE = {"nx": 16, "ny": 8, "pitch": 1.0, "joint_width": 0.2, "mesh": 8, "penal": 3.0, "load": "mid",
            "solver": "fom", "linear_solver": "auto", "precond": "auto", "device": "auto"}
DEFAULTS: dict[str, dict[str, Any]] = {
    "run": {**_LATTICE, "volume": 0.3, "modes": 8, "max_iter": 200, "tol": 0.01},
    "evaluate": {**_LATTICE, "designs": "uniform:0.3,random:5", "linear_solver": "pcg", "repeats": 3, "seed": 0,
                 "modes": "3,4,6,8", "volume": 0.3, "max_iter": 200, "tol": 0.01},
    "train": {"mesh": 8, "pitch": 1.0, "joint_width": 0.2, "nu": 0.3, "modes": 8, "samples": 200,
              "rho_range": "0.05,1", "seed": 0, "device": "auto"},
    "demo": {"device": "auto"},
    "info": {"device": "auto"},
    "benchmark": {"size": "ci", "cpu_timeout": 20.0, "repeats": 3, "device": "auto"},
}
CWROM_MODULE = "wisecli.engines.lattice.cwrom"


def cwrom_installed() -> bool:
    """Whether the optional CWROM subpackage is importable (found without importing it)."""
    try:
        return importlib.util.find_spec(CWROM_MODULE) is not None
    except (ImportError, ValueError):
        return False


def _settings(verb: str, given: dict[str, Any]):
    from wisecli.cli.config import one_of, resolve

    cfg = resolve(DEFAULTS[verb], flags={k: v for k, v in given.items() if k in DEFAULTS[verb]})
    v = cfg.values
    choices = {"load": ("mid", "bottom"), "solver": ("fom", "sc", "cwrom"), "linear_solver": ("auto", "pcg", "direct"),
               "precond": ("auto", "jacobi", "twolevel", "mg"), "size": ("quick", "ci", "full")}
    for key, allowed in choices.items():
        if key in v:
            one_of(f"--{key.replace('_', '-')}", v[key], allowed)
    _positive_int(v, ("nx", "ny", "max_iter", "repeats", "samples"))
    if "mesh" in v and v["mesh"] < 2:
        raise InputError(f"--mesh {v['mesh']}: need at least 2 elements across a joint", hint="for example --mesh 8")
    if "pitch" in v and not (math.isfinite(v["pitch"]) and v["pitch"] > 0):
        raise InputError(f"--pitch {v['pitch']} must be positive", hint="for example --pitch 1.0")
    if "joint_width" in v and not (math.isfinite(v["joint_width"]) and 0 < v["joint_width"] < 0.5 * v["pitch"]):
        raise InputError(f"--joint-width {v['joint_width']} is outside (0, {0.5 * v['pitch']:g})",
                         hint="the joint width is less than half the pitch, for example 0.2")
    if "volume" in v and not (math.isfinite(v["volume"]) and 0 < v["volume"] < 1):
        raise InputError(f"--volume {v['volume']} is outside (0, 1)", hint="a volume fraction, for example 0.3")
    if "penal" in v and not (math.isfinite(v["penal"]) and v["penal"] >= 1):
        raise InputError(f"--penal {v['penal']} is below 1", hint="SIMP uses p ≥ 1, typically 3")
    if "tol" in v and not (math.isfinite(v["tol"]) and v["tol"] >= 0):
        raise InputError(f"--tol {v['tol']} must be finite and ≥ 0", hint="for example --tol 0.01 (0: run max-iter)")
    if "cpu_timeout" in v and not (math.isfinite(v["cpu_timeout"]) and v["cpu_timeout"] > 0):
        raise InputError(f"--cpu-timeout {v['cpu_timeout']} must be positive", hint="seconds, for example 20")
    if "seed" in v and v["seed"] < 0:
        raise InputError(f"--seed {v['seed']} is negative", hint="seeds are 0 or more")
    if v.get("precond") == "mg":
        raise InputError("--precond mg (geometric multigrid) is planned, not in this version",
                         hint="use --precond auto (two-level on lattices, Jacobi on grids), twolevel or jacobi")
    return cfg


def _positive_int(v: dict, keys) -> None:
    for k in keys:
        if k in v and v[k] < 1:
            raise InputError(f"--{k.replace('_', '-')} {v[k]} must be at least 1", hint="give a positive count")


def _rom_options(v: dict, rom, modes, design_joints: bool = False) -> None:
    """`--solver sc|cwrom` needs `--rom` and the optional subpackage; `--modes` in [3, 2(m − 1)] (a port is the
    m − 1 interior nodes of a strut end face; its corners are exact vertex unknowns, see `cwrom.condensation`)."""
    if modes is not None:
        top = 2 * (v["mesh"] - 1)
        for n in ([modes] if isinstance(modes, int) else modes):
            if not 3 <= n <= top:
                raise InputError(f"--modes {n} is outside [3, {top}] (2(m−1), the port dimension at --mesh {v['mesh']})",
                                 hint="3 rigid-body modes at least, the port dimension at most (--mesh ≥ 3 for the ROM)")
    if v["solver"] == "fom":
        return
    if rom is None:
        raise InputError(f"--solver {v['solver']} needs --rom LIB.pt", hint="train a library with 'wise lattice train'")
    if not cwrom_installed():
        raise InputError(f"--solver {v['solver']}: the optional CWROM component is not installed",
                         hint="use --solver fom (the full-order model); see 'wise lattice info' for the patent note")
    if design_joints:
        raise InputError(f"--design-joints with --solver {v['solver']}: joint densities are not ROM parameters in "
                         "this version", hint="use --solver fom for joint design variables")


def _notice(sink) -> None:
    """The patent notice on stderr (not hidden by -q: every use of the optional component shows it), printed when
    the work is done, so that a failure's stderr stays one `Error:` line and its `Hint:`."""
    sink.err.print(f"Notice: {PATENT_NOTE}", markup=False, soft_wrap=True)


def _library(v: dict, rom, modes):
    """The checked CWROM library for the lattice settings `v` (the optional subpackage is imported here, lazily,
    only when the user selected it: spec §2.1)."""
    from .cwrom import library

    return library.load(rom, m=v["mesh"], width_ratio=v["joint_width"] / v["pitch"], nu=0.3, modes=modes)


def _device(device, cfg, linear_solver: str | None = None):
    from wisecli.runtime.device import as_device

    dev = as_device(device if device is not None and not isinstance(device, str) else cfg["device"])
    if linear_solver == "direct" and dev.type != "cpu":
        raise InputError("--linear-solver direct runs on the CPU only", hint="use --linear-solver pcg on the GPU")
    return dev


def _sink(sink):
    from wisecli.cli.output import Sink

    return sink if sink is not None else Sink()


def _lattice(cfg, lattice):
    """The lattice document, its mesh size checked before anything is built."""
    from . import driver, geometry

    if lattice is None:
        nx, ny, m = cfg["nx"], cfg["ny"], cfg["mesh"]
        L = geometry.check_mesh(cfg["pitch"], cfg["joint_width"], m)
        geometry.check_size((nx, ny), (nx + 1) * (ny + 1), nx * (ny + 1) + ny * (nx + 1), m, L)
        return driver.lattice_doc(cfg.values, None)
    doc = driver.lattice_doc(cfg.values, lattice)  # the file's pitch and joint width replace the options
    cfg.values["pitch"], cfg.values["joint_width"] = float(doc.get("pitch", 1.0)), float(doc.get("joint_width", 0.2))
    L = geometry.check_mesh(cfg["pitch"], cfg["joint_width"], cfg["mesh"])
    nodes = [tuple(n) for n in doc["nodes"]]
    ext = (max(n[0] for n in nodes) - min(n[0] for n in nodes), max(n[1] for n in nodes) - min(n[1] for n in nodes))
    geometry.check_size(ext, len(nodes), len(doc["struts"]), cfg["mesh"], L)
    return doc


def run(*, nx: int | None = None, ny: int | None = None, pitch: float | None = None, joint_width: float | None = None,
        mesh: int | None = None, volume: float | None = None, penal: float | None = None, load: str | None = None,
        lattice=None, solver: str | None = None, rom=None, modes: int | None = None,
        linear_solver: str | None = None, precond: str | None = None, max_iter: int | None = None,
        tol: float | None = None, analyse_only: bool = False, design: str | None = None, design_joints: bool = False,
        plot=None, resume: bool = False, overwrite: bool = False, out_dir=None, device=None, sink=None) -> dict:
    """Optimise the strut densities of a lattice for minimum compliance under a volume fraction (OC, SIMP), or with
    `analyse_only` solve one design (`design`: uniform:V or a design.npz; default uniform at `volume`).

    The lattice is the generated n_x × n_y cantilever ground structure or `lattice` (a JSON file). Writes into
    `out_dir` (when given): design.npz, design.json, design.vtk, history.jsonl, design.png, u.npz (analyse-only),
    run.json; `resume`
    continues from its design.npz. `solver` sc|cwrom with `rom` (OPTIONAL, patented component: the notice goes to
    stderr and run.json): the reduced model (exact static condensation, or `modes` port modes, default the
    library's) replaces the full-order solve in the loop; the compliance reported is that solver's, and the result
    adds dofs_rom and modes. Returns {compliance, volume, iterations, converged, dofs, n_struts,
    n_design_variables, solver, linear_solver, seconds, out_dir}. Defaults: `DEFAULTS["run"]` (16 × 8, pitch 1, joint
    width 0.2, m = 8, volume 0.3, p = 3, load mid, solver fom, linear solver auto, precond auto, 200 iterations,
    tol 0.01)."""
    from wisecli.runtime.rundir import made_dir, prepare_run_dir

    from . import driver

    lattice = Path(lattice) if lattice is not None else None
    cfg = _settings("run", locals())
    doc = _lattice(cfg, lattice)
    _rom_options(cfg.values, rom, modes, design_joints)
    dev = _device(device, cfg, cfg["linear_solver"])
    make_problem = None
    if cfg["solver"] != "fom":
        lib = _library(cfg.values, rom, modes)
        n_modes = None if cfg["solver"] == "sc" else (modes or min(int(lib["meta"]["modes"]), 2 * (cfg["mesh"] - 1)))
        cfg.values["modes"] = n_modes

        def make_problem(mesh):
            from .cwrom.rom import RomProblem

            return RomProblem(mesh, lib, n_modes, device=dev, penal=cfg["penal"])
    n_vars = len(doc["struts"]) - len(set(doc.get("fixed", []))) + (len(doc["nodes"]) if design_joints else 0)
    rho = driver.parse_design(design, n_vars) if design is not None else None
    if resume and out_dir is None:
        raise InputError("--resume needs -o, the run folder to continue", hint="give -o FOLDER")
    if plot is not None and not Path(plot).parent.is_dir():
        raise InputError(f"--plot {plot}: its folder does not exist", hint="create the folder or choose another path")
    from wisecli.runtime.device import device_name
    from wisecli.runtime.runrecord import RunRecord

    record = RunRecord("lattice run", config=cfg, device=device_name(dev), inputs=[lattice] if lattice else [])
    values = {**cfg.values, "design_joints": bool(design_joints)}
    sink = _sink(sink)
    if make_problem is not None:
        record.set("patent_notice", PATENT_NOTE)
    kw = dict(cfg=values, doc=doc, design=rho, resume=resume, analyse_only=analyse_only, plot=plot, device=dev,
              record=record, sink=sink, make_problem=make_problem)
    from wisecli.runtime.device import oom_guard

    hint = "--mesh or --nx/--ny (a smaller lattice)"
    if out_dir is None:
        res = oom_guard(lambda: driver.run(out=None, **kw), option_hint=hint)
    else:
        if Path(out_dir).exists() and not Path(out_dir).is_dir():
            raise InputError(f"-o {out_dir} is a file", hint="give a folder for the run")
        with made_dir(out_dir):  # a folder this call made is removed again if the run fails before writing into it
            out = prepare_run_dir(out_dir, resume=resume, overwrite=overwrite)
            res = oom_guard(lambda: driver.run(out=out, **kw), option_hint=hint)
    if make_problem is not None:
        _notice(sink)  # once the run is done: a failure's stderr stays one Error line (+ Hint)
    return res


def _rho_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in str(text).split(","))
    except ValueError:
        lo = hi = float("nan")
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi <= 1):
        raise InputError(f"--rho-range {text}: give LOW,HIGH with 0 < LOW < HIGH ≤ 1", hint="for example 0.05,1")
    return lo, hi


def train(*, mesh: int | None = None, pitch: float | None = None, joint_width: float | None = None,
          nu: float | None = None, modes: int | None = None, samples: int | None = None, rho_range: str | None = None,
          seed: int | None = None, out_dir=None, resume: bool = False, overwrite: bool = False, device=None,
          sink=None) -> dict:
    """OPTIONAL, patented component (see `PATENT_NOTE`): train the CWROM library (port modes per port type,
    archetypes) for joints of `mesh` elements and writes the run folder `out_dir`: config.json, metrics.jsonl
    (per port type: POD singular values; held-out compliance error for n_p = 3…modes), checkpoints/last.pt and
    best.pt (`runtime.checkpoints`, arch "cwrom-2d-q4"), run.json. `resume`: a folder whose library is complete is
    returned as is. Returns {library, modes, samples, port_dim, seconds, heldout_rel_err_compliance, out_dir}.
    Defaults: `DEFAULTS["train"]` (m = 8, pitch 1, joint width 0.2, ν 0.3, 8 modes (at most 2(m − 1)),
    200 samples per port type, ρ log-uniform in [0.05, 1], seed 0)."""
    given_modes = modes
    cfg = _settings("train", locals())
    v = cfg.values
    geometry_check(v)
    if v["mesh"] < 3:
        raise InputError(f"--mesh {v['mesh']}: the ROM needs m ≥ 3 (a port's m − 1 interior nodes must carry the "
                         "3 rigid-body modes)", hint="for example --mesh 8")
    top = 2 * (v["mesh"] - 1)
    if given_modes is None:
        v["modes"] = min(v["modes"], top)
    if not 3 <= v["modes"] <= top:
        raise InputError(f"--modes {v['modes']} is outside [3, {top}] (2(m−1) at --mesh {v['mesh']})",
                         hint="3 rigid-body modes at least, the port dimension at most")
    if not (math.isfinite(v["nu"]) and 0 <= v["nu"] < 0.5):
        raise InputError(f"--nu {v['nu']} is outside [0, 0.5)", hint="Poisson's ratio, for example 0.3")
    if v["samples"] < 1 or v["samples"] > 100_000:
        raise InputError(f"--samples {v['samples']} is outside [1, 100000]", hint="traces per port type, e.g. 200")
    v["rho_range"] = ",".join(f"{x:g}" for x in _rho_range(v["rho_range"]))
    if out_dir is None:
        raise InputError("train needs -o, the run folder for the library", hint="for example -o rom/")
    dev = _device(device, cfg)
    if not cwrom_installed():
        raise InputError("train: the optional CWROM component is not installed",
                         hint="the full-order model needs no training; see 'wise lattice info' for the patent note")
    from .cwrom import train as cw_train

    sink = _sink(sink)
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise InputError(f"-o {out_dir} is a file", hint="give a folder for the run")
    from wisecli.runtime.rundir import made_dir, prepare_run_dir

    with made_dir(out_dir):
        out = prepare_run_dir(out_dir, resume=resume, overwrite=overwrite)
        res = cw_train.run(cfg, out, resume=resume, device=dev, sink=sink)
    _notice(sink)
    return res


def geometry_check(v: dict) -> int:
    """Strut length in cells for the settings (exit 2 on a width that does not fit the mesh)."""
    from . import geometry

    return geometry.check_mesh(v["pitch"], v["joint_width"], v["mesh"])


def evaluate(*, nx: int | None = None, ny: int | None = None, pitch: float | None = None,
             joint_width: float | None = None, mesh: int | None = None, penal: float | None = None,
             load: str | None = None, lattice=None, solver: str | None = None, rom=None, modes: str | None = None,
             designs: str | None = None, linear_solver: str | None = None, precond: str | None = None,
             repeats: int | None = None, seed: int | None = None, compare_optimised: bool = False,
             volume: float | None = None, max_iter: int | None = None, tol: float | None = None, device=None,
             sink=None) -> list[dict]:
    """Accuracy and speed of the full-order solve (`solver` fom): the linear solver (default PCG) against scipy's
    direct solve on every design of `designs` (uniform:V, random:N, design files; comma-separated). One record per
    design: {design, solver, dofs_fom, compliance, rel_err_compliance, rel_err_energy, rel_err_l2, iters, t_fom_s,
    t_ref_s, device}. With `solver` sc|cwrom and `rom` (OPTIONAL, patented component: prints the notice): the ROM
    against the full-order solve for every design and n_p of `modes`: {design, modes, dofs_fom, dofs_rom,
    rel_err_compliance, rel_err_energy, rel_err_l2, max_port_err, t_fom_s, t_rom_s, speedup, device}.
    `compare_optimised` (ROM only) adds, per n_p, both optimisations from the uniform start at `volume` (`max_iter`,
    `tol`): {design "optimised", modes, c_ratio, rho_l1, volume_fom, volume_rom, t_opt_fom_s, t_opt_rom_s, ...}.
    Defaults: `DEFAULTS["evaluate"]` (the run lattice, designs uniform:0.3,random:5, PCG, 3 repeats, seed 0,
    modes 3,4,6,8, volume 0.3, 200 iterations, tol 0.01)."""
    from . import driver

    lattice = Path(lattice) if lattice is not None else None
    cfg = _settings("evaluate", locals())
    doc = _lattice(cfg, lattice)
    mode_list = None
    if modes is not None or (cfg["solver"] == "cwrom"):
        default = modes is None
        modes = cfg["modes"] if modes is None else modes
        try:
            mode_list = [int(m) for m in str(modes).split(",") if m.strip()]
        except ValueError:
            raise InputError(f"--modes {modes}: give whole numbers, comma-separated", hint="for example 3,4,6,8") from None
        if default:  # the default list, cut to the port dimension of this mesh
            mode_list = [n for n in mode_list if n <= 2 * (cfg["mesh"] - 1)] or [3]
        if not mode_list:
            raise InputError("--modes is empty", hint="for example 3,4,6,8")
    _rom_options(cfg.values, rom, mode_list)
    if compare_optimised and cfg["solver"] != "cwrom":
        raise InputError("--compare-optimised compares ROM- and FOM-optimised designs: it needs --solver cwrom",
                         hint="add --solver cwrom --rom LIB.pt")
    dev = _device(device, cfg, cfg["linear_solver"])
    n_vars = len(doc["struts"]) - len(set(doc.get("fixed", [])))
    todo = driver.parse_designs(cfg["designs"], n_vars, cfg["seed"])  # checked before the work starts
    if cfg["solver"] != "fom":
        lib = _library(cfg.values, rom, max(mode_list) if cfg["solver"] == "cwrom" else None)
        sink = _sink(sink)
        from . import geometry
        from .cwrom.rom import evaluate as rom_evaluate

        mesh = geometry.build_mesh(doc, cfg["mesh"])
        recs = rom_evaluate(mesh=mesh, library=lib, designs=todo, modes=mode_list if cfg["solver"] == "cwrom" else
                            [None], device=dev, linear_solver=cfg["linear_solver"], repeats=cfg["repeats"],
                            penal=cfg["penal"], sink=sink)
        if compare_optimised:
            from .cwrom.rom import compare_optimised as compare

            recs += compare(mesh=mesh, library=lib, modes=mode_list, device=dev, linear_solver=cfg["linear_solver"],
                            volume=cfg["volume"], max_iter=cfg["max_iter"], tol=cfg["tol"], penal=cfg["penal"])
        _notice(sink)
        return recs
    return driver.evaluate_fom(cfg=cfg.values, doc=doc, designs=cfg["designs"], device=dev, sink=_sink(sink))


def demo(quick: bool = False, device=None, out_dir=None, cwrom: bool = False):
    """The full-order design of the demo lattice: 8 × 4 at m = 4, up to 200 OC iterations on `device` (`quick`:
    4 × 2, 40 iterations, seconds), the final design solved again by PCG on `device` and directly on the CPU. Returns a `DemoResult` with
    headline {compliance, volume, iterations}, the compliance history as `rows`, and gates (compliance ≤ 0.8 of the
    uniform start, volume met to 1e-8, PCG = direct to 1e-9). With `out_dir`: design.png. Never uses CWROM unless
    `cwrom` (OPTIONAL, patented; not what `wise demo` runs): then a small library (m = 4) is trained and the ROM's
    evaluate records on the demo lattice (uniform:0.3 and 3 random designs, n_p = 3, 4, 6) are added to the
    details as `cwrom_rows`.
    Defaults: `DEFAULTS["demo"]` (device auto)."""
    cfg = _settings("demo", locals())
    from . import driver

    dev = _device(device, cfg)
    if cwrom and not cwrom_installed():
        raise InputError("--cwrom: the optional CWROM component is not installed",
                         hint="leave out --cwrom (the full-order demo); see 'wise lattice info'")
    result = driver.demo(quick=quick, device=dev, out_dir=Path(out_dir) if out_dir is not None else None)
    if cwrom:
        import numpy as np

        from . import geometry
        from .cwrom import library
        from .cwrom.rom import evaluate as rom_evaluate

        nx, ny = (4, 2) if quick else (8, 4)
        lib = library.build(m=4, pitch=1.0, joint_width=0.2, nu=0.3, modes=6, samples=100 if quick else 200,
                            rho_range=(0.05, 1.0), seed=0)
        mesh = geometry.build_mesh(geometry.ground_structure(nx, ny), 4)
        rng = np.random.default_rng(0)
        designs = [("uniform:0.3", np.full(mesh.n_vars, 0.3))] + [(f"random#{k}", rng.random(mesh.n_vars))
                                                                  for k in range(3)]
        result.details["cwrom_rows"] = rom_evaluate(mesh=mesh, library=lib, designs=designs, modes=[3, 4, 6],
                                                    device=dev, linear_solver="auto", repeats=1)
        result.details["patent_notice"] = PATENT_NOTE
    return result


def info(device=None) -> dict:
    """The patent note, what the command reads and writes, solvers, defaults of every verb, the device, whether the
    optional CWROM component is installed and what it chose. Defaults: `DEFAULTS["info"]` (device auto)."""
    cfg = _settings("info", locals())
    from wisecli.runtime.device import device_name

    dev = _device(device, cfg)
    installed = cwrom_installed()
    return {
        "method": "lattice",
        "paper": "McBane & Choi: Component-wise reduced order model lattice-type structure design, CMAME 381 (2021) 113813",
        "patent_notice": PATENT_NOTE,
        "cwrom_installed": installed,
        "solvers": {"fom": "full-order Q4 plane stress (the default; never uses CWROM)",
                    "sc": "CWROM exact static condensation onto the skeleton (optional, patented; needs --rom)",
                    "cwrom": "CWROM with n_p modes per port; reduced system: sparse LU on CPU above 2000 unknowns, "
                             "else dense Cholesky ≤ 8000, Jacobi PCG above (optional, patented; needs --rom from "
                             "'wise lattice train')"},
        "cwrom": {"installed": installed, "library": "runtime.checkpoints file, arch cwrom-2d-q4: K̂ per component "
                  "type, Φ and POD spectra per port type (x, y), archetype Ŝ and extensions",
                  "ports": "a strut end face's m−1 interior nodes, 2(m−1) DOFs: 3 rigid modes + POD; joint corners "
                           "are exact vertex unknowns (faces share corners), so n_p ≤ 2(m−1) and n_p = 2(m−1) is sc",
                  "training": "a joint with a random subset of its 4 struts, ρ log-uniform in --rho-range, random "
                              "Dirichlet data (rigid + linear + Gaussian field, correlation w/2) on the outer strut "
                              "ends; --samples traces per port type",
                  "not in this version": "design joints, strut width as a variable, 3-D"},
        "linear_solvers": {"pcg": "torch fp64 PCG, ‖r‖ ≤ 1e-8‖f‖, CPU or CUDA", "direct": "scipy SuperLU, CPU",
                           "auto": "direct on CPU below 300k DOF, else pcg"},
        "preconditioners": {"jacobi": "diagonal", "twolevel": "Jacobi + a coarse space of every joint's rigid-body "
                            "motions (lattices)", "auto": "twolevel on lattices, jacobi on grids",
                            "mg": "geometric multigrid: planned, not in this version"},
        "material": {"E0": 1.0, "E_min": 1e-6, "nu": 0.3, "thickness": 1.0, "simp_penal": 3.0},
        "optimiser": "optimality criteria (top88): move 0.2, eta 0.5, multiplier bisected to round-off, no filter",
        "reads": ["--lattice FILE.json", "--design uniform:V | design.npz"],
        "writes": {"run": ["design.npz", "design.json", "design.vtk (legacy VTK, ParaView)", "history.jsonl",
                           "design.png", "u.npz (--analyse-only)", "run.json"],
                   "train": ["config.json", "metrics.jsonl", "checkpoints/last.pt", "checkpoints/best.pt", "run.json"]},
        "choices": ["joint (i,j) at (i·h, j·h), struts between neighbouring joint faces, conforming Q4 cells w/m",
                    "face loads are uniform tractions (trapezoid weights); mid load at row floor(ny/2)",
                    "E_min = 1e-6 (top88's 1e-9 stalls PCG)", "--precond mg is planned, not in this version",
                    "Jacobi PCG stalls once joints hang on void struts even at E_min = 1e-6; the default two-level "
                    "preconditioner (joint rigid-body coarse space) converges there"],
        "defaults": DEFAULTS["run"],
        "verb_defaults": DEFAULTS,
        "device": device_name(dev),
    }


def benchmark(device=None, quick: bool = False, size: str | None = None, cpu_timeout: float | None = None,
              repeats: int | None = None, max_dof: int | None = None, cwrom: bool = False, rom=None,
              modes: int | None = None, sink=None):
    """Race the full-order solve (assembly + Jacobi PCG, torch fp64) against scipy `spsolve` on the host, on the
    top88 cantilever grids (uniform ρ = 0.5) and a generated lattice; `quick` is the small CPU size. Returns
    `BenchRecords` {case, ours_s, peer_s, speedup, device, dofs, ours_iters, peer, rel_diff_compliance}; cases over
    `max_dof` DOFs are left out. Defaults: `DEFAULTS["benchmark"]` (size ci, cpu-timeout 20 s, 3 repeats, device
    auto). Never uses CWROM unless `cwrom` (OPTIONAL, patented: prints the notice): then a row races the ROM's
    online solve against the full-order direct solve on the §5 lattice (16 × 8, m = 8, n_p = 8; `quick`: 4 × 2,
    m = 4, n_p = 4), with the library `rom` or one trained first (not timed)."""
    cfg = _settings("benchmark", locals())
    if max_dof is not None and max_dof < 1:
        raise InputError(f"--max-dof {max_dof} must be at least 1", hint="a DOF count, for example 100000")
    from . import bench

    dev = _device(device, cfg)
    size = "quick" if quick else cfg["size"]
    lib = None
    if cwrom or rom is not None or modes is not None:
        if not cwrom:
            raise InputError("--rom and --modes belong to --cwrom", hint="add --cwrom (the optional component)")
        if not cwrom_installed():
            raise InputError("--cwrom: the optional CWROM component is not installed",
                             hint="leave out --cwrom (the full-order race); see 'wise lattice info'")
        if modes is not None and not modes >= 3:
            raise InputError(f"--modes {modes} is below 3", hint="3 rigid-body modes at least")
        if rom is not None:
            from .cwrom import library

            lib = library.load(rom, modes=modes)
            if modes is not None and modes > 2 * (int(lib["meta"]["m"]) - 1):
                raise InputError(f"--modes {modes} exceeds the port dimension 2(m−1) = {2 * (int(lib['meta']['m']) - 1)}",
                                 hint="use fewer --modes")
    records = bench.run(dev, size=size, cpu_timeout=cfg["cpu_timeout"], repeats=cfg["repeats"], max_dof=max_dof,
                        sink=sink)
    if cwrom:
        from .cwrom.rom import bench_records
        from .cwrom.train import bench_library

        lib = lib if lib is not None else bench_library(size, modes, sink)
        records.extend(bench_records(dev, size=size, library=lib, modes=modes, repeats=cfg["repeats"], sink=sink))
        records.summary["patent_notice"] = PATENT_NOTE
        _notice(_sink(sink))
    return records
