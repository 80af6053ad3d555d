"""CLI contract of `wise lattice`: every §8 bad input exits 2 with one `Error:` line, a hint and empty stdout,
before any file is written; the patent note is in `info` and only there (and in runs that use the ROM:
test_lattice_cwrom);
`demo --quick --json` is ok; `run --json` parses and writes the spec's files."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from conftest import conformance_module  # noqa: E402

lattice_file = conformance_module(__file__).lattice_file

from wisecli.engines.lattice import api  # noqa: E402

SMALL = ["--nx", "2", "--ny", "1", "--mesh", "2", "--device", "cpu"]


def _bad(wise, *args, match=None):
    code, out, err = wise(*args)
    assert code == 2, (code, out, err)
    assert out == ""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("Error: ")]
    assert len(errors) == 1 and any(ln.startswith("Hint: ") for ln in lines), err
    assert "Traceback" not in err
    if match:
        assert match in errors[0], errors[0]
    return err


@pytest.mark.parametrize("verb", ["run", "train", "evaluate", "demo", "info", "benchmark"])
def test_help(wise, verb):
    code, out, _ = wise("lattice", verb, "--help")
    assert code == 0 and "Usage" in out


@pytest.mark.parametrize("args, match", [
    (["--nx", "0"], None), (["--ny", "0"], None), (["--mesh", "1"], "--mesh"),
    (["--joint-width", "0.6"], "--joint-width"), (["--joint-width", "0.3", "--mesh", "4"], "elements long"),
    (["--volume", "1.5"], "--volume"), (["--volume", "1"], "--volume"), (["--penal", "0.5"], "--penal"),
    (["--modes", "2"], "--modes"), (["--modes", "7"], "--modes"),  # 2(m−1) = 2 at --mesh 2: no ROM
    (["--solver", "cwrom"], "--rom"), (["--solver", "sc"], "--rom"),
    (["--precond", "mg"], "multigrid"), (["--design", "uniform:1.5"], "uniform"),
    (["--resume"], "-o"), (["--nx", "100000", "--ny", "100000"], "too large"),
])
def test_bad_run_options(wise, tmp_path, args, match):
    _bad(wise, "lattice", "run", *SMALL, *args, match=match)


def test_rom_solver_without_the_optional_component(wise, tmp_path, monkeypatch):
    lib = tmp_path / "lib.pt"
    lib.write_bytes(b"x")
    monkeypatch.setattr(api, "cwrom_installed", lambda: False)  # as after removing cwrom/ (the subprocess test in
    err = _bad(wise, "lattice", "run", *SMALL, "--solver", "cwrom", "--rom", str(lib), match="not installed")
    assert "patent" in err.lower()  # test_lattice_independence blocks the import itself)
    _bad(wise, "lattice", "train", "--mesh", "3", "-o", str(tmp_path / "t"), match="not installed")


def test_rom_library_that_is_not_one(wise, tmp_path):
    lib = tmp_path / "lib.pt"
    lib.write_bytes(b"x")
    _bad(wise, "lattice", "run", *SMALL[:4], "--mesh", "3", "--solver", "cwrom", "--rom", str(lib), match="corrupt")
    torch.save({"format": "wisecli/1", "method": "classify", "state_dict": {}}, lib)
    _bad(wise, "lattice", "run", *SMALL[:4], "--mesh", "3", "--solver", "sc", "--rom", str(lib), match="classify")


def test_cuda_without_cuda_and_direct_on_gpu(wise):
    if torch.cuda.is_available():
        _bad(wise, "lattice", "run", *SMALL[:-2], "--device", "cuda", "--linear-solver", "direct", match="CPU only")
    else:
        _bad(wise, "lattice", "run", *SMALL[:-2], "--device", "cuda", match="cuda")


def _doc(tmp_path):
    return json.loads(lattice_file(tmp_path).read_text())


def _mutations():
    def unknown(d):
        d["struts"].append([0, 99])

    def nonadjacent(d):
        d["struts"].append([0, 5])

    def duplicate(d):
        d["struts"].append(list(reversed(d["struts"][0])))

    def nosupport(d):
        d["supports"] = []

    def busy_support(d):
        d["supports"].append({"node": 0, "face": "right", "dofs": "xy"})

    def busy_load(d):
        d["loads"] = [{"node": 0, "face": "top", "force": [0, -1]}]

    def loose(d):
        d["nodes"].append([5, 5])

    def garbage(d):
        d["nodes"] = "abc"

    return [("unknown", unknown, "unknown node"), ("nonadjacent", nonadjacent, "non-adjacent"),
            ("duplicate", duplicate, "duplicates"), ("nosupport", nosupport, "no supports"),
            ("busy-support", busy_support, "holds a strut"), ("busy-load", busy_load, "holds a strut"),
            ("loose", loose, "not connected"), ("garbage", garbage, "nodes")]


@pytest.mark.parametrize("name, mutate, match", _mutations(), ids=[m[0] for m in _mutations()])
def test_bad_lattice_files(wise, tmp_path, name, mutate, match):
    doc = copy.deepcopy(_doc(tmp_path))
    mutate(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    _bad(wise, "lattice", "run", "--lattice", str(path), "--mesh", "2", "--device", "cpu", "-o", str(tmp_path / "o"),
         match=match)
    assert not (tmp_path / "o").exists()


def test_refuses_a_folder_holding_a_run(wise, tmp_path):
    out = tmp_path / "o"
    code, _, err = wise("lattice", "run", *SMALL, "--max-iter", "2", "-o", str(out))
    assert code == 0, err
    _bad(wise, "lattice", "run", *SMALL, "--max-iter", "2", "-o", str(out), match="not empty")
    code, _, err = wise("lattice", "run", *SMALL, "--max-iter", "2", "-o", str(out), "--overwrite")
    assert code == 0, err


def test_run_json_and_files(wise, tmp_path):
    out = tmp_path / "o"
    code, stdout, err = wise("lattice", "run", *SMALL, "--max-iter", "3", "-o", str(out), "--json")
    assert code == 0, err
    doc = json.loads(stdout)
    assert doc["iterations"] == 3 and abs(doc["volume"] - 0.3) < 1e-8 and doc["compliance"] > 0
    assert {p.name for p in out.iterdir()} == {"design.npz", "history.jsonl", "design.png", "run.json", "design.json",
                                               "design.vtk"}
    run = json.loads((out / "run.json").read_text())
    assert "patent_notice" not in run and "patent" not in err.lower()


def test_info_carries_the_patent_note(wise):
    code, out, _ = wise("lattice", "info", "--json")
    doc = json.loads(out)
    assert code == 0 and "US11514210B2" in doc["patent_notice"] and doc["cwrom_installed"] is True
    code, out, _ = wise("lattice", "info")
    assert code == 0 and "US11514210B2" in out.replace("\n", "")


def test_evaluate_fom_solver_accuracy(wise, tmp_path):
    code, out, err = wise("lattice", "evaluate", *SMALL, "--designs", "uniform:0.3,random:2", "--repeats", "1", "--json")
    assert code == 0, err
    recs = json.loads(out)
    assert [r["design"] for r in recs] == ["uniform:0.3", "random#0", "random#1"]
    for r in recs:
        assert r["solver"] == "pcg (twolevel)" and r["rel_err_compliance"] < 1e-8 and r["rel_err_energy"] < 1e-4


def test_demo_quick_json_ok(wise):
    code, out, err = wise("lattice", "demo", "--quick", "--device", "cpu", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["ok"] is True and doc["headline"]["iterations"] == 40
    assert abs(doc["headline"]["volume"] - 0.3) < 1e-8


def test_api_defaults_are_the_spec_defaults():
    d = api.DEFAULTS["run"]
    assert (d["nx"], d["ny"], d["mesh"], d["volume"], d["penal"], d["max_iter"], d["tol"]) == (16, 8, 8, 0.3, 3.0, 200, 0.01)
    assert d["solver"] == "fom" and d["linear_solver"] == "auto"


def test_unconverged_pcg_stops_the_run_with_its_residual(wise, tmp_path, monkeypatch):
    from wisecli.engines.lattice import fem

    real = fem.pcg
    monkeypatch.setattr(fem, "pcg", lambda *a, **k: real(*a, **{**k, "max_iter": 25}))
    out = tmp_path / "o"
    code, stdout, err = wise("lattice", "run", *SMALL, "--linear-solver", "pcg", "--precond", "jacobi", "-o", str(out))
    assert code == 1 and stdout == "" and "did not converge" in err and "Traceback" not in err
    last = json.loads((out / "history.jsonl").read_text().splitlines()[-1])
    assert "error" in last and last["rel_residual"] > 1e-8
