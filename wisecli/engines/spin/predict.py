"""The jobs of `wise spin run` and `wise spin evaluate` (batch loops through `runtime.batch.run_batch`).

A `run` job is one TOML document; with `--sweep key=v1,v2,...` it is one batched simulation of len(values)
systems (per-system parameter tensors) whose outputs go to `OUT/<stem>-<key>-<value>/`. Each system folder gets
`spins.npz`, `energies.jsonl`, `texture.png`, `run.json` (and `spins.ovf` with `--ovf`). Snapshots (spins.npz and
energies.jsonl) are written atomically every `output.every` steps; a NaN or a drift of |S| stops the job with
`WorkFailed` and keeps the last good snapshot; `--resume` continues from it (step, time, RNG state).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from wisecli.cli.errors import InputError, WorkFailed
from wisecli.runtime.batch import BatchOptions, run_batch, stem_of
from wisecli.runtime.io.atomic import save_npz, write_json, write_text

from . import algorithm as alg
from . import data
from .model import HBAR, Hamiltonian, Lattice
from .synthetic import WALL_MODE_MAP, add_noise, pinned_rows, random_state, reference, wall


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("wisecli")
    except Exception:  # noqa: BLE001 - an uninstalled tree
        return "unknown"


def job_dirs(item, out: Path, sweep) -> list[Path]:
    """The output folders of one input (one per swept value)."""
    stem = "stdin" if str(item) == "-" else stem_of(item)
    if sweep is None:
        return [out / stem]
    key, values = sweep
    return [out / f"{stem}-{key.rsplit('.', 1)[-1]}-{v:g}" for v in values]


def initial_state(cfg: dict, lat: Lattice, gen, *, renormalize: bool = False):
    """The initial spins (3, L1, L2) of one system and the pinned mask; `frame` notes a relabelled wall line."""
    L1, L2 = cfg["lattice.size"]
    kind = cfg["init.kind"]
    dev, dt = lat.device, lat.dtype
    if kind == "random":
        S = random_state(1, L1, L2, generator=gen, dtype=torch.float64)[0]
    elif kind == "wall":
        m = WALL_MODE_MAP[cfg["init.wall_line"]]
        modes = (m[cfg["init.modes"][0]], m[cfg["init.modes"][1]])
        S = wall(L1, L2, modes, e_a=tuple(cfg["init.e_a"]), e_b=tuple(cfg["init.e_b"]))
    elif kind == "file":
        f = data.read_spins(cfg["init.file"], renormalize=renormalize)
        if f["spins"].shape[1:] != (L1, L2):
            raise InputError(f"{cfg['init.file']}: lattice {f['spins'].shape[1:]} does not match lattice.size "
                             f"{[L1, L2]}", hint="set lattice.size to the file's lattice")
        S = torch.as_tensor(f["spins"])
    else:
        S = reference(kind, L1, L2, axis=tuple(cfg["hamiltonian.axis"]))
    S = S.to(device=dev, dtype=torch.float64)
    if kind != "random":
        S = add_noise(S[None], cfg["init.noise"], generator=gen, free=lat.free.to(torch.float64))[0]
    return S.to(dt)


def _pinned(cfg):
    L1, L2 = cfg["lattice.size"]
    rows = cfg["lattice.pinned_rows"] if cfg["init.kind"] == "wall" or cfg["lattice.boundary"][0] == "open" else 0
    return pinned_rows(L1, L2, rows) if rows else None


def build(cfgs: list[dict], device, dtype, seed: int, renormalize=False):
    """Lattice, Hamiltonian (one system per cfg) and the initial spins (B, 3, L1, L2); every system of a sweep
    starts from the same initial state (the same seeded noise)."""
    c0 = cfgs[0]
    lat = Lattice(*c0["lattice.size"], tuple(c0["lattice.boundary"]), _pinned(c0), device=device, dtype=dtype)
    ham = Hamiltonian(lat, [data.params_of(c) for c in cfgs])
    S = torch.stack([initial_state(c, lat, torch.Generator().manual_seed(seed), renormalize=renormalize)
                     for c in cfgs])
    return lat, ham, S


def _check_stability(ham, S, cfg, force, gen) -> float:
    dt_ps = cfg["solver.dt_fs"] * 1e-3
    w = alg.stability(ham, S, dt_ps, generator=gen)
    if w > 0.2 and not force:
        raise InputError(f"time step too large: ω_max·dt = {w:.3f} > 0.2 (dt = {cfg['solver.dt_fs']} fs)",
                         hint=f"use dt_fs ≤ {0.2 / w * cfg['solver.dt_fs']:.3g}, or --force")
    return w


def run_job(item, *, toml_text, out: Path, preset, sets, flags, sweep, device, dtype, compile_, ovf, force, resume,
            renormalize, seed, sink, argv_settings) -> dict:
    """One TOML job (all its swept systems): simulate, write the outputs, return the item record."""
    t0 = time.perf_counter()
    toml = data.read_toml(item, stdin_text=toml_text if str(item) == "-" else None)
    base = data.effective(toml, preset=preset, sets=sets, flags=flags)
    if sweep is not None:
        cfgs = [data.effective(toml, preset=preset, sets={**sets, sweep[0]: v}, flags=flags) for v in sweep[1]]
    else:
        cfgs = [base]
    dirs = job_dirs(item, out, sweep)
    method = base["solver.method"]
    dt = {"float32": torch.float32, "float64": torch.float64}.get(dtype) or (
        torch.float64 if method == "minimize" else torch.float32)
    lat, ham, S = build(cfgs, device, dt, int(seed), renormalize=renormalize)
    gen = torch.Generator().manual_seed(int(seed) + 1)
    start_step, start_time = 0, 0.0
    history: list[list[dict]] = [[] for _ in cfgs]
    if resume:
        for b, d in enumerate(dirs):
            snap = d / "spins.npz"
            if snap.exists():
                f = data.read_spins(snap)
                with np.load(snap, allow_pickle=False) as z:
                    start_step, start_time = int(z["step"]), float(z["time_ps"])
                    if "rng_state" in z.files:
                        gen.set_state(torch.as_tensor(z["rng_state"], dtype=torch.uint8))
                if f["spins"].shape != tuple(S.shape[1:]):
                    raise InputError(f"{snap}: its lattice does not match the TOML", hint="resume the same TOML")
                S[b] = torch.as_tensor(f["spins"], dtype=dt, device=S.device)
                lines = (d / "energies.jsonl").read_text().splitlines() if (d / "energies.jsonl").exists() else []
                history[b] = [json.loads(x) for x in lines if x.strip()]
    omega = _check_stability(ham, S, base, force, gen) if method == "llg" else None
    dt_ps = base["solver.dt_fs"] * 1e-3
    alpha = torch.tensor([c["solver.alpha"] for c in cfgs], dtype=dt, device=S.device)
    ham64 = ham if dt == torch.float64 else ham.to(dtype=torch.float64)
    state = {"good": S.clone(), "step": start_step}

    def log(X, step):
        X64 = X.to(torch.float64)
        terms = ham64.energy_terms(X64)
        total = sum(terms.values())
        tq = ham64.torque(X64)
        tps = start_time + (step - start_step) * dt_ps if method == "llg" else 0.0
        norms = X64.norm(dim=1)
        ok = bool(torch.isfinite(X64).all()) and float((norms - 1).abs().max()) < 1e-3
        if not ok:
            _snapshot(state["good"], state["step"])
            raise WorkFailed(f"{item}: the spins became NaN or lost |S| = 1 at step {step}",
                             hint="lower solver.dt_fs (the last good snapshot is kept)")
        for b in range(len(cfgs)):
            history[b].append({"step": int(step), "time_ps": round(tps, 9), "E_meV": float(total[b]),
                               "E_terms": {k: float(v[b]) for k, v in terms.items()},
                               "max_torque_meV": float(tq[b])})
        state["good"], state["step"] = X.clone(), step
        _snapshot(X, step)

    def _snapshot(X, step):
        tps = start_time + (step - start_step) * dt_ps if method == "llg" else 0.0
        for b, d in enumerate(dirs):
            d.mkdir(parents=True, exist_ok=True)
            _write_spins(d / "spins.npz", X[b], lat, cfgs[b], history[b], step, tps, gen)
            write_text(d / "energies.jsonl", "".join(json.dumps(r) + "\n" for r in history[b]))

    t_run = time.perf_counter()
    if method == "minimize":
        log(S, 0) if not history[0] else None
        it_box = [0]

        def cb(X, it):
            it_box[0] = it

        S, iters, tq = alg.minimize(ham, S, max_torque=base["solver.max_torque"], method=base["solver.minimizer"],
                                    max_iter=max(1, base["solver.steps"]), history=50, callback=cb)
        final_step = start_step + iters
        log(S, final_step)
    else:
        if not history[0]:
            log(S, start_step)
        step_fn = None
        if compile_:
            step_fn = _compiled(ham, base, sink)
        remaining = max(0, base["solver.steps"] - start_step)
        S = alg.integrate(ham, S, integrator=base["solver.integrator"], dt=dt_ps, alpha=alpha, steps=remaining,
                          temperature_K=base["solver.temperature_K"], every=base["output.every"], generator=gen,
                          callback=lambda X, step: log(X, step) and False, start=start_step, step_fn=step_fn)
        final_step = state["step"]
    seconds = time.perf_counter() - t_run
    records = []
    for b, d in enumerate(dirs):
        last = history[b][-1]
        outputs = [d / "spins.npz", d / "energies.jsonl"]
        from .plots import texture

        outputs.append(texture(d / "texture.png", S[b].detach().to("cpu", torch.float64).numpy(), cfgs[b]))
        if ovf:
            data.write_ovf(d / "spins.ovf", S[b].detach().to("cpu", torch.float64).numpy(), cfgs[b]["lattice.a_nm"])
            outputs.append(d / "spins.ovf")
        job = {"job": d.name, "E_per_site_meV": last["E_meV"] / lat.n_sites, "max_torque_meV": last["max_torque_meV"],
               "steps": int(final_step), "time_ps": last["time_ps"], "seconds": round(seconds, 3),
               "converged": bool(last["max_torque_meV"] < base["solver.max_torque"]) if method == "minimize" else None}
        from wisecli.runtime.runrecord import RunRecord

        rr = RunRecord("spin run", config={k: {"value": v, "source": "effective"} for k, v in cfgs[b].items()},
                       device=str(S.device), seed=seed, inputs=[str(item)])
        rr.set("settings", argv_settings)
        rr.set("preset_status", data.PRESET_STATUS.get(cfgs[b]["hamiltonian.preset"]))
        rr.set("dtype", str(dt).replace("torch.", ""))
        rr.set("omega_max_dt", omega)
        rr.set("result", job)
        if cfgs[b]["init.kind"] == "wall" and cfgs[b]["init.wall_line"] != "a2":
            rr.set("frame", f"wall line {cfgs[b]['init.wall_line']} simulated as a2 with modes relabelled "
                            f"{WALL_MODE_MAP[cfgs[b]['init.wall_line']]} (a lattice symmetry)")
        for p in outputs:
            rr.add_output(p)
        rr.timing("simulate", seconds)
        rr.write(d)
        outputs.append(d / "run.json")
        records.append({**job, "outputs": [str(p) for p in outputs]})
    return {"status": "ok", "jobs": records, "outputs": [o for r in records for o in r["outputs"]],
            "seconds_total": round(time.perf_counter() - t0, 3)}


def _write_spins(path, X, lat, cfg, hist, step, tps, gen):
    save_npz(path, spins=X.detach().to("cpu", torch.float64).numpy(), pinned=lat.pinned.cpu().numpy(),
             a_nm=np.float64(cfg["lattice.a_nm"]), lattice=np.str_("triangular-axial"),
             params_toml=np.str_(data.to_toml(cfg)), energy_meV=np.float64(hist[-1]["E_meV"] if hist else np.nan),
             step=np.int64(step), time_ps=np.float64(tps), wisecli_version=np.str_(_version()),
             rng_state=gen.get_state().numpy())


def _compiled(ham, cfg, sink):
    """The whole Heun/SIB step under torch.compile; if compiling fails (at creation or at the first call, where
    torch compiles), a warning and the eager step from then on."""
    if cfg["solver.integrator"] == "heun":
        eager = lambda S, dt, alpha: alg.heun_step(ham, S, dt, alpha)  # noqa: E731
    else:
        eager = lambda S, dt, alpha, noise=None: alg.sib_step(ham, S, dt, alpha, noise)  # noqa: E731
    state = {"fn": None, "failed": False}
    try:
        state["fn"] = torch.compile(eager)
    except Exception as exc:  # noqa: BLE001 - no compiler on this host
        sink.warn(f"torch.compile unavailable ({type(exc).__name__}); running eager")
        return None

    def step(*args):
        if state["failed"]:
            return eager(*args)
        try:
            return state["fn"](*args)
        except Exception as exc:  # noqa: BLE001 - a backend error at the first call: eager from here on
            state["failed"] = True
            sink.warn(f"torch.compile failed ({type(exc).__name__}: {str(exc)[:120]}); running eager")
            return eager(*args)

    return step


def run(paths, *, toml_text, out: Path, preset, sets, flags, sweep, device, dtype, compile_, ovf, force, resume,
        renormalize, seed, batch: BatchOptions, sink, argv_settings) -> list[dict]:
    """Every TOML job through `run_batch`; returns the item records."""
    from wisecli.runtime.runrecord import RunRecord

    names = ["spins.npz", "energies.jsonl", "texture.png", "run.json"] + (["spins.ovf"] if ovf else [])

    def outputs_for(item):  # run.json comes last: an interrupted job is redone by --skip-existing
        return [d / n for d in job_dirs(item, out, sweep) for n in names]

    def process(item):
        try:
            return run_job(item, toml_text=toml_text, out=out, preset=preset, sets=sets, flags=flags, sweep=sweep,
                           device=device, dtype=dtype, compile_=compile_, ovf=ovf, force=force, resume=resume,
                           renormalize=renormalize, seed=seed, sink=sink, argv_settings=argv_settings)
        except torch.OutOfMemoryError:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            raise WorkFailed(f"{item}: out of GPU memory", hint="lower lattice.size (or the number of --sweep "
                             "values, which are one batch)") from None

    if resume:
        batch = BatchOptions(batch.out_dir, False, True, batch.fail_fast, batch.debug)
    rr = RunRecord("spin run", config=argv_settings, device=str(device), seed=seed, inputs=list(map(str, paths)))
    return run_batch(list(paths), process, outputs_for=outputs_for, options=batch, sink=sink, run_record=rr)


def evaluate_file(path, *, modes, convention, renormalize, device) -> dict:
    """The wall record of one spins file."""
    from .metrics import analyse, wall_energy

    f = data.read_spins(path, renormalize=renormalize)
    a_nm = f["a_nm"] or 0.2761
    try:
        rec = analyse(f["spins"], a_nm, modes=modes, convention=convention)
    except ValueError as exc:
        raise InputError(f"{path}: {exc}", hint="evaluate takes a texture with a rotational-domain wall") from None
    sigma = None
    if f["params_toml"]:
        try:
            cfg = data.effective(data.parse_toml(f["params_toml"], f"{path} params_toml"))
            cfg["lattice.size"] = list(f["spins"].shape[1:])
            lat = Lattice(*f["spins"].shape[1:], tuple(cfg["lattice.boundary"]), device=device, dtype=torch.float64)
            ham = Hamiltonian(lat, data.params_of(cfg))
            sigma = wall_energy(ham, f["spins"], a_nm, rec["modes"])
        except InputError:
            sigma = None
    return {"file": str(path), **rec, "sigma_meV_per_nm": sigma, "status": "ok"}


def evaluate(paths, *, modes, convention, renormalize, plot, device, sink) -> list[dict]:
    """Wall records of every file (a file without a wall is an error record; the batch goes on)."""
    from wisecli.runtime.rundir import made_dir

    records = []
    failed = 0
    for p in paths:
        t0 = time.perf_counter()
        try:
            rec = evaluate_file(p, modes=modes, convention=convention, renormalize=renormalize, device=device)
        except (InputError, WorkFailed) as exc:
            if len(paths) == 1:
                raise
            failed += 1
            rec = {"file": str(p), "status": "error", "error": exc.message}
            sink.warn(exc.message)
        rec["seconds"] = round(time.perf_counter() - t0, 4)
        records.append(rec)
        sink.record(rec)
    if plot is not None and records and records[0]["status"] == "ok":
        from .plots import profile_plot

        with made_dir(Path(plot).parent):
            profile_plot(Path(plot), data.read_spins(records[0]["file"], renormalize=renormalize), records[0])
    return records
