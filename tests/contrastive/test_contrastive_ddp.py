"""DDP on CPU (spec §9 test 9): two gloo processes run one CLIM step on different halves of a batch; the keys and
indices are all-gathered, so the bank, the queue (with its indices) and the positive table built from the bank
are identical on both ranks afterwards."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

SCRIPT = r"""
import os, sys, torch, torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
torch.set_num_threads(1)
dist.init_process_group("gloo")
rank = dist.get_rank()
from wisecli.engines.contrastive.model import MoCo
torch.manual_seed(0)
m = MoCo(arch="monai-resnet18", in_channels=1, image_size=16, n_bank=16, queue=8, k=3, width=0.0625,
         select="center", mix="cutmix", resolutions=(8,))
g = torch.Generator().manual_seed(1)
X = torch.randint(0, 256, (16, 1, 16, 16), generator=g, dtype=torch.uint8)
m.bank.copy_(torch.nn.functional.normalize(torch.randn(16, 128, generator=g), dim=1).half())
net = DistributedDataParallel(m)
torch.manual_seed(10 + rank)  # each rank draws its own views
idx = torch.arange(4) + 4 * rank
loss, _ = net({"x": X[idx], "xp": X[(idx + 1) % 16], "idx": idx, "pidx": (idx + 1) % 16})
loss.backward()
m.prepare_epoch(True, 3, seed=0, epoch=2)
torch.save({k: getattr(m, k).clone() for k in ("bank", "queue", "queue_idx", "table")}, sys.argv[1] + f".{rank}")
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_bank_queue_and_table_agree_on_both_ranks(tmp_path):
    script = tmp_path / "step.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "state"
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          str(script), str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    a, b = torch.load(f"{out}.0"), torch.load(f"{out}.1")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert sorted(a["queue_idx"].tolist()) == list(range(8))  # both ranks' 4 keys each, gathered
    assert (a["table"] >= -1).all() and a["table"].shape == (16, 3)
