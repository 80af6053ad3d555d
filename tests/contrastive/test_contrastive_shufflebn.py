"""Shuffling BN on one process (MoCo §3.3; the single-GPU SplitBatchNorm of MoCo's CIFAR demo): a split BN
normalises each contiguous sub-batch on its own statistics (checked against plain BN run per sub-batch), and
the key batch is permuted before the key encoder and unpermuted after (checked against doing it by hand)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from wisecli.engines.contrastive.model import MoCo, SplitBatchNorm2d


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_split_bn_equals_plain_bn_per_sub_batch_and_plain_bn_in_eval():
    torch.manual_seed(0)
    x = torch.randn(12, 5, 4, 3) * 2 + 1
    split = SplitBatchNorm2d(5, 3)
    with torch.no_grad():
        split.weight.uniform_(0.5, 1.5)
        split.bias.uniform_(-1, 1)
    plain = [copy.deepcopy(nn.BatchNorm2d(5)) for _ in range(3)]
    for p in plain:
        p.load_state_dict(split.state_dict())
    out = split.train()(x)
    ref = torch.cat([p.train()(x[4 * g:4 * g + 4]) for g, p in enumerate(plain)])
    assert torch.allclose(out, ref, atol=1e-5)  # float32 BN of O(1) values, same formula
    assert torch.allclose(split.running_mean, torch.stack([p.running_mean for p in plain]).mean(0), atol=1e-6)
    assert torch.allclose(split.running_var, torch.stack([p.running_var for p in plain]).mean(0), atol=1e-6)
    one = nn.BatchNorm2d(5)
    one.load_state_dict(split.state_dict())
    assert torch.allclose(split.eval()(x), one.eval()(x), atol=1e-6)
    with pytest.raises(ValueError, match="divisible"):
        split.train()(x[:10])


def _moco(splits, **kw):
    torch.manual_seed(0)
    return MoCo(arch="monai-resnet18", in_channels=1, image_size=16, n_bank=8, queue=4, k=2, width=0.0625,
                bn_splits=splits, **kw)


def test_keys_are_permuted_normalised_per_split_and_unpermuted():
    m = _moco(2)
    assert all(isinstance(b, SplitBatchNorm2d) for e in (m.encoder_q, m.encoder_k) for b in e.modules()
               if isinstance(b, nn.BatchNorm2d))
    v = torch.randn(8, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    perm = torch.tensor([3, 6, 0, 5, 1, 7, 2, 4])
    ref = copy.deepcopy(m.encoder_k)
    got = m.keys(v, perm=perm)
    plain = _moco(1)
    plain.encoder_k.load_state_dict(ref.state_dict())  # same weights and statistics, plain BatchNorm2d
    with torch.no_grad():
        hand = torch.cat([plain.encoder_k(v[perm[:4]]), plain.encoder_k(v[perm[4:]])])[torch.argsort(perm)]
    assert torch.allclose(got, hand, atol=1e-5)
    with torch.no_grad():
        unshuffled = torch.cat([ref(v[:4]), ref(v[4:])])
    assert not torch.allclose(got, unshuffled, atol=1e-3)  # the shuffle changed each key's BN company
    m.encoder_k.eval()
    assert torch.allclose(m.keys(v, perm=perm), m.encoder_k(v), atol=1e-6)  # eval BN: the shuffle is invisible


def test_one_split_is_plain_key_bn_and_a_split_step_trains():
    m = _moco(1)
    v = torch.randn(4, 1, 16, 16)
    assert torch.equal(m.keys(v), m.encoder_k(v))  # spec: plain key BN on one device
    m2 = _moco(2, select="center", mix="cutmix", resolutions=(8,))
    X = torch.randint(0, 256, (8, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    idx = torch.arange(4)
    loss, _ = m2({"x": X[idx], "xp": X[idx + 4], "idx": idx, "pidx": idx + 4})
    loss.backward()
    assert torch.isfinite(loss) and m2.encoder_q.head[0].weight.grad is not None
    assert m2.encoder_q.backbone.state_dict().keys() == _moco(1).encoder_q.backbone.state_dict().keys()


def test_a_split_bn_run_trains_saves_and_loads_back(tmp_path):
    """`bn_splits` 2 through the trainer: 2 epochs (selection in the second) on 32 digits, last.pt holds split-BN
    weights under plain BN names, and `load_model` rebuilds split BN with identical eval features."""
    from wisecli.engines.contrastive import train as T
    from wisecli.engines.contrastive.data import read_images
    from wisecli.engines.contrastive.predict import load_model

    ds = read_images("builtin:digits:train", image_size=16)
    ds.X, ds.y = ds.X[:32], ds.y[:32]
    cfg = {"arch": "monai-resnet18", "width": 0.0625, "epochs": 2, "batch_size": 8, "lr": 0.03, "tau": 0.2,
           "queue": 16, "momentum": None, "k": 3, "clusters": 4, "clim_start": 1, "select": None, "mix": "cutmix",
           "resolutions": "none", "positive_key": "bank", "same_cluster": True, "symmetric": False,
           "bank_view": "key", "eval_every": 10, "image_size": 16, "shuffle_bn": True, "bn_splits": 2}
    with torch.random.fork_rng():
        s = T.run_one(ds, tmp_path / "run", cfg=cfg, arm_name="clim", seed=0, device=torch.device("cpu"), amp=False,
                      resume=False, overwrite=False, progress=False)
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in s["history"])
    m, doc = load_model(tmp_path / "run" / "checkpoints" / "last.pt", torch.device("cpu"))  # best.pt may be epoch 1
    assert doc["config"]["model"]["bn_splits"] == 2
    assert any(isinstance(b, SplitBatchNorm2d) for b in m.encoder_k.modules())
    X = torch.from_numpy(ds.X)
    assert torch.allclose(T.embed(m, X, torch.device("cpu")), T.embed(s["model"], X, torch.device("cpu")), atol=1e-5)


def test_a_batch_not_divisible_by_the_splits_is_refused_before_any_work(tmp_path):
    """In process (the CLI turns every InputError into exit 2 + Error/Hint, as the other bad inputs check)."""
    from wisecli.cli.errors import InputError
    from wisecli.engines.contrastive import api

    with pytest.raises(InputError, match="not divisible by --bn-splits 3"):
        api.train("builtin:digits", tmp_path / "run", batch_size=4, bn_splits=3, device="cpu")
    assert not (tmp_path / "run").exists()
