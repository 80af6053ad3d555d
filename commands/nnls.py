"""`wise nnls`: matrix-wise ℓ0-constrained sparse NNLS (Nadisic, Cohen, Vandaele, Gillis).

Verbs: `run` (both steps, X with at most q nonzeros in the whole matrix), `pareto` (step 1: per-column fronts),
`evaluate` (matrix-wise against column-wise and global heuristics), `demo`, `info`, `benchmark`.
Each verb parses, calls `wisecli.engines.nnls.api.<verb>` once and hands the result to the sink.

Choices (ours): `--json` prints the spec's document for one input and `{"items": [...]}` for several (skipped and
failed inputs appear as their records); `--plot` and `--fronts` take one input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from wisecli.cli import options as o
from wisecli.cli.common import MethodApp
from wisecli.cli.output import Sink

app = MethodApp("nnls", help="Matrix-wise ℓ0-constrained sparse NNLS: at most q nonzeros in the whole X.",
                context_settings={"help_option_names": ["-h", "--help"]})

_IN = "Input"
_SOLVE = "Solver"
_FRONTS = Literal["auto", "enum", "hybrid", "bnb", "union", "greedy", "backward", "homotopy"]
Inputs = Annotated[list[Path], typer.Argument(help="B files (.npy .npz .csv .mat), image folders, globs, @list.txt, @-.")]
Dictionary = Annotated[Optional[str], typer.Option("-A", "--dictionary", help="Dictionary A (m×r): a file, nmf:R or spa:R.",
                                                   rich_help_panel=_IN)]
Key = Annotated[Optional[str], typer.Option("--key", help=".npz array name (default: B or the only one).",
                                            rich_help_panel=_IN)]
Var = Annotated[Optional[str], typer.Option("--var", help=".mat variable (default: the only 2-D/3-D one).",
                                            rich_help_panel=_IN)]
Cube = Annotated[Optional[Literal["bands-last", "bands-first"]], typer.Option("--cube", help="3-D layout.",
                                                                               rich_help_panel=_IN)]
Transpose = Annotated[bool, typer.Option("--transpose", help="Data stored n × m.", rich_help_panel=_IN)]
Resize = Annotated[Optional[str], typer.Option("--resize", help="Resize images to HxW.", rich_help_panel=_IN)]
Nnz = Annotated[Optional[int], typer.Option("--nnz", help="Total budget q of nonzeros.", callback=o.not_negative,
                                            rich_help_panel=_SOLVE)]
AvgNnz = Annotated[Optional[float], typer.Option("--avg-nnz", help="Budget per column: q = avg·n.",
                                                 callback=o.not_negative, rich_help_panel=_SOLVE)]
Front = Annotated[Optional[_FRONTS], typer.Option("--front", help="Step-1 fronts.", rich_help_panel=_SOLVE)]
Kmax = Annotated[Optional[int], typer.Option("--kmax", help="Cap every front at level K (0: r).", callback=o.not_negative,
                                             rich_help_panel=_SOLVE)]
Select = Annotated[Optional[Literal["auto", "dp", "greedy"]], typer.Option("--select", help="Step-2 selection.",
                                                                            rich_help_panel=_SOLVE)]
EnumMax = Annotated[Optional[int], typer.Option("--enum-max-subsets", help="Subset budget of enum/hybrid/auto "
                                                "(0: by estimated cost on the device; see info).", callback=o.not_negative,
                                                rich_help_panel=_SOLVE)]
BnbLimit = Annotated[Optional[float], typer.Option("--bnb-time-limit", help="Seconds per column for bnb.",
                                                   callback=o.positive, rich_help_panel=_SOLVE)]
MaxSteps = Annotated[Optional[int], typer.Option("--max-steps", help="Homotopy steps (0: 4r).", callback=o.not_negative,
                                                 rich_help_panel=_SOLVE)]
Normalize = Annotated[Optional[bool], typer.Option("--normalize-atoms/--no-normalize-atoms",
                                                   help="Unit-norm atoms inside (X rescaled back).",
                                                   rich_help_panel=_SOLVE)]
Precision = Annotated[Optional[Literal["fp64", "fp32"]], typer.Option(
    "--precision", help="fp32 for enum only (winners re-scored in fp64).", rich_help_panel=_SOLVE)]
Ridge = Annotated[Optional[float], typer.Option("--ridge", help="Ridge added to AᵀA.", callback=o.not_negative,
                                                rich_help_panel=_SOLVE)]
NnlsSolver = Annotated[Optional[Literal["bpp", "lh"]], typer.Option("--nnls-solver", help="Dense NNLS solver.",
                                                                     rich_help_panel=_SOLVE)]
DpCells = Annotated[Optional[int], typer.Option("--dp-max-cells", help="auto uses dp when n·(q+1) fits.",
                                                callback=o.at_least_one, rich_help_panel=_SOLVE)]
Chunk = Annotated[Optional[int], typer.Option("--chunk-columns", help="Columns per GPU block (pareto: per saved chunk).",
                                              callback=o.at_least_one, rich_help_panel=_SOLVE)]
Dataset = Annotated[Optional[Literal["faces", "digits", "hsi"]], o.DATASET]


def _round(d: dict, nd: int = 4) -> dict:
    return {k: (round(v, nd) if isinstance(v, float) else v) for k, v in d.items()}


def _document(records: list[dict]):
    """The --json document: the spec's summary for one input, {"items": [...]} for several."""
    items = [{**r["summary"], "status": r["status"]} if "summary" in r else r for r in records]
    return items[0] if len(items) == 1 else {"items": items}


