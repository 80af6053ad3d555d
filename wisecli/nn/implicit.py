"""Implicit Bayesian neural networks (spec §2.4; Trinh, Kaski, Heinonen, arXiv 2010.13498): multiplicative
latent variables on each layer's input, from a K-component Gaussian mixture, in place of a weight posterior.

`trungtrinh44/ibnn`'s `StoLayer` is read [public code] but carries no licence: this is a re-implementation.

Each wrapped layer (an `nn.Conv2d`, `nn.Linear` or one of `wisecli.nn.radial`'s convs), input h:

    out = W (h * z) + zeta b,   (z, zeta) ~ N(mu_k, softplus(rho_k)^2),  z: (C_in, 1, 1) conv / (d_in,) linear

with zeta one scalar latent for the bias (the bias is a weight on a constant input of 1, and that input is
multiplied like the others). It is computed as `layer(h * z) + (zeta - 1) b`, so any layer whose bias is
added last along the channel axis is wrapped without knowing its maths.

- Parameters per layer: `mu`, `rho` of shape (K, C_in + has_bias) (the last column is zeta's). Init
  mu ~ N(1, 0.5), sigma ~ |N(0.05, 0.02)| stored as rho = softplus^-1(sigma) (spec §2.4; options).
  Prior N(1, s0^2), s0 = `prior_std` = 0.3.
- Components and replicas [reconstructed]: the layer is stateless; row n of a batch of N rows uses component
  floor(n K / N) (contiguous, disjoint, equal chunks). The engine repeats a batch of B samples L times as
  `x.repeat(L, 1, ...)` (replica i = rows [iB, (i+1)B)); when K divides L each replica uses ONE component,
  floor(i K / L), so "S samples per component" is L = K S replicas, replicas [kS, (k+1)S) drawing from
  component k. With L < K (training with L = 2, K = 4) each replica is split over K/L components, so every
  component still sees an equal share of every batch. `component_index(N, K)` is the rule. `model(x)` on an
  unrepeated batch is one valid posterior sample per row. The noise is one `randn` of (N, C_in+1) per layer
  per forward (compile/vmap friendly, no `.item()`), drawn in training and in eval alike.
- KL as coded (a documented surrogate, spec §2.4): per latent entry one Gaussian with mean mean_k mu_k and std
  sqrt(sum_k sigma_k^2) / K against the prior N(1, s0^2) in closed form; `implicit_kl(model)` sums every
  entry of every layer (a 0-d tensor on the parameters' device).
- `convert_to_implicit(model, K)` wraps every such layer in place (MONAI nets included, nothing else changes);
  the wrapped layer is `wrapper.layer`, so state-dict keys gain `.layer.` and the latents `.mu`/`.rho`.
- `implicit_parameters(model)`: the variational parameters (mu, rho), for their own optimizer group (no wd).

Where it lives [reconstructed]: the spec names `engines/classify/bayes.py`; the layers are here because
`wisecli.nn.zoo.load_classifier` (shared with `explain`, `leakage`) must rebuild them without importing an
engine. The engine's `bayes.py` keeps the beta schedule, the loss and the predictive averaging.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .radial import DWSepRadialConv2d, RadialConv2d, RotatedRingConv2d

#: the layer types whose input is multiplied: channel axis 1 for convs, the last axis for Linear
CONV_TYPES = (nn.Conv2d, RotatedRingConv2d, RadialConv2d, DWSepRadialConv2d)
WRAPPED_TYPES = CONV_TYPES + (nn.Linear,)


def inverse_softplus(y: Tensor) -> Tensor:
    """x with softplus(x) = y (y > 0), stable for small y."""
    return y + torch.log(-torch.expm1(-y))


def component_index(n: int, k: int, device=None) -> Tensor:
    """(n,) long: the mixture component of each of n rows, floor(row K / n)."""
    return torch.div(torch.arange(n, device=device) * k, n, rounding_mode="floor")


class ImplicitLayer(nn.Module):
    """A layer with multiplicative K-component Gaussian-mixture latents on its input (and a scalar one on its
    bias): see the module docstring."""

    def __init__(self, layer: nn.Module, components: int, prior_mean: float = 1.0, prior_std: float = 0.3,
                 init_mean: tuple[float, float] = (1.0, 0.5), init_std: tuple[float, float] = (0.05, 0.02)):
        super().__init__()
        if not isinstance(layer, WRAPPED_TYPES):
            raise TypeError(f"cannot wrap {type(layer).__name__}")
        if components < 1:
            raise ValueError("components must be >= 1")
        self.layer = layer
        self.components = int(components)
        self.is_linear = isinstance(layer, nn.Linear)
        self.in_features = layer.in_features if self.is_linear else layer.in_channels
        self.has_bias = getattr(layer, "bias", None) is not None
        self.prior_mean, self.prior_std = float(prior_mean), float(prior_std)
        ref = next(layer.parameters())
        d = self.in_features + int(self.has_bias)
        mu = torch.empty(self.components, d, device=ref.device, dtype=ref.dtype).normal_(*init_mean)
        sigma = torch.empty(self.components, d, device=ref.device, dtype=ref.dtype).normal_(*init_std).abs_()
        self.mu = nn.Parameter(mu)
        self.rho = nn.Parameter(inverse_softplus(sigma.clamp_min(1e-6)))

    def sigma(self) -> Tensor:
        """(K, C_in + has_bias) standard deviations softplus(rho)."""
        return F.softplus(self.rho)

    def sample(self, n: int) -> Tensor:
        """(n, C_in + has_bias) latents; row n from component floor(n K / N)."""
        idx = component_index(n, self.components, self.mu.device)
        mu, sigma = self.mu[idx], self.sigma()[idx]
        return mu + sigma * torch.randn_like(mu)

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        z = self.sample(n).to(x.dtype)
        zin = z[:, : self.in_features]
        if self.is_linear:
            zin = zin.view(n, *([1] * (x.dim() - 2)), self.in_features)
        else:
            zin = zin.view(n, self.in_features, *([1] * (x.dim() - 2)))
        out = self.layer(x * zin)
        if self.has_bias:
            zeta = z[:, -1] - 1
            b = self.layer.bias.to(out.dtype)
            if self.is_linear:
                out = out + zeta.view(n, *([1] * (out.dim() - 1))) * b
            else:
                out = out + zeta.view(n, 1, *([1] * (out.dim() - 2))) * b.view(1, -1, *([1] * (out.dim() - 2)))
        return out

    def kl(self) -> Tensor:
        """The as-coded surrogate KL of this layer (0-d): one Gaussian per entry vs the prior."""
        k = self.components
        m = self.mu.mean(0)
        s = self.sigma().pow(2).sum(0).sqrt() / k
        s0 = self.prior_std
        return (math.log(s0) - torch.log(s) + (s.pow(2) + (m - self.prior_mean).pow(2)) / (2 * s0 * s0) - 0.5).sum()

    def extra_repr(self) -> str:
        return f"components={self.components}, latents={self.in_features}+{int(self.has_bias)}, prior_std={self.prior_std}"


def convert_to_implicit(model: nn.Module, K: int, prior_std: float = 0.3, **layer_options) -> nn.Module:
    """Wrap every Conv2d/Linear (and radial conv) of `model` in place with an `ImplicitLayer` of K components;
    returns `model`. Layers inside an already wrapped layer or a radial conv are left alone."""
    if int(K) < 1:
        raise ValueError("K (components) must be >= 1")

    def visit(module: nn.Module) -> None:
        for name, child in list(module.named_children()):
            if isinstance(child, ImplicitLayer):
                continue
            if isinstance(child, WRAPPED_TYPES):
                setattr(module, name, ImplicitLayer(child, int(K), prior_std=prior_std, **layer_options))
            else:
                visit(child)

    if isinstance(model, WRAPPED_TYPES):
        raise TypeError("convert_to_implicit wraps the layers inside a model; wrap a bare layer with ImplicitLayer")
    visit(model)
    return model


def implicit_layers(model: nn.Module) -> list[ImplicitLayer]:
    """Every ImplicitLayer of `model`, in module order."""
    return [m for m in model.modules() if isinstance(m, ImplicitLayer)]


def implicit_kl(model: nn.Module) -> Tensor:
    """Sum of every ImplicitLayer's surrogate KL (0-d tensor; 0 on the model's device when there is none)."""
    layers = implicit_layers(model)
    if not layers:
        p = next(model.parameters(), None)
        return torch.zeros((), device=p.device if p is not None else None)
    return torch.stack([m.kl() for m in layers]).sum()


def implicit_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The variational parameters (every ImplicitLayer's mu and rho)."""
    out: list[nn.Parameter] = []
    for m in implicit_layers(model):
        out += [m.mu, m.rho]
    return out


def is_implicit(model: nn.Module) -> bool:
    """Whether `model` holds any ImplicitLayer."""
    return any(True for _ in implicit_layers(model))
