"""Indexes and search (specs/code-search.md §2.5, §3): build or update an index folder, answer queries, evaluate.

Index folder (written to a temporary sibling and renamed, `runtime.io.atomic.atomic_path`, updates too):
`index.json` (format `wisecli-code-index/1`, checkpoint path and SHA-256, model and tokenizer config, roots,
counts, created), `embeddings.npy` (float16 [N, d] unit rows), `functions.jsonl` (one record per row), `bm25.npz`
(term counts, terms, k1 and b), `run.json`. `--skip-existing` updates: unchanged files (same SHA-256) keep their
embedding rows, changed and new files are re-embedded, deleted files drop out; BM25 is rebuilt from all kept
functions' code (re-read: parsing is cheap next to encoding), so its idf stays exact.
Search: the index goes to the device as fp16, a query batch is one GEMM (chunked beyond 1M rows) and `topk`;
`hybrid` fuses the top 100 of COSEA and BM25 by reciprocal-rank fusion, Σ 1/(60 + rank) (Cormack, Clarke and
Büttcher, SIGIR 2009); ties in score keep the lower row first (torch.topk on CPU is not stable, so we sort
(−score, row) explicitly).
Evaluate (specs §5): scores are computed for chunks of 1,024 query rows against every code (`RowScorer`; hybrid
fuses each full row's two top-100 lists, as before) and each row ranked in its pool, so memory is chunk × (M + K),
not the whole [M, M + K] matrix of each method (CodeSearchNet's 14,918 × 43,827 would be ≈2.6 GB per fp32 method,
5.2 GB for BM25's float64 product).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch

from wisecli.cli.errors import InputError

from . import data as D
from .bm25 import BM25
from .model import Cosea, embed
from .tokenizer import Vocab, code_tokens, query_tokens

FORMAT = "wisecli-code-index/1"
METHOD = "code-search"


def load_model(weights, device) -> tuple[Cosea, Vocab, dict, str]:
    """(model in eval mode on `device`, vocabulary, checkpoint, checkpoint path) of `weights`."""
    from wisecli.runtime.checkpoints import load_checkpoint

    p = Path(weights)
    if p.is_dir():
        for cand in (p / "checkpoints" / "best.pt", p / "best.pt"):
            if cand.is_file():
                p = cand
                break
    ck = load_checkpoint(p, method=METHOD)
    try:
        vocab = Vocab(list(ck["vocab"]))
        model = Cosea(ck["config"]["model"])
        model.load_state_dict(ck["state_dict"])
    except (KeyError, RuntimeError, TypeError) as exc:
        raise InputError(f"{p} is not a complete code-search checkpoint ({type(exc).__name__})",
                         hint="give a checkpoint written by 'wise code-search train'") from None
    return model.to(device).eval(), vocab, ck, str(p.resolve())


def sha256(path) -> str:
    from wisecli.runtime.io.atomic import sha256_file

    return sha256_file(path)


# -- reading what to index ------------------------------------------------------------------------------------

def gather(sources: list[str], fmt: str, exclude: tuple[str, ...], max_file_mb: float) -> list[tuple[str, Path | None]]:
    """('file', path) items of Python sources and ('jsonl', path) items; InputError when none."""
    from wisecli.cli.inputs import expand_inputs

    if fmt == "jsonl":
        for s in sources:
            if s != "-" and not Path(s).is_file():
                raise InputError(f"input not found: {s}", hint="give a JSONL file of snippets, or - for stdin")
        return [("jsonl", s) for s in sources]
    words = [s for s in sources]
    if "-" in words:
        raise InputError("'-' reads JSONL snippets: pass --format jsonl", hint="or @- for a list of paths on stdin")
    paths = expand_inputs(words, extensions=(".py",),
                          dir_is_item=None, allow_empty=True)
    keep = []
    for p in paths:
        if set(exclude) & set(p.parts[:-1]):
            continue
        keep.append(p)
    if not keep:
        raise InputError("no .py files to index", hint="give Python files or folders (see --exclude), or --format jsonl")
    return [("file", p) for p in keep]


def _file_functions(p: Path, max_bytes: float) -> list[D.Function]:
    if p.stat().st_size > max_bytes:
        raise ValueError(f"file over --max-file-mb ({p.stat().st_size / 1e6:.1f} MB)")
    raw = p.read_bytes()
    src = raw.decode("utf-8")
    rel = str(p)
    return D.extract_functions(src, rel, p.stem, hashlib.sha256(raw).hexdigest())


def _jsonl_functions(src: str, errors: list) -> list[D.Function]:
    recs = D.read_jsonl(src, strict=False, errors=errors)
    out = []
    for r in recs:
        code = r.get("code", r.get("original_string"))
        if not isinstance(code, str):
            errors.append({"path": str(src), "line": r["_line"], "error": "no 'code' field"})
            continue
        path = str(r.get("path") or src)
        name = str(r.get("name") or r.get("func_name") or "")
        f = D.Function(path=path, qualname=name, start_lineno=int(r.get("lineno") or 0), lineno=int(r.get("lineno") or 0),
                       end_lineno=int(r.get("end_lineno") or r.get("lineno") or 0),
                       signature=code.strip().splitlines()[0][:300] if code.strip() else "", code=code,
                       language=str(r.get("language") or "python"))
        f.code_sha256 = hashlib.sha256(code.encode()).hexdigest()
        f.id = str(r.get("id") or f"{src}:{r['_line']}")
        out.append(f)
    return out


# -- building -------------------------------------------------------------------------------------------------

def build_index(sources: list[str], weights, out: Path, *, fmt: str, exclude, max_file_mb: float, no_bm25: bool,
                overwrite: bool, skip_existing: bool, device, batch: int, sink=None, argv=None,
                config_record=None) -> dict:
    """The `predict` verb. Returns {index, functions, files, embedded, kept, errors, records, seconds}."""
    from wisecli.runtime.device import as_device
    from wisecli.runtime.io.atomic import atomic_path, save_npy, write_json, write_text
    from wisecli.runtime.runrecord import RunRecord, now_iso

    t0 = time.perf_counter()
    items = gather(sources, fmt, tuple(exclude), max_file_mb)
    out = Path(out)
    old = None
    if out.exists():
        if skip_existing:
            old = load_index(out, check_rows=True)
        elif not overwrite:
            raise InputError(f"index exists: {out}", hint="pass --overwrite to rebuild it or --skip-existing to update it")
    dev = as_device(device, sink=sink)
    model, vocab, ck, ck_path = load_model(weights, dev)
    ck_sha = sha256(ck_path)
    mc = ck["config"]["model"]
    if old is not None and old["meta"]["checkpoint_sha256"] != ck_sha:
        raise InputError(f"index {out} was built with another checkpoint than {weights}",
                         hint="re-index with --overwrite, or update with the index's own checkpoint")
    old_rows: dict[str, list[int]] = {}
    if old is not None:
        for i, f in enumerate(old["functions"]):
            old_rows.setdefault(f["file_sha256"] + "\0" + f["path"], []).append(i)
    records, errors, funcs, rows_from_old = [], [], [], []
    lone = len(items) == 1
    for kind, src in items:
        if kind == "jsonl":
            errs: list = []
            fs = _jsonl_functions(src, errs)
            if lone and not fs and errs:
                e = errs[0]
                raise InputError(f"{src}:{e['line']}: {e['error']}", hint="JSONL snippets need a 'code' field")
            funcs += [(f, None) for f in fs]
            errors += errs
            records += [{"input": str(src), "status": "error", **e} for e in errs]
            records.append({"input": str(src), "status": "ok", "functions": len(fs), "embedded": len(fs)})
            continue
        p = src
        try:
            fh = hashlib.sha256(p.read_bytes()).hexdigest() if p.stat().st_size <= max_file_mb * 1e6 else ""
            key = fh + "\0" + str(p)
            if old is not None and key in old_rows:
                fs = _file_functions(p, max_file_mb * 1e6)
                funcs += [(f, r) for f, r in zip(fs, old_rows[key])] if len(fs) == len(old_rows[key]) else \
                    [(f, None) for f in fs]
                records.append({"input": str(p), "status": "skipped", "functions": len(fs)})
                continue
            fs = _file_functions(p, max_file_mb * 1e6)
        except (UnicodeDecodeError, SyntaxError, ValueError, RecursionError, OSError) as exc:
            line = getattr(exc, "lineno", None)
            msg = f"{type(exc).__name__}: {getattr(exc, 'msg', None) or exc}"
            if lone:
                raise InputError(f"{p}{':' + str(line) if line else ''}: cannot index ({msg})",
                                 hint="give UTF-8 Python source that parses") from None
            rec = {"input": str(p), "status": "error", "line": line, "error": msg}
            records.append(rec)
            errors.append(rec)
            continue
        funcs += [(f, None) for f in fs]
        records.append({"input": str(p), "status": "ok", "functions": len(fs), "embedded": len(fs)})
    if not funcs:
        raise InputError(f"no functions found in {', '.join(str(s) for s in sources)}",
                         hint="give Python source with functions, or JSONL with 'code'")
    new = [i for i, (_, r) in enumerate(funcs) if r is None]
    ids = [vocab.encode(code_tokens(funcs[i][0].code, int(mc["max_code_len"]))) for i in new]
    with torch.no_grad():
        e_new = embed(model.code, ids, dev, batch) if ids else torch.zeros(0, int(mc["dim"]))
    emb = np.zeros((len(funcs), int(mc["dim"])), np.float16)
    if new:
        emb[new] = e_new.cpu().numpy().astype(np.float16)
    kept = [(i, r) for i, (_, r) in enumerate(funcs) if r is not None]
    if kept:
        emb[[i for i, _ in kept]] = old["embeddings"][[r for _, r in kept]]
    meta = {"format": FORMAT, "checkpoint": ck_path, "checkpoint_sha256": ck_sha, "model": mc,
            "tokenizer": {"code": "python tokenize + identifier split", "max_code_len": mc["max_code_len"],
                          "max_query_len": mc["max_query_len"], "vocab": len(vocab)},
            "roots": [str(s) for s in sources], "created": now_iso(),
            "counts": {"functions": len(funcs), "files": len({f.path for f, _ in funcs}), "embedded": len(new),
                       "kept": len(kept), "errors": len(errors)}, "bm25": not no_bm25}
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        save_npy(tmp / "embeddings.npy", emb)
        write_text(tmp / "functions.jsonl", "".join(json.dumps(f.meta()) + "\n" for f, _ in funcs))
        if not no_bm25:
            bm = BM25.fit([code_tokens(f.code, 10**6) for f, _ in funcs])
            np.savez(tmp / "bm25.npz", **bm.save_arrays())
        write_json(tmp / "index.json", meta)
        rec = RunRecord("code-search predict", config=config_record, device=str(dev), argv=argv,
                        inputs=[str(s) for s in sources])
        rec.timing("index", time.perf_counter() - t0)
        rec.set("counts", meta["counts"])
        rec.write(tmp)
    return {"index": str(out), "functions": len(funcs), "files": meta["counts"]["files"], "embedded": len(new),
            "kept": len(kept), "errors": len(errors), "records": records, "seconds": time.perf_counter() - t0,
            "device": str(dev)}


# -- loading and querying -------------------------------------------------------------------------------------

def load_index(folder, check_rows: bool = True) -> dict:
    """{meta, functions, embeddings (float16), bm25 (or None)} of an index folder; InputError when inconsistent."""
    folder = Path(folder)
    hint = "build it with 'wise code-search predict SRC --weights CKPT -o INDEX'"
    if not folder.is_dir():
        raise InputError(f"index not found: {folder}", hint=hint)
    try:
        meta = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{folder} is not a code-search index (no index.json)", hint=hint) from None
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise InputError(f"{folder / 'index.json'} is corrupt ({type(exc).__name__})", hint=hint) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else None
        raise InputError(f"{folder / 'index.json'}: unknown index format {got!r}",
                         hint=f"this version reads {FORMAT}; re-index with --overwrite")
    try:
        emb = np.load(folder / "embeddings.npy", allow_pickle=False)
        funcs = [json.loads(l) for l in (folder / "functions.jsonl").read_text(encoding="utf-8").splitlines() if l]
    except (OSError, ValueError, EOFError, UnicodeDecodeError) as exc:
        raise InputError(f"index {folder} is damaged ({type(exc).__name__}: {exc})",
                         hint="re-index with --overwrite") from None
    if check_rows and (emb.ndim != 2 or emb.shape[0] != len(funcs)):
        raise InputError(f"index {folder} is inconsistent: {emb.shape[0] if emb.ndim else 0} embeddings but "
                         f"{len(funcs)} functions", hint="re-index with --overwrite")
    bm = None
    if (folder / "bm25.npz").is_file():
        try:
            with np.load(folder / "bm25.npz", allow_pickle=False) as z:
                bm = BM25.load_arrays(z)
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise InputError(f"{folder / 'bm25.npz'} is damaged ({type(exc).__name__})",
                             hint="re-index with --overwrite") from None
        if bm.weights.shape[0] != len(funcs):
            raise InputError(f"index {folder} is inconsistent: bm25.npz has {bm.weights.shape[0]} rows, "
                             f"functions.jsonl {len(funcs)}", hint="re-index with --overwrite")
    return {"meta": meta, "functions": funcs, "embeddings": emb, "bm25": bm, "folder": folder}


def topk_rows(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top k (values, rows) per row of `scores` [Q, N], ties to the lower row (a stable sort)."""
    k = min(k, scores.shape[1])
    v, i = torch.sort(scores, dim=1, descending=True, stable=True)
    return v[:, :k], i[:, :k]


