"""The CoSQA and StaQC readers (specs/code-search.md §4, §2.7, §8): files written here in the released layouts
(CoSQA JSON arrays + code_idx_map.txt; StaQC Python-2 protocol-0 pickles of dicts), read by `train` and
`evaluate` like pairs JSONL; the restricted unpickler refuses a malicious pickle without running it; corrupt
files are exit 2 with empty stdout."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from conftest import conformance_module

from wisecli.cli.errors import InputError
from wisecli.engines.code_search import formats as F
from wisecli.engines.code_search.data import norm_hash
from wisecli.engines.code_search.train import load_pairs

C = conformance_module(__file__)
CPU = ["--device", "cpu"]

CODES = {
    "read a text file into a string": 'def read_text(path):\n    """Read it."""\n    with open(path) as f:\n'
                                      '        return f.read()\n',
    "add two numbers together": "def add(a, b):\n    return a + b\n",
    "reverse the order of a list": "def rev(xs):\n    return xs[::-1]\n",
    "count words in a sentence": "def count_words(s):\n    return len(s.split())\n",
    "sort a dictionary by its values": "def by_value(d):\n    return sorted(d.items(), key=lambda kv: kv[1])\n",
    "check whether a file exists": "def exists(p):\n    import os\n    return os.path.exists(p)\n",
}


def _py2_pickle(d: dict) -> bytes:
    """A dict pickled as Python 2's `pickle.dump(d, f)` writes it (protocol 0: `S'...'` byte strings, `I` ints,
    tuples of ints as keys)."""
    out = ["(dp0\n"]
    for k, v in d.items():
        if isinstance(k, tuple):
            out.append("(" + "".join(f"I{x}\n" for x in k) + "t")
        else:
            out.append(f"I{k}\n")
        out.append("S" + repr(v) + "\ns")
    return ("".join(out) + ".").encode("latin1")


def _staqc(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    titles = {100 + i: q for i, q in enumerate(CODES)}
    titles[200] = "caf\xe9 menu sql query for prices"  # a Python-2 byte string, read as latin1
    codes = {(100 + i, 0): c for i, c in enumerate(CODES.values())}
    codes[(100, 1)] = "def read_text2(p):\n    return open(p).read()\n"  # a second block of question 100
    codes[(200, 0)] = "SELECT name, price FROM menu ORDER BY price"
    (folder / "python_how_to_do_it_by_classifier_multiple_qid_to_title.pickle").write_bytes(_py2_pickle(titles))
    (folder / "python_how_to_do_it_by_classifier_multiple_iid_to_code.pickle").write_bytes(_py2_pickle(codes))
    return folder


def _cosqa(folder: Path, with_map: bool = True) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    items = list(CODES.items())
    train = [{"idx": f"cosqa-train-{i}", "doc": q, "code": c, "code_tokens": c.split(), "docstring_tokens": [],
              "label": 1} for i, (q, c) in enumerate(items[:4])]
    train.append({"idx": "cosqa-train-9", "doc": "add two numbers together", "code": items[2][1], "label": 0})
    (folder / "cosqa-train.json").write_text(json.dumps(train, indent=1))
    test = [{"idx": f"cosqa-test-{i}", "doc": q, "code": c, "code_tokens": [], "docstring_tokens": [], "label": 1,
             "retrieval_idx": i} for i, (q, c) in enumerate(items[3:])]
    (folder / "cosqa-retrieval-test-500.json").write_text(json.dumps(test))
    if with_map:
        extra = ["def mul(a, b):\n    return a * b\n", "def noop():\n    pass\n"]
        m = {c: i for i, c in enumerate([c for _, c in items] + extra)}
        (folder / "code_idx_map.txt").write_text(json.dumps(m))
    return folder / "cosqa-train.json", folder / "cosqa-retrieval-test-500.json"


def _bad(wise, *args, match: str):
    code, out, err = wise("code-search", *args)
    assert code == 2, err
    assert out == "" and "Error:" in err and "Hint:" in err and "Traceback" not in err
    assert match in err, err


def test_restricted_unpickler_reads_builtins_and_refuses_the_rest(tmp_path):
    ok = tmp_path / "ok.pickle"
    ok.write_bytes(pickle.dumps({"a": [1, 2.5, (3, "x")], "s": {1, 2}, "f": frozenset([b"z"[0]])}, protocol=2))
    assert F.safe_load(ok) == {"a": [1, 2.5, (3, "x")], "s": {1, 2}, "f": frozenset([122])}
    py2 = tmp_path / "py2.pickle"
    py2.write_bytes(_py2_pickle({(1, 0): "caf\xe9"}))
    assert F.safe_load(py2) == {(1, 0): "caf\xe9"}
    marker = tmp_path / "ran"
    # os.system("touch marker") as protocol 0, and builtins.eval / a class instance / a persistent id
    evil = {"system": f"cos\nsystem\n(S'touch {marker}'\ntR.".encode(),
            "eval": f"cbuiltins\neval\n(S'open(\"{marker}\", \"w\")'\ntR.".encode(),
            "class": pickle.dumps(__import__("collections").OrderedDict(a=1), protocol=2),
            "persid": b"(lp0\nPabc\na.",
            "huge": b"c__builtin__\nbytearray\n(I100000000000\ntR."}
    for name, raw in evil.items():
        p = tmp_path / f"{name}.pickle"
        p.write_bytes(raw)
        with pytest.raises(InputError) as e:
            F.safe_load(p)
        assert "not allowed" in e.value.message, name
    assert not marker.exists()
    assert pickle.loads(evil["class"])  # the class pickle itself is valid: the refusal is the unpickler's


def test_staqc_pairs_and_split_unit(tmp_path):
    folder = _staqc(tmp_path / "staqc")
    pairs, counts = load_pairs([str(folder)])
    assert counts["records"] == 8 and len(pairs) == 8
    by_id = {p.qualname: p for p in pairs}
    assert by_id["100-0"].query == "read a text file into a string"
    assert "Read it." not in by_id["100-0"].code and "return f.read()" in by_id["100-0"].code  # docstring removed
    assert by_id["100-0"].module == by_id["100-1"].module == "staqc:100"  # one question, one split unit
    assert by_id["200-0"].query.startswith("caf\xe9") and by_id["200-0"].code.startswith("SELECT")
    title = next(folder.glob("*qid_to_title.pickle"))
    code = next(folder.glob("*iid_to_code.pickle"))
    for word in (title, code):  # either file of the pair names the pair
        assert len(load_pairs([str(word)], "staqc")[0]) == 8
    assert [p.query for p in load_pairs([str(title)])[0]] == [p.query for p in pairs]


def test_cosqa_pairs_labels_and_pool(tmp_path):
    tr, te = _cosqa(tmp_path / "cosqa")
    pairs, counts = load_pairs([str(tr)])
    assert counts["label_0"] == 1 and len(pairs) == 4
    assert pairs[0].module == "cosqa:cosqa-train-0" and "Read it." not in pairs[0].code
    pool: list[str] = []
    test, _ = load_pairs([str(te)], "cosqa", pool=pool)
    assert len(test) == 3 and len(pool) == 8


def test_evaluate_reads_cosqa_with_its_pool_and_staqc(wise, tmp_path):
    tr, te = _cosqa(tmp_path / "cosqa")
    code, out, err = wise("code-search", "evaluate", str(te), "--method", "bm25", "--bootstrap", "0", "--json", *CPU)
    assert code == 0, err
    doc = json.loads(out)
    # 3 queries against the 8 codes of code_idx_map.txt (3 of them the test codes, deduplicated by hash)
    assert doc["protocol"]["pool_size"] == 8 and doc["protocol"]["queries"] == 3
    _, te2 = _cosqa(tmp_path / "nomap", with_map=False)
    code, out, err = wise("code-search", "evaluate", str(te2), "--method", "bm25", "--bootstrap", "0", "--json", *CPU)
    assert code == 0, err
    assert json.loads(out)["protocol"]["pool_size"] == 3
    from wisecli.engines.code_search import api

    doc = api.evaluate([te], method="bm25", bootstrap=0, device="cpu")
    # the query sharing words with its code (count_words ↔ "count words") ranks it first among the 8
    ranks = {r["query"]: r["bm25"] for r in doc["per_query"]}
    assert ranks["count words in a sentence"] == 1 and doc["protocol"]["pool_size"] == 8
    folder = _staqc(tmp_path / "staqc")
    code, out, err = wise("code-search", "evaluate", str(folder), "--method", "bm25", "--bootstrap", "0", "--json",
                          *CPU)
    assert code == 0, err
    assert json.loads(out)["protocol"]["pool_size"] == 8


def test_train_takes_cosqa_and_staqc(wise, tmp_path):
    tr, te = _cosqa(tmp_path / "cosqa")
    folder = _staqc(tmp_path / "staqc")
    run = tmp_path / "run"
    code, out, err = wise("code-search", "train", str(tr), str(folder), "--val", str(te), "-o", str(run), "--dim", "8",
                          "--layers", "1", "--epochs", "1", "--batch", "4", "--no-progress", "--json", *CPU)
    assert code == 0, err
    doc = json.loads(out)
    # 4 CoSQA + 8 StaQC pairs, less those whose code is a validation code (by normalised hash)
    val_h = {norm_hash(p.code) for p in load_pairs([str(te)])[0]}
    n = sum(norm_hash(p.code) not in val_h for p in load_pairs([str(tr), str(folder)])[0])
    assert doc["train_pairs"] == n and doc["val_pairs"] == 3


def test_corrupt_and_malicious_files_are_exit_2(wise, tmp_path):
    ck = C._checkpoint(tmp_path)
    marker = tmp_path / "ran"
    folder = _staqc(tmp_path / "evil")
    title = next(folder.glob("*qid_to_title.pickle"))
    title.write_bytes(f"cos\nsystem\n(S'touch {marker}'\ntR.".encode())
    _bad(wise, "evaluate", str(folder), "--method", "bm25", *CPU, match="disallowed content")
    _bad(wise, "train", str(title), "-o", str(tmp_path / "r"), *CPU, match="disallowed content")
    assert not marker.exists() and not (tmp_path / "r").exists()
    trunc = _staqc(tmp_path / "trunc")
    t = next(trunc.glob("*iid_to_code.pickle"))
    t.write_bytes(t.read_bytes()[:-20])
    _bad(wise, "evaluate", str(t), "--method", "bm25", *CPU, match="not a readable pickle")
    notdict = _staqc(tmp_path / "list")
    next(notdict.glob("*qid_to_title.pickle")).write_bytes(pickle.dumps([1, 2], protocol=2))
    _bad(wise, "evaluate", str(notdict), "--method", "bm25", *CPU, match="holds a dict")
    lone = tmp_path / "lone" / "x_qid_to_title.pickle"
    lone.parent.mkdir()
    lone.write_bytes(_py2_pickle({1: "a title here"}))
    _bad(wise, "evaluate", str(lone), "--method", "bm25", *CPU, match="code of")
    tr, te = _cosqa(tmp_path / "cq")
    te.write_text(te.read_text()[:-5])
    _bad(wise, "evaluate", str(te), "--format", "cosqa", "--weights", str(ck), *CPU, match="cannot read CoSQA")
    tr.write_text('[1, 2]')
    _bad(wise, "evaluate", str(tr), "--method", "bm25", *CPU, match="not a CoSQA file")
    _, te2 = _cosqa(tmp_path / "cq2")
    (te2.parent / "code_idx_map.txt").write_text("[not json")
    _bad(wise, "evaluate", str(te2), "--method", "bm25", *CPU, match="code_idx_map.txt")


def test_distractors_from_an_index(wise, tmp_path):
    from wisecli.engines.code_search.data import extract_functions
    from wisecli.engines.code_search.predict import build_index

    ck, pairs = C._checkpoint(tmp_path), C._pairs(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    first = json.loads(pairs.read_text().splitlines()[0])["code"]  # a test code: dropped from the pool by hash
    (other / "a.py").write_text("def mul(a, b):\n    return a * b\n\n\n" + first)
    (other / "b.py").write_text("class K:\n    def parse_row(self, line):\n        return line.split(',')\n")
    idx = tmp_path / "idx"
    build_index([str(other)], ck, idx, fmt="python", exclude=(), max_file_mb=5, no_bm25=False, overwrite=False,
                skip_existing=False, device="cpu", batch=8)
    data = tmp_path / "d.jsonl"  # the oracle: the same codes given as data
    data.write_text("".join(json.dumps({"query": "unused words", "code": f.code}) + "\n"
                            for p in sorted(other.glob("*.py")) for f in extract_functions(p.read_text(), str(p))))
    m = len(pairs.read_text().splitlines())
    docs = []
    for d in (idx, data):
        code, out, err = wise("code-search", "evaluate", str(pairs), "--weights", str(ck), "--compare", "bm25",
                              "--distractors", str(d), "--bootstrap", "0", "--json", *CPU)
        assert code == 0, err
        docs.append(json.loads(out))
    assert docs[0]["protocol"]["pool_size"] == docs[1]["protocol"]["pool_size"] == m + 2
    assert docs[0]["results"] == docs[1]["results"]
    assert docs[0]["protocol"]["distractor_indexes"][0]["used"] == 3
    (other / "b.py").write_text("# edited\n" + (other / "b.py").read_text())  # its rows are skipped, counted
    code, out, err = wise("code-search", "evaluate", str(pairs), "--method", "bm25", "--distractors", str(idx),
                          "--bootstrap", "0", "--json", *CPU)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["protocol"]["pool_size"] == m + 1 and doc["protocol"]["distractor_indexes"][0]["skipped"] == 1
    for p in other.glob("*.py"):
        p.unlink()
    _bad(wise, "evaluate", str(pairs), "--method", "bm25", "--distractors", str(idx), *CPU, match="could be re-read")
