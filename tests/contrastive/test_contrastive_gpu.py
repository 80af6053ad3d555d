"""GPU checks of `wise contrastive` (skipped without CUDA; not run in this session: no GPU was used): device kNN
and k-means agree with the CPU path, the augmentation ops agree within 2/255, a training step keeps the buffers
on the device, and `benchmark --device cuda` produces its races."""

from __future__ import annotations

import pytest
import torch

from wisecli.engines.contrastive.algorithm import kmeans, knn
from wisecli.engines.contrastive.synthetic import vmf_clusters
from wisecli.runtime import augment as A

pytestmark = pytest.mark.gpu

if not torch.cuda.is_available():
    pytest.skip("needs CUDA", allow_module_level=True)


def test_knn_and_kmeans_agree_with_cpu():
    x, _ = vmf_clusters(4000, 10, 32, seed=0)
    s_c, i_c = knn(x, x, 10, exclude=torch.arange(4000))
    s_g, i_g = knn(x.cuda(), x.cuda(), 10, exclude=torch.arange(4000).cuda(), bank_chunk=1000)
    assert torch.allclose(s_c, s_g.cpu(), atol=1e-4)
    assert (i_c == i_g.cpu()).float().mean() > 0.995  # near-ties may swap between BLAS kernels
    init = x[:10].clone()
    a = kmeans(x, 10, mode="euclidean", init=init, max_iter=50, tol=0)
    b = kmeans(x.cuda(), 10, mode="euclidean", init=init.cuda(), max_iter=50, tol=0)
    assert (a["labels"] == b["labels"].cpu()).float().mean() > 0.99
    assert abs(a["objective"][-1] - b["objective"][-1]) / a["objective"][-1] < 1e-3


def test_augment_ops_agree_within_2_over_255():
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    boxes = torch.tensor([[2.0, 3.0, 20.0, 24.0]] * 8)
    assert (A.resized_crop(x, boxes, 16) - A.resized_crop(x.cuda(), boxes.cuda(), 16).cpu()).abs().max() <= 2 / 255
    f = A.to_float(x)
    sig = torch.linspace(0.2, 2.0, 8)
    assert (A.gaussian_blur(f, sigma=sig, p=1.0) - A.gaussian_blur(f.cuda(), sigma=sig.cuda(), p=1.0).cpu()).abs().max() <= 2 / 255
    g = torch.Generator().manual_seed(0)
    lam0 = torch.rand(8, generator=g)
    m_c, l_c = A.cutmix(f, f.flip(0), lam0, generator=torch.Generator().manual_seed(1))
    m_g, l_g = A.cutmix(f.cuda(), f.flip(0).cuda(), lam0.cuda(), generator=torch.Generator().manual_seed(1))
    assert torch.equal(m_c, m_g.cpu()) and torch.allclose(l_c, l_g.cpu())


def test_benchmark_on_cuda_runs_every_race():
    from wisecli.engines.contrastive import api

    recs = api.benchmark(device="cuda", quick=True)
    assert {r.case for r in recs} == {"knn 256 queries", "k-means", "augment views", "cutmix"}
    assert all(r.ours_s > 0 for r in recs)


def test_split_bn_shuffled_keys_and_the_augmented_probe_run_on_the_device():
    """Shuffling BN with 2 splits: CUDA keys equal the CPU keys of the same permutation (TF32/cuDNN: 1e-3), also
    in channels_last; the augmented linear probe keeps its tensors on the device."""
    from wisecli.engines.contrastive.metrics import linear_augmented
    from wisecli.engines.contrastive.model import MoCo

    torch.manual_seed(0)
    m = MoCo(arch="monai-resnet18", in_channels=1, image_size=16, n_bank=8, queue=4, k=2, width=0.0625, bn_splits=2)
    v = torch.randn(8, 1, 16, 16)
    perm = torch.tensor([3, 6, 0, 5, 1, 7, 2, 4])
    cpu = m.keys(v, perm=perm)  # train-mode BN: batch statistics, so the running-stat update does not matter
    g = m.cuda()
    assert torch.allclose(cpu, g.keys(v.cuda(), perm=perm.cuda()).cpu(), atol=1e-3)
    cl = g.keys(v.cuda().contiguous(memory_format=torch.channels_last), perm=perm.cuda())
    assert cl.is_cuda and cl.shape == cpu.shape
    X = torch.randint(0, 256, (16, 1, 16, 16), dtype=torch.uint8)
    y = torch.arange(16) % 2
    lp = linear_augmented(g.eval(), X, y, X, y, device=torch.device("cuda"), epochs=2, batch=8)
    assert 0 <= lp["top1"] <= lp["top5"] <= 1
