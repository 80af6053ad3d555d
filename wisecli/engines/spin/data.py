"""Inputs and outputs of `wise spin`: the simulation TOML (schema, presets, validation), `spins.npz`, OVF 2.0.

The TOML's keys are dotted (`hamiltonian.B1`); every key has a type and a default (`SCHEMA`), unknown keys are an
input error with a did-you-mean hint. Hamiltonian values left out come from the preset. Layers, lowest first:
SCHEMA defaults < preset < the TOML file < `--set` < the command's own flags (`--preset`, `--steps`) < `--sweep`.

Presets (spec §2.5; `mnre-standin` is **[reconstructed]**: the paper's exchange constants were not available):
`mnre-standin` J = (−20, −3, 1), B1 = 0.6, K1 = −0.2, Y1 = 0.05 meV (Δ = 0.1 meV), μ_s = 3; `gs-3q` (B1 = 0,
K1 = −0.5, Y1 = 0) and `gs-2q` (`gs-3q` with K_u = −6, easy plane) for validation.

OVF 2.0: text and binary 4/8 data, one segment, `meshtype rectangular`, xnodes·ynodes·znodes = the site count;
Spirit's `hex2d` writes the triangular lattice row by row (a1 fastest, then a2), which is our axial (m, n) with m
fastest: read as (L1, L2) = (xnodes, ynodes).
"""

from __future__ import annotations

import difflib
import io
import math
import re
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from wisecli.cli.errors import InputError

PRESETS: dict[str, dict[str, Any]] = {
    "mnre-standin": {"J": [-20.0, -3.0, 1.0], "B1": 0.6, "K1": -0.2, "Y1": 0.05, "Ku": 0.0, "mu_s": 3.0,
                     "three_site": "triangle"},
    "gs-3q": {"J": [-20.0, -3.0, 1.0], "B1": 0.0, "K1": -0.5, "Y1": 0.0, "Ku": 0.0, "mu_s": 3.0,
              "three_site": "triangle"},
    "gs-2q": {"J": [-20.0, -3.0, 1.0], "B1": 0.0, "K1": -0.5, "Y1": 0.0, "Ku": -6.0, "mu_s": 3.0,
              "three_site": "triangle"},
}
PRESET_STATUS = {"mnre-standin": "reconstructed stand-in for fcc Mn/Re(0001) (paper values not available; w = 2 nm "
                                 "by construction)",
                 "gs-3q": "validation: 3Q ground state", "gs-2q": "validation: 2Q ground state (easy plane)"}

# key: (kind, default); kind in float, int, str, bool, floats, ints, strs
SCHEMA: dict[str, tuple[str, Any]] = {
    "lattice.a_nm": ("float", 0.2761),
    "lattice.size": ("ints", [120, 4]),
    "lattice.boundary": ("strs", ["open", "periodic"]),
    "lattice.pinned_rows": ("int", 4),
    "hamiltonian.preset": ("str", "mnre-standin"),
    "hamiltonian.J": ("floats", None),
    "hamiltonian.B1": ("float", None),
    "hamiltonian.K1": ("float", None),
    "hamiltonian.Y1": ("float", None),
    "hamiltonian.three_site": ("str", None),
    "hamiltonian.Ku": ("float", None),
    "hamiltonian.axis": ("floats", [0.0, 0.0, 1.0]),
    "hamiltonian.mu_s": ("float", None),
    "hamiltonian.B_T": ("floats", [0.0, 0.0, 0.0]),
    "hamiltonian.D": ("float", 0.0),
    "init.kind": ("str", "wall"),
    "init.modes": ("ints", [1, 2]),
    "init.wall_line": ("str", "a2"),
    "init.noise": ("float", 0.05),
    "init.file": ("str", ""),
    "init.e_a": ("floats", [1.0, 0.0, 0.0]),
    "init.e_b": ("floats", [0.0, 1.0, 0.0]),
    "solver.method": ("str", "minimize"),
    "solver.minimizer": ("str", "lbfgs"),
    "solver.integrator": ("str", "heun"),
    "solver.dt_fs": ("float", 0.5),
    "solver.alpha": ("float", 0.3),
    "solver.steps": ("int", 20000),
    "solver.temperature_K": ("float", 0.0),
    "solver.max_torque": ("float", 1e-6),
    "output.every": ("int", 1000),
}
HAM_KEYS = ("J", "B1", "K1", "Y1", "three_site", "Ku", "mu_s")


