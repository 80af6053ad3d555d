"""The command line (§9.11): predict → query --json round trip on 3 files with paths and lines, an edited file
re-embedded alone by --skip-existing, the §8 bad inputs (exit 2, one Error line and a Hint, empty stdout),
an item error (exit 3), and `demo --quick --json` reports ok."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import conformance_module

C = conformance_module(__file__)
CPU = ["--device", "cpu"]


def _bad(wise, *args, match: str, input: str | None = None):
    code, out, err = wise("code-search", *args, input=input)
    assert code == 2, err
    assert out == ""
    assert "Error:" in err and "Hint:" in err and "Traceback" not in err
    assert match in err, err
    return err


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cs")
    return tmp, C._files(tmp), C._pairs(tmp), C._checkpoint(tmp)


def test_round_trip_and_incremental_update(wise, setup, tmp_path):
    _, src0, _, ck = setup
    src = tmp_path / "src"
    shutil.copytree(src0, src)
    idx = tmp_path / "idx"
    code, out, err = wise("code-search", "predict", str(src), "--weights", str(ck), "-o", str(idx), "--json", *CPU)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["functions"] == 7 and doc["embedded"] == 7
    assert (idx / "index.json").is_file() and (idx / "run.json").is_file()
    code, out, err = wise("code-search", "query", str(idx), "retry an http request", "parse json", "-k", "7",
                          "--method", "bm25", "--json", *CPU)
    assert code == 0, err
    res = json.loads(out)
    top = res[0]["results"][0]
    assert top["qualname"] == "retry_request" and Path(top["path"]).name == "net.py" and top["lineno"] == 4
    lines = (src / "net.py").read_text().splitlines()
    assert lines[top["lineno"] - 1].startswith("def retry_request")
    code, out, err = wise("code-search", "query", str(idx), "take the top item off the stack", "--jsonl", *CPU)
    assert code == 0, err
    rec = json.loads(out.splitlines()[0])
    assert len(rec["results"]) == 7 and rec["method"] == "cosea"
    # edit one file: only it is re-embedded
    (src / "mathy.py").write_text((src / "mathy.py").read_text() + '\n\ndef median_value(v):\n'
                                  '    """Middle value of a sorted list."""\n    return sorted(v)[len(v) // 2]\n')
    code, out, err = wise("code-search", "predict", str(src), "--weights", str(ck), "-o", str(idx),
                          "--skip-existing", "--json", *CPU)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["functions"] == 8 and doc["embedded"] == 4 and doc["kept"] == 4
    code, out, err = wise("code-search", "query", str(idx), "middle value of a sorted list", "-k", "1",
                          "--method", "bm25", "--json", *CPU)
    assert json.loads(out)[0]["results"][0]["qualname"] == "median_value"
    (src / "net.py").unlink()
    code, out, err = wise("code-search", "predict", str(src), "--weights", str(ck), "-o", str(idx),
                          "--skip-existing", "--json", *CPU)
    assert json.loads(out)["functions"] == 6 and json.loads(out)["embedded"] == 0


def test_an_unparsable_file_is_an_item_error(wise, setup, tmp_path):
    _, src0, _, ck = setup
    src = tmp_path / "src"
    shutil.copytree(src0, src)
    (src / "broken.py").write_text("def f(:\n    pass\n")
    code, out, err = wise("code-search", "predict", str(src), "--weights", str(ck), "-o", str(tmp_path / "i"),
                          "--json", *CPU)
    assert code == 3, err
    recs = json.loads(out)["records"]
    bad = [r for r in recs if r["status"] == "error"]
    assert len(bad) == 1 and bad[0]["input"].endswith("broken.py") and bad[0]["line"] == 1


def test_bad_inputs(wise, setup, tmp_path):
    tmp, src, pairs, ck = setup
    idx = C._index(tmp)
    _bad(wise, "query", str(tmp_path / "nope"), "x", match="index not found")
    (tmp_path / "empty").mkdir()
    _bad(wise, "query", str(tmp_path / "empty"), "x", match="no index.json")
    bad = tmp_path / "bad"
    shutil.copytree(idx, bad)
    (bad / "functions.jsonl").write_text((bad / "functions.jsonl").read_text().split("\n", 1)[1])
    _bad(wise, "query", str(bad), "x", match="inconsistent")
    ver = tmp_path / "ver"
    shutil.copytree(idx, ver)
    meta = json.loads((ver / "index.json").read_text())
    (ver / "index.json").write_text(json.dumps({**meta, "format": "wisecli-code-index/9"}))
    _bad(wise, "query", str(ver), "x", match="unknown index format")
    _bad(wise, "query", str(idx), "   ", *CPU, match="empty query")
    _bad(wise, "query", str(idx), "x", "-k", "0", *CPU, match="")
    import torch

    from wisecli.runtime.checkpoints import save_checkpoint

    other = tmp_path / "other.pt"
    save_checkpoint(other, method="reid", arch="x", config={}, state_dict={"w": torch.zeros(1)})
    _bad(wise, "query", str(idx), "x", "--weights", str(other), *CPU, match="'reid' checkpoint")
    ck2 = tmp_path / "ck2.pt"
    d = torch.load(ck, weights_only=True)
    d["created"] = "another"
    torch.save(d, ck2)
    _bad(wise, "query", str(idx), "x", "--weights", str(ck2), *CPU, match="another checkpoint")
    _bad(wise, "predict", str(src), "--weights", str(ck), "-o", str(idx), *CPU, match="index exists")
    (tmp_path / "nopy").mkdir()
    (tmp_path / "nopy" / "a.txt").write_text("x")
    _bad(wise, "predict", str(tmp_path / "nopy"), "--weights", str(ck), "-o", str(tmp_path / "o"), *CPU,
         match="no input files")
    j = tmp_path / "s.jsonl"
    j.write_text('{"name": "f"}\n')
    _bad(wise, "predict", str(j), "--format", "jsonl", "--weights", str(ck), "-o", str(tmp_path / "o2"), *CPU,
         match="'code'")
    one = tmp_path / "one.jsonl"
    one.write_text(pairs.read_text().splitlines()[0] + "\n")
    _bad(wise, "train", str(one), "-o", str(tmp_path / "r"), *CPU, match="fewer than 2 usable training pairs")
    _bad(wise, "evaluate", str(pairs), "--weights", str(ck), "--pool", "50", *CPU, match="larger than the test set")
    _bad(wise, "evaluate", str(pairs), "--method", "cosea", *CPU, match="needs --weights")
    _bad(wise, "train", str(pairs), "-o", str(tmp_path / "r2"), "--device", "cuda:7", match="")
    assert not (tmp_path / "o").exists() and not (tmp_path / "r").exists()


def test_jsonl_snippets_from_stdin(wise, setup, tmp_path):
    _, _, _, ck = setup
    text = "\n".join(json.dumps({"code": c, "path": f"x{i}.js", "lineno": 3, "name": f"f{i}", "language": "js"})
                     for i, c in enumerate(["function readFile(p) { return fs.readFileSync(p); }",
                                            "function addNumbers(a, b) { return a + b; }"])) + "\n"
    code, out, err = wise("code-search", "predict", "-", "--format", "jsonl", "--weights", str(ck), "-o",
                          str(tmp_path / "i"), "--json", *CPU, input=text)
    assert code == 0, err
    code, out, err = wise("code-search", "query", str(tmp_path / "i"), "read file", "--method", "bm25", "--json", *CPU)
    assert json.loads(out)[0]["results"][0]["qualname"] == "f0"


def test_demo_quick_is_ok(wise):
    code, out, err = wise("code-search", "demo", "--quick", "--json", *CPU)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["ok"] and doc["headline"]["pool"] > 100


def test_evaluate_pool_and_distractors(wise, setup, tmp_path):
    _, src, pairs, ck = setup
    code, out, err = wise("code-search", "evaluate", str(pairs), "--method", "bm25", "--pool", "3", "--json",
                          "--bootstrap", "0", *CPU)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["protocol"]["pool_size"] == 3 and doc["protocol"]["dropped_remainder"] == 1
    assert doc["results"]["bm25"]["queries"] == 6
    extra = tmp_path / "more.jsonl"
    extra.write_text(json.dumps({"query": "unused words here", "code": "def zz(a):\n    return a * 2\n"}) + "\n"
                     + pairs.read_text().splitlines()[0] + "\n")  # the second is a test code: dropped
    code, out, err = wise("code-search", "evaluate", str(pairs), "--method", "bm25", "--distractors", str(extra),
                          "--json", *CPU)
    assert code == 0, err
    assert json.loads(out)["protocol"]["pool_size"] == 8


def test_cross_attention_reranks_the_top_k(wise, setup, tmp_path):
    _, src, pairs, ck = setup
    run = tmp_path / "run"
    code, out, err = wise("code-search", "train", str(pairs), "-o", str(run), "--dim", "8", "--layers", "1",
                          "--epochs", "1", "--batch", "4", "--attention", "cross", "--val-split", "module:0.4",
                          "--no-progress", "--json", *CPU)
    assert code == 0, err
    idx = tmp_path / "idx"
    code, out, err = wise("code-search", "predict", str(src), "--weights", str(run), "-o", str(idx), *CPU)
    assert code == 0, err
    code, out, err = wise("code-search", "query", str(idx), "read a csv file", "-k", "7", "--json", *CPU)
    plain = json.loads(out)[0]["results"]
    code, out, err = wise("code-search", "query", str(idx), "read a csv file", "-k", "7", "--rerank", "3", "--json",
                          *CPU)
    assert code == 0, err
    rr = json.loads(out)[0]["results"]
    key = lambda r: (r["path"], r["lineno"])  # noqa: E731
    assert sorted(map(key, rr[:3])) == sorted(map(key, plain[:3])) and list(map(key, rr[3:])) == list(map(key, plain[3:]))
    assert rr[0]["score"] >= rr[1]["score"] >= rr[2]["score"]
    _bad(wise, "query", str(C._index(setup[0])), "x", "--rerank", "2", "--weights", str(ck), *CPU,
         match="--attention cross")


def test_cross_scores_ignore_padding():
    import torch

    from wisecli.engines.code_search.model import Cosea, pad_batch

    torch.manual_seed(0)
    m = Cosea({"vocab": 40, "dim": 16, "layers": 2, "pool": "layerwise", "attention": "cross"}).eval()
    q, c = [[3, 4], [5, 6, 7]], [[8, 9, 10], [11, 12]]
    a = m.cross_score(pad_batch(q), pad_batch(c))
    b = m.cross_score(pad_batch(q, 20), pad_batch(c, 30))
    assert torch.allclose(a, b, atol=1e-6) and a.shape == (2,)
