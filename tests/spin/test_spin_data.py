"""Readers and settings of `wise spin`: OVF 2.0 (text, binary 4, binary 8), TOML layering, wall-line relabelling,
an initial state from a file whose lattice does not match, and the evaluate plot."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_wise
from wisecli.cli.errors import InputError
from wisecli.engines.spin import data
from wisecli.engines.spin.synthetic import WALL_MODE_MAP, signs, wall

_spec = importlib.util.spec_from_file_location("spin_conformance", Path(__file__).with_name("conformance.py"))
_conf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_conf)


def _ovf(path, S, fmt):
    L1, L2 = S.shape[1:]
    head = ("# OOMMF OVF 2.0\n# Segment count: 1\n# Begin: Segment\n# Begin: Header\n# meshtype: rectangular\n"
            f"# xnodes: {L1}\n# ynodes: {L2}\n# znodes: 1\n# valuedim: 3\n# End: Header\n# Begin: Data {fmt}\n")
    flat = S.transpose(2, 1, 0).reshape(-1, 3)  # x (a1 index) fastest
    if fmt == "Text":
        body = "\n".join(" ".join(f"{v:.17g}" for v in row) for row in flat).encode() + b"\n"
    else:
        body = np.array([1234567.0], "<f4").tobytes() + flat.astype("<f4").tobytes()
    path.write_bytes(head.encode() + body + f"# End: Data {fmt}\n# End: Segment\n".encode())


@pytest.mark.parametrize("fmt", ["Text", "Binary 4"])
def test_ovf_formats(tmp_path, fmt):
    rng = np.random.default_rng(0)
    S = rng.normal(size=(3, 6, 4))
    S /= np.linalg.norm(S, axis=0)
    _ovf(tmp_path / "s.ovf", S, fmt)
    got = data.read_ovf(tmp_path / "s.ovf")
    assert got.shape == (3, 6, 4)
    assert np.abs(got - S).max() < (1e-15 if fmt == "Text" else 1e-6)  # binary 4 is float32
    data.write_ovf(tmp_path / "b8.ovf", S, 0.2761)
    assert np.array_equal(data.read_ovf(tmp_path / "b8.ovf"), S)
    (tmp_path / "bad.ovf").write_bytes((tmp_path / "b8.ovf").read_bytes()[:300])
    with pytest.raises(InputError):
        data.read_ovf(tmp_path / "bad.ovf")


def test_layers_and_overrides():
    toml = data.parse_toml('[hamiltonian]\nB1 = 0.9\n[lattice]\nsize = [16, 4]\n', "t")
    cfg = data.effective(toml, sets=data.parse_overrides(["hamiltonian.K1=-0.1", "init.modes=2,3"], "--set"))
    assert cfg["hamiltonian.B1"] == 0.9 and cfg["hamiltonian.K1"] == -0.1 and cfg["hamiltonian.Y1"] == 0.05
    assert cfg["init.modes"] == [2, 3] and cfg["lattice.size"] == [16, 4]
    assert data.effective(toml, preset="gs-3q")["hamiltonian.B1"] == 0.9  # the TOML's value beats the preset
    assert data.effective({}, preset="gs-2q")["hamiltonian.Ku"] == -6.0
    assert data.parse_sweep("hamiltonian.B1=0.1,0.2") == ("hamiltonian.B1", [0.1, 0.2])
    back = data.parse_toml(data.to_toml(cfg), "round trip")
    assert data.effective(back) == cfg


def test_wall_lines_are_lattice_relabellings():
    # a1 ↔ a2 mirror maps s1 ↔ s2; the (a1, a1 − a2) basis change maps s1 ↔ s3
    L = 8
    s = signs(L, L)
    assert torch.equal(s[0].T, s[1]) and torch.equal(s[2].T, s[2])
    m, n = np.meshgrid(np.arange(L), np.arange(L), indexing="ij")
    s_mn = {1: (-1.0) ** m, 2: (-1.0) ** n, 3: (-1.0) ** (m + n)}
    # in the primed frame m' = m + n, n' = −n:  s1(m, n) = (−1)^(m'+n') = s3', s3 = (−1)^m' = s1', s2 = s2'
    mp, np_ = m + n, -n
    primed = {1: (-1.0) ** mp, 2: (-1.0) ** np_, 3: (-1.0) ** (mp + np_)}
    for k, kp in WALL_MODE_MAP["a1-a2"].items():
        assert np.array_equal(s_mn[k], primed[kp])
    S = wall(20, 4, (WALL_MODE_MAP["a1"][1], WALL_MODE_MAP["a1"][2]))
    assert torch.equal(S, wall(20, 4, (2, 1)))


def test_init_file_lattice_mismatch_and_evaluate_plot(tmp_path):
    w = _conf.wall_npz(tmp_path / "w.npz", L1=40, L2=4)
    job = tmp_path / "job.toml"
    job.write_text(f'[lattice]\nsize = [24, 4]\n[init]\nkind = "file"\nfile = "{w}"\n[solver]\nsteps = 5\n')
    code, out, err = run_wise("spin", "run", str(job), "-o", str(tmp_path / "out"), "--device", "cpu")
    assert code == 2 and out == "" and "does not match lattice.size" in err
    code, out, err = run_wise("spin", "evaluate", str(w), "--plot", str(tmp_path / "p" / "prof.png"), "--json",
                              "--width-convention", "10-90", "--modes", "1,2")
    assert code == 0, err
    rec = json.loads(out)
    assert rec["convention"] == "10-90" and abs(rec["width_nm"] / rec["delta_nm"] - 2.1972) < 1e-3
    assert (tmp_path / "p" / "prof.png").stat().st_size > 1000