def _coerce(key: str, value: Any, where: str) -> Any:
    kind = SCHEMA[key][0]
    try:
        if kind in ("floats", "ints", "strs"):
            if isinstance(value, str):
                value = [p.strip() for p in value.strip("[]").split(",") if p.strip()]
            if not isinstance(value, (list, tuple)):
                raise ValueError(value)
            conv = {"floats": float, "ints": int, "strs": lambda x: str(x).strip().strip("'\"")}[kind]
            out = []
            for v in value:
                if kind == "ints" and (isinstance(v, bool) or (isinstance(v, float) and not v.is_integer())):
                    raise ValueError(v)
                out.append(conv(v))
            if kind == "floats" and not all(math.isfinite(v) for v in out):
                raise ValueError(value)
            return out
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError(value)
            v = float(value)
            if not math.isfinite(v):
                raise ValueError(value)
            return v
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        return str(value)
    except (TypeError, ValueError):
        raise InputError(f"setting '{key}' from {where} must be {kind.rstrip('s')}{' list' if kind.endswith('s') else ''}"
                         f", got {value!r}", hint=f"for example {key} = {SCHEMA[key][1]!r}") from None


def _unknown(key: str, where: str) -> InputError:
    close = difflib.get_close_matches(key, list(SCHEMA), n=1, cutoff=0.5)
    return InputError(f"unknown setting '{key}' in {where}",
                      hint=f"did you mean '{close[0]}'?" if close else "see `wise spin info` for the TOML keys")


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def parse_toml(text: str, where: str) -> dict[str, Any]:
    """One TOML document as flat, typed settings (unknown keys and bad values are input errors)."""
    try:
        tree = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{where} is not valid TOML: {exc}", hint="fix the line it names (see https://toml.io)") from None
    flat = _flatten(tree)
    for k in flat:
        if k not in SCHEMA:
            raise _unknown(k, where)
    return {k: _coerce(k, v, where) for k, v in flat.items()}


def read_toml(path: Path | str, stdin_text: str | None = None) -> dict[str, Any]:
    """A simulation TOML file (or the text of `-`) as flat settings."""
    if stdin_text is not None:
        return parse_toml(stdin_text, "the TOML on stdin")
    path = Path(path)
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise InputError(f"{path} is a folder, not a TOML file", hint="pass the .toml files") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", hint="check the path") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text", hint="the input is a TOML parameter file") from None
    if not text.strip():
        raise InputError(f"{path} is empty", hint="a TOML parameter file; see `wise spin info` for its keys")
    return parse_toml(text, str(path))


def parse_overrides(words, where: str) -> dict[str, Any]:
    """`key=value` words (dotted TOML keys) as typed settings."""
    out: dict[str, Any] = {}
    for w in words or []:
        key, sep, value = w.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"{where} expects key=value, got {w!r}", hint="for example hamiltonian.B1=0.7")
        if key not in SCHEMA:
            raise _unknown(key, where)
        text = value.strip()
        try:
            val = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            val = text
        out[key] = _coerce(key, val, where)
    return out


