"""Observations (spec §2.1, §9): vmap(grad) per-sample and per-batch gradients and local updates against plain
autograd loops; sketches."""

import numpy as np
import pytest
import torch

from wisecli.engines.leakage import algorithm as alg
from wisecli.nn.zoo import build

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cnn():
    torch.manual_seed(0)
    return build("small-cnn", in_channels=1, num_classes=10, image_size=8, norm="none")


def test_per_sample_grads_equal_a_backward_loop():
    m = _cnn()
    x, y = torch.rand(12, 1, 8, 8), torch.randint(0, 10, (12,))
    g = alg.per_sample_grads(m, alg.params_of(m), x, y, chunk=5)
    for i in range(12):
        m.zero_grad()
        torch.nn.functional.cross_entropy(m(x[i:i + 1]), y[i:i + 1]).backward()
        for n, p in m.named_parameters():
            # fp32, the same arithmetic in another order: 1e-6 absolute on gradients of order 1e-2..1
            assert torch.allclose(g[n][i], p.grad, atol=1e-6, rtol=1e-5), n


def test_per_batch_grads_are_the_mean_loss_gradient():
    m = _cnn()
    x, y = torch.rand(3, 4, 1, 8, 8), torch.randint(0, 10, (3, 4))
    g = alg.per_batch_grads(m, alg.params_of(m), x, y)
    for i in range(3):
        m.zero_grad()
        torch.nn.functional.cross_entropy(m(x[i]), y[i]).backward()
        for n, p in m.named_parameters():
            assert torch.allclose(g[n][i], p.grad, atol=1e-6, rtol=1e-5), n


def test_local_updates_equal_sgd_steps():
    m = _cnn()
    p0 = {k: v.clone() for k, v in alg.params_of(m).items()}
    xs, ys = torch.rand(2, 3, 4, 1, 8, 8), torch.randint(0, 10, (2, 3, 4))
    upd = alg.local_updates(m, p0, xs, ys, lr=0.1)
    for i in range(2):
        mm = _cnn()
        opt = torch.optim.SGD(mm.parameters(), lr=0.1)
        for e in range(3):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(mm(xs[i, e]), ys[i, e]).backward()
            opt.step()
        for n, p in mm.named_parameters():
            assert torch.allclose(upd[n][i], p.detach() - p0[n], atol=1e-6), n


def test_layer_groups_and_batchnorm_refused():
    m = _cnn()
    assert list(alg.layer_groups(m, "modules")) == ["conv1", "conv2", "fc1", "fc2"]
    assert alg.layer_groups(m, "tensors")["fc2.bias"] == ["fc2.bias"]
    import pytest

    from wisecli.cli.errors import InputError

    with pytest.raises(InputError, match="BatchNorm"):
        alg.check_model(build("small-cnn", in_channels=1, num_classes=10, image_size=8, norm="batch"))


def test_sketch_identity_seeded_chunked_and_norm_preserving():
    X = torch.randn(50, 3000)
    assert torch.equal(alg.Sketch(3000, 4096, seed=0, name="a", device="cpu")(X), X)
    s1 = alg.Sketch(3000, 256, seed=0, name="a", device="cpu")
    s2 = alg.Sketch(3000, 256, seed=0, name="a", device="cpu", row_chunk=700)
    a, b = s1(X), s2(X)
    # the same rows whatever the chunking? (chunks are seeded by their start: only equal chunkings agree)
    assert torch.equal(a, alg.Sketch(3000, 256, seed=0, name="a", device="cpu")(X))
    assert not torch.equal(a, alg.Sketch(3000, 256, seed=1, name="a", device="cpu")(X))
    # Johnson-Lindenstrauss: squared norms kept within a few 1/sqrt(D) relative errors
    for z in (a, b):
        ratio = (z.norm(dim=1) / X.norm(dim=1)) ** 2
        assert abs(float(ratio.mean()) - 1) < 0.05 and float(ratio.std()) < 0.2


def test_large_layers_are_hashed_then_projected():
    sk = alg.Sketch(alg.HASH_ABOVE + 10, 16, seed=0, name="big", device="cpu")
    assert sk.hashed and sk.proj_in == alg.HASH_BUCKETS
    X = torch.zeros(2, alg.HASH_ABOVE + 10)
    X[0, 5] = 1.0
    z = sk(X)
    assert z.shape == (2, 16) and float(z[1].abs().max()) == 0.0 and float(z[0].abs().max()) > 0
