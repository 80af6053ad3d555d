"""Training smoke and exact resume (spec §9 test 8): both arms, 3 epochs on 256 sklearn digits at 16x16; a run
stopped after epoch 2 and resumed gives the same epoch-3 losses and diagnostics (bank, queue and RNG states
restored from last.pt). Tolerance 1e-5 relative: the same ops in the same order on the same CPU, but the
resumed process may pick other BLAS code paths for the first matmuls."""

from __future__ import annotations

import json
import math

import pytest
import torch

from wisecli.engines.contrastive import train as T
from wisecli.engines.contrastive.data import read_images

CFG = {"arch": "monai-resnet18", "width": 0.0625, "epochs": 3, "batch_size": 32, "lr": 0.12, "tau": 0.2,
       "queue": 65536, "momentum": None, "k": 5, "clusters": 10, "clim_start": 1, "select": None, "mix": "cutmix",
       "resolutions": "auto", "positive_key": "bank", "same_cluster": True, "symmetric": False, "bank_view": "eval",
       "eval_every": 10, "image_size": 16}


@pytest.fixture(scope="module")
def digits():
    ds = read_images("builtin:digits:train", image_size=16)
    ds.X, ds.y = ds.X[:256], ds.y[:256]
    return ds


def _run(ds, run_dir, arm, resume=False):
    with torch.random.fork_rng():
        torch.set_num_threads(1)
        return T.run_one(ds, run_dir, cfg=CFG, arm_name=arm, seed=0, device=torch.device("cpu"), amp=False,
                         resume=resume, overwrite=False, progress=False)


class _Stop(Exception):
    pass


@pytest.mark.parametrize("arm", ["baseline", "clim"])
def test_losses_fall_and_a_resumed_run_repeats_epoch_3(arm, digits, tmp_path, monkeypatch):
    full = _run(digits, tmp_path / "full", arm)["history"]
    assert all(math.isfinite(r["train_loss"]) for r in full)
    # Finding: epoch 1 is scored against MoCo's randomly initialised queue (easy negatives), so its loss is LOWER
    # than later epochs' (e.g. 4.23 -> 5.19 -> 5.14); the spec's "epoch 3 below epoch 1" does not hold at this
    # size. What shows learning: with the queue full of real keys (from epoch 2 on), epoch 3 is below chance,
    # log(K + 1), K = 256 - 32 = 224 negatives.
    assert full[2]["train_loss_inst"] < math.log(224 + 1) - 0.05
    if arm == "clim":
        assert full[2]["train_pos_nonempty"] > 0 and full[2]["train_loss_mix"] > 0 and full[2]["train_loss_mr"] > 0

    real = T.PairLoader.set_epoch

    def stop_at_3(self, epoch):
        if epoch == 3:
            raise _Stop
        return real(self, epoch)

    monkeypatch.setattr(T.PairLoader, "set_epoch", stop_at_3)
    with pytest.raises(_Stop):
        _run(digits, tmp_path / "cut", arm)
    monkeypatch.setattr(T.PairLoader, "set_epoch", real)
    assert len((tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()) == 2
    resumed = _run(digits, tmp_path / "cut", arm, resume=True)["history"]
    keys = [k for k in full[2] if k.startswith("train_")]
    for k in keys:
        a, b = full[2][k], resumed[2][k]
        assert (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-5 * max(1.0, abs(a)), (k, a, b)
    lines = [json.loads(x) for x in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3]