def _run_row(r: dict) -> dict:
    d = r.get("summary")
    if d is None:
        return {"input": Path(r["input"]).name, "status": r["status"], "error": r.get("error")}
    return {"input": Path(d["input"]).name, "status": r["status"], "n": d["n"], "q": d["q"], "nnz": d["nnz"],
            "rel_error_%": round(100 * d["rel_error"], 4), "nnls_%": round(100 * d["nnls_rel_error"], 4),
            "front": d["front"]["method"], "select": d["select"]["method"], "gap": d["select"]["gap"],
            "seconds": round(d["seconds"], 3)}


def _pareto_row(r: dict) -> dict:
    d = r.get("summary")
    if d is None:
        return {"input": Path(r["input"]).name, "status": r["status"], "error": r.get("error")}
    keep = ("n", "r", "method", "kmax", "exact_level_fraction", "flagged_columns", "seconds")
    return _round({"input": Path(d["input"]).name, "status": r["status"], **{k: d[k] for k in keep}})


@app.command()
def run(
    inputs: Inputs, dictionary: Dictionary = None, nnz: Nnz = None, avg_nnz: AvgNnz = None,
    fronts: Annotated[Optional[Path], typer.Option("--fronts", help="Reuse a 'pareto' fronts file (it carries A).",
                                                   rich_help_panel=_SOLVE)] = None,
    format: Annotated[Optional[Literal["npy", "npz", "csv"]], o.FORMAT] = None,
    sparse: Annotated[bool, typer.Option("--sparse", help="Also write X as COO .npz (rows, cols, vals, shape).")] = False,
    maps: Annotated[bool, typer.Option("--maps", help="PNG abundance map per atom (cubes only).")] = False,
    front: Front = None, kmax: Kmax = None, select: Select = None, enum_max_subsets: EnumMax = None,
    bnb_time_limit: BnbLimit = None, max_steps: MaxSteps = None, normalize_atoms: Normalize = None,
    precision: Precision = None, ridge: Ridge = None, nnls_solver: NnlsSolver = None, dp_max_cells: DpCells = None,
    chunk_columns: Chunk = None, key: Key = None, var: Var = None, cube: Cube = None, transpose: Transpose = False,
    resize: Resize = None, out_dir: o.OutDir = None, skip_existing: o.SkipExisting = False,
    overwrite: o.Overwrite = False, fail_fast: o.FailFast = False, shard: o.Shard = None, pattern: o.Pattern = None,
    device: o.Device = None, amp: o.Amp = True, seed: o.Seed = None, json: o.Json = False, jsonl: o.Jsonl = False,
    no_progress: o.NoProgress = False, debug: o.Debug = False,
) -> None:
    """Both steps: per-column fronts, then one level per column under Σk ≤ q. Writes {stem}.X.npy (r×n),
    {stem}.k.npy and {stem}.summary.json. (--amp is accepted and ignored.)"""
    from wisecli.engines.nnls import api

    sink = Sink(json=json, jsonl=jsonl)
    records = api.run(inputs, dictionary=dictionary, nnz=nnz, avg_nnz=avg_nnz, fronts=fronts, format=format,
                      sparse=sparse, maps=maps, front=front, kmax=kmax, select=select,
                      enum_max_subsets=enum_max_subsets, bnb_time_limit=bnb_time_limit, max_steps=max_steps,
                      normalize_atoms=normalize_atoms, precision=precision, ridge=ridge, nnls_solver=nnls_solver,
                      dp_max_cells=dp_max_cells, chunk_columns=chunk_columns, key=key, var=var, cube=cube,
                      transpose=transpose, resize=resize, out_dir=out_dir, skip_existing=skip_existing,
                      overwrite=overwrite, fail_fast=fail_fast, shard=shard, pattern=pattern, device=device,
                      seed=seed, no_progress=no_progress, debug=debug, sink=sink)
    sink.result(_document(records), rows=[_run_row(r) for r in records], title="wise nnls run")
    sink.finish(records)


