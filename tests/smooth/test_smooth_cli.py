"""`wise smooth` CLI contract: §8 bad inputs (exit 2, one Error line, empty stdout), --json, batches, the stream,
and a real /proc recording."""

import csv
import io
import json

import numpy as np
import pytest
from conftest import run_wise

from wisecli.engines.smooth import algorithm as A

# one torch and one BLAS thread for the whole module (conftest's fixture; issue 13.11): nothing asserted depends on it
pytestmark = pytest.mark.usefixtures("one_thread_module")


def write_csv(path, n=200, S=4, seed=0, label=True, start=0):
    rng = np.random.default_rng(seed)
    X = np.cumsum(rng.normal(size=(n, S)), axis=0)
    with open(path, "w") as fh:
        fh.write(",".join(["time", *[f"s{i}" for i in range(S)], *(["label"] if label else [])]) + "\n")
        for i in range(n):
            fh.write(",".join([str(start + i), *(repr(float(v)) for v in X[i]), *(["ab"[(i // 25) % 2]] if label else [])]) + "\n")
    return path


@pytest.fixture
def model(tmp_path):
    write_csv(tmp_path / "train.csv")
    code, out, err = run_wise("smooth", "fit", tmp_path / "train.csv", "--label-col", "label", "-o",
                              tmp_path / "m.json", "--window", "10", "--step", "2", "--blocks", "3", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc) >= {"sensors", "rows", "constant_sensors", "order_head", "seconds", "model"}
    assert doc["sensors"] == 4 and doc["rows"] == 200
    return tmp_path / "m.json"


def bad(*args, match, input=None):
    code, out, err = run_wise(*map(str, args), input=input)
    assert code == 2, (code, err)
    assert out == ""
    assert err.startswith("Error: ") or "\nError: " in err, err
    assert "Traceback" not in err
    assert match in err, err
    return err


def test_fit_bad_inputs(tmp_path):
    write_csv(tmp_path / "short.csv", n=8)
    bad("smooth", "fit", tmp_path / "short.csv", "--label-col", "label", "-o", tmp_path / "m.json",
        "--window", "10", match="fewer than window + 1")
    write_csv(tmp_path / "ok.csv")
    for opt in ("--window", "--step", "--blocks"):
        bad("smooth", "fit", tmp_path / "ok.csv", "--label-col", "label", "-o", tmp_path / "m.json", opt, "0",
            match="at least 1")
    (tmp_path / "uns.csv").write_text("time,a\n0,1\n2,2\n1,3\n")
    bad("smooth", "fit", tmp_path / "uns.csv", "-o", tmp_path / "m.json", match="--sort-time")
    (tmp_path / "dup.csv").write_text("time,a\n0,1\n1,2\n1,3\n")
    bad("smooth", "fit", tmp_path / "dup.csv", "-o", tmp_path / "m.json", match="--dedupe last")
    (tmp_path / "nn.csv").write_text("time,a,b\n0,1,2\n1,2,oops\n")
    bad("smooth", "fit", tmp_path / "nn.csv", "-o", tmp_path / "m.json", match="row 3, column 'b'")
    (tmp_path / "exists.json").write_text("{}")
    bad("smooth", "fit", tmp_path / "ok.csv", "--label-col", "label", "-o", tmp_path / "exists.json",
        match="exists")


def test_run_bad_inputs(tmp_path, model):
    write_csv(tmp_path / "less.csv", S=3)
    bad("smooth", "run", model, tmp_path / "less.csv", "-o", tmp_path / "o", "--device", "cpu",
        match="model sensors missing: s3")
    np.save(tmp_path / "x.npy", np.zeros((50, 5)))
    bad("smooth", "run", model, tmp_path / "x.npy", "-o", tmp_path / "o", "--device", "cpu", match="model has 4")
    (tmp_path / "weird.json").write_text('{"format": "nope"}')
    bad("smooth", "run", tmp_path / "weird.json", tmp_path / "less.csv", match="unknown model format")
    write_csv(tmp_path / "tiny.csv", n=5)
    bad("smooth", "run", model, tmp_path / "tiny.csv", "-o", tmp_path / "o", "--device", "cpu",
        match="fewer than window + 1")
    bad("smooth", "run", model, tmp_path / "tiny.csv", "--window", "0", match="at least 1")


def test_record_bad_inputs(tmp_path, monkeypatch):
    bad("smooth", "record", "-o", tmp_path / "r.csv", "--interval", "0.001", "--samples", "3", match="below 0.01")
    (tmp_path / "old.csv").write_text("time\n")
    bad("smooth", "record", "-o", tmp_path / "old.csv", "--samples", "3", match="--overwrite")
    bad("smooth", "record", "-o", tmp_path / "r.csv", "--workload", "memory:1", "--mem-mb", "100000000",
        match="available memory")
    from wisecli.engines.smooth import record as R

    monkeypatch.setattr(R, "proc_readable", lambda root="/proc": False)
    bad("smooth", "record", "-o", tmp_path / "r.csv", "--samples", "3", match="/proc")


def test_missing_extras(tmp_path, monkeypatch):
    from wisecli.engines.smooth import peers as BL

    monkeypatch.setattr(BL, "have_aeon", lambda: False)
    write_csv(tmp_path / "a.csv")
    bad("smooth", "evaluate", tmp_path / "a.csv", "--label-col", "label", "--methods", "cs:2,minirocket",
        match="aeon")
    bad("smooth", "evaluate", "--dataset", "basicmotions", match="aeon")
    bad("smooth", "demo", "--source", "basicmotions", "--quick", match="aeon")


def test_run_batch_with_a_bad_file_exits_3(tmp_path, model):
    (tmp_path / "in").mkdir()
    write_csv(tmp_path / "in" / "good.csv", seed=4)
    (tmp_path / "in" / "bad.csv").write_text("time,s0,s1,s2,s3\n0,1,2,3,x\n")
    code, out, err = run_wise("smooth", "run", str(model), str(tmp_path / "in"), "-o", str(tmp_path / "o"),
                              "--device", "cpu", "--jsonl", "--format", "npy")
    assert code == 3, err
    recs = [json.loads(line) for line in out.splitlines()]
    status = {r["input"].split("/")[-1]: r["status"] for r in recs}
    assert status == {"bad.csv": "error", "good.csv": "ok"}
    sig = np.load(tmp_path / "o" / "good.sig.npy")
    assert sig.shape == ((200 - 1 - 10) // 2 + 1, 6) and sig.dtype == np.float64
    assert json.loads((tmp_path / "o" / "run.json").read_text())["items"]["failed"] == 1


def test_run_csv_json_preview_and_stream(tmp_path, model):
    write_csv(tmp_path / "new.csv", n=300, seed=9, start=1_700_000_000)
    code, out, err = run_wise("smooth", "run", str(model), str(tmp_path / "new.csv"), "-o", str(tmp_path / "o"),
                              "--device", "cpu", "--preview", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["items"][0]["windows"] == (300 - 1 - 10) // 2 + 1
    assert (tmp_path / "o" / "new.sig.png").read_bytes()[:4] == b"\x89PNG"
    rows = list(csv.reader(open(tmp_path / "o" / "new.sig.csv")))
    assert rows[0][:3] == ["window_end", "time", "signature-block0-avg"] and len(rows[0]) == 2 + 6
    assert rows[1][0] == "10" and float(rows[1][1]) == 1_700_000_010
    code, sout, err = run_wise("smooth", "run", str(model), "-", input=(tmp_path / "new.csv").read_text())
    assert code == 0, err
    srows = list(csv.reader(io.StringIO(sout)))
    assert srows[0] == rows[0] and len(srows) == len(rows)
    np.testing.assert_allclose(np.array(srows[1:], dtype=float), np.array(rows[1:], dtype=float), atol=1e-12)
    # complex output: two real columns per block
    code, cout, err = run_wise("smooth", "run", str(model), "-", "--complex", "--scale", "1e9",
                               input=(tmp_path / "new.csv").read_text())
    c = np.array(list(csv.reader(io.StringIO(cout)))[1:], dtype=float)
    np.testing.assert_allclose(c[:, 2::2], np.array(rows[1:], dtype=float)[:, 2:5] * 1e9, rtol=1e-9)


def test_json_outputs_of_info_evaluate_and_benchmark(tmp_path):
    code, out, err = run_wise("smooth", "info", "--json")
    assert code == 0 and set(json.loads(out)["quirks"]) == {f"Q{i}" for i in range(1, 10)}
    write_csv(tmp_path / "a.csv", n=300)
    code, out, err = run_wise("smooth", "evaluate", str(tmp_path / "a.csv"), "--label-col", "label", "--methods",
                              "cs:2,stats", "--window", "10", "--step", "5", "--repeats", "1", "--json")
    assert code == 0, err
    res = json.loads(out)["results"]
    assert [r["method"] for r in res] == ["cs:2", "stats"]
    assert all(set(r) >= {"method", "signature_len", "f1_weighted", "f1_ci95", "f1_per_class", "us_per_signature",
                          "fit_seconds", "windows", "cv"} for r in res)
    code, out, err = run_wise("smooth", "benchmark", "--sensors", "8", "--windows", "2000", "--blocks", "4",
                              "--device", "cpu", "--json")
    assert code == 0, err
    (rec,) = json.loads(out)["records"]
    assert rec["max_abs_err"] <= 1e-12 and rec["windows"] == 2000 and rec["loop_win_per_s"] > 0


def test_record_writes_real_telemetry(tmp_path):
    out = tmp_path / "rec.csv"
    code, so, err = run_wise("smooth", "record", "-o", str(out), "--interval", "0.1", "--workload", "idle:1.5",
                             "--workload", "cpu:1.5", "--json")
    assert code == 0, err
    doc = json.loads(so)
    assert set(doc) >= {"samples", "sensors", "interval", "late_samples", "labels", "output"}
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == doc["samples"] >= 24
    t = np.array([float(r["time"]) for r in rows])
    assert (np.diff(t) > 0).all()
    rates = [k for k in rows[0] if k.endswith("_per_s") or k.startswith("cpu_")]
    assert len(rates) > 10 and "cpu_idle" in rates and "ctxt_per_s" in rates
    assert all(float(r[k]) >= 0 for r in rows for k in rates if r[k] != "")
    running = {lab: np.mean([float(r["procs_running"]) for r in rows if r["label"] == lab]) for lab in ("idle", "cpu")}
    assert running["cpu"] > running["idle"]
    # the workload processes are gone
    import os

    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            continue
        assert b"kind, deadline, arg = sys.argv" not in cmd


def test_demo_quick_synthetic(tmp_path):
    code, out, err = run_wise("smooth", "demo", "--quick", "--source", "synthetic", "-o", str(tmp_path / "d"),
                              "--device", "cpu", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["ok"] and doc["source"] == "synthetic"
    for name in ("synthetic.csv", "model.json", "signature.png", "results.json"):
        assert (tmp_path / "d" / name).stat().st_size > 0
    from wisecli.engines.smooth.algorithm import load

    m = load(tmp_path / "d" / "model.json")  # the written model loads and has the generator's 64 sensors
    assert isinstance(m, A.Model) and m.n_sensors == 64
