"""`wise spin`: atomistic spin dynamics on the triangular lattice; 1Q domain walls in Mn/Re(0001).

Spethmann, Grünebohm, Wiesendanger, von Bergmann, Kubetzka, "Domain walls in a row-wise antiferromagnetic Mn
monolayer" (arXiv 2011.05678): the simulation part, for classical spins with J1–J3, biquadratic, four-spin and
three-site exchange, anisotropy, Zeeman field (and optional interfacial DMI); LLG (Heun, SIB with temperature) and
L-BFGS minimisation; rotational-domain wall set-ups and wall analysis. The verb facade and `DEFAULTS` only.

Choices where the spec is silent (also in `info`):
- The paper's exchange constants were not available: the default preset `mnre-standin` is a documented stand-in
  (spec §2.5) that gives w = 2 nm by construction; every run.json names the preset and its status.
- `--set` words whose key is a TOML key (`hamiltonian.B1=0.7`) change the simulation; words naming a `run`
  setting (`dtype=float64`) change that. `--config` keeps its suite meaning (the run settings).
- Wall lines a1 and a1−a2 are simulated as the equivalent a2 wall with mode labels permuted (lattice symmetry);
  run.json says so (`frame`).
- Core angles are interpolated at x0 between bond centres (see `metrics`); the row-nearest values are kept too.
- Minimisation: our batched L-BFGS (per-system history and step) instead of torch's, which stalls near 1e-5 meV
  because its line search compares total energies below their float64 resolution.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wisecli.cli.config import one_of, resolve
from wisecli.cli.errors import InputError

METHOD = "spin"

DEFAULTS: dict[str, dict[str, Any]] = {
    "run": {"dtype": "auto", "compile": "auto", "device": "auto", "seed": 0},
    "evaluate": {"modes": "auto", "width_convention": "2delta", "device": "auto"},
    "demo": {"device": "auto"},
    "info": {"device": "auto"},
    "benchmark": {"device": "auto", "peer": "auto", "size": "ci"},
}


def _split_sets(extra_sets):
    """Split the shared --set words (and `extra_sets`) into run settings and simulation (TOML) overrides."""
    from wisecli.cli.common import shared

    words = list(shared("set_") or []) + list(extra_sets or [])
    run_words, sim_words = [], []
    for w in words:
        key = w.partition("=")[0].strip()
        (run_words if key in DEFAULTS["run"] else sim_words).append(w)
    return run_words, sim_words


def run(inputs, *, preset: str | None = None, steps: int | None = None, sweep: str | None = None,
        dtype: str | None = None, compile: bool | None = None, ovf: bool = False, force: bool = False,
        resume: bool = False, renormalize: bool = False, sets: list[str] | None = None, out_dir=None,
        skip_existing: bool = False, overwrite: bool = False, fail_fast: bool = False, pattern: str | None = None,
        device=None, seed: int | None = None, debug: bool = False, sink=None) -> list[dict]:
    """Simulate or minimise every TOML job in `inputs` (files, folders, globs, @list.txt, @-; a lone "-" is one
    TOML document on stdin). `preset`, `steps` (solver.steps) and `sets` (["hamiltonian.B1=0.7", ...], plus the
    shared --set) override the TOML; `sweep` ("hamiltonian.B1=0.55,0.6,0.7") runs one batched simulation per job.

    Writes per system OUT/<stem>[-<key>-<value>]/spins.npz, energies.jsonl, texture.png, run.json (spins.ovf with
    `ovf`) and OUT/run.json. Returns one record per input (`jobs`: E per site, max torque, steps, time, seconds).
    Defaults: `DEFAULTS["run"]` (dtype auto: float64 minimisation, float32 dynamics; compile auto: on CUDA;
    device auto; seed 0); the TOML's own defaults are `data.SCHEMA` (`wise spin info`)."""
    from wisecli.cli.inputs import expand_inputs, read_stdin_data
    from wisecli.cli.output import Sink
    from wisecli.runtime.batch import BatchOptions
    from wisecli.runtime.device import as_device

    from . import data

    words = [str(i) for i in (inputs if isinstance(inputs, (list, tuple)) else [inputs])]
    toml_text = None
    if words == ["-"]:
        paths = ["-"]
        toml_text = read_stdin_data()
    else:
        paths = expand_inputs(words, pattern=pattern, extensions=(".toml",))
    run_words, sim_words = _split_sets(sets)
    cfg = resolve(DEFAULTS["run"], flags={"dtype": dtype, "device": device, "seed": seed,
                                          "compile": None if compile is None else ("on" if compile else "off")},
                  sets=run_words)
    one_of("--dtype", cfg["dtype"], ("auto", "float32", "float64"))
    one_of("--compile", cfg["compile"], ("auto", "on", "off"))
    sim_sets = data.parse_overrides(sim_words, "--set")
    sw = data.parse_sweep(sweep)
    if preset is not None and preset not in data.PRESETS:
        data.effective({}, preset=preset)  # the did-you-mean error
    if steps is not None and steps < 0:
        raise InputError(f"--steps {steps} must be ≥ 0", hint="for example --steps 1000")
    if resume and (overwrite or skip_existing):
        raise InputError("--resume continues the existing outputs", hint="drop --overwrite/--skip-existing")
    sink = sink or Sink()
    dev = as_device(cfg["device"], sink=sink)
    comp = cfg["compile"] == "on" or (cfg["compile"] == "auto" and dev.type == "cuda")
    out = Path(out_dir) if out_dir is not None else Path.cwd()
    from . import predict

    return predict.run(paths, toml_text=toml_text, out=out, preset=preset, sets=sim_sets,
                       flags={"solver.steps": steps}, sweep=sw, device=dev, dtype=cfg["dtype"], compile_=comp,
                       ovf=ovf, force=force, resume=resume, renormalize=renormalize, seed=int(cfg["seed"]),
                       batch=BatchOptions(out, skip_existing, overwrite, fail_fast, debug), sink=sink,
                       argv_settings=cfg.as_record())