@app.command()
def pareto(
    inputs: Inputs, dictionary: Dictionary = None, front: Front = None, kmax: Kmax = None, plot: o.Plot = None,
    with_coefficients: Annotated[bool, typer.Option("--with-coefficients", help="Store coef (n×(K+1)×r float32).")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from {stem}.fronts.partial.npz.")] = False,
    chunk_columns: Chunk = None, enum_max_subsets: EnumMax = None, bnb_time_limit: BnbLimit = None,
    max_steps: MaxSteps = None, normalize_atoms: Normalize = None, precision: Precision = None, ridge: Ridge = None,
    nnls_solver: NnlsSolver = None, key: Key = None, var: Var = None, cube: Cube = None, transpose: Transpose = False,
    resize: Resize = None, out_dir: o.OutDir = None, skip_existing: o.SkipExisting = False,
    overwrite: o.Overwrite = False, fail_fast: o.FailFast = False, shard: o.Shard = None, pattern: o.Pattern = None,
    device: o.Device = None, amp: o.Amp = True, seed: o.Seed = None, json: o.Json = False, jsonl: o.Jsonl = False,
    no_progress: o.NoProgress = False, debug: o.Debug = False,
) -> None:
    """Step 1 only: per-column error-versus-sparsity fronts, written to {stem}.fronts.npz (err, on_front, exact,
    support bitmasks, beta, A, method, options). Column chunks go to {stem}.fronts.partial.npz; --resume continues."""
    from wisecli.engines.nnls import api

    sink = Sink(json=json, jsonl=jsonl)
    records = api.pareto(inputs, dictionary=dictionary, front=front, kmax=kmax, plot=plot,
                         with_coefficients=with_coefficients, resume=resume, chunk_columns=chunk_columns,
                         enum_max_subsets=enum_max_subsets, bnb_time_limit=bnb_time_limit, max_steps=max_steps,
                         normalize_atoms=normalize_atoms, precision=precision, ridge=ridge, nnls_solver=nnls_solver,
                         key=key, var=var, cube=cube, transpose=transpose, resize=resize, out_dir=out_dir,
                         skip_existing=skip_existing, overwrite=overwrite, fail_fast=fail_fast, shard=shard,
                         pattern=pattern, device=device, seed=seed, no_progress=no_progress, debug=debug, sink=sink)
    sink.result(_document(records), rows=[_pareto_row(r) for r in records], title="wise nnls pareto")
    sink.finish(records)


@app.command()
def evaluate(
    inputs: Annotated[Optional[list[Path]], typer.Argument(help="B (one input), or use --dataset.")] = None,
    dictionary: Dictionary = None, dataset: Dataset = None,
    avg_nnz: Annotated[Optional[str], typer.Option("--avg-nnz", help="Budgets per column, comma-separated.")] = None,
    methods: Annotated[Optional[str], typer.Option("--methods", help="Comma-separated subset of the methods.")] = None,
    x_true: Annotated[Optional[Path], typer.Option("--x-true", help="True X (r×n) for support F1 / RMSE.")] = None,
    plot: o.Plot = None, front: Front = None, kmax: Kmax = None, select: Select = None,
    key: Key = None, var: Var = None, cube: Cube = None, transpose: Transpose = False, resize: Resize = None,
    device: o.Device = None, amp: o.Amp = True, seed: o.Seed = None, json: o.Json = False, jsonl: o.Jsonl = False,
) -> None:
    """Matrix-wise (exact, union) against column-wise (exact, NNOMP, homotopy) and global (top-q, one λ)
    heuristics at every budget; one record per (method, budget); nnz ≤ q is asserted."""
    from wisecli.engines.nnls import api

    sink = Sink(json=json, jsonl=jsonl)
    recs = api.evaluate(inputs, dictionary=dictionary, dataset=dataset, avg_nnz=avg_nnz, methods=methods,
                        x_true=x_true, plot=plot, front=front, kmax=kmax, select=select, key=key, var=var, cube=cube,
                        transpose=transpose, resize=resize, device=device, seed=seed, sink=sink)
    cols = ["method", "avg_nnz", "q", "nnz", "rel_error_pct", "seconds"]
    cols += ["support_f1", "abundance_rmse"] if recs and "support_f1" in recs[0] else []
    name = recs[0]["dataset"] if recs else ""
    sink.result(recs, rows=[_round(r) for r in recs], columns=cols, title=f"wise nnls evaluate ({name})")


@app.command()
def demo(dataset: Dataset = None, quick: o.Quick = False, out_dir: o.OutDir = None, device: o.Device = None,
         seed: o.Seed = None, json: o.Json = False) -> None:
    """Matrix-wise against column-wise exact and global top-q on real data (lfw faces by default) at
    q/n ∈ {1,2,3,4} (--quick: 2 only); gates are the spec's claims; writes a reconstruction PNG into --out-dir."""
    from wisecli.engines.nnls import api

    sink = Sink(json=json)
    result = api.demo(quick=quick, device=device, dataset=dataset, out_dir=out_dir, seed=seed)
    if result.details.get("png"):
        sink.info(f"wrote {result.details['png']}")
    sink.demo(result, title=f"wise nnls demo ({result.details['dataset']})")


@app.command()
def info(device: o.Device = None, json: o.Json = False) -> None:
    """Methods, formats, limits, defaults and the device."""
    from wisecli.engines.nnls import api

    doc = api.info(device=device)
    rows = [{"key": k, "value": v if isinstance(v, str) else str(v)} for k, v in doc.items()]
    Sink(json=json).result(doc, rows=rows, title="wise nnls info")


@app.command()
def benchmark(
    preset: Annotated[Optional[Literal["small", "urban", "cuprite", "cbcl", "all"]],
                      typer.Option("--preset", help="Sizes: small is the quick CPU preset.")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="The small preset (seconds on CPU).")] = False,
    n: Annotated[Optional[int], typer.Option("--n", help="Columns (overrides the preset).", callback=o.at_least_one)] = None,
    peer_columns: Annotated[Optional[int], typer.Option("--peer-columns", help="Columns the CPU peers run on.",
                                                        callback=o.at_least_one)] = None,
    cases: Annotated[Optional[str], typer.Option("--cases", help="Comma-separated: nnls,path,front,select.")] = None,
    device: o.Device = None, json: o.Json = False,
) -> None:
    """Race the peers (scipy nnls, sklearn lars_path, numpy brute force, exact DP) and print the ratios."""
    from wisecli.engines.nnls import api

    records = api.benchmark(device=device, quick=quick, preset=preset, n=n, peer_columns=peer_columns, cases=cases)
    Sink(json=json).benchmark(records, title="wise nnls benchmark")
