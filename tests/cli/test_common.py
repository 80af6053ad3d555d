"""Shared flags by construction (`MethodApp`), the sink's demo/batch endings and main's error mapping."""

from __future__ import annotations

import json
import sys
import types
import warnings
from typing import Annotated, Literal, Optional

import pytest
import typer

from wisecli.cli import options as o
from wisecli.cli.common import MethodApp, shared
from wisecli.cli.config import resolve
from wisecli.cli.errors import PartialFailure, WorkFailed
from wisecli.cli.output import Sink
from wisecli.runtime.results import DemoResult, Gate


@pytest.fixture
def toy(monkeypatch):
    """A method `toy` with an api module holding DEFAULTS, mounted on a root app like main.py does."""
    api = types.ModuleType("wisecli.engines.toy.api")
    api.DEFAULTS = {"run": {"rate": 0.5, "mode": "fast", "n": 3, "sched.steps": 9}}
    monkeypatch.setitem(sys.modules, "wisecli.engines.toy", types.ModuleType("wisecli.engines.toy"))
    monkeypatch.setitem(sys.modules, "wisecli.engines.toy.api", api)
    seen = {}
    app = MethodApp("toy")

    @app.command()
    def run(rate: Annotated[Optional[float], typer.Option("--rate", callback=o.positive)] = None,
            mode: Annotated[Optional[Literal["fast", "slow"]], typer.Option("--mode")] = None,
            n: Annotated[Optional[int], typer.Option("--n")] = None,
            steps: Annotated[Optional[int], typer.Option("--steps")] = None, json: o.Json = False,
            jsonl: o.Jsonl = False):
        """Run the toy."""
        sink = Sink(json=json, jsonl=jsonl)
        cfg = resolve(api.DEFAULTS["run"], flags={"rate": rate, "mode": mode, "n": n, "sched.steps": steps})
        seen.update(cfg.values, quiet=sink.quiet, verbose=sink.verbose, debug=shared("debug"),
                    sources=dict(cfg.sources))
        sink.result(cfg.values)

    @app.command()
    def eof():
        """Read past the end."""
        raise EOFError("Compressed file ended before the end-of-stream marker was reached")

    root = typer.Typer()
    root.add_typer(app, name="toy")
    monkeypatch.setattr("wisecli.main.app", root)
    return seen


def test_every_verb_takes_the_shared_flags_and_they_reach_sink_and_resolve(toy, tmp_path, wise):
    cfg = tmp_path / "c.toml"
    cfg.write_text('n = 7\nmode = "slow"\n')
    code, out, err = wise("toy", "run", "--config", cfg, "--set", "rate=0.25", "-q", "-v", "--debug", "--json")
    assert code == 0, err
    assert json.loads(out) == {"rate": 0.25, "mode": "slow", "n": 7, "sched.steps": 9}
    assert toy["quiet"] and toy["verbose"] and toy["debug"]
    assert toy["sources"] == {"rate": "set", "mode": "config", "n": "config", "sched.steps": "default"}
    code, out, err = wise("toy", "run", "--rate", "2", "--json")
    assert code == 0 and json.loads(out)["rate"] == 2.0 and not toy["quiet"]


def test_help_shows_the_engine_default_and_the_choices(toy, wise):
    code, out, _ = wise("toy", "run", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "0.5" in text and "fast|slow" in text and "--config" in text and "--debug" in text
    assert "--steps <int> [default: (9)]" in text  # a dotted setting answers to its last part


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_positive_callback_refuses_edges_with_one_error_line(toy, wise, value):
    code, out, err = wise("toy", "run", "--rate", value)
    assert code == 2 and out == ""
    assert err.startswith("Error: ") and "Traceback" not in err and len(err.strip().splitlines()) == 2


def test_json_with_jsonl_is_a_usage_error(toy, wise):
    code, out, err = wise("toy", "run", "--json", "--jsonl")
    assert code == 2 and out == "" and "exclude each other" in err


def test_eof_from_a_reader_is_an_input_error_not_an_interrupt(toy, wise):
    code, out, err = wise("toy", "eof")
    assert code == 2 and out == ""
    assert err.splitlines()[0].startswith("Error: unexpected end of data") and "Interrupted" not in err


def test_ctrl_c_says_interrupted(monkeypatch, wise):
    root = typer.Typer()

    @root.command()
    def a():
        raise KeyboardInterrupt

    @root.command()
    def b():
        pass

    monkeypatch.setattr("wisecli.main.app", root)
    code, out, err = wise("a")
    assert code == 130 and err.strip() == "Interrupted." and out == ""


def test_library_warnings_wait_for_success_and_never_precede_an_error(monkeypatch, wise):
    from wisecli.cli.errors import InputError

    root = typer.Typer()

    @root.command()
    def good():
        warnings.warn("a library grumbles", UserWarning)

    @root.command()
    def bad():
        warnings.warn("a library grumbles", UserWarning)
        raise InputError("the input is bad", hint="fix it")

    monkeypatch.setattr("wisecli.main.app", root)
    code, _, err = wise("good")
    assert code == 0 and err == "Warning: a library grumbles\n"
    code, _, err = wise("bad")
    assert code == 2 and err == "Error: the input is bad\nHint: fix it\n"


def test_sink_finish_and_demo_exit_codes(capsys):
    sink = Sink(json=True)
    sink.finish([{"status": "ok"}, {"status": "skipped"}])
    with pytest.raises(PartialFailure, match="1 of 3"):
        sink.finish([{"status": "ok"}, {"status": "error"}, {"status": "ok"}])
    sink.demo(DemoResult("m", [Gate("acc", 0.95, ">=", 0.9)]), title="t")
    assert json.loads(capsys.readouterr().out)["ok"] is True
    with pytest.raises(WorkFailed, match="acc"):
        sink.demo(DemoResult("m", [Gate("acc", 0.5, ">=", 0.9)]), title="t")
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["gates"][0]["threshold"] == 0.9


def test_a_bad_config_is_refused_by_a_verb_that_reads_no_setting(toy, tmp_path, wise):
    binary = tmp_path / "c.toml"
    binary.write_bytes(bytes(range(256)))
    for bad in (tmp_path / "missing.toml", binary):
        code, out, err = wise("toy", "eof", "--config", bad)
        assert code == 2 and out == "" and err.startswith("Error: config file") and str(bad) in err.splitlines()[0]


def test_one_of_checks_settings_that_bypass_typer_choices():
    from wisecli.cli.config import one_of
    from wisecli.cli.errors import InputError

    one_of("--cv", "blocked", ("blocked", "group"))
    one_of("--format", None, ("csv", None))
    with pytest.raises(InputError, match="--cv 'blokced' is not one of blocked, group") as exc:
        one_of("--cv", "blokced", ("blocked", "group"))
    assert exc.value.hint == "did you mean 'blocked'?"
