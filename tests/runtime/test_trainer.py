"""The training loop: metrics.jsonl against direct computations, LR schedules, clipping, checkpoints that
load with weights_only=True, best.pt on the monitor, and a resumed run that ends bit-identical."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from wisecli.cli.errors import WorkFailed
from wisecli.runtime.trainer import TrainSpec, fit

CPU = torch.device("cpu")


def _data(n=10, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(n, 1, generator=g)
    return x, y


def _mse_step(model, batch):
    x, y = batch
    err = model(x) - y
    return (err ** 2).mean(), {"mae": err.abs().mean()}


def _spec(tmp_path, **kw):
    base = dict(epochs=3, run_dir=tmp_path / "run", method="demo", arch="linear", config={"lr": 0.1},
                progress=False)
    base.update(kw)
    return TrainSpec(**base)


def _records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_epoch_means_are_sample_weighted_over_uneven_batches(tmp_path):
    x, y = _data(10)
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # weights stay put: the means have a direct oracle
    loader = DataLoader(TensorDataset(x, y), batch_size=4)  # batches of 4, 4, 2
    res = fit(model, opt, loader, _mse_step, _spec(tmp_path, epochs=1), device=CPU)
    with torch.no_grad():
        err = model(x) - y
    rec = res.history[0]
    assert rec["train_loss"] == pytest.approx(float((err ** 2).mean()), rel=1e-6)
    assert rec["train_mae"] == pytest.approx(float(err.abs().mean()), rel=1e-6)
    assert rec["samples_per_s"] > 0 and rec["seconds"] > 0
    # no validate: the default monitor falls back to train_loss
    assert res.best_epoch == 1 and res.best_metric == rec["train_loss"]


def test_run_folder_metrics_lr_schedule_and_checkpoints(tmp_path):
    x, y = _data(12)
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    loader = DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True)
    seen = []

    def validate(m, epoch):
        assert not m.training and not torch.is_grad_enabled()
        return {"loss": float(((m(x) - y) ** 2).mean()), "val_r": 1.0 * epoch}

    res = fit(model, opt, loader, _mse_step, _spec(tmp_path, epochs=5), device=CPU, scheduler=sched,
              validate=validate, on_epoch_end=lambda e, r: seen.append(e),
              checkpoint_extra=lambda: {"classes": ["a", "b"]})
    run = tmp_path / "run"
    recs = _records(run)
    assert recs == res.history and seen == [1, 2, 3, 4, 5]
    assert [r["epoch"] for r in recs] == [1, 2, 3, 4, 5]
    assert set(recs[0]) == {"epoch", "train_loss", "train_mae", "val_loss", "val_r", "lr", "seconds", "samples_per_s"}
    assert [r["lr"] for r in recs] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    assert recs[-1]["train_loss"] < recs[0]["train_loss"]
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["method"] == "demo" and cfg["config"] == {"lr": 0.1} and cfg["train"]["monitor"] == "val_loss"
    # best.pt is the epoch with the lowest val_loss, and holds that epoch's weights
    best_epoch = min(recs, key=lambda r: r["val_loss"])["epoch"]
    assert res.best_epoch == best_epoch and res.best_metric == pytest.approx(recs[best_epoch - 1]["val_loss"])
    last = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert last["format"] == "wisecli/1" and last["epoch"] == 5 and last["classes"] == ["a", "b"]
    assert set(last) >= {"optimizer", "scheduler", "rng", "history", "best", "state_dict", "metrics"}
    assert best["epoch"] == best_epoch and "optimizer" not in best
    for k, v in model.state_dict().items():
        assert torch.equal(last["state_dict"][k], v)


def test_monitor_max_and_plateau_scheduler(tmp_path):
    x, y = _data(8)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=0)
    scores = {1: 0.2, 2: 0.9, 3: 0.5, 4: 0.4}
    res = fit(model, opt, DataLoader(TensorDataset(x, y), batch_size=4), _mse_step,
              _spec(tmp_path, epochs=4, monitor="val_score", mode="max"), device=CPU, scheduler=sched,
              validate=lambda m, e: {"score": scores[e]})
    assert res.best_epoch == 2 and res.best_metric == 0.9
    assert torch.load(tmp_path / "run/checkpoints/best.pt", weights_only=True)["epoch"] == 2
    # plateau: no improvement after epoch 2 halves the rate for epochs 4 and again after
    assert [r["lr"] for r in res.history] == pytest.approx([0.1, 0.1, 0.1, 0.05])


def test_gradient_clipping_bounds_the_update_norm(tmp_path):
    model = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        model.weight.zero_()
    before = model.weight.detach().clone()
    x = torch.ones(2, 4) * 10.0
    y = torch.full((2, 1), 100.0)   # gradient norm 2*100*10*2 = 4000 >> clip
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    fit(model, opt, [(x, y)], _mse_step, _spec(tmp_path, epochs=1, grad_clip=0.5), device=CPU)
    delta = (model.weight.detach() - before)
    assert float(delta.norm()) == pytest.approx(0.5, rel=1e-5)
    assert torch.all(delta > 0)  # direction kept: towards y


def test_set_epoch_and_steps_per_epoch(tmp_path):
    class Sampler:
        def __init__(self):
            self.epochs = []

        def set_epoch(self, e):
            self.epochs.append(e)

    class Loader(list):
        sampler = Sampler()

    x, y = _data(6)
    loader = Loader([(x[:2], y[:2]), (x[2:4], y[2:4]), (x[4:], y[4:])])
    calls = []

    def step(m, batch):
        calls.append(batch[0][0, 0].item())
        return _mse_step(m, batch)

    model = nn.Linear(3, 1)
    fit(model, torch.optim.SGD(model.parameters(), lr=0.01), loader, step,
        _spec(tmp_path, epochs=2, steps_per_epoch=4), device=CPU)
    assert loader.sampler.epochs == [1, 2]
    firsts = [x[0, 0].item(), x[2, 0].item(), x[4, 0].item()]
    assert calls == (firsts + firsts[:1]) * 2  # 4 steps an epoch, the loader restarted within it


def test_divergence_is_work_failed(tmp_path):
    model = nn.Linear(3, 1)
    x, y = _data(4)

    def step(m, batch):
        return (m(batch[0]) * float("nan")).mean(), {}

    with pytest.raises(WorkFailed) as err:
        fit(model, torch.optim.SGD(model.parameters(), lr=0.1), [(x, y)], step, _spec(tmp_path), device=CPU)
    assert "diverged" in err.value.message and err.value.exit_code == 1


def test_progress_silent_off_tty_and_log_every(tmp_path, capsys):
    model = nn.Linear(3, 1)
    x, y = _data(8)
    loader = DataLoader(TensorDataset(x, y), batch_size=2)
    fit(model, torch.optim.SGD(model.parameters(), lr=0.1), loader, _mse_step,
        _spec(tmp_path, epochs=1, progress=True), device=CPU)
    out, err = capsys.readouterr()
    assert out == "" and err == ""
    fit(model, torch.optim.SGD(model.parameters(), lr=0.1), loader, _mse_step,
        _spec(tmp_path, epochs=1, log_every=2), device=CPU)
    out, err = capsys.readouterr()
    assert out == "" and "epoch 1 step 2: loss" in err and "epoch 1 step 4: loss" in err and "train_loss" in err


class _Net(nn.Module):
    """Dropout makes the result depend on the RNG stream, so resume must restore it."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 1))

    def forward(self, x):
        return self.body(x)


