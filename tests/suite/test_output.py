import json

import numpy as np
import pytest
import torch

from wisecli.cli.output import Sink, dumps


def test_json_handles_numpy_torch_paths_and_nonfinite(tmp_path):
    doc = {"a": np.float32(1.5), "b": np.arange(3), "c": torch.tensor([1.0, 2.0]), "p": tmp_path,
           "n": float("nan"), "t": (1, 2)}
    assert json.loads(dumps(doc)) == {"a": 1.5, "b": [0, 1, 2], "c": [1.0, 2.0], "p": str(tmp_path), "n": None,
                                      "t": [1, 2]}


@pytest.mark.parametrize("mode", ["json", "jsonl", "table"])
def test_data_on_stdout_messages_on_stderr(capsys, mode):
    sink = Sink(json=mode == "json", jsonl=mode == "jsonl")
    sink.info("working")
    sink.warn("careful")
    sink.record({"input": "a", "v": 1})
    sink.record({"input": "b", "v": 2})
    sink.result({"total": 3}, rows=[{"input": "a", "v": 1}, {"input": "b", "v": 2}])
    out, err = capsys.readouterr()
    assert "working" in err and "Warning: careful" in err
    assert "working" not in out and "careful" not in out
    if mode == "json":
        assert json.loads(out) == {"total": 3}
    elif mode == "jsonl":
        assert [json.loads(line) for line in out.splitlines()] == [{"input": "a", "v": 1}, {"input": "b", "v": 2}]
    else:
        assert "input" in out and "b" in out


def test_quiet_silences_info_but_not_data(capsys):
    sink = Sink(json=True, quiet=True)
    sink.info("x")
    sink.result([1, 2])
    out, err = capsys.readouterr()
    assert err == "" and json.loads(out) == [1, 2]


def test_table_cells_round_floats_and_intervals_alike(capsys):
    sink = Sink()
    sink.result({}, rows=[{"bits": 0.6234567891, "ci95": [0.5187654321, 0.7012345678], "vec": [1, 2.5], "d": {"k": 1}}])
    out = capsys.readouterr().out
    assert "0.6235" in out and "[0.5188, 0.7012]" in out and "[1, 2.5]" in out
    assert "0.5187654321" not in out and '{"k": 1}' in out