def parse_sweep(spec: str | None) -> tuple[str, list] | None:
    """`--sweep key=v1,v2,...`: the key and its typed values."""
    if not spec:
        return None
    key, sep, values = spec.partition("=")
    key = key.strip()
    if not sep or key not in SCHEMA:
        if sep and key:
            raise _unknown(key, "--sweep")
        raise InputError(f"--sweep expects key=v1,v2,..., got {spec!r}", hint="for example hamiltonian.B1=0.55,0.6,0.7")
    kind = SCHEMA[key][0]
    if kind not in ("float", "int"):
        raise InputError(f"--sweep takes a numeric setting, not {key}", hint="for example hamiltonian.B1=0.55,0.6")
    vals = [_coerce(key, v, "--sweep") for v in values.split(",") if v.strip()]
    if not vals:
        raise InputError("--sweep has no values", hint="for example hamiltonian.B1=0.55,0.6,0.7")
    return key, vals


def effective(toml: dict, *, preset: str | None = None, sets: dict | None = None, flags: dict | None = None) -> dict:
    """The effective flat settings of one job: schema defaults < preset < TOML < --set < flags; hamiltonian keys
    filled from the preset; validated (spec §8)."""
    cfg = {k: v[1] for k, v in SCHEMA.items()}
    cfg.update(toml)
    cfg.update(sets or {})
    if preset is not None:
        cfg["hamiltonian.preset"] = preset
    cfg.update({k: v for k, v in (flags or {}).items() if v is not None})
    name = cfg["hamiltonian.preset"]
    if name not in PRESETS:
        close = difflib.get_close_matches(name, list(PRESETS), n=1)
        raise InputError(f"unknown preset '{name}'", hint=f"did you mean '{close[0]}'?" if close else
                         f"presets: {', '.join(PRESETS)}")
    for k in HAM_KEYS:
        if cfg.get(f"hamiltonian.{k}") is None:
            cfg[f"hamiltonian.{k}"] = PRESETS[name][k]
    validate(cfg)
    return cfg


def _one_of(key, value, allowed):
    if value not in allowed:
        close = difflib.get_close_matches(str(value), list(allowed), n=1)
        raise InputError(f"{key} = {value!r} is not one of {', '.join(allowed)}",
                         hint=f"did you mean '{close[0]}'?" if close else f"use one of {', '.join(allowed)}")


