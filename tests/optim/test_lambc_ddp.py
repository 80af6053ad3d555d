"""LAMBC under DistributedDataParallel (gloo, 2 CPU processes) through `runtime.trainer.fit`: both ranks end
equal, and equal to one process over the same global batches (spec §9: 1e-6), with the `--faithful` reset
(`ResetOnEpoch`) riding on the sampler's `set_epoch` on every rank."""

from __future__ import annotations

import os

import torch
from conftest import run_ranks
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, SequentialSampler, TensorDataset

from wisecli.optim import LAMBC, ResetOnEpoch
from wisecli.runtime.trainer import TrainSpec, fit

N, LOCAL_BATCH, WORLD, EPOCHS = 16, 4, 2, 2


def _problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, 4, generator=g)
    y = torch.randint(0, 3, (N,), generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))  # no BatchNorm: ranks see other batches
    return x, y, model


def _step(model, batch):
    x, y = batch
    return nn.functional.cross_entropy(model(x), y), {}


def _train(run_dir, ds, sampler, model, batch):
    opt = LAMBC(model.parameters(), lr=0.05, weight_decay=0.01, clip=1.0)
    loader = DataLoader(ds, batch_size=batch, sampler=ResetOnEpoch(sampler, opt))
    spec = TrainSpec(epochs=EPOCHS, run_dir=run_dir, method="demo", arch="mlp", config={}, progress=False)
    return fit(model, opt, loader, _step, spec, device=torch.device("cpu"))


def _worker(rank, folder):
    x, y, model = _problem()
    ds = TensorDataset(x, y)
    res = _train(os.path.join(folder, f"run{rank}"), ds, DistributedSampler(ds, WORLD, rank, shuffle=False), model,
                 LOCAL_BATCH)
    torch.save({"state": res.model.state_dict()}, os.path.join(folder, f"rank{rank}.pt"))


def test_lambc_two_ranks_equal_one_process(tmp_path):
    # one process first: rank r takes samples r, r+2, ...: step k of both ranks together is samples
    # [8k, 8k+8), in order
    x, y, model = _problem()
    ds = TensorDataset(x, y)
    single = _train(tmp_path / "single", ds, SequentialSampler(ds), model, LOCAL_BATCH * WORLD)
    # forked ranks reuse this process's imports (torch, torch._dynamo): seconds instead of tens of seconds
    # for two fresh interpreters on 2 busy cores; they run one thread each (no OpenMP region after fork)
    run_ranks(_worker, tmp_path, WORLD)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)["state"]
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)["state"]
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
    for k, v in single.model.state_dict().items():
        torch.testing.assert_close(r0[k], v, rtol=0, atol=1e-6)
