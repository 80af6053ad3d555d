"""Observations of what a federated client shares, per layer, and their sketches (spec §2.1, §2.2 features).

- `per_batch_grads(model, params, xb, yb)`: ∇_θ of the MEAN task loss of each batch, `xb` (n, B, ...), with
  `torch.func.vmap(grad)` over the n batches (B = 1 gives per-sample gradients). Never a Python loop over
  samples; `chunk` bounds memory.
- `local_updates(...)`: θ_after − θ_before after E SGD steps on each of n batches sequences, vmapped.
- `layer_groups(model, mode)`: "tensors" = one layer per parameter tensor; "modules" = the weight and bias of
  one module together (names without the `.weight` suffix).
- `Sketch`: a seeded random projection of a flattened layer to D dims when |θ_l| > D: a Gaussian N(0, 1/D)
  matrix generated in row chunks from a generator seeded by (seed, layer, chunk); above 2**20 parameters a
  CountSketch (random sign, 4096 buckets) first. Choice [reconstructed]: a projection of at most 2**22 entries
  (16 MiB fp32) is cached on the device; a larger one is regenerated chunk by chunk at every call and never
  held whole.

The model must be BN-free (per-sample gradients through batch statistics are not per-sample): the zoo's
`norm="none"`; a model with BatchNorm is refused by `check_model` before any work.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

HASH_ABOVE = 1 << 20
HASH_BUCKETS = 4096
CACHE_ENTRIES = 1 << 22


def params_of(model: nn.Module) -> dict[str, Tensor]:
    """The trainable parameters of `model`, detached, by name (the functional state)."""
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}


def buffers_of(model: nn.Module) -> dict[str, Tensor]:
    return {n: b for n, b in model.named_buffers()}


def make_loss(model: nn.Module) -> Callable[[dict, Tensor, Tensor], Tensor]:
    """loss(params, x, y): mean cross-entropy of the model called functionally on a batch x (B, ...)."""
    buffers = buffers_of(model)

    def loss(params: dict, x: Tensor, y: Tensor) -> Tensor:
        logits = functional_call(model, {**params, **buffers}, (x,))
        return torch.nn.functional.cross_entropy(logits, y)

    return loss


def per_batch_grads(model: nn.Module, params: dict, xb: Tensor, yb: Tensor, chunk: int = 256) -> dict[str, Tensor]:
    """{name: (n, *shape)} gradients of the mean loss of each batch xb[i] (B, ...), yb[i] (B,); vmap over i in
    chunks of `chunk` batches."""
    g = vmap(grad(make_loss(model)), in_dims=(None, 0, 0))
    outs: list[dict] = []
    for i in range(0, xb.shape[0], chunk):
        outs.append(g(params, xb[i:i + chunk], yb[i:i + chunk]))
    return {k: torch.cat([o[k] for o in outs]) for k in outs[0]}


def per_sample_grads(model: nn.Module, params: dict, x: Tensor, y: Tensor, chunk: int = 256) -> dict[str, Tensor]:
    """{name: (N, *shape)} per-sample gradients (batches of one), vmapped."""
    return per_batch_grads(model, params, x[:, None], y[:, None], chunk)


def local_updates(model: nn.Module, params: dict, xs: Tensor, ys: Tensor, lr: float, chunk: int = 64) -> dict[str, Tensor]:
    """θ_after − θ_before of plain SGD (lr) over the E batches xs[i, e] (B, ...) of each of n observations:
    xs (n, E, B, ...), ys (n, E, B); vmapped over observations."""
    loss = make_loss(model)
    g = vmap(grad(loss), in_dims=(0, 0, 0))
    outs: list[dict] = []
    for i in range(0, xs.shape[0], chunk):
        x, y = xs[i:i + chunk], ys[i:i + chunk]
        n = x.shape[0]
        p = {k: v.unsqueeze(0).expand(n, *v.shape).clone() for k, v in params.items()}
        for e in range(x.shape[1]):
            gr = g(p, x[:, e], y[:, e])
            p = {k: p[k] - lr * gr[k] for k in p}
        outs.append({k: p[k] - params[k].unsqueeze(0) for k in p})
    return {k: torch.cat([o[k] for o in outs]) for k in outs[0]}


def layer_groups(model: nn.Module, mode: str = "tensors") -> dict[str, list[str]]:
    """Layer name -> the parameter names it holds, in the model's order (see the module docstring)."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    if mode == "tensors":
        return {n: [n] for n in names}
    out: dict[str, list[str]] = {}
    for n in names:
        out.setdefault(n.rpartition(".")[0] or n, []).append(n)
    return out


