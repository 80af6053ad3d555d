"""`TrainSpec.scheduler_interval`: "step" steps the LR schedule once per optimizer update and resumes at the
same rate; "epoch" (the default) is what it always was."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from wisecli.runtime.trainer import TrainSpec, fit

CPU = torch.device("cpu")


def _step(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean(), {}


def _run(run_dir, epochs, interval, resume=False, seed=0):
    torch.manual_seed(seed)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(20, 3, generator=g)
    loader = DataLoader(TensorDataset(x, x[:, :1]), batch_size=5, shuffle=False)  # 4 batches an epoch
    spec = TrainSpec(epochs=epochs, run_dir=run_dir, method="demo", arch="lin", config={}, progress=False,
                     scheduler_interval=interval, resume=resume)
    fit(model, opt, loader, _step, spec, device=CPU, scheduler=sched)
    return opt, sched


def test_step_interval_steps_once_per_batch_and_resumes_to_the_same_lr(tmp_path):
    opt, sched = _run(tmp_path / "a", 3, "step")
    assert sched.last_epoch == 12  # 3 epochs x 4 batches
    assert abs(opt.param_groups[0]["lr"] - 1.0 / 13) < 1e-12  # the schedule's own closed form, in float64
    _run(tmp_path / "b", 1, "step")
    opt_b, sched_b = _run(tmp_path / "b", 3, "step", resume=True, seed=5)
    assert sched_b.last_epoch == 12 and opt_b.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_epoch_interval_is_unchanged(tmp_path):
    opt, sched = _run(tmp_path / "c", 3, "epoch")
    assert sched.last_epoch == 3 and abs(opt.param_groups[0]["lr"] - 0.25) < 1e-12
    assert TrainSpec(epochs=1, run_dir=None, method="", arch="", config={}).scheduler_interval == "epoch"
