"""Jacobian sensitivity per layer (spec §2.3, §2.4).

J_l(x) = ∂ vec(∇_{θ_l} ℓ(f_θ(x), y)) / ∂x for one sample. Reported per layer:
S_F = (mean_x ||J_l(x)||_F²)^½, S_F/√|θ_l|, and the attribute-directed S_s = (mean_x ||J_l(x) u_s||²)^½/√|θ_l|
with u_s the normalised difference of the attribute-conditional input means (several classes: the mean of the
squared norms over the one-vs-rest directions, then the root). The standard error of S_F comes from the
per-sample values (delta method: se(S) = se(mean ||J||²) / (2 S)), which for Hutchinson includes the probe noise.

Estimators:
- `hutchinson` (default): ||J||_F² = E_v ||J v||², v ~ N(0, I) in input space, P probes; forward-over-reverse
  (`torch.func.jvp` of `torch.func.grad`), one JVP of the whole gradient pytree gives J_l v for every layer;
  vmapped over probes and samples (in chunks of samples).
- `exact`: Σ_i ||J e_i||² over the input basis, batched JVPs in chunks; `jacrev` is used instead for a layer
  set when Σ_l |θ_l| · |x| ≤ 2·10⁷ entries (`exact_norms(..., method="jacrev")` forces it, for tests).
- `ones-vjp`: GradDefense's recipe (wangjunxiao/GradDefense sensitivity.py): ||∂(Σ entries of ∇_{θ_l} ℓ)/∂x||,
  averaged over samples. A DIFFERENT quantity, exactly 0 for a last linear layer under softmax cross-entropy
  (§2.4); kept only for comparison and labelled so wherever it appears.

`latent`: with `latent=module name`, x is replaced by that module's output h (a forward hook substitutes the
given h), and only the parameters used after it are reported (the upstream layers' gradients no longer depend
on h). Computations are fp32 or wider (no autocast).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, jacrev, jvp, vmap

JACREV_LIMIT = 20_000_000


def _quiet_forward_ad():
    """torch (2.13) loads its forward-AD decompositions through the deprecated `torch.jit.script` on the first
    `jvp`: a DeprecationWarning about torch's internals that users cannot act on; silenced around our JVPs."""
    import warnings

    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=DeprecationWarning)
    return ctx


def _single_grad_fn(model: nn.Module, params: dict, names: list[str], latent: str | None = None):
    """g(x, y) -> {name: ∇_{θ_name} ℓ} for ONE sample x (no batch dim), y a 0-d long tensor; with `latent`, x is
    that module's output for one sample."""
    buffers = {n: b for n, b in model.named_buffers()}
    fixed = {k: v for k, v in params.items() if k not in names}

    def loss(p: dict, x: Tensor, y: Tensor) -> Tensor:
        if latent is None:
            logits = functional_call(model, {**fixed, **p, **buffers}, (x[None],))
        else:
            mod = model.get_submodule(latent)
            h = model._leak_latent_input  # set by the caller (a placeholder for shape only)
            handle = mod.register_forward_hook(lambda m, i, o: x[None])
            try:
                logits = functional_call(model, {**fixed, **p, **buffers}, (h[None],))
            finally:
                handle.remove()
        return torch.nn.functional.cross_entropy(logits, y[None])

    sel = {k: params[k] for k in names}

    def g(x: Tensor, y: Tensor) -> dict:
        return grad(loss)(sel, x, y)

    return g


def downstream_params(model: nn.Module, latent: str, x_example: Tensor) -> list[str]:
    """The trainable parameter names of the modules that run after module `latent` in a forward pass."""
    order: list[str] = []
    hooks = []
    for name, mod in model.named_modules():
        if not list(mod.children()):
            hooks.append(mod.register_forward_hook(lambda m, i, o, name=name: order.append(name)))
    hooks.append(model.get_submodule(latent).register_forward_hook(lambda m, i, o: order.append("@" + latent)))
    try:
        with torch.no_grad():
            model(x_example[:1])
    finally:
        for h in hooks:
            h.remove()
    after = order[order.index("@" + latent) + 1:]
    return [n for n, p in model.named_parameters() if p.requires_grad and n.rpartition(".")[0] in after]


def latent_inputs(model: nn.Module, latent: str, x: Tensor) -> Tensor:
    """The outputs of module `latent` for the samples x (no grad)."""
    got = []
    h = model.get_submodule(latent).register_forward_hook(lambda m, i, o: got.append(o.detach()))
    try:
        with torch.no_grad():
            model(x)
    finally:
        h.remove()
    return got[0]


def _setup(model, params, x, latent):
    names = [n for n in params] if latent is None else downstream_params(model, latent, x)
    if latent is not None:
        object.__setattr__(model, "_leak_latent_input", x[0])
        x = latent_inputs(model, latent, x)
    return names, x


def hutchinson(model: nn.Module, params: dict, x: Tensor, y: Tensor, probes: int, *, generator: torch.Generator,
               u: Tensor | None = None, latent: str | None = None, chunk: int = 64) -> dict:
    """Per-sample Hutchinson estimates: {"fro2": {name: (N,) mean over probes of ||J v||²}, "attr2": {name: (N,)
    ||J u||² averaged over the directions u (k, *x.shape[1:])} or None}. One JVP covers every layer."""
    names, x = _setup(model, params, x, latent)
    g = _single_grad_fn(model, params, names, latent)
    quiet = _quiet_forward_ad()
    try:
        return _hutchinson(g, names, x, y, probes, generator, u, chunk)
    finally:
        quiet.__exit__(None, None, None)


