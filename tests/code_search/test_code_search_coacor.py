"""CoaCor's token-id pickles (specs/code-search.md §4, §2.7; `LittleYUYU/CoaCor` `code/CodeRetrieval-Main/data/`):
files written here in the released layout — Python-2 protocol-0 pickles: `sql.{split}.{qt,code}.pkl` aligned lists
of (id, "space-separated token ids"), `codenn_combine_new.sql.eval.{qt,code}.pkl` (qt entries: lists of 3 id
strings, repeated over each pool of 50; code entries: id strings, the pool's true code first), and the
`sql.{qt,code}.vocab.pkl` {word: id} dicts with 0-3 = <pad> <sos> <eos> <unk>. Checked: decoded text, file order
without de-duplication, pool boundaries, BM25 ranks equal to ranks worked out by hand, a malicious pickle, exit 2."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import conformance_module

from wisecli.cli.errors import InputError
from wisecli.engines.code_search import formats as F
from wisecli.engines.code_search.train import load_pairs

C = conformance_module(__file__)
CPU = ["--device", "cpu"]

# identifiers without digits, underscores or case changes (the code tokenizer splits there)
WORDS = ["z" + "".join(t) for t in itertools.product("bcdfghjk", repeat=3)][:120]
QT_WORDS = ["find", "get", "show", "please", "list", "zzzz"] + WORDS
CODE_WORDS = ["select", "from", "tab"] + WORDS


def _p0(obj, memo: list[int]) -> str:
    """`obj` as Python 2's `pickle.dump` (protocol 0) writes it: `(lp0` lists, `(dp0` dicts, `(...tpN` tuples,
    `I` ints, `S'...'` byte strings, with the memo PUTs CoaCor's files carry."""
    def put() -> str:
        memo[0] += 1
        return f"p{memo[0] - 1}\n"
    if isinstance(obj, bool) or not isinstance(obj, (int, str, list, tuple, dict)):
        raise TypeError(type(obj))
    if isinstance(obj, int):
        return f"I{obj}\n"
    if isinstance(obj, str):
        return "S" + repr(obj) + "\n" + put()
    if isinstance(obj, tuple):
        return "(" + "".join(_p0(x, memo) for x in obj) + "t" + put()
    if isinstance(obj, list):
        return "(l" + put() + "".join(_p0(x, memo) + "a" for x in obj)
    return "(d" + put() + "".join(_p0(k, memo) + _p0(v, memo) + "s" for k, v in obj.items())


def _dump(path: Path, obj) -> None:
    path.write_bytes((_p0(obj, [0]) + ".").encode("latin1"))


QV = {"<pad>": 0, "<sos>": 1, "<eos>": 2, "<unk>": 3, **{w: 4 + i for i, w in enumerate(QT_WORDS)}}
CV = {"<pad>": 0, "<sos>": 1, "<eos>": 2, "<unk>": 3, **{w: 4 + i for i, w in enumerate(CODE_WORDS)}}


def _ids(text: str, v: dict) -> str:
    return " ".join(str(v[w]) for w in text.split())


def _staqc_texts(n: int) -> tuple[list[str], list[str]]:
    """n (query, code) texts: query i "find W_i", code i "select W_i from tab", with the hand-designed cases of
    `test_staqc_released_pools_rank_as_computed_by_hand`."""
    qs = [f"find {WORDS[i]}" for i in range(n)]
    cs = [f"select {WORDS[i]} from tab" for i in range(n)]
    if n >= 100:
        qs[5] = "find zzzz"                                          # no word in any code: all tie at 0 -> 50
        cs[8] = f"select {WORDS[8]} from tab {WORDS[7]} {WORDS[7]}"  # beats code 7 for query 7 -> rank 2
        cs[30] = cs[20]                                              # equal codes: count as true
        cs[50] = f"select {WORDS[50]} from tab {WORDS[48]} {WORDS[48]}"  # next pool: would beat 48 if in its pool
        qs[61], cs[61] = qs[60], cs[60]                              # a duplicate pair kept in place
    return qs, cs


