"""Predictive averaging, the KL schedule, the lr schedules, the split and the sampler (engine side)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wisecli.engines.classify.bayes import average, beta_at, mutual_info, predictive, sample_log_probs
from wisecli.engines.classify.data import stratified_split
from wisecli.runtime.loaders import EpochSampler
from wisecli.engines.classify.train import lr_factor
from wisecli.nn.zoo import build


def test_beta_rises_linearly_to_one_over_two_thirds():
    assert [beta_at(e, 6) for e in range(1, 7)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert beta_at(1, 1) == 1.0


def test_lr_schedules():
    assert lr_factor(0, 10, 1, "cosine") == 0.5  # warm-up epoch at half
    assert lr_factor(1, 10, 1, "cosine") == pytest.approx(1.0)
    assert lr_factor(9, 10, 1, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi * 8 / 9)))
    assert [lr_factor(i, 10, 1, "ibnn") for i in (0, 5, 7, 9)] == pytest.approx([1.0, 1.0, 1 - 0.99 * 0.5, 0.01])
    assert lr_factor(7, 10, 1, "constant") == 1.0


def test_implicit_predictive_is_the_mean_of_sample_probabilities():
    torch.manual_seed(0)
    model = build("small-cnn", in_channels=1, num_classes=4, image_size=8, width=0.5, bayes="implicit",
                  components=2).eval()
    x = torch.rand(3, 1, 8, 8)
    torch.manual_seed(5)
    bar, lp = predictive(model, x, "implicit", samples=3, components=2, with_samples=True)
    assert lp.shape == (6, 3, 4)
    torch.manual_seed(5)
    logits = model(x.repeat(6, 1, 1, 1)).reshape(6, 3, 4)
    want = F.softmax(logits, -1).mean(0).log()
    assert torch.allclose(bar, want, atol=1e-5)
    assert (mutual_info(lp, bar) >= 0).all()


def test_none_and_ensemble_and_mc_dropout():
    torch.manual_seed(0)
    det = build("mlp", in_channels=1, num_classes=3, image_size=5).eval()
    x = torch.randn(4, 5)
    assert torch.allclose(predictive(det, x, "none"), F.log_softmax(det(x), -1), atol=1e-6)
    ens = build("mlp", in_channels=1, num_classes=3, image_size=5, bayes="ensemble", members=3).eval()
    z = ens(x)
    assert torch.allclose(predictive(ens, x, "ensemble"), F.softmax(z, -1).mean(0).log(), atol=1e-5)
    mc = build("mlp", in_channels=1, num_classes=3, image_size=5, bayes="mc-dropout", dropout=0.5).eval()
    lp = sample_log_probs(mc, x, "mc-dropout", samples=8)
    assert lp.shape == (8, 4, 3) and not torch.allclose(lp[0], lp[1])
    assert not any(m.training for m in mc.modules())  # dropout back off after sampling
    assert torch.allclose(average(lp), torch.logsumexp(lp, 0) - math.log(8))


def test_stratified_split_and_sampler():
    y = np.repeat(np.arange(3), [10, 5, 1])
    tr, va = stratified_split(y, 0.2, seed=0)
    assert set(tr) | set(va) == set(range(16)) and not set(tr) & set(va)
    assert np.bincount(y[va], minlength=3).tolist() == [2, 1, 0]
    one = EpochSampler(20, 8, seed=1)
    ranks = [EpochSampler(20, 8, seed=1, rank=r, world=2) for r in range(2)]
    for s in [one, *ranks]:
        s.set_epoch(3)
    for b, b0, b1 in zip(one.batches(), ranks[0].batches(), ranks[1].batches()):
        assert sorted(torch.cat([b0, b1]).tolist()) == sorted(b.tolist()[: len(b0) * 2])
    calls = []
    one.on_epoch.append(calls.append)
    one.set_epoch(4)
    assert calls == [4]


def test_implicit_variational_lr_is_not_annealed():
    """Spec §2.4 and `trungtrinh44/ibnn`'s README (`lr_ratio_sto=1.0`): the iBNN schedule anneals the weights' lr
    to 1 % while the variational parameters keep theirs. The optimizer and scheduler are the ones `run_training`
    builds (`build_optimizer_for`, `make_scheduler`) for an implicit net; before the fix one LambdaLR annealed both
    groups to 1 %. Other schedules still apply to every group."""
    from wisecli.engines.classify import api
    from wisecli.engines.classify.train import build_optimizer_for, make_scheduler

    cfg = {**api.DEFAULTS["train"], "bayes": "implicit", "components": 2, "lr": 0.1}
    model = build("mlp", in_channels=1, num_classes=3, image_size=4, width=0.05, bayes="implicit", components=2)
    opt, base = build_optimizer_for(model, cfg)
    assert base == 0.1 and len(opt.param_groups) == 2
    sched = make_scheduler(opt, 10, 1, "ibnn")
    for epoch in range(10):
        det, var = (g["lr"] for g in opt.param_groups)
        assert det == pytest.approx(0.1 * lr_factor(epoch, 10, 1, "ibnn"))
        assert var == pytest.approx(0.4 * 2 * 0.1 / 0.1)  # 0.4 K lr / 0.1, constant
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.001)
    cos = make_scheduler(opt, 10, 1, "cosine")
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.05, 0.4])  # warm-up epoch: both at half
    del cos


def test_train_threads_cover_the_end_of_training_test_pass(tmp_path, monkeypatch):
    """`threads=1` holds for the test-part evaluation `train` runs after `fit` as well (it ran on torch's default
    thread count before; on a contended CPU that pass cost more than the training of an implicit net)."""
    from wisecli.engines.classify import api, predict

    seen = []
    real = predict.evaluate_model

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(predict, "evaluate_model", spy)
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(2), 12)
    X = (rng.normal(size=(24, 3)) + y[:, None]).astype(np.float32)
    np.savez(tmp_path / "f.npz", X=X, y=y, X_val=X[::3], y_val=y[::3], X_test=X[1::3], y_test=y[1::3])
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # what torch starts with on a 2-core CI runner; restored below
    try:
        s = api.train(tmp_path / "f.npz", tmp_path / "run", arch="mlp", epochs=1, batch_size=8, width=0.05,
                      device="cpu", threads=1, progress=False)
    finally:
        torch.set_num_threads(before)
    assert "test" in s and seen == [1]


def test_both_arms_see_the_same_corrupted_images(tmp_path, monkeypatch):
    """evaluate's corruptions come from a generator seeded by (--seed, severity) alone, so a deterministic and an
    implicit model (whose sampling reseeds torch's global RNG per pass) are scored on identical noisy images."""
    from tests.classify.conformance import checkpoint
    from wisecli.engines.classify import corruptions, predict
    from wisecli.engines.classify.synthetic import write_folder

    data = tmp_path / "glyphs"
    write_folder(data, n_per_class=3, num_classes=3, size=16, seed=0)
    seen = {}
    real = corruptions.corrupt

    def spy(x, name, severity, generator=None):
        y = real(x, name, severity, generator)
        seen.setdefault(arm, []).append(y.clone())
        return y

    monkeypatch.setattr(corruptions, "corrupt", spy)
    for arm, kw in (("none", {}), ("implicit", {"bayes": "implicit", "components": 2})):
        ckpt = checkpoint(tmp_path / arm / "best.pt", size=16, **kw)
        doc = predict.evaluate_model(data, ckpt, corrupt="gaussian_noise", severity="3-5", device="cpu")
        assert [r["severity"] for r in doc["corruptions"]] == [3, 4, 5]
    assert len(seen["none"]) == len(seen["implicit"]) == 3
    for a, b in zip(seen["none"], seen["implicit"]):
        assert torch.equal(a, b)
    assert not torch.equal(seen["none"][0], seen["none"][2])  # each severity draws its own noise
