"""The root `wise` command: mounts every method of the registry and the suite-level commands
(`version`, `doctor`, `demo`, `benchmark`), and maps errors to exit codes in `main()`.

Only typer, rich and the standard library are imported here; engines load inside command bodies, so
`wise --help` and TAB completion stay fast.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
import warnings
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from wisecli import __version__
from wisecli.cli import options as o
from wisecli.cli.errors import EXIT_INTERRUPTED, InputError, PartialFailure, WiseError
from wisecli.cli.output import Sink
from wisecli.registry import METHODS

app = typer.Typer(
    name="wise",
    help="wise: -wise research methods as fast command-line tools (GPU when present).",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)



class _LazyMethod(TyperGroup):
    """A method's command group that imports its command module and builds its verbs on first use, so
    `wise --help` and a TAB completion cost the same with twenty methods as with one."""

    module = ""

    def _real(self) -> TyperGroup:
        if "_built" not in self.__dict__:
            self._built = typer.main.get_command(importlib.import_module(self.module).app)
        return self._built

    @property
    def commands(self):  # click reads and lists the verbs through this mapping
        return self._real().commands

    @commands.setter
    def commands(self, value) -> None:  # Typer hands an empty mapping to the placeholder
        pass


for _entry in METHODS:
    app.add_typer(typer.Typer(cls=type(f"Lazy_{_entry.module}", (_LazyMethod,), {"module": _entry.module}),
                              no_args_is_help=True),
                  name=_entry.name, help=_entry.help, rich_help_panel=_entry.panel)


def engine_api(name: str):
    """The engine API module of a registered method (`wisecli.engines.<name>.api`)."""
    return importlib.import_module(f"wisecli.engines.{name.replace('-', '_')}.api")


def _pick(only: Optional[list[str]], extra: tuple[str, ...] = ()) -> list[str]:
    names = [m.name for m in METHODS] + list(extra)
    if not only:
        return names
    for n in only:
        if n not in names:
            import difflib

            close = difflib.get_close_matches(n, names, n=1)
            raise InputError(f"no method named '{n}'",
                             hint=f"did you mean '{close[0]}'?" if close else f"methods: {', '.join(names)}")
    return list(only)


@app.command(rich_help_panel="Suite")
def version(json: o.Json = False) -> None:
    """Print the wisecli version."""
    Sink(json=json).result({"wisecli": __version__}) if json else print(f"wise {__version__}")


@app.command(rich_help_panel="Suite")
def doctor(json: o.Json = False) -> None:
    """Versions of the stack, devices and CUDA, installed extras."""
    from importlib.util import find_spec

    import torch

    from wisecli.runtime.bench import versions

    cuda = torch.cuda.is_available()
    devices = [{"index": i, "name": torch.cuda.get_device_name(i),
                "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1)}
               for i in range(torch.cuda.device_count())] if cuda else []
    doc = {
        "wisecli": __version__,
        "versions": versions(),
        "cuda": {"available": cuda, "torch_cuda": torch.version.cuda, "devices": devices,
                 "bf16": bool(cuda and torch.cuda.is_bf16_supported())},
        "cpu": {"threads": torch.get_num_threads(), "cores": os.cpu_count()},
        "extras": {name: find_spec(name) is not None for name in ("aeon", "mlxtend", "pydicom", "spectral")},
        "methods": [m.name for m in METHODS],
    }
    rows = [{"item": k, "value": v} for k, v in doc["versions"].items()]
    rows += [{"item": "cuda", "value": f"{cuda} ({', '.join(d['name'] for d in devices) or 'no GPU'})"},
             {"item": "cpu threads", "value": doc["cpu"]["threads"]}]
    rows += [{"item": f"extra {k}", "value": "installed" if v else "missing"} for k, v in doc["extras"].items()]
    Sink(json=json).result(doc, rows=rows, title="wise doctor")


@app.command(name="demo", rich_help_panel="Suite")
def demo_all(
    only: Annotated[Optional[list[str]], typer.Option("--only", help="Run only this method (repeatable).")] = None,
    full: Annotated[bool, typer.Option("--full", help="Run the full demos (minutes each) instead of quick ones.")] = False,
    device: o.Device = "auto",
    json: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Every method's demo on embedded data, one summary table."""
    sink = Sink(json=json, quiet=quiet)
    rows, docs, failed = [], [], 0
    for name in _pick(only):
        sink.info(f"[{name}] demo{' (quick)' if not full else ''} ...")
        t0 = time.perf_counter()
        try:
            api = engine_api(name)
            suite = {} if full else getattr(api, "SUITE_DEMO", {})  # a method's embedded-data choice for wise demo
            doc = api.demo(quick=not full, device=device, **suite).as_dict()
            ok = doc["ok"]
        except WiseError:
            raise
        except Exception as exc:  # one method's failure must not hide the others' results
            doc, ok = {"error": f"{type(exc).__name__}: {exc}"}, False
        seconds = time.perf_counter() - t0
        failed += not ok
        docs.append({"method": name, "ok": ok, "seconds": round(seconds, 2), **{k: v for k, v in doc.items()
                                                                               if k not in ("method", "ok", "seconds")}})
        headline = doc.get("headline") or {}
        rows.append({"method": name, "ok": "yes" if ok else "NO", "seconds": round(seconds, 1),
                     "headline": ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                           for k, v in headline.items()) or doc.get("error", ""),
                     "claims": _claims(doc.get("gates") or [])})
    sink.result({"demos": docs}, rows=rows, title="wise demo" + (" --full" if full else " (quick)"))
    if failed:
        raise PartialFailure(f"{failed} demo(s) failed", hint="run 'wise <method> demo --debug' for details")


