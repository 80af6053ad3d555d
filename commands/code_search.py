"""`wise code-search`: COSEA, convolutional code search with layer-wise attention (Wang et al., arXiv 2010.09520).

Thin Typer layer: each verb parses, makes one call into `wisecli.engines.code_search.api` (imported inside the
verb, so `wise --help` stays fast) and hands the result to the sink. Defaults live in `api.DEFAULTS`.
`train`/`evaluate` DATA words may be `stdlib` or `site-packages:NAMES` besides paths; `predict` SOURCES and `query`
QUERIES are strings: `-` reads JSONL snippets (predict --format jsonl) or query lines (query) on stdin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from wisecli.cli import options as o
from wisecli.cli.common import MethodApp
from wisecli.cli.output import Sink

app = MethodApp("code-search", help="COSEA code search: train on docstrings, index source trees, query in plain words.",
                rich_markup_mode="rich")


def _opt(name: str, help: str, callback=None, **kw):
    return typer.Option(name, help=help, callback=callback, **kw)


Data = Annotated[list[Path], typer.Argument(help="Folders or .py files, pairs JSONL, CoSQA JSON, StaQC or CoaCor pickles, "
                                                   "stdlib, site-packages:a,b.")]
Fmt = Annotated[Optional[Literal["auto", "pairs", "csn", "cosqa", "staqc", "coacor", "python"]], _opt("--format", "How to read DATA.")]
Int = Optional[int]


@app.command()
def train(
    data: Data, out_dir: o.OutDir = None, fmt: Fmt = None,
    val: Annotated[Optional[list[Path]], _opt("--val", "Validation data (else --val-split).")] = None,
    val_split: Annotated[Optional[str], _opt("--val-split", "module:F, the fraction of modules held out.")] = None,
    dim: Annotated[Int, _opt("--dim", "Embedding width d.", o.at_least_one)] = None,
    layers: Annotated[Int, _opt("--layers", "Convolution blocks L.", o.at_least_one)] = None,
    pool: Annotated[Optional[Literal["layerwise", "max-last"]], _opt("--pool", "Layer-wise attention or max-pool.")] = None,
    attention: Annotated[Optional[Literal["self", "cross"]], _opt("--attention", "cross: also a reranker.")] = None,
    share_embeddings: Annotated[Optional[bool], _opt("--share-embeddings/--no-share-embeddings", "One table.")] = None,
    loss: Annotated[Optional[Literal["hardest", "hardest-softmax", "infonce", "hinge-sum", "hinge-random"]],
                    _opt("--loss", "Contrastive loss.")] = None,
    margin: Annotated[Optional[float], _opt("--margin", "Hinge margin δ.", o.positive)] = None,
    tau: Annotated[Optional[float], _opt("--tau", "Temperature of the softmax losses.", o.positive)] = None,
    symmetric: Annotated[Optional[bool], _opt("--symmetric/--one-way", "Add the code→query direction.")] = None,
    negatives: Annotated[Optional[Literal["batch", "queue"]],
                         _opt("--negatives", "queue: also the last 4,096 codes.")] = None,
    warmup_epochs: Annotated[Int, _opt("--warmup-epochs", "Epochs of infonce first (0: none).", o.not_negative)] = None,
    batch: Annotated[Int, _opt("--batch", "Pairs per batch.", o.at_least_one)] = None,
    epochs: o.Epochs = None, lr: o.Lr = None,
    max_code_len: Annotated[Int, _opt("--max-code-len", "Code tokens kept.", o.at_least_one)] = None,
    max_query_len: Annotated[Int, _opt("--max-query-len", "Query tokens kept.", o.at_least_one)] = None,
    vocab_size: Annotated[Int, _opt("--vocab-size", "Largest vocabulary.", o.at_least_one)] = None,
    keep_docstrings: Annotated[Optional[bool], _opt("--keep-docstrings", "Keep docstrings in the code side.")] = None,
    resume: o.Resume = False, overwrite: o.Overwrite = False, device: o.Device = None, amp: o.Amp = None,
    seed: o.Seed = None, json: o.Json = False, no_progress: o.NoProgress = False,
) -> None:
    """Train COSEA on (docstring, function) pairs into a run folder (-o RUN)."""
    import sys

    from wisecli.engines.code_search import api

    sink = Sink(json=json)
    doc = api.train(data, out_dir, val=val, resume=resume, overwrite=overwrite, progress=not no_progress, sink=sink,
                    argv=sys.argv, format=fmt, val_split=val_split, dim=dim, layers=layers, pool=pool, attention=attention,
                    share_embeddings=share_embeddings, loss=loss, margin=margin, tau=tau, symmetric=symmetric,
                    negatives=negatives, warmup_epochs=warmup_epochs, batch=batch, epochs=epochs, lr=lr,
                    max_code_len=max_code_len, max_query_len=max_query_len, vocab_size=vocab_size,
                    keep_docstrings=keep_docstrings, device=device, amp=amp, seed=seed)
    sink.result(doc, title="wise code-search train")


@app.command()
def predict(
    sources: Annotated[list[str], typer.Argument(help="Files, folders, quoted globs, @list.txt, @-; or JSONL (- stdin).")],
    weights: o.Weights = None, out_dir: o.OutDir = None,
    fmt: Annotated[Optional[Literal["python", "jsonl"]], _opt("--format", "Python source or JSONL snippets.")] = None,
    exclude: Annotated[Optional[list[str]], _opt("--exclude", "Folder names skipped (repeatable).")] = None,
    max_file_mb: Annotated[Optional[float], _opt("--max-file-mb", "Larger files are item errors.", o.positive)] = None,
    no_bm25: Annotated[Optional[bool], _opt("--no-bm25", "Do not store the BM25 part.")] = None,
    batch: Annotated[Int, _opt("--batch", "Functions per encoding batch.", o.at_least_one)] = None,
    overwrite: o.Overwrite = False, skip_existing: o.SkipExisting = False, device: o.Device = None,
    json: o.Json = False, jsonl: o.Jsonl = False,
) -> None:
    """Build an index of functions (-o INDEX); --skip-existing re-embeds only changed files."""
    import sys

    from wisecli.engines.code_search import api

    sink = Sink(json=json, jsonl=jsonl)
    doc = api.predict(sources, weights, out_dir, overwrite=overwrite, skip_existing=skip_existing, sink=sink,
                      argv=sys.argv, format=fmt, exclude=exclude, max_file_mb=max_file_mb, no_bm25=no_bm25,
                      batch=batch, device=device)
    for r in doc["records"]:
        sink.record(r)
    sink.result(doc, rows=doc["records"], title=f"wise code-search predict: {doc['functions']} functions, "
                                                 f"{doc['embedded']} embedded, {doc['kept']} kept")
    sink.finish(doc["records"], what="files")


@app.command()
def query(
    index: Annotated[Path, typer.Argument(help="Index folder written by predict.")],
    queries: Annotated[list[str], typer.Argument(help="Queries; @queries.txt or - reads one a line.")],
    k: Annotated[Int, _opt("-k", "Results per query.", o.at_least_one)] = None,
    method: Annotated[Optional[Literal["cosea", "bm25", "hybrid"]], _opt("--method", "Ranking.")] = None,
    weights: o.Weights = None,
    rerank: Annotated[Int, _opt("--rerank", "Rescore the top K with the cross reranker.", o.not_negative)] = None,
    path_glob: Annotated[Optional[str], _opt("--path-glob", "Only functions whose path matches.")] = None,
    show_code: Annotated[Int, _opt("--show-code", "First N lines of each result.", o.not_negative)] = None,
    device: o.Device = None, json: o.Json = False, jsonl: o.Jsonl = False,
) -> None:
    """Ranked functions (path:line) for plain-language queries."""
    from wisecli.cli.inputs import read_stdin_data
    from wisecli.engines.code_search import api

    sink = Sink(json=json, jsonl=jsonl)
    words = []
    for q in queries:
        if q == "-" or (q.startswith("@") and len(q) > 1):
            text = read_stdin_data() if q in ("-", "@-") else api.read_query_file(q[1:])
            words += [line.strip() for line in text.splitlines() if line.strip()]
        else:
            words.append(q)
    out = api.query(index, words, weights=weights, sink=sink, k=k, method=method, rerank=rerank,
                    path_glob=path_glob, show_code=show_code, device=device)
    for r in out:
        sink.record(r)
    rows = [{"query": r["query"], **{c: m[c] for c in ("rank", "score", "path", "lineno", "qualname")}}
            for r in out for m in r["results"]]
    sink.result(out, rows=rows, title="wise code-search query")


@app.command()
def evaluate(
    data: Data, weights: o.Weights = None, fmt: Fmt = None,
    split: Annotated[Optional[Literal["all", "train", "val", "test"]], _opt("--split", "Module split kept.")] = None,
    pool: Annotated[Optional[str], _opt("--pool", "all, or N codes per query (1 true + N-1).")] = None,
    method: Annotated[Optional[Literal["cosea", "bm25", "hybrid"]], _opt("--method", "Ranking.")] = None,
    compare: Annotated[Optional[Literal["bm25"]], _opt("--compare", "Paired bootstrap against BM25.")] = None,
    bootstrap: Annotated[Int, _opt("--bootstrap", "Resamples for the intervals.", o.not_negative)] = None,
    distractors: Annotated[Optional[list[Path]], _opt("--distractors", "More codes in the pool: data, or an index folder.")] = None,
    device: o.Device = None, seed: o.Seed = None, json: o.Json = False, jsonl: o.Jsonl = False,
) -> None:
    """MRR, R@1/5/10, nDCG@10 with the candidate pool stated (--jsonl: per-query ranks)."""
    from wisecli.engines.code_search import api

    sink = Sink(json=json, jsonl=jsonl)
    doc = api.evaluate(data, weights=weights, distractors=distractors, sink=sink, format=fmt, split=split, pool=pool,
                       method=method, compare=compare, bootstrap=bootstrap, seed=seed, device=device)
    for r in doc["per_query"]:
        sink.record(r)
    sink.info("  ".join(f"{k}: {v}" for k, v in doc["protocol"].items()))
    rows = [{"method": m, **{k: v for k, v in r.items()}} for m, r in doc["results"].items()]
    sink.result({k: v for k, v in doc.items() if k != "per_query"}, rows=rows, title="wise code-search evaluate")


@app.command()
def demo(quick: o.Quick = False, device: o.Device = None, json: o.Json = False) -> None:
    """Train a small COSEA on the standard library, race BM25 and hybrid on held-out modules, search `json`."""
    from wisecli.engines.code_search import api

    sink = Sink(json=json)
    result = api.demo(quick=quick, device=device, sink=sink)
    if not json:
        sink.table(result.details["rows"], title=f"held-out standard-library modules, pool {result.headline['pool']}")
        sink.table(result.details["answers"], title="index of json: hybrid top 1")
    sink.demo(result, title="wise code-search demo gates")


@app.command()
def info(weights: o.Weights = None, json: o.Json = False) -> None:
    """Formats, defaults, tokenizer rules, peers installed; --weights: the model summary."""
    from wisecli.engines.code_search import api

    doc = api.info(weights)
    rows = [{"item": k, "value": v} for k, v in doc.items() if k != "defaults"]
    Sink(json=json).result(doc, rows=rows, title="wise code-search info")


@app.command()
def benchmark(
    quick: o.Quick = False, device: o.Device = None,
    size: Annotated[Optional[Literal["small", "gpu", "full"]], _opt("--size", "Corpus and query count.")] = None,
    weights: o.Weights = None, json: o.Json = False,
) -> None:
    """COSEA search vs plain BM25: index build, batch throughput, single-query latency."""
    from wisecli.engines.code_search import api

    Sink(json=json).benchmark(api.benchmark(device=device, quick=quick, size=size, weights=weights),
                              title="wise code-search benchmark")
