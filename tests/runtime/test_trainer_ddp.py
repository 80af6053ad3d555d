"""DistributedDataParallel on CPU (gloo, 2 processes): both ranks end with the same weights, and those
match a single-process run over the same global batches; rank 0 alone writes the run folder."""

from __future__ import annotations

import json
import os

import torch
from conftest import run_ranks
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from wisecli.runtime.trainer import TrainSpec, fit

N, LOCAL_BATCH, WORLD, EPOCHS = 16, 4, 2, 2


def _problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(N, 1, generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    return x, y, model


def _step(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean(), {}


def _train(run_dir, loader, model):
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    spec = TrainSpec(epochs=EPOCHS, run_dir=run_dir, method="demo", arch="mlp", config={}, progress=False)
    return fit(model, opt, loader, _step, spec, device=torch.device("cpu"))


def _worker(rank, folder):
    x, y, model = _problem()
    ds = TensorDataset(x, y)
    loader = DataLoader(ds, batch_size=LOCAL_BATCH, sampler=DistributedSampler(ds, WORLD, rank, shuffle=False))
    res = _train(os.path.join(folder, f"run{rank}"), loader, model)
    torch.save({"state": res.model.state_dict(), "history": res.history}, os.path.join(folder, f"rank{rank}.pt"))


def test_ddp_two_ranks_match_each_other_and_a_single_process(tmp_path):
    run_ranks(_worker, tmp_path, WORLD)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for k in r0["state"]:
        assert torch.equal(r0["state"][k], r1["state"][k]), k

    # one process, the same global batches: rank r takes samples r, r+2, ..., so step k of both ranks
    # together is samples [8k, 8k+8) in order
    x, y, model = _problem()
    single = _train(tmp_path / "single", DataLoader(TensorDataset(x, y), batch_size=LOCAL_BATCH * WORLD), model)
    for k, v in single.model.state_dict().items():
        torch.testing.assert_close(r0["state"][k], v, rtol=1e-5, atol=1e-6)
    # the logged loss is the mean over all ranks' samples
    for a, b in zip(r0["history"], single.history):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-5 * max(1.0, abs(b["train_loss"]))

    # rank 0 alone wrote its run folder
    assert not (tmp_path / "run1").exists()
    lines = (tmp_path / "run0" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(s)["epoch"] for s in lines] == list(range(1, EPOCHS + 1))
    assert json.loads((tmp_path / "run0" / "config.json").read_text())["train"]["world_size"] == WORLD
    assert (tmp_path / "run0" / "checkpoints" / "last.pt").is_file()
