"""Training: a run stopped after epoch 1 and resumed equals the uninterrupted run (model, optimizer, RNG and the
density generator restored from last.pt); the run folder holds density_curve.json and the checkpoint its curve."""

from __future__ import annotations

import json
import math

import torch

from tests.conftest import conformance_module

conf = conformance_module(__file__)


def _train(data, out, epochs, resume=False):
    from wisecli.engines.sparse_cnn import api

    return api.train(str(data), out, epochs=epochs, batch_size=4, width=0.125, image_size=16, val_fraction=0.25,
                     device="cpu", threads=1, resume=resume, progress=False, **{"sparse.branch_channels": 4})


def test_resume_continues_bit_for_bit(tmp_path, monkeypatch):
    import pytest

    from wisecli.engines.sparse_cnn import train as tr
    from wisecli.runtime.checkpoints import load_checkpoint

    data = conf.write_folder(tmp_path / "shapes", n_per_class=6)
    real, calls = tr.measure, []

    def counting(*a, **k):
        calls.append(1)
        if stop_at[0] is not None and len(calls) > stop_at[0]:
            raise KeyboardInterrupt        # Ctrl-C in epoch 2's validation: last.pt holds epoch 1
        return real(*a, **k)

    stop_at = [None]
    monkeypatch.setattr(tr, "measure", counting)
    _train(data, tmp_path / "full", 2)
    stop_at[0], calls[:] = len(calls) // 2, []
    with pytest.raises(KeyboardInterrupt):
        _train(data, tmp_path / "part", 2)
    stop_at[0] = None
    _train(data, tmp_path / "part", 2, resume=True)
    a = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt", method="sparse-cnn")
    b = load_checkpoint(tmp_path / "part" / "checkpoints" / "last.pt", method="sparse-cnn")
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k
    assert torch.equal(a["rho_rng"], b["rho_rng"])
    curve = json.loads((tmp_path / "full" / "density_curve.json").read_text())["curve"]
    assert [c["density"] for c in curve] == sorted(c["density"] for c in a["density_curve"])
    fr = [c["macs_fraction"] for c in curve]
    assert fr == sorted(fr)                      # more density, more counted MACs
    rec = [json.loads(ln) for ln in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert {"val_acc_d100", "val_acc_d050", "val_acc_d025", "val_acc_dmin", "val_saving_d025", "val_score"} <= set(rec[-1])


def test_warmup_and_cosine_count_steps_even_in_one_epoch(tmp_path, monkeypatch):
    """Training over densities starts after the first 10 % of the steps, and the cosine decays over the steps. With
    both counted in epochs, a one-epoch run (the SR recipes: one epoch of 300 steps) trained at rho = 1 and at a
    constant rate throughout."""
    from wisecli.engines.sparse_cnn import train as tr

    assert tr.warmup_steps(0.1, 1, 300) == 30 and tr.warmup_steps(0.1, 5, 22) == 11 and tr.warmup_steps(0, 3, 7) == 0
    data = conf.write_folder(tmp_path / "shapes", n_per_class=6)
    drawn = []
    real = tr.sample_rho

    def recording(*a, **k):
        drawn.append(real(*a, **k))
        return drawn[-1]

    monkeypatch.setattr(tr, "sample_rho", recording)
    seen = []
    real_w = tr.warmup_steps
    monkeypatch.setattr(tr, "warmup_steps", lambda f, e, n: seen.append((e, n)) or real_w(f, e, n))
    lrs = []
    real_step = torch.optim.SGD.step

    def stepping(self, *a, **k):
        lrs.append(self.param_groups[0]["lr"])
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.SGD, "step", stepping)
    for epochs in (1, 2):
        drawn.clear()
        lrs.clear()
        _train(data, tmp_path / f"e{epochs}", epochs)
        # the cosine decays over the steps, also within a one-epoch run (before: constant through the epoch)
        assert all(b < a for a, b in zip(lrs, lrs[1:])) and len(lrs) >= 3, lrs
        e, n = seen[-1]
        assert e == epochs and n >= 3
        # every step after the warm-up draws its density (before: a one-epoch run drew none)
        assert len(drawn) == e * n - math.ceil(0.1 * e * n) > 0, (len(drawn), e, n)


def test_lr_schedule_setting_is_checked():
    import pytest

    from wisecli.cli.errors import InputError
    from wisecli.engines.sparse_cnn import train as tr
    from wisecli.engines.sparse_cnn.api import DEFAULTS

    cfg = dict(DEFAULTS["train"])
    tr.check_train_cfg({**cfg, "lr_schedule": "constant"})
    with pytest.raises(InputError, match="lr_schedule"):
        tr.check_train_cfg({**cfg, "lr_schedule": "linear"})
