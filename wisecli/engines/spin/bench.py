"""Our side of `wise spin benchmark` (spin-steps per second of the Heun step, eager and compiled, field time) and
the demo (the default preset's {Q1,Q2} wall, minimised and evaluated)."""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from wisecli.runtime.results import BenchRecord, BenchRecords, DemoResult, Gate

from . import algorithm as alg
from .data import PRESETS
from .metrics import analyse
from .model import Hamiltonian, Lattice, Params
from .synthetic import add_noise, pinned_rows, reference, wall

A_NM = 0.2761


def standin() -> Params:
    p = PRESETS["mnre-standin"]
    return Params(J=tuple(p["J"]), B1=p["B1"], K1=p["K1"], Y1=p["Y1"], Ku=p["Ku"], mu_s=p["mu_s"])


def relaxed_wall(L_perp: int, modes=(1, 2), *, params=None, L_par: int = 4, rows: int = 4, max_torque=1e-6,
                 device="cpu", seed: int = 0, noise: float = 0.05):
    """Minimised wall textures (B, 3, L_perp, L_par) for a list of params (batched) or one; returns (S, its, torque)."""
    params = params if isinstance(params, (list, tuple)) else [params or standin()]
    mode_list = modes if isinstance(modes[0], (list, tuple)) else [modes] * len(params)
    lat = Lattice(L_perp, L_par, ("open", "periodic"), pinned_rows(L_perp, L_par, rows), device=device)
    ham = Hamiltonian(lat, list(params))
    gen = torch.Generator().manual_seed(seed)
    S = torch.stack([wall(L_perp, L_par, tuple(m)) for m in mode_list]).to(device)
    S = add_noise(S, noise, generator=gen, free=lat.free)
    return alg.minimize(ham, S, max_torque=max_torque, max_iter=20000)


def run_demo(quick: bool, device, out_dir=None) -> DemoResult:
    """The demo of spec §3 (see `api.demo`)."""
    t0 = time.perf_counter()
    L = 60 if quick else 120
    tol = 1e-4 if quick else 1e-6
    S, its, tq = relaxed_wall(L, (1, 2), max_torque=tol, device=device)
    spins = S[0].detach().cpu().numpy()
    rec = analyse(spins, A_NM, modes=(1, 2))
    details = {"rows": [{"case": f"{{Q1,Q2}} wall along a2, {L}x4", "width_nm": round(rec["width_nm"], 3),
                         "core_angles_deg": [round(a, 1) for a in rec["core_angles_deg"]],
                         "iterations": its, "max_torque_meV": float(tq.max())}],
               "seconds": round(time.perf_counter() - t0, 2), "preset": "mnre-standin (reconstructed stand-in)"}
    if out_dir is not None:
        from wisecli.runtime.rundir import made_dir

        from .plots import profile_plot, texture

        with made_dir(out_dir) as d:
            cfg = {"lattice.a_nm": A_NM}
            details["png"] = [str(texture(Path(d) / "demo-texture.png", spins, cfg)),
                              str(profile_plot(Path(d) / "demo-profile.png", {"spins": spins, "a_nm": A_NM}, rec))]
    gates = [Gate("|w - 2.0 nm| (nm)", abs(rec["width_nm"] - 2.0), "<=", 0.3),
             Gate("|core angle a - 90°|", abs(rec["core_angle_a"] - 90.0), "<=", 10.0),
             Gate("|core angle b - 90°|", abs(rec["core_angle_b"] - 90.0), "<=", 10.0)]
    return DemoResult("spin", gates, headline={"width_nm": rec["width_nm"], "core_angle_a": rec["core_angle_a"],
                                               "core_angle_b": rec["core_angle_b"]}, details=details)


def _hams(L, device, dtype, terms):
    lat = Lattice(L, L, device=device, dtype=dtype)
    p = standin()
    if terms == "j1-j3":
        p = Params(J=p.J, Ku=0.05, mu_s=p.mu_s)
    else:
        p = Params(J=p.J, B1=p.B1, K1=p.K1, Y1=p.Y1, Ku=0.05, mu_s=p.mu_s, B_T=(0.0, 0.0, 1.0))
    return Hamiltonian(lat, p)