def validate(cfg: dict) -> None:
    """Refuse what spec §8 names before any work (exit 2)."""
    from .algorithm import INTEGRATORS, MINIMIZERS
    from .model import THREE_SITE
    from .synthetic import M_POINT, STATES, WALL_LINES

    size, bnd = cfg["lattice.size"], cfg["lattice.boundary"]
    if len(size) != 2 or any(s < 1 for s in size):
        raise InputError(f"lattice.size = {size}: give two positive sizes [L1, L2]", hint="for example [120, 4]")
    if len(bnd) != 2:
        raise InputError(f"lattice.boundary = {bnd}: give one boundary per axis", hint='["open", "periodic"]')
    for b in bnd:
        _one_of("lattice.boundary", b, ("periodic", "open"))
    if not (cfg["lattice.a_nm"] > 0):
        raise InputError(f"lattice.a_nm = {cfg['lattice.a_nm']} must be > 0", hint="0.2761 (Re(0001))")
    _one_of("hamiltonian.three_site", cfg["hamiltonian.three_site"], THREE_SITE)
    if len(cfg["hamiltonian.J"]) != 3:
        raise InputError("hamiltonian.J needs three values J1, J2, J3", hint="for example J = [-20, -3, 1]")
    for k in ("hamiltonian.axis", "hamiltonian.B_T", "init.e_a", "init.e_b"):
        if len(cfg[k]) != 3:
            raise InputError(f"{k} needs three components", hint="for example [0, 0, 1]")
    if math.hypot(*cfg["hamiltonian.axis"]) == 0:
        raise InputError("hamiltonian.axis is the zero vector", hint="for example [0, 0, 1]")
    if not cfg["hamiltonian.mu_s"] > 0:
        raise InputError("hamiltonian.mu_s must be > 0", hint="3 (μ_B)")
    kind = cfg["init.kind"]
    _one_of("init.kind", kind, STATES)
    for axis, (L, b) in enumerate(zip(size, bnd)):
        if b == "periodic" and L < 4:
            raise InputError(f"lattice.size[{axis}] = {L} < 4 along a periodic axis (shell 3 would wrap onto itself)",
                             hint="use at least 4 sites along a periodic axis")
        if b == "periodic" and L % 2 and kind in M_POINT:
            raise InputError(f"lattice.size[{axis}] = {L} is odd along a periodic axis: the {kind} state needs "
                             "even sizes", hint="use even sizes")
        if b == "periodic" and L % 3 and kind == "neel":
            raise InputError(f"lattice.size[{axis}] = {L} is not a multiple of 3: the Néel state does not fit",
                             hint="use multiples of 3 along periodic axes")
    if cfg["lattice.pinned_rows"] < 0:
        raise InputError("lattice.pinned_rows must be ≥ 0", hint="4 (rows at each end)")
    if kind == "wall":
        modes = cfg["init.modes"]
        if len(modes) != 2 or any(m not in (1, 2, 3) for m in modes):
            raise InputError(f"init.modes = {modes}: two of 1, 2, 3", hint="for example [1, 2]")
        if modes[0] == modes[1]:
            raise InputError(f"init.modes = {modes}: a wall needs two different modes", hint="for example [1, 2]")
        _one_of("init.wall_line", cfg["init.wall_line"], WALL_LINES)
        if size[0] < 2 * cfg["lattice.pinned_rows"] + 8:
            raise InputError(f"lattice.size[0] = {size[0]} < 2·pinned_rows + 8 = {2 * cfg['lattice.pinned_rows'] + 8}",
                             hint="a longer strip across the wall, or fewer pinned rows")
        ea, eb = np.array(cfg["init.e_a"]), np.array(cfg["init.e_b"])
        if np.linalg.norm(ea) == 0 or np.linalg.norm(eb) == 0 or abs(ea @ eb) > 1e-9 * np.linalg.norm(ea) * np.linalg.norm(eb):
            raise InputError("init.e_a and init.e_b must be nonzero and perpendicular", hint="[1, 0, 0] and [0, 1, 0]")
    if kind == "file" and not cfg["init.file"]:
        raise InputError("init.kind = 'file' needs init.file", hint="a spins.npz or an OVF 2.0 file")
    if cfg["init.noise"] < 0:
        raise InputError("init.noise must be ≥ 0", hint="0.05")
    _one_of("solver.method", cfg["solver.method"], ("minimize", "llg"))
    _one_of("solver.minimizer", cfg["solver.minimizer"], MINIMIZERS)
    _one_of("solver.integrator", cfg["solver.integrator"], INTEGRATORS)
    if not cfg["solver.dt_fs"] > 0:
        raise InputError(f"solver.dt_fs = {cfg['solver.dt_fs']} must be > 0", hint="0.5 fs")
    if cfg["solver.alpha"] < 0:
        raise InputError(f"solver.alpha = {cfg['solver.alpha']} < 0", hint="damping is ≥ 0 (0.3)")
    if cfg["solver.temperature_K"] < 0:
        raise InputError(f"solver.temperature_K = {cfg['solver.temperature_K']} < 0", hint="temperatures are ≥ 0 K")
    if cfg["solver.temperature_K"] > 0 and cfg["solver.method"] == "llg" and cfg["solver.integrator"] == "heun":
        raise InputError("temperature needs the stochastic integrator", hint="set solver.integrator = 'sib'")
    if cfg["solver.temperature_K"] > 0 and cfg["solver.alpha"] == 0:
        raise InputError("temperature needs damping (alpha > 0)", hint="set solver.alpha, e.g. 0.3")
    if cfg["solver.steps"] < 0:
        raise InputError("solver.steps must be ≥ 0", hint="20000")
    if not cfg["solver.max_torque"] > 0:
        raise InputError("solver.max_torque must be > 0", hint="1e-6 meV")
    if cfg["output.every"] < 1:
        raise InputError("output.every must be ≥ 1", hint="1000")


