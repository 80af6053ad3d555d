"""`torchrun --nproc-per-node 2 -m wisecli classify train` (gloo, CPU) equals one process on a BN-free MLP: the global
batch is split over the ranks and DDP averages the gradients, so the weights and the records agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from wisecli.runtime.checkpoints import load_checkpoint


@pytest.mark.slow
def test_two_process_gloo_equals_one_process(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 16)
    X = (rng.normal(size=(48, 5)) + 2 * np.eye(3, 5)[y]).astype(np.float32)
    np.savez(tmp_path / "f.npz", X=X, y=y, X_val=X[::4], y_val=y[::4])
    common = ["classify", "train", str(tmp_path / "f.npz"), "--arch", "mlp", "--epochs", "2", "--batch-size", "8",
              "--optimizer", "lambc", "--device", "cpu", "--no-progress", "-q", "--set", "threads=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "wisecli", *common, "-o", str(tmp_path / "one")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "wisecli", *common,
                          "-o", str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=180)
    assert two.returncode == 0, two.stderr[-3000:]
    a = load_checkpoint(tmp_path / "one" / "checkpoints" / "last.pt", method="classify")["state_dict"]
    b = load_checkpoint(tmp_path / "two" / "checkpoints" / "last.pt", method="classify")["state_dict"]
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k  # fp32 sums in another order
    ra = [json.loads(ln) for ln in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    rb = [json.loads(ln) for ln in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert [r["val_bal_acc"] for r in ra] == [r["val_bal_acc"] for r in rb]
    assert ra[-1]["train_loss"] == pytest.approx(rb[-1]["train_loss"], abs=1e-5)