def evaluate(inputs, *, modes: str | None = None, width_convention: str | None = None, renormalize: bool = False,
             plot=None, device=None, sink=None) -> list[dict]:
    """Wall statistics of every spins file (spins.npz or OVF 2.0): modes, δ, width (by `width_convention`:
    2delta, pi-delta, 10-90), x0, fit RMSE, core angles per bond class, |n_k|² at x0, fraction of core bonds at
    90° ± 5°, σ (meV/nm, when the file carries its parameters). `modes` "auto" (the largest |n_k|² at each end) or
    "A,B". A file with no wall is an error record (the batch goes on; alone it is exit 2). `plot`: the first
    file's profiles with the fit. Defaults: `DEFAULTS["evaluate"]`."""
    from wisecli.cli.inputs import expand_inputs
    from wisecli.cli.output import Sink
    from wisecli.runtime.device import as_device

    from . import predict
    from .metrics import CONVENTIONS

    paths = expand_inputs([str(i) for i in (inputs if isinstance(inputs, (list, tuple)) else [inputs])],
                          extensions=(".npz", ".ovf"))
    cfg = resolve(DEFAULTS["evaluate"], flags={"modes": modes, "width_convention": width_convention,
                                               "device": device})
    one_of("--width-convention", cfg["width_convention"], tuple(CONVENTIONS))
    m = cfg["modes"]
    if m != "auto":
        try:
            parsed = [int(x) for x in str(m).split(",")]
        except ValueError:
            parsed = []
        if len(parsed) != 2 or parsed[0] == parsed[1] or any(x not in (1, 2, 3) for x in parsed):
            raise InputError(f"--modes {m}: give auto or two different modes A,B of 1, 2, 3", hint="for example 1,2")
        m = parsed
    sink = sink or Sink()
    dev = as_device(cfg["device"], sink=sink)
    return predict.evaluate(paths, modes=m, convention=cfg["width_convention"], renormalize=renormalize, plot=plot,
                            device=dev, sink=sink)


def demo(quick: bool = False, device=None, out_dir=None):
    """The default preset's {Q1,Q2} wall along a2 (120 × 4 strip, 4 pinned rows, to max torque 1e-6 meV;
    `quick`: 60 × 4 to 1e-4), minimised and evaluated; with `out_dir` its texture and profile PNGs.

    Returns a `runtime.results.DemoResult` with gates w within 0.3 nm of 2.0 and both 90° core bond classes within
    90° ± 10° (spec §3); headline width_nm, core_angle_a, core_angle_b. Defaults: `DEFAULTS["demo"]`."""
    cfg = resolve(DEFAULTS["demo"], flags={"device": device})
    from wisecli.runtime.device import as_device

    from .bench import run_demo

    return run_demo(quick=quick, device=as_device(cfg["device"]), out_dir=out_dir)


