"""Structure of every registered method (CONTRACT.md §1-§4, DESIGN.md "House rules for a method"): a
conformance module, an API function per verb with the CLI's defaults, thin commands, shared flags,
engines in their rooms without forbidden imports or cycles, a light `api` and a fast `wise --help`.
(That every verb has help is checked in test_cli_contract.py.)"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conformance_kit import (METHOD_NAMES, REPO, VERB_IDS, VERB_PAIRS, conformance, conformance_path, pkg_of,
                             verbs_of)

MAX_BODY_LINES = 40
ROOMS = {"api", "model", "algorithm", "loss", "data", "synthetic", "metrics", "train", "predict", "bench",
         "peers", "plots", "__init__"}
OTHER_NAMES_FOR_ROOMS = {"benchmark", "benchmarks", "losses", "training", "trainer", "fit", "io", "baselines",
                         "reference_numpy", "evaluate", "evaluation", "plot", "plotting", "models", "algorithms"}
HEAVY_FOR_API = ("torch", "numpy")
HEAVY_FOR_MAIN = ("torch", "monai", "SimpleITK", "cv2")


def _api(method):
    return importlib.import_module(f"wisecli.engines.{pkg_of(method)}.api")


def _engine_dir(method) -> Path:
    return REPO / "wisecli" / "engines" / pkg_of(method)


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_conformance_module_exists(method):
    assert conformance_path(method).is_file(), f"tests/{pkg_of(method)}/conformance.py is missing"
    mod = conformance(method)
    for name in ("examples", "batch", "VALID_EDGES", "STDIN"):
        assert hasattr(mod, name), f"tests/{pkg_of(method)}/conformance.py lacks {name} (CONTRACT.md §6)"


# -- verbs and their API functions ---------------------------------------------------------------------------

@pytest.mark.parametrize("method, verb", VERB_PAIRS, ids=VERB_IDS)
def test_verb_has_an_api_function(method, verb):
    fn = getattr(_api(method), verb.replace("-", "_"), None)
    assert callable(fn), f"wisecli.engines.{pkg_of(method)}.api.{verb.replace('-', '_')} is missing"
    assert inspect.getdoc(fn), f"api.{verb.replace('-', '_')} has no docstring"


def body_lines(fn) -> int:
    """Lines of a function's body without its signature, docstring, blank lines and comment-only lines."""
    src = textwrap.dedent(inspect.getsource(fn))
    node = ast.parse(src).body[0]
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    if not body:
        return 0
    lines = src.splitlines()[body[0].lineno - 1: node.end_lineno]
    return sum(1 for ln in lines if ln.strip() and not ln.strip().startswith("#"))


@pytest.mark.parametrize("method, verb", VERB_PAIRS, ids=VERB_IDS)
def test_command_body_is_thin(method, verb):
    fn = inspect.unwrap(verbs_of(method)[verb].callback)
    n = body_lines(fn)
    assert n <= MAX_BODY_LINES, (f"{inspect.getsourcefile(fn)}:{fn.__name__}: body is {n} lines (at most "
                                 f"{MAX_BODY_LINES}); loading, loops and writing belong in the engine")


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_defaults_table(method):
    api = _api(method)
    defaults = getattr(api, "DEFAULTS", None)
    assert isinstance(defaults, dict), f"wisecli.engines.{pkg_of(method)}.api.DEFAULTS is missing or not a dict"
    verbs = set(verbs_of(method))
    assert all(isinstance(v, dict) for v in defaults.values()), "DEFAULTS maps each verb to a dict of settings"
    assert set(defaults) <= verbs, f"DEFAULTS has entries for no verb: {sorted(set(defaults) - verbs)}"


def _defaults(method, verb) -> dict:
    d = getattr(_api(method), "DEFAULTS", None)
    if not isinstance(d, dict):
        pytest.fail(f"wisecli.engines.{pkg_of(method)}.api.DEFAULTS is missing", pytrace=False)
    return d.get(verb, {}) or {}


