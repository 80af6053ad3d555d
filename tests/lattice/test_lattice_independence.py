"""Independence of the patented optional part (spec §1, §2.1): nothing outside `cwrom/` imports it except a
guarded lazy import inside a function of `api.py`, and every default path (`run`, `evaluate --solver fom`,
`benchmark`, `demo`, `wise demo --only lattice`, `wise benchmark --only lattice --quick`) works with `cwrom`
unimportable and never loads it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENGINE = REPO / "wisecli" / "engines" / "lattice"
CWROM = "wisecli.engines.lattice.cwrom"


def _imports(path: Path):
    """(target module, line, at module level) of every import in a file of the engine (or the command)."""
    tree = ast.parse(path.read_text(), str(path))
    rel = path.relative_to(REPO).with_suffix("").parts
    package = ".".join(rel[:-1])
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, node.lineno, id(node) in top
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for a in node.names:
                yield f"{mod}.{a.name}" if mod in ("wisecli.engines.lattice",) else mod, node.lineno, id(node) in top


def test_import_graph_keeps_cwrom_optional():
    files = [p for p in ENGINE.rglob("*.py") if "cwrom" not in p.relative_to(ENGINE).parts]
    files.append(REPO / "commands" / "lattice.py")
    bad = []
    for path in files:
        for target, line, top_level in _imports(path):
            if target == CWROM or target.startswith(CWROM + "."):
                if path.name == "api.py" and not top_level:
                    continue  # the one allowed, lazy import, only when the user selected the ROM
                bad.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert not bad, bad
    # and no string-built import of it anywhere but api.py (importlib with the module name)
    for path in files:
        if path.name != "api.py":
            assert CWROM not in path.read_text(), path


_BLOCK = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == {cw!r} or name.startswith({cw!r} + "."):
            raise ImportError("cwrom is unimportable in this test")
        return None
sys.meta_path.insert(0, Block())
"""


def _run_blocked(tmp_path, body: str) -> dict:
    script = _BLOCK.format(cw=CWROM) + "import json\nout = {}\n" + body + """
out["loaded"] = sorted(m for m in sys.modules if "cwrom" in m)
print("RESULT " + json.dumps(out))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert line, proc.stderr[-3000:]
    res = json.loads(line[-1][len("RESULT "):])
    assert res["loaded"] == [], res
    return res


_MAIN = """
from wisecli.main import main
try:
    out["code"] = main({argv!r})
except SystemExit as exc:
    out["code"] = exc.code
"""


@pytest.mark.slow
def test_default_paths_work_without_cwrom(tmp_path):
    res = _run_blocked(tmp_path, f"""
from wisecli.engines.lattice import api
out["run"] = api.run(nx=2, ny=1, mesh=2, max_iter=3, device="cpu", out_dir={str(tmp_path / 'run')!r})["iterations"]
out["analyse"] = api.run(nx=2, ny=1, mesh=2, analyse_only=True, device="cpu")["compliance"]
out["evaluate"] = len(api.evaluate(nx=1, ny=1, mesh=2, solver="fom", designs="uniform:0.3", repeats=1, device="cpu"))
out["info"] = api.info(device="cpu")["cwrom_installed"]
from wisecli.cli.errors import InputError
try:
    api.run(nx=2, ny=1, mesh=3, solver="cwrom", rom="lib.pt", device="cpu")
except InputError as exc:
    out["refused"] = str(exc)
""" + _MAIN.format(argv=["demo", "--only", "lattice", "--device", "cpu", "--json"]))
    assert res["run"] == 3 and res["analyse"] > 0 and res["evaluate"] == 1 and res["info"] is False
    assert "not installed" in res["refused"]
    assert res["code"] in (0, None), res


@pytest.mark.slow
def test_suite_benchmark_quick_never_imports_cwrom(tmp_path):
    res = _run_blocked(tmp_path, _MAIN.format(argv=["benchmark", "--only", "lattice", "--quick", "--device", "cpu",
                                                    "--json"]))
    assert res["code"] in (0, None), res
