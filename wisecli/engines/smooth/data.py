"""Monitoring time series in and signatures out: wide CSV/TSV, the HPC-ODA layout, ``.npy``; no pandas.

Formats (spec §3, §4):
- Wide CSV/TSV: a header, a time column (``--time-col``, else the column named time/timestamp/ts, else the
  first), numeric sensor columns (``--sensors``/``--exclude`` globs), optional label and target columns.
  Times are epoch numbers (seconds, milliseconds, microseconds or nanoseconds by magnitude: > 1e17 ns,
  > 1e14 µs, > 1e11 ms) or ISO 8601 strings (naive ones read as UTC).
- HPC-ODA (``--layout hpcoda``): ``sensors/[<node>/]*.csv`` (timestamp,value, a header optional) and
  ``responses/[<node>/]responses.csv`` (timestamp,label); one series per node folder.
- ``.npy``: time × sensors (one series) or runs × time × sensors (one series per run, sensors ``s0…``; a
  window's ``window_end`` is then its row in the flattened runs·time array).

Cleaning: strictly increasing time is required (``--sort-time``, ``--dedupe last`` repair it); gaps above 1.5×
the median interval split a series (``--gaps split``; ``fail`` refuses, ``ignore`` keeps); NaNs are forward-filled
up to 3 samples; all-NaN sensors are dropped with a warning.

Choices where the spec is silent: empty cells are NaN; HPC-ODA exact alignment keeps the timestamps every sensor
has (an inner join); with ``--align-tolerance`` the grid is the timestamps of the sensor with the most readings
and each sensor (and the label) takes its last reading at or before a grid time within the tolerance.
"""

from __future__ import annotations

import csv
import fnmatch
import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from wisecli.cli.config import one_of
from wisecli.cli.errors import InputError

from .algorithm import FIXED, Quirks

TIME_NAMES = ("time", "timestamp", "ts")
LAYOUTS = ("auto", "wide", "hpcoda", "npy")
GAPS = ("split", "ignore", "fail")
DEDUPE = ("last", "first")
FFILL_LIMIT = 3


@dataclass
class Series:
    """One aligned multivariate series: ``values`` (T × S), optional epoch-second times and per-sample labels."""

    name: str
    values: np.ndarray
    sensors: list[str]
    time: np.ndarray | None = None
    labels: np.ndarray | None = None  # str per sample
    target: np.ndarray | None = None  # float per sample
    group: str = ""
    start: int = 0  # row of the first sample in the cleaned input (gap segments)
    dropped: list[str] = field(default_factory=list)  # all-NaN sensors left out when reading

    @property
    def T(self) -> int:
        return self.values.shape[0]


@dataclass
class ReadOptions:
    time_col: str | None = None
    sensors: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    label_col: str | None = None
    target_col: str | None = None
    sort_time: bool = False
    dedupe: str | None = None  # None | "last" | "first"
    gaps: str = "split"  # split | ignore | fail
    align_tolerance: float | None = None
    layout: str = "auto"  # auto | wide | hpcoda | npy
    quirks: Quirks = FIXED
    keep: list[str] | None = None  # exact sensor names to read (a model's); other columns ignored with a warning

    def __post_init__(self):
        for name, value, allowed in (("layout", self.layout, LAYOUTS), ("gaps", self.gaps, GAPS),
                                     ("dedupe", self.dedupe, (None, *DEDUPE))):
            one_of(f"--{name}", value, allowed)
        if self.align_tolerance is not None and not (math.isfinite(self.align_tolerance)
                                                     and self.align_tolerance >= 0):
            raise InputError(f"--align-tolerance must be a finite number of seconds ≥ 0, got {self.align_tolerance}",
                             hint="e.g. --align-tolerance 0.5")


