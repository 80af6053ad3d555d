"""The Bayesian side of `wise classify` (spec §2.4): the KL schedule and loss of implicit BNNs (Trinh, Kaski,
Heinonen, arXiv 2010.13498; `trungtrinh44/ibnn`), and predictive averaging over samples for every `--bayes` mode.

The layers themselves (`ImplicitLayer`, `convert_to_implicit`, `implicit_kl`, `implicit_parameters`) live in
`wisecli/nn/implicit.py`, not here as the spec's file list says: `wisecli.nn.zoo.load_classifier`, which `explain`
and `leakage` share, must rebuild them without importing this engine [reconstructed].

- Training: the batch is repeated L = `train_samples` times (`x.repeat(L, ...)`; row r of the N rows uses component
  floor(r K / N), the layout of `wisecli.nn.implicit`); the loss is -mean log p(y|x,z) over all replicas + beta_t KL / N_train.
- beta_t [reconstructed, the repo anneals linearly]: min(1, epoch / ceil(2E/3)) for 1-based epochs, so it rises
  linearly and reaches 1 after the first two thirds of the E epochs (it never starts at exactly 0, so a one-epoch
  run still sees the KL term).
- Prediction: S samples per component: the batch is repeated K S times (one pass), log p̄ = logsumexp over the
  K S log-probabilities - log(K S). `mc-dropout` runs S passes-worth of replicas with dropout on (16 by default);
  `ensemble` models return (members, B, C) in one vmapped pass; `none` is one deterministic pass.
- Mutual information (epistemic part) = H[p̄] - mean_s H[p_s]; 0 for `none`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BAYES = ("none", "implicit", "mc-dropout", "ensemble")
DEFAULT_SAMPLES = {"none": 1, "implicit": 4, "mc-dropout": 16, "ensemble": 1}


def beta_at(epoch: int, epochs: int) -> float:
    """KL weight of 1-based `epoch` out of `epochs`: linear up to 1 over the first two thirds."""
    ramp = max(1, math.ceil(2 * epochs / 3))
    return min(1.0, epoch / ramp)


def repeat_batch(x: Tensor, times: int) -> Tensor:
    """x repeated `times` along the batch: replica i is rows [i B, (i+1) B); with `times` = K S, replicas
    [k S, (k+1) S) use component k (`wisecli.nn.implicit.component_index`)."""
    return x.repeat(times, *([1] * (x.ndim - 1))) if times > 1 else x


def implicit_kl_term(model: nn.Module) -> Tensor:
    """The as-coded KL surrogate of `wisecli.nn.implicit` (0-d tensor)."""
    from wisecli.nn.implicit import implicit_kl

    return implicit_kl(model)


def replicas(bayes: str, samples: int | None, components: int) -> int:
    """How many replicas of a batch one predictive pass evaluates."""
    s = int(samples or DEFAULT_SAMPLES[bayes])
    if bayes == "implicit":
        return int(components) * s
    if bayes == "mc-dropout":
        return s
    return 1


def _dropout_on(model: nn.Module, on: bool) -> None:
    for m in model.modules():
        if isinstance(m, (nn.Dropout, nn.Dropout2d, nn.Dropout1d, nn.AlphaDropout)):
            m.train(on)


def sample_log_probs(model: nn.Module, x: Tensor, bayes: str, samples: int | None = None,
                     components: int = 1) -> Tensor:
    """(S, B, C) fp32 log-probabilities of the samples the `bayes` mode averages (model in eval mode)."""
    b = x.shape[0]
    if bayes == "ensemble":
        logits = model(x)
        if logits.ndim == 2:
            logits = logits[None]
        return F.log_softmax(logits.float(), dim=-1)
    n = replicas(bayes, samples, components)
    if bayes == "mc-dropout":
        _dropout_on(model, True)
        try:
            logits = model(repeat_batch(x, n))
        finally:
            _dropout_on(model, False)
    else:
        logits = model(repeat_batch(x, n))
    return F.log_softmax(logits.float().reshape(n, b, -1), dim=-1)


def average(logps: Tensor) -> Tensor:
    """log p̄ (B, C) = logsumexp over samples - log S."""
    return torch.logsumexp(logps, dim=0) - math.log(logps.shape[0])


def mutual_info(logps: Tensor, logp_bar: Tensor) -> Tensor:
    """(B,) H[p̄] - mean_s H[p_s] (>= 0 up to rounding)."""
    from .metrics import entropy

    h_bar = entropy(logp_bar)
    h_s = -(logps.exp() * logps.clamp_min(-1e4)).sum(-1).mean(0)
    return (h_bar - h_s).clamp_min(0)


def predictive(model: nn.Module, x: Tensor, bayes: str, samples: int | None = None, components: int = 1,
               *, with_samples: bool = False):
    """log p̄ (B, C) of `x`, or (log p̄, the (S, B, C) sample log-probs) with `with_samples`."""
    lp = sample_log_probs(model, x, bayes, samples, components)
    bar = average(lp)
    return (bar, lp) if with_samples else bar
