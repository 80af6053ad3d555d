"""The command line: every bad input of spec §8 (exit 2, one Error line and a Hint, empty stdout), stdin
translation keeps one output line per input line, --jsonl parses, -o writes <stem>.<tgt>, evaluate's JSON, and
`demo --quick --json` reports ok."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import conformance_module

from wisecli.runtime.io import gettext as G


pytestmark = pytest.mark.usefixtures("one_torch_thread_module")


_checkpoint, _pairs = conformance_module(__file__)._checkpoint, conformance_module(__file__)._pairs

CPU = ["--device", "cpu"]
TRAIN = ["--arch", "micro", "--max-steps", "2", "--eval-every", "2", "--vocab-size", "300", "--valid-beam", "1",
         "--valid-max", "4", "--max-tokens", "256", "--no-progress", *CPU]


def _bad(wise, *args, match: str, input: str | None = None):
    code, out, err = wise("translate", *args, input=input)
    assert code == 2, err
    assert out == ""
    assert "Error:" in err and "Hint:" in err and "Traceback" not in err
    assert match in err, err
    return err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tr")
    src, tgt = _pairs(tmp / "data")
    return tmp, src, tgt, _checkpoint(tmp)


@pytest.fixture(scope="module")
def run(files):
    from conftest import run_wise

    tmp, src, tgt, _ = files
    vs, vt = tmp / "valid.en", tmp / "valid.xx"  # an explicit validation set (no hash split taken)
    vs.write_text("the dog sees a cat\nthe old king reads 3 books\n", encoding="utf-8")
    vt.write_text("lo dug sees una cat\nlo old king reads 3 books\n", encoding="utf-8")
    code, out, err = run_wise("translate", "train", "-o", str(tmp / "run"), "--src", str(src), "--tgt", str(tgt),
                              "--valid-src", str(vs), "--valid-tgt", str(vt), *TRAIN, "--average-last", "1", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["steps"] == 2 and Path(doc["run_dir"]).is_dir()
    assert (tmp / "run" / "checkpoints" / "avg.pt").is_file() and (tmp / "run" / "run.json").is_file()
    data = json.loads((tmp / "run" / "run.json").read_text())["data"]
    assert data["valid_pairs"] == 2 and data["train_pairs"] == 40
    return tmp / "run"


def test_info_with_weights_shows_the_inference_size(wise, run):
    code, out, err = wise("translate", "info", "--weights", str(run / "checkpoints" / "avg.pt"), "--json")
    assert code == 0, err
    m = json.loads(out)["model"]
    assert m["params_training"] > m["params_inference"] and m["config"]["views"] == 2


def test_train_data_errors(wise, files):
    tmp, src, tgt, _ = files
    short = tmp / "short.xx"
    short.write_text("one line\n")
    _bad(wise, "train", "-o", str(tmp / "o1"), "--src", str(src), "--tgt", str(short), *TRAIN, match="has 40 lines")
    bad = tmp / "bad.en"
    bad.write_bytes(b"fine\nstill fine\n\xff\xfe broken\n" + b"x\n" * 37)
    _bad(wise, "train", "-o", str(tmp / "o2"), "--src", str(bad), "--tgt", str(tgt), *TRAIN, match="bad.en:3")
    tsv = tmp / "p.tsv"
    tsv.write_text("a b c\tA B C\nd e f\n")
    _bad(wise, "train", "-o", str(tmp / "o3"), "--tsv", str(tsv), *TRAIN, match="p.tsv:2")
    assert not (tmp / "o1").exists() and not (tmp / "o3").exists()


def test_gettext_errors(wise, files, tmp_path):
    tmp = files[0]
    _bad(wise, "train", "-o", str(tmp / "o4"), "--gettext", "xx", "--gettext-dir", str(tmp_path), *TRAIN,
         match="no gettext catalogs for 'xx'")
    lc = tmp_path / "de" / "LC_MESSAGES"
    lc.mkdir(parents=True)
    G.write_mo(lc / "tool.mo", [("cannot open %s now", "kann %s nicht öffnen"), ("two words", "zwei Wörter")])
    err = _bad(wise, "train", "-o", str(tmp / "o5"), "--gettext", "de", "--gettext-dir", str(tmp_path), *TRAIN,
               match="no 'de' pairs left after cleaning")
    assert "placeholder 1" in err and "short_long_or_same 1" in err
    _bad(wise, "train", "-o", str(tmp / "o6"), "--gettext", "xx", "--gettext-dir", str(tmp_path), *TRAIN,
         match="languages found: de (1)")


def test_option_errors(wise, files):
    tmp, src, tgt, _ = files
    data = ["--src", str(src), "--tgt", str(tgt)]
    _bad(wise, "train", "-o", str(tmp / "o7"), *data, *TRAIN, "--aux-layer", "2", match="--aux-layer must lie in 1..1")
    _bad(wise, "train", "-o", str(tmp / "o8"), *data, *TRAIN, "--views", "1", "--kl-alpha", "2",
         match="--kl-alpha only apply to the multi-view model")
    _bad(wise, "train", "-o", str(tmp / "o9"), *data, *TRAIN, "--device", "cuda:7", match="")


def test_resume_with_another_vocabulary_is_refused(wise, files, run):
    tmp, src, tgt, _ = files
    _bad(wise, "train", "-o", str(run), "--src", str(src), "--tgt", str(tgt), *TRAIN[:6], "--vocab-size", "400",
         *TRAIN[8:], "--resume", match="another tokenizer or vocabulary")


def test_bad_weights(wise, files, tmp_path):
    tmp, src, _, _ = files
    _bad(wise, "predict", str(src), "--weights", str(tmp_path / "nothing.pt"), *CPU, match="weights not found")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    _bad(wise, "predict", str(src), "--weights", str(tmp_path / "junk.pt"), *CPU, match="corrupt")
    import torch

    from wisecli.runtime.checkpoints import save_checkpoint

    save_checkpoint(tmp_path / "other.pt", method="reid", arch="x", config={}, state_dict={"w": torch.zeros(1)})
    _bad(wise, "predict", str(src), "--weights", str(tmp_path / "other.pt"), *CPU, match="'reid' checkpoint")


def test_evaluate_errors(wise, files, monkeypatch):
    tmp, src, tgt, _ = files
    short = tmp / "short2.xx"
    short.write_text("x\ny\n")
    _bad(wise, "evaluate", "--hyp", str(src), "--ref", str(short), match="has 40 lines but")
    from wisecli.runtime import bleu

    monkeypatch.setattr(bleu, "sacrebleu_available", lambda: False)
    err = _bad(wise, "evaluate", "--hyp", str(src), "--ref", str(tgt), "--tokenize", "zh", match="needs sacrebleu")
    assert 'pip install "wisecli[mt]"' in err


def test_evaluate_json_and_bootstrap(wise, files):
    tmp, src, tgt, _ = files
    code, out, err = wise("translate", "evaluate", "--hyp", str(tgt), "--hyp", str(src), "--ref", str(tgt),
                          "--backend", "builtin", "--bootstrap", "50", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["bleu"] == pytest.approx(100.0) and doc["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert set(doc) >= {"precisions", "bp", "sys_len", "ref_len", "chrf", "chrf_signature", "n_sentences", "backend"}
    assert doc["bootstrap"]["p_value"] == 1.0 and doc["systems"][1]["bleu"] < 100


def test_stdin_gives_one_line_per_line_and_jsonl_parses(wise, files, run):
    lines = "the dog sees a cat\n\nthe old king reads 3 books\nä ü\n"
    code, out, err = wise("translate", "predict", "-", "--weights", str(run), "--beam", "2", *CPU, input=lines)
    assert code == 0, err
    assert len(out.split("\n")) - 1 == 4 and out.split("\n")[1] == ""
    code, out, err = wise("translate", "predict", "-", "--weights", str(run), "--beam", "2", "--nbest", "2", "--jsonl",
                          *CPU, input=lines)
    recs = [json.loads(x) for x in out.splitlines()]
    assert [r["line"] for r in recs] == [1, 2, 3, 4] and recs[2]["src"] == "the old king reads 3 books"
    assert set(recs[0]) >= {"file", "line", "src", "hyp", "score", "n_tokens", "status"} and len(recs[0]["nbest"]) == 2


def test_folder_output_and_shards(wise, files, tmp_path):
    tmp, src, _, ckpt = files
    a, b = tmp_path / "a.en", tmp_path / "b.en"
    a.write_text("the dog\nthe cat\n")
    b.write_text("a bird\n")
    code, out, err = wise("translate", "predict", str(a), str(b), "--weights", str(ckpt), "-o", str(tmp_path / "o"),
                          "--beam", "2", "--json", *CPU)
    assert code == 0, err
    assert len((tmp_path / "o" / "a.xx").read_text().splitlines()) == 2 and (tmp_path / "o" / "run.json").is_file()
    _bad(wise, "predict", str(a), "--weights", str(ckpt), "-o", str(tmp_path / "o"), *CPU, match="output exists")


def test_demo_quick_json_is_ok(wise):
    code, out, err = wise("translate", "demo", "--quick", "--json", *CPU)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["ok"] is True and set(doc["headline"]) == {"bleu", "chrf", "copy_bleu", "steps"}


def test_resume_continues_bit_for_bit(tmp_path):
    import torch

    from wisecli.engines.translate import api

    kw = dict(synthetic=60, arch="micro", eval_every=2, vocab_size=300, valid_beam=1, valid_max=4, max_tokens=128,
              device="cpu", progress=False)
    api.train(tmp_path / "full", max_steps=4, **kw)
    api.train(tmp_path / "part", max_steps=2, **kw)
    torch.manual_seed(99)  # another process state: the checkpoint restores RNG, schedule and the bucket order
    api.train(tmp_path / "part", max_steps=4, resume=True, **kw)
    a = torch.load(tmp_path / "full/checkpoints/last.pt", weights_only=True)
    b = torch.load(tmp_path / "part/checkpoints/last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2 and a["scheduler"] == b["scheduler"]
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k


def test_sentencepiece_run_trains_predicts_and_resumes_only_with_its_tokenizer(wise, files, tmp_path):
    pytest.importorskip("sentencepiece")
    tmp, src, tgt, _ = files
    run = tmp_path / "sp"
    code, out, err = wise("translate", "train", "-o", str(run), "--src", str(src), "--tgt", str(tgt), *TRAIN,
                          "--tokenizer", "sentencepiece", "--json")
    assert code == 0, err
    code, out, err = wise("translate", "predict", "-", "--weights", str(run), "--beam", "1", *CPU,
                          input="the dog sees a cat\n\nä ü\n")
    assert code == 0, err
    assert len(out.split("\n")) - 1 == 3 and out.split("\n")[1] == ""
    _bad(wise, "train", "-o", str(run), "--src", str(src), "--tgt", str(tgt), *TRAIN, "--resume",
         match="another tokenizer or vocabulary")


def test_compile_reaches_the_step_with_dynamic_shapes_and_falls_back_with_a_warning(broken_compile, files,
                                                                                      tmp_path):
    from conftest import run_wise

    tmp, src, tgt, _ = files
    code, out, err = run_wise("translate", "train", "-o", str(tmp_path / "c"), "--src", str(src), "--tgt", str(tgt),
                              *TRAIN, "--compile", "--json")
    assert code == 0, err
    assert broken_compile == [{"dynamic": True, "mode": None}]
    assert "--compile: torch.compile failed" in err and "no compiler here" in err
    assert json.loads(out)["steps"] == 2