def params_of(cfg: dict):
    """The `model.Params` of effective settings."""
    from .model import Params

    return Params(J=tuple(cfg["hamiltonian.J"]), B1=cfg["hamiltonian.B1"], K1=cfg["hamiltonian.K1"],
                  Y1=cfg["hamiltonian.Y1"], Ku=cfg["hamiltonian.Ku"], axis=tuple(cfg["hamiltonian.axis"]),
                  mu_s=cfg["hamiltonian.mu_s"], B_T=tuple(cfg["hamiltonian.B_T"]), D=cfg["hamiltonian.D"],
                  three_site=cfg["hamiltonian.three_site"])


def to_toml(cfg: dict) -> str:
    """Effective settings back as a TOML document (stored in spins.npz as `params_toml`)."""
    sections: dict[str, list[str]] = {}
    for k, v in cfg.items():
        sec, key = k.split(".", 1)
        if isinstance(v, str):
            val = '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        elif isinstance(v, (list, tuple)):
            val = "[" + ", ".join(f'"{x}"' if isinstance(x, str) else repr(x) for x in v) + "]"
        else:
            val = repr(v)
        sections.setdefault(sec, []).append(f"{key} = {val}")
    return "\n".join(f"[{s}]\n" + "\n".join(lines) + "\n" for s, lines in sections.items())


# ------------------------------------------------------------------------------------------------- spins files
def read_spins(path: Path | str, *, renormalize: bool = False) -> dict:
    """A `spins.npz` (or OVF 2.0 file) as {"spins" (3, L1, L2) float64, "pinned", "a_nm", "params_toml"};
    missing keys, wrong shapes, non-finite values and |S| off by > 1e-3 (unless `renormalize`) are input errors."""
    path = Path(path)
    if path.suffix.lower() in (".ovf", ".omf"):
        spins = read_ovf(path)
        out = {"spins": spins, "pinned": None, "a_nm": None, "params_toml": None}
    else:
        try:
            with np.load(path, allow_pickle=False) as z:
                files = set(z.files)
                if "spins" not in files:
                    raise InputError(f"{path}: no 'spins' array", hint="a spins.npz written by `wise spin run`")
                spins = np.asarray(z["spins"], dtype=np.float64)
                out = {"spins": spins, "pinned": np.asarray(z["pinned"], dtype=bool) if "pinned" in files else None,
                       "a_nm": float(z["a_nm"]) if "a_nm" in files else None,
                       "params_toml": str(z["params_toml"]) if "params_toml" in files else None}
        except InputError:
            raise
        except IsADirectoryError:
            raise InputError(f"{path} is a folder, not a spins file", hint="pass spins.npz files") from None
        except FileNotFoundError:
            raise InputError(f"input not found: {path}", hint="check the path") from None
        except Exception as exc:  # zip/npy format errors of a corrupt or truncated file
            raise InputError(f"{path} is not a readable .npz ({type(exc).__name__})",
                             hint="a spins.npz written by `wise spin run`") from None
    spins = out["spins"]
    if spins.ndim != 3 or spins.shape[0] != 3 or min(spins.shape[1:]) < 2:
        raise InputError(f"{path}: spins have shape {spins.shape}, expected (3, L1, L2)", hint="a spins.npz of one system")
    if not np.isfinite(spins).all():
        raise InputError(f"{path}: spins contain NaN or infinite values", hint="the file is damaged")
    norm = np.linalg.norm(spins, axis=0)
    if renormalize:
        if (norm == 0).any():
            raise InputError(f"{path}: a spin has zero length", hint="the file is damaged")
        out["spins"] = spins / norm
    elif np.abs(norm - 1).max() > 1e-3:
        raise InputError(f"{path}: |S| differs from 1 by {np.abs(norm - 1).max():.3g}", hint="pass --renormalize")
    if out["pinned"] is not None and out["pinned"].shape != spins.shape[1:]:
        raise InputError(f"{path}: pinned mask shape {out['pinned'].shape} does not match the spins",
                         hint="the file is damaged")
    return out