def _resumable_run(run_dir, epochs, resume, init_seed):
    torch.manual_seed(init_seed)
    model = _Net()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    x, y = _data(20)
    loader = DataLoader(TensorDataset(x, y), batch_size=6, shuffle=True)
    spec = TrainSpec(epochs=epochs, run_dir=run_dir, method="demo", arch="net", config={}, resume=resume,
                     progress=False, grad_clip=1.0)
    return fit(model, opt, loader, _mse_step, spec, device=CPU, scheduler=sched,
               validate=lambda m, e: {"loss": float(((m(x) - y) ** 2).mean())})


def test_resume_after_epoch_two_is_bit_identical(tmp_path):
    torch.manual_seed(123)
    full = _resumable_run(tmp_path / "full", 4, False, init_seed=0)
    torch.manual_seed(123)
    _resumable_run(tmp_path / "part", 2, False, init_seed=0)
    torch.manual_seed(999)  # a different process state: the checkpoint must restore everything
    resumed = _resumable_run(tmp_path / "part", 4, True, init_seed=7)
    for k, v in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[k], v), k
    timing = {"seconds", "samples_per_s"}
    strip = lambda recs: [{k: v for k, v in r.items() if k not in timing} for r in recs]  # noqa: E731
    assert strip(_records(tmp_path / "part")) == strip(_records(tmp_path / "full"))
    assert len(_records(tmp_path / "part")) == 4
    assert (resumed.best_epoch, resumed.best_metric) == (full.best_epoch, full.best_metric)
    a = torch.load(tmp_path / "full/checkpoints/last.pt", weights_only=True)
    b = torch.load(tmp_path / "part/checkpoints/last.pt", weights_only=True)
    assert a["scheduler"] == b["scheduler"] and torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    # nothing to do when the run already reached its epochs
    again = _resumable_run(tmp_path / "part", 4, True, init_seed=5)
    assert again.history == resumed.history
    for k, v in full.model.state_dict().items():
        assert torch.equal(again.model.state_dict()[k], v), k


