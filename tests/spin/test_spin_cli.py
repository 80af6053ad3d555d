"""`wise spin` on the command line: spec §8's bad inputs (exit 2, one Error line, empty stdout), a batch with a
wall-less file (exit 3, the others evaluated), run outputs and `demo --quick`."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_wise

_spec = importlib.util.spec_from_file_location("spin_conformance", Path(__file__).with_name("conformance.py"))
_conf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_conf)
LLG, wall_npz = _conf.LLG, _conf.wall_npz

WALL = """[lattice]
size = [{L}, 4]
pinned_rows = {rows}
[init]
kind = "wall"
modes = {modes}
[solver]
max_torque = 1e-3
steps = 50
"""


def _bad(tmp_path, text, *extra, verb="run", needle=""):
    p = tmp_path / "job.toml"
    p.write_text(text)
    code, out, err = run_wise("spin", verb, str(p), "-o", str(tmp_path / "out"), "--device", "cpu", *extra)
    assert code == 2, err
    assert out == ""
    assert err.count("Error:") == 1 and "Hint:" in err and "Traceback" not in err
    assert needle in err, err
    assert not (tmp_path / "out").exists()
    return err


@pytest.mark.parametrize("text,extra,needle", [
    ("[lattice\nsize = [4, 4]\n", (), "not valid TOML"),
    ("[lattice]\nsise = [4, 4]\n", (), "did you mean 'lattice.size'"),
    ("[hamiltonian]\npreset = 'mnre'\n", (), "unknown preset"),
    (LLG.format(steps=5).replace("[4, 4]", "[5, 4]"), (), "odd"),
    (LLG.format(steps=5).replace("[4, 4]", "[2, 4]"), (), "< 4 along a periodic axis"),
    (WALL.format(L=40, rows=4, modes="[2, 2]"), (), "two different modes"),
    (WALL.format(L=12, rows=4, modes="[1, 2]"), (), "2·pinned_rows + 8"),
    (LLG.format(steps=5).replace("steps = 5", "steps = 5\ndt_fs = 3.0"), (), "time step too large"),
    (LLG.format(steps=5).replace("steps = 5", "steps = 5\nalpha = -0.1"), (), "alpha"),
    (LLG.format(steps=5).replace("steps = 5", "steps = 5\ntemperature_K = -1.0"), (), "temperature_K"),
    (LLG.format(steps=5).replace("steps = 5", "steps = 5\ntemperature_K = 10.0"), (), "sib"),
    ("[hamiltonian]\nthree_site = 'square'\n", (), "three_site"),
    (LLG.format(steps=5), ("--set", "hamiltonian.B2=1"), "did you mean 'hamiltonian.B1'"),
    (LLG.format(steps=5), ("--sweep", "hamiltonian.B1=a,b"), "must be float"),
])
def test_run_bad_inputs(tmp_path, text, extra, needle):
    _bad(tmp_path, text, *extra, needle=needle)


def test_force_overrides_the_time_step_check(tmp_path):
    p = tmp_path / "job.toml"
    p.write_text(LLG.format(steps=2).replace("steps = 2", "steps = 2\ndt_fs = 3.0"))
    code, out, err = run_wise("spin", "run", str(p), "-o", str(tmp_path / "out"), "--device", "cpu", "--force", "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "ok"


def test_run_writes_its_outputs_and_sweeps(tmp_path):
    p = tmp_path / "llg.toml"
    p.write_text(LLG.format(steps=10))
    code, out, err = run_wise("spin", "run", str(p), "-o", str(tmp_path / "out"), "--device", "cpu", "--json",
                              "--sweep", "hamiltonian.B1=0.5,0.7", "--ovf")
    assert code == 0, err
    doc = json.loads(out)
    assert [j["job"] for j in doc["jobs"]] == ["llg-B1-0.5", "llg-B1-0.7"]
    for j in ("llg-B1-0.5", "llg-B1-0.7"):
        d = tmp_path / "out" / j
        for f in ("spins.npz", "energies.jsonl", "texture.png", "run.json", "spins.ovf"):
            assert (d / f).is_file(), f
        with np.load(d / "spins.npz") as z:
            assert z["spins"].shape == (3, 4, 4) and int(z["step"]) == 10 and str(z["lattice"]) == "triangular-axial"
            assert abs(np.linalg.norm(z["spins"], axis=0) - 1).max() < 1e-5
        lines = [json.loads(x) for x in (d / "energies.jsonl").read_text().splitlines()]
        assert [r["step"] for r in lines] == [0, 5, 10] and "B1" in lines[0]["E_terms"]
    # the two systems differ only in B1: E_B1 term scales with it
    e = [json.loads((tmp_path / "out" / j / "energies.jsonl").read_text().splitlines()[0])["E_terms"]["B1"]
         for j in ("llg-B1-0.5", "llg-B1-0.7")]
    assert abs(e[1] / e[0] - 0.7 / 0.5) < 1e-9
    # OVF round trip
    from wisecli.engines.spin.data import read_ovf

    with np.load(tmp_path / "out" / "llg-B1-0.5" / "spins.npz") as z:
        assert np.abs(read_ovf(tmp_path / "out" / "llg-B1-0.5" / "spins.ovf") - z["spins"]).max() == 0.0
    # an existing output is refused
    code, out, err = run_wise("spin", "run", str(p), "-o", str(tmp_path / "out"), "--device", "cpu",
                              "--sweep", "hamiltonian.B1=0.5,0.7")
    assert code == 2 and out == "" and "output exists" in err


def test_run_toml_on_stdin_and_resume(tmp_path):
    code, out, err = run_wise("spin", "run", "-", "-o", str(tmp_path / "out"), "--device", "cpu", "--json",
                              input=LLG.format(steps=10))
    assert code == 0, err
    assert json.loads(out)["jobs"][0]["steps"] == 10
    code, out, err = run_wise("spin", "run", "-", "-o", str(tmp_path / "out"), "--device", "cpu", "--json",
                              "--resume", "--steps", "20", input=LLG.format(steps=10))
    assert code == 0, err
    assert json.loads(out)["jobs"][0]["steps"] == 20
    with np.load(tmp_path / "out" / "stdin" / "spins.npz") as z:
        assert int(z["step"]) == 20 and abs(float(z["time_ps"]) - 0.01) < 1e-12


def test_evaluate_bad_files(tmp_path):
    bad = {
        "nokey.npz": dict(other=np.zeros(3)),
        "shape.npz": dict(spins=np.zeros((2, 4, 4))),
        "nan.npz": dict(spins=np.full((3, 8, 4), np.nan)),
        "norm.npz": dict(spins=np.full((3, 8, 4), 0.5)),
    }
    for name, arrays in bad.items():
        np.savez(tmp_path / name, **arrays)
        code, out, err = run_wise("spin", "evaluate", str(tmp_path / name), "--device", "cpu")
        assert code == 2 and out == "" and err.count("Error:") == 1 and "Hint:" in err, (name, err)
    assert "--renormalize" in err
    code, out, err = run_wise("spin", "evaluate", str(tmp_path / "norm.npz"), "--device", "cpu", "--renormalize")
    assert code == 2 and "no rotational-domain wall" in err  # a uniform texture, now readable, has no wall


def test_evaluate_batch_with_a_wall_less_file(tmp_path):
    a = wall_npz(tmp_path / "a.npz")
    b = wall_npz(tmp_path / "b.npz", with_wall=False)
    c = wall_npz(tmp_path / "c.npz", delta_rows=6.0)
    code, out, err = run_wise("spin", "evaluate", str(a), str(b), str(c), "--device", "cpu", "--json")
    assert code == 3, err
    items = json.loads(out)["items"]
    assert [i["status"] for i in items] == ["ok", "error", "ok"]
    row = np.sqrt(3) / 2 * 0.2761
    # the analytic wall has |n_1|² = cos²φ = ½(1 − tanh(x/δ)) up to the plaquette average: δ ≈ 4 resp. 6 rows
    assert abs(items[0]["delta_nm"] / row - 4.0) < 0.3 and abs(items[2]["delta_nm"] / row - 6.0) < 0.3
    assert items[0]["modes"] == [1, 2]


def test_demo_quick_ok():
    code, out, err = run_wise("spin", "demo", "--quick", "--device", "cpu", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["ok"] and doc["method"] == "spin"
    assert abs(doc["headline"]["width_nm"] - 2.0) < 0.3


def test_nan_stops_the_job_and_keeps_the_last_good_snapshot(tmp_path):
    # a field of 1e30 T overflows float32 in the first step (--force skips the time-step check that would refuse it)
    p = tmp_path / "nan.toml"
    p.write_text(LLG.format(steps=10).replace("[init]", "[hamiltonian]\nB_T = [1.0, 0.0, 1e30]\n[init]"))
    code, out, err = run_wise("spin", "run", str(p), "-o", str(tmp_path / "out"), "--device", "cpu", "--force")
    assert code == 1 and out == "" and "NaN" in err and "Traceback" not in err
    with np.load(tmp_path / "out" / "nan" / "spins.npz") as z:
        assert int(z["step"]) == 0 and np.isfinite(z["spins"]).all()
