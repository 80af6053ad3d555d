"""`wise lattice train`: build and save the CWROM library (OPTIONAL, patented method: see NOTICE).

No gradient training, so not `runtime.trainer`: the run folder holds config.json, metrics.jsonl (one line per port
type with its POD singular values; one line per n_p = 3…modes with the held-out compliance error), checkpoints/
last.pt and best.pt (the same library; `runtime.checkpoints`, loaded with weights_only=True) and run.json (with
the patent notice). Held-out check ([reconstructed]): a 2 × 2 cantilever at the library's m, designs uniform:0.3
and 3 random ρ ~ U[0, 1] (seed + 1), e_c = |c_ROM − c_FOM|/c_FOM against the full-order direct solve; the
metric is the worst design. Training runs on the CPU (scipy sparse solves of small systems).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from . import NOTICE


def run(cfg, out: Path, *, resume: bool, device, sink) -> dict:
    """Train (or, with `resume`, reuse the complete library of `out`'s checkpoints/last.pt: one training step, so
    a library is either complete or absent) and write the run folder."""
    from wisecli.runtime.io.atomic import append_line, write_json
    from wisecli.runtime.runrecord import RunRecord

    from . import library

    v = cfg.values
    best = out / "checkpoints" / "best.pt"
    last = out / "checkpoints" / "last.pt"
    t0 = time.perf_counter()
    lib = library.load(last, what="--resume") if resume and last.is_file() else None  # a corrupt or foreign file is exit 2
    if lib is not None:
        if _same(lib["meta"], v):
            if not best.is_file():
                library.save(best, lib)
            sink.info(f"resuming: {last} is complete")
            return _summary(lib, best, out, time.perf_counter() - t0, None)
        sink.info("resuming: the saved library has other settings; training again")
    lo, hi = (float(x) for x in str(v["rho_range"]).split(","))
    record = RunRecord("lattice train", config=cfg, device="cpu", seed=v["seed"])
    record.set("patent_notice", NOTICE)
    write_json(out / "config.json", dict(v))
    for stale in ("metrics.jsonl",):
        (out / stale).unlink(missing_ok=True)
    lib = library.build(m=v["mesh"], pitch=v["pitch"], joint_width=v["joint_width"], nu=v["nu"], modes=v["modes"],
                        samples=v["samples"], rho_range=(lo, hi), seed=v["seed"],
                        progress=lambda k, n: sink.debug(f"system {k}: traces {n}"))
    for t in ("x", "y"):
        append_line(out / "metrics.jsonl", json.dumps({"port_type": t, "samples": v["samples"],
                                                       "pod_singular_values": [float(x) for x in lib["spectra"][t]]}))
    heldout = held_out(lib, v["modes"], v["seed"] + 1)
    for n, err in heldout.items():
        append_line(out / "metrics.jsonl", json.dumps({"modes": n, "heldout_rel_err_compliance": err}))
    metrics = {"heldout_rel_err_compliance": heldout}
    library.save(last, lib, metrics)
    library.save(best, lib, metrics)
    seconds = time.perf_counter() - t0
    for p in (out / "config.json", out / "metrics.jsonl", last, best):
        record.add_output(p)
    record.timing("train", seconds)
    res = _summary(lib, best, out, seconds, heldout)
    record.set("result", res)
    record.write(out)
    return res


def _same(meta: dict, v: dict) -> bool:
    keys = ("mesh", "pitch", "joint_width", "nu", "modes", "samples", "seed")
    mk = {"mesh": "m"}
    return all(str(meta.get(mk.get(k, k))) == str(v[k]) for k in keys)


def _summary(lib, best, out, seconds, heldout) -> dict:
    return {"library": str(best), "modes": int(lib["meta"]["modes"]), "samples": int(lib["meta"]["samples"]),
            "port_dim": int(lib["phi"]["x"].shape[0]), "archetypes": len(lib["archetypes"]), "seconds": seconds,
            "heldout_rel_err_compliance": heldout, "out_dir": str(out)}


def held_out(lib: dict, modes: int, seed: int) -> dict:
    """Worst e_c over the held-out designs for n_p = 3…modes (module docstring)."""
    from .. import geometry, topopt
    from .rom import RomProblem

    meta = lib["meta"]
    mesh = geometry.build_mesh(geometry.ground_structure(2, 2, pitch=meta["pitch"], joint_width=meta["joint_width"]),
                               int(meta["m"]))
    rng = np.random.default_rng(seed)
    designs = [np.full(mesh.n_vars, 0.3)] + [rng.random(mesh.n_vars) for _ in range(3)]
    fom = topopt.Problem(mesh, linear_solver="direct", nu=float(meta["nu"]))
    ref = [fom.analyse(torch.from_numpy(r), warm=False).compliance for r in designs]
    out = {}
    for n in range(3, int(modes) + 1):
        p = RomProblem(mesh, lib, n)
        out[n] = max(abs(p.analyse(torch.from_numpy(r)).compliance - c) / c for r, c in zip(designs, ref))
    return out


def bench_library(size: str, modes: int | None, sink=None) -> dict:
    """The library `benchmark --cwrom` trains when none is given (the case's m and samples, seed 0; not timed)."""
    from . import library
    from .ports import port_dim
    from .rom import BENCH_CASES

    _, _, m, n_default, samples = BENCH_CASES[size]
    if sink is not None:
        sink.info(f"benchmark --cwrom: training a library (m = {m}, {samples} samples per port type)")
    return library.build(m=m, pitch=1.0, joint_width=0.2, nu=0.3, modes=min(modes or n_default, port_dim(m)),
                         samples=samples, rho_range=(0.05, 1.0), seed=0)
