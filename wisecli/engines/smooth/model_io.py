"""CS model files: our JSON (``wise-smooth/1``) and the DCDB Wintermute layout (export/import).

Our JSON keeps min/max as full-precision floats (Python's shortest repr round-trips exactly). DCDB layout, from the
authors' scripts: ``{"<S>": {"<k>": {"idx": "<original index>", "min": "<int>", "max": "<int>"}}}`` with k the
sorted position and every value a string; sensors match by position. Q3 (reference) casts min/max with ``int()``
(truncation, so sensors in [0, 1] collapse); fixed writes ⌊min⌋ and ⌈max⌉ and warns when that widens a sensor's
range by more than 1 %.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from wisecli.cli.errors import InputError

from .algorithm import Model, Quirks

FORMAT = "wise-smooth/1"


def to_dict(m: Model) -> dict:
    info = dict(m.fit_info)
    info.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    info.setdefault("versions", _versions())
    return {"format": FORMAT, "sensors": list(m.sensors), "order": [int(i) for i in m.order],
            "min": [float(v) for v in m.fmin], "max": [float(v) for v in m.fmax], "eps": m.eps,
            "blocks": m.blocks, "window": m.window, "step": m.step, "scale": m.scale, "quirks": m.quirks.name,
            "constant_sensors": list(m.constant_sensors), "fit": info}


def _versions() -> dict:
    import platform
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("wisecli", "numpy", "torch"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def save(m: Model, path: Path) -> Path:
    from wisecli.runtime.io.atomic import write_text

    return write_text(path, json.dumps(to_dict(m), indent=1) + "\n")


def from_dict(d: dict, source: str = "model") -> Model:
    if not isinstance(d, dict):
        raise InputError(f"{source}: not a model", hint="give a model.json written by `wise smooth fit`")
    if d.get("format") != FORMAT:
        if is_dcdb(d):
            raise InputError(f"{source}: a DCDB model, not ours", hint="convert it: wise smooth fit --import-dcdb")
        raise InputError(f"{source}: unknown model format {d.get('format')!r}",
                         hint=f"expected {FORMAT!r} from `wise smooth fit`")
    try:
        S = len(d["sensors"])
        order = np.asarray(d["order"], dtype=np.int64)
        fmin, fmax = np.asarray(d["min"], dtype=np.float64), np.asarray(d["max"], dtype=np.float64)
        if sorted(order.tolist()) != list(range(S)) or len(fmin) != S or len(fmax) != S:
            raise ValueError("inconsistent sizes")
        return Model(sensors=list(d["sensors"]), order=order, fmin=fmin, fmax=fmax, eps=float(d["eps"]),
                     blocks=int(d["blocks"]), window=int(d["window"]), step=int(d["step"]),
                     scale=float(d.get("scale", 1.0)), quirks=Quirks.parse(d.get("quirks", "fixed")),
                     constant_sensors=list(d.get("constant_sensors", [])), fit_info=dict(d.get("fit", {})))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{source}: broken model file ({exc})", hint="refit it with `wise smooth fit`") from None


def load(path: Path) -> Model:
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such model file", hint="fit one with `wise smooth fit ... -o model.json`") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{path}: unknown model format (not JSON)",
                         hint="give a model.json written by `wise smooth fit`") from None
    return from_dict(d, str(path))


def is_dcdb(d) -> bool:
    return isinstance(d, dict) and len(d) == 1 and next(iter(d)).isdigit() and isinstance(next(iter(d.values())), dict)


def to_dcdb(m: Model, warn=None) -> dict:
    """DCDB layout; Q3 reproduces the reference's int() cast."""
    entries = {}
    widened = []
    for k, i in enumerate(m.order):
        lo, hi = float(m.fmin[i]), float(m.fmax[i])
        if "Q3" in m.quirks:
            a, b = int(lo), int(hi)
        else:
            a, b = math.floor(lo), math.ceil(hi)
            if (b - a) > 1.01 * (hi - lo) and (b - a) - (hi - lo) > 0:
                widened.append(m.sensors[i])
        entries[str(k)] = {"idx": str(int(i)), "min": str(a), "max": str(b)}
    if widened and warn:
        warn(f"DCDB export rounds min/max to integers: range widened by more than 1% for {len(widened)} "
             f"sensor(s): {', '.join(widened[:5])}")
    return {str(m.n_sensors): entries}


def from_dcdb(d: dict, sensors: list[str] | None = None, source: str = "DCDB model", **defaults) -> Model:
    if not is_dcdb(d):
        raise InputError(f"{source}: not a DCDB CS model", hint='expected {"<S>": {"<k>": {"idx", "min", "max"}}}')
    (S_txt, entries), = d.items()
    S = int(S_txt)
    try:
        order = np.empty(S, dtype=np.int64)
        fmin, fmax = np.empty(S), np.empty(S)
        for k in range(S):
            e = entries[str(k)]
            i = int(e["idx"])
            order[k], fmin[i], fmax[i] = i, float(e["min"]), float(e["max"])
        if sorted(order.tolist()) != list(range(S)):
            raise ValueError("idx values are not a permutation")
    except (KeyError, ValueError, TypeError) as exc:
        raise InputError(f"{source}: broken DCDB model ({exc})", hint="export it again") from None
    names = list(sensors) if sensors is not None else [f"s{i}" for i in range(S)]
    if len(names) != S:
        raise InputError(f"{source}: {S} sensors in the DCDB model, {len(names)} names given",
                         hint="DCDB models match sensors by position")
    return Model(sensors=names, order=order, fmin=fmin, fmax=fmax,
                 constant_sensors=[names[i] for i in range(S) if fmin[i] == fmax[i]],
                 fit_info={"imported": source}, **defaults)