def _coacor(folder: Path, split: str = "test", n: int = 107) -> Path:
    """sql.{split}.{qt,code}.pkl (+ the vocabularies) in CoaCor's layout; returns the qt file."""
    folder.mkdir(parents=True, exist_ok=True)
    _dump(folder / "sql.qt.vocab.pkl", QV)
    _dump(folder / "sql.code.vocab.pkl", CV)
    qs, cs = _staqc_texts(n)
    qt = [(35599330 + i, _ids(q, QV)) for i, q in enumerate(qs)]
    code = [(70504 + i, _ids(c, CV)) for i, c in enumerate(cs)]
    qt[0] = (qt[0][0], "1 " + qt[0][1] + " 2 0 0")  # <sos> ... <eos> <pad> <pad>: dropped when decoding
    qt[1] = (qt[1][0], qt[1][1] + " 3")             # <unk> kept as a word
    _dump(folder / f"sql.{split}.qt.pkl", qt)
    _dump(folder / f"sql.{split}.code.pkl", code)
    return folder / f"sql.{split}.qt.pkl"


# codenn: triple A over pools 0 and 1 (true code "select V0 ..."), triple B over pool 2
V0, V1 = WORDS[110], WORDS[111]
TRIPLES = [[f"find {V0}", "list zzzz", f"show {V0} please"], [f"find {V1}", f"get {V1}", "zzzz"]]
CODENN_RANKS = [1, 50, 1, 2, 50, 2, 1, 1, 50]