def cosine_scores(q: torch.Tensor, index_emb: torch.Tensor, chunk: int = 1 << 20) -> torch.Tensor:
    """[Q, N] cosine scores (float32) against the index, in chunks of rows beyond 1M."""
    parts = [(q.to(index_emb.dtype) @ index_emb[a: a + chunk].T).float() for a in range(0, len(index_emb), chunk)]
    return torch.cat(parts, 1) if parts else torch.zeros(len(q), 0)


def rrf(rank_lists: list[list[int]], k0: int = 60) -> dict[int, float]:
    """Reciprocal-rank fusion: row → Σ over lists of 1/(k0 + rank), rank from 1."""
    out: dict[int, float] = {}
    for lst in rank_lists:
        for r, row in enumerate(lst, 1):
            out[row] = out.get(row, 0.0) + 1.0 / (k0 + r)
    return out


def search(queries: list[str], idx: dict, *, method: str, k: int, model=None, vocab=None, device=None,
           path_glob: str | None = None, sink=None) -> list[list[tuple[int, float]]]:
    """[(row, score)] top k per query with `method` cosea|bm25|hybrid over the loaded index `idx`."""
    n = len(idx["functions"])
    allowed = None
    if path_glob:
        allowed = torch.tensor([fnmatch.fnmatch(f["path"], path_glob) for f in idx["functions"]])
    depth = max(k, 100) if method == "hybrid" else k
    lists: dict[str, tuple] = {}
    if method in ("cosea", "hybrid"):
        mc = idx["meta"]["model"]
        ids = [vocab.encode(query_tokens(q, int(mc["max_query_len"]))) for q in queries]
        if sink is not None:
            for q, t in zip(queries, ids):
                if not any(x > 1 for x in t):
                    sink.warn(f"no word of {q!r} is in the model's vocabulary; try --method bm25")
        qe = embed(model.query, ids, device)
        E = idx.setdefault("_dev", {}).get(str(device))
        if E is None:
            E = torch.from_numpy(idx["embeddings"]).to(device)
            E = E if device.type == "cuda" else E.float()
            idx["_dev"][str(device)] = E
        s = cosine_scores(qe, E).cpu()
        if allowed is not None:
            s[:, ~allowed] = float("-inf")
        lists["cosea"] = topk_rows(s, depth)
    if method in ("bm25", "hybrid"):
        if idx["bm25"] is None:
            raise InputError("this index has no BM25 part (built with --no-bm25)", hint="use --method cosea, or re-index")
        s = torch.from_numpy(idx["bm25"].scores([query_tokens(q, 10**6) for q in queries]))
        if allowed is not None:
            s[:, ~allowed] = float("-inf")
        lists["bm25"] = topk_rows(s, depth)
    out = []
    for qi in range(len(queries)):
        if method != "hybrid":
            v, i = lists[method]
            out.append([(int(r), float(x)) for r, x in zip(i[qi], v[qi]) if x != float("-inf")][:k])
            continue
        fused = rrf([[int(r) for r, x in zip(lists[m][1][qi], lists[m][0][qi]) if x != float("-inf")]
                     for m in ("cosea", "bm25")])
        out.append(sorted(fused.items(), key=lambda t: (-t[1], t[0]))[:k])
    assert n >= 0
    return out


