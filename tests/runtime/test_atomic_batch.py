import json

import numpy as np
import pytest

from wisecli.cli.errors import InputError, PartialFailure
from wisecli.cli.output import Sink
from wisecli.runtime.batch import BatchOptions, run_batch, stem_of
from wisecli.runtime.io.atomic import atomic_path, refuse_existing, save_npy, write_json
from wisecli.runtime.runrecord import RunRecord


def test_atomic_path_keeps_suffixes_and_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out" / "case1_airway.nii.gz"
    with atomic_path(target) as tmp:
        assert tmp.name.endswith(".nii.gz") and tmp.parent == target.parent and tmp != target
        tmp.write_text("done")
    assert target.read_text() == "done"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert target.read_text() == "done"  # the old file survives an interrupted rewrite
    assert sorted(p.name for p in target.parent.iterdir()) == ["case1_airway.nii.gz"]


def test_writers_round_trip(tmp_path):
    save_npy(tmp_path / "x.npy", np.arange(4))
    assert np.load(tmp_path / "x.npy").tolist() == [0, 1, 2, 3]
    write_json(tmp_path / "d.json", {"a": np.int64(3)})
    assert json.loads((tmp_path / "d.json").read_text()) == {"a": 3}
    with pytest.raises(InputError, match="output exists"):
        refuse_existing(tmp_path / "d.json", overwrite=False)
    refuse_existing(tmp_path / "d.json", overwrite=True)


def test_stem_of(tmp_path):
    assert stem_of("a/case1.nii.gz") == "case1" and stem_of("x.fronts.npz") == "x" and stem_of("b.mha") == "b"
    assert stem_of(tmp_path) == tmp_path.name


def _setup(tmp_path, names):
    items = []
    for n in names:
        p = tmp_path / "in" / f"{n}.txt"
        p.parent.mkdir(exist_ok=True)
        p.write_text(n)
        items.append(p)
    out = tmp_path / "out"
    outputs_for = lambda item: [out / f"{stem_of(item)}.res"]  # noqa: E731
    calls = []

    def process(item):
        calls.append(item.name)
        if item.read_text().startswith("bad"):
            raise ValueError("cannot parse")
        with atomic_path(out / f"{stem_of(item)}.res") as tmp:
            tmp.write_text(item.read_text().upper())
        return {"output": str(out / f"{stem_of(item)}.res"), "metrics": {"n": len(item.read_text())}}

    return items, out, outputs_for, process, calls


def test_batch_records_item_errors_goes_on_and_exits_3(tmp_path, capsys):
    items, out, outputs_for, process, calls = _setup(tmp_path, ["a", "bad1", "c"])
    rec = RunRecord("test run", config={"k": 1}, device="cpu", seed=0, inputs=items, argv=["wise"])
    sink = Sink(jsonl=True)
    with pytest.raises(PartialFailure) as exc:  # the records come back; the sink turns an error into exit 3
        sink.finish(run_batch(items, process, outputs_for=outputs_for, options=BatchOptions(out), sink=sink,
                              run_record=rec))
    assert exc.value.exit_code == 3
    assert calls == ["a.txt", "bad1.txt", "c.txt"]
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["status"] for r in lines] == ["ok", "error", "ok"]
    assert "cannot parse" in lines[1]["error"] and lines[0]["metrics"] == {"n": 1}
    assert (out / "c.res").read_text() == "C" and not (out / "bad1.res").exists()
    run = json.loads((out / "run.json").read_text())
    assert run["items"] == {"total": 3, "failed": 1, "skipped": 0}
    assert run["outputs"] == [str(out / "a.res"), str(out / "c.res")] and run["config"] == {"k": 1}
    assert run["versions"]["torch"]


def test_existing_outputs_refused_before_any_work_then_skip_or_overwrite(tmp_path, capsys):
    items, out, outputs_for, process, calls = _setup(tmp_path, ["a", "b"])
    out.mkdir()
    (out / "b.res").write_text("old")
    with pytest.raises(InputError, match="output exists"):
        run_batch(items, process, outputs_for=outputs_for, options=BatchOptions(out), sink=Sink())
    assert calls == []  # refused before the first item ran
    run_batch(items, process, outputs_for=outputs_for, options=BatchOptions(out, skip_existing=True),
              sink=Sink(jsonl=True))
    assert calls == ["a.txt"] and (out / "b.res").read_text() == "old"
    statuses = [json.loads(x)["status"] for x in capsys.readouterr().out.splitlines()]
    assert sorted(statuses) == ["ok", "skipped"]
    run_batch(items, process, outputs_for=outputs_for, options=BatchOptions(out, overwrite=True), sink=Sink())
    assert (out / "b.res").read_text() == "B"


def test_fail_fast_and_single_input_errors(tmp_path):
    items, out, outputs_for, process, calls = _setup(tmp_path, ["bad0", "b"])
    sink = Sink()
    with pytest.raises(PartialFailure):
        sink.finish(run_batch(items, process, outputs_for=outputs_for, options=BatchOptions(out, fail_fast=True),
                              sink=sink))
    assert calls == ["bad0.txt"]

    def bad_input(item):
        raise InputError("volume is corrupt", hint="re-export it")

    with pytest.raises(InputError, match="corrupt"):  # one input: its defect is exit 2
        run_batch(items[:1], bad_input, outputs_for=outputs_for, options=BatchOptions(out), sink=Sink())
