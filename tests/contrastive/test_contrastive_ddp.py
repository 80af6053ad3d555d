"""DDP on CPU (spec §9 test 9): two gloo ranks run one CLIM step on different halves of a batch; the keys and
indices are all-gathered, so the bank, the queue (with its indices) and the positive table built from the bank
are identical on both ranks afterwards. Shuffling BN across ranks: the keys each rank gets back equal a
one-process oracle that permutes the whole batch, normalises each rank's share of it as its own BN batch and
unpermutes."""

from __future__ import annotations

import os

import pytest
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
    # shuffling BN: keys of this rank's 4 views with a fixed permutation of the gathered 8
    views = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(20 + rank))
    perm = torch.tensor([5, 2, 7, 0, 3, 6, 1, 4])
    state_k = {k: v.clone() for k, v in m.encoder_k.state_dict().items()}
    keys = m.keys(views, perm=perm)
    torch.save({"views": views, "keys": keys, "state_k": state_k}, os.path.join(folder, f"keys.{rank}"))
    net = DistributedDataParallel(m)
    torch.manual_seed(10 + rank)  # each rank draws its own views
    idx = torch.arange(4) + 4 * rank
    loss, _ = net({"x": X[idx], "xp": X[(idx + 1) % 16], "idx": idx, "pidx": (idx + 1) % 16})
    loss.backward()
    m.prepare_epoch(True, 3, seed=0, epoch=2)
    torch.save({k: getattr(m, k).clone() for k in ("bank", "queue", "queue_idx", "table")},
               os.path.join(folder, f"state.{rank}"))


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("contrastive_ddp")
    run_ranks(_worker, folder, 2)
    return folder


def test_bank_queue_and_table_agree_on_both_ranks(ranks):
    tmp_path = ranks
    a, b = (torch.load(tmp_path / f"state.{r}", weights_only=True) for r in (0, 1))
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert sorted(a["queue_idx"].tolist()) == list(range(8))  # both ranks' 4 keys each, gathered
    assert (a["table"] >= -1).all() and a["table"].shape == (16, 3)


def test_shuffling_bn_across_ranks_equals_a_one_process_permute_normalise_unpermute(ranks):
    from wisecli.engines.contrastive.model import MoCo

    tmp_path = ranks
    a, b = (torch.load(tmp_path / f"keys.{r}", weights_only=True) for r in (0, 1))
    ref = MoCo(arch="monai-resnet18", in_channels=1, image_size=16, n_bank=16, queue=8, k=3, width=0.0625)
    ref.encoder_k.load_state_dict(a["state_k"])
    ref.encoder_k.train()
    v = torch.cat([a["views"], b["views"]])
    perm = torch.tensor([5, 2, 7, 0, 3, 6, 1, 4])
    with torch.no_grad():
        shuffled = torch.cat([ref.encoder_k(v[perm[:4]]), ref.encoder_k(v[perm[4:]])])  # rank r's BN batch
    expect = shuffled[torch.argsort(perm)]
    got = torch.cat([a["keys"], b["keys"]])
    assert torch.allclose(got, expect, atol=1e-5)  # same float32 ops, other summation order at most
    with torch.no_grad():
        plain = torch.cat([ref.encoder_k(v[:4]), ref.encoder_k(v[4:])])
    assert not torch.allclose(got, plain, atol=1e-3)  # the shuffle changed which images share BN statistics
