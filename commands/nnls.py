"""`wise nnls`: matrix-wise ℓ0-constrained sparse nonnegative least squares (Nadisic, Cohen, Vandaele, Gillis).

Verbs: `run` (both steps, X with at most q nonzeros in the whole matrix), `pareto` (step 1: per-column fronts),
`evaluate` (matrix-wise against column-wise and global heuristics), `demo`, `info`, `benchmark`.
Engine: `wisecli.engines.nnls.api`, imported inside the command bodies.

Choices (ours): the default output folder is the current folder; `--json` prints the spec's document for one input
and `{"items": [...]}` for several; a folder holding images is one input (an image set), any other folder is
expanded into its data files; `--plot` and `--fronts` take one input; `--maps` on a non-cube input is a warning;
`evaluate` selects with the exact DP unless `--select greedy` is given (its matrix-wise rows are the optimum).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from wisecli.cli import options as o
from wisecli.cli.errors import InputError
from wisecli.cli.output import Sink

app = typer.Typer(help="Matrix-wise ℓ0-constrained sparse NNLS: at most q nonzeros in the whole X.",
                  no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]})

_IN = "Input"
_SOLVE = "Solver"
Inputs = Annotated[list[str], typer.Argument(help="B files (.npy .npz .csv .mat), image folders, globs, @list.txt, @-.")]
Dictionary = Annotated[Optional[str], typer.Option("-A", "--dictionary",
                                                   help="Dictionary A (m×r): a file, nmf:R or spa:R.",
                                                   rich_help_panel=_IN)]
Key = Annotated[Optional[str], typer.Option("--key", help=".npz array name (default: B or the only one).",
                                            rich_help_panel=_IN)]
Var = Annotated[Optional[str], typer.Option("--var", help=".mat variable (default: the only 2-D/3-D one).",
                                            rich_help_panel=_IN)]
Cube = Annotated[Optional[str], typer.Option("--cube", help="3-D layout: bands-last | bands-first.",
                                             rich_help_panel=_IN)]
Transpose = Annotated[bool, typer.Option("--transpose", help="Data stored n × m.", rich_help_panel=_IN)]
Resize = Annotated[Optional[str], typer.Option("--resize", help="Resize images to HxW.", rich_help_panel=_IN)]
Nnz = Annotated[Optional[int], typer.Option("--nnz", help="Total budget q of nonzeros.", rich_help_panel=_SOLVE)]
AvgNnz = Annotated[Optional[float], typer.Option("--avg-nnz", help="Budget per column: q = avg·n.",
                                                 rich_help_panel=_SOLVE)]
Front = Annotated[Optional[str], typer.Option("--front", help="auto|enum|hybrid|bnb|union|greedy|backward|homotopy.",
                                              rich_help_panel=_SOLVE)]
Kmax = Annotated[Optional[int], typer.Option("--kmax", help="Cap every front at level K (default r).",
                                             rich_help_panel=_SOLVE)]
Select = Annotated[Optional[str], typer.Option("--select", help="auto | dp | greedy.", rich_help_panel=_SOLVE)]
EnumMax = Annotated[Optional[int], typer.Option("--enum-max-subsets", help="Subset budget of enum/hybrid/auto.",
                                                rich_help_panel=_SOLVE)]
BnbLimit = Annotated[Optional[float], typer.Option("--bnb-time-limit", help="Seconds per column for bnb.",
                                                   rich_help_panel=_SOLVE)]
MaxSteps = Annotated[Optional[int], typer.Option("--max-steps", help="Homotopy steps (default 4r).",
                                                 rich_help_panel=_SOLVE)]
Normalize = Annotated[Optional[bool], typer.Option("--normalize-atoms/--no-normalize-atoms",
                                                   help="Unit-norm atoms inside (X rescaled back).",
                                                   rich_help_panel=_SOLVE)]
Precision = Annotated[Optional[str], typer.Option("--precision", help="fp64 | fp32 (enum only; winners re-scored).",
                                                  rich_help_panel=_SOLVE)]
Ridge = Annotated[Optional[float], typer.Option("--ridge", help="Ridge added to AᵀA.", rich_help_panel=_SOLVE)]
NnlsSolver = Annotated[Optional[str], typer.Option("--nnls-solver", help="bpp | lh.", rich_help_panel=_SOLVE)]
DpCells = Annotated[Optional[int], typer.Option("--dp-max-cells", help="auto uses dp when n·(q+1) fits.",
                                                rich_help_panel=_SOLVE)]


def _sink(json=False, jsonl=False, quiet=False, verbose=False):
    return Sink(json=json, jsonl=jsonl, quiet=quiet, verbose=verbose)


def _settings(config, sets, **flags):
    from wisecli.cli.config import resolve
    from wisecli.engines.nnls.api import DEFAULTS

    return resolve(DEFAULTS, flags=flags, config_file=config, sets=sets)


def _front_kw(cfg) -> dict:
    v = cfg.values
    return dict(front=v["front"], kmax=v["kmax"], enum_max_subsets=v["enum_max_subsets"],
                bnb_time_limit=v["bnb_time_limit"], max_steps=v["max_steps"], normalize_atoms=v["normalize_atoms"],
                precision=v["precision"], nnls_solver=v["nnls_solver"], ridge=v["ridge"])


def _resize(spec):
    if spec is None:
        return None
    try:
        h, w = (int(t) for t in spec.lower().split("x"))
        if h > 0 and w > 0:
            return h, w
    except ValueError:
        pass
    raise InputError(f"--resize {spec!r}: expected HxW", hint="for example --resize 64x64")


def _check_cube(cube):
    if cube is not None and cube not in ("bands-last", "bands-first"):
        raise InputError(f"--cube {cube!r}", hint="bands-last or bands-first")


def _inputs(items, pattern, shard):
    from wisecli.cli.inputs import apply_shard, expand_inputs, parse_shard

    from_images = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".pgm", ".bmp")

    def image_folder(p: Path) -> bool:
        return any(f.suffix.lower() in from_images for f in p.iterdir())

    paths = expand_inputs(items, pattern=pattern, extensions=(".npy", ".npz", ".csv", ".mat"),
                          dir_is_item=image_folder)
    return apply_shard(paths, parse_shard(shard))


def _load(path, key, var, cube, transpose, resize, sink):
    from wisecli.engines.nnls.data import load_matrix

    mat = load_matrix(path, key=key, var=var, cube=cube, transpose=transpose, resize=_resize(resize))
    if mat.note:
        sink.info(mat.note)
    return mat


def _budget_given(nnz, avg_nnz):
    if (nnz is None) == (avg_nnz is None):
        raise InputError("give exactly one of --nnz and --avg-nnz", hint="for example --avg-nnz 2")


@app.command()
def run(
    inputs: Inputs,
    dictionary: Dictionary = None,
    nnz: Nnz = None,
    avg_nnz: AvgNnz = None,
    fronts: Annotated[Optional[Path], typer.Option("--fronts", help="Reuse a 'pareto' fronts file (it carries A).",
                                                   rich_help_panel=_SOLVE)] = None,
    fmt: Annotated[str, typer.Option("--format", help="X as npy | npz | csv.")] = "npy",
    sparse: Annotated[bool, typer.Option("--sparse", help="Also write X as COO .npz (rows, cols, vals, shape).")] = False,
    maps: Annotated[bool, typer.Option("--maps", help="PNG abundance map per atom (cubes only).")] = False,
    front: Front = None, kmax: Kmax = None, select: Select = None, enum_max_subsets: EnumMax = None,
    bnb_time_limit: BnbLimit = None, max_steps: MaxSteps = None, normalize_atoms: Normalize = None,
    precision: Precision = None, ridge: Ridge = None, nnls_solver: NnlsSolver = None, dp_max_cells: DpCells = None,
    chunk_columns: Annotated[Optional[int], typer.Option("--chunk-columns", help="Columns per GPU block.",
                                                         rich_help_panel=_SOLVE)] = None,
    key: Key = None, var: Var = None, cube: Cube = None, transpose: Transpose = False, resize: Resize = None,
    out_dir: o.OutDir = None, skip_existing: o.SkipExisting = False, overwrite: o.Overwrite = False,
    fail_fast: o.FailFast = False, shard: o.Shard = None, pattern: o.Pattern = None,
    device: o.Device = "auto", amp: o.Amp = True, seed: o.Seed = 0, json: o.Json = False, jsonl: o.Jsonl = False,
    quiet: o.Quiet = False, verbose: o.Verbose = False, no_progress: o.NoProgress = False, debug: o.Debug = False,
    config: o.Config = None, set_: Annotated[Optional[list[str]], typer.Option("--set", help="key=value")] = None,
) -> None:
    """Both steps: per-column fronts, then one level per column under Σk ≤ q. Writes {stem}.X.npy (r×n),
    {stem}.k.npy and {stem}.summary.json."""
    sink = _sink(json, jsonl, quiet, verbose)
    _budget_given(nnz, avg_nnz)
    _check_cube(cube)
    if fmt not in ("npy", "npz", "csv"):
        raise InputError(f"--format {fmt!r}", hint="npy, npz or csv")
    if dictionary is None and fronts is None:
        raise InputError("no dictionary: give --dictionary (a file, nmf:R, spa:R) or --fronts", hint="see --help")
    cfg = _settings(config, set_, front=front, kmax=kmax, select=select, enum_max_subsets=enum_max_subsets,
                    bnb_time_limit=bnb_time_limit, max_steps=max_steps, normalize_atoms=normalize_atoms,
                    precision=precision, ridge=ridge, nnls_solver=nnls_solver, dp_max_cells=dp_max_cells,
                    chunk_columns=chunk_columns)
    paths = _inputs(inputs, pattern, shard)
    if fronts is not None and len(paths) != 1:
        raise InputError("--fronts belongs to one input", hint="run one input at a time with --fronts")
    import numpy as np

    from wisecli.engines.nnls import api, plots
    from wisecli.engines.nnls.data import make_dictionary
    from wisecli.runtime.batch import BatchOptions, run_batch, stem_of
    from wisecli.runtime.device import device_name, oom_guard, resolve_device
    from wisecli.runtime.io.atomic import save_npy, save_npz, write_json, write_text
    from wisecli.runtime.runrecord import RunRecord, versions

    dev = resolve_device(device, sink=sink)
    loaded_fronts = api.load_fronts(fronts) if fronts is not None else None
    out = Path(out_dir) if out_dir is not None else Path(".")
    x_name = {"npy": "X.npy", "npz": "X.npz", "csv": "X.csv"}[fmt]

    def outputs_for(p):
        s = stem_of(p)
        outs = [out / f"{s}.{x_name}", out / f"{s}.k.npy", out / f"{s}.summary.json"]
        if sparse:
            outs.append(out / f"{s}.X.coo.npz")
        return outs

    docs = []

    def process(p):
        t0 = time.perf_counter()
        mat = _load(p, key, var, cube, transpose, resize, sink)
        B = mat.B
        fr = loaded_fronts
        if fr is not None:
            if fr.err.shape[0] != B.shape[1]:
                raise InputError(f"--fronts has {fr.err.shape[0]} columns, the data has {B.shape[1]}",
                                 hint="use the fronts file written for this input")
            if dictionary is not None:
                A = make_dictionary(dictionary, B, seed=seed)
                if A.shape != fr.A.shape or not np.allclose(A, fr.A, rtol=1e-12, atol=0):
                    raise InputError("--fronts was computed with another dictionary than --dictionary",
                                     hint="drop --dictionary (the fronts file carries A) or recompute the fronts")
        else:
            A = make_dictionary(dictionary, B, seed=seed)
            fr = oom_guard(lambda: api.compute_fronts(A, B, device=dev, col_block=cfg["chunk_columns"],
                                                      **_front_kw(cfg)), option_hint="--chunk-columns")
        for note in fr.notes:
            sink.warn(note)
        res = api.solve(fr.A, B, q=nnz, avg_nnz=avg_nnz, fronts=fr, select_method=cfg["select"],
                        dp_max_cells=cfg["dp_max_cells"], device=dev)
        for note in res["notes"][len(fr.notes):]:
            sink.warn(note)
        s = stem_of(p)
        X = res["X"]
        outs = outputs_for(p)
        if fmt == "npy":
            save_npy(outs[0], X)
        elif fmt == "npz":
            save_npz(outs[0], X=X, A=fr.A, k=res["k"])
        else:
            write_text(outs[0], "\n".join(",".join(repr(float(v)) for v in row) for row in X) + "\n")
        save_npy(outs[1], res["k"].astype(np.int64))
        if sparse:
            rr, cc = np.nonzero(X)
            save_npz(outs[3], rows=rr, cols=cc, vals=X[rr, cc], shape=np.array(X.shape))
        if maps:
            if mat.spatial is None:
                sink.warn(f"{p.name}: --maps needs a cube input; no maps written")
            else:
                outs += plots.write_maps(out, s, X, mat.spatial)
        sel = res["selection"]
        doc = {
            "command": "nnls run", "input": str(p), "m": int(B.shape[0]), "r": int(fr.A.shape[1]),
            "n": int(B.shape[1]), "q": res["q"], "nnz": res["nnz"], "avg_nnz": res["avg_nnz"],
            "rel_error": res["rel_error"], "nnls_rel_error": res["nnls_rel_error"],
            "front": {"method": fr.method, "exact_level_fraction": fr.exact_level_fraction(),
                      "flagged_columns": int(fr.flagged.sum()), "seconds": fr.seconds},
            "select": {"method": sel.method, "objective": sel.objective, "lower_bound": sel.lower_bound,
                       "gap": sel.gap, "seconds": sel.seconds},
            "k_hist": res["k_hist"], "outputs": [str(x) for x in outs],
            "options": {**cfg.values, "dictionary": dictionary if loaded_fronts is None else str(fronts)},
            "device": device_name(dev), "versions": versions(), "seconds": time.perf_counter() - t0,
        }
        write_json(outs[2], doc)
        docs.append(doc)
        return {"output": str(outs[0]), "outputs": [str(x) for x in outs],
                "metrics": {"rel_error": res["rel_error"], "nnz": res["nnz"], "avg_nnz": res["avg_nnz"],
                            "gap": sel.gap}}

    record = RunRecord("nnls run", config=cfg, device=device_name(dev), seed=seed, inputs=paths)
    run_batch(paths, process, outputs_for=outputs_for,
              options=BatchOptions(out, skip_existing, overwrite, fail_fast, debug), sink=sink, run_record=record)
    rows = [{"input": Path(d["input"]).name, "n": d["n"], "q": d["q"], "nnz": d["nnz"],
             "rel_error_%": round(100 * d["rel_error"], 4), "nnls_%": round(100 * d["nnls_rel_error"], 4),
             "front": d["front"]["method"], "select": d["select"]["method"], "gap": d["select"]["gap"],
             "seconds": round(d["seconds"], 3)} for d in docs]
    sink.result(docs[0] if len(docs) == 1 else {"items": docs}, rows=rows, title="wise nnls run")


@app.command()
def pareto(
    inputs: Inputs,
    dictionary: Dictionary = None,
    front: Front = None, kmax: Kmax = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="PNG: 20 sampled fronts and total error vs q.")] = None,
    with_coefficients: Annotated[bool, typer.Option("--with-coefficients", help="Store coef (n×(K+1)×r float32).")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from {stem}.fronts.partial.npz.")] = False,
    chunk_columns: Annotated[Optional[int], typer.Option("--chunk-columns",
                                                         help="Columns per saved chunk (and per GPU block).")] = None,
    enum_max_subsets: EnumMax = None, bnb_time_limit: BnbLimit = None, max_steps: MaxSteps = None,
    normalize_atoms: Normalize = None, precision: Precision = None, ridge: Ridge = None,
    nnls_solver: NnlsSolver = None,
    key: Key = None, var: Var = None, cube: Cube = None, transpose: Transpose = False, resize: Resize = None,
    out_dir: o.OutDir = None, skip_existing: o.SkipExisting = False, overwrite: o.Overwrite = False,
    fail_fast: o.FailFast = False, shard: o.Shard = None, pattern: o.Pattern = None,
    device: o.Device = "auto", amp: o.Amp = True, seed: o.Seed = 0, json: o.Json = False, jsonl: o.Jsonl = False,
    quiet: o.Quiet = False, verbose: o.Verbose = False, no_progress: o.NoProgress = False, debug: o.Debug = False,
    config: o.Config = None, set_: Annotated[Optional[list[str]], typer.Option("--set", help="key=value")] = None,
) -> None:
    """Step 1 only: per-column error-versus-sparsity fronts, written to {stem}.fronts.npz (err, on_front, exact,
    support bitmasks, beta, A, method, options). Column chunks go to {stem}.fronts.partial.npz; --resume continues."""
    sink = _sink(json, jsonl, quiet, verbose)
    _check_cube(cube)
    if dictionary is None:
        raise InputError("no dictionary: give --dictionary (a file, nmf:R or spa:R)", hint="see --help")
    cfg = _settings(config, set_, front=front, kmax=kmax, enum_max_subsets=enum_max_subsets,
                    bnb_time_limit=bnb_time_limit, max_steps=max_steps, normalize_atoms=normalize_atoms,
                    precision=precision, ridge=ridge, nnls_solver=nnls_solver, chunk_columns=chunk_columns)
    paths = _inputs(inputs, pattern, shard)
    if plot is not None and len(paths) != 1:
        raise InputError("--plot takes one input", hint="run pareto per input to plot")
    import numpy as np

    from wisecli.engines.nnls import api, plots
    from wisecli.engines.nnls.data import make_dictionary
    from wisecli.runtime.batch import BatchOptions, run_batch, stem_of
    from wisecli.runtime.device import device_name, oom_guard, resolve_device
    from wisecli.runtime.io.atomic import save_npz
    from wisecli.runtime.progress import progress
    from wisecli.runtime.runrecord import RunRecord

    dev = resolve_device(device, sink=sink)
    out = Path(out_dir) if out_dir is not None else Path(".")
    chunk = max(1, int(cfg["chunk_columns"]))
    docs = []

    def outputs_for(p):
        return [out / f"{stem_of(p)}.fronts.npz"]

    def process(p):
        t0 = time.perf_counter()
        B = _load(p, key, var, cube, transpose, resize, sink).B
        A = make_dictionary(dictionary, B, seed=seed)
        partial = out / f"{stem_of(p)}.fronts.partial.npz"
        parts, start = [], 0
        if resume and partial.exists():
            prev = api.load_fronts(partial)
            if prev.A.shape != A.shape or not np.allclose(prev.A, A, rtol=1e-12, atol=0):
                raise InputError(f"{partial.name} was computed with another dictionary", hint="drop --resume")
            parts, start = [prev], prev.err.shape[0]
            sink.info(f"resuming {p.name} at column {start}")
        n = B.shape[1]
        with progress(f"fronts {p.name}", n, show=not no_progress) as advance:
            advance(start)
            for s in range(start, n, chunk):
                e = min(n, s + chunk)
                parts.append(oom_guard(lambda: api.compute_fronts(A, B[:, s:e], device=dev, col_block=chunk,
                                                                  with_coefficients=with_coefficients,
                                                                  **_front_kw(cfg)),
                                       option_hint="--chunk-columns"))
                if e < n:
                    save_npz(partial, **api.fronts_arrays(api.concat_fronts(parts)))
                advance(e - s)
        fr = api.concat_fronts(parts)
        for note in fr.notes:
            sink.warn(note)
        path = api.save_fronts(outputs_for(p)[0], fr)
        if partial.exists():
            partial.unlink()
        outs = [str(path)]
        if plot is not None:
            outs.append(str(plots.plot_fronts(plot, fr)))
        doc = {"command": "nnls pareto", "input": str(p), "m": int(B.shape[0]), "r": int(A.shape[1]), "n": n,
               "method": fr.method, "kmax": fr.kmax, "exact_level_fraction": fr.exact_level_fraction(),
               "flagged_columns": int(fr.flagged.sum()), "on_front_mean": float(fr.on_front[:, 1:].sum(1).mean()),
               "outputs": outs, "device": device_name(dev), "seconds": time.perf_counter() - t0}
        docs.append(doc)
        return {"output": str(path), "outputs": outs,
                "metrics": {"exact_level_fraction": doc["exact_level_fraction"], "method": fr.method}}

    record = RunRecord("nnls pareto", config=cfg, device=device_name(dev), seed=seed, inputs=paths)
    run_batch(paths, process, outputs_for=outputs_for,
              options=BatchOptions(out, skip_existing, overwrite, fail_fast, debug), sink=sink, run_record=record)
    rows = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()
             if k in ("input", "n", "r", "method", "kmax", "exact_level_fraction", "flagged_columns", "seconds")}
            for d in docs]
    sink.result(docs[0] if len(docs) == 1 else {"items": docs}, rows=rows, title="wise nnls pareto")


@app.command()
def evaluate(
    inputs: Annotated[Optional[list[str]], typer.Argument(help="B (one input), or use --dataset.")] = None,
    dictionary: Dictionary = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="faces | digits | hsi (offline).")] = None,
    avg_nnz: Annotated[str, typer.Option("--avg-nnz", help="Budgets per column, comma-separated.")] = "1,2,3,4",
    methods: Annotated[Optional[str], typer.Option("--methods", help="Comma-separated subset of the methods.")] = None,
    x_true: Annotated[Optional[Path], typer.Option("--x-true", help="True X (r×n) for support F1 / RMSE.")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="PNG: relative error vs avg nnz per method.")] = None,
    front: Front = None, kmax: Kmax = None, select: Select = None,
    key: Key = None, var: Var = None, cube: Cube = None, transpose: Transpose = False, resize: Resize = None,
    device: o.Device = "auto", amp: o.Amp = True, seed: o.Seed = 0, json: o.Json = False, jsonl: o.Jsonl = False,
    quiet: o.Quiet = False, verbose: o.Verbose = False, debug: o.Debug = False,
    config: o.Config = None, set_: Annotated[Optional[list[str]], typer.Option("--set", help="key=value")] = None,
) -> None:
    """Matrix-wise (exact, union) against column-wise (exact, NNOMP, homotopy) and global (top-q, one λ)
    heuristics at every budget; one record per (method, budget); nnz ≤ q is asserted."""
    sink = _sink(json, jsonl, quiet, verbose)
    _check_cube(cube)
    if (dataset is None) == (not inputs):
        raise InputError("give one input B (with --dictionary) or --dataset", hint="for example --dataset faces")
    try:
        budgets = [float(t) for t in avg_nnz.split(",") if t.strip()]
    except ValueError:
        raise InputError(f"--avg-nnz {avg_nnz!r}: expected numbers like 1,2,3", hint="comma-separated") from None
    if not budgets:
        raise InputError("--avg-nnz is empty", hint="for example --avg-nnz 1,2,3,4")
    cfg = _settings(config, set_, front=front, kmax=kmax, select=select)
    mlist = [t.strip() for t in methods.split(",")] if methods else None
    from wisecli.engines.nnls import api, plots
    from wisecli.engines.nnls.data import load_matrix, make_dictionary
    from wisecli.runtime.device import resolve_device

    dev = resolve_device(device, sink=sink)
    truth = None
    if dataset is not None:
        d = api.load_dataset(dataset, seed=seed)
        A, B, truth, name = d["A"], d["B"], d.get("X_true"), dataset
        if dictionary is not None:
            A = make_dictionary(dictionary, B, seed=seed)
    else:
        paths = _inputs(inputs, None, None)
        if len(paths) != 1:
            raise InputError("evaluate takes one input", hint="run it per input")
        if dictionary is None:
            raise InputError("no dictionary: give --dictionary (a file, nmf:R or spa:R)", hint="see --help")
        B = _load(paths[0], key, var, cube, transpose, resize, sink).B
        A = make_dictionary(dictionary, B, seed=seed)
        name = paths[0].name
    if x_true is not None:
        truth = load_matrix(x_true, what="--x-true").B
        if truth.shape != (A.shape[1], B.shape[1]):
            raise InputError(f"--x-true has shape {truth.shape}, expected {(A.shape[1], B.shape[1])}",
                             hint="X_true is r × n")
    kw = _front_kw(cfg)
    kw.pop("front")
    sel = cfg["select"] if cfg["select"] != "auto" else "dp"
    recs = api.evaluate(A, B, budgets, methods=mlist, x_true=truth, dataset=name, device=dev, front=cfg["front"],
                        select_method=sel, progress=sink.record, **kw)
    if plot is not None:
        plots.plot_eval(plot, recs)
    cols = ["method", "avg_nnz", "q", "nnz", "rel_error_pct", "seconds"]
    if truth is not None:
        cols += ["support_f1", "abundance_rmse"]
    rows = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in recs]
    sink.result(recs, rows=rows, columns=cols, title=f"wise nnls evaluate ({name})")


@app.command()
def demo(
    dataset: Annotated[str, typer.Option("--dataset", help="faces | digits | hsi.")] = "faces",
    quick: o.Quick = False,
    out_dir: o.OutDir = None,
    device: o.Device = "auto", seed: o.Seed = 0, json: o.Json = False, quiet: o.Quiet = False,
) -> None:
    """Matrix-wise against column-wise exact and global top-q on real data (lfw faces by default) at
    q/n ∈ {1,2,3,4} (--quick: 2 only); writes a reconstruction PNG into --out-dir."""
    sink = _sink(json, False, quiet)
    from wisecli.engines.nnls import api
    from wisecli.runtime.device import resolve_device

    dev = resolve_device(device, sink=sink)
    doc = api.demo(quick=quick, device=dev, dataset=dataset, out_dir=out_dir, seed=seed)
    if doc["png"]:
        sink.info(f"wrote {doc['png']}")
    rows = [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items() if k != "dataset"}
            for r in doc["records"]]
    sink.result(doc, rows=rows, title=f"wise nnls demo ({dataset}): relative error %")


@app.command()
def info(device: o.Device = "auto", json: o.Json = False) -> None:
    """Methods, formats, limits, defaults and the device."""
    sink = _sink(json)
    from wisecli.engines.nnls import api
    from wisecli.runtime.device import device_name, resolve_device

    dev = resolve_device(device)
    doc = {
        "method": "nnls",
        "paper": "Nadisic, Cohen, Vandaele, Gillis: Matrix-wise l0-constrained sparse NNLS (arXiv 2011.11066)",
        "fronts": list(api.FRONT_METHODS), "select": list(api.SELECT_METHODS),
        "evaluate_methods": list(api.EVAL_METHODS), "nnls_solvers": ["bpp", "lh"],
        "inputs": [".npy", ".npz", ".csv", ".mat (v4-v7.2)", "image folder", "3-D cubes"],
        "dictionaries": ["PATH", "nmf:R", "spa:R"],
        "outputs": {"run": ["{stem}.X.npy", "{stem}.k.npy", "{stem}.summary.json", "run.json"],
                    "pareto": ["{stem}.fronts.npz", "{stem}.fronts.partial.npz (while running)"]},
        "limits": {"enum_max_r": api.ENUM_MAX_R, "bnb_auto_max_r": 24, "support_bitmask_r": 64,
                   "dp_back_pointer_max_r": 255},
        "defaults": {**api.DEFAULTS, "enum_max_subsets": api.ENUM_MAX_SUBSETS, "kmax": "r", "max_steps": "4r"},
        "device": device_name(dev),
    }
    rows = [{"key": k, "value": v if isinstance(v, str) else str(v)} for k, v in doc.items()]
    sink.result(doc, rows=rows, title="wise nnls info")


@app.command()
def benchmark(
    preset: Annotated[str, typer.Option("--preset", help="small | urban | cuprite | cbcl | all.")] = "all",
    quick: Annotated[bool, typer.Option("--quick", help="The small preset (seconds on CPU).")] = False,
    n: Annotated[Optional[int], typer.Option("--n", help="Columns (overrides the preset).")] = None,
    peer_columns: Annotated[int, typer.Option("--peer-columns", help="Columns the CPU peers run on.")] = 2000,
    cases: Annotated[str, typer.Option("--cases", help="Comma-separated: nnls,path,front,select.")] = "nnls,path,front,select",
    device: o.Device = "auto", json: o.Json = False, quiet: o.Quiet = False,
) -> None:
    """Race the peers (scipy nnls, sklearn lars_path, numpy brute force, exact DP) and print the ratios."""
    sink = _sink(json, False, quiet)
    from wisecli.engines.nnls import api
    from wisecli.runtime.device import resolve_device

    dev = resolve_device(device, sink=sink)
    recs = api.benchmark(device=dev, quick=quick, preset=preset, n=n, peer_columns=peer_columns,
                         cases=tuple(c.strip() for c in cases.split(",") if c.strip()))
    cols = ["case", "m", "r", "n", "ours_s", "peer_s", "speedup", "max_rel_diff", "device"]
    rows = [{k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in r.items()} for r in recs]
    sink.result({"records": recs}, rows=rows, columns=cols, title="wise nnls benchmark")