def run_benchmark(device, *, quick=False, peer="auto", size="ci") -> BenchRecords:
    """Race our Heun step against the peer (spec §7)."""
    from wisecli.runtime.bench import race
    from wisecli.runtime.device import timed

    from .peers import NumpyHeun, SpiritHeun, spirit_available

    cuda = device.type == "cuda"
    if quick:
        sizes = [32]
    elif cuda:
        sizes = [256, 1024, 2048]
    else:
        sizes = [64, 128]
    peer_name = "none" if peer == "none" else ("spirit" if peer in ("auto", "spirit") and spirit_available() else
                                               "numpy")
    if peer == "spirit" and peer_name != "spirit":
        peer_name = "numpy"
    modes = ["eager"] + (["compiled"] if cuda else [])
    recs = BenchRecords(summary={"peer": peer_name, "spirit_importable": spirit_available(),
                                 "note": "seconds per 10^6 spin-steps (Heun, dt = 0.5 fs, alpha = 0.3, float32)"})
    dt, alpha = 0.0005, 0.3
    for L in sizes:
        steps = 5 if (cuda or L <= 64) else 2
        for terms in ("j1-j3", "all"):
            ham = _hams(L, device, torch.float32, terms)
            gen = torch.Generator().manual_seed(0)
            S0 = add_noise(reference("1q", L, L, dtype=torch.float64)[None], 0.3, generator=gen).to(device,
                                                                                                     torch.float32)
            for mode in modes:
                if mode == "compiled" and not (size == "full" or L == max(sizes)):
                    continue
                if mode == "compiled" and L != max(sizes) and size != "full":
                    continue
                step = (lambda S: alg.heun_step(ham, S, dt, alpha)) if mode == "eager" else torch.compile(
                    lambda S: alg.heun_step(ham, S, dt, alpha))

                def ours(step=step):
                    S = S0
                    for _ in range(steps):
                        S = step(S)
                    return S

                _, field_s = timed(
                    lambda: ham.field(S0), device, repeats=3, warmup=1)
                peer_fn, spirit = None, None
                if peer_name == "spirit" and terms == "j1-j3" and mode == "eager":
                    spirit = SpiritHeun(L, ham.params[0].J, 0.05, dt=dt, alpha=alpha)

                    def peer_fn(spirit=spirit):
                        spirit.run(steps)
                elif peer_name == "numpy" and terms == "j1-j3" and mode == "eager" and L <= 1024:
                    nh = NumpyHeun(ham.params[0].J, 0.05, alpha=alpha, dt=dt)
                    P0 = S0[0].detach().cpu().numpy()

                    def peer_fn(nh=nh, P0=P0):
                        P = P0
                        for _ in range(steps):
                            P = nh.step(P)
                        return P

                def check(o, p):
                    return {"max_abs_diff_vs_peer": float(np.abs(o[0].detach().cpu().numpy() - p).max())}

                scale = 1e6 / (L * L * steps)
                try:
                    r = race(f"heun L={L} {terms} {mode}", ours, peer_fn, device=device, peer_name=peer_name
                             if peer_fn else "none", repeats=3, warmup=1, peer_repeats=1, peer_warmup=0,
                             check=check if (peer_fn and spirit is None) else None)
                finally:
                    if spirit is not None:
                        spirit.close()
                r.ours_s *= scale
                r.peer_s = r.peer_s * scale if r.peer_s is not None else None
                if mode == "compiled" and r.peer_s is None:  # the peer was timed once, on the eager row of this L
                    twin = [x for x in recs if x.extra.get("L") == L and x.extra.get("terms") == terms
                            and x.peer_s is not None]
                    if twin:
                        r.peer_s, r.peer = twin[0].peer_s, twin[0].peer
                r.extra.update({"L": L, "terms": terms, "mode": mode, "spin_steps_per_s": 1e6 / r.ours_s,
                                "field_ms": field_s * 1e3})
                recs.append(r)
    return recs