def _hutchinson(g, names, x, y, probes, generator, u, chunk) -> dict:
    def jv(xi, yi, v):
        return jvp(lambda z: g(z, yi), (xi,), (v,))[1]

    per_probe = vmap(jv, in_dims=(None, None, 0))  # over probes
    per_sample = vmap(per_probe, in_dims=(0, 0, 0))
    fro: dict[str, list] = {n: [] for n in names}
    att: dict[str, list] = {n: [] for n in names}
    for i in range(0, x.shape[0], chunk):
        xc, yc = x[i:i + chunk], y[i:i + chunk]
        v = torch.randn((xc.shape[0], probes) + tuple(xc.shape[1:]), generator=generator).to(xc)
        out = per_sample(xc, yc, v)
        for n in names:
            fro[n].append(out[n].flatten(2).pow(2).sum(-1).mean(1))
        if u is not None:
            uu = u.to(xc)[None].expand(xc.shape[0], *u.shape)
            out = per_sample(xc, yc, uu)
            for n in names:
                att[n].append(out[n].flatten(2).pow(2).sum(-1).mean(1))
    return {"fro2": {n: torch.cat(fro[n]) for n in names},
            "attr2": {n: torch.cat(att[n]) for n in names} if u is not None else None}


def exact_norms(model: nn.Module, params: dict, x: Tensor, y: Tensor, *, method: str = "auto",
                latent: str | None = None, chunk: int = 256) -> dict[str, Tensor]:
    """{name: (N,) ||J_l(x)||_F²} exactly: `jacrev` (small layers) or a basis sweep of batched JVPs."""
    names, x = _setup(model, params, x, latent)
    g = _single_grad_fn(model, params, names, latent)
    nx = int(math.prod(x.shape[1:]))
    total = sum(params[n].numel() for n in names) * nx
    if method == "jacrev" or (method == "auto" and total <= JACREV_LIMIT):
        jac = vmap(jacrev(g), in_dims=(0, 0))(x, y)
        return {n: jac[n].flatten(1).pow(2).sum(-1) for n in names}
    eye = torch.eye(nx, dtype=x.dtype, device=x.device).reshape((nx,) + tuple(x.shape[1:]))

    def jv(xi, yi, v):
        return jvp(lambda z: g(z, yi), (xi,), (v,))[1]

    sweep = vmap(jv, in_dims=(None, None, 0))
    out = {n: torch.zeros(x.shape[0], dtype=x.dtype, device=x.device) for n in names}
    quiet = _quiet_forward_ad()
    try:
        for i in range(x.shape[0]):
            for s in range(0, nx, chunk):
                r = sweep(x[i], y[i], eye[s:s + chunk])
                for n in names:
                    out[n][i] += r[n].flatten(1).pow(2).sum()
    finally:
        quiet.__exit__(None, None, None)
    return out


def ones_vjp(model: nn.Module, params: dict, x: Tensor, y: Tensor, *, latent: str | None = None) -> dict[str, Tensor]:
    """{name: (N,) ||∂(Σ entries of ∇_{θ_l} ℓ)/∂x||} (GradDefense's recipe, a different quantity; see §2.4)."""
    names, x = _setup(model, params, x, latent)
    g = _single_grad_fn(model, params, names, latent)

    def sums(xi, yi):
        gg = g(xi, yi)
        return torch.stack([gg[n].sum() for n in names])

    jac = vmap(jacrev(sums), in_dims=(0, 0))(x, y)  # (N, L, *x)
    norms = jac.flatten(2).norm(dim=-1)
    return {n: norms[:, k] for k, n in enumerate(names)}


def attribute_directions(x: Tensor, s: Tensor) -> Tensor:
    """(k, *x.shape[1:]) unit directions: μ_{s=1} − μ_{s=0} for binary s, else one-vs-rest μ_c − μ_{¬c}."""
    classes = torch.unique(s)
    flat = x.flatten(1)
    dirs = []
    if len(classes) == 2:
        d = flat[s == classes[1]].mean(0) - flat[s == classes[0]].mean(0)
        dirs.append(d)
    else:
        for c in classes:
            dirs.append(flat[s == c].mean(0) - flat[s != c].mean(0))
    D = torch.stack(dirs)
    D = D / D.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return D.reshape((len(dirs),) + tuple(x.shape[1:]))


def summarize(values: dict[str, Tensor], n_params: dict[str, int]) -> dict[str, dict]:
    """Root mean square over samples and its standard error (delta method) per name."""
    out = {}
    for n, v in values.items():
        v = v.double()
        m = float(v.mean())
        se_m = float(v.std() / math.sqrt(len(v))) if len(v) > 1 else float("nan")
        root = math.sqrt(max(m, 0.0))
        out[n] = {"value": root, "se": se_m / (2 * root) if root > 0 else float("nan"),
                  "per_param": root / math.sqrt(n_params[n])}
    return out
