"""`wise spin`: atomistic spin dynamics on the triangular lattice; 1Q domain walls in Mn/Re(0001)
(Spethmann et al., arXiv 2011.05678).

Verbs: `run` (LLG or minimisation of TOML jobs), `evaluate` (wall width, core angles, wall energy of spins files),
`demo`, `info`, `benchmark`. Each verb parses, calls `wisecli.engines.spin.api.<verb>` once and hands the result
to the sink. The positional inputs of `run` are `str` because a lone `-` is one TOML document on stdin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from wisecli.cli import options as o
from wisecli.cli.common import MethodApp
from wisecli.cli.output import Sink

app = MethodApp("spin", help="Atomistic spin dynamics on the triangular lattice: 1Q domain walls in Mn/Re(0001).",
                context_settings={"help_option_names": ["-h", "--help"]})

_SIM = "Simulation"
Preset = Annotated[Optional[Literal["mnre-standin", "gs-3q", "gs-2q"]],
                   typer.Option("--preset", help="Hamiltonian preset (overrides the TOML's).", rich_help_panel=_SIM)]
Renorm = Annotated[bool, typer.Option("--renormalize", help="Rescale spins read from files to |S| = 1.")]


def _rows(records: list[dict]) -> list[dict]:
    rows = []
    for r in records:
        for j in r.get("jobs") or [None]:
            if j is None:
                rows.append({"job": Path(r["input"]).name, "status": r["status"], "error": r.get("error")})
                continue
            rows.append({"job": j["job"], "E_per_site_meV": round(j["E_per_site_meV"], 6),
                         "max_torque_meV": j["max_torque_meV"], "steps": j["steps"], "time_ps": j["time_ps"],
                         "seconds": j["seconds"], "status": r["status"]})
    return rows


@app.command()
def run(
    inputs: Annotated[list[str], typer.Argument(help="TOML files, folders, globs, @list.txt, @-; a lone - is one TOML on stdin.")],
    preset: Preset = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help="solver.steps (LLG steps / minimiser iterations).",
                                                 callback=o.not_negative, rich_help_panel=_SIM)] = None,
    sweep: Annotated[Optional[str], typer.Option("--sweep", help="KEY=v1,v2,...: one batched run of the values.",
                                                 rich_help_panel=_SIM)] = None,
    dtype: Annotated[Optional[Literal["auto", "float32", "float64"]],
                     typer.Option("--dtype", help="auto: float64 minimisation, float32 dynamics.", rich_help_panel=_SIM)] = None,
    compile: Annotated[Optional[bool], typer.Option("--compile/--no-compile", help="torch.compile the step (auto: on CUDA).",
                                                    show_default=False, rich_help_panel=_SIM)] = None,
    ovf: Annotated[bool, typer.Option("--ovf", help="Also write spins.ovf (OVF 2.0 binary 8).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Run even when dt fails the stability estimate.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last snapshot in the output folders.")] = False,
    renormalize: Renorm = False, out_dir: o.OutDir = None, skip_existing: o.SkipExisting = False,
    overwrite: o.Overwrite = False, fail_fast: o.FailFast = False, pattern: o.Pattern = None, device: o.Device = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Random seed (noise, random states, thermal field).",
                                                callback=o.not_negative)] = None,
    json: o.Json = False, jsonl: o.Jsonl = False, debug: o.Debug = False,
) -> None:
    """Simulate (LLG) or minimise each TOML job; writes OUT/<stem>/spins.npz, energies.jsonl, texture.png, run.json."""
    from wisecli.engines.spin import api

    sink = Sink(json=json, jsonl=jsonl)
    records = api.run(inputs, preset=preset, steps=steps, sweep=sweep, dtype=dtype, compile=compile, ovf=ovf,
                      force=force, resume=resume, renormalize=renormalize, out_dir=out_dir,
                      skip_existing=skip_existing, overwrite=overwrite, fail_fast=fail_fast, pattern=pattern,
                      device=device, seed=seed, debug=debug, sink=sink)
    doc = records[0] if len(records) == 1 else {"items": records}
    sink.result(doc, rows=_rows(records), title="wise spin run")
    sink.finish(records)


@app.command()
def evaluate(
    inputs: Annotated[list[Path], typer.Argument(help="spins.npz or OVF 2.0 files, folders, globs, @list.txt, @-.")],
    modes: Annotated[Optional[str], typer.Option("--modes", help="auto (largest |n_k|² at each end) or A,B.")] = None,
    width_convention: Annotated[Optional[Literal["2delta", "pi-delta", "10-90"]],
                                typer.Option("--width-convention", help="Headline width: 2δ, πδ or 10–90 %.")] = None,
    renormalize: Renorm = False, plot: o.Plot = None, device: o.Device = None, json: o.Json = False,
    jsonl: o.Jsonl = False,
) -> None:
    """Wall width (tanh fit of |n_a|²), core angles per bond class, |n_k|² at the centre, wall energy σ."""
    from wisecli.engines.spin import api

    sink = Sink(json=json, jsonl=jsonl)
    recs = api.evaluate(inputs, modes=modes, width_convention=width_convention, renormalize=renormalize, plot=plot,
                        device=device, sink=sink)
    cols = ["file", "modes", "width_nm", "delta_nm", "x0_nm", "core_angles_deg", "sigma_meV_per_nm", "status"]
    rows = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in recs]
    sink.result(recs[0] if len(recs) == 1 else {"items": recs}, rows=rows, columns=cols, title="wise spin evaluate")
    sink.finish(recs, what="files")


@app.command()
def demo(quick: o.Quick = False, out_dir: o.OutDir = None, device: o.Device = None, json: o.Json = False) -> None:
    """The default preset's {Q1,Q2} wall (120 × 4; --quick 60 × 4), minimised and evaluated: w ≈ 2 nm, 90° core."""
    from wisecli.engines.spin import api

    sink = Sink(json=json)
    result = api.demo(quick=quick, device=device, out_dir=out_dir)
    h = result.headline
    sink.info(f"w = {h['width_nm']:.3f} nm, core angles {h['core_angle_a']:.1f}°, {h['core_angle_b']:.1f}°")
    sink.demo(result, title="wise spin demo")


@app.command()
def info(device: o.Device = None, json: o.Json = False) -> None:
    """Terms, conventions, presets, integrators, units, TOML keys, defaults and the device."""
    from wisecli.engines.spin import api

    doc = api.info(device=device)
    rows = [{"key": k, "value": v if isinstance(v, str) else str(v)} for k, v in doc.items()]
    Sink(json=json).result(doc, rows=rows, title="wise spin info")


@app.command()
def benchmark(
    quick: Annotated[bool, typer.Option("--quick", help="L = 32 only (seconds on CPU).")] = False,
    peer: Annotated[Optional[Literal["auto", "spirit", "numpy", "none"]], typer.Option("--peer", help="The peer.")] = None,
    size: Annotated[Optional[Literal["ci", "full"]], typer.Option("--size", help="ci: compiled at the largest L only.")] = None,
    device: o.Device = None, json: o.Json = False,
) -> None:
    """Spin-steps per second of the Heun step (eager, compiled on CUDA) against Spirit or a NumPy stencil."""
    from wisecli.engines.spin import api

    Sink(json=json).benchmark(api.benchmark(device=device, quick=quick, peer=peer, size=size), title="wise spin benchmark")
