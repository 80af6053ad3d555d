"""runtime.demo_weights: the shipped-weights format every quick demo that cannot train in 15 s uses."""

from pathlib import Path

import numpy as np
import pytest
import torch

import wisecli
from wisecli.runtime import demo_weights


def test_round_trip_keeps_values_float32_and_integer_buffers(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2)).double()
    net[1].num_batches_tracked += 7
    p = demo_weights.save(tmp_path / "w.npz", {"net": net.state_dict(), "norm": {"mean": [0.5, 0.25]}},
                          {"recipe": {"seed": 3}, "trained_on": "nothing"})
    meta, groups = demo_weights.load(p)
    assert meta["recipe"] == {"seed": 3} and meta["trained_on"] == "nothing" and meta["torch"] == torch.__version__
    assert groups["net"]["0.weight"].dtype == torch.float32
    assert groups["net"]["1.num_batches_tracked"].dtype == torch.int64
    assert groups["norm"]["mean"].tolist() == [0.5, 0.25]
    fresh = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    demo_weights.load_into(fresh, groups["net"])
    assert not fresh.training and int(fresh[1].num_batches_tracked) == 7
    torch.testing.assert_close(fresh[0].weight, net[0].weight.float())
    assert demo_weights.describe(p)["trained_on"] == "nothing"


def test_missing_or_corrupt_files_load_as_none_and_a_wrong_model_raises(tmp_path):
    assert demo_weights.load(tmp_path / "none.npz") is None
    p = demo_weights.save(tmp_path / "w.npz", {"net": torch.nn.Linear(3, 2).state_dict()}, {"recipe": {}})
    with pytest.raises(RuntimeError):
        demo_weights.load_into(torch.nn.Linear(4, 2), demo_weights.load(p)[1]["net"])
    p.write_bytes(p.read_bytes()[:40])
    assert demo_weights.load(p) is None


def test_refuses_over_the_size_limit(tmp_path):
    big = {"w": np.zeros(demo_weights.MAX_BYTES // 4 + 1, np.float32)}
    with pytest.raises(ValueError, match="MB limit"):
        demo_weights.save(tmp_path / "w.npz", {"g": big}, {})
    assert not (tmp_path / "w.npz").exists()


def test_every_shipped_file_is_small_and_says_what_it_was_trained_on():
    shipped = sorted(Path(wisecli.__file__).parent.rglob("demo_weights.npz"))
    assert shipped, "no shipped demo weights found"
    for p in shipped:
        assert p.stat().st_size <= demo_weights.MAX_BYTES, p
        meta, groups = demo_weights.load(p)
        assert meta.get("recipe") and meta.get("trained_on"), p
        assert groups, p
