"""``fit``: learn a CS model (sensor order π by the correlation walk, per-sensor min and max) over all training
inputs, or convert a DCDB model, and write it as model.json (spec §3 ``fit``).

Choice where the spec is silent: Q6 (reference) keeps only the first series group (the first node folder of an
HPC-ODA segment, else the first input) when fitting.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from wisecli.cli.errors import InputError

from . import algorithm as A
from . import data as D


def fit(paths: list[Path], output: Path, *, opts: D.ReadOptions, blocks: int = 20, window: int = 60,
        step: int = 10, eps: float = 1e-4, scale: float = 1.0, quirks="fixed", convention: str = "scripts",
        device: str = "cpu",
        export_dcdb: Path | None = None, import_dcdb: Path | None = None, overwrite: bool = False,
        warn=None) -> dict:
    """Learn π, min and max over all inputs (read with ``opts``) and write the model; returns the summary."""
    from wisecli.runtime.io.atomic import refuse_existing, write_json

    for name, val in (("window", window), ("step", step), ("blocks", blocks)):
        if val < 1:
            raise InputError(f"--{name} must be at least 1, got {val}", hint=f"e.g. --{name} 10")
    q = A.Quirks.parse(quirks)
    refuse_existing(Path(output), overwrite)
    if export_dcdb:
        refuse_existing(Path(export_dcdb), overwrite)
    kw = dict(blocks=blocks, window=window, step=step, eps=eps, scale=scale, quirks=q,
              convention=A.check_convention(convention))
    t0 = time.perf_counter()
    if import_dcdb is not None:
        try:
            d = json.loads(Path(import_dcdb).read_text())
        except (OSError, ValueError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise InputError(f"{import_dcdb}: not a readable DCDB model", hint="give the JSON DCDB exported") from None
        names = D.read_all(paths, replace(opts, quirks=q), warn)[0].sensors if paths else None
        model = A.from_dcdb(d, names, str(import_dcdb), **kw)
    else:
        series = D.read_all(paths, replace(opts, quirks=q), warn)
        if "Q6" in q:
            series = [s for s in series if s.group == series[0].group]
        names = series[0].sensors
        for s in series[1:]:
            if s.sensors != names:
                missing = sorted(set(names) ^ set(s.sensors))
                raise InputError(f"{s.name}: its sensors differ from the first input's ({', '.join(missing[:5])})",
                                 hint="fit on inputs with the same sensors, or select them with --sensors")
        rows = sum(s.T for s in series)
        if rows < window + 1:
            raise InputError(f"only {rows} samples, fewer than window + 1 = {window + 1}",
                             hint="give more data or a smaller --window")
        model = A.fit([s.values for s in series], names, device=str(device), **kw)
        dropped = sorted({n for s in series for n in s.dropped})
        model.fit_info.update(inputs=[str(p) for p in paths], series=len(series), all_nan_sensors=dropped)
    if model.constant_sensors and warn:
        warn(f"{len(model.constant_sensors)} constant sensor(s) kept (they normalise to 0): "
             f"{', '.join(model.constant_sensors[:8])}")
    A.save(model, Path(output))
    doc = {"sensors": model.n_sensors, "rows": int(model.fit_info.get("rows", 0)),
           "constant_sensors": model.constant_sensors,
           "order_head": [model.sensors[i] for i in model.order[:10]],
           "all_nan_sensors": model.fit_info.get("all_nan_sensors", []),
           "seconds": round(time.perf_counter() - t0, 4), "model": str(output)}
    if export_dcdb:
        write_json(Path(export_dcdb), A.to_dcdb(model, warn), indent=1)
        doc["dcdb"] = str(export_dcdb)
    return doc
