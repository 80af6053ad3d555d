"""``run``: signatures of every window of every input with a fitted model — the batch over files (one
``{stem}.sig.csv|npy`` each, ``--preview`` PNGs, ``run.json``) and the stream (a lone ``-``: a wide CSV on stdin,
one flushed output line per signature).

Choices where the spec is silent:
- ``window_end`` is the row index of the window's last sample in the cleaned input (after sorting and
  de-duplication) and ``time`` its epoch seconds (empty without a time column).
- The stream forward-fills an empty cell from the sensor's last value (up to 3 samples, as the batch path) and does
  not split gaps: a live feed has no median interval to judge them by.
"""

from __future__ import annotations

import csv
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from wisecli.cli.errors import InputError

from . import algorithm as A
from . import data as D


def outputs_for(item: Path, out_dir: Path, fmt: str, preview: bool) -> list[Path]:
    """The files ``run`` writes for one input."""
    from wisecli.runtime.batch import stem_of

    stem = stem_of(item)
    outs = [Path(out_dir) / f"{stem}.sig.{fmt}"]
    if preview:
        outs.append(Path(out_dir) / f"{stem}.sig.png")
    return outs


def signatures_of(model: A.Model, series: list[D.Series], source: str, *, window: int, step: int, blocks: int,
                  mode: str, scale: float, precision: str, device: str, by_position: bool, warn=None):
    """Signatures of one input's series: (window_end rows, times, signature matrix)."""
    q = model.quirks
    if "Q7" in q and len(series) > 1:
        series = [D.concat(series)]
    ends_all, times, sigs = [], [], []
    for s in series:
        X = D.match_sensors(s, model.sensors, source, warn, by_position)
        if s.T < window + 1:
            continue
        ends = A.window_ends(s.T, window, step, q)
        bad = np.r_[0, np.cumsum(np.isnan(X).any(axis=1))]
        ok = bad[ends + 1] - bad[ends - window] == 0
        if (~ok).any() and warn:
            warn(f"{source}: {int((~ok).sum())} window(s) still holding NaN skipped")
        ends = ends[ok]
        sig = A.signatures(model, X, window=window, step=step, blocks=blocks, mode=mode, scale=scale,
                           precision=precision, device=device, ends=ends)
        ends_all.append(ends + s.start)
        times.append(s.time[ends] if s.time is not None else np.full(len(ends), np.nan))
        sigs.append(sig)
    if not sigs:
        raise InputError(f"{source}: fewer than window + 1 = {window + 1} samples",
                         hint="give more data or a smaller --window")
    return np.concatenate(ends_all), np.concatenate(times), np.concatenate(sigs)


def run_one(model: A.Model, item: Path, out_dir: Path, *, opts: D.ReadOptions, window: int, step: int,
            blocks: int, mode: str, scale: float, precision: str, device: str, fmt: str, preview: bool,
            warn=None, by_position: bool = False) -> dict:
    """One input → ``{stem}.sig.csv|npy`` (and ``.sig.png``), written atomically; returns its record."""
    from wisecli.runtime.batch import stem_of
    from wisecli.runtime.io.atomic import save_npy

    from .plots import write_preview

    by_pos = by_position or Path(item).suffix.lower() == ".npy"
    series = D.read_input(item, replace(opts, quirks=model.quirks, keep=None if by_pos else list(model.sensors)),
                          warn)
    t0 = time.perf_counter()
    ends, times, sig = signatures_of(model, series, str(item), window=window, step=step, blocks=blocks,
                                     mode=mode, scale=scale, precision=precision, device=device,
                                     by_position=by_pos, warn=warn)
    secs = time.perf_counter() - t0
    stem = stem_of(item)
    out = Path(out_dir) / f"{stem}.sig.{fmt}"
    if fmt == "npy":
        save_npy(out, sig.astype(np.complex128 if np.iscomplexobj(sig) else np.float64))
    else:
        D.write_sig_csv(out, ends, times, A.feature_names(model, blocks, mode), sig)
    rec = {"output": str(out), "windows": int(sig.shape[0]), "features": int(sig.shape[1]),
           "signature_seconds": round(secs, 6)}
    if preview:
        nb = min(blocks, model.n_sensors)
        png = write_preview(Path(out_dir) / f"{stem}.sig.png", sig, nb, title=stem)
        rec["outputs"] = [str(out), str(png)]
    return rec