def run_query(index, queries: list[str], *, k: int, method: str, weights, rerank: int | None, path_glob,
              show_code: int, device, sink=None) -> list[dict]:
    """The `query` verb: one record per query {query, method, index, seconds, results[...]}."""
    from wisecli.runtime.device import as_device

    queries = [q for q in queries]
    if not queries or any(not q.strip() for q in queries):
        raise InputError("empty query", hint="give the query text as an argument, @queries.txt, or - (lines on stdin)")
    idx = load_index(index)
    model = vocab = dev = None
    if rerank and method == "bm25":
        raise InputError("--rerank rescores COSEA's ranking", hint="use --method cosea or hybrid with --rerank")
    if method in ("cosea", "hybrid"):
        dev = as_device(device, sink=sink)
        stored = idx["meta"].get("checkpoint")
        if weights is None:
            if not stored or not Path(stored).is_file():
                raise InputError(f"the index's checkpoint is gone: {stored}", hint="pass --weights, or use --method bm25")
            weights = stored
        model, vocab, _, ck_path = load_model(weights, dev)
        if sha256(ck_path) != idx["meta"]["checkpoint_sha256"]:
            raise InputError(f"index {index} was built with another checkpoint than {weights}",
                             hint="re-index with these weights, or drop --weights")
        if rerank and not hasattr(model, "cross_w"):
            raise InputError("--rerank needs a checkpoint trained with --attention cross",
                             hint="train with --attention cross, or leave --rerank out")
    out = []
    t0 = time.perf_counter()
    hits = search(queries, idx, method=method, k=max(k, rerank or 0), model=model, vocab=vocab, device=dev,
                  path_glob=path_glob, sink=sink)
    if rerank:
        hits = [rerank_hits(q, h[:rerank], idx, model, vocab, dev) + h[rerank:] for q, h in zip(queries, hits)]
    hits = [h[:k] for h in hits]
    per = (time.perf_counter() - t0) / len(queries)
    for q, h in zip(queries, hits):
        res = []
        for rank, (row, score) in enumerate(h, 1):
            f = idx["functions"][row]
            r = {"rank": rank, "score": round(score, 6), "path": f["path"], "lineno": f["start_lineno"],
                 "end_lineno": f["end_lineno"], "qualname": f["qualname"], "signature": f["signature"]}
            if show_code:
                r["code"] = _code_lines(f, show_code)
            res.append(r)
        out.append({"query": q, "method": method, "index": str(index), "seconds": per, "results": res})
    return out


