"""Shared optimisers: LAMBC, LAMB, LARS (foreach, no host sync) and `build_optimizer` by name.

`build_optimizer(name, params, *, lr, weight_decay=None, **options)` for `name` in `OPTIMIZERS`:

| name    | class                         | weight decay default | options                                                    |
|---------|-------------------------------|----------------------|------------------------------------------------------------|
| `sgd`   | `torch.optim.SGD`             | 5e-4                 | momentum (0.9), nesterov (False), foreach                  |
| `adamw` | `torch.optim.AdamW`           | 0.01 (torch's)       | betas, eps, amsgrad, foreach                               |
| `lars`  | `LARS`                        | 5e-4                 | momentum (0.9), eta (0.001), exclude_1d (True), nesterov   |
| `lamb`  | `LAMB` (= LAMBC, clip None)   | 0                    | betas, eps, clip_low, bias_correction, decoupled_decay, exclude_1d, compile_step |
| `lambc` | `LAMBC`                       | 0                    | the lamb options and clip (1.0)                            |

`LAMBC.step()` returns its `lambc_*` statistics as 0-d device tensors and keeps them in `last_stats` (the
trainer ignores `step`'s return value); `LAMBC.reset_state()` zeroes m, v and t, and `ResetOnEpoch(sampler,
optimizer)` wraps a sampler so the trainer's `set_epoch` does that reset every epoch (`--faithful`).
`reference.ReferenceLAMBC` is the plain per-tensor loop (the tests' oracle, the benchmark's looping peer).

An unknown name, an unknown option (with a did-you-mean hint) or a bad value is an `InputError` (exit 2).
Options may come as text (from `--set optim.clip=none`): numbers, booleans, `none`/`inf` and `a,b` pairs are
parsed. `params` is anything `torch.optim` accepts (tensors or parameter-group dicts).
"""

from __future__ import annotations

import difflib
import math
from typing import Any

import torch

from wisecli.cli.errors import InputError
from wisecli.optim.lambc import LAMB, LAMBC, STAT_KEYS, ResetOnEpoch
from wisecli.optim.lars import LARS

OPTIMIZERS = ("sgd", "adamw", "lars", "lamb", "lambc")

_LAMB_OPTIONS = ("betas", "eps", "clip_low", "bias_correction", "decoupled_decay", "exclude_1d", "compile_step")
_SPEC: dict[str, tuple[float, tuple[str, ...]]] = {
    "sgd": (5e-4, ("momentum", "nesterov", "foreach", "dampening")),
    "adamw": (1e-2, ("betas", "eps", "amsgrad", "foreach")),
    "lars": (5e-4, ("momentum", "eta", "exclude_1d", "nesterov")),
    "lamb": (0.0, _LAMB_OPTIONS),
    "lambc": (0.0, _LAMB_OPTIONS + ("clip",)),
}
_BOOL = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}
_FLAGS = ("nesterov", "foreach", "amsgrad", "bias_correction", "decoupled_decay", "exclude_1d", "compile_step")
_BOUNDS = ("clip", "clip_low")


def _bad(name: str, key: str, value: Any, why: str) -> InputError:
    return InputError(f"optimizer {name}: option {key}={value!r} {why}", hint=_hint(name))


def _hint(name: str) -> str:
    opts = ", ".join(_SPEC[name][1])
    return f"{name} takes lr, weight_decay and {opts}"


