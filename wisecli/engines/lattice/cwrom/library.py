"""The CWROM library (OPTIONAL, patented method: see NOTICE): what `train` builds and `--rom` reads.

A `runtime.checkpoints` file (method "lattice", arch "cwrom-2d-q4", loaded with weights_only=True) whose
state_dict holds the reference stiffnesses K̂ of the three component types, the port bases Φ and POD spectra per
port type, and the archetypes (Ŝ, extension −K̂_ii⁻¹K̂_is, DOF classes) met on a reference 3 × 3 cantilever
lattice; other archetypes (custom lattices) are condensed from K̂ when first met. The library depends on
(m, w/h, ν, n_p), never on the lattice size or the design; a library whose m, w/h or ν differ from the requested
lattice is refused naming the field.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from wisecli.cli.errors import InputError

ARCH = "cwrom-2d-q4"
FORMAT_VERSION = 1


def build(*, m: int, pitch: float, joint_width: float, nu: float, modes: int, samples: int,
          rho_range: tuple[float, float], seed: int, progress=None) -> dict:
    """Train a library (module docstring of `ports`): K̂ per type, Φ and spectra per port type, archetypes."""
    from .. import geometry
    from . import condensation as cd
    from .ports import PORT_TYPES, basis_from_traces, train_traces

    L = geometry.check_mesh(pitch, joint_width, m)
    traces = train_traces(m=m, L=L, joint_width=joint_width, pitch=pitch, nu=nu, samples=samples,
                          rho_range=rho_range, seed=seed, progress=progress)
    phi, spectra = {}, {}
    for t in PORT_TYPES:
        phi[t], spectra[t] = basis_from_traces(traces[t], m, t)
    lib = {"meta": {"m": m, "pitch": pitch, "joint_width": joint_width, "width_ratio": joint_width / pitch, "nu": nu,
                    "strut_cells": L, "modes": modes, "samples": samples, "rho_range": list(rho_range), "seed": seed,
                    "format_version": FORMAT_VERSION},
           "K": {k: cd.reference_stiffness(k, m, L, nu) for k in (cd.JOINT, cd.HSTRUT, cd.VSTRUT)},
           "phi": phi, "spectra": spectra, "archetypes": {}}
    # the archetypes of a reference cantilever (interior, edge, corner, clamped and loaded joints; strut variants)
    from .rom import Rom

    Rom(geometry.build_mesh(geometry.ground_structure(3, 3, pitch=pitch, joint_width=joint_width), m), lib, None)
    return lib


def state_dict(lib: dict) -> dict:
    """The library as checkpoint tensors."""
    return {"K": {k: torch.as_tensor(v) for k, v in lib["K"].items()},
            "phi": {k: torch.as_tensor(v) for k, v in lib["phi"].items()},
            "spectra": {k: torch.as_tensor(v) for k, v in lib["spectra"].items()},
            "archetypes": {k: {f: torch.as_tensor(np.asarray(a[f])) for f in ("S", "ext", "sk", "ii", "classes")}
                           for k, a in lib["archetypes"].items()}}


def save(path: Path | str, lib: dict, metrics: dict | None = None) -> Path:
    """Write the library as a checkpoint (atomic)."""
    from wisecli.runtime.checkpoints import save_checkpoint

    return save_checkpoint(path, method="lattice", arch=ARCH, config=lib["meta"], state_dict=state_dict(lib),
                           metrics=metrics or {})


def load(path: Path | str, *, m: int | None = None, width_ratio: float | None = None, nu: float | None = None,
         modes: int | None = None, what: str = "--rom") -> dict:
    """Read a library (weights_only=True) and check it against the requested lattice; exit 2 naming the field."""
    from wisecli.runtime.checkpoints import load_checkpoint

    doc = load_checkpoint(path, method="lattice")
    meta = doc.get("config", {})
    if doc.get("arch") != ARCH or meta.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{what} {path}: a lattice checkpoint of another format ({doc.get('arch')}, version "
                         f"{meta.get('format_version')}), not a CWROM library version {FORMAT_VERSION}",
                         hint="train a library with 'wise lattice train'")
    checks = [("--mesh", "m", m, lambda a, b: int(a) == int(b)),
              ("--joint-width (relative to --pitch)", "width_ratio", width_ratio,
               lambda a, b: math.isclose(float(a), float(b), rel_tol=1e-9)),
              ("nu", "nu", nu, lambda a, b: math.isclose(float(a), float(b), rel_tol=1e-12))]
    for flag, key, want, same in checks:
        if want is not None and not same(meta.get(key), want):
            raise InputError(f"{what} {path}: the library was trained for {key} = {meta.get(key)}, the lattice has "
                             f"{flag} {want}", hint="train a library with the lattice's options ('wise lattice train')")
    if modes is not None and modes > int(meta.get("modes", 0)):
        raise InputError(f"--modes {modes} exceeds the library's {meta.get('modes')}",
                         hint=f"use --modes ≤ {meta.get('modes')} or train with more --modes")
    sd = doc["state_dict"]
    try:
        lib = {"meta": dict(meta), "K": {k: v.double().numpy() for k, v in sd["K"].items()},
               "phi": {k: v.double().numpy() for k, v in sd["phi"].items()},
               "spectra": {k: v.double().numpy() for k, v in sd["spectra"].items()},
               "archetypes": {k: {f: t.numpy() for f, t in a.items()} for k, a in sd["archetypes"].items()}}
    except (KeyError, AttributeError, TypeError) as exc:
        raise InputError(f"{what} {path}: the library is incomplete ({exc.__class__.__name__}: {exc})",
                         hint="train a library with 'wise lattice train'") from None
    return lib
