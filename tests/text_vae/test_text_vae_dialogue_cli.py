"""The dialogue command line of text-vae: a small real `train --task dialogue` run (DailyDialog; the JSONL and
SwDA readers are unit-tested in test_text_vae_dialogue.py),
`predict --mode respond` (one record per context, `--n-samples` responses each, equal to the engine's
`respond` with the same seed), the `evaluate --json` schema of a dialogue model, and §8's refusals (exit 2, an
Error line and a Hint, empty stdout)."""

from __future__ import annotations

import json

import pytest

from conftest import conformance_module, run_wise

conf = conformance_module(__file__)
SIZE = ["--emb", "8", "--hidden", "8", "--z-dim", "2", "--batch-size", "32", "--no-progress", "--device", "cpu"]


pytestmark = pytest.mark.usefixtures("one_torch_thread_module")


def _bad(*args, match: str, input: str | None = None):
    code, out, err = run_wise("text-vae", *args, input=input)
    assert code == 2, err
    assert out == ""
    assert "Error:" in err and "Hint:" in err and "Traceback" not in err
    assert match in err, err


@pytest.fixture(scope="module")
def dlg(tmp_path_factory):
    from wisecli.engines.text_vae.synthetic import dialogue_examples

    tmp = tmp_path_factory.mktemp("dlg")
    recs, _ = dialogue_examples(40, seed=2)
    dd = lambda rs: "".join(" __eou__ ".join(r["context"] + [r["response"]]) + " __eou__\n" for r in rs)  # noqa: E731
    (tmp / "train.txt").write_text(dd(recs[:30]))
    (tmp / "test.txt").write_text(dd(recs[30:]))
    (tmp / "train.jsonl").write_text("".join(json.dumps({"context": r["context"], "response": r["response"]}) + "\n"
                                             for r in recs[:30]))
    code, out, err = run_wise("text-vae", "train", str(tmp / "train.txt"), "--task", "dialogue", "--format",
                              "dailydialog", "--epochs", "1", "-o", str(tmp / "run"), *SIZE, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["task"] == "dialogue" and doc["epochs"] == 1 and doc["model"] == "twr"
    rec = json.loads((tmp / "run" / "metrics.jsonl").read_text().splitlines()[0])
    for k in ("train_loss", "train_recon", "train_kl", "train_kl_twr", "val_nll_elbo", "val_ppl_elbo", "val_kl"):
        assert k in rec, k
    return tmp


def test_respond_one_record_per_context_as_the_engine(dlg):
    import torch

    from wisecli.engines.text_vae import dialogue as G
    from wisecli.engines.text_vae.predict import load_model

    ctx = [{"context": ["hello", "tell me about the ship"]}, {"context": ["hi there"], "floors": [0]}]
    stdin = "".join(json.dumps(c) + "\n" for c in ctx)
    code, out, err = run_wise("text-vae", "predict", "--weights", str(dlg / "run"), "--mode", "respond",
                              "--n-samples", "3", "--seed", "4", "--device", "cpu", "--jsonl", "-", input=stdin)
    assert code == 0, err
    recs = [json.loads(x) for x in out.splitlines() if x.strip()]
    assert [r["line"] for r in recs] == [1, 2] and all(len(r["responses"]) == 3 for r in recs)
    assert recs[0]["floors"] == [1, 0] and recs[1]["floors"] == [0]
    model, vocab, _ = load_model(dlg / "run", torch.device("cpu"))
    ex = [G.Example(c["context"], r["floors"], "") for c, r in zip(ctx, recs)]
    want = G.respond(model, vocab, ex, n_samples=3, generator=torch.Generator().manual_seed(4))
    assert [r["responses"] for r in recs] == want


def test_evaluate_dialogue_json_schema(dlg):
    vec = dlg / "vec.txt"
    vec.write_text("".join(f"{w} {i % 3 + 1} {i % 5 - 2} 1\n" for i, w in enumerate(["the", "ship", "i", "love"])))
    code, out, err = run_wise("text-vae", "evaluate", "--weights", str(dlg / "run"), str(dlg / "test.txt"),
                              "--n-samples", "2", "--elbo-samples", "1", "--metrics", "both", "--device", "cpu",
                              "--embeddings", str(vec), "--json")
    assert code == 0, err
    doc = json.loads(out)
    n_ex = sum(len(r.split("__eou__")) - 2 for r in (dlg / "test.txt").read_text().splitlines())
    assert doc["task"] == "dialogue" and doc["n_examples"] == n_ex and doc["n_samples"] == 2
    assert doc["format"] == "dailydialog"  # the run's training format
    for k in ("average", "extrema", "greedy"):
        assert -1 <= doc[f"emb_{k}_precision"] <= doc[f"emb_{k}_recall"] <= 1
    for k in ("nll_elbo", "ppl_elbo", "recon", "kl", "kl_twr", "distinct1", "distinct2", "distinct1_inter",
              "distinct2_intra", "avg_len"):
        assert k in doc, k
    for n in range(1, 5):
        assert 0 <= doc[f"bleu{n}_precision"] <= doc[f"bleu{n}_recall"] <= 1
    assert doc["nll_elbo"] >= doc["recon"] - 1e-6 and "method 7" in doc["as_coded"]["label"]


def test_dialogue_bad_inputs(dlg, tmp_path):
    train = str(dlg / "train.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"context": ["a"], "response": "b"}) + "\n{oops\n")
    out = ["-o", str(tmp_path / "r"), *SIZE, "--epochs", "1"]
    _bad("train", str(bad), "--task", "dialogue", "--format", "jsonl", *out, match="bad.jsonl:2")
    _bad("train", train, "--format", "jsonl", *out, match="dialogue format")
    _bad("train", train, "--task", "dialogue", "--format", "jsonl", "--kl-scope", "last1", *out, match="--kl-scope")
    _bad("train", train, "--task", "dialogue", "--format", "jsonl", "--model", "lm", *out, match="not lm")
    assert not (tmp_path / "r").exists()
    run = str(dlg / "run")
    _bad("predict", "--weights", run, "--mode", "respond", "-", input="{\"context\": []}\n", match="stdin:1")
    _bad("predict", "--weights", run, "--mode", "reconstruct", "-", input="a line\n", match="only answers")
    _bad("predict", "--weights", run, "--mode", "respond", str(dlg / "train.jsonl"), "-o", str(tmp_path / "o"),
         match="stdout")
    _bad("evaluate", "--weights", run, str(dlg / "test.txt"), "--embeddings", str(bad), match="bad.jsonl:1")
    lm = str(conf._checkpoint(tmp_path))
    _bad("predict", "--weights", lm, "--mode", "respond", "-", input="{\"context\": [\"hi\"]}\n",
         match="needs a dialogue model")
    vec = tmp_path / "v.txt"
    vec.write_text("the 1 2\n")
    _bad("evaluate", "--weights", lm, str(conf._text(tmp_path, "t.txt", 5)), "--embeddings", str(vec),
         match="language model")


def test_dialogue_resume_continues_and_refuses_other_settings(dlg):
    args = ["train", str(dlg / "train.txt"), "--task", "dialogue", "--format", "dailydialog", "-o", str(dlg / "run"),
            "--resume"]
    code, out, err = run_wise("text-vae", *args, *SIZE, "--epochs", "2", "--json")
    assert code == 0, err
    assert json.loads(out)["epochs"] == 2
    size = [x if x != "8" or i != SIZE.index("--hidden") + 1 else "9" for i, x in enumerate(SIZE)]
    _bad(*args, *size, "--epochs", "3", match="other model settings")
