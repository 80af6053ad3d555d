"""The Python API of ``wise smooth`` (what the command calls): fit, run (batch and stream), evaluate, record,
demo, benchmark, info.

Choices where the spec is silent (also listed by ``info``):
- Q6 (reference) keeps only the first series group (the first node folder of an HPC-ODA segment, else the
  first input) when fitting.
- ``run`` writes ``window_end`` as the row index of the window's last sample in the cleaned input (after sorting
  and de-duplication) and ``time`` as its epoch seconds (empty without a time column).
- The stream (``-``) forward-fills an empty cell from the sensor's last value (up to 3 samples, as the batch path)
  and does not split gaps: a live feed has no median interval to judge them by.
- ``demo`` from the Python API (and ``wise demo``) uses the synthetic source in quick mode, the recorded /proc
  source otherwise; without ``out_dir`` it writes into a fresh temporary folder and reports its path.
- ``benchmark`` uses W = 60 and step 1 (every sample ends a window), float32 on CUDA and float64 on CPU.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from wisecli.cli.errors import InputError

from . import algorithm as A
from . import data as D
from . import model_io as MIO

METHOD = "smooth"
DEFAULTS = {"blocks": 20, "window": 60, "step": 10, "eps": 1e-4, "scale": 1.0, "quirks": "fixed",
            "precision": "auto", "format": "csv", "gaps": "split", "cv": "blocked", "folds": 5, "repeats": 5}


def check_params(window: int | None = None, step: int | None = None, blocks: int | None = None) -> None:
    for name, v in (("window", window), ("step", step), ("blocks", blocks)):
        if v is not None and v < 1:
            raise InputError(f"--{name} must be at least 1, got {v}", hint=f"e.g. --{name} {DEFAULTS[name]}")


def read_all(paths: list[Path], opts: D.ReadOptions, warn=None) -> list[D.Series]:
    out: list[D.Series] = []
    for p in paths:
        out += D.read_input(Path(p), opts, warn)
    return out


# ------------------------------------------------------------------------------------------------------ fit
def fit(paths: list[Path], output: Path, *, opts: D.ReadOptions, blocks: int = 20, window: int = 60,
        step: int = 10, eps: float = 1e-4, scale: float = 1.0, quirks="fixed", device: str = "cpu",
        export_dcdb: Path | None = None, import_dcdb: Path | None = None, overwrite: bool = False,
        warn=None) -> dict:
    """Learn π, min and max over all inputs and write the model (spec §3 ``fit``)."""
    from wisecli.runtime.io.atomic import refuse_existing, write_text

    check_params(window, step, blocks)
    q = A.Quirks.parse(quirks)
    refuse_existing(Path(output), overwrite)
    if export_dcdb:
        refuse_existing(Path(export_dcdb), overwrite)
    t0 = time.perf_counter()
    if import_dcdb is not None:
        try:
            d = json.loads(Path(import_dcdb).read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            raise InputError(f"{import_dcdb}: not a readable DCDB model", hint="give the JSON DCDB exported") from None
        names = None
        if paths:
            names = read_all(paths, replace(opts, quirks=q), warn)[0].sensors
        model = MIO.from_dcdb(d, names, str(import_dcdb), blocks=blocks, window=window, step=step, eps=eps,
                              scale=scale, quirks=q)
        series = []
    else:
        series = read_all(paths, replace(opts, quirks=q), warn)
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
        model = A.fit([s.values for s in series], names, blocks=blocks, window=window, step=step, eps=eps,
                      scale=scale, quirks=q, device=device)
        dropped = sorted({n for s in series for n in s.dropped})
        model.fit_info.update(inputs=[str(p) for p in paths], series=len(series), all_nan_sensors=dropped)
    if model.constant_sensors and warn:
        warn(f"{len(model.constant_sensors)} constant sensor(s) kept (they normalise to 0): "
             f"{', '.join(model.constant_sensors[:8])}")
    MIO.save(model, Path(output))
    doc = {"sensors": model.n_sensors, "rows": int(model.fit_info.get("rows", 0)),
           "constant_sensors": model.constant_sensors,
           "order_head": [model.sensors[i] for i in model.order[:10]],
           "all_nan_sensors": model.fit_info.get("all_nan_sensors", []),
           "seconds": round(time.perf_counter() - t0, 4), "model": str(output)}
    if export_dcdb:
        write_text(Path(export_dcdb), json.dumps(MIO.to_dcdb(model, warn), indent=1) + "\n")
        doc["dcdb"] = str(export_dcdb)
    return doc


# ------------------------------------------------------------------------------------------------------ run
def outputs_for(item: Path, out_dir: Path, fmt: str, preview: bool) -> list[Path]:
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
        raise InputError(f"{source}: fewer than window + 1 = {window + 1} samples", hint="give more data or a smaller --window")
    return np.concatenate(ends_all), np.concatenate(times), np.concatenate(sigs)


def run_one(model: A.Model, item: Path, out_dir: Path, *, opts: D.ReadOptions, window: int, step: int,
            blocks: int, mode: str, scale: float, precision: str, device: str, fmt: str, preview: bool,
            warn=None) -> dict:
    from wisecli.runtime.batch import stem_of
    from wisecli.runtime.io.atomic import save_npy

    series = D.read_input(item, replace(opts, quirks=model.quirks, keep=list(model.sensors)), warn)
    by_pos = Path(item).suffix.lower() == ".npy"
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
        png = D.write_preview(Path(out_dir) / f"{stem}.sig.png", sig, nb, title=stem)
        rec["outputs"] = [str(out), str(png)]
    return rec


def stream(model: A.Model, lines, write, *, opts: D.ReadOptions, window: int, step: int, blocks: int,
           mode: str, scale: float, warn=None) -> int:
    """The lone ``-``: a wide CSV on ``lines`` (header first); one flushed output line per signature."""
    import csv

    it = iter(lines)
    try:
        head = next(it)
    except StopIteration:
        raise InputError("stdin: no data (a header line was expected)", hint="pipe a wide CSV: time,sensor1,...") from None
    delim = "\t" if "\t" in head and "," not in head else ","
    header = [h.strip() for h in next(csv.reader([head], delimiter=delim))]
    tidx, idx = D.select_columns(header, opts, "stdin")
    idx = D.restrict(header, idx, replace(opts, keep=list(model.sensors)), "stdin", warn)
    names = [header[i] for i in idx]
    missing = [n for n in model.sensors if n not in names]
    if missing:
        raise InputError(f"stdin: model sensors missing: {', '.join(missing[:10])}",
                         hint="give the same sensors the model was fitted on")
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
        row = D.to_float([cells[c] for c in cols], "?", "stdin")
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


# ------------------------------------------------------------------------------------------------- evaluate
def evaluate(paths: list[Path], *, opts: D.ReadOptions, labels_file: Path | None = None, task: str = "classify",
             methods: str = "cs:5,cs:10,cs:20,cs:40,tuncer,bodik,lan,stats", window: int = 60, step: int = 10,
             cv: str = "blocked", folds: int = 5, repeats: int = 5, seed: int = 0, test: list[Path] | None = None,
             info_loss: bool = False, renormalize: bool = False, dataset: str | None = None, quirks="fixed",
             mixed: str = "last", warn=None, progress=None) -> list[dict]:
    from . import evaluate as E
    from .synthetic import basic_motions, synthetic

    check_params(window, step)
    q = A.Quirks.parse(quirks)
    test_series = None
    if dataset == "basicmotions":
        train, test_series = basic_motions()
        cv = "split" if cv in ("blocked", "split") else cv
        if cv != "split":
            train = train + test_series
            test_series = None
    elif dataset == "synthetic":
        train = [synthetic()]
    elif dataset:
        raise InputError(f"unknown --dataset {dataset!r}", hint="basicmotions or synthetic")
    else:
        if not paths:
            raise InputError("no inputs", hint="give files, or --dataset basicmotions|synthetic")
        if task == "classify" and not (opts.label_col or labels_file):
            raise InputError("no labels", hint="give --label-col NAME or --labels FILE")
        if task == "regress" and not opts.target_col:
            raise InputError("no regression target", hint="give --target-col NAME")
        ro = replace(opts, quirks=q)
        train = read_all(paths, ro, warn)
        if labels_file is not None:
            train = attach_labels(train, Path(labels_file))
        if test:
            test_series = read_all(test, ro, warn)
    return E.evaluate(train, methods=methods, window=window, step=step, cv=cv, folds=folds, repeats=repeats,
                      seed=seed, task=task, test=test_series, info=info_loss, renormalize=renormalize, quirks=q,
                      mixed=mixed, progress=progress)


def attach_labels(series: list[D.Series], path: Path) -> list[D.Series]:
    """``--labels FILE`` (.npy, or text with one label a line): one per run or one per sample."""
    if not path.exists():
        raise InputError(f"{path}: no such labels file", hint="one label per line, or a .npy array")
    if path.suffix.lower() == ".npy":
        labs = np.asarray(np.load(path, allow_pickle=False)).astype(str).ravel()
    else:
        labs = np.array([ln.strip() for ln in path.read_text().splitlines() if ln.strip()], dtype=str)
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


# ------------------------------------------------------------------------------------------------- record
def record(output: Path, **kw) -> dict:
    from .record import record as rec

    return rec(Path(output), **kw)


# --------------------------------------------------------------------------------------------------- demo
def demo(quick: bool = True, device: str = "auto", source: str | None = None, out_dir: Path | None = None,
         seed: int = 0, warn=None, info=None) -> dict:
    """End to end on embedded or freshly recorded data; writes data, model, signature PNG and results."""
    import tempfile

    from wisecli.runtime.io.atomic import write_json

    from .record import proc_readable

    t0 = time.perf_counter()
    dev = _device(device)
    source = source or ("synthetic" if quick else "proc")
    if source == "proc" and not proc_readable():
        if warn:
            warn("no readable /proc: falling back to the synthetic source")
        source = "synthetic"
    out = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="wise-smooth-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    extra: dict = {}
    if source == "proc":
        csv_path = out / "telemetry.csv"
        secs, interval = (4.0, 0.2) if quick else (10.0, 0.25)
        summary = record(csv_path, interval=interval, workloads=[f"{w}:{secs}" for w in ("idle", "cpu", "memory",
                                                                                         "disk")],
                         repeat=3, overwrite=True, mem_mb=None, disk_mb=64 if quick else 256, warn=warn, info=info)
        opts = D.ReadOptions(label_col="label", gaps="ignore")
        series = D.read_input(csv_path, opts, warn)
        recs = evaluate_series(series, "cs:20,stats,tuncer", 8, 2, "group", seed, mixed="drop")
        s = series[0]
        idle_cols = [s.sensors.index(c) for c in ("cpu_idle", "cpu_iowait") if c in s.sensors]
        m = s.labels == "idle"
        load = float(np.nanmean(1.0 - s.values[m][:, idle_cols].sum(axis=1))) if idle_cols and m.any() else None
        extra = {"background_load": load, "late_samples": summary["late_samples"]}
        if load is not None and load > 0.3 and warn:
            warn(f"background load {load:.2f} during 'idle' (above 0.3): other processes blur the classes")
        W, step = 8, 2
    elif source == "synthetic":
        from .synthetic import synthetic

        s = synthetic(T=4000 if quick else 20000, seed=seed)
        csv_path = out / "synthetic.csv"
        write_wide(csv_path, s)
        series = [s]
        W, step = 30, 5
        recs = evaluate_series(series, "cs:20,stats", W, step, "blocked", seed)
    elif source == "basicmotions":
        from .evaluate import evaluate as ev
        from .synthetic import basic_motions

        tr, te = basic_motions()
        series, W, step = tr, 20, 5
        csv_path = None
        recs = ev(tr, methods="cs:20,tuncer", window=W, step=step, test=te, cv="split", repeats=1, seed=seed)
    else:
        raise InputError(f"unknown --source {source!r}", hint="proc, synthetic or basicmotions")
    model = A.fit([x.values for x in series], series[0].sensors, blocks=20, window=W, step=step)
    MIO.save(model, out / "model.json")
    sig = A.signatures(model, series[0].values, device=str(dev), precision="fp64" if dev.type == "cpu" else "fp32")
    png = D.write_preview(out / "signature.png", sig, min(20, model.n_sensors), title=f"CS signatures ({source})")
    write_json(out / "results.json", recs)
    cs = next(r for r in recs if r["method"].startswith("cs"))
    headline = {"f1_cs": cs["f1_weighted"], "signature_len_cs": cs["signature_len"]}
    other = [r for r in recs if not r["method"].startswith("cs")]
    if other:
        best = max(other, key=lambda r: r["f1_weighted"])
        headline[f"f1_{best['method']}"] = best["f1_weighted"]
    ok = all(np.isfinite(r["f1_weighted"]) for r in recs)
    if source == "basicmotions":
        headline["run_accuracy_cs"] = cs.get("run_accuracy")
        ok = ok and cs["f1_weighted"] >= 0.93 and cs.get("run_accuracy", 0) >= 0.95
    return {"method": METHOD, "ok": bool(ok), "headline": headline, "seconds": round(time.perf_counter() - t0, 2),
            "source": source, "results": recs, "out_dir": str(out),
            "outputs": [str(p) for p in (csv_path, out / "model.json", png, out / "results.json") if p], **extra}


def evaluate_series(series, methods, W, step, cv, seed, mixed="last"):
    from .evaluate import evaluate as ev

    return ev(series, methods=methods, window=W, step=step, cv=cv, folds=5, repeats=1, seed=seed, mixed=mixed)


def write_wide(path: Path, s: D.Series) -> Path:
    from wisecli.runtime.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "w") as fh:
            fh.write(",".join(["time", *s.sensors, *(["label"] if s.labels is not None else [])]) + "\n")
            for i in range(s.T):
                cells = [repr(float(s.time[i])) if s.time is not None else str(i)]
                cells += [repr(float(v)) for v in s.values[i]]
                if s.labels is not None:
                    cells.append(str(s.labels[i]))
                fh.write(",".join(cells) + "\n")
    return path


def _device(spec: str):
    from wisecli.runtime.device import resolve_device

    return resolve_device(spec)


# ---------------------------------------------------------------------------------------------- benchmark
def loop_signature(Xn_sorted_window: np.ndarray, M: np.ndarray, W: int) -> np.ndarray:
    """Reference-form steps 9-11 for one window of normalised, sorted rows (W+1 × S)."""
    a = Xn_sorted_window[1:].mean(axis=0)
    d = np.diff(Xn_sorted_window, axis=0).mean(axis=0)
    return np.concatenate([M @ a, M @ d])


def reference_loop(model: A.Model, X: np.ndarray, ends: np.ndarray, W: int, B: int) -> np.ndarray:
    """The per-window loop of the reference form (steps 6-11 for each window separately; numpy, float64)."""
    M = A.block_matrix(model.n_sensors, B)
    rng = model.fmax - model.fmin + model.eps
    out = np.empty((len(ends), 2 * M.shape[0]))
    for k, e in enumerate(ends):
        win = np.clip((X[e - W:e + 1] - model.fmin) / rng, 0.0, 1.0)[:, model.order]
        out[k] = loop_signature(win, M, W)
    return out


def numpy_prefix(model: A.Model, X: np.ndarray, ends: np.ndarray, W: int, B: int) -> np.ndarray:
    """The spec's vectorised form in numpy: gather by π, float64 prefix sums, two gathers, one GEMM."""
    M = A.block_matrix(model.n_sensors, B)
    N = np.clip((X - model.fmin) / (model.fmax - model.fmin + model.eps), 0.0, 1.0)[:, model.order]
    P = np.zeros((N.shape[0] + 1, N.shape[1]))
    np.cumsum(N, axis=0, out=P[1:])
    avg = (P[ends + 1] - P[ends - W + 1]) / W
    der = (N[ends] - N[ends - W]) / W
    return np.concatenate([avg @ M.T, der @ M.T], axis=1)


