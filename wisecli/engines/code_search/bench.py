"""Our side of `wise code-search benchmark` (specs/code-search.md §7): COSEA search against plain BM25, one
process, one device. Corpus: the standard library's functions (then installed numpy, scipy, torch, scikit-learn
in sorted path order) cut at the size's count; queries: docstring first sentences of the standard library.
Model: `weights`, else an untrained COSEA (d 256, code length 256 on CUDA; d 64, length 128 on the CPU) over
the corpus's vocabulary (the timing rows do not depend on
training; accuracy is `evaluate`'s and the demo's business; the spec's MRR rows are not part of this version's
benchmark).
Cases: index build (parse + tokenise + encode vs parse + tokenise + sparse matrix), batch-256 query throughput
(encode + GEMM + top-k vs sparse product + top-k), single-query latency (p50 reported as ours_s/peer_s).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from wisecli.runtime.bench import race
from wisecli.runtime.results import BenchRecord

from . import data as D
from .bm25 import BM25
from .model import embed
from .tokenizer import code_tokens, query_tokens

SIZES = {"small": (5000, 200), "gpu": (10000, 1000), "full": (30000, 2000)}


def _corpus(n: int) -> tuple[list[D.Function], list[str]]:
    files = D.stdlib_files()
    funcs: list[D.Function] = []
    for p, m in files:
        if len(funcs) >= n:
            break
        funcs += D.read_python_files([(p, m)], strict=False, errors=[])
    for name in ("numpy", "scipy", "torch", "sklearn"):
        if len(funcs) >= n:
            break
        try:
            from .train import _package_files

            _, fs = _package_files(name)
        except Exception:
            continue
        for p, m in fs:
            if len(funcs) >= n:
                break
            funcs += D.read_python_files([(p, m)], strict=False, errors=[])
    funcs = funcs[:n]
    queries = [q for f in funcs if (q := D.query_from_docstring(f.docstring))]
    return funcs, queries


def run(device, quick: bool, *, size: str = "small", weights=None) -> list[BenchRecord]:
    from wisecli.runtime.device import as_device, one_cpu_thread

    from .predict import cosine_scores, load_model, topk_rows

    dev = as_device(device)
    n, nq = (300, 20) if quick else SIZES[size]
    funcs, queries = _corpus(n)
    queries = (queries * (nq // max(1, len(queries)) + 1))[:nq]
    with one_cpu_thread(dev):
        if weights is not None:
            model, vocab, _, _ = load_model(weights, dev)
        else:  # timing does not depend on training: an untrained d-256 model over the corpus's vocabulary
            from .model import Cosea
            from .tokenizer import Vocab

            vocab = Vocab.build([code_tokens(f.code, 256) for f in funcs], min_count=2)
            torch.manual_seed(0)
            d, length = (256, 256) if dev.type == "cuda" else (64, 128)
            model = Cosea({"vocab": len(vocab), "dim": d, "layers": 3, "pool": "layerwise", "max_code_len": length,
                           "max_query_len": 32}).to(dev).eval()
        mc = model.cfg
        recs: list[BenchRecord] = []

        def ours_index():
            ids = [vocab.encode(code_tokens(f.code, int(mc["max_code_len"]))) for f in funcs]
            return embed(model.code, ids, dev).half()

        def peer_index():
            return BM25.fit([code_tokens(f.code, 10**6) for f in funcs])

        rec = race(f"index build ({len(funcs)} functions)", ours_index, peer_index, device=dev, peer_name="BM25 (plain)",
                   repeats=1, warmup=0, functions=len(funcs))
        rec.extra["functions_per_s_ours"] = len(funcs) / rec.ours_s
        recs.append(rec)
        E = ours_index()
        E = E if dev.type == "cuda" else E.float()
        bm = peer_index()
        batch = queries[: min(256, len(queries))]

        def ours_q(qs=batch):
            qe = embed(model.query, [vocab.encode(query_tokens(q, int(mc["max_query_len"]))) for q in qs], dev)
            return topk_rows(cosine_scores(qe, E), 10)[1]

        def peer_q(qs=batch):
            return topk_rows(torch.from_numpy(bm.scores([query_tokens(q, 10**6) for q in qs])), 10)[1]

        recs.append(race(f"query batch {len(batch)}", ours_q, peer_q, device=dev, peer_name="BM25 (plain, CPU)",
                         repeats=3, warmup=1, queries=len(batch)))
        lat_o, lat_p = [], []
        for q in queries[: 20 if quick else 200]:
            t = time.perf_counter()
            ours_q([q])
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            lat_o.append(time.perf_counter() - t)
            t = time.perf_counter()
            peer_q([q])
            lat_p.append(time.perf_counter() - t)
        p50o, p50p = float(np.median(lat_o)), float(np.median(lat_p))
        recs.append(BenchRecord(case="single query p50", ours_s=p50o, peer_s=p50p, peer="BM25 (plain, CPU)",
                                device=recs[0].device, extra={"ours_p99_s": float(np.percentile(lat_o, 99)),
                                                              "peer_p99_s": float(np.percentile(lat_p, 99))}))
    return recs