def info(device=None) -> dict:
    """Terms, conventions (the reference-state table of spec §2.2), presets with their status, integrators,
    minimisers, units, the TOML keys with their defaults, the verbs' defaults and the device."""
    cfg = resolve(DEFAULTS["info"], flags={"device": device})
    from wisecli.runtime.device import as_device, device_name

    from . import data
    from .metrics import CONVENTIONS
    from .model import HBAR, K_B, MU_B, TERMS

    dev = as_device(cfg["device"])
    return {
        "method": METHOD,
        "paper": "Spethmann et al., Domain walls in a row-wise antiferromagnetic Mn monolayer (arXiv 2011.05678)",
        "terms": list(TERMS), "three_site": ["triangle", "bond-pairs"],
        "hamiltonian": "E = -Σ_s J_s Σ S_i·S_j - B1 Σ (S_i·S_j)² - 2K1 Σ_rhombi[...] - 2Y1 Σ_triangles[...] "
                       "- Ku Σ (S·n)² - μ_s μ_B Σ B·S - Σ D_ij·(S_i×S_j); each pair/rhombus/triangle once; meV",
        "reference_states_per_site": {
            "columns": ["J1", "J2", "J3", "B1", "K1", "Y1 triangle", "Y1 bond-pairs", "Ku"],
            "FM": [-3, -3, -3, -3, -6, -12, -30, -1], "Neel": [1.5, -3, 1.5, -0.75, -6, -3, -7.5, 0],
            "1Q": [1, 1, -3, -3, -6, 4, 2, 0], "2Q": [1, 1, -3, -1, -2, 0, -2, 0],
            "3Q": [1, 1, -3, -1 / 3, -2 / 3, -4 / 3, -10 / 3, -1 / 3]},
        "presets": {k: {**v, "status": data.PRESET_STATUS[k]} for k, v in data.PRESETS.items()},
        "integrators": ["heun (default, T = 0)", "sib (Mentink 2010; temperature)"],
        "minimizers": ["lbfgs (default)", "damped"],
        "width_conventions": list(CONVENTIONS),
        "units": {"energy": "meV", "time": "ps", "field": "T", "length": "nm", "mu_B_meV_per_T": MU_B,
                  "hbar_meV_ps": HBAR, "k_B_meV_per_K": K_B},
        "toml_keys": {k: v[1] for k, v in data.SCHEMA.items()},
        "outputs": ["OUT/<stem>/spins.npz", "energies.jsonl", "texture.png", "run.json", "spins.ovf (--ovf)"],
        "inputs": ["TOML parameter files", "spins.npz", "OVF 2.0 text / binary 4 / binary 8"],
        "defaults": DEFAULTS["run"], "verb_defaults": DEFAULTS,
        "device": device_name(dev),
    }


def benchmark(device=None, quick: bool = False, peer: str | None = None, size: str | None = None) -> list:
    """Spin-steps per second of our Heun step (eager; compiled on CUDA) for J1–J3 + Ku and for all terms, and
    the field alone, against the peer (`peer`: auto = Spirit if importable, else our plain NumPy stencil; numpy;
    none), same lattice, terms and dt, with `runtime.bench.race`. `size`: ci (L = 2048 compiled, 256 and 1024
    eager on CUDA; L = 64 and 128 on CPU), full (every size compiled); `quick`: L = 32 only. Returns
    `BenchRecord`s: case, ours_s and peer_s (seconds per 10⁶ spin-steps), speedup, L, terms, mode,
    spin_steps_per_s, field_ms. Defaults: `DEFAULTS["benchmark"]`."""
    cfg = resolve(DEFAULTS["benchmark"], flags={"device": device, "peer": peer, "size": size})
    one_of("--peer", cfg["peer"], ("auto", "spirit", "numpy", "none"))
    one_of("--size", cfg["size"], ("ci", "full"))
    from wisecli.runtime.device import as_device

    from .bench import run_benchmark

    return run_benchmark(as_device(cfg["device"]), quick=quick, peer=cfg["peer"], size=cfg["size"])
