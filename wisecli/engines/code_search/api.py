"""The Python API of `wise code-search` (the command calls only these): train, predict (build or update an index),
query, evaluate, demo, info, benchmark, and the `DEFAULTS` of every verb. COSEA (Wang et al., "COSEA:
Convolutional Code Search with Layer-wise Attention", arXiv 2010.09520): convolutional encoders of code and
queries whose layers are pooled by attention, cosine ranking, a hardest-negative contrastive loss.

    from wisecli.engines.code_search import api
    api.train(["stdlib"], "runs/cs", epochs=30)
    api.predict(["~/src/proj"], weights="runs/cs", out_dir="idx")
    api.query("idx", ["read a csv file"], k=5)[0]["results"][0]["path"]

Settings left at None come from `DEFAULTS[verb]`, then `--config`/`WISE_*`/`--set` (`cli.config.resolve`).
Choices where the spec is silent are written in the module that makes them (data.py: extraction, queries,
splits; model.py: the Siamese initialisation; train.py: schedule, warm-up, split of JSONL pairs; predict.py: the
index layout, updates, tie rule, `--distractors INDEX`; formats.py: the CoSQA, StaQC and CoaCor readers and the restricted
unpickler; demo.py: the demo's modules and the gate that does not separate on CPU).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

METHOD = "code-search"
_MODEL = {"dim": 256, "layers": 3, "pool": "layerwise", "attention": "self", "share_embeddings": True, "max_code_len": 256,
          "max_query_len": 32, "vocab_size": 50000}
DEFAULTS: dict[str, dict[str, Any]] = {
    "train": {**_MODEL, "format": "auto", "val_split": "module:0.1", "loss": "hardest", "margin": 0.2, "tau": 0.05,
              "symmetric": False, "negatives": "batch", "warmup_epochs": None, "batch": 512, "epochs": 30, "lr": 1e-3,
              "keep_docstrings": False, "seed": 0, "device": "auto", "amp": True},
    "predict": {"format": "python", "exclude": [".git", "__pycache__", ".venv", "venv", "build", "dist",
                                                "node_modules", "site-packages"],
                "max_file_mb": 5.0, "no_bm25": False, "batch": 512, "device": "auto"},
    "query": {"k": 10, "method": "cosea", "rerank": 0, "path_glob": None, "show_code": 0, "device": "auto"},
    "evaluate": {"format": "auto", "split": "all", "pool": "all", "method": "cosea", "compare": None,
                 "bootstrap": 1000, "seed": 0, "device": "auto"},
    "demo": {"device": "auto"},
    "info": {},
    "benchmark": {"device": "auto", "size": "small"},
}
_CHOICES = {"pool": ("layerwise", "max-last"), "attention": ("self", "cross"), "format": ("auto", "pairs", "csn", "cosqa", "staqc", "coacor", "python", "jsonl"),
            "loss": ("hardest", "hardest-softmax", "infonce", "hinge-sum", "hinge-random"),
            "method": ("cosea", "bm25", "hybrid"), "compare": (None, "bm25"), "split": ("all", "train", "val", "test"),
            "size": ("small", "gpu", "full"), "negatives": ("batch", "queue")}
_POSITIVE = ("dim", "layers", "max_code_len", "max_query_len", "vocab_size", "margin", "tau", "batch", "epochs", "lr",
             "max_file_mb", "k")
_NOT_NEGATIVE = ("warmup_epochs", "show_code", "bootstrap", "seed", "rerank")
_CAPS = {"dim": 4096, "layers": 12, "max_code_len": 4096, "max_query_len": 1024, "vocab_size": 10**6,
         "batch": 65536, "epochs": 100000, "k": 10**6, "rerank": 10**5, "show_code": 10**5, "bootstrap": 10**6, "max_file_mb": 1e4}


def _resolve(verb: str, flags: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """DEFAULTS[verb] < --config < WISE_* < --set < the given values, checked (exit 2 on a bad value)."""
    import math

    from wisecli.cli.config import one_of, resolve
    from wisecli.cli.errors import InputError

    res = resolve(DEFAULTS[verb], flags=flags)
    v = dict(res.values)
    for k, allowed in _CHOICES.items():
        if k in v and v[k] is not None and k in DEFAULTS[verb] and not (verb == "evaluate" and k == "pool"):
            one_of("--" + k.replace("_", "-"), v[k], [a for a in allowed if a is not None])
    for k in v:
        x = v[k]
        if x is None or isinstance(x, bool) or not (k in _POSITIVE or k in _NOT_NEGATIVE):
            continue
        try:
            x = float(x)
        except (TypeError, ValueError):
            raise InputError(f"--{k.replace('_', '-')} must be a number, not {v[k]!r}", hint="e.g. 1") from None
        zero_ok = k in _NOT_NEGATIVE
        if not math.isfinite(x) or x < 0 or (x == 0 and not zero_ok):
            raise InputError(f"--{k.replace('_', '-')} must be a finite number {'>= 0' if zero_ok else '> 0'}, "
                             f"not {v[k]}", hint=f"the default is {DEFAULTS[verb][k]}")
        if k in _CAPS and x > _CAPS[k]:
            raise InputError(f"--{k.replace('_', '-')} {v[k]} is too large (at most {_CAPS[k]:g})",
                             hint=f"the default is {DEFAULTS[verb][k]}")
    if verb == "evaluate" and str(v["pool"]) != "all":
        try:
            n = int(str(v["pool"]))
            if n < 2:
                raise ValueError
        except ValueError:
            raise InputError(f"--pool must be 'all' or an integer >= 2, not {v['pool']!r}",
                             hint="e.g. --pool 1000 (CodeSearchNet) or --pool 50 (CoaCor)") from None
    return v, res


def train(data: list[str | Path], out_dir: str | Path | None = None, *, val: list | None = None,
          resume: bool = False, overwrite: bool = False, progress: bool = True, sink=None, argv=None,
          **settings: Any) -> dict:
    """Train COSEA on docstring pairs into the run folder `out_dir`.

    `data`: folders or `.py` files (functions with docstrings), pairs JSONL (`query`, `code`; CodeSearchNet fields),
    CoSQA JSON (`cosqa-train.json`, label 1), StaQC pickles (title/code dicts, a restricted unpickler), CoaCor
    token-id pickles (`sql.train.qt.pkl`; vocabularies beside), `stdlib`, `site-packages:numpy,scipy`. Validation: `val` data, else `val_split` ("module:0.1") of the modules.
    `settings` are the keys of `DEFAULTS["train"]`: dim 256, layers 3, pool "layerwise" (or "max-last"), attention
    "self" (or "cross": also train the query-dependent reranker on the hardest in-batch negative),
    share_embeddings True, max_code_len 256, max_query_len 32, vocab_size 50000, format "auto", loss "hardest",
    margin 0.2, tau 0.05, symmetric False, negatives "batch" (or "queue": also the last 4,096 codes),
    warmup_epochs max(1, 10 % of epochs), batch 512, epochs 30, lr 1e-3,
    keep_docstrings False, seed 0, device "auto", amp True. Writes config.json, metrics.jsonl (train_loss, val_mrr,
    val_r1, lr), checkpoints/last.pt|best.pt (with the vocabulary), splits.json, run.json. Returns {run_dir,
    train_pairs, val_pairs, vocab, best_val_mrr, best_epoch, epochs, device, seconds}."""
    from .train import run_training

    v, res = _resolve("train", settings)
    for k in ("dim", "layers", "max_code_len", "max_query_len", "vocab_size", "batch", "epochs", "seed"):
        v[k] = int(v[k])
    for k in ("margin", "tau", "lr"):
        v[k] = float(v[k])
    return run_training([str(d) for d in data], None if out_dir is None else Path(out_dir), cfg=v,
                        val_sources=[str(x) for x in val] if val else None, val_split=v.pop("val_split"),
                        fmt=v.pop("format"), device=v["device"], resume=resume, overwrite=overwrite,
                        progress=progress, sink=sink, argv=argv, config_record=res.as_record())


def predict(sources: list[str | Path], weights: str | Path | None = None, out_dir: str | Path | None = None, *,
            overwrite: bool = False, skip_existing: bool = False, sink=None, argv=None, **settings: Any) -> dict:
    """Build (or with `skip_existing` update) the index folder `out_dir` of Python files/folders/globs/@lists, or
    JSONL snippets (`format="jsonl"`, a file or "-"). Defaults: format "python", exclude .git __pycache__ .venv venv
    build dist node_modules site-packages, max_file_mb 5, no_bm25 False, batch 512, device "auto". A file that
    fails to parse is recorded (status error) and the rest go on. Returns {index, functions, files, embedded,
    kept, errors, records, seconds, device}."""
    from wisecli.cli.errors import InputError

    from .predict import build_index

    v, res = _resolve("predict", settings)
    if weights is None:
        raise InputError("predict needs --weights", hint="a checkpoint or run folder written by 'code-search train'")
    if out_dir is None:
        raise InputError("predict needs -o INDEX", hint="the index folder to write")
    if overwrite and skip_existing:
        raise InputError("--overwrite and --skip-existing exclude each other", hint="pick one")
    return build_index([str(s) for s in sources], weights, Path(out_dir), fmt=v["format"], exclude=tuple(v["exclude"]),
                       max_file_mb=float(v["max_file_mb"]), no_bm25=bool(v["no_bm25"]), overwrite=overwrite,
                       skip_existing=skip_existing, device=v["device"], batch=int(v["batch"]), sink=sink, argv=argv,
                       config_record=res.as_record())


def query(index: str | Path, queries: list[str], *, weights: str | Path | None = None, sink=None,
          **settings: Any) -> list[dict]:
    """Answer `queries` from the index folder `index`. Defaults: k 10, method "cosea" (or "bm25", "hybrid"),
    rerank 0 (K > 0: rescore the top K with the `--attention cross` reranker; Python-file indexes), path_glob None, show_code 0, device "auto"; `weights` defaults to the checkpoint named in index.json (which must
    exist and match its SHA-256). Returns one record per query {query, method, index, seconds, results[{rank,
    score, path, lineno, end_lineno, qualname, signature}]}."""
    from .predict import run_query

    v, _ = _resolve("query", settings)
    return run_query(Path(index), list(queries), k=int(v["k"]), method=v["method"], weights=weights,
                     rerank=int(v["rerank"]),
                     path_glob=v["path_glob"], show_code=int(v["show_code"]), device=v["device"], sink=sink)


def evaluate(data: list[str | Path], *, weights: str | Path | None = None, distractors: list | None = None, sink=None,
             **settings: Any) -> dict:
    """MRR, R@1/5/10, nDCG@10 (95 % bootstrap intervals) of the (query, code) pairs of `data` (as `train` reads
    it; `split` keeps one module split), with the pool stated. Defaults: format "auto", split "all", pool "all"
    (or N), method "cosea" ("bm25", "hybrid"; cosea and hybrid need `weights`), compare None ("bm25": paired
    bootstrap of the MRR difference), bootstrap 1000, seed 0, device "auto"; `distractors` (data read the same
    way, or index folders whose functions are re-read from their files) add their codes to the pool `all`. A CoSQA
    retrieval file with `code_idx_map.txt` beside it is ranked against the whole released pool (6,267 codes). Returns {protocol, results, per_query[, compare]}."""
    from .predict import evaluate_data

    v, _ = _resolve("evaluate", settings)
    return evaluate_data([str(d) for d in data], weights=weights, fmt=v["format"], split=v["split"],
                         pool=str(v["pool"]), method=v["method"], compare=v["compare"], bootstrap=int(v["bootstrap"]),
                         seed=int(v["seed"]), device=v["device"], sink=sink,
                         distractors=[str(d) for d in distractors] if distractors else None)


def demo(quick: bool = False, device=None, *, sink=None):
    """Train a small COSEA (d 64) on standard-library training modules, evaluate COSEA, BM25 and hybrid on held-out
    modules (pool `all`), index the `json` package and answer three queries. `quick`: 40 small modules, 1 epoch.
    Default device "auto". Returns a DemoResult: headline {mrr_cosea, mrr_bm25, mrr_hybrid, pool,
    mrr_cosea_no_shared_token_ratio}; gates in demo.py."""
    from .demo import run_demo

    v, _ = _resolve("demo", {"device": device})
    return run_demo(quick, v["device"], sink=sink)


def info(weights: str | Path | None = None) -> dict:
    """Formats, defaults, tokenizer rules, peers installed; with `weights` the model's config and metrics."""
    from importlib.util import find_spec

    _resolve("info", {})
    doc = {"method": METHOD,
           "paper": "Wang, Zhang, Xia, Bian, Zhang, Liu: COSEA: Convolutional Code Search with Layer-wise Attention, "
                    "arXiv 2010.09520 (2020)",
           "defaults": {k: DEFAULTS[k] for k in ("train", "predict", "query", "evaluate")},
           "reads": ["Python source (files, folders, globs, @list.txt, @-)", "stdlib", "site-packages:NAMES",
                     "pairs JSONL {query, code}", "CodeSearchNet JSONL(.gz)", "JSONL snippets {code[, id, path, "
                     "lineno, name, language]}",
                     "CoSQA JSON arrays (cosqa-train.json: label 1 pairs; cosqa-retrieval-{dev,test}-500.json with "
                     "code_idx_map.txt beside: pool of all its codes)",
                     "StaQC pickles (*_qid_to_title.pickle + *_iid_to_code/*_qid_to_code.pickle, or their folder; "
                     "restricted unpickler: builtin containers, strings, numbers only, else exit 2)",
                     "CoaCor token-id pickles (sql.{train,val,test}.{qt,code}.pkl, codenn_combine_new.sql.{dev,eval}"
                     ".{qt,code}.pkl, decoded through sql.{qt,code}.vocab.pkl beside them; file order, not "
                     "de-duplicated; evaluate scores the released pools of 50 in file order)",
                     "evaluate --distractors: data or an index folder (code re-read from unchanged files)"],
           "writes": ["run folder (config.json, metrics.jsonl, checkpoints/*.pt, splits.json, run.json)",
                      "index folder (index.json, embeddings.npy, functions.jsonl, bm25.npz, run.json)"],
           "tokenizer": {"code": "tokenize; identifiers split at _, case, digits; keywords, operators; <num>; "
                                 "<str> + 4 words; comments 16 words; 256 tokens", "query": "lower-cased subtokens, 32",
                         "vocabulary": "count >= 2, at most 50,000, shared by both sides"},
           "evaluation": "pool all or N (stated); query rows scored in chunks of 1,024 and ranked in their pool, "
                         "pessimistic ties, equal code hashes count as true; 95% bootstrap intervals; CoaCor files: "
                         "their released pools of 50 in file order",
           "capabilities": {"pool": ["layerwise", "max-last"], "loss": list(_CHOICES["loss"]),
                            "search": ["cosea", "bm25", "hybrid (RRF)"], "incremental_index": True, "ddp": "torchrun",
                            "negatives": ["batch", "queue"],
                            "attention": ["self", "cross (reranking, query --rerank K)"],
                            "formats": ["auto", "pairs", "csn", "cosqa", "staqc", "coacor", "python"],
                            "distractors": ["data", "index folder"]},
           "peers": {"rank_bm25": find_spec("rank_bm25") is not None, "bm25s": find_spec("bm25s") is not None}}
    if weights is not None:
        import torch

        from .predict import load_model

        model, vocab, ck, path = load_model(weights, torch.device("cpu"))
        doc["model"] = {"path": path, "config": ck["config"]["model"], "vocab": len(vocab),
                        "params": sum(p.numel() for p in model.parameters()), "metrics": ck.get("metrics", {})}
    return doc


def benchmark(device=None, quick: bool = False, *, size: str | None = None, weights: str | Path | None = None) -> list:
    """Race COSEA search against plain BM25 on one device: index build (functions/s), batch-256 query throughput,
    single-query latency; `size` small (5,000 functions, 200 queries), gpu (10,000, 1,000), full (30,000, 2,000);
    quick: 300 functions, 20 queries. Defaults: device "auto", size "small". Returns BenchRecords {case, ours_s,
    peer_s, speedup, device} (peer = BM25)."""
    from .bench import run

    v, _ = _resolve("benchmark", {"device": device, "size": size})
    return run(v["device"], quick, size=v["size"], weights=weights)


def read_query_file(path: str | Path) -> str:
    """The text of an `@queries.txt` file (UTF-8); a missing or undecodable file is exit 2."""
    from wisecli.cli.errors import InputError

    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read queries from {path}: {type(exc).__name__}", hint="one UTF-8 query a line") from None