@pytest.mark.parametrize("method, verb", VERB_PAIRS, ids=VERB_IDS)
def test_options_with_engine_defaults_default_to_none(method, verb):
    defaults = _defaults(method, verb)
    bad = [f"{p.name} (default {p.default!r})" for p in verbs_of(method)[verb].params
           if p.name in defaults and p.default is not None]
    assert not bad, f"options whose value comes from DEFAULTS['{verb}'] must default to None: {bad}"


@pytest.mark.parametrize("method, verb", VERB_PAIRS, ids=VERB_IDS)
def test_api_defaults_match_the_cli(method, verb):
    fn = getattr(_api(method), verb.replace("-", "_"), None)
    if not callable(fn):
        pytest.fail(f"api.{verb.replace('-', '_')} is missing", pytrace=False)
    defaults = _defaults(method, verb)
    cli = {p.name: p.default for p in verbs_of(method)[verb].params}
    bad = []
    for p in inspect.signature(fn).parameters.values():
        if p.default is inspect.Parameter.empty or p.default is None:
            continue
        if p.name in defaults:
            if p.default != defaults[p.name]:
                bad.append(f"{p.name}={p.default!r} but DEFAULTS['{verb}']['{p.name}'] = {defaults[p.name]!r}")
        elif cli.get(p.name) is not None and str(cli[p.name]) != str(p.default) \
                and not (isinstance(cli[p.name], (list, tuple)) and list(cli[p.name]) == list(p.default or [])):
            bad.append(f"{p.name}={p.default!r} but the command's --{p.name.replace('_', '-')} defaults to "
                       f"{cli[p.name]!r}")
    assert not bad, f"api.{verb.replace('-', '_')} keyword defaults differ from the CLI's: {bad}"


@pytest.mark.parametrize("method, verb", VERB_PAIRS, ids=VERB_IDS)
def test_every_verb_takes_the_shared_flags(method, verb):
    opts = {o for p in verbs_of(method)[verb].params for o in list(getattr(p, "opts", []))}
    missing = [f for f in ("--debug", "-v", "-q", "--config", "--set") if f not in opts]
    assert not missing, f"'wise {method} {verb}' lacks {missing} (use MethodApp from wisecli.cli.common)"


# -- engine modules: imports, rooms, cycles ------------------------------------------------------------------

def _modules(method) -> dict[str, Path]:
    root = _engine_dir(method)
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(("wisecli", "engines", pkg_of(method), *parts))] = path
    return out


