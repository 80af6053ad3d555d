"""DDP on CPU (spec §9 test 9): two gloo ranks run one CLIM step on different halves of a batch; the keys and
indices are all-gathered, so the bank, the queue (with its indices) and the positive table built from the bank
are identical on both ranks afterwards."""

from __future__ import annotations

import os

import torch
from conftest import run_ranks


def _worker(rank, folder):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from wisecli.engines.contrastive.model import MoCo

    dist.init_process_group("gloo")
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
    torch.save({k: getattr(m, k).clone() for k in ("bank", "queue", "queue_idx", "table")},
               os.path.join(folder, f"state.{rank}"))


def test_bank_queue_and_table_agree_on_both_ranks(tmp_path):
    run_ranks(_worker, tmp_path, 2)
    a, b = (torch.load(tmp_path / f"state.{r}", weights_only=True) for r in (0, 1))
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert sorted(a["queue_idx"].tolist()) == list(range(8))  # both ranks' 4 keys each, gathered
    assert (a["table"] >= -1).all() and a["table"].shape == (16, 3)
