"""The method contract for smooth (issue 12): the Python API of `run` (batch and stream), strict JSON (inf is
refused, never written as Infinity), a demo that leaves nothing in $TMPDIR, a recording kept on Ctrl-C and
removed on a failed write, and skipped items shown as `skipped`."""

import io
import json
import tempfile

import numpy as np
import pytest
from conftest import run_wise

from wisecli.cli.errors import InputError
from wisecli.engines.smooth import algorithm as A
from wisecli.engines.smooth import api

# one torch and one BLAS thread for the whole module (conftest's fixture; issue 13.11): nothing asserted depends on it
pytestmark = pytest.mark.usefixtures("one_thread_module")


def write_csv(path, n=120, S=3, seed=0):
    rng = np.random.default_rng(seed)
    X = np.cumsum(rng.normal(size=(n, S)), axis=0)
    lines = ["time," + ",".join(f"s{i}" for i in range(S))]
    lines += [f"{i}," + ",".join(repr(float(v)) for v in X[i]) for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def fitted(tmp_path):
    write_csv(tmp_path / "train.csv")
    doc = api.fit([tmp_path / "train.csv"], tmp_path / "m.json", window=8, step=2, blocks=2)
    assert doc["sensors"] == 3
    return tmp_path / "m.json"


def test_api_run_batch_and_stream_agree(tmp_path, fitted):
    data = write_csv(tmp_path / "new.csv", seed=3)
    recs = api.run(fitted, [data], tmp_path / "o", device="cpu")
    assert [r["status"] for r in recs] == ["ok"] and recs[0]["windows"] == (120 - 1 - 8) // 2 + 1
    out = io.StringIO()
    (rec,) = api.run(fitted, ["-"], stdin=io.StringIO(data.read_text()), stdout=out)
    assert rec["samples"] == 120
    got, want = out.getvalue().splitlines(), (tmp_path / "o" / "new.sig.csv").read_text().splitlines()
    assert got[0] == want[0] and len(got) == len(want)
    np.testing.assert_allclose(np.array([r.split(",") for r in got[1:]], dtype=float),
                               np.array([r.split(",") for r in want[1:]], dtype=float), atol=1e-12)
    assert json.loads((tmp_path / "o" / "run.json").read_text())["items"]["total"] == 1
    again = api.run(fitted, [data], tmp_path / "o", device="cpu", skip_existing=True)
    assert [r["status"] for r in again] == ["skipped"]


def test_skipped_items_are_shown(tmp_path, fitted):
    data = write_csv(tmp_path / "new.csv", seed=3)
    args = ["smooth", "run", str(fitted), str(data), "-o", str(tmp_path / "o"), "--device", "cpu"]
    assert run_wise(*args)[0] == 0
    code, out, err = run_wise(*args, "--skip-existing")
    assert code == 0 and "skipped" in out


def test_inf_is_refused_never_written(tmp_path):
    (tmp_path / "inf.csv").write_text("time,a,b\n0,1,2\n1,2,inf\n2,3,4\n3,1,1\n")
    code, out, err = run_wise("smooth", "fit", str(tmp_path / "inf.csv"), "-o", str(tmp_path / "m.json"),
                              "--window", "2", "--step", "1")
    assert code == 2 and out == "" and "row 3, column 'b'" in err
    assert not (tmp_path / "m.json").exists()
    m = A.fit(np.random.default_rng(0).normal(size=(20, 2)), window=3, step=1)
    m.fmax[1] = np.inf
    with pytest.raises(InputError, match="non-finite"):
        A.save(m, tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()
    m.fmax[1] = 1.0
    A.save(m, tmp_path / "m.json")
    assert "Infinity" not in (tmp_path / "m.json").read_text() and "NaN" not in (tmp_path / "m.json").read_text()


def test_demo_leaves_nothing_in_tmpdir(tmp_path, monkeypatch):
    from wisecli.engines.smooth import demo as Dm
    from wisecli.runtime.results import DemoResult, Gate

    seen = []

    def fake(out, **kw):
        (out / "synthetic.csv").write_text("x" * 1000)
        seen.append(out)
        return DemoResult("smooth", [Gate("artefacts written", 1, ">=", 1)], details={"source": kw["source"]})

    monkeypatch.setattr(Dm, "_demo", fake)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = api.demo(quick=True, source="synthetic", device="cpu")
    assert result.ok and seen and seen[0].parent == tmp_path
    assert list(tmp_path.iterdir()) == []


def test_record_kept_on_ctrl_c_and_removed_on_a_failed_write(tmp_path, monkeypatch):
    import errno

    from wisecli.cli.errors import OutputError
    from wisecli.engines.smooth import record as R

    calls = {"n": 0}
    real = R.ProcSampler.row

    def row(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise calls["exc"]
        return real(self, *a, **kw)

    monkeypatch.setattr(R.ProcSampler, "row", row)
    calls["exc"] = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        api.record(tmp_path / "r.csv", samples=50, interval=0.02)
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("time,")  # header + the two samples taken
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"]
    calls.update(n=0, exc=OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(OutputError, match="r2.csv"):
        api.record(tmp_path / "r2.csv", samples=50, interval=0.02)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"]


def test_api_defaults_are_the_clis():
    import inspect

    for verb, table in api.DEFAULTS.items():
        fn = getattr(api, verb.replace("-", "_"))
        assert fn.__doc__ and "Defaults" in fn.__doc__ or verb == "info"
        params = inspect.signature(fn).parameters
        for key in table:
            if key in params:
                assert params[key].default in (None, table[key]), (verb, key)
