"""Effective settings of a command: engine defaults < `--config` TOML < `WISE_*` env < `--set` < flags.

Keys are flat and dotted (`schedule.epochs1`); TOML sections nest (`[schedule] epochs1 = 30`). Every value
is coerced to the type of its default, and every value remembers where it came from, so `run.json` can say.
Unknown keys are an input error with a did-you-mean hint.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wisecli.cli.errors import InputError


@dataclass
class Resolved:
    """Effective settings: `values` by key and, for each, where it came from (`sources`)."""

    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def as_record(self) -> dict[str, dict[str, Any]]:
        """`{key: {"value", "source"}}` for run.json."""
        return {k: {"value": v, "source": self.sources[k]} for k, v in self.values.items()}


def env_name(key: str, prefix: str = "WISE_") -> str:
    """The environment variable of a setting: `schedule.epochs1` -> `WISE_SCHEDULE_EPOCHS1`."""
    return prefix + key.upper().replace(".", "_").replace("-", "_")


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in tree.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            flat.update(_flatten(v, name + "."))
        else:
            flat[name] = v
    return flat


def _unknown(key: str, known: list[str], where: str) -> InputError:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'?" if close else f"known settings: {', '.join(sorted(known)) or 'none'}"
    return InputError(f"unknown setting '{key}' in {where}", hint=hint)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def coerce(key: str, value: Any, default: Any, where: str) -> Any:
    """Convert `value` (often a string) to the type of `default`; a mismatch is an input error."""
    if default is None or value is None:
        return value
    kind = type(default)
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(value)
        if kind is int:
            if isinstance(value, bool):
                raise ValueError(value)
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if kind in (list, tuple):
            if isinstance(value, str):
                value = [p.strip() for p in value.split(",") if p.strip()]
                if default:
                    value = [type(default[0])(p) for p in value]
            return kind(value)
        if kind is str:
            return str(value)
    except (TypeError, ValueError):
        raise InputError(
            f"setting '{key}' from {where} must be {kind.__name__}, got {value!r}",
            hint=f"the default is {default!r}",
        ) from None
    return value


def one_of(flag: str, value: Any, allowed) -> None:
    """Refuse a setting that is not one of `allowed` (exit 2, with a did-you-mean hint). Typer checks the choices
    of a flag, but values from `--config`, `--set`, `WISE_*` and the Python API reach the engine unchecked."""
    if value in allowed:
        return
    names = [str(a) for a in allowed if a is not None]
    close = difflib.get_close_matches(str(value), names, n=1)
    raise InputError(f"{flag} {value!r} is not one of {', '.join(names)}",
                     hint=f"did you mean '{close[0]}'?" if close else f"use one of {', '.join(names)}")


def check_settings(values: dict[str, Any], defaults: dict[str, Any], *, choices: dict | None = None,
                   positive=(), not_negative=(), caps: dict | None = None) -> None:
    """Refuse (exit 2) a resolved setting outside its range: a key of `choices` not among its values, a key of
    `positive` that is not a finite number > 0, of `not_negative` not ≥ 0, of `caps` above its cap, any int
    of 2³¹ or more. Values from `--config`, `--set`, `WISE_*` and the Python API pass no Typer check."""
    import math

    for k, allowed in (choices or {}).items():
        if values.get(k) is not None:
            one_of("--" + k.replace("_", "-"), values[k], allowed)
    for k, x in values.items():
        flag, hint = "--" + k.replace("_", "-"), f"the default is {defaults.get(k)}"
        if x is None or isinstance(x, bool) or not isinstance(x, (int, float, str)):
            continue
        if k in positive or k in not_negative:
            try:
                x = float(x)
            except ValueError:
                raise InputError(f"{flag} must be a number, not {values[k]!r}", hint="e.g. 1") from None
            zero_ok = k in not_negative
            if not math.isfinite(x) or x < 0 or (x == 0 and not zero_ok):
                raise InputError(f"{flag} must be a finite number {'>= 0' if zero_ok else '> 0'}, not {values[k]}",
                                 hint=hint)
        if k in (caps or {}) and isinstance(x, (int, float)) and x > caps[k]:
            raise InputError(f"{flag} {values[k]} is too large (at most {caps[k]:g})", hint=hint)
        if isinstance(x, int) and abs(x) >= 2**31:
            raise InputError(f"{flag} {x} is too large", hint=hint)


def read_config_file(path: Path) -> dict[str, Any]:
    """A `--config` TOML file as flat dotted keys; unreadable or invalid files are input errors."""
    try:
        with open(path, "rb") as fh:
            return _flatten(tomllib.load(fh))
    except FileNotFoundError:
        raise InputError(f"config file not found: {path}", hint="check the --config path") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"config file {path} is not valid TOML: {exc}", hint="see https://toml.io") from None
    except UnicodeDecodeError:
        raise InputError(f"config file {path} is not UTF-8 text", hint="--config takes a TOML file") from None
    except OSError as exc:
        raise InputError(f"cannot read config file {path}: {exc.strerror}", hint="check permissions") from None


def parse_sets(sets: list[str] | None) -> dict[str, str]:
    """`--set key=value` words as a dict; a word without `=` is an input error."""
    out: dict[str, str] = {}
    for item in sets or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set expects key=value, got {item!r}", hint="for example --set schedule.epochs1=30")
        out[key.strip()] = value.strip()
    return out


def resolve(
    defaults: dict[str, Any],
    *,
    flags: dict[str, Any] | None = None,
    config_file: Path | None = None,
    sets: list[str] | None = None,
    env_prefix: str = "WISE_",
    environ: dict[str, str] | None = None,
) -> Resolved:
    """Merge the layers; `flags` holds only options the user gave (None means not given). A `seed` below 0
    is refused here for every method (numpy and torch generators take 0 and up).

    `config_file` and `sets` left at None come from the verb's shared `--config`/`--set` (`cli.common`)."""
    from wisecli.cli.common import shared

    config_file = shared("config") if config_file is None else config_file
    sets = shared("set_") if sets is None else sets
    environ = os.environ if environ is None else environ
    known = list(defaults)
    res = Resolved(dict(defaults), {k: "default" for k in defaults})

    layers: list[tuple[str, dict[str, Any]]] = []
    if config_file is not None:
        layers.append(("config", read_config_file(Path(config_file))))
    env_layer = {k: environ[env_name(k, env_prefix)] for k in known if env_name(k, env_prefix) in environ}
    layers.append(("env", env_layer))
    layers.append(("set", parse_sets(sets)))
    layers.append(("flag", {k: v for k, v in (flags or {}).items() if v is not None}))

    for source, layer in layers:
        where = {"config": f"--config {config_file}", "env": "the environment", "set": "--set",
                 "flag": "the command line"}[source]
        for key, value in layer.items():
            if key not in defaults:
                raise _unknown(key, known, where)
            # an object given through the Python API (a torch.device, an array) is the caller's own: kept as is
            plain = isinstance(value, (str, int, float, bool, list, tuple, dict, os.PathLike))
            res.values[key] = coerce(key, value, defaults[key], where) if source != "flag" or plain else value
            res.sources[key] = source
    seed = res.values.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool) and seed < 0:
        raise InputError(f"--seed must be 0 or more, got {seed}", hint="seeds are 0, 1, 2, ...; the default is 0")
    return res
