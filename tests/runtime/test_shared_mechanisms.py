"""The shared mechanisms of the method contract: run folders, result types, the race, streamed atomic files,
hashes, in-memory training and progress lines without a terminal."""

from __future__ import annotations

import hashlib
import math
import time

import pytest
import torch

from wisecli.cli.errors import InputError, OutputError
from wisecli.runtime import progress as progress_mod
from wisecli.runtime.bench import race, versions
from wisecli.runtime.io.atomic import atomic_path, open_atomic, sha256_file
from wisecli.runtime.results import BenchRecord, DemoResult, Gate
from wisecli.runtime.rundir import last_checkpoint, made_dir, prepare_run_dir
from wisecli.runtime.trainer import fit_in_memory


def test_run_dir_rule(tmp_path):
    run = tmp_path / "run"
    assert prepare_run_dir(run) == run and run.is_dir()           # new: created
    assert prepare_run_dir(run) == run                            # empty: used as it is
    (run / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(InputError, match="not empty"):
        prepare_run_dir(run)
    with pytest.raises(InputError, match="exclude"):
        prepare_run_dir(run, resume=True, overwrite=True)
    assert prepare_run_dir(run, resume=True) == run and (run / "metrics.jsonl").exists()
    assert last_checkpoint(run) is None
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.pt").write_bytes(b"x")
    assert last_checkpoint(run) == run / "checkpoints" / "last.pt"
    prepare_run_dir(run, overwrite=True)
    assert run.is_dir() and not any(run.iterdir())
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        prepare_run_dir(tmp_path / "file")


def test_made_dir_removes_only_what_it_made_and_left_empty(tmp_path):
    target = tmp_path / "a" / "b" / "c"
    with pytest.raises(RuntimeError):
        with made_dir(target):
            assert target.is_dir()
            raise RuntimeError("work failed")
    assert not (tmp_path / "a").exists()
    keep = tmp_path / "k"
    with pytest.raises(RuntimeError):
        with made_dir(keep / "sub"):
            (keep / "sub" / "partial.txt").write_text("x")
            raise RuntimeError
    assert (keep / "sub" / "partial.txt").exists()   # never deletes files
    with made_dir(tmp_path / "ok") as p:
        pass
    assert p.is_dir()


def test_gates_and_demo_result():
    assert Gate("acc", 0.9, ">=", 0.9).ok and not Gate("acc", 0.89, ">=", 0.9).ok
    assert Gate("err", 0.1, "<", 0.2).ok and not Gate("err", 0.2, "<", 0.2).ok
    assert not Gate("nan", math.nan, "<=", 1.0).ok and not Gate("nan", math.nan, ">=", 0.0).ok
    res = DemoResult("m", [Gate("a", 1, ">=", 0), Gate("b", 5, "<=", 4)], headline={"a": 1.0})
    doc = res.as_dict()
    assert not res.ok and doc["ok"] is False and [g["ok"] for g in doc["gates"]] == [True, False]
    assert DemoResult("m", [Gate("a", 1, ">=", 0)]).ok


def test_race_times_both_and_reports_the_ratio():
    def slow():
        time.sleep(0.02)
        return 2

    rec = race("case", lambda: 2, slow, device="cpu", peer_name="sleeper", repeats=2, warmup=0,
               check=lambda a, b: {"same": a == b}, n=5)
    assert isinstance(rec, BenchRecord)
    doc = rec.as_dict()
    assert doc["case"] == "case" and doc["peer"] == "sleeper" and doc["same"] is True and doc["n"] == 5
    assert doc["peer_s"] >= 0.02 and doc["ours_s"] < doc["peer_s"]
    assert doc["speedup"] == pytest.approx(doc["peer_s"] / doc["ours_s"])
    alone = race("alone", lambda: 1, None, device="cpu", peer_name="none").as_dict()
    assert alone["peer_s"] is None and alone["speedup"] is None
    assert versions()["torch"] == torch.__version__


def test_open_atomic_streams_and_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "rows.csv"
    with open_atomic(out) as fh:
        fh.write("a,b\n")
        assert not out.exists()          # nothing under the final name while writing
    assert out.read_text() == "a,b\n"
    with pytest.raises(ValueError):
        with open_atomic(out) as fh:
            fh.write("half")
            raise ValueError
    assert out.read_text() == "a,b\n" and sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv"]


def test_atomic_path_turns_a_read_only_folder_into_an_output_error(tmp_path, monkeypatch):
    import errno
    import os

    def refuse(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OutputError, match="No space left") as exc:
        with atomic_path(tmp_path / "x.txt") as tmp:
            tmp.write_text("data")
    assert exc.value.exit_code == 1 and list(tmp_path.iterdir()) == []


def test_sha256_file_matches_hashlib(tmp_path):
    data = bytes(range(256)) * 9000
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f", chunk=1000) == hashlib.sha256(data).hexdigest()


def test_fit_in_memory_learns_a_line_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 64).unsqueeze(1)
    y = 3 * x - 1
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    loader = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    res = fit_in_memory(model, opt, loader, lambda m, b: (torch.nn.functional.mse_loss(m(b[0]), b[1]), {}),
                        epochs=40, device=torch.device("cpu"))
    assert len(res.history) == 40 and res.history[-1]["train_loss"] < 1e-4
    assert model.weight.item() == pytest.approx(3, abs=1e-2) and model.bias.item() == pytest.approx(-1, abs=1e-2)
    assert list(tmp_path.iterdir()) == []


def test_progress_without_a_terminal_prints_a_line_every_interval(monkeypatch, capsys):
    monkeypatch.setattr(progress_mod, "LOG_EVERY_S", 0.0)
    with progress_mod.progress("fronts", 3) as advance:
        for _ in range(3):
            advance()
    assert capsys.readouterr().err.splitlines() == ["fronts: 1/3", "fronts: 2/3", "fronts: 3/3"]
    monkeypatch.setattr(progress_mod, "LOG_EVERY_S", 3600.0)
    with progress_mod.progress("slow", 3) as advance:
        advance()
    assert capsys.readouterr().err == ""


def test_made_dir_under_a_file_is_an_output_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="cannot create folder"):
        with made_dir(tmp_path / "f" / "out"):
            pass


def test_checkpoint_errors_say_what_is_wrong_in_our_words(tmp_path):
    import random

    import numpy as np

    from wisecli.runtime.checkpoints import load_checkpoint

    rng = random.Random(0)
    bad = tmp_path / "r.pt"
    for _ in range(20):  # random bytes fail in many ways inside torch.load (zip, pickle, IndexError, ...)
        bad.write_bytes(bytes(rng.randrange(256) for _ in range(500)))
        with pytest.raises(InputError, match="corrupt or not a checkpoint"):
            load_checkpoint(bad, method="m")
    torch.save({"x": np.arange(3)}, tmp_path / "o.pt")  # numpy arrays are not allowed under weights_only
    with pytest.raises(InputError, match="objects other than tensors") as exc:
        load_checkpoint(tmp_path / "o.pt", method="m")
    assert "weights_only=False" not in exc.value.message + (exc.value.hint or "")
