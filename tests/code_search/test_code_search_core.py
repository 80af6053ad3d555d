"""Engine units against oracles: extraction vs `inspect` (§9.1), docstring removal (§9.2), tokenizer golden cases
and query derivation (§9.3), splits (§9.4), BM25 vs a slow pure-Python reference (§9.8)."""

from __future__ import annotations

import ast
import importlib
import inspect
import math
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from wisecli.engines.code_search import data as D
from wisecli.engines.code_search.bm25 import BM25
from wisecli.engines.code_search.tokenizer import Vocab, code_tokens, query_tokens, split_identifier


def _objects(mod, limit):
    """(qualname, function object) of module-level functions and methods of `mod` defined in its file."""
    out = []
    for name, obj in vars(mod).items():
        if inspect.isfunction(obj) and obj.__module__ == mod.__name__:
            out.append(obj)
        elif inspect.isclass(obj) and obj.__module__ == mod.__name__:
            for v in vars(obj).values():
                f = v.__func__ if isinstance(v, (staticmethod, classmethod)) else v
                if inspect.isfunction(f) and f.__module__ == mod.__name__:
                    out.append(f)
    return out[:limit]


def test_extraction_agrees_with_inspect_on_200_stdlib_functions():
    objs = []
    for name in ("json.decoder", "json.encoder", "csv", "textwrap", "argparse", "difflib", "fractions", "shlex",
                 "string", "calendar", "configparser", "dataclasses", "functools", "pprint", "ipaddress"):
        objs += _objects(importlib.import_module(name), 40)
    objs = objs[:200]
    assert len(objs) == 200
    cache: dict[str, dict] = {}
    for f in objs:
        path = inspect.getsourcefile(f)
        if path not in cache:
            src = Path(path).read_text(encoding="utf-8")
            cache[path] = {fn.qualname: fn for fn in D.extract_functions(src, path)}
        found = cache[path].get(f.__qualname__)
        assert found is not None, f.__qualname__
        assert found.path == path
        assert found.start_lineno == inspect.getsourcelines(f)[1], f.__qualname__


def test_nested_qualnames():
    src = "class A:\n    class B:\n        def m(self):\n            def inner():\n                pass\n" \
          "def f():\n    class C:\n        def g(self): pass\n    return C\n"
    names = {fn.qualname for fn in D.extract_functions(src, "x.py")}
    ns: dict = {}
    exec(compile(src, "x.py", "exec"), ns)
    assert ns["A"].B.m.__qualname__ in names and ns["f"]().g.__qualname__ in names
    assert names == {"A.B.m", "A.B.m.<locals>.inner", "f", "f.<locals>.C.g"}


def test_docstring_removal():
    src = ('@deco\ndef f(a):\n    """Read the file.\n\n    Long text here.\n    """\n    # keep me\n    return a\n\n'
           'def g():\n    """Only a docstring."""\n\n'
           'def h(): "one-liner doc"; return 1\n')
    fs = {f.qualname: f for f in D.extract_functions(src, "x.py")}
    for f in fs.values():
        ast.parse(f.code)
    assert "Read the file" not in fs["f"].code and "Long text" not in fs["f"].code
    assert "# keep me" in fs["f"].code and fs["f"].code.startswith("@deco")
    assert fs["f"].start_lineno == 1 and fs["f"].lineno == 2
    body = ast.parse(fs["g"].code).body[0].body
    assert len(body) == 1 and isinstance(body[0].value, ast.Constant) and body[0].value.value is Ellipsis
    assert "Only a docstring" not in fs["g"].code
    assert "one-liner doc" not in fs["h"].code and "return 1" in fs["h"].code


def test_tokenizer_golden_cases():
    assert split_identifier("readCSVFile2") == ["read", "csv", "file", "2"]
    assert split_identifier("__init__") == ["init"]
    assert split_identifier("HTTPServer") == ["http", "server"]
    src = 'def readCSVFile2(path):  # open the CSV\n    x = 42\n    return open(path, "r b hello world more words")\n'
    toks = code_tokens(src)
    assert toks == ["def", "read", "csv", "file", "2", "(", "path", ")", ":", "open", "the", "csv",
                    "x", "=", "<num>", "return", "open", "(", "path", ",", "<str>", "r", "b", "hello", "world", ")"]
    assert len(code_tokens("x = 1\n" * 500)) == 256
    assert code_tokens("function foo() { return barBaz; }")[:4] == ["function", "foo", "(", ")"]
    assert query_tokens("Read a CSV-file; readCSVFile2!") == ["read", "a", "csv", "file", "read", "csv", "file", "2"]
    assert len(query_tokens("w " * 100)) == 32


def test_query_derivation():
    q = D.query_from_docstring
    assert q("Return the :class:`Foo` object.  More text.\n\nLong part.") == "Return the Foo object"
    assert q(":param x: Parse ``a`` json doc from string. Other.") == "Parse a json doc from string"
    assert q(">>> f(1)\nCompute the thing here\n") == "Compute the thing here"
    assert q("Too short.") is None and q(None) is None
    assert q("First line of\nthe sentence here\n\nsecond paragraph.") == "First line of the sentence here"


def test_vocabulary_is_deterministic():
    v = Vocab.build([["a", "b", "a"], ["b", "c", "d", "d"]], min_count=2)
    assert v.itos == ["<pad>", "<unk>", "a", "b", "d"]
    assert v.encode(["d", "zz"]) == [4, 1]


def test_splits_by_module_no_leaks():
    pairs, counts = D.stdlib_pairs(modules={"json", "csv", "textwrap", "argparse", "difflib", "email", "http",
                                            "logging", "unittest", "xml"})
    assert counts["pairs"] == len(pairs) > 100
    by: dict[str, set] = {}
    for p in pairs:
        by.setdefault(D.module_split(p.module), set()).add(p.module)
    splits = list(by.values())
    for i in range(len(splits)):
        for j in range(i + 1, len(splits)):
            assert not splits[i] & splits[j]
    hashes = Counter(p.hash for p in pairs)
    assert max(hashes.values()) == 1
    assert all(p.query.lower() not in p.code.lower() for p in pairs)
    assert all(len(p.query.split()) >= 3 for p in pairs)


def _slow_bm25(docs, query, k1=1.2, b=0.75):
    n = len(docs)
    avgdl = sum(len(d) for d in docs) / n
    out = []
    for d in docs:
        s = 0.0
        for t in query:
            nt = sum(1 for e in docs if t in e)
            if nt == 0:
                continue
            idf = math.log(1 + (n - nt + 0.5) / (nt + 0.5))
            tf = d.count(t)
            s += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avgdl))
        out.append(s)
    return out


def test_bm25_equals_a_slow_reference():
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(60)]
    docs = [[rng.choice(vocab[: rng.randint(5, 60)]) for _ in range(rng.randint(1, 40))] for _ in range(300)]
    queries = [[rng.choice(vocab) for _ in range(rng.randint(1, 6))] + ["unseen"] for _ in range(8)]
    queries.append(["w1", "w1", "w2"])  # repeats count
    bm = BM25.fit(docs)
    got = bm.scores(queries)
    for i, q in enumerate(queries):
        np.testing.assert_allclose(got[i], _slow_bm25(docs, q), rtol=0, atol=1e-9)
    assert np.all(bm.scores([["unseen"]]) == 0)
    z = {k: v for k, v in bm.save_arrays().items()}
    np.testing.assert_allclose(BM25.load_arrays(z).scores(queries), got, atol=1e-9)