def rerank_hits(query: str, hits: list[tuple[int, float]], idx: dict, model, vocab, device) -> list[tuple[int, float]]:
    """The hits rescored by the cross reranker (code re-read from the indexed files; ties keep the earlier row)."""
    if not hits:
        return hits
    mc = idx["meta"]["model"]
    codes, cache = [], {}
    for row, _ in hits:
        f = idx["functions"][row]
        if f["path"] not in cache:
            try:
                cache[f["path"]] = {(g.start_lineno, g.qualname): g.code for g in
                                    D.extract_functions(Path(f["path"]).read_text(encoding="utf-8"), f["path"])}
            except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
                cache[f["path"]] = {}
        code = cache[f["path"]].get((f["start_lineno"], f["qualname"]))
        if code is None:
            raise InputError(f"cannot rerank: {f['path']}:{f['start_lineno']} changed or is gone since indexing",
                             hint="update the index (predict --skip-existing), or leave --rerank out")
        codes.append(vocab.encode(code_tokens(code, int(mc["max_code_len"]))))
    from .model import pad_batch

    q = pad_batch([vocab.encode(query_tokens(query, int(mc["max_query_len"])))] * len(hits)).to(device)
    with torch.no_grad():
        s = model.cross_score(q, pad_batch(codes).to(device)).float().cpu()
    order = sorted(range(len(hits)), key=lambda i: (-float(s[i]), i))
    return [(hits[i][0], float(s[i])) for i in order]


