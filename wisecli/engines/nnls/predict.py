"""Applying the method to inputs: the batch verbs `run` (both steps) and `pareto` (step 1), `evaluate` on one
input or an embedded data set, and the demo. Loading, dictionaries, solving, writing, `run.json` and the plots
live here; `api.py` resolves the settings, checks the inputs and calls these.

Choices (ours): the default output folder is the current folder; a folder holding images is one input (an image
set), any other folder is expanded into its data files; `--maps` on a non-cube input is a warning; `evaluate`
selects with the exact DP unless `--select greedy` is given (its matrix-wise rows are the optimum).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from wisecli.cli.errors import InputError
from wisecli.runtime.batch import BatchOptions, run_batch, stem_of
from wisecli.runtime.device import device_name, oom_guard
from wisecli.runtime.io.atomic import save_npy, save_npz, write_json, write_text
from wisecli.runtime.progress import progress
from wisecli.runtime.runrecord import RunRecord

from . import algorithm as alg
from . import plots
from .data import load_dataset, load_matrix, make_dictionary
from .metrics import evaluate as compare

FRONT_KEYS = ("front", "kmax", "enum_max_subsets", "bnb_time_limit", "max_steps", "normalize_atoms", "precision",
              "nnls_solver", "ridge")
X_NAMES = {"npy": "X.npy", "npz": "X.npz", "csv": "X.csv"}


def front_kw(cfg: dict) -> dict:
    """The step-1 knobs of a resolved settings table, as `compute_fronts` takes them."""
    return {k: cfg[k] for k in FRONT_KEYS if k in cfg}


def _load(path, reader: dict, sink):
    mat = load_matrix(path, **reader)
    if mat.note:
        sink.info(mat.note)
    return mat


def _same_dictionary(A, fr_A) -> bool:
    return A.shape == fr_A.shape and np.allclose(A, fr_A, rtol=1e-12, atol=0)


def run(paths: list[Path], *, dictionary, nnz, avg_nnz, fronts, cfg: dict, reader: dict, out: Path, fmt: str,
        sparse: bool, maps: bool, batch: BatchOptions, device, seed: int, sink, options: dict,
        show_progress: bool = True, settings=None) -> list[dict]:
    """Both steps over every input: writes {stem}.X.{fmt}, {stem}.k.npy, {stem}.summary.json (and the COO .npz,
    the maps) per input and run.json; returns the batch records, each ok one with its `summary` document.
    `dictionary` is a learned spec or an array read beforehand; `options` go into every summary as they are."""
    x_name = X_NAMES[fmt]
    docs: dict[str, dict] = {}

    def outputs_for(p):
        s = stem_of(p)
        outs = [out / f"{s}.{x_name}", out / f"{s}.k.npy", out / f"{s}.summary.json"]
        if sparse:
            outs.append(out / f"{s}.X.coo.npz")
        return outs

    def process(p):
        t0 = time.perf_counter()
        mat = _load(p, reader, sink)
        B = mat.B
        fr = fronts
        if fr is not None:
            if fr.err.shape[0] != B.shape[1]:
                raise InputError(f"--fronts has {fr.err.shape[0]} columns, the data has {B.shape[1]}",
                                 hint="use the fronts file written for this input")
            if dictionary is not None and not _same_dictionary(make_dictionary(dictionary, B, seed=seed), fr.A):
                raise InputError("--fronts was computed with another dictionary than --dictionary",
                                 hint="drop --dictionary (the fronts file carries A) or recompute the fronts")
        else:
            A = make_dictionary(dictionary, B, seed=seed)
            with progress(f"fronts {Path(p).name}", B.shape[1], show=show_progress) as advance:
                done = [0]

                def step(e, n):  # compute_fronts reports the columns finished so far
                    advance(e - done[0])
                    done[0] = e

                fr = oom_guard(lambda: alg.compute_fronts(A, B, device=device, col_block=cfg["chunk_columns"],
                                                          progress=step, **front_kw(cfg)),
                               option_hint="--chunk-columns")
        for note in fr.notes:
            sink.warn(note)
        cert = fr.certification()
        if not cert["certified"]:
            sink.warn(f"{Path(p).name}: fronts {fr.certification_warning()}")
        res = alg.solve(fr.A, B, q=nnz, avg_nnz=avg_nnz, fronts=fr, select_method=cfg["select"],
                        dp_max_cells=cfg["dp_max_cells"], device=device)
        for note in res["notes"][len(fr.notes):]:
            sink.warn(note)
        X, outs = res["X"], outputs_for(p)
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
                sink.warn(f"{Path(p).name}: --maps needs a cube input; no maps written")
            else:
                outs += plots.write_maps(out, stem_of(p), X, mat.spatial)
        sel = res["selection"]
        doc = {
            "command": "nnls run", "input": str(p), "m": int(B.shape[0]), "r": int(fr.A.shape[1]),
            "n": int(B.shape[1]), "q": res["q"], "nnz": res["nnz"], "avg_nnz": res["avg_nnz"],
            "rel_error": res["rel_error"], "nnls_rel_error": res["nnls_rel_error"],
            "front": {"method": fr.method, "exact_level_fraction": fr.exact_level_fraction(),
                      "flagged_columns": int(fr.flagged.sum()), "seconds": fr.seconds},
            "certified": cert["certified"], "uncertified_levels": cert["uncertified_levels"],
            "uncertified_columns": cert["uncertified_columns"],
            "select": {"method": sel.method, "objective": sel.objective, "lower_bound": sel.lower_bound,
                       "gap": sel.gap, "seconds": sel.seconds},
            "k_hist": res["k_hist"], "outputs": [str(x) for x in outs],
            "options": options,
            "device": device_name(device), "versions": _versions(), "seconds": time.perf_counter() - t0,
        }
        write_json(outs[2], doc)
        docs[str(p)] = doc
        return {"output": str(outs[0]), "outputs": [str(x) for x in outs],
                "metrics": {"rel_error": res["rel_error"], "nnz": res["nnz"], "avg_nnz": res["avg_nnz"],
                            "gap": sel.gap}}

    record = RunRecord("nnls run", config=settings if settings is not None else cfg, device=device_name(device),
                       seed=seed, inputs=paths)
    records = run_batch(paths, process, outputs_for=outputs_for, options=batch, sink=sink, run_record=record)
    for rec in records:  # after the --jsonl lines went out: those keep the spec's per-item keys
        if rec["input"] in docs:
            rec["summary"] = docs[rec["input"]]
    return records


def _versions() -> dict:
    from wisecli.runtime.bench import versions

    return versions()


def pareto(paths: list[Path], *, dictionary, cfg: dict, reader: dict, out: Path, plot, with_coefficients: bool,
           resume: bool, batch: BatchOptions, device, seed: int, sink, show_progress: bool = True,
           settings=None) -> list[dict]:
    """Step 1 over every input: {stem}.fronts.npz per input (column chunks saved to {stem}.fronts.partial.npz as
    they finish; `resume` continues from it) and run.json; returns the batch records, each ok one with its
    `summary` document."""
    chunk = max(1, int(cfg["chunk_columns"]))
    docs: dict[str, dict] = {}

    def outputs_for(p):
        return [out / f"{stem_of(p)}.fronts.npz"]

    def process(p):
        t0 = time.perf_counter()
        B = _load(p, reader, sink).B
        A = make_dictionary(dictionary, B, seed=seed)
        partial = out / f"{stem_of(p)}.fronts.partial.npz"
        parts, start = [], 0
        if resume and partial.exists():
            prev = alg.load_fronts(partial)
            if not _same_dictionary(A, prev.A):
                raise InputError(f"{partial.name} was computed with another dictionary", hint="drop --resume")
            parts, start = [prev], prev.err.shape[0]
            sink.info(f"resuming {Path(p).name} at column {start}")
        n = B.shape[1]
        kw = front_kw(cfg)
        if not kw.get("enum_max_subsets"):  # "by cost" over the whole input, so every chunk picks the same front
            kw["enum_max_subsets"] = alg.auto_max_subsets(int((np.abs(A).sum(0) > 0).sum()), n, device.type)
        with progress(f"fronts {Path(p).name}", n, show=show_progress) as advance:
            advance(start)
            for s in range(start, n, chunk):
                e = min(n, s + chunk)
                parts.append(oom_guard(lambda: alg.compute_fronts(A, B[:, s:e], device=device, col_block=chunk,
                                                                  with_coefficients=with_coefficients,
                                                                  **kw),
                                       option_hint="--chunk-columns"))
                if e < n:
                    save_npz(partial, **alg.fronts_arrays(alg.concat_fronts(parts)))
                advance(e - s)
        fr = alg.concat_fronts(parts)
        for note in fr.notes:
            sink.warn(note)
        cert = fr.certification()
        if not cert["certified"]:
            sink.warn(f"{Path(p).name}: fronts {fr.certification_warning()}")
        path = alg.save_fronts(outputs_for(p)[0], fr)
        if partial.exists():
            partial.unlink()
        outs = [str(path)]
        if plot is not None:
            outs.append(str(plots.plot_fronts(plot, fr)))
        doc = {"command": "nnls pareto", "input": str(p), "m": int(B.shape[0]), "r": int(A.shape[1]), "n": n,
               "method": fr.method, "kmax": fr.kmax, "exact_level_fraction": fr.exact_level_fraction(),
               "flagged_columns": int(fr.flagged.sum()), "on_front_mean": float(fr.on_front[:, 1:].sum(1).mean()),
               **cert,
               "outputs": outs, "device": device_name(device), "seconds": time.perf_counter() - t0}
        docs[str(p)] = doc
        return {"output": str(path), "outputs": outs,
                "metrics": {"exact_level_fraction": doc["exact_level_fraction"], "method": fr.method}}

    record = RunRecord("nnls pareto", config=settings if settings is not None else cfg, device=device_name(device),
                       seed=seed, inputs=paths)
    records = run_batch(paths, process, outputs_for=outputs_for, options=batch, sink=sink, run_record=record)
    for rec in records:
        if rec["input"] in docs:
            rec["summary"] = docs[rec["input"]]
    return records


def evaluate(*, path, dataset, dictionary, budgets, methods, x_true, cfg: dict, reader: dict, plot, device,
             seed: int, sink) -> list[dict]:
    """`evaluate` on one input (with its dictionary, a learned spec or an array) or an embedded data set: the
    records of `metrics.evaluate`, each also handed to `sink.record` as it finishes (--jsonl). `x_true` is an
    array read beforehand."""
    truth = None
    if dataset is not None:
        d = load_dataset(dataset, seed=seed)
        A, B, truth, name = d["A"], d["B"], d.get("X_true"), dataset
        if dictionary is not None:
            A = make_dictionary(dictionary, B, seed=seed)
    else:
        B = _load(path, reader, sink).B
        A = make_dictionary(dictionary, B, seed=seed)
        name = Path(path).name
    if x_true is not None:
        truth = x_true
        if truth.shape != (A.shape[1], B.shape[1]):
            raise InputError(f"--x-true has shape {truth.shape}, expected {(A.shape[1], B.shape[1])}",
                             hint="X_true is r × n")
    kw = front_kw(cfg)
    front = kw.pop("front")
    sel = cfg["select"] if cfg["select"] != "auto" else "dp"
    recs = compare(A, B, budgets, methods=methods, x_true=truth, dataset=name, device=device, front=front,
                   select_method=sel, progress=sink.record, **kw)
    if plot is not None:
        plots.plot_eval(plot, recs)
    return recs


CLAIMS = {"faces": ((2.0, 0.5, 0.5), (3.0, 0.5, 0.5)), "digits": ((3.0, 0.5, 0.5),), "hsi": ((2.0, 0.3, 0.0),)}
"""The spec's §9 claims per data set: (q/n, points by which matrix-wise exact beats column-wise exact, points by
which it beats global top-q)."""


def demo(*, quick: bool, device, dataset: str, out_dir, seed: int):
    """Matrix-wise against column-wise exact and global top-q on real data (`runtime.results.DemoResult`).

    Gates: the spec's §9 margins at the budgets the run covers (`CLAIMS`: faces 0.5 pp at q/n = 2 and 3 over
    both; digits 0.5 pp at q/n = 3; hsi 0.3 pp over column-wise and ≤ global top-q at q/n = 2, support F1 ≥ 0.85)
    and, at every integral budget, matrix-wise exact never worse than the others (it is the optimum). The
    reconstruction PNG is written only into `out_dir` (nothing is left in $TMPDIR)."""
    from wisecli.runtime.results import DemoResult, Gate

    t0 = time.perf_counter()
    d = load_dataset(dataset, seed=seed, quick=quick)
    A, B = d["A"], d["B"]
    ints = [2] if quick else [1, 2, 3, 4]
    levels = [1, 1.5, 2, 2.5, 3] if dataset == "hsi" and not quick else ints
    methods = ["matrixwise-exact", "columnwise-exact", "global-topq"]
    if not quick:
        methods += ["matrixwise-union", "columnwise-nnomp", "columnwise-homotopy", "global-lambda", "nnls-dense"]
    recs = compare(A, B, levels, methods=methods, x_true=d.get("X_true"), dataset=dataset, device=device,
                   select_method="dp")
    pct = {(r_["method"], r_["avg_nnz"]): r_["rel_error_pct"] for r_ in recs}
    gates = []
    for a, m_cw, m_gt in CLAIMS[dataset]:
        if ("matrixwise-exact", a) in pct:
            mw = pct[("matrixwise-exact", a)]
            gates += [Gate(f"columnwise_minus_matrixwise_pp@{a:g}", pct[("columnwise-exact", a)] - mw, ">=", m_cw),
                      Gate(f"global_topq_minus_matrixwise_pp@{a:g}", pct[("global-topq", a)] - mw, ">=", m_gt)]
    if dataset == "hsi":
        f1 = next(r_["support_f1"] for r_ in recs if r_["method"] == "matrixwise-exact" and r_["avg_nnz"] == 2.0)
        gates.append(Gate("matrixwise_support_f1@2", f1, ">=", 0.85))
    worst = max(pct[("matrixwise-exact", a)] - pct[(m, a)] for a in map(float, ints)
                for m in ("columnwise-exact", "global-topq"))
    gates.append(Gate("matrixwise_excess_over_others_pp", worst, "<=", 1e-9))
    png = None
    if out_dir is not None:
        fr = alg.compute_fronts(A, B, device=device)
        sols = {a: alg.solve(A, B, avg_nnz=a, fronts=fr, device=device)["X"] for a in (1, 2)}
        png = str(plots.plot_reconstruction(Path(out_dir) / f"nnls-demo-{dataset}.png", A, B, sols,
                                            d["spatial"] if dataset == "hsi" else None))
    head = {"matrixwise_pct@2": pct[("matrixwise-exact", 2.0)], "columnwise_pct@2": pct[("columnwise-exact", 2.0)],
            "global_topq_pct@2": pct[("global-topq", 2.0)]}
    return DemoResult("nnls", gates, head, {"dataset": dataset, "records": recs, "png": png,
                                            "seconds": time.perf_counter() - t0})