def _claims(gates: list[dict]) -> str:
    """The demo's gates as `name value op threshold`, a failed one marked, so `ok` is read against its threshold."""
    def num(x):
        return f"{x:.4g}" if isinstance(x, float) else str(x)
    return "; ".join(f"{g['gate']} {num(g['value'])} {g['op']} {num(g['threshold'])}{'' if g['ok'] else ' (MISSED)'}"
                     for g in gates)


@app.command(name="benchmark", rich_help_panel="Suite")
def benchmark_all(
    only: Annotated[Optional[list[str]], typer.Option("--only", help="Benchmark only this method (repeatable).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes (seconds on CPU).")] = False,
    device: o.Device = "auto",
    json: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Every method's benchmark against its named peer on one device; one table (the GPU check).

    The pseudo-method `suite` times the start-up of `wise --help` and of a TAB completion."""
    sink = Sink(json=json, quiet=quiet)
    records, failed = [], 0
    for name in _pick(only, extra=("suite",)):
        sink.info(f"[{name}] benchmark ...")
        try:
            if name == "suite":
                from wisecli.runtime.startup import measure

                records.extend({"method": "suite", **r} for r in measure())
                continue
            recs = [r.as_dict() for r in engine_api(name).benchmark(device=device, quick=quick)]
        except WiseError:
            raise
        except Exception as exc:
            recs, failed = [{"case": "error", "error": f"{type(exc).__name__}: {exc}"}], failed + 1
        records.extend({"method": name, **r} for r in recs)
    cols = ["method", "case", "ours_s", "peer_s", "speedup", "device"]
    sink.result({"records": records}, rows=records, columns=cols, title="wise benchmark")
    if failed:
        raise PartialFailure(f"{failed} benchmark(s) failed", hint="run 'wise <method> benchmark --debug'")


def _print_error(exc: WiseError) -> None:
    sys.stderr.write(f"Error: {exc.message}\n")
    if exc.hint:
        sys.stderr.write(f"Hint: {exc.hint}\n")


def main(argv: Optional[list[str]] = None) -> int:
    """Console entry point: run the app and turn errors into one line and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("WISE_DEBUG", "") not in ("", "0", "false")
    chatty = debug or "-v" in args or "--verbose" in args
    for var, level in _NATIVE_LOGS.items():  # OpenCV/ffmpeg write to fd 2 themselves, before any Error: line
        os.environ.setdefault(var, level)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        code = _invoke(args, debug)
    if caught and (chatty or (code in (0, 3) and "-q" not in args and "--quiet" not in args)):
        for text in dict.fromkeys(f"Warning: {str(w.message).strip().splitlines()[0][:300]}" for w in caught
                                  if str(w.message).strip()):
            sys.stderr.write(text + "\n")
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # a closed pipe (| head) is not an error
        pass
    return code


_NATIVE_LOGS = {"OPENCV_LOG_LEVEL": "ERROR", "OPENCV_FFMPEG_LOGLEVEL": "-8", "OPENCV_VIDEOIO_DEBUG": "0"}


def _invoke(args: list[str], debug: bool) -> int:
    """Run the click tree; map errors to one `Error:`/`Hint:` pair and an exit code. Library warnings are held
    back by `main` and printed after a success only (or with -v/--debug), so an error is the only line."""
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=args, prog_name="wise", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
        if code == EXIT_INTERRUPTED:  # typer turns Ctrl-C into Exit(130) without a word
            sys.stderr.write("Interrupted.\n")
    except typer.Exit as exc:
        code = exc.exit_code
    except WiseError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        _print_error(exc)
        code = exc.exit_code
    except typer.TyperException as exc:  # usage errors from the parser: exit 2
        code = getattr(exc, "exit_code", 2)
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `wise` or `wise <method>`: the help
            exc.show()
        else:
            ctx = getattr(exc, "ctx", None)
            where = ctx.command_path if ctx is not None else "wise"
            message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            _print_error(InputError(" ".join(message.split()), hint=f"see '{where} --help'"))
    except (KeyboardInterrupt, typer.Abort):
        sys.stderr.write("Interrupted.\n")
        code = EXIT_INTERRUPTED
    return code


def run() -> None:  # pragma: no cover - the console script
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
