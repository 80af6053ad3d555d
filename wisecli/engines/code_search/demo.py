"""The demo (specs/code-search.md §3, §9 claim gate): a small COSEA trained on the standard library's training
modules, evaluated on held-out modules (pool `all`) beside BM25 and hybrid; then the `json` package indexed and
three queries answered.

Modules (module hash split, specs §4): full: the 40 largest training-split modules of at most 80 KB (≈1,300
pairs), the 12 largest test-split modules (≈860 pairs), d 64, code length 128, 3 epochs; quick: the 40 largest
training modules of at most 30 KB (≈400 pairs), the 12 largest test modules of at most 150 KB (≈260 pairs),
d 128, code length 64, 1 epoch (seconds on 2 cores; measured at d 64 this size gave 4.8-4.9× random, short of
the gate, and d 128 gave 7.5×). Training and encoding run on one CPU thread (`runtime.device.one_cpu_thread`):
on shared cores the
small convolutions are 5-10× faster so.
Batch 64 (the spec's 512 would give 3 steps an epoch here); lr 1e-3 (the spec's) in the full demo, 3e-3 in the
one quick epoch. Measured (seed 0, 2 cores): full demo 9.9× random with lr 1e-3 (5.4× with 3e-3: the hardest-
negative epochs after one infonce epoch are sensitive to the rate at this size), quick ≈6.2×.
Gates: COSEA's MRR ≥ 5× a random ranking's (H_N/N, pool `all`); the full demo also gates the spec's second claim,
COSEA's MRR ≥ 3× random on the test queries whose BM25 score of the true code is 0 (no shared token). That second
gate does NOT separate at this size: a finding, reported with its count and bootstrap interval
(`no_shared_token_queries`, `mrr_cosea_no_shared_token_ratio_ci95`) and failing the full demo; the GPU reproduction
(site-packages pairs, 30 epochs) is where it is meant to hold. Measured (issue 17 follow-up, 2 shared cores):
- Sizes: 1,301 training pairs (21 batches of 64 an epoch, 63 steps in all), 861 test pairs (606 tkinter, 170
  turtle), 77 no-shared-token queries (67 distinct; 42 tkinter, 25 turtle): one of them at rank 1 adds 1/77 to
  their MRR, ≈1.5× random (H_861/861 = 0.0085), so the 3× gate is about two queries placed first.
- Seeds 0/1/2: all queries 9.9×/7.1×/8.2× random; no-shared-token 0.47× [0.35, 0.63], 0.89× [0.33, 1.98],
  0.63× [0.36, 1.08] (95 % bootstrap): below random, not above it. The untrained model (the Siamese start, details
  `untrained_ratios`) already gives 4.2×/5.5×/7.1× and 0.42×/0.35×/0.34×: at 63 steps the model is mostly its
  lexical start, which ranks a true code that shares nothing with its query behind every code that shares a word.
- Tokens are the same on both sides (lower-cased subtokens by one splitter, no stemming) and the embedding table is
  shared (the spec's choice; the paper's text beyond the abstract was not available to confirm COSEA's). 24 of the
  77 queries would share a token after splitting lower-case compounds (`showturtle`, `askstring`) or stripping a
  plural `s`; the rest are paraphrases ("Unmap this widget" ↔ `place_forget`), and no GUI module is in training.
- Loss: the infonce epoch at 0.1× lr ends at 4.0-4.1 (≈ ln 63, it barely moves), the two hardest epochs at
  0.24-0.25, above the margin 0.2 that a collapsed model (all embeddings equal) scores; the positive's cosine is 0.53-0.70 against a mean pair's 0.49-0.68. Variants, seed 0 (all / no-shared-token):
  infonce for all 3 epochs 13.1× / 0.58× [0.44, 0.72]; infonce lr 3e-3 11.7× / 0.77× [0.44, 1.31]; infonce 10
  epochs 12.3× / 0.80× [0.46, 1.37]; batch 32 9.9× / 0.53× [0.37, 0.78]; hinge-sum after the
  warm-up 10.6× / 0.48× [0.37, 0.61]; hardest-softmax 5.7× / 0.41× [0.32, 0.52]; no Siamese start 1.4× / 0.49×; no
  Siamese start and separate tables 1.1× / 1.16× [0.34, 2.76]. None reaches 3×.
- Ceiling probe: a plain association scorer (positive PMI of query word and code token counted on the 1,301
  training pairs) gives 3.2× overall and 1.9× [0.49, 3.97] on those 77 queries: the training pairs carry little
  cross-vocabulary signal for them: a learner of exactly that signal does not reach 3× either at this size.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from wisecli.runtime.results import DemoResult, Gate

from . import data as D
from .metrics import bootstrap, random_mrr, ranks_from_scores


def demo_config(quick: bool) -> dict:
    return {"dim": 64, "layers": 3, "pool": "layerwise", "share_embeddings": True, "max_code_len": 128,
            "max_query_len": 32, "vocab_size": 50000, "loss": "hardest", "margin": 0.2, "tau": 0.05,
            "symmetric": False, "warmup_epochs": 1, "batch": 64, "epochs": 1 if quick else 3,
            "lr": 3e-3 if quick else 1e-3,
            "seed": 0, "amp": True, "keep_docstrings": False}


def run_demo(quick: bool, device, *, sink=None) -> DemoResult:
    from wisecli.runtime.device import as_device, one_cpu_thread

    dev = as_device(device, sink=sink)
    with one_cpu_thread(dev):
        return _demo(quick, dev, sink)


def _demo(quick: bool, dev, sink) -> DemoResult:
    from wisecli.runtime.device import seed_everything

    from .predict import build_index, run_evaluate, run_query
    from .train import fit_pairs

    t0 = time.perf_counter()
    seed_everything(0)
    train, tc = D.stdlib_pairs(split="train", max_modules=40, largest=True, max_bytes=30000 if quick else 80000)
    test, _ = D.stdlib_pairs(split="test", max_modules=12, largest=True, max_bytes=150000 if quick else None)
    th = {p.hash for p in train}
    test = [p for p in test if p.hash not in th]
    cfg = demo_config(quick)
    if quick:
        cfg["max_code_len"], cfg["dim"] = 64, 128
    model, vocab, res = fit_pairs(train, [], cfg, dev)
    model.eval()
    ev = run_evaluate(test, methods=("cosea", "bm25", "hybrid"), pool="all", model=model, vocab=vocab, device=dev,
                      bootstrap=200, docstrings="removed", split_rule="top-level module hash 80/10/10")
    n = ev["protocol"]["pool_size"]
    rnd = random_mrr(n)
    bm_rank = ev["per_query"]["bm25"]
    from .predict import score_matrices

    bm = score_matrices(test, ("bm25",))["bm25"]
    zero = [i for i in range(len(test)) if float(bm[i, i]) == 0.0]
    cos = ev["per_query"]["cosea"]
    zero_mrr = sum(1 / cos[i] for i in zero) / len(zero) if zero else float("nan")
    zero_ci = bootstrap([1 / cos[i] for i in zero], 1000, 0)
    del bm_rank
    untrained = _untrained_ratios(test, zero, cfg, len(vocab), vocab, dev, n) if not quick else None
    rows = [{"method": m, **{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items() if k != "mrr_ci95"}}
            for m, r in ev["results"].items()]
    answers = []
    with tempfile.TemporaryDirectory() as tmp:
        from wisecli.runtime.checkpoints import save_checkpoint

        ck = Path(tmp) / "demo.pt"
        save_checkpoint(ck, method="code-search", arch="cosea-layerwise", config={"model": model.cfg, "train": cfg},
                        state_dict=model.state_dict(), vocab=vocab.state())
        src = D.stdlib_root() / "json"
        build_index([str(src)], ck, Path(tmp) / "idx", fmt="python", exclude=D.EXCLUDE, max_file_mb=5,
                    no_bm25=False, overwrite=False, skip_existing=False, device=dev, batch=256)
        for r in run_query(Path(tmp) / "idx", ["parse a JSON document from a string", "serialize an object to a json "
                           "formatted string", "escape a string for json output"], k=3, method="hybrid", weights=None,
                           rerank=None, path_glob=None, show_code=0, device=dev):
            top = r["results"][0] if r["results"] else {}
            answers.append({"query": r["query"], "top": f"{Path(top.get('path', '')).name}:{top.get('lineno')} "
                                                       f"{top.get('qualname')}"})
    mrr = ev["results"]["cosea"]["mrr"]
    gates = [Gate("mrr_cosea / random", mrr / rnd, ">=", 5.0)]
    if not quick:
        gates.append(Gate("mrr_cosea_no_shared_token / random", zero_mrr / rnd, ">=", 3.0))
    head = {"mrr_cosea": mrr, "mrr_bm25": ev["results"]["bm25"]["mrr"], "mrr_hybrid": ev["results"]["hybrid"]["mrr"],
            "pool": n, "mrr_cosea_no_shared_token_ratio": zero_mrr / rnd}
    return DemoResult("code-search", gates, head, {
        "rows": rows, "answers": answers, "protocol": ev["protocol"], "train_pairs": len(train),
        "test_pairs": len(test), "no_shared_token_queries": len(zero),
        "no_shared_token_distinct_queries": len({test[i].query for i in zero}), "mrr_random": rnd,
        "mrr_cosea_no_shared_token": zero_mrr,
        "mrr_cosea_no_shared_token_ratio_ci95": [v / rnd for v in zero_ci],
        "untrained_ratios": untrained, "train_loss": res.last_metrics.get("train_loss"),
        "seconds": time.perf_counter() - t0, "device": str(dev)})


def _untrained_ratios(test, zero, cfg, vocab_n, vocab, dev, n) -> dict:
    """MRR / random of the same model at its initialisation (the seed's weights before step 1): the Siamese start
    already matches shared tokens, so this is the floor training is measured against (all queries, and the
    no-shared-token ones)."""
    from wisecli.runtime.device import seed_everything

    from .model import Cosea
    from .predict import score_matrices
    from .train import model_config

    seed_everything(int(cfg["seed"]))
    m = Cosea(model_config(cfg, vocab_n)).to(dev).eval()
    s = score_matrices(test, ("cosea",), m, vocab, dev)["cosea"]
    h = torch.tensor([int(p.hash[:15], 16) for p in test], device=s.device)
    r = ranks_from_scores(s, torch.arange(len(test), device=s.device), h).double().cpu()
    rnd = random_mrr(n)
    return {"mrr_ratio": float((1 / r).mean()) / rnd,
            "no_shared_token_ratio": float((1 / r[zero]).mean()) / rnd if zero else float("nan")}