def _code_lines(f: dict, n: int) -> str:
    try:
        lines = Path(f["path"]).read_text(encoding="utf-8").splitlines()
        return "\n".join(lines[f["start_lineno"] - 1: min(f["end_lineno"], f["start_lineno"] - 1 + n)])
    except (OSError, UnicodeDecodeError):
        return ""


# -- evaluation -----------------------------------------------------------------------------------------------

class RowScorer:
    """Scores of query rows against every code (the pairs' codes, then the distractors) for cosea, bm25, hybrid:
    embeddings and the BM25 weights are computed once, `rows(idx)` gives [len(idx), M + K] per method, so an
    evaluation holds one chunk of rows at a time (specs §5: ranks computed in chunks) instead of [M, M + K]."""

    def __init__(self, pairs: list[D.Pair], methods: tuple[str, ...], model=None, vocab=None, device=None,
                 depth: int = 100, distractors: list[str] | None = None, codes: list[str] | None = None):
        self.methods, self.depth = tuple(methods), depth
        codes = list(codes) if codes is not None else [p.code for p in pairs] + list(distractors or [])
        self.q = self.c = self.bm = self.qm = None
        if "cosea" in methods or "hybrid" in methods:
            mc = model.cfg
            self.q = embed(model.query, [vocab.encode(query_tokens(p.query, int(mc["max_query_len"]))) for p in pairs],
                           device)
            self.c = embed(model.code, [vocab.encode(code_tokens(x, int(mc["max_code_len"]))) for x in codes], device)
        if "bm25" in methods or "hybrid" in methods:
            self.bm = BM25.fit([code_tokens(x, 10**6) for x in codes])
            self.qm = self.bm.query_matrix([query_tokens(p.query, 10**6) for p in pairs])
            self.bm_device = device or "cpu"

    def _fused(self, out: dict[str, torch.Tensor]) -> torch.Tensor:
        """Reciprocal-rank fusion (k = 60) of the top min(depth, columns) of the cosea and bm25 scores, row by row."""
        fused = torch.zeros_like(out["cosea"])
        d = min(self.depth, fused.shape[1])
        ar = 1.0 / (60 + torch.arange(1, d + 1, device=fused.device, dtype=fused.dtype))
        for m in ("cosea", "bm25"):
            _, top = topk_rows(out[m].cpu(), d)
            fused.scatter_add_(1, top.to(fused.device), ar.expand(len(fused), d).contiguous())
        return fused

    def rows(self, idx) -> dict[str, torch.Tensor]:
        """{method: [len(idx), M + K] float32 scores} of the query rows `idx` (a sequence of ints)."""
        out: dict[str, torch.Tensor] = {}
        ii = list(map(int, idx))
        if self.q is not None:
            out["cosea"] = (self.q[torch.as_tensor(ii, device=self.q.device)] @ self.c.T).float()
        if self.bm is not None:
            out["bm25"] = torch.from_numpy(np.asarray((self.qm[ii] @ self.bm.weights.T).toarray())).float().to(
                self.bm_device)
        if "hybrid" in self.methods:
            out["hybrid"] = self._fused(out)
        return {m: out[m] for m in self.methods}

    def rows_in(self, idx, cols: np.ndarray) -> dict[str, torch.Tensor]:
        """{method: [len(idx), n] scores} of query rows `idx` against only their candidate codes `cols` [len(idx), n]
        (released pools): cosea the cosine with each candidate, bm25 the BM25 score (statistics of all codes), hybrid
        the RRF of the two rankings inside the pool (top min(depth, n) of each)."""
        out: dict[str, torch.Tensor] = {}
        ii = list(map(int, idx))
        cols = np.asarray(cols, np.int64)
        if self.q is not None:
            dev_ = self.q.device
            qv = self.q[torch.as_tensor(ii, device=dev_)]
            cv = self.c[torch.as_tensor(cols, device=dev_)]
            out["cosea"] = torch.einsum("id,ijd->ij", qv.float(), cv.float())
        if self.bm is not None:
            u, inv = np.unique(cols, return_inverse=True)
            full = np.asarray((self.qm[ii] @ self.bm.weights[u].T).toarray())
            out["bm25"] = torch.from_numpy(np.take_along_axis(full, inv.reshape(cols.shape), 1)).float().to(
                self.bm_device)
        if "hybrid" in self.methods:
            out["hybrid"] = self._fused(out)
        return {m: out[m] for m in self.methods}


