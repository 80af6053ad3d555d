"""CLI contract of `wise leakage` (spec §8, §9): bad input is exit 2 with one Error: line and nothing on stdout,
`--resume` restarts FedAvg at the next round, demo --quick gives ok, evaluate compares reports."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import conformance_module, run_wise

pytestmark = pytest.mark.usefixtures("one_torch_thread")

conf = conformance_module(__file__)
FAST = ["--arch", "mlp", "--set", "width=0.0625", "--n-obs", "48", "--folds", "2", "--families", "linear",
        "--sketch", "8", "--n-sens", "4", "--probes", "2", "--batch-size", "2", "--device", "cpu"]


def _bad(*args):
    code, out, err = run_wise("leakage", *args)
    assert code == 2, (code, err)
    assert out == ""
    lines = [l for l in err.splitlines() if l.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return err


def _npz(tmp_path, name="d.npz", **over):
    rng = np.random.default_rng(0)
    n = 48
    client = np.arange(n) % 4
    arrays = {"X": rng.standard_normal((n, 6)).astype(np.float32), "y": np.arange(n) % 2,
              "s": (client % 2 == 0).astype(np.int64), "client": client}
    arrays.update(over)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    p = tmp_path / name
    np.savez(p, **arrays)
    return p


def test_bad_data(tmp_path):
    assert "no array 's'" in _bad("run", str(_npz(tmp_path, s=None)), *FAST)
    assert "no array 'X'" in _bad("run", str(_npz(tmp_path, "x.npz", X=None)), *FAST)
    assert "no array 'y'" in _bad("run", str(_npz(tmp_path, "y.npz", y=None)), *FAST)
    assert "'s' has 47 values" in _bad("run", str(_npz(tmp_path, "b.npz", s=np.zeros(47, int))), *FAST)
    assert "NaN" in _bad("run", str(_npz(tmp_path, "c.npz", X=np.full((48, 6), np.nan, np.float32))), *FAST)
    assert "one class" in _bad("run", str(_npz(tmp_path, "d1.npz", s=np.zeros(48, int))), *FAST)
    assert "no array 'sex'" in _bad("run", str(_npz(tmp_path, "e.npz")), "--attribute", "sex", *FAST)
    assert "no array 'site'" in _bad("run", str(_npz(tmp_path, "f.npz")), "--client", "site", *FAST)
    assert "fewer than 10 per fold" in _bad("run", str(_npz(tmp_path, "g.npz")), *FAST[:-12], "--folds", "2",
                                            "--n-obs", "30", "--device", "cpu")
    assert "grouped folds" in _bad("run", str(_npz(tmp_path, "h.npz")), *FAST, "--folds", "5")
    assert "not found" in _bad("run", str(tmp_path / "nope.npz"), *FAST)


def test_unreadable_image_is_named(tmp_path):
    (tmp_path / "a.png").write_bytes(b"not a png")
    from wisecli.runtime.io.images import write_image

    write_image(tmp_path / "b.png", np.zeros((8, 8), np.uint8))
    (tmp_path / "t.csv").write_text("path,label,attribute\na.png,0,1\nb.png,1,0\n")
    assert "a.png" in _bad("run", str(tmp_path / "t.csv"), *FAST)


def test_bad_options(tmp_path):
    data = str(_npz(tmp_path))
    assert "--sketch" in _bad("run", data, *FAST, "--sketch", "1")
    assert "--folds" in _bad("run", data, *FAST, "--folds", "1")
    assert "smallest client" in _bad("run", data, *FAST, "--batch-size", "13")
    assert "--probes" in _bad("run", data, *FAST, "--probes", "0")
    assert "did you mean 'head'" in _bad("run", data, *FAST, "--latent-layer", "haed")
    assert "--families" in _bad("run", data, *FAST, "--families", "linaer")
    if not torch.cuda.is_available():
        _bad("run", data, *FAST, "--device", "cuda")


def test_bad_models(tmp_path, monkeypatch):
    data = str(_npz(tmp_path))
    pkg = tmp_path / "mods"
    pkg.mkdir()
    (pkg / "lkmods.py").write_text(
        "import torch\n"
        "def good():\n    return torch.nn.Sequential(torch.nn.Linear(6, 2))\n"
        "def frozen():\n    m = good()\n    [p.requires_grad_(False) for p in m.parameters()]\n    return m\n"
        "def narrow():\n    return torch.nn.Sequential(torch.nn.Linear(6, 1))\n"
        "def notmodule():\n    return 3\n")
    monkeypatch.syspath_prepend(str(pkg))
    assert "cannot import" in _bad("run", data, *FAST, "--model-factory", "nopkg_xyz:make")
    assert "not an nn.Module" in _bad("run", data, *FAST, "--model-factory", "lkmods:notmodule")
    assert "no trainable" in _bad("run", data, *FAST, "--model-factory", "lkmods:frozen")
    assert "out of range" in _bad("run", data, *FAST, "--model-factory", "lkmods:narrow")
    sd = {"0.weight": torch.zeros(2, 6), "extra": torch.zeros(1)}
    torch.save(sd, tmp_path / "w.pt")
    assert "missing 0.bias" in _bad("run", data, *FAST, "--model-factory", "lkmods:good", "--weights", str(tmp_path / "w.pt"))
    assert "unexpected extra" in _bad("run", data, *FAST, "--model-factory", "lkmods:good", "--weights", str(tmp_path / "w.pt"))
    from wisecli.runtime.checkpoints import save_checkpoint

    save_checkpoint(tmp_path / "other.pt", method="reid", arch="x", config={}, state_dict={})
    msg = _bad("run", data, *FAST, "--weights", str(tmp_path / "other.pt"))
    assert "reid" in msg or "classify" in msg


def test_run_writes_the_report_and_resume_restarts_at_the_next_round(tmp_path):
    data = str(_npz(tmp_path))
    out = tmp_path / "run"
    args = ["run", data, "-o", str(out), *FAST, "--fl-rounds", "2", "--local-steps", "2", "--audit-rounds", "1,2",
            "--clients", "4", "--save-features", "--plot", str(tmp_path / "pic.png"), "--json"]
    code, stdout, err = run_wise("leakage", *args)
    assert code == 0, err
    doc = json.loads(stdout)
    assert {r["round"] for r in doc["records"]} == {1, 2}
    for f in ("leakage.json", "leakage.jsonl", "leakage.png", "run.json", "features/round_2.npz", "fedavg/round_2.pt"):
        assert (out / f).is_file(), f
    assert (tmp_path / "pic.png").read_bytes()[:4] == b"\x89PNG"
    full = json.loads((out / "leakage.json").read_text())
    # interrupt after round 1: drop round 2's checkpoint and records, then resume
    (out / "fedavg" / "round_2.pt").unlink()
    lines = [l for l in (out / "leakage.jsonl").read_text().splitlines() if json.loads(l)["round"] == 1]
    (out / "leakage.jsonl").write_text("\n".join(lines) + "\n")
    code, stdout, err = run_wise("leakage", *args, "--resume")
    assert code == 0, err
    again = json.loads(stdout)
    r2 = [r for r in again["records"] if r["round"] == 2]
    r2_full = [r for r in full["records"] if r["round"] == 2]
    assert [r["vinfo_bits"] for r in r2] == pytest.approx([r["vinfo_bits"] for r in r2_full], abs=1e-9)
    assert len(again["records"]) == len(full["records"])
    # refused without --resume/--overwrite
    _bad(*args)
    # evaluate: itself against itself gives zero differences with a CI from the saved features
    code, stdout, err = run_wise("leakage", "evaluate", str(out), "--against", str(out / "leakage.json"), "--json")
    assert code == 0, err
    ev = json.loads(stdout)
    assert all(abs(r["vinfo_diff"]) < 1e-12 and isinstance(r["vinfo_diff_ci95"], list) for r in ev["rows"])


def test_update_observations_sample_level_forest_mlp_and_exact(tmp_path):
    data = str(_npz(tmp_path))
    args = [a for a in FAST]
    args[args.index("linear")] = "linear,mlp,forest,best"
    code, stdout, err = run_wise("leakage", "run", data, *args, "--observe", "update", "--local-steps", "2",
                                 "--property-level", "sample", "--sensitivity", "exact", "--layers", "modules",
                                 "--set", "n_sens=2", "--json")
    assert code == 0, err
    doc = json.loads(stdout)
    fams = {r["family"] for r in doc["records"]}
    assert fams == {"linear", "mlp", "forest", "best"}
    mlp = [r for r in doc["records"] if r["family"] == "mlp"]
    assert mlp and all(np.isfinite(r["vinfo_bits"]) and r["control_bits"] is not None for r in mlp)
    assert all(r["sens_estimator"] == "exact" and r["sens_fro"] >= 0 for r in doc["records"])
    best = [r for r in doc["records"] if r["family"] == "best"]
    for b in best:
        same = [r for r in doc["records"] if r["layer"] == b["layer"] and r["family"] != "best"]
        assert b["vinfo_bits"] == max(r["vinfo_bits"] for r in same)


def test_evaluate_without_features_and_bad_reports(tmp_path):
    rep = conf.write_report(tmp_path / "a" / "leakage.json")
    code, stdout, err = run_wise("leakage", "evaluate", str(rep), "--json")
    assert code == 0, err
    ev = json.loads(stdout)
    assert ev["reports"][0]["vinfo_argmax"] == "a.weight" and ev["reports"][0]["spearman"] == pytest.approx(1.0)
    assert all(r["vinfo_diff_ci95"] == "no CI" for r in ev["rows"])
    (tmp_path / "bad.json").write_text("{}")
    assert "not a leakage report" in _bad("evaluate", str(tmp_path / "bad.json"))


def test_demo_quick_json_is_ok():
    code, stdout, err = run_wise("leakage", "demo", "--quick", "--device", "cpu", "--json")
    assert code == 0, err
    doc = json.loads(stdout)
    assert doc["ok"] and doc["headline"]["best_layer"].split(".")[0] in ("conv1", "conv2")


def test_info_json_lists_defaults():
    code, stdout, err = run_wise("leakage", "info", "--json")
    assert code == 0
    doc = json.loads(stdout)
    assert doc["defaults"]["sketch"] == 256 and "ones-vjp" in doc["sensitivity"]
    assert "mlp" in doc["families"] and "mlp" in doc["choices"] and "missing_families" not in doc


def test_diverged_fedavg_stops_with_exit_1_and_a_hint(tmp_path):
    code, out, err = run_wise("leakage", "run", str(_npz(tmp_path)), *FAST, "--fl-rounds", "3", "--local-steps", "5",
                              "--lr", "1e30", "-o", str(tmp_path / "run"))
    assert code == 1, err
    assert out == "" and "diverged in round" in err and "--lr" in err and "Traceback" not in err


def test_exact_sensitivity_beyond_the_memory_limit_is_refused(tmp_path):
    # |θ_l|·|x|·chunk floats: a 3x64x64 input into an mlp with 12288-wide first weights is far above 8 GiB
    X = np.random.default_rng(0).uniform(0, 1, (48, 3, 64, 64)).astype(np.float32)
    err = _bad("run", str(_npz(tmp_path, X=X)), *FAST, "--sensitivity", "exact")
    assert "exact sensitivity needs" in err and "hutchinson" in err
