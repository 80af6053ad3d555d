"""The command line of text-vae: spec §8's bad inputs (exit 2, one Error line and a Hint, empty stdout),
`predict --mode reconstruct -` keeps one line per input line, the `--json` schemas, a small real train run with
resume and its refusals, and `demo --quick --json` reports ok."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import conformance_module, run_wise

conf = conformance_module(__file__)
CPU = ["--device", "cpu"]
SIZE = ["--emb", "8", "--hidden", "8", "--z-dim", "2", "--batch-size", "32", "--no-progress", *CPU]
TINY = [*SIZE, "--epochs", "1"]


pytestmark = pytest.mark.usefixtures("one_torch_thread_module")


def _bad(*args, match: str, input: str | None = None):
    code, out, err = run_wise("text-vae", *args, input=input)
    assert code == 2, err
    assert out == ""
    assert "Error:" in err and "Hint:" in err and "Traceback" not in err
    assert match in err, err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tv")
    return tmp, conf._text(tmp / "data"), conf._text(tmp / "data", "test.txt", 10, seed=5), conf._checkpoint(tmp)


@pytest.fixture(scope="module")
def run(files):
    tmp, train, test, _ = files
    code, out, err = run_wise("text-vae", "train", str(train), "-o", str(tmp / "run"), *TINY, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["epochs"] == 1 and doc["best_epoch"] == 1 and doc["model"] == "twr"
    rec = [json.loads(x) for x in (tmp / "run" / "metrics.jsonl").read_text().splitlines()]
    for k in ("train_loss", "train_recon", "train_kl", "train_kl_twr", "val_nll_elbo", "val_ppl_elbo", "val_kl",
              "val_au", "val_mi", "lr", "seconds", "samples_per_s"):
        assert k in rec[0], k
    return tmp / "run"


def test_resume_continues_and_refuses_other_settings(files, run):
    tmp, train, _, _ = files
    code, out, err = run_wise("text-vae", "train", str(train), "-o", str(run), *SIZE, "--epochs", "2", "--resume",
                              "--json")
    assert code == 0, err
    assert json.loads(out)["epochs"] == 2
    _bad("train", str(train), "-o", str(run), *TINY, "--resume", "--hidden", "9", match="other model settings")
    other = tmp / "other.txt"
    other.write_text("completely different words here\nand more new ones\n", encoding="utf-8")
    _bad("train", str(other), "-o", str(run), *TINY, "--resume", match="vocabulary differs")


def test_train_bad_inputs(files, tmp_path):
    tmp, train, _, ckpt = files
    _bad("train", str(tmp_path / "missing.txt"), "-o", str(tmp_path / "r"), *TINY, match="not found")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    _bad("train", str(empty), "-o", str(tmp_path / "r"), *TINY, match="no sentence")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"good line\n\xff\xfe bad\n")
    _bad("train", str(bad), "-o", str(tmp_path / "r"), *TINY, match="bad.txt:2")
    _bad("train", str(train), "-o", str(tmp_path / "r"), *TINY, "--model", "vae", "--z-mode", "mean",
         match="--z-mode mean")
    _bad("train", str(train), "-o", str(tmp_path / "r"), *TINY, "--model", "lm", "--kl-scope", "last1",
         match="--kl-scope")
    _bad("train", str(train), "-o", str(tmp_path / "r"), *TINY, "--max-len", "2", match="--max-len")
    _bad("train", str(train), "-o", str(tmp_path / "r"), *TINY, "--task", "dialogue", match="dialogue")
    _bad("train", str(train), "-o", str(tmp_path / "r"), *TINY, "--device", "cuda:7", match="CUDA")
    assert not (tmp_path / "r").exists()


def test_evaluate_bad_inputs_and_json_schema(files, tmp_path):
    tmp, _, test, ckpt = files
    _bad("evaluate", str(test), "--weights", str(ckpt), "--iw-samples", "4", "--iw-chunk", "8", *CPU,
         match="--iw-chunk")
    _bad("evaluate", str(test), "--weights", str(ckpt), "--iw-samples", "0", *CPU, match="--iw-samples")
    other = tmp_path / "other.pt"
    from wisecli.runtime.checkpoints import save_checkpoint

    save_checkpoint(other, method="translate", arch="micro", config={}, state_dict={})
    _bad("evaluate", str(test), "--weights", str(other), *CPU, match="translate")
    code, out, err = run_wise("text-vae", "evaluate", str(test), "--weights", str(ckpt), "--iw-samples", "6",
                              "--iw-chunk", "3", "--elbo-samples", "2", "--metrics", "both", "--json", *CPU)
    assert code == 0, err
    doc = json.loads(out)
    for k in ("n_sentences", "n_predicted_tokens", "nll_elbo", "nll_iw", "ppl_elbo", "ppl_iw", "recon", "kl",
              "kl_twr", "mi", "au", "au_var"):
        assert k in doc, k
    assert set(doc["as_coded"]) >= {"nll", "ppl", "kl", "mi"} and "not a bound" in doc["as_coded"]["label"]
    assert doc["n_sentences"] == 10 and len(doc["au_var"]) == 4


def test_predict_reconstruct_stdin_keeps_one_line_per_input_line(files):
    _, _, _, ckpt = files
    text = "the ship sails near the island .\n\nthe farmer plows the field .\n"
    code, out, err = run_wise("text-vae", "predict", "--weights", str(ckpt), "--mode", "reconstruct", "-", *CPU,
                              input=text)
    assert code == 0, err
    assert len(out.splitlines()) == 3 and out.splitlines()[1] == ""
    code, out, err = run_wise("text-vae", "predict", "--weights", str(ckpt), "--mode", "encode", "-", "--jsonl", *CPU,
                              input=text)
    assert code == 0, err
    recs = [json.loads(x) for x in out.splitlines()]
    assert len(recs) == 3 and len(recs[0]["mu"]) == 4 and recs[0]["kl"] >= 0


def test_predict_modes_and_errors(files, tmp_path):
    tmp, _, test, ckpt = files
    code, out, err = run_wise("text-vae", "predict", "--weights", str(ckpt), "--mode", "sample", "--n", "5", *CPU)
    assert code == 0 and len(out.splitlines()) == 5, err
    code, out, err = run_wise("text-vae", "predict", "--weights", str(ckpt), "--interpolate", "the ship", "the cow",
                              "--steps", "4", *CPU)
    assert code == 0 and len(out.splitlines()) == 4, err
    npy = tmp_path / "mu.npy"
    code, out, err = run_wise("text-vae", "predict", str(test), "--weights", str(ckpt), "--mode", "encode",
                              "--npy", str(npy), *CPU)
    assert code == 0, err
    import numpy as np

    assert np.load(npy).shape == (10, 4)
    _bad("predict", str(test), "--weights", str(ckpt), "--mode", "encode", "--npy", str(npy), *CPU, match="exists")
    _bad("predict", "--weights", str(ckpt), "--mode", "reconstruct", *CPU, match="needs text files")
    _bad("predict", str(test), *CPU, match="--weights")
    lm = conf._checkpoint(tmp, "lm")
    _bad("predict", str(test), "--weights", str(lm), "--mode", "reconstruct", *CPU, match="language model")


def test_info_json_lists_defaults_corpora_and_deviations(run):
    code, out, err = run_wise("text-vae", "info", "--json", "--weights", str(run))
    assert code == 0, err
    doc = json.loads(out)
    assert doc["defaults"]["train"]["lr"] == 1e-4 and doc["defaults"]["evaluate"]["iw_samples"] == 500
    assert "pydoc" in doc["corpora"] and len(doc["deviations"]) >= 4 and doc["model"]["vocab"] > 4
    _bad("demo", "--corpus", "wordnet", *CPU, match="wordnet") if "wordnet" not in doc["corpora"] else None
    _bad("demo", "--task", "dialogue", "--corpus", "pydoc", *CPU, match="--corpus")


def test_demo_quick_json_is_ok():
    code, out, err = run_wise("text-vae", "demo", "--quick", "--device", "cpu", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["ok"] is True
    assert set(doc["headline"]) == {"kl_twr", "kl_vae", "au_twr", "au_vae", "nll_iw_twr"}
    assert any("not a bound" in (r["note"] or "") for r in doc["rows"])
