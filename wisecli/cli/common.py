"""Shared flags by construction: every verb of every method takes `--debug`, `-v`, `-q`, `--config` and
`--set`, and its help shows the engine's default for every option the command leaves at `None`.

A method's command module makes its app with `MethodApp("name", help=...)`. Its `command()` decorator adds
the shared options a verb does not declare itself, keeps their values for the invocation (`shared()`),
and sets `show_default` from `wisecli.engines.<name>.api.DEFAULTS[<verb>]` (api.py imports only the
standard library at the top, so this costs nothing at start-up). `Sink()` and `cli.config.resolve()` read
`-q/-v` and `--config/--set` from here when the command does not pass them, so a verb's body never has to.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import importlib
import inspect
from typing import Annotated, Any, get_args, get_origin

import typer

from wisecli.cli import options as o
from wisecli.cli.config import read_config_file
from wisecli.cli.errors import InputError

_SHARED = {"debug": (o.Debug, False), "verbose": (o.Verbose, False), "quiet": (o.Quiet, False),
           "config": (o.Config, None), "set_": (o.Set, None)}
_VALUES: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("wise_shared", default={})


def shared(name: str, default: Any = None) -> Any:
    """The value of a shared flag (`debug`, `verbose`, `quiet`, `config`, `set_`) for the running verb."""
    value = _VALUES.get().get(name)
    return default if value is None else value


def _with_default(annotation: Any, default: Any) -> Any:
    """A copy of an `Annotated[T, typer.Option(...)]` whose help shows `default`."""
    if get_origin(annotation) is not Annotated:
        return annotation
    base, *meta = get_args(annotation)
    out = []
    for m in meta:
        if isinstance(m, typer.models.OptionInfo) and m.show_default in (True, None):
            m = copy.copy(m)
            m.show_default = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        out.append(m)
    return Annotated[(base, *out)]


def _conform(fn, defaults: dict[str, Any]):
    sig = inspect.signature(fn, eval_str=True)
    params = []
    for p in sig.parameters.values():
        if p.default is None and p.name in defaults and defaults[p.name] is not None:
            p = p.replace(annotation=_with_default(p.annotation, defaults[p.name]))
        params.append(p)
    declared = set(sig.parameters)
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=default)
             for name, (ann, default) in _SHARED.items() if name not in declared]

    @functools.wraps(fn)
    def verb(*args, **kwargs):
        values = {name: kwargs.get(name) for name in _SHARED}
        for p in added:
            kwargs.pop(p.name, None)
        token = _VALUES.set(values)
        try:
            if values["config"] is not None:  # a bad --config is refused even by a verb that reads no setting
                read_config_file(values["config"])
            return fn(*args, **kwargs)
        except EOFError as exc:  # a reader that ran off the end of a truncated file: an input error, not Ctrl-D
            raise InputError(f"unexpected end of data{': ' + str(exc) if str(exc) else ''}",
                             hint="an input file is truncated or empty") from None
        finally:
            _VALUES.reset(token)

    kinds = [p for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]
    verb.__signature__ = sig.replace(parameters=kinds + added)
    verb.__annotations__ = {p.name: p.annotation for p in kinds + added}
    return verb


class MethodApp(typer.Typer):
    """The Typer app of one method: verbs get the shared flags and show the engine's defaults."""

    def __init__(self, method: str, **kwargs: Any):
        kwargs.setdefault("no_args_is_help", True)
        super().__init__(**kwargs)
        self.method = method

    def _defaults(self, verb: str) -> dict[str, Any]:
        api = importlib.import_module(f"wisecli.engines.{self.method.replace('-', '_')}.api")
        return dict(getattr(api, "DEFAULTS", {}).get(verb, {}))

    def command(self, name: str | None = None, **kwargs: Any):
        """Register a verb like `typer.Typer.command`, with the shared flags and the engine's defaults."""
        register = super().command(name, **kwargs)

        def decorator(fn):
            verb = name or fn.__name__.replace("_", "-")
            register(_conform(fn, self._defaults(verb)))
            return fn

        return decorator