def run_files(model: A.Model, items: list[Path], out_dir: Path, *, opts: D.ReadOptions, config, model_path,
              window: int, step: int, blocks: int, mode: str, scale: float, precision: str, device,
              fmt: str, preview: bool, skip_existing: bool, overwrite: bool, fail_fast: bool, debug: bool,
              sink, by_position: bool = False) -> list[dict]:
    """The model-once batch (``runtime.batch.run_batch``) with ``run.json`` in ``out_dir``."""
    from wisecli.runtime.batch import BatchOptions, run_batch
    from wisecli.runtime.runrecord import RunRecord

    prec = precision if precision != "auto" else ("fp32" if device.type == "cuda" else "fp64")
    rr = RunRecord("smooth run", config=config, device=str(device), seed=None, inputs=items)
    rr.set("model", str(model_path))

    def process(item: Path) -> dict:
        return run_one(model, item, out_dir, opts=opts, window=window, step=step, blocks=blocks, mode=mode,
                       scale=scale, precision=prec, device=str(device), fmt=fmt, preview=preview, warn=sink.warn,
                       by_position=by_position)

    from wisecli.runtime.progress import progress

    with progress("smooth run", len(items)) as advance:
        return run_batch(items, process, outputs_for=lambda p: outputs_for(p, out_dir, fmt, preview),
                         options=BatchOptions(out_dir, skip_existing, overwrite, fail_fast, debug), sink=sink,
                         run_record=rr, progress=lambda done, total: advance())


def stream(model: A.Model, lines, write, *, opts: D.ReadOptions, window: int, step: int, blocks: int,
           mode: str, scale: float, warn=None, by_position: bool = False) -> int:
    """The lone ``-``: a wide CSV on ``lines`` (header first); one flushed output line per signature. Returns the
    number of samples read."""
    it = iter(lines)
    try:
        head = next(it)
    except StopIteration:
        raise InputError("stdin: no data (a header line was expected)",
                         hint="pipe a wide CSV: time,sensor1,...") from None
    delim = "\t" if "\t" in head and "," not in head else ","
    header = [h.strip() for h in next(csv.reader([head], delimiter=delim))]
    tidx, idx = D.select_columns(header, opts, "stdin")
    if by_position:
        if len(idx) != model.n_sensors:
            raise InputError(f"stdin: {len(idx)} sensor columns, the model has {model.n_sensors}",
                             hint="sensors matched by position (--by-position) must be the model's number, in its "
                                  "order: select them with --sensors/--exclude")
        cols = list(idx)
    else:
        idx = D.restrict(header, idx, replace(opts, keep=list(model.sensors)), "stdin", warn)
        names = [header[i] for i in idx]
        cols = [idx[names.index(n)] for n in model.sensors]
    st = A.Stream(model, window=window, step=step, blocks=blocks, mode=mode, scale=scale)
    fnames = A.feature_names(model, blocks, mode)
    if mode == "complex":
        fnames = [c for n in fnames for c in (f"{n}-re", f"{n}-im")]
    write(",".join(["window_end", "time", *fnames]) + "\n")
    last = np.full(len(cols), np.nan)
    age = np.zeros(len(cols), dtype=np.int64)
    prev_t = None
    n = 0
    for k, line in enumerate(it):
        if not line.strip():
            continue
        cells = next(csv.reader([line], delimiter=delim))
        if len(cells) != len(header):
            raise InputError(f"stdin: row {k + 2} has {len(cells)} cells, the header has {len(header)}",
                             hint="every row needs one cell per column")
        t = None
        if tidx is not None:
            t = float(D.parse_times([cells[tidx]], header[tidx], "stdin")[0])
            if prev_t is not None and t <= prev_t:
                raise InputError(f"stdin: time does not increase at row {k + 2}", hint="feed samples in time order")
            prev_t = t
        row = D.to_float([cells[c] for c in cols], "?", "stdin", first_row=k + 2)
        nan = np.isnan(row)
        age = np.where(nan, age + 1, 0)
        row = np.where(nan & (age <= D.FFILL_LIMIT), last, row)
        last = np.where(np.isnan(row), last, row)
        sig = st.push(row)
        if sig is not None:
            if np.iscomplexobj(sig):
                flat = np.empty(2 * len(sig))
                flat[0::2], flat[1::2] = sig.real, sig.imag
                sig = flat
            write(D.format_row(n, np.nan if t is None else t, sig))
        n += 1
    return n
