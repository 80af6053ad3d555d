"""CLI contract of `wise bandit` (spec §8): each bad input is one `Error:` line, a `Hint:`, exit 2 and nothing on
stdout; --jsonl parses; --skip-existing resumes a run cut after 2 records; evaluate's refusals and checks."""

import json

import pytest

from conftest import run_wise

RUN = ["bandit", "run", "--device", "cpu", "--horizon", "4", "--replicates", "2", "--arms", "3", "--curve-points", "4"]


@pytest.mark.parametrize("extra, words", [
    (["--dim", "0"], "--dim"),
    (["--arms", "1"], "arms"),
    (["--kappa", "4.0"], "--kappa"),
    (["--theta-norm", "-1"], "--theta-norm"),
    (["--kappa", "50", "--theta-norm", "2"], "not both"),
    (["--horizon", "0"], "--horizon"),
    (["--replicates", "0"], "--replicates"),
    (["--delta", "1.5"], "--delta"),
    (["--delta", "0"], "--delta"),
    (["--algos", "ofulog"], "did you mean 'ofulog-r'"),
    (["--algos", "ofulog-r", "--arm-set", "ball"], "ball"),
    (["--env", "wine", "--dim", "14"], "features"),
    (["--curve-points", "9"], "--curve-points"),
    (["--device", "cuda"], "cuda"),
])
def test_bad_run_inputs(tmp_path, extra, words):
    pytest.importorskip("torch")
    import torch

    if extra[:2] == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("CUDA present")
    code, out, err = run_wise(*RUN, "-o", str(tmp_path / "o"), *extra)
    assert code == 2, err
    assert out == ""
    lines = [ln for ln in err.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and "Hint:" in err
    assert words.lower() in err.lower()
    assert not (tmp_path / "o").exists()


def test_jsonl_streams_records_and_skip_existing_resumes(tmp_path):
    out = tmp_path / "o"
    code, stdout, err = run_wise(*RUN, "--algos", "gloc,ol2m,ts-laplace", "-o", str(out), "--jsonl")
    assert code == 0, err
    recs = [json.loads(line) for line in stdout.splitlines()]
    assert len(recs) == 6 and {r["algo"] for r in recs} == {"gloc", "ol2m", "ts-laplace"}
    full = (out / "curves.jsonl").read_text().splitlines()
    # cut the run after 2 records, as an interrupted run leaves it, then resume
    (out / "curves.jsonl").write_text("\n".join(full[:2]) + "\n")
    code, stdout, err = run_wise(*RUN, "--algos", "gloc,ol2m,ts-laplace", "-o", str(out), "--skip-existing", "--json")
    assert code == 0, err
    assert "gloc: all 2 replicates present" in err
    again = (out / "curves.jsonl").read_text().splitlines()
    strip = [{k: v for k, v in json.loads(x).items() if k != "wall_s"} for x in again]
    assert strip == [{k: v for k, v in json.loads(x).items() if k != "wall_s"} for x in full]
    doc = json.loads(stdout)
    assert doc["algorithms"]["ol2m"]["n"] == 2
    # a non-empty folder without --skip-existing/--overwrite is refused
    code, stdout, err = run_wise(*RUN, "--algos", "gloc", "-o", str(out))
    assert code == 2 and stdout == "" and "not empty" in err


def test_evaluate_refusals_and_order(tmp_path):
    from conftest import conformance_module

    _curves = conformance_module(__file__)._curves

    path = _curves(tmp_path)
    code, out, err = run_wise("bandit", "evaluate", str(path), "--reference", "ofulog-r", "--json", "--bootstrap", "200")
    assert code == 0, err
    doc = json.loads(out)
    row = [r for r in doc["rows"] if r["algo"] == "glm-ucb"][0]
    assert row["paired"] is True and row["diff_vs_ref"] > 0 and row["n"] == 3
    code, out, err = run_wise("bandit", "evaluate", str(path), "--expect-order", "ofulog-r<glm-ucb", "--bootstrap", "200")
    assert code == 0, err
    code, out, err = run_wise("bandit", "evaluate", str(path), "--expect-order", "glm-ucb<ofulog-r", "--bootstrap", "200")
    assert code == 1
    for args, words in [(["--reference", "ecolog"], "--reference"), (["--at", "11"], "horizon")]:
        code, out, err = run_wise("bandit", "evaluate", str(path), *args)
        assert code == 2 and out == "" and words in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text(path.read_text().splitlines()[0] + "\n{oops\n")
    code, out, err = run_wise("bandit", "evaluate", str(bad))
    assert code == 2 and out == "" and "bad.jsonl:2" in err
    other = tmp_path / "other.jsonl"
    other.write_text(path.read_text().replace('"dim": 2', '"dim": 3'))
    code, out, err = run_wise("bandit", "evaluate", str(path), str(other))
    assert code == 2 and "different environments" in err
    code, out, err = run_wise("bandit", "evaluate", str(path), str(other), "--group-by", "env", "--json")
    assert code == 0 and len({r["group"] for r in json.loads(out)["rows"]}) == 2
    code, out, err = run_wise("bandit", "evaluate", "-", "--json", input=path.read_text())
    assert code == 0 and json.loads(out)["rows"]


def test_info_json_lists_defaults():
    code, out, err = run_wise("bandit", "info", "--json", "--device", "cpu")
    assert code == 0
    doc = json.loads(out)
    assert doc["defaults"]["kappa"] == 400.0 and "ball" in doc["arm_sets"] and doc["peer_logbexp"] in (True, False)


def test_nan_replicate_is_recorded_as_error_and_exit_3(tmp_path, monkeypatch):
    import numpy as np

    from wisecli.engines.bandit import predict

    real = predict.simulate

    def poisoned(algo, env, **kw):
        out = real(algo, env, **kw)
        out["regret"][1, 2] = np.nan  # replicate 1 goes bad; replicate 0 stays
        return out

    monkeypatch.setattr(predict, "simulate", poisoned)
    code, out, err = run_wise(*RUN, "--algos", "gloc", "-o", str(tmp_path / "o"), "--json")
    assert code == 3
    recs = [json.loads(x) for x in (tmp_path / "o" / "curves.jsonl").read_text().splitlines()]
    assert [r["status"] for r in recs] == ["ok", "error"] and recs[1]["final_regret"] is None
    assert json.loads(out)["algorithms"]["gloc"]["errors"] == 1
    assert (tmp_path / "o" / "summary.json").is_file() and (tmp_path / "o" / "run.json").is_file()