def read_ovf(path: Path) -> np.ndarray:
    """An OVF 2.0 file (text, binary 4 or binary 8; one segment) as spins (3, L1, L2)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", hint="check the path") from None
    head_end = raw.find(b"# Begin: Data")
    if not raw.startswith(b"# OOMMF OVF 2") or head_end < 0:
        raise InputError(f"{path} is not an OVF 2.0 file", hint="OVF 2.0 from Spirit or mumax, or a spins.npz")
    header = raw[:head_end].decode("latin-1")
    dims = {}
    for key in ("xnodes", "ynodes", "znodes", "valuedim"):
        m = re.search(rf"#\s*{key}:\s*(\d+)", header)
        if not m:
            raise InputError(f"{path}: OVF header lacks {key}", hint="an OVF 2.0 file with a rectangular mesh")
        dims[key] = int(m.group(1))
    nx, ny, nz, vd = dims["xnodes"], dims["ynodes"], dims["znodes"], dims["valuedim"]
    if vd != 3 or nz != 1:
        raise InputError(f"{path}: OVF with valuedim {vd}, znodes {nz}; expected 3 and 1", hint="one spin layer")
    count = nx * ny * 3
    line_end = raw.find(b"\n", head_end)
    kind = raw[head_end:line_end].decode("latin-1").strip().lower()
    body = raw[line_end + 1:]
    try:
        if "binary 8" in kind:
            if np.frombuffer(body[:8], "<f8")[0] != 123456789012345.0:
                raise ValueError("bad check value")
            data = np.frombuffer(body[8:8 + 8 * count], "<f8")
        elif "binary 4" in kind:
            if np.frombuffer(body[:4], "<f4")[0] != 1234567.0:
                raise ValueError("bad check value")
            data = np.frombuffer(body[4:4 + 4 * count], "<f4")
        elif "text" in kind:
            text = body.split(b"# End: Data")[0].decode("latin-1")
            data = np.loadtxt(io.StringIO(text)).ravel()
        else:
            raise ValueError(f"data format {kind!r}")
    except ValueError as exc:
        raise InputError(f"{path}: unreadable OVF data ({exc})", hint="text, binary 4 or binary 8 data") from None
    if data.size != count:
        raise InputError(f"{path}: OVF data has {data.size} values, expected {count}", hint="the file is truncated")
    return data.astype(np.float64).reshape(ny, nx, 3).transpose(2, 1, 0).copy()


def write_ovf(path: Path, spins: np.ndarray, a_nm: float, title: str = "wise spin") -> None:
    """Spins (3, L1, L2) as OVF 2.0 binary 8 (x = a1 index fastest), atomically."""
    from wisecli.runtime.io.atomic import write_bytes

    L1, L2 = spins.shape[1:]
    a = a_nm * 1e-9
    head = "\n".join([
        "# OOMMF OVF 2.0", "# Segment count: 1", "# Begin: Segment", "# Begin: Header", f"# Title: {title}",
        "# meshtype: rectangular", "# meshunit: m", f"# xbase: 0", f"# ybase: 0", f"# zbase: 0",
        f"# xstepsize: {a}", f"# ystepsize: {a * math.sqrt(3) / 2}", f"# zstepsize: {a}",
        f"# xmin: 0", f"# ymin: 0", f"# zmin: 0", f"# xmax: {L1 * a}", f"# ymax: {L2 * a}", f"# zmax: {a}",
        f"# xnodes: {L1}", f"# ynodes: {L2}", "# znodes: 1", "# valuedim: 3", "# valuelabels: spin_x spin_y spin_z",
        "# valueunits: 1 1 1", "# End: Header", "# Begin: Data Binary 8", ""])
    data = np.ascontiguousarray(spins.transpose(2, 1, 0), dtype="<f8").tobytes()
    tail = "\n# End: Data Binary 8\n# End: Segment\n"
    write_bytes(path, head.encode() + np.array([123456789012345.0], "<f8").tobytes() + data + tail.encode())
