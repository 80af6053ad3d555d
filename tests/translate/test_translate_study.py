"""`wise translate study`: the grid is the one the spec lists (§9: baseline vs multi-view over seeds, α ∈ {0.5, 1,
2} at seed 1; our no-KL / no-aux-CE ablations), the hash splits are disjoint and fixed, a tiny study writes one
result line per run with test hypotheses aligned to the test split, a rerun skips finished runs and a lost result
line is rebuilt from the finished run folder with the same score (resume), and a folder made with another step
budget or too little data is refused (exit 2)."""

from __future__ import annotations

import json

import pytest

from wisecli.engines.translate.data import in_valid_split
from wisecli.engines.translate.study import settings, split
from wisecli.engines.translate.synthetic import pairs
from wisecli.runtime import bleu


pytestmark = pytest.mark.usefixtures("one_torch_thread_module")


CPU = ["--device", "cpu"]


def test_grid_is_the_spec_list():
    g = {s["setting"]: s for s in settings("all", 3)}
    assert list(g) == ["baseline", "multi-view", "alpha-0.5", "alpha-2", "no-kl", "no-aux-ce"]
    assert g["baseline"]["seeds"] == g["multi-view"]["seeds"] == [1, 2, 3]
    assert g["baseline"]["train"] == {"views": 1}
    assert [g[k]["train"]["kl_alpha"] for k in ("alpha-0.5", "multi-view", "alpha-2")] == [0.5, 1.0, 2.0]
    assert (g["no-kl"]["train"]["kl_alpha"], g["no-kl"]["train"]["aux_weight"]) == (0.0, 1.0)
    assert (g["no-aux-ce"]["train"]["kl_alpha"], g["no-aux-ce"]["train"]["aux_weight"]) == (1.0, 0.0)
    assert all(g[k]["seeds"] == [1] for k in ("alpha-0.5", "alpha-2", "no-kl", "no-aux-ce"))
    assert [s["setting"] for s in settings("claim", 2)] == ["baseline", "multi-view"]


def test_splits_are_disjoint_hash_bands():
    s, t = pairs(3000, seed=2)
    parts = split(s, t)
    src = {k: set(v[0]) for k, v in parts.items()}
    assert not (src["train"] & src["test"]) and not (src["train"] & src["valid"]) and not (src["valid"] & src["test"])
    assert sum(len(v[0]) for v in parts.values()) == 3000
    assert all(in_valid_split(x, 5.0) for x in parts["test"][0])          # the 5 % band of data.in_valid_split
    assert not any(in_valid_split(x, 5.0) for x in parts["valid"][0])
    assert all(in_valid_split(x, 7.0) for x in parts["valid"][0])         # the next 2 %
    assert 0.03 < len(parts["test"][0]) / 3000 < 0.07
    assert split(s[::-1], t[::-1])["test"][0] == parts["test"][0][::-1]    # order-free membership


def test_tiny_study_writes_resumes_and_refuses(wise, tmp_path):
    out = tmp_path / "st"
    args = ["translate", "study", "-o", str(out), "--synthetic", "100", "--steps", "2", "--seeds", "1",
            "--grid", "claim", *CPU]
    code, stdout, err = wise(*args, "--json")
    assert code == 0, err
    doc = json.loads(stdout)
    lines = (out / "results.jsonl").read_text().splitlines()
    assert [json.loads(x)["setting"] for x in lines] == ["baseline", "multi-view"]
    test_ref = (out / "data" / "test.tgt").read_text().splitlines()
    assert doc["data"]["pairs"]["test"] == len(test_ref) > 0
    for line in lines:
        rec = json.loads(line)
        hyp = (out / "runs" / f"{rec['setting']}-s1" / "test.hyp").read_text().splitlines()
        assert len(hyp) == len(test_ref)
        assert abs(rec["bleu"] - bleu.corpus_bleu(hyp, [test_ref])["score"]) < 1e-9
        assert rec["steps"] == 2
    rows = {r["setting"]: r for r in doc["rows"]}
    assert rows["baseline"]["bootstrap_p"] is None and 0 < rows["multi-view"]["bootstrap_p"] <= 1
    assert doc["claim"]["bleu_holds"] == (rows["multi-view"]["bleu"] >= rows["baseline"]["bleu"])
    assert (out / "summary.md").read_text().count("| multi-view |") == 1
    # rerun: nothing retrained; a lost result line is rebuilt from the finished run (same test BLEU)
    mv = json.loads(lines[1])
    (out / "results.jsonl").write_text(lines[0] + "\n")
    code, stdout, err = wise(*args, "--json")
    assert code == 0, err
    again = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [r["setting"] for r in again] == ["baseline", "multi-view"]
    assert again[1]["bleu"] == mv["bleu"] and again[1]["steps"] == mv["steps"]
    assert "starting at epoch 1" not in err                                  # resumed from last.pt, not retrained
    # another step budget in the same folder, and too little data: exit 2, nothing on stdout
    for bad, match in ((["--steps", "3"], "another profile, step budget or data"), (["--synthetic", "12"], "too few")):
        a = list(args)
        i = a.index(bad[0])
        a[i + 1] = bad[1]
        code, stdout, err = wise(*a)
        assert code == 2 and stdout == "" and match in err and "Hint:" in err, err
