"""Metrics on hand-made score matrices (§9.5), the loss against a plain double loop (§9.6), encoder invariants
(§9.7), search against brute-force numpy and a hand-computed fusion (§9.9), a training smoke run (§9.10)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wisecli.engines.code_search import metrics as M
from wisecli.engines.code_search.loss import contrastive, not_negative
from wisecli.engines.code_search.model import Cosea, pad_batch
from wisecli.engines.code_search.predict import rrf, search, topk_rows


def test_ranks_pessimistic_ties_and_summary():
    s = torch.tensor([[0.5, 0.5, 0.1, 0.9],     # true 0: one above (0.9), one tie (0.5) -> rank 3
                      [0.2, 0.7, 0.1, 0.0],     # true 1: best -> rank 1
                      [0.3, 0.3, 0.3, 0.3]])    # true 2: all tie -> rank 4
    r = M.ranks_from_scores(s, torch.tensor([0, 1, 2]))
    assert r.tolist() == [3, 1, 4]
    # equal-hash codes count as true: code 1 has the same hash as code 0
    r2 = M.ranks_from_scores(s, torch.tensor([0, 1, 2]), torch.tensor([7, 7, 8, 9]))
    assert r2.tolist() == [2, 1, 4]
    out = M.summary([1, 2, 11, 5])
    assert math.isclose(out["mrr"], (1 + 0.5 + 1 / 11 + 0.2) / 4)
    assert out["r1"] == 0.25 and out["r5"] == 0.75 and out["r10"] == 0.75
    assert math.isclose(out["ndcg10"], (1 + 1 / math.log2(3) + 0 + 1 / math.log2(6)) / 4)
    assert math.isclose(M.random_mrr(3), (1 + 1 / 2 + 1 / 3) / 3)


def test_chunked_pools_drop_the_short_remainder():
    chunks, dropped = M.chunk_pools(23, 5, seed=1)
    assert chunks.shape == (4, 5) and dropped == 3
    assert len(set(chunks.ravel().tolist())) == 20
    q = torch.nn.functional.normalize(torch.randn(23, 4), dim=1)
    r, kept, d = M.ranks_matrix_pools(lambda a, b: q[a] @ q[b].T, 23, 5, seed=1)
    assert d == 3 and len(r) == 20 and int(r.max()) <= 5
    assert torch.all(r == 1)  # each query's own vector is its best match


def _slow_hardest(s, same, margin):
    B = len(s)
    tot = 0.0
    for i in range(B):
        best = -float("inf")
        for j in range(B):
            if not same[i][j]:
                best = max(best, s[i][j])
        if best > -float("inf"):
            tot += max(0.0, margin - s[i][i] + best)
    return tot / B


def test_hardest_equals_a_double_loop_and_excludes_duplicates():
    torch.manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(6, 8, dtype=torch.float64), dim=1)
    c = torch.nn.functional.normalize(torch.randn(6, 8, dtype=torch.float64), dim=1)
    ch = torch.tensor([1, 2, 1, 3, 4, 5])       # codes 0 and 2 are duplicates
    qh = torch.tensor([10, 11, 12, 13, 13, 14])  # queries 3 and 4 are the same
    same = not_negative(ch, qh)
    assert same[0, 2] and same[2, 0] and same[3, 4] and not same[0, 1]
    got = contrastive(q, c, same, "hardest", margin=0.2)
    s = (q @ c.T).tolist()
    assert abs(float(got) - _slow_hardest(s, same.tolist(), 0.2)) < 1e-6  # the loss computes in float32


def test_only_the_hardest_negative_gets_gradient():
    torch.manual_seed(1)
    q = torch.nn.functional.normalize(torch.randn(5, 8), dim=1)
    c = torch.nn.functional.normalize(torch.randn(5, 8), dim=1).requires_grad_(True)
    same = not_negative(torch.arange(5))
    loss = contrastive(q, c, same, "hardest", margin=2.0)  # margin 2: every hinge active
    loss.backward()
    s = (q @ c.detach().T).masked_fill(same, -float("inf"))
    hard = set(s.argmax(1).tolist())
    for j in range(5):
        touched = c.grad[j].abs().sum() > 0
        assert bool(touched)  # each code is a positive of its own row
    # the gradient on code j from negatives: rows whose hardest is j; check row 0 alone
    c.grad = None
    l0 = (2.0 - (q[0] @ c[0]) + (q[0] @ c.T).masked_fill(same[0], -float("inf")).max())
    l0.backward()
    nz = [j for j in range(5) if c.grad[j].abs().sum() > 0]
    assert sorted(nz) == sorted({0, int(s[0].argmax())}) and len(hard) >= 1


@pytest.mark.parametrize("kind", ["hardest-softmax", "infonce", "hinge-sum", "hinge-random"])
def test_other_losses_are_finite(kind):
    q = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    c = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    assert torch.isfinite(contrastive(q, c, not_negative(torch.arange(4)), kind, symmetric=True))


def _model(pool="layerwise"):
    torch.manual_seed(0)
    return Cosea({"vocab": 50, "dim": 16, "layers": 3, "pool": pool}).eval()


def test_encoder_invariants():
    m = _model()
    ids = [[5, 6, 7], [8, 9, 10, 11, 12], [3]]
    e, beta = m.code(pad_batch(ids), return_weights=True)
    assert torch.allclose(beta.sum(1), torch.ones(3), atol=1e-6)
    assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)
    longer = pad_batch(ids, min_len=40)
    assert torch.allclose(m.code(longer), e, atol=1e-6)  # padding changes nothing
    alone = m.code(pad_batch([ids[0]]))
    assert torch.allclose(alone[0], e[0], atol=1e-6)
    ml = _model("max-last")
    out = ml.code(pad_batch(ids))
    assert out.shape == (3, 16) and torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(ml.code(pad_batch(ids, min_len=40)), out, atol=1e-6)


def test_topk_equals_brute_force_and_hybrid_fusion():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(4, 30)).astype(np.float32)
    v, i = topk_rows(torch.from_numpy(s), 5)
    for r in range(4):
        assert i[r].tolist() == np.argsort(-s[r], kind="stable")[:5].tolist()
    fused = rrf([[3, 1, 2], [1, 4]])
    assert fused == pytest.approx({3: 1 / 61, 1: 1 / 62 + 1 / 61, 2: 1 / 63, 4: 1 / 62})


def test_search_hybrid_is_the_fusion_of_the_two_lists(tmp_path):
    from wisecli.engines.code_search.bm25 import BM25
    from wisecli.engines.code_search.tokenizer import Vocab, code_tokens

    codes = ["def read_file(p): return open(p).read()", "def write_file(p, t): open(p, 'w').write(t)",
             "def add(a, b): return a + b", "def parse_json(t): return json.loads(t)"]
    toks = [code_tokens(c) for c in codes]
    vocab = Vocab.build(toks + [["read", "file"]], min_count=1)
    m = Cosea({"vocab": len(vocab), "dim": 8, "layers": 1, "pool": "layerwise", "max_query_len": 32,
               "max_code_len": 64}).eval()
    from wisecli.engines.code_search.model import embed

    E = embed(m.code, [vocab.encode(t) for t in toks], torch.device("cpu")).numpy().astype(np.float16)
    idx = {"meta": {"model": m.cfg}, "functions": [{"path": f"f{i}.py"} for i in range(4)], "embeddings": E,
           "bm25": BM25.fit(toks)}
    dev = torch.device("cpu")
    kw = dict(k=4, model=m, vocab=vocab, device=dev)
    a = search(["read a file"], idx, method="cosea", **kw)[0]
    b = search(["read a file"], idx, method="bm25", **kw)[0]
    h = search(["read a file"], idx, method="hybrid", **kw)[0]
    want = rrf([[r for r, _ in a], [r for r, _ in b if r is not None]])
    assert [r for r, _ in h] == [r for r, _ in sorted(want.items(), key=lambda t: (-t[1], t[0]))]
    assert b[0][0] == 0
    qe = embed(m.query, [vocab.encode(["read", "a", "file"])], dev)
    brute = np.argsort(-(qe.numpy() @ E.astype(np.float32).T)[0], kind="stable")
    assert [r for r, _ in a] == brute.tolist()


def test_training_smoke_loss_decreases():
    from wisecli.engines.code_search import data as D
    from wisecli.engines.code_search.demo import demo_config
    from wisecli.engines.code_search.train import fit_pairs

    pairs, _ = D.stdlib_pairs(split="train", max_modules=40, largest=True, max_bytes=40000)
    pairs = pairs[:500]
    cfg = {**demo_config(True), "epochs": 2, "warmup_epochs": 0, "loss": "infonce", "max_code_len": 64}
    from wisecli.runtime.device import one_cpu_thread

    with one_cpu_thread(torch.device("cpu")):
        _, _, res = fit_pairs(pairs, [], cfg, torch.device("cpu"))
    losses = [r["train_loss"] for r in res.history]
    assert all(math.isfinite(x) for x in losses) and losses[1] < losses[0], losses


def test_queue_negatives_join_the_hardest_search():
    torch.manual_seed(2)
    q = torch.nn.functional.normalize(torch.randn(4, 8, dtype=torch.float64), dim=1)
    c = torch.nn.functional.normalize(torch.randn(4, 8, dtype=torch.float64), dim=1)
    extra = torch.nn.functional.normalize(torch.randn(6, 8, dtype=torch.float64), dim=1)
    ch = torch.tensor([1, 2, 3, 4])
    eh = torch.tensor([1, 9, 9, 9, 3, 9])   # queue entries 0 and 4 are copies of codes 0 and 2
    same = not_negative(ch)
    esame = ch[:, None] == eh[None, :]
    got = contrastive(q, c, same, "hardest", margin=0.2, extra=extra, extra_same=esame)
    s = torch.cat([q @ c.T, q @ extra.T], 1).tolist()
    full_same = torch.cat([same, esame], 1).tolist()
    want = 0.0
    for i in range(4):
        best = max(s[i][j] for j in range(10) if not full_same[i][j])
        want += max(0.0, 0.2 - s[i][i] + best)
    assert abs(float(got) - want / 4) < 1e-6
    from wisecli.engines.code_search.train import PairLoader, make_step

    loader = PairLoader({"q": [[2, 3]] * 6, "c": [[4, 5, 6]] * 6, "ch": torch.arange(6), "qh": torch.arange(6)},
                        3, 0, "hardest", 0)
    step = make_step(loader, {"margin": 0.2, "tau": 0.05, "symmetric": False, "negatives": "queue"}, queue_size=4)
    m = Cosea({"vocab": 10, "dim": 8, "layers": 1, "pool": "layerwise"})
    for b in loader:
        loss, _ = step(m, b)
        assert torch.isfinite(loss)


def test_evaluate_goes_by_chunks_of_rows_and_equals_the_whole_matrix(monkeypatch):
    """specs §5: ranks are computed in chunks of query rows, never the [M, M + K] matrix; the ranks equal the
    plain whole-matrix computation (pool all with distractors, and pool N)."""
    from wisecli.engines.code_search import data as D
    from wisecli.engines.code_search import predict as P
    from wisecli.engines.code_search.tokenizer import Vocab, code_tokens, query_tokens

    pairs, _ = D.stdlib_pairs(split="train", max_modules=6, largest=True, max_bytes=40000)
    pairs = pairs[:60]
    extra, _ = D.stdlib_pairs(modules={"shlex"})
    assert len(pairs) == 60 and extra, len(pairs)
    vocab = Vocab.build([query_tokens(p.query) for p in pairs] + [code_tokens(p.code) for p in pairs], min_count=1)
    torch.manual_seed(0)
    m = Cosea({"vocab": len(vocab), "dim": 16, "layers": 1, "pool": "layerwise", "max_query_len": 32,
               "max_code_len": 64}).eval()
    dev = torch.device("cpu")
    seen = []
    real_rows = P.RowScorer.rows
    monkeypatch.setattr(P.RowScorer, "rows", lambda self, idx: seen.append(len(idx)) or real_rows(self, idx))
    methods = ("cosea", "bm25", "hybrid")
    for pool, dis in (("all", extra), ("10", None)):
        seen.clear()
        ev = P.run_evaluate(pairs, methods=methods, pool=pool, model=m, vocab=vocab, device=dev, bootstrap=0,
                            distractors=dis, chunk=7)
        assert seen and max(seen) <= 7
        # the reference: the whole matrix, each query ranked in its pool (pessimistic ties, equal hashes true)
        x = [d for d in (dis or []) if d.hash not in {p.hash for p in pairs}]
        full = P.score_matrices(pairs, methods, m, vocab, dev, distractors=[d.code for d in x])
        h = torch.tensor([int(p.hash[:15], 16) for p in pairs] + [int(d.hash[:15], 16) for d in x])
        groups = [np.arange(len(pairs))] if pool == "all" else M.chunk_pools(len(pairs), 10)[0]
        for name in methods:
            want = {}
            for g in groups:
                cols = np.concatenate([g, np.arange(len(pairs), len(pairs) + len(x))]) if pool == "all" else g
                s = full[name][torch.as_tensor(g)][:, torch.as_tensor(cols)]
                r = M.ranks_from_scores(s, torch.arange(len(g)), h[torch.as_tensor(cols)])
                want.update(zip(g.tolist(), r.tolist()))
            got = ev["per_query"][name]
            assert got.keys() == want.keys()
            differ = sum(got[i] != want[i] for i in want)
            # bm25 rows are the same sparse products: exact; cosea rows of a sub-batch may differ from the whole
            # GEMM in the last bit on another BLAS, which can only swap a near-tie
            assert differ == 0 if name == "bm25" else differ <= max(1, len(want) // 100), (name, pool, differ)