def benchmark(device: str = "auto", quick: bool = False, sensors=None, windows=None, blocks=None,
              window: int = 60, step: int = 1, seed: int = 0, info=None) -> list[dict]:
    """Race the per-window loop, the numpy prefix-sum path and our torch path in one process (spec §7)."""
    import os
    import platform

    import torch

    from wisecli.runtime.device import device_name, sync
    from wisecli.runtime.bench import versions

    dev = _device(device)
    if sensors is None:
        sensors, windows, blocks = ((16, 64), (20000, 5000), (20, 20)) if quick else \
            ((128, 1024, 4096), (200000, 100000, 20000), (20, 40, 40))
    windows = windows or [20000] * len(sensors)
    blocks = blocks or [20] * len(sensors)
    if not (len(sensors) == len(windows) == len(blocks)):
        raise InputError("--sensors, --windows and --blocks need the same number of values",
                         hint="e.g. --sensors 128,1024 --windows 200000,100000 --blocks 20,40")
    n_loop = 300 if quick else 2000
    prec = "fp32" if dev.type == "cuda" else "fp64"
    rng = np.random.default_rng(seed)
    out = []
    for S, nw, B in zip(sensors, windows, blocks):
        T = window + step * (nw - 1) + 1
        if info:
            info(f"S={S} windows={nw} B={B}: T={T}")
        X = np.cumsum(rng.standard_normal((T, S), dtype=np.float32), axis=0, dtype=np.float32).astype(np.float64)
        X *= rng.uniform(1, 1e3, size=S)
        t0 = time.perf_counter()
        model = A.fit(X[: min(T, 50_000)], blocks=B, window=window, step=step, device=str(dev))
        fit_s = time.perf_counter() - t0
        ends = A.window_ends(T, window, step)
        le = ends[np.linspace(0, len(ends) - 1, min(n_loop, len(ends))).astype(np.int64)]
        t0 = time.perf_counter()
        ref = reference_loop(model, X, le, window, B)
        loop_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        numpy_prefix(model, X, ends, window, B)
        np_s = time.perf_counter() - t0
        xd = torch.as_tensor(X, dtype=torch.float32 if prec == "fp32" else torch.float64).to(dev)
        kw = dict(window=window, step=step, blocks=B, precision=prec, device=str(dev), return_tensor=True,
                  chunk_elems=(1 << 27) if dev.type == "cuda" else (1 << 24))
        A.signatures(model, xd, **kw)  # warm-up
        ts = []
        for _ in range(3):
            sync(dev)
            t0 = time.perf_counter()
            A.signatures(model, xd, **kw)
            sync(dev)
            ts.append(time.perf_counter() - t0)
        dev_s = float(np.median(ts))
        del xd
        host = X.astype(np.float32) if prec == "fp32" else X
        sync(dev)
        t0 = time.perf_counter()
        got = A.signatures(model, host, **kw)
        sync(dev)
        e2e_s = time.perf_counter() - t0
        pick = torch.as_tensor(np.searchsorted(ends, le), device=got.device)
        err = float(np.abs(got[pick].double().cpu().numpy() - ref).max())
        del got
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        loop_wps, dev_wps = len(le) / loop_s, nw / dev_s
        out.append({"case": f"S={S} B={B} windows={nw}", "S": S, "windows": nw, "B": B, "W": window, "step": step,
                    "ours_s": round(dev_s, 6), "peer_s": round(nw / loop_wps, 4), "speedup": round(dev_wps / loop_wps, 1),
                    "loop_win_per_s": round(loop_wps, 1), "numpy_win_per_s": round(nw / np_s, 1),
                    "device_win_per_s": round(dev_wps, 1), "device_e2e_win_per_s": round(nw / e2e_s, 1),
                    "numpy_vs_loop": round(nw / np_s / loop_wps, 1), "max_abs_err": err,
                    "precision": prec, "fit_s": round(fit_s, 4), "device": device_name(dev),
                    "cpu": f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)",
                    "versions": {k: v for k, v in versions().items() if k in ("torch", "numpy", "wisecli")}})
    return out


# ---------------------------------------------------------------------------------------------------- info
def info() -> dict:
    import torch

    from .baselines import have_aeon

    return {
        "method": "smooth",
        "paper": "Netti et al., Correlation-wise Smoothing, IPDPS 2021, DOI 10.1109/IPDPS49936.2021.00010",
        "defaults": DEFAULTS,
        "quirks": {q: A.QUIRK_TEXT[q] for q in A.ALL_QUIRKS},
        "inputs": ["wide CSV/TSV (time column + numeric sensors)", "HPC-ODA folder (--layout hpcoda)",
                   ".npy time x sensors or runs x time x sensors", "- (a wide CSV on stdin, streamed)"],
        "outputs": ["{stem}.sig.csv (window_end,time,features)", "{stem}.sig.npy", "{stem}.sig.png (--preview)",
                    "model.json (wise-smooth/1)", "DCDB model (--export-dcdb)", "run.json"],
        "baselines": ["tuncer", "bodik", "lan", "stats"] + (["minirocket"] if have_aeon() else []),
        "devices": ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())],
        "choices": [ln.strip("- ").strip() for ln in (__doc__ or "").split("silent")[1].splitlines()[1:] if ln.strip()],
    }
