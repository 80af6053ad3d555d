"""`TrainSpec.patience`: early stopping after N epochs without a strict improvement of the monitor."""

from __future__ import annotations

import json

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from wisecli.runtime.trainer import TrainSpec, fit


def _loader():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 2, generator=g)
    return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4)


def _step(model, batch):
    x, y = batch
    loss = ((model(x) - y) ** 2).mean()
    return loss, {}


def _run(tmp_path, values, patience, epochs=10, resume=False):
    """A run whose monitor follows the scripted `values` (one per epoch)."""
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def validate(m, epoch):
        return {"score": values[epoch - 1]}

    spec = TrainSpec(epochs=epochs, run_dir=tmp_path, method="t", arch="a", config={}, amp=False,
                     monitor="val_score", mode="min", progress=False, patience=patience, resume=resume)
    return fit(model, opt, _loader(), _step, spec, device=torch.device("cpu"), validate=validate)


def _lines(tmp_path):
    return [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]


def test_patience_two_stops_after_two_epochs_without_improvement(tmp_path):
    # best at epoch 3 (1.0); epoch 4 equal (no strict improvement), epoch 5 worse: stop after epoch 5
    values = [3.0, 2.0, 1.0, 1.0, 1.5, 0.1, 0.1, 0.1, 0.1, 0.1]
    res = _run(tmp_path, values, patience=2)
    assert [r["epoch"] for r in res.history] == [1, 2, 3, 4, 5]
    assert res.stopped_early and res.best_epoch == 3 and res.best_metric == 1.0
    assert res.history[-1]["early_stop"] is True
    assert all("early_stop" not in r for r in res.history[:-1])
    recs = _lines(tmp_path)
    assert len(recs) == 5 and recs[-1]["early_stop"] is True


def test_no_patience_runs_every_epoch_and_adds_no_key(tmp_path):
    values = [3.0, 2.0, 1.0, 1.0, 1.5, 2.0]
    res = _run(tmp_path, values, patience=None, epochs=6)
    assert len(res.history) == 6 and not res.stopped_early
    assert all("early_stop" not in r for r in res.history)


def test_resume_after_an_early_stop_trains_no_further(tmp_path):
    values = [1.0, 2.0, 3.0, 0.5, 0.5, 0.5]
    res = _run(tmp_path, values, patience=2, epochs=6)
    assert [r["epoch"] for r in res.history] == [1, 2, 3]
    again = _run(tmp_path, values, patience=2, epochs=6, resume=True)
    assert [r["epoch"] for r in again.history] == [1, 2, 3] and again.stopped_early
    assert len(_lines(tmp_path)) == 3


def test_patience_counts_on_across_a_resume(tmp_path):
    values = [1.0, 2.0, 3.0, 4.0, 0.5, 0.5]
    _run(tmp_path, values, patience=3, epochs=2)          # best at 1, one stale epoch so far
    res = _run(tmp_path, values, patience=3, epochs=6, resume=True)
    assert [r["epoch"] for r in res.history] == [1, 2, 3, 4] and res.stopped_early