def flat_layer(grads: dict[str, Tensor], members: list[str]) -> Tensor:
    """(n, |θ_l|) the flattened, concatenated gradients of one layer's parameter tensors."""
    return torch.cat([grads[m].reshape(grads[m].shape[0], -1) for m in members], dim=1)


def check_model(model: nn.Module) -> None:
    """Refuse what per-sample gradients cannot handle: BatchNorm (batch statistics) and no trainable weights."""
    from wisecli.cli.errors import InputError

    if not any(p.requires_grad for p in model.parameters()):
        raise InputError("the model has no trainable parameters", hint="give a model with weights to audit")
    bn = [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if bn:
        raise InputError(f"the model has BatchNorm layers ({', '.join(bn[:3])}): per-sample gradients are not defined",
                         hint="build it with model.norm=none (the zoo's BN-free nets) or remove the BatchNorm layers")


def _seed_of(*parts) -> int:
    h = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 62) - 1)


class Sketch:
    """A seeded linear sketch of n_in-dim rows to `dim` dims (identity when n_in <= dim); see the module doc."""

    def __init__(self, n_in: int, dim: int, *, seed: int, name: str, device, row_chunk: int = 8192):
        self.n_in, self.dim, self.seed, self.name = int(n_in), int(dim), int(seed), name
        self.device = torch.device(device)
        self.row_chunk = row_chunk
        self.identity = self.n_in <= self.dim
        self.hashed = self.n_in > HASH_ABOVE
        self.proj_in = HASH_BUCKETS if self.hashed else self.n_in
        self.out_dim = self.n_in if self.identity else self.dim
        self._cache: Tensor | None = None
        if self.hashed:
            gen = torch.Generator().manual_seed(_seed_of(seed, name, "hash"))
            self.bucket = torch.randint(0, HASH_BUCKETS, (self.n_in,), generator=gen).to(self.device)
            self.sign = (torch.randint(0, 2, (self.n_in,), generator=gen) * 2 - 1).float().to(self.device)

    def _rows(self, start: int, stop: int) -> Tensor:
        gen = torch.Generator().manual_seed(_seed_of(self.seed, self.name, start))
        r = torch.randn(stop - start, self.dim, generator=gen) / self.dim ** 0.5
        return r.to(self.device)

    def __call__(self, X: Tensor) -> Tensor:
        """(n, n_in) -> (n, out_dim), fp32."""
        X = X.float()
        if self.identity:
            return X
        if self.hashed:
            H = torch.zeros(X.shape[0], HASH_BUCKETS, device=X.device, dtype=X.dtype)
            X = H.index_add_(1, self.bucket, X * self.sign)
        if self.proj_in * self.dim <= CACHE_ENTRIES:
            if self._cache is None:
                self._cache = torch.cat([self._rows(s, min(s + self.row_chunk, self.proj_in))
                                         for s in range(0, self.proj_in, self.row_chunk)])
            return X @ self._cache
        out = torch.zeros(X.shape[0], self.dim, device=X.device, dtype=X.dtype)
        for s in range(0, self.proj_in, self.row_chunk):
            e = min(s + self.row_chunk, self.proj_in)
            out += X[:, s:e] @ self._rows(s, e)
        return out
