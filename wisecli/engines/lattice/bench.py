"""Our side of the race: the full-order solve (fixed-pattern assembly + Jacobi PCG in torch fp64) on the top88
continuum cantilever and on generated lattices, against scipy `spsolve` on the host (`peers.py`).

Sizes (`size`): `quick` (CPU, seconds): top88 40×20 and 80×40, lattice 2×1 at m = 4; `ci` (the CUDA preset of
`.ci/gpu-check`): top88 300×100, 600×200, 1200×400 and lattice 16×8 at m = 8; `full` adds top88 2400×800.
The peer runs on a size only while it is expected to finish within `cpu_timeout` seconds ([reconstructed]: a
running SuperLU cannot be interrupted, so the next size's time is predicted from the last one as DOF^1.5 and
the peer is skipped, `peer_s` null, when the prediction or the last measured time exceeds the timeout).
Ours is timed as assemble (+ the two-level coarse matrix on lattices) + solve from a zero start (no warm start), median of repeats after a warm-up.
"""

from __future__ import annotations

import numpy as np
import torch

from wisecli.runtime.bench import race
from wisecli.runtime.results import BenchRecords

from . import fem, geometry, peers
from .topopt import E0, EMIN

SIZES = {
    "quick": [("top88", 40, 20), ("top88", 80, 40), ("lattice", 2, 1, 4)],
    "ci": [("top88", 300, 100), ("top88", 600, 200), ("top88", 1200, 400), ("lattice", 16, 8, 8)],
    "full": [("top88", 300, 100), ("top88", 600, 200), ("top88", 1200, 400), ("top88", 2400, 800),
             ("lattice", 16, 8, 8)],
}


def _mesh(case):
    if case[0] == "top88":
        return f"top88 {case[1]}x{case[2]}", geometry.cantilever_top88(case[1], case[2])
    nx, ny, m = case[1:]
    return f"lattice {nx}x{ny} m={m}", geometry.build_mesh(geometry.ground_structure(nx, ny), m)


def run(device: torch.device, *, size: str = "quick", cpu_timeout: float = 20.0, repeats: int = 3,
        max_dof: int | None = None, sink=None) -> BenchRecords:
    """One record per case (those with at most `max_dof` DOFs): {case, ours_s, peer_s, speedup, device, dofs, ours_iters, peer, rel_diff_compliance}."""
    from wisecli.runtime.device import one_cpu_thread

    records = BenchRecords(summary={"size": size, "cpu_timeout_s": cpu_timeout, "rho": 0.5, "penal": 3,
                                    "tolerance": 1e-8, "preconditioner": "jacobi on top88 grids, twolevel on lattices"})
    last = None  # (dofs, peer seconds)
    for case in SIZES[size]:
        name, mesh = _mesh(case)
        if max_dof is not None and mesh.n_dof > max_dof:
            continue
        if sink is not None:
            sink.info(f"benchmark: {name} ({mesh.n_dof} DOF)")
        E = np.full(mesh.n_el, EMIN + 0.5 ** 3 * (E0 - EMIN))
        E[mesh.var < 0] = E0
        with one_cpu_thread(device):
            system = fem.System(mesh, device)
            Et = torch.from_numpy(E).to(device)

            state = {}

            def ours():
                values = system.assemble(Et)
                pre = fem.TwoLevel(system, Et, values) if system.coarse is not None else None
                u, state["iters"], _ = fem.pcg(system.matrix(values), system.f, system.diagonal(values), precond=pre)
                return torch.dot(system.f, u)

            predicted = None if last is None else last[1] * (mesh.n_dof / last[0]) ** 1.5
            run_peer = last is None or (last[1] <= cpu_timeout and predicted <= cpu_timeout)
            big = mesh.n_dof > 100_000
            peer_fn = (lambda: peers.scipy_fom(mesh, E)) if run_peer else None

            def check(o, p):
                return {"rel_diff_compliance": abs(float(o) - p[0]) / abs(p[0])}

            rec = race(name, ours, peer_fn, device=device, peer_name="scipy-spsolve",
                       repeats=1 if big and device.type == "cpu" else repeats, warmup=1,
                       peer_repeats=1 if big else repeats, peer_warmup=0 if big else 1, check=check,
                       dofs=mesh.n_dof)
        rec.extra["ours_iters"] = int(state["iters"])
        rec.extra.setdefault("rel_diff_compliance", None)
        if rec.peer_s is not None:
            last = (mesh.n_dof, rec.peer_s)
        elif run_peer is False and sink is not None:
            sink.info(f"benchmark: scipy skipped on {name} (expected over --cpu-timeout {cpu_timeout:g} s)")
        records.append(rec)
    return records