def test_resume_without_checkpoint_starts_fresh(tmp_path, capsys):
    res = _resumable_run(tmp_path / "new", 1, True, init_seed=0)
    assert [r["epoch"] for r in res.history] == [1]
    assert "no checkpoint to resume" in capsys.readouterr().err


def _gpu_run(tmp_path, name, device, amp, seen=None, epochs=3, resume=False, init_seed=0):
    x, y = _data(32)
    torch.manual_seed(init_seed)
    model = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)

    def step(m, batch):
        out = m(batch[0])
        if seen is not None:
            seen.add(out.dtype)
        return ((out.float() - batch[1]) ** 2).mean(), {}

    spec = _spec(tmp_path, run_dir=tmp_path / name, epochs=epochs, amp=amp, grad_clip=1.0, resume=resume)
    return fit(model, opt, DataLoader(TensorDataset(x, y), batch_size=8), step, spec, device=device,
               validate=lambda m, e: {"loss": float(((m(x.to(device)).float() - y.to(device)) ** 2).mean())})


@pytest.mark.gpu
def test_cuda_fp32_matches_cpu_and_bf16_amp_trains(tmp_path):
    cuda = torch.device("cuda")
    ref = _gpu_run(tmp_path, "cpu", CPU, amp=True)  # AMP is a no-op on CPU
    fp32 = _gpu_run(tmp_path, "fp32", cuda, amp=False)
    for k, v in ref.model.state_dict().items():
        torch.testing.assert_close(fp32.model.state_dict()[k].cpu(), v, rtol=1e-4, atol=1e-5)
    seen = set()
    amp = _gpu_run(tmp_path, "amp", cuda, amp=True, seen=seen)
    want = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert seen == {want}
    assert json.loads((tmp_path / "amp/config.json").read_text())["train"]["amp_dtype"] == str(want)[6:]
    assert amp.history[-1]["train_loss"] < amp.history[0]["train_loss"]
    assert abs(amp.history[-1]["val_loss"] - ref.history[-1]["val_loss"]) < 0.05 * ref.history[-1]["val_loss"] + 1e-3
    last = torch.load(tmp_path / "amp/checkpoints/last.pt", weights_only=True)
    assert all(t.device.type == "cpu" and t.dtype == torch.float32 for t in last["state_dict"].values())


@pytest.mark.gpu
def test_cuda_fp16_uses_grad_scaler_and_resumes(tmp_path, monkeypatch):
    import wisecli.runtime.trainer as trainer

    monkeypatch.setattr(trainer, "amp_dtype", lambda device: torch.float16)
    cuda = torch.device("cuda")
    seen = set()
    full = _gpu_run(tmp_path, "full", cuda, amp=True, seen=seen, epochs=4)
    assert seen == {torch.float16} and full.history[-1]["train_loss"] < full.history[0]["train_loss"]
    last = torch.load(tmp_path / "full/checkpoints/last.pt", weights_only=True)
    assert last["scaler"] is not None and last["scaler"]["scale"] > 0
    _gpu_run(tmp_path, "part", cuda, amp=True, epochs=2)
    resumed = _gpu_run(tmp_path, "part", cuda, amp=True, epochs=4, resume=True, init_seed=5)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    for k, v in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v, rtol=1e-5, atol=1e-6)