def run_evaluate_pools(pools, *, methods: tuple[str, ...], model=None, vocab=None, device=None,
                       bootstrap: int = 1000, seed: int = 0, ck_sha: str | None = None, source: str = "",
                       chunk: int = 1024) -> dict:
    """`run_evaluate` for released pools (`formats.Pools`, CoaCor's val/test/codenn files): query i ranked among
    its pool's codes `pools.codes[pools.cols[i]]` only, true code at column `pools.true[i]`, the same pessimistic
    tie rule (equal code hashes count as true), in chunks of query rows; file order kept, nothing shuffled."""
    from .metrics import TIE_RULE, bootstrap as boot, random_mrr, summary

    m, size = pools.cols.shape
    scorer = RowScorer([D.Pair(q, "") for q in pools.queries], methods, model, vocab, device, codes=pools.codes)
    hashes = torch.tensor([int(D.norm_hash(c)[:15], 16) for c in pools.codes], dtype=torch.long)
    rank_of = {name: torch.zeros(m, dtype=torch.long) for name in methods}
    for a in range(0, m, chunk):
        idx = np.arange(a, min(m, a + chunk))
        for name, s in scorer.rows_in(idx, pools.cols[idx]).items():
            dev_ = s.device
            hc = hashes.to(dev_)[torch.as_tensor(pools.cols[idx], device=dev_)]
            t = torch.as_tensor(pools.true[idx], device=dev_)[:, None]
            ge = (s >= s.gather(1, t)) & (hc != hc.gather(1, t))
            rank_of[name][a: a + len(idx)] = (1 + ge.sum(1)).cpu()
    results, per_query = {}, {}
    for name in methods:
        r = rank_of[name]
        doc = summary(r)
        doc["mrr_ci95"] = boot((1.0 / r.double()).numpy(), bootstrap, seed)
        results[name] = doc
        per_query[name] = dict(enumerate(r.tolist()))
    rule = ("consecutive pools of 50 in file order, query i against its pool's codes, true code on the diagonal"
            if pools.kind == "staqc" else
            "consecutive pools of 50 in file order, the pool's 3 paraphrase queries against its codes, true code first")
    protocol = {"pool": f"{size} released (CoaCor {pools.kind}: {rule})", "pool_size": size,
                "pools": int(pools.pool.max()) + 1 if m else 0, "queries": m,
                "dropped_remainder": int(pools.dropped), "tie_rule": TIE_RULE, "docstrings": "n/a (SQL)",
                "split": f"the file ({source})", "checkpoint_sha256": ck_sha, "random_mrr": random_mrr(size)}
    return {"protocol": protocol, "results": results, "per_query": per_query}


def score_matrices(pairs: list[D.Pair], methods: tuple[str, ...], model=None, vocab=None, device=None,
                   depth: int = 100, distractors: list[str] | None = None) -> dict[str, torch.Tensor]:
    """[M, M + K] scores of every query against every pair's code (then the K `distractors` codes) for each method
    (cosea, bm25, hybrid); hybrid is the RRF of the two top-`depth` lists (rows outside both lists score 0).
    The whole matrix at once (small sets: the demo, tests); `run_evaluate` goes by chunks of rows."""
    return RowScorer(pairs, methods, model, vocab, device, depth, distractors).rows(range(len(pairs)))


