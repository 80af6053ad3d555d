"""The wheel carries `wisecli` and `commands/` as `wisecli.commands`; the completion scripts are what the
app generates; completing `wise ` offers the registered methods."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

from wisecli.cli.completion import FILES, script
from wisecli.registry import METHODS


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(REPO)], check=True, capture_output=True)
    (whl,) = out.glob("wisecli-*.whl")
    return whl


def test_wheel_contents(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "wisecli/main.py" in names and "wisecli/commands/__init__.py" in names
    for entry in METHODS:
        assert entry.module.replace(".", "/") + ".py" in names
        assert f"wisecli/engines/{entry.name.replace('-', '_')}/api.py" in names
    assert not any(n.startswith(("commands/", "tests/")) for n in names)
    meta = next(n for n in names if n.endswith("entry_points.txt"))
    assert "wise = wisecli.main:run" in zipfile.ZipFile(wheel).read(meta).decode()


def test_every_package_folder_is_listed_in_pyproject():
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "wisecli").rglob("__init__.py")}
    assert found | {"wisecli.commands"} == listed


def test_top_level_commands_import_is_refused():
    proc = subprocess.run([sys.executable, "-c", "import commands"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode != 0 and "wisecli.commands" in proc.stderr


@pytest.mark.parametrize("shell", sorted(FILES))
def test_completion_files_are_current(shell):
    committed = (REPO / "completions" / FILES[shell]).read_text()
    assert committed == script(shell), "run: python -m wisecli.cli.completion completions/"


def test_completing_wise_offers_the_methods():
    wise = Path(sys.executable).with_name("wise")
    env = {**os.environ, "_WISE_COMPLETE": "complete_bash", "COMP_WORDS": "wise ", "COMP_CWORD": "1"}
    words = subprocess.run([str(wise)], env=env, capture_output=True, text=True).stdout.split()
    for name in [m.name for m in METHODS] + ["doctor", "demo", "benchmark", "version"]:
        assert name in words