def _coerce(name: str, key: str, value: Any) -> Any:
    """Parse text values and check types/ranges; returns the value the optimiser gets."""
    if key in _FLAGS:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _BOOL:
            return _BOOL[value.strip().lower()]
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise _bad(name, key, value, "is not true/false")
    if key in _BOUNDS:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "inf", "off", "")):
            return None
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise _bad(name, key, value, "is not a number (or none)") from None
        if math.isinf(v) and v > 0:
            return None
        if not v > 0 or math.isnan(v):
            raise _bad(name, key, value, "must be positive (or none)")
        return v
    if key == "betas":
        if isinstance(value, str):
            value = [t for t in value.replace("(", "").replace(")", "").split(",") if t.strip()]
        try:
            b = tuple(float(t) for t in value)
        except (TypeError, ValueError):
            raise _bad(name, key, value, "is not a pair of numbers like 0.9,0.999") from None
        if len(b) != 2 or not all(0.0 <= t < 1.0 for t in b):
            raise _bad(name, key, value, "needs two numbers in [0, 1)")
        return b
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise _bad(name, key, value, "is not a number") from None
    if math.isnan(v) or math.isinf(v):
        raise _bad(name, key, value, "is not finite")
    if key in ("momentum", "dampening") and not 0.0 <= v < 1.0:
        raise _bad(name, key, value, "must be in [0, 1)")
    if key in ("eps",) and not v >= 0.0:
        raise _bad(name, key, value, "must be >= 0")
    if key == "eta" and not v > 0.0:
        raise _bad(name, key, value, "must be positive")
    return v


def build_optimizer(name: str, params, *, lr, weight_decay=None, **options) -> torch.optim.Optimizer:
    """An optimiser by name (see the module docstring); `InputError` for a bad name, option or value."""
    if name not in _SPEC:
        close = difflib.get_close_matches(str(name), OPTIMIZERS, n=1)
        raise InputError(f"unknown optimizer {name!r}",
                         hint=f"did you mean '{close[0]}'?" if close else f"use one of {', '.join(OPTIMIZERS)}")
    default_wd, allowed = _SPEC[name]
    if isinstance(lr, torch.Tensor):
        lr_value = lr
    else:
        try:
            lr_value = float(lr)
        except (TypeError, ValueError):
            raise InputError(f"optimizer {name}: lr {lr!r} is not a number", hint="for example --lr 0.01") from None
        if not lr_value > 0 or math.isinf(lr_value):
            raise InputError(f"optimizer {name}: lr must be a positive number, got {lr!r}", hint="for example --lr 0.01")
    wd = default_wd if weight_decay is None else weight_decay
    try:
        wd = float(wd)
    except (TypeError, ValueError):
        raise InputError(f"optimizer {name}: weight_decay {weight_decay!r} is not a number",
                         hint="for example --set optim.weight_decay=5e-4") from None
    if not wd >= 0 or math.isinf(wd):
        raise InputError(f"optimizer {name}: weight_decay must be >= 0, got {weight_decay!r}",
                         hint="for example --set optim.weight_decay=5e-4")
    kw: dict[str, Any] = {}
    for key, value in options.items():
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            raise InputError(f"optimizer {name} has no option {key!r}",
                             hint=f"did you mean '{close[0]}'?" if close else _hint(name))
        kw[key] = _coerce(name, key, value)
    params = list(params)
    if not params:
        raise InputError(f"optimizer {name}: the model has no trainable parameters", hint="check --arch and --init")
    if name == "sgd":
        kw.setdefault("momentum", 0.9)
        if kw.get("nesterov") and kw["momentum"] == 0:
            raise _bad(name, "nesterov", True, "needs a momentum above 0")
        return torch.optim.SGD(params, lr=lr_value, weight_decay=wd, **kw)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr_value, weight_decay=wd, **kw)
    try:
        if name == "lars":
            return LARS(params, lr=lr_value, weight_decay=wd, **kw)
        if name == "lamb":
            return LAMB(params, lr=lr_value, weight_decay=wd, **kw)
        return LAMBC(params, lr=lr_value, weight_decay=wd, **kw)
    except ValueError as exc:
        raise InputError(f"optimizer {name}: {exc}", hint=_hint(name)) from None


__all__ = ["LAMB", "LAMBC", "LARS", "OPTIMIZERS", "STAT_KEYS", "ResetOnEpoch", "build_optimizer"]