def _imports(modname: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(absolute module, imported names, line) of every import in the file, at any depth."""
    tree = ast.parse(path.read_text(), str(path))
    package = modname if path.name == "__init__.py" else modname.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((a.name, [], node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.append((mod, [a.name for a in node.names], node.lineno))
    return found


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_engine_imports_no_other_engine_and_no_typer(method):
    own = f"wisecli.engines.{pkg_of(method)}"
    bad = []
    for modname, path in _modules(method).items():
        for mod, names, line in _imports(modname, path):
            targets = [mod] + ([f"{mod}.{n}" for n in names] if mod in ("wisecli.engines", "wisecli") else [])
            for t in targets:
                if t.split(".")[0] in ("typer", "click"):
                    bad.append(f"{path.name}:{line} imports {t}")
                elif t.startswith("wisecli.engines.") and not (t == own or t.startswith(own + ".")):
                    bad.append(f"{path.name}:{line} imports {t}")
                elif t.startswith("wisecli.commands"):
                    bad.append(f"{path.name}:{line} imports {t}")
    assert not bad, f"engine {method}: {bad}"


def _graph(method) -> dict[str, set[str]]:
    mods = _modules(method)
    graph = {m: set() for m in mods}
    for modname, path in mods.items():
        for mod, names, _ in _imports(modname, path):
            for t in [mod] + [f"{mod}.{n}" for n in names]:
                if t in mods and t != modname:
                    graph[modname].add(t)
    return graph


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_bench_does_not_import_api(method):
    graph = _graph(method)
    pkg = f"wisecli.engines.{pkg_of(method)}"
    bench = f"{pkg}.bench"
    if bench in graph:
        assert f"{pkg}.api" not in graph[bench], "bench.py imports api (CONTRACT.md §3: nothing imports api)"
    importers = sorted(m.rsplit(".", 1)[-1] for m, deps in graph.items() if f"{pkg}.api" in deps)
    assert not importers, f"engine modules import api: {importers} (only the command and tests may)"


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_no_import_cycle_in_the_engine(method):
    graph = _graph(method)
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cyc = stack[stack.index(nxt):] + [nxt]
                cycles.append(" -> ".join(c.rsplit(".", 1)[-1] for c in cyc))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, f"import cycles in engine {method}: {cycles}"


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_engine_rooms_have_their_names(method):
    stems = {p.stem for p in _engine_dir(method).glob("*.py")}
    wrong = sorted(stems & OTHER_NAMES_FOR_ROOMS)
    assert not wrong, (f"engine {method}: {[w + '.py' for w in wrong]} are other names for rooms; use "
                       f"{sorted(ROOMS - {'__init__'})}")
    assert "api" in stems, f"engine {method} has no api.py"


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_api_imports_no_heavy_module(method):
    code = (f"import json, sys, wisecli.engines.{pkg_of(method)}.api; "
            f"print(json.dumps([m for m in {HEAVY_FOR_API!r} if m in sys.modules]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded == [], f"importing wisecli.engines.{pkg_of(method)}.api loads {loaded}: import them in functions"


_STARTUP = r"""
import contextlib, dataclasses, io, json, sys, time
from wisecli import registry
base = list(registry.METHODS)
registry.METHODS.extend(dataclasses.replace(base[i % len(base)], name=f"{base[i % len(base)].name}-copy{i}")
                        for i in range(20 - len(base)))
t0 = time.process_time()  # CPU time: wall time on a loaded CI runner measures the neighbours
import wisecli.main
with contextlib.redirect_stdout(io.StringIO()) as out:
    code = wisecli.main.main(["--help"])
t1 = time.process_time()
print(json.dumps({"seconds": t1 - t0, "code": code, "methods": len(registry.METHODS),
                  "listed": sum(m.name in out.getvalue() for m in registry.METHODS),
                  "heavy": [m for m in HEAVY if m in sys.modules]}))
"""


def test_wise_help_is_fast_with_twenty_methods():
    runs = []
    for _ in range(5):
        proc = subprocess.run([sys.executable, "-c", f"HEAVY = {HEAVY_FOR_MAIN!r}\n" + _STARTUP],
                              capture_output=True, text=True, cwd=REPO)
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    best = min(r["seconds"] for r in runs)
    first = runs[0]
    assert first["code"] == 0 and first["methods"] == 20
    assert first["heavy"] == [], f"importing wisecli.main and `wise --help` load {first['heavy']}"
    assert best < 0.3, f"`wise --help` with 20 methods takes {best:.3f} CPU-s (best of 5), more than 0.3 s"


def _public_without_docstring(path: Path) -> list[str]:
    """Module-level public functions and classes without a docstring."""
    tree = ast.parse(path.read_text(), str(path))
    return [f"{path.relative_to(REPO)}:{node.lineno} {node.name}" for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            and not node.name.startswith("_") and not ast.get_docstring(node)]


@pytest.mark.parametrize("package", ["runtime", "cli"])
def test_public_functions_of_runtime_and_cli_have_docstrings(package):
    missing = [m for p in sorted((REPO / "wisecli" / package).rglob("*.py")) for m in _public_without_docstring(p)]
    assert not missing, f"{len(missing)} public functions/classes without a docstring: {missing}"


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_demo_and_benchmark_take_what_wise_demo_and_wise_benchmark_pass(method):
    api = _api(method)
    for verb in ("demo", "benchmark"):
        fn = getattr(api, verb, None)
        assert callable(fn), f"api.{verb} is missing"
        params = inspect.signature(fn).parameters
        missing = [k for k in ("quick", "device") if k not in params and not any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())]
        assert not missing, f"api.{verb} lacks {missing}: `wise {verb}` calls it with quick= and device="


def test_one_conftest_for_the_whole_suite():
    # tests import helpers with `from conftest import ...`: a second conftest.py under tests/ takes the module
    # name `conftest` for whichever folder pytest reaches first, and every such import elsewhere breaks
    root = Path(__file__).resolve().parents[1]
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("conftest.py")) == ["conftest.py"]