def run_evaluate(pairs: list[D.Pair], *, methods: tuple[str, ...], pool: str, model=None, vocab=None, device=None,
                 bootstrap: int = 1000, seed: int = 0, ck_sha: str | None = None, docstrings: str = "removed",
                 split_rule: str = "", distractors: list[D.Pair] | None = None, chunk: int = 1024) -> dict:
    """MRR, R@1/5/10, nDCG@10 with 95 % bootstrap intervals per method, per-query ranks, and the protocol block.
    `distractors` (pool `all` only): more codes in every query's pool (their queries unused; codes with a test
    code's hash are dropped first)."""
    from .metrics import TIE_RULE, bootstrap as boot, chunk_pools, random_mrr, summary

    m = len(pairs)
    test_h = {p.hash for p in pairs}
    extra = [d for d in (distractors or []) if d.hash not in test_h]
    if extra and pool != "all":
        raise InputError("--distractors works with --pool all", hint="drop --pool N, or the distractors")
    hashes = torch.tensor([int(p.hash[:15], 16) if p.hash else i for i, p in enumerate(pairs)] +
                          [int(d.hash[:15], 16) for d in extra], dtype=torch.long)
    scorer = RowScorer(pairs, methods, model, vocab, device, distractors=[d.code for d in extra])
    if pool == "all":
        groups, dropped, size = [np.arange(m)], 0, m + len(extra)
    else:
        n = int(pool)
        if n > m:
            raise InputError(f"--pool {n} is larger than the test set ({m} pairs)", hint=f"use --pool all or N <= {m}")
        groups, dropped = chunk_pools(m, n, seed)
        size = n
    order = np.concatenate(groups) if len(groups) else np.zeros(0, np.int64)
    # each query's candidate columns: pool `all` every code (+ distractors), pool N its chunk's codes
    if pool == "all":
        cols_of = None
        true_col = np.arange(m)
    else:
        cols_of = np.zeros((m, size), np.int64)
        true_col = np.zeros(m, np.int64)
        for g in groups:
            cols_of[g] = g[None, :]
            true_col[g] = np.arange(len(g))
    rank_of = {name: torch.zeros(m, dtype=torch.long) for name in methods}
    for a in range(0, len(order), chunk):
        idx = np.sort(order[a: a + chunk])
        block = scorer.rows(idx)
        for name, s in block.items():
            dev_ = s.device
            if cols_of is None:
                sub, hc = s, hashes.to(dev_)[None, :].expand(len(idx), -1)
            else:
                cc = torch.as_tensor(cols_of[idx], device=dev_)
                sub, hc = s.gather(1, cc), hashes.to(dev_)[cc]
            t = torch.as_tensor(true_col[idx], device=dev_)[:, None]
            ge = (sub >= sub.gather(1, t)) & (hc != hc.gather(1, t))
            rank_of[name][torch.as_tensor(idx)] = (1 + ge.sum(1)).cpu()
    results, per_query = {}, {}
    kept = torch.as_tensor(order, dtype=torch.long)
    for name in methods:
        r = rank_of[name][kept]
        doc = summary(r)
        doc["mrr_ci95"] = boot((1.0 / r.double()).numpy(), bootstrap, seed)
        results[name] = doc
        per_query[name] = dict(zip(kept.tolist(), r.tolist()))
    protocol = {"pool": f"all ({size} codes{f', {len(extra)} distractors' if extra else ''})" if pool == "all"
                else f"{size} (1 true + {size - 1} distractors)",
                "pool_size": size, "queries": sum(len(g) for g in groups), "dropped_remainder": int(dropped),
                "tie_rule": TIE_RULE, "docstrings": docstrings, "split": split_rule, "checkpoint_sha256": ck_sha,
                "random_mrr": random_mrr(size)}
    return {"protocol": protocol, "results": results, "per_query": per_query}


def index_distractors(folder) -> tuple[list[D.Pair], dict]:
    """The functions of an index folder as distractor codes (`evaluate --distractors INDEX`): the code of each row
    is re-read from its file (functions.jsonl keeps no code) when the file's SHA-256 still equals the recorded one;
    rows of changed, missing or JSONL-snippet sources are skipped and counted. Every code is then scored by the
    evaluated model itself (the stored fp16 embeddings are not reused, so an index built with another checkpoint
    serves too, and BM25's statistics cover the whole pool). Returns (pairs, {index, functions, used, skipped})."""
    idx = load_index(folder, check_rows=True)
    by_path: dict[str, list[dict]] = {}
    for f in idx["functions"]:
        by_path.setdefault(str(f.get("path", "")), []).append(f)
    out, skipped = [], 0
    for path, rows in by_path.items():
        try:
            raw = Path(path).read_bytes()
            if hashlib.sha256(raw).hexdigest() != rows[0].get("file_sha256"):
                raise ValueError("changed since indexing")
            codes = {(g.start_lineno, g.qualname): g.code
                     for g in D.extract_functions(raw.decode("utf-8"), path)}
        except (OSError, ValueError, SyntaxError, UnicodeDecodeError, RecursionError):
            skipped += len(rows)
            continue
        for f in rows:
            code = codes.get((f.get("start_lineno"), f.get("qualname")))
            if code is None:
                skipped += 1
                continue
            out.append(D.Pair("", code, "", path, int(f.get("start_lineno") or 0), str(f.get("qualname")),
                              D.norm_hash(code)))
    if not out:
        raise InputError(f"no function of index {folder} could be re-read from its files ({skipped} rows: files "
                         f"changed, gone, or JSONL snippets)",
                         hint="update the index (predict --skip-existing), or give the distractors as data")
    return out, {"index": str(folder), "functions": len(idx["functions"]), "used": len(out), "skipped": skipped}


