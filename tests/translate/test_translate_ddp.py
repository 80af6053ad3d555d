"""Layer-wise multi-view NMT under DistributedDataParallel (gloo, 2 forked CPU ranks): the per-token loss
normalisation over all ranks' target tokens gives the gradient of the whole batch, and the token loader gives
every rank the same number of disjoint batches (an extra step on one rank would hang the all-reduce)."""

from __future__ import annotations

import os

import torch
from conftest import run_ranks
from torch import nn

from wisecli.engines.translate.data import TokenLoader
from wisecli.engines.translate.loss import multiview_loss

V, B, T = 11, 6, 5


def _problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, T, 4, generator=g)
    target = torch.randint(1, V, (B, T), generator=g)
    lengths = torch.tensor([5, 1, 2, 5, 3, 4])  # ranks hold other numbers of target tokens (pad id 0)
    target[torch.arange(T)[None, :] >= lengths[:, None]] = 0
    torch.manual_seed(0)
    return x, target, nn.Linear(4, 2 * V)


def _grads(model, x, target):
    out = model(x)
    loss, _ = multiview_loss([out[..., :V], out[..., V:]], target, eps=0.1, alpha=0.7, beta=0.5)
    loss.backward()
    return {k: p.grad.clone() for k, p in model.named_parameters()}


def _worker(rank, folder):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo")
    x, target, model = _problem()
    half = slice(0, 2) if rank == 0 else slice(2, B)  # uneven shards: 6 vs 20 tokens
    net = DistributedDataParallel(model)
    out = net(x[half])
    loss, _ = multiview_loss([out[..., :V], out[..., V:]], target[half], eps=0.1, alpha=0.7, beta=0.5)
    loss.backward()
    grads = {k: p.grad for k, p in model.named_parameters()}
    pairs = [([1] * (1 + i % 7), [2] * (1 + (3 * i) % 5)) for i in range(40)]
    seen = [[i for batch in TokenLoader(pairs, 12, seed=3, rank=rank, world=2)._batches for i in batch]]
    loader = TokenLoader(pairs, 12, seed=3, rank=rank, world=2)
    loader.set_epoch(1)
    seen.append([i for batch in loader._batches for i in batch])
    torch.save({"grads": grads, "steps": [len(TokenLoader(pairs, 12, seed=3, rank=rank, world=2)), len(loader)],
                "seen": seen}, os.path.join(folder, f"rank{rank}.pt"))


def test_ddp_gradient_is_the_whole_batch_gradient_and_ranks_take_equal_disjoint_steps(tmp_path):
    run_ranks(_worker, tmp_path, 2)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    x, target, model = _problem()
    whole = _grads(model, x, target)
    for k, g in whole.items():
        torch.testing.assert_close(r0["grads"][k], g, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(r1["grads"][k], g, rtol=1e-5, atol=1e-7)
    assert r0["steps"] == r1["steps"] and min(r0["steps"]) > 0
    for a, b in zip(r0["seen"], r1["seen"]):
        assert not set(a) & set(b) and len(set(a) | set(b)) <= 40
    one = TokenLoader([([1] * (1 + i % 7), [2] * (1 + (3 * i) % 5)) for i in range(40)], 12, seed=3)
    assert len(set(r0["seen"][0]) | set(r1["seen"][0])) >= 40 - max(len(b) for b in one._batches)