# ---------------------------------------------------------------------------------------------- helpers
def parse_times(tokens: list[str], column: str, source: str) -> np.ndarray:
    """Epoch numbers (unit by magnitude) or ISO 8601 → float64 epoch seconds."""
    try:
        t = np.array(tokens, dtype=np.float64)
        mag = np.nanmax(np.abs(t)) if len(t) else 0.0
        div = 1e9 if mag > 1e17 else 1e6 if mag > 1e14 else 1e3 if mag > 1e11 else 1.0
        return t / div
    except ValueError:
        pass
    out = np.empty(len(tokens))
    for i, tok in enumerate(tokens):
        try:
            d = datetime.fromisoformat(tok.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InputError(f"{source}: row {i + 2}, column {column!r}: {tok!r} is neither a number nor an "
                             "ISO 8601 time", hint="fix the cell or name the time column with --time-col") from None
        if d.tzinfo is None:
            d = d.replace(tzinfo=timezone.utc)
        out[i] = d.timestamp()
    return out


def to_float(col: list[str], column: str, source: str, first_row: int = 2) -> np.ndarray:
    """Cells → float64 (empty or ``nan`` → NaN, a missing reading); a non-numeric cell, or an infinite one
    (``inf``: no sensor reads that, and it would turn every normalised value into NaN), is an InputError
    naming row and column."""
    try:
        out = np.array([c if c.strip() else "nan" for c in col], dtype=np.float64)
    except ValueError:
        for i, c in enumerate(col):
            try:
                float(c) if c.strip() else None
            except ValueError:
                raise InputError(f"{source}: non-numeric cell {c!r} at row {i + first_row}, column {column!r}",
                                 hint="fix the cell, or leave the column out with --exclude") from None
        raise
    inf = np.isinf(out)
    if inf.any():
        i = int(np.flatnonzero(inf)[0])
        raise InputError(f"{source}: infinite value {col[i]!r} at row {i + first_row}, column {column!r}",
                         hint="blank the cell (a missing reading), fix it, or leave the column out with --exclude")
    return out


def select_columns(header: list[str], opts: ReadOptions, source: str) -> tuple[int | None, list[int]]:
    """(time column index, sensor column indices) from the header and the options."""
    low = [h.strip().lower() for h in header]
    if opts.time_col is not None:
        if opts.time_col.lower() == "none":
            tidx = None
        elif opts.time_col in header:
            tidx = header.index(opts.time_col)
        else:
            raise InputError(f"{source}: no time column {opts.time_col!r}",
                             hint=f"columns are: {', '.join(header[:12])}")
    else:
        tidx = next((low.index(n) for n in TIME_NAMES if n in low), 0)
    special = {tidx}
    for name, what in ((opts.label_col, "--label-col"), (opts.target_col, "--target-col")):
        if name is not None:
            if name not in header:
                raise InputError(f"{source}: no column {name!r} for {what}",
                                 hint=f"columns are: {', '.join(header[:12])}")
            special.add(header.index(name))
    idx = [i for i, h in enumerate(header) if i not in special]
    if opts.sensors:
        idx = [i for i in idx if any(fnmatch.fnmatchcase(header[i], g) for g in opts.sensors)]
    if opts.exclude:
        idx = [i for i in idx if not any(fnmatch.fnmatchcase(header[i], g) for g in opts.exclude)]
    if not idx:
        raise InputError(f"{source}: no sensor columns selected", hint="check --sensors/--exclude and --time-col")
    return tidx, idx


def missing_sensors_error(source: str, missing: list[str], model_sensors: list[str], n_input: int) -> InputError:
    """The model's sensors absent from an input: one Error line naming them and a Hint on mapping by position."""
    more = f" (+{len(missing) - 10} more)" if len(missing) > 10 else ""
    if n_input == len(model_sensors):
        hint = (f"the input has {n_input} sensor columns, as many as the model: map them to the model's sensors "
                "in order with --by-position (or rename the columns)")
    else:
        hint = (f"the model has {len(model_sensors)} sensors, the input {n_input} sensor columns: select "
                f"{len(model_sensors)} with --sensors/--exclude and map them in order with --by-position, or "
                "rename the columns")
    return InputError(f"{source}: model sensors missing: {', '.join(missing[:10])}{more}", hint=hint)


def restrict(header: list[str], idx: list[int], opts: ReadOptions, source: str, warn=None) -> list[int]:
    """With ``opts.keep`` (a model's sensors): only those columns are read; the others are ignored, warned. A model
    sensor that is not among the selected columns is an InputError (exit 2) naming it."""
    if opts.keep is None:
        return idx
    have = {header[i] for i in idx}
    missing = [n for n in opts.keep if n not in have]
    if missing:
        raise missing_sensors_error(source, missing, list(opts.keep), len(idx))
    keep = set(opts.keep)
    extra = [header[i] for i in idx if header[i] not in keep]
    if extra and warn:
        warn(f"{source}: {len(extra)} column(s) not in the model ignored: {', '.join(extra[:5])}")
    return [i for i in idx if header[i] in keep]


def check_time(s: Series, opts: ReadOptions, source: str) -> Series:
    """Strictly increasing time, or the documented repair (``--sort-time``, ``--dedupe last|first``)."""
    if s.time is None:
        return s
    t = s.time
    d = np.diff(t)
    if (d < 0).any():
        if not opts.sort_time:
            i = int(np.flatnonzero(d < 0)[0])
            raise InputError(f"{source}: time goes backwards at row {i + 3}", hint="sort it with --sort-time")
        p = np.argsort(t, kind="stable")
        s = take(s, p)
        t, d = s.time, np.diff(s.time)
    if (d == 0).any():
        if opts.dedupe not in ("last", "first"):
            i = int(np.flatnonzero(d == 0)[0])
            raise InputError(f"{source}: duplicate timestamp {t[i]!r} at row {i + 3}",
                             hint="keep one reading per time with --dedupe last")
        if opts.dedupe == "last":
            keep = np.append(d != 0, True)
        else:
            keep = np.insert(d != 0, 0, True)
        s = take(s, np.flatnonzero(keep))
    return s


def take(s: Series, idx) -> Series:
    return replace(s, values=s.values[idx], time=None if s.time is None else s.time[idx],
                   labels=None if s.labels is None else s.labels[idx],
                   target=None if s.target is None else s.target[idx])


def ffill(values: np.ndarray, limit: int = FFILL_LIMIT) -> np.ndarray:
    """Forward-fill NaN runs of at most ``limit`` samples after the last valid value (vectorised per column)."""
    v = values.copy()
    nan = np.isnan(v)
    if not nan.any():
        return v
    T = v.shape[0]
    idx = np.where(~nan, np.arange(T)[:, None], -1)
    last = np.maximum.accumulate(idx, axis=0)
    ok = nan & (last >= 0) & (np.arange(T)[:, None] - last <= limit)
    cols = np.broadcast_to(np.arange(v.shape[1]), v.shape)
    v[ok] = v[last[ok], cols[ok]]
    return v


def split_gaps(s: Series, mode: str, source: str) -> list[Series]:
    """Gaps > 1.5× the median interval split the series (``split``), refuse it (``fail``) or are ignored."""
    if s.time is None or s.T < 3 or mode == "ignore":
        return [s]
    d = np.diff(s.time)
    cut = np.flatnonzero(d > 1.5 * np.median(d))
    if len(cut) == 0:
        return [s]
    if mode == "fail":
        raise InputError(f"{source}: {len(cut)} gap(s) longer than 1.5x the median interval, the first after "
                         f"row {int(cut[0]) + 2}", hint="use --gaps split (default) or --gaps ignore")
    bounds = [0, *(cut + 1).tolist(), s.T]
    return [replace(take(s, slice(a, b)), name=f"{s.name}#{k}", start=s.start + a) for k, (a, b) in enumerate(zip(bounds, bounds[1:]))]


def finish(s: Series, opts: ReadOptions, source: str, warn) -> list[Series]:
    """Common cleaning: time checks, all-NaN sensors dropped, NaN forward fill, gap splitting."""
    s = check_time(s, opts, source)
    inf = np.isinf(s.values)
    if inf.any():
        r, c = (int(v) for v in np.argwhere(inf)[0])
        raise InputError(f"{source}: infinite value at sample {r}, sensor {s.sensors[c]!r}",
                         hint="replace it with NaN (a missing reading) or a finite value")
    allnan = np.isnan(s.values).all(axis=0)
    if allnan.any():
        names = [n for n, a in zip(s.sensors, allnan) if a]
        if warn:
            warn(f"{source}: dropped all-NaN sensor(s): {', '.join(names[:10])}")
        s = replace(s, values=s.values[:, ~allnan], sensors=[n for n, a in zip(s.sensors, allnan) if not a],
                    dropped=names)
        if not s.sensors:
            raise InputError(f"{source}: every sensor is empty", hint="check the file")
    s = replace(s, values=ffill(s.values))
    return split_gaps(s, opts.gaps, source)


# ---------------------------------------------------------------------------------------------- readers
def read_wide(path: Path, opts: ReadOptions, warn=None) -> list[Series]:
    """A wide table (tokenised by the shared ``runtime.io.tables`` reader; numbers parsed here, empty → NaN)."""
    from wisecli.runtime.io.tables import read_table

    source = str(path)
    t = read_table(path)
    header, body = t.columns, t.rows
    if not header:
        raise InputError(f"{source}: empty table", hint="a header line and one row per sample are expected")
    tidx, idx = select_columns(header, opts, source)
    idx = restrict(header, idx, opts, source, warn)
    cols = list(zip(*body)) if body else [()] * len(header)
    values = np.stack([to_float(list(cols[i]), header[i], source) for i in idx], axis=1) if body else \
        np.zeros((0, len(idx)))
    time = parse_times(list(cols[tidx]), header[tidx], source) if (tidx is not None and body) else None
    labels = np.array(cols[header.index(opts.label_col)], dtype=str) if opts.label_col and body else None
    target = to_float(list(cols[header.index(opts.target_col)]), opts.target_col, source) \
        if opts.target_col and body else None
    name = Path(path).name.split(".")[0]
    s = Series(name=name, values=values, sensors=[header[i] for i in idx], time=time, labels=labels,
               target=target, group=name)
    return finish(s, opts, source, warn)


def read_npy(path: Path, opts: ReadOptions, warn=None) -> list[Series]:
    try:
        a = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input error
        raise InputError(f"{path}: not a readable .npy array ({exc})", hint="save it with numpy.save") from None
    if a.dtype.kind not in "fiu" or a.ndim not in (2, 3):
        raise InputError(f"{path}: expected a numeric 2-D (time x sensors) or 3-D (runs x time x sensors) array, "
                         f"got {a.dtype} {a.shape}", hint="reshape or transpose it before saving")
    runs = a[None] if a.ndim == 2 else a
    names = [f"s{i}" for i in range(runs.shape[2])]
    out = []
    for r, x in enumerate(runs):
        nm = path.stem if a.ndim == 2 else f"{path.stem}[{r}]"
        out += finish(Series(name=nm, values=x.astype(np.float64), sensors=names, group=nm, start=r * runs.shape[1]),
                      opts, str(path), warn)
    return out


def _read_pairs(path: Path) -> tuple[list[str], list[str]]:
    with open(path, newline="") as fh:
        rows = [r for r in csv.reader(fh) if r]
    if rows and rows[0]:
        try:
            float(rows[0][0])
        except ValueError:
            if not _looks_iso(rows[0][0]):
                rows = rows[1:]
    if any(len(r) < 2 for r in rows):
        raise InputError(f"{path}: expected two columns timestamp,value", hint="HPC-ODA sensor files have two columns")
    return [r[0] for r in rows], [r[1] for r in rows]


def _looks_iso(tok: str) -> bool:
    try:
        datetime.fromisoformat(tok.strip().replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


def _align(times: list[np.ndarray], tol: float | None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Grid and, per input, the row index used at each grid time (−1: none)."""
    if tol is None:
        grid = times[0]
        for t in times[1:]:
            grid = np.intersect1d(grid, t)
        return grid, [np.searchsorted(t, grid) for t in times]
    grid = max(times, key=len)
    out = []
    for t in times:
        j = np.searchsorted(t, grid, side="right") - 1
        ok = (j >= 0) & (grid - t[np.clip(j, 0, None)] <= tol)
        out.append(np.where(ok, j, -1))
    return grid, out


def read_hpcoda(root: Path, opts: ReadOptions, warn=None) -> list[Series]:
    """One series per node: ``sensors/[<node>/]*.csv`` aligned on time with ``responses/[<node>/]responses.csv``."""
    sdir = root / "sensors"
    if not sdir.is_dir():
        raise InputError(f"{root}: no sensors/ folder", hint="--layout hpcoda expects <segment>/sensors/*.csv")
    nodes = sorted(p for p in sdir.iterdir() if p.is_dir())
    groups = [(p.name, p, root / "responses" / p.name / "responses.csv") for p in nodes] or \
        [(root.name, sdir, root / "responses" / "responses.csv")]
    out = []
    for node, folder, resp in groups:
        files = sorted(folder.glob("*.csv"))
        files = [f for f in files
                 if (not opts.sensors or any(fnmatch.fnmatchcase(f.stem, g) for g in opts.sensors))
                 and not any(fnmatch.fnmatchcase(f.stem, g) for g in opts.exclude)
                 and (opts.keep is None or f.stem in opts.keep)]
        if not files:
            raise InputError(f"{folder}: no sensor CSV files", hint="one <sensor>.csv (timestamp,value) per sensor")
        ts, vs = [], []
        for f in files:
            t, v = _read_pairs(f)
            tt = parse_times(t, "timestamp", str(f))
            vv = to_float(v, "value", str(f))
            p = np.argsort(tt, kind="stable")
            ts.append(tt[p])
            vs.append(vv[p])
        lab_t = lab_v = None
        if resp.is_file():
            t, v = _read_pairs(resp)
            lab_t = parse_times(t, "timestamp", str(resp))
            lab_v = np.array(v, dtype=str)
        if "Q5" in opts.quirks:  # reference: rows by position, timestamps ignored
            n = min(len(v) for v in vs) if lab_v is None else min(min(len(v) for v in vs), len(lab_v))
            values = np.stack([v[:n] for v in vs], axis=1)
            time, labels = ts[0][:n], None if lab_v is None else lab_v[:n]
        else:
            grid, idx = _align(ts + ([lab_t] if lab_t is not None else []), opts.align_tolerance)
            values = np.stack([np.where(j >= 0, v[np.clip(j, 0, None)], np.nan) for v, j in zip(vs, idx)], axis=1)
            labels = None
            if lab_t is not None:
                j = idx[-1]
                labels = np.where(j >= 0, lab_v[np.clip(j, 0, None)], "")
                keep = j >= 0
                values, grid, labels = values[keep], grid[keep], labels[keep]
            time = grid
        s = Series(name=node, values=values, sensors=[f.stem for f in files], time=time, labels=labels, group=node)
        out += finish(s, replace(opts, sort_time=True, dedupe=opts.dedupe or "last"), str(folder), warn)
    return out


def read_input(path: Path, opts: ReadOptions, warn=None) -> list[Series]:
    """Any supported input → list of series (several for 3-D arrays, node folders or split gaps)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder", hint="check the path")
    layout = opts.layout
    if layout == "auto":
        layout = "npy" if path.suffix.lower() == ".npy" else "hpcoda" if path.is_dir() else "wide"
    if layout == "npy":
        return read_npy(path, opts, warn)
    if layout == "hpcoda":
        return read_hpcoda(path, opts, warn)
    return read_wide(path, opts, warn)


def concat(series: list[Series]) -> Series:
    """Q7 (reference): files, runs and segments joined end to end; windows may straddle the joins."""
    s0 = series[0]
    return Series(name=s0.name, values=np.concatenate([s.values for s in series]), sensors=s0.sensors,
                  time=None if any(s.time is None for s in series) else np.concatenate([s.time for s in series]),
                  labels=None if any(s.labels is None for s in series) else np.concatenate([s.labels for s in series]),
                  target=None if any(s.target is None for s in series) else np.concatenate([s.target for s in series]),
                  group=s0.group)


def match_sensors(s: Series, model_sensors: list[str], source: str, warn=None, by_position: bool = False) -> np.ndarray:
    """Columns of ``s`` in the model's sensor order: by name (missing → error, extra → warning) or by position."""
    if by_position:
        if s.values.shape[1] != len(model_sensors):
            raise InputError(f"{source}: {s.values.shape[1]} sensors, the model has {len(model_sensors)}",
                             hint="sensors matched by position (.npy inputs, --by-position) must be the model's "
                                  "number, in its order: select them with --sensors/--exclude")
        return s.values
    pos = {n: i for i, n in enumerate(s.sensors)}
    missing = [n for n in model_sensors if n not in pos]
    if missing:
        raise missing_sensors_error(source, missing, model_sensors, len(s.sensors))
    extra = [n for n in s.sensors if n not in set(model_sensors)]
    if extra and warn:
        warn(f"{source}: {len(extra)} sensor(s) not in the model ignored: {', '.join(extra[:5])}")
    return s.values[:, [pos[n] for n in model_sensors]]


# ---------------------------------------------------------------------------------------------- writers
def write_sig_csv(path: Path, ends: np.ndarray, times, names: list[str], sig: np.ndarray) -> Path:
    """``window_end, time, <features>``; complex signatures as ``<name>-re``/``<name>-im`` column pairs."""
    from wisecli.runtime.io.atomic import open_atomic

    if np.iscomplexobj(sig):
        cols = [c for n in names for c in (f"{n}-re", f"{n}-im")]
        flat = np.empty((sig.shape[0], 2 * sig.shape[1]))
        flat[:, 0::2], flat[:, 1::2] = sig.real, sig.imag
    else:
        cols, flat = names, sig
    tcol = np.full(len(ends), np.nan) if times is None else np.asarray(times, dtype=np.float64)
    with open_atomic(path, "w") as fh:
        fh.write(",".join(["window_end", "time", *cols]) + "\n")
        for e, t, row in zip(ends, tcol, flat):
            fh.write(format_row(int(e), t, row))
    return path


def format_row(e: int, t: float, row) -> str:
    """One signature line: ``window_end,time,features…`` (an empty time when there is none)."""
    ts = "" if t is None or (isinstance(t, float) and math.isnan(t)) else repr(float(t))
    return f"{e},{ts}," + ",".join(repr(float(v)) for v in row) + "\n"


def write_wide(path: Path, s: Series) -> Path:
    """A series as a wide CSV (``time``, sensors, ``label`` when labelled), written atomically."""
    from wisecli.runtime.io.atomic import open_atomic

    with open_atomic(path, "w") as fh:
        fh.write(",".join(["time", *s.sensors, *(["label"] if s.labels is not None else [])]) + "\n")
        for i in range(s.T):
            cells = [repr(float(s.time[i])) if s.time is not None else str(i)]
            cells += [repr(float(v)) for v in s.values[i]]
            if s.labels is not None:
                cells.append(str(s.labels[i]))
            fh.write(",".join(cells) + "\n")
    return Path(path)


# ---------------------------------------------------------------------------------------------- batches
def read_all(paths: list[Path], opts: ReadOptions, warn=None) -> list[Series]:
    """Every series of every input, in input order."""
    out: list[Series] = []
    for p in paths:
        out += read_input(Path(p), opts, warn)
    return out


def attach_labels(series: list[Series], path: Path) -> list[Series]:
    """``--labels FILE`` (.npy, or text with one label a line): one per run or one per sample."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such labels file", hint="one label per line, or a .npy array")
    try:
        if path.suffix.lower() == ".npy":
            labs = np.asarray(np.load(path, allow_pickle=False)).astype(str).ravel()
        else:
            labs = np.array([ln.strip() for ln in path.read_text().splitlines() if ln.strip()], dtype=str)
    except (OSError, ValueError, EOFError) as exc:  # UnicodeDecodeError is a ValueError
        raise InputError(f"{path}: not a readable labels file ({type(exc).__name__})",
                         hint="one label per line (UTF-8 text), or a .npy array") from None
    if len(labs) == len(series):
        return [replace(s, labels=np.full(s.T, lab)) for s, lab in zip(series, labs)]
    total = sum(s.T for s in series)
    if len(labs) == total:
        out, o = [], 0
        for s in series:
            out.append(replace(s, labels=labs[o:o + s.T]))
            o += s.T
        return out
    raise InputError(f"{path}: {len(labs)} labels for {len(series)} runs and {total} samples",
                     hint="give one label per run or one per sample")