def evaluate_data(sources: list[str], *, weights, fmt: str, split: str, pool: str, method: str, compare,
                  bootstrap: int, seed: int, device, sink=None, distractors: list[str] | None = None) -> dict:
    """The `evaluate` verb: read the pairs (as `train` does), keep one module split, rank, summarise."""
    from wisecli.runtime.device import as_device, one_cpu_thread

    from .metrics import bootstrap as boot
    from .train import load_pairs

    from . import formats as F

    if any(fmt == "coacor" or (fmt == "auto" and F.is_coacor(w)) for w in sources):
        return _evaluate_coacor(sources, weights=weights, fmt=fmt, split=split, pool=pool, method=method,
                                compare=compare, bootstrap=bootstrap, seed=seed, device=device, sink=sink,
                                distractors=distractors)
    pool_codes: list[str] = []
    pairs, counts = load_pairs(sources, fmt if fmt != "jsonl" else "pairs", pool=pool_codes)
    extra, notes = None, []
    for d in distractors or []:
        if Path(d).is_dir() and (Path(d) / "index.json").is_file():
            ps, note = index_distractors(d)
            notes.append(note)
        else:
            ps = load_pairs([d], fmt if fmt != "jsonl" else "pairs")[0]
        extra = (extra or []) + ps
    if pool_codes and pool == "all":  # CoSQA's code_idx_map.txt: every query against the whole released pool
        extra = D.dedupe((extra or []) + [D.Pair("", c, hash=D.norm_hash(c)) for c in pool_codes])[0]
    if split != "all":
        pairs = [p for p in pairs if D.module_split(p.module or p.hash) == split]
    if len(pairs) < 2:
        shown = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
        raise InputError(f"fewer than 2 usable pairs to evaluate in {', '.join(sources)} ({len(pairs)}; {shown})",
                         hint="give source with docstrings of at least 3 words, or a pairs JSONL")
    methods = (method,) if compare is None or compare == method else (method, compare)
    model = vocab = ck_sha = None
    dev = as_device(device, sink=sink)
    if any(m in ("cosea", "hybrid") for m in methods):
        if weights is None:
            raise InputError(f"--method {method} needs --weights", hint="give a checkpoint, or --method bm25")
        model, vocab, _, ck_path = load_model(weights, dev)
        ck_sha = sha256(ck_path)
    with one_cpu_thread(dev):
        doc = run_evaluate(pairs, methods=methods, pool=pool, model=model, vocab=vocab, device=dev,
                           bootstrap=bootstrap, seed=seed, ck_sha=ck_sha, distractors=extra,
                           split_rule=f"top-level module hash 80/10/10, split {split}")
    if notes:
        doc["protocol"]["distractor_indexes"] = notes
    if len(methods) == 2:
        a, b = doc["per_query"][methods[0]], doc["per_query"][methods[1]]
        keys = sorted(a)
        diff = np.array([1 / a[i] - 1 / b[i] for i in keys])
        doc["compare"] = {"a": methods[0], "b": methods[1], "mrr_difference": float(diff.mean()),
                          "ci95": boot(diff, bootstrap, seed)}
    doc["per_query"] = [{"query": pairs[i].query, "path": pairs[i].path, "qualname": pairs[i].qualname,
                         **{m: doc["per_query"][m][i] for m in methods}} for i in sorted(doc["per_query"][methods[0]])]
    return doc


def _model_for(methods, method, weights, dev):
    if any(m in ("cosea", "hybrid") for m in methods):
        if weights is None:
            raise InputError(f"--method {method} needs --weights", hint="give a checkpoint, or --method bm25")
        model, vocab, _, ck_path = load_model(weights, dev)
        return model, vocab, sha256(ck_path)
    return None, None, None


def _evaluate_coacor(sources, *, weights, fmt, split, pool, method, compare, bootstrap, seed, device, sink,
                     distractors) -> dict:
    """`evaluate` on a CoaCor val/test/codenn file: its released pools of 50 in file order (formats.coacor_pools)."""
    from wisecli.runtime.device import as_device, one_cpu_thread

    from . import formats as F
    from .metrics import bootstrap as boot

    if len(sources) != 1:
        raise InputError("a CoaCor file is evaluated alone (its released pools)",
                         hint="give one file, e.g. sql.test.qt.pkl")
    if distractors:
        raise InputError("--distractors does not apply to CoaCor's released pools of 50",
                         hint="drop --distractors")
    if str(pool) not in ("all", str(F.POOL)):
        raise InputError(f"a CoaCor file is scored in its released pools of {F.POOL}, not --pool {pool}",
                         hint=f"drop --pool or give --pool {F.POOL}")
    if split != "all":
        raise InputError(f"--split {split} does not apply to a CoaCor file (the file is the split)",
                         hint="drop --split; give sql.val.* or sql.test.*")
    w = sources[0]
    if not Path(w).exists():
        raise InputError(f"input not found: {w}", hint="give a CoaCor qt or code pickle")
    pools = F.coacor_pools(Path(w))
    methods = (method,) if compare is None or compare == method else (method, compare)
    dev = as_device(device, sink=sink)
    model, vocab, ck_sha = _model_for(methods, method, weights, dev)
    with one_cpu_thread(dev):
        doc = run_evaluate_pools(pools, methods=methods, model=model, vocab=vocab, device=dev, bootstrap=bootstrap,
                                 seed=seed, ck_sha=ck_sha, source=Path(w).name)
    if len(methods) == 2:
        a, b = doc["per_query"][methods[0]], doc["per_query"][methods[1]]
        diff = np.array([1 / a[i] - 1 / b[i] for i in sorted(a)])
        doc["compare"] = {"a": methods[0], "b": methods[1], "mrr_difference": float(diff.mean()),
                          "ci95": boot(diff, bootstrap, seed)}
    doc["per_query"] = [{"query": pools.queries[i], "pool": int(pools.pool[i]), "true_column": int(pools.true[i]),
                         **{m: doc["per_query"][m][i] for m in methods}} for i in range(len(pools.queries))]
    return doc
