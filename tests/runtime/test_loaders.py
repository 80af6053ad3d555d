"""runtime.loaders: seeded per-epoch batches that cover the data once, ranks' slices partition each global
batch, the last-batch rule (drop_last, or only when smaller than max(2, world)), and the loader's tensors."""

import torch

from wisecli.runtime.loaders import EpochSampler, TensorLoader


def test_epochs_cover_the_data_once_and_reshuffle():
    s = EpochSampler(23, 5, seed=3)
    b1 = s.batches()
    assert [len(b) for b in b1] == [5, 5, 5, 5, 3] and sorted(torch.cat(b1).tolist()) == list(range(23))
    assert [t.tolist() for t in s.batches()] == [t.tolist() for t in b1]  # same epoch, same batches
    s.set_epoch(2)
    assert torch.cat(s.batches()).tolist() != torch.cat(b1).tolist()


def test_last_batch_rules_and_rank_slices():
    assert [len(b) for b in EpochSampler(21, 5, 0).batches()] == [5, 5, 5, 5]  # a last batch of 1 is dropped
    assert [len(b) for b in EpochSampler(23, 5, 0, drop_last=True).batches()] == [5, 5, 5, 5]
    assert [len(b) for b in EpochSampler(3, 5, 0, drop_last=True).batches()] == [3]  # one short batch stays
    one = EpochSampler(20, 8, seed=1).batches()
    ranks = [EpochSampler(20, 8, seed=1, rank=r, world=2).batches() for r in range(2)]
    for g, a, b in zip(one, *ranks):
        assert torch.cat([a, b]).tolist() == g.tolist()
    calls = []
    s = EpochSampler(4, 2, 0)
    s.on_epoch.append(calls.append)
    s.set_epoch(7)
    assert calls == [7] and s.epoch == 7


def test_tensor_loader_yields_the_sampled_rows():
    x, y = torch.arange(40.0).reshape(20, 2), torch.arange(20)
    loader = TensorLoader(x, y, EpochSampler(20, 6, seed=2))
    got = list(loader)
    assert len(got) == len(loader) == 4
    for (xb, yb), idx in zip(got, loader.sampler.batches()):
        assert torch.equal(yb, idx) and torch.equal(xb, x[idx])