def _codenn(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    _dump(folder / "sql.qt.vocab.pkl", QV)
    _dump(folder / "sql.code.vocab.pkl", CV)
    qt, code = [], []
    for k, (t, true) in enumerate([(0, V0), (0, V0), (1, V1)]):
        codes = [f"select {true} from tab"] + [f"select {WORDS[(k * 49 + j) % 100]} from tab" for j in range(49)]
        if k == 1:
            codes[1] = f"select {V0} {V0} from tab"  # beats the true code for the paraphrases with V0 -> rank 2
        qt += [[_ids(q, QV) for q in TRIPLES[t]]] * 50
        code += [_ids(c, CV) for c in codes]
    _dump(folder / "codenn_combine_new.sql.eval.qt.pkl", qt)
    _dump(folder / "codenn_combine_new.sql.eval.code.pkl", code)
    return folder / "codenn_combine_new.sql.eval.qt.pkl"


def test_writer_is_python2_protocol_0_like_the_release(tmp_path):
    # the first bytes of CoaCor's sql.test.qt.pkl are "(lp0\n(I35599330\nS'104 217 114 34 29 108 57'\np1\ntp2\na("
    raw = _p0([(35599330, "104 217 114 34 29 108 57"), (26606248, "85 6 34 90 214")], [0])
    assert raw.startswith("(lp0\n(I35599330\nS'104 217 114 34 29 108 57'\np1\ntp2\na(")
    p = tmp_path / "x.pkl"
    _dump(p, {"<pad>": 0, "mysql": 4})
    assert F.safe_load(p) == {"<pad>": 0, "mysql": 4}


def test_decoded_text_file_order_and_no_dedup(tmp_path):
    qt = _coacor(tmp_path / "d")
    assert F.is_coacor(str(qt)) and F.is_coacor(str(tmp_path / "codenn_combine_new.sql.dev.code.pkl"))
    assert not F.is_coacor("sql.qt.vocab.pkl") and not F.is_coacor("x_qid_to_title.pickle")
    qs, cs = _staqc_texts(107)
    for word in (qt, qt.with_name("sql.test.code.pkl")):  # either file of the pair, auto-detected by its name
        pairs, counts = load_pairs([str(word)])
        assert counts["records"] == 107 and len(pairs) == 107  # the duplicate pair 60/61 is kept
        assert pairs[0].query == f"find {WORDS[0]}" and pairs[0].code == f"select {WORDS[0]} from tab"
        assert pairs[1].query == f"find {WORDS[1]} <unk>"
        assert [p.query for p in pairs[2:]] == qs[2:] and [p.code for p in pairs] == cs
        assert pairs[0].module == "coacor:35599330" and pairs[0].qualname == "70504"
    pools = F.coacor_pools(qt)
    assert pools.kind == "staqc" and pools.cols.shape == (100, 50) and pools.dropped == 7
    assert pools.pool.tolist() == [i // 50 for i in range(100)] and pools.true.tolist() == [i % 50 for i in range(100)]
    for i in (0, 49, 50, 99):  # pool boundaries: query i's candidates are entries 50*(i//50) .. +49, in file order
        p = 50 * (i // 50)
        assert [pools.codes[c] for c in pools.cols[i]] == cs[p: p + 50]
    cn = _codenn(tmp_path / "c")
    pairs, _ = load_pairs([str(cn)])
    assert [p.query for p in pairs[:3]] == TRIPLES[0] and pairs[0].code == f"select {V0} from tab"
    assert len(pairs) == 9
    pools = F.coacor_pools(cn)
    assert pools.kind == "codenn" and pools.cols.shape == (9, 50) and pools.dropped == 0
    assert pools.queries == TRIPLES[0] * 2 + TRIPLES[1] and pools.true.tolist() == [0] * 9
    assert pools.pool.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert pools.codes[pools.cols[3][1]] == f"select {V0} {V0} from tab"


def test_staqc_released_pools_rank_as_computed_by_hand(wise, tmp_path):
    qt = _coacor(tmp_path / "d")
    from wisecli.engines.code_search import api

    doc = api.evaluate([qt], method="bm25", bootstrap=0, device="cpu")
    ranks = [r["bm25"] for r in doc["per_query"]]
    hand = [1] * 100
    hand[5] = 50   # every code scores 0: pessimistic, all 49 others tie
    hand[7] = 2    # code 8 holds W7 twice
    hand[30] = 49  # its code (= code 20's text) lacks W30: 48 non-true codes tie at 0 (code 20 counts as true)
    # 20: code 30 has the same text (counts as true, not as a tie); 48: code 50 is in the next pool; 60/61 duplicates
    assert ranks == hand
    assert [r["pool"] for r in doc["per_query"]] == [i // 50 for i in range(100)]
    pr = doc["protocol"]
    assert pr["pool_size"] == 50 and pr["pools"] == 2 and pr["queries"] == 100 and pr["dropped_remainder"] == 7
    assert "released" in pr["pool"] and abs(doc["results"]["bm25"]["mrr"] - np.mean(1 / np.array(hand))) < 1e-12
    code, out, err = wise("code-search", "evaluate", str(qt.with_name("sql.test.code.pkl")), "--format", "coacor",
                          "--method", "bm25", "--pool", "50", "--bootstrap", "0", "--json", *CPU)
    assert code == 0, err
    assert abs(json.loads(out)["results"]["bm25"]["mrr"] - doc["results"]["bm25"]["mrr"]) < 1e-12


def test_codenn_pools_rank_as_computed_by_hand(tmp_path):
    from wisecli.engines.code_search import api

    doc = api.evaluate([_codenn(tmp_path / "c")], method="bm25", bootstrap=0, device="cpu")
    assert [r["bm25"] for r in doc["per_query"]] == CODENN_RANKS
    assert doc["protocol"]["pools"] == 3 and doc["protocol"]["queries"] == 9


def test_pool_scores_equal_the_whole_rows(tmp_path):
    """`rows_in` (candidates only) equals the whole-row scores gathered at the candidates, cosea and bm25."""
    import torch

    from wisecli.engines.code_search.data import Pair
    from wisecli.engines.code_search.predict import RowScorer, load_model

    pools = F.coacor_pools(_codenn(tmp_path / "c"))
    model, vocab, _, _ = load_model(C._checkpoint(tmp_path), torch.device("cpu"))
    sc = RowScorer([Pair(q, "") for q in pools.queries], ("cosea", "bm25"), model, vocab, torch.device("cpu"),
                   codes=pools.codes)
    idx = np.arange(len(pools.queries))
    part, whole = sc.rows_in(idx, pools.cols), sc.rows(idx)
    for m in ("cosea", "bm25"):
        ref = whole[m].gather(1, torch.as_tensor(pools.cols))
        assert torch.allclose(part[m], ref, atol=1e-6), m
    from wisecli.engines.code_search import api

    doc = api.evaluate([pools_file := tmp_path / "c" / "codenn_combine_new.sql.eval.code.pkl"], method="hybrid",
                       compare="bm25", weights=C._checkpoint(tmp_path), bootstrap=0, device="cpu")
    assert pools_file.is_file() and doc["protocol"]["checkpoint_sha256"]
    assert [r["bm25"] for r in doc["per_query"]] == CODENN_RANKS
    assert all(1 <= r["hybrid"] <= 50 for r in doc["per_query"]) and "mrr_difference" in doc["compare"]


def test_train_on_the_train_split_with_val(wise, tmp_path):
    tr = _coacor(tmp_path / "d", "train", 60)
    va = _coacor(tmp_path / "d", "val", 50)
    run = tmp_path / "run"
    code, out, err = wise("code-search", "train", str(tr), "--val", str(va), "-o", str(run), "--dim", "8",
                          "--layers", "1", "--epochs", "1", "--batch", "8", "--no-progress", "--json", *CPU)
    assert code == 0, err
    doc = json.loads(out)
    # train and val files share code texts here (same generator): the trainer drops train pairs whose code is a
    # validation code; the val file's 50 pairs all validate
    assert doc["val_pairs"] == 50 and doc["train_pairs"] == 10


def _bad(wise, *args, match: str):
    code, out, err = wise("code-search", *args)
    assert code == 2, err
    assert out == "" and "Error:" in err and "Hint:" in err and "Traceback" not in err
    assert match in err, err


def test_malicious_and_bad_input_exit_2(wise, tmp_path):
    marker = tmp_path / "ran"
    qt = _coacor(tmp_path / "evil")
    (qt.parent / "sql.qt.vocab.pkl").write_bytes(f"cos\nsystem\n(S'touch {marker}'\ntR.".encode())
    _bad(wise, "evaluate", str(qt), "--method", "bm25", *CPU, match="disallowed content")
    _bad(wise, "train", str(qt), "-o", str(tmp_path / "r"), *CPU, match="disallowed content")
    assert not marker.exists() and not (tmp_path / "r").exists()
    qt = _coacor(tmp_path / "ok")
    _bad(wise, "evaluate", str(qt), "--method", "bm25", "--pool", "100", *CPU, match="released pools of 50")
    _bad(wise, "evaluate", str(qt), "--method", "bm25", "--split", "test", *CPU, match="the file is the split")
    _bad(wise, "evaluate", str(qt), str(qt), "--method", "bm25", *CPU, match="evaluated alone")
    miss = _coacor(tmp_path / "miss")
    (miss.parent / "sql.code.vocab.pkl").unlink()
    _bad(wise, "evaluate", str(miss), "--method", "bm25", *CPU, match="sql.code.vocab.pkl is missing")
    short = _coacor(tmp_path / "short")
    _dump(short.with_name("sql.test.code.pkl"), [(1, "7 8 9")])
    _bad(wise, "evaluate", str(short), "--method", "bm25", *CPU, match="not aligned")
    words = _coacor(tmp_path / "words")
    _dump(words, [(1, "find me")] * 107)
    _bad(wise, "evaluate", str(words), "--method", "bm25", *CPU, match="not a token-id string")
    d = _coacor(tmp_path / "dict")
    _dump(d, {1: "2 3"})
    _bad(wise, "evaluate", str(d), "--method", "bm25", *CPU, match="holds a list")
    vd = _coacor(tmp_path / "vlist")
    _dump(vd.parent / "sql.qt.vocab.pkl", ["find"])
    _bad(wise, "train", str(vd), "-o", str(tmp_path / "r2"), *CPU, match="vocabulary is a dict")
    few = _coacor(tmp_path / "few", n=20)
    _bad(wise, "evaluate", str(few), "--method", "bm25", *CPU, match="no released pool of 50")
    with pytest.raises(InputError, match="not a CoaCor pickle"):
        F.coacor_pools(tmp_path / "sql.pkl")
