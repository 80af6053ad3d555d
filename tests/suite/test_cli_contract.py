"""The CLI contract every command keeps: help everywhere, verbs from the allowed list, usage errors as
exit 2 with one `Error:` line on stderr and nothing on stdout."""

import json

import pytest
import typer
from conftest import run_wise

from wisecli.main import app
from wisecli.registry import METHOD_VERBS, METHODS, VERBS


def _commands():
    root = typer.main.get_command(app)
    yield ()
    for name, cmd in root.commands.items():
        yield (name,)
        for sub in getattr(cmd, "commands", {}):
            yield (name, sub)


@pytest.mark.parametrize("path", list(_commands()), ids=lambda p: " ".join(p) or "wise")
def test_every_command_has_help(path):
    code, out, err = run_wise(*path, "--help")
    assert code == 0, err
    assert "Usage: wise" in out
    code_h, out_h, _ = run_wise(*path, "-h")
    assert code_h == 0 and out_h == out


def test_method_verbs_come_from_the_allowed_list():
    root = typer.main.get_command(app)
    for entry in METHODS:
        verbs = set(root.commands[entry.name].commands)
        allowed = set(VERBS) | set(METHOD_VERBS.get(entry.name, ()))
        assert verbs <= allowed, f"{entry.name}: {sorted(verbs - allowed)} not in the verb list"
        assert {"demo", "info", "benchmark"} <= verbs, f"{entry.name} lacks demo/info/benchmark"


@pytest.mark.parametrize("args", [("no-such-method",), ("doctor", "--no-such-flag"), ("demo", "--only", "nope"),
                                  ("benchmark", "--only", "nope")])
def test_usage_errors_exit_2_with_one_line_and_empty_stdout(args):
    code, out, err = run_wise(*args)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert lines[0].startswith("Error: ")
    assert all(line.startswith(("Error: ", "Hint: ")) for line in lines)
    assert "Traceback" not in err


def test_version_and_doctor_json():
    code, out, _ = run_wise("version", "--json")
    assert code == 0 and json.loads(out)["wisecli"]
    code, out, err = run_wise("doctor", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["versions"]["torch"] and "available" in doc["cuda"]
    assert doc["methods"] == [m.name for m in METHODS]


def test_debug_shows_traceback_for_user_errors(monkeypatch):
    code, out, err = run_wise("demo", "--only", "nope")
    assert "Traceback" not in err
    monkeypatch.setenv("WISE_DEBUG", "1")
    code, out, err = run_wise("demo", "--only", "nope")
    assert code == 2 and "Traceback" in err and out == ""


def test_suite_benchmark_times_startup():
    code, out, err = run_wise("benchmark", "--only", "suite", "--json")
    assert code == 0, err
    recs = json.loads(out)["records"]
    assert [r["case"] for r in recs] == ["startup: wise --help", "startup: TAB completion"]
    assert all(0 < r["ours_s"] < 5 for r in recs)


def test_suite_demo_runs_a_method_and_summarises(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_wise("demo", "--only", "select-features", "--device", "cpu", "--json")
    assert code == 0, err
    (doc,) = json.loads(out)["demos"]
    assert doc["method"] == "select-features" and doc["ok"] is True
    assert doc["headline"] and all(isinstance(v, (int, float)) for v in doc["headline"].values())
    assert isinstance(doc.get("gates"), list) and doc["gates"], "api.demo returns runtime.results.DemoResult (gates)"
