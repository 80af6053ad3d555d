"""Helpers of the registry-driven conformance suite (tests/suite/test_{structure,examples,bad_input,
write_faults,interrupt,partial_batch,fuzz}.py).

Every registered method `m` (package `pkg`) is checked through `tests/<pkg>/conformance.py` (CONTRACT.md §6):
`examples(tmp)` gives one valid, fast argv per verb, `batch(tmp, corrupt)` a batch over >= 3 inputs,
`VALID_EDGES` the numeric edge values that are valid, `STDIN` the `str` params that read files (or "-").

The suite builds each method's examples once per session in one folder (`Examples`), runs every case with
`run_wise` in-process (cwd = that folder) and, after each case, removes whatever the case left there, so
cases never see one another's outputs.
"""

from __future__ import annotations

import enum
import importlib.util
import json
import os
import random
import re
import shutil
import sys
import types
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, Union, get_args, get_origin

import pytest
from typer.core import TyperArgument, TyperOption

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))

from conftest import run_wise  # noqa: E402

from wisecli.registry import METHODS  # noqa: E402

SHARED_NAMES = {"debug", "verbose", "quiet", "config", "set_"}
SHARED_FLAGS = ("--debug", "-v", "-q", "--config", "--set")
OUTPUT_OPTS = {"-o", "--out-dir", "--output", "--plot", "--preview", "--aic-submit"}
CHECKPOINT_OPTS = ("--weights", "--pretrained", "--init")
EDGES = ("0", "-1", "nan", "inf")
TRUNCATABLE = (".gz", ".npz", ".zip", ".pt", ".pth", ".mha", ".nii", ".npy", ".nrrd", ".pkl", ".tar")


def pkg_of(method: str) -> str:
    return method.replace("-", "_")


@lru_cache(maxsize=None)
def root_command():
    import typer

    from wisecli.main import app

    return typer.main.get_command(app)


def verbs_of(method: str) -> dict:
    return dict(root_command().commands[method].commands)


def method_verbs() -> list[tuple[str, str]]:
    """(method, verb) for every verb of every registered method, in registry order."""
    return [(m.name, v) for m in METHODS for v in verbs_of(m.name)]


def ids(pairs) -> list[str]:
    return [f"{m}-{v}" for m, v in pairs]


METHOD_NAMES = [m.name for m in METHODS]
VERB_PAIRS = method_verbs()
VERB_IDS = ids(VERB_PAIRS)


# -- what a param is (Typer >= 0.29 keeps the Python annotation, not a click type) ----------------------------

def _strip(ann):
    """(base annotation, multi) of a param annotation: Annotated/Optional/list peeled off."""
    multi = False
    while True:
        origin = get_origin(ann)
        if origin is Annotated:
            ann = get_args(ann)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(ann) if a is not type(None)]
            if len(args) != 1:
                return ann, multi
            ann = args[0]
        elif origin in (list, tuple, set, frozenset) or ann in (list, tuple):
            multi = True
            args = [a for a in get_args(ann) if a is not Ellipsis]
            ann = args[0] if args else str
        else:
            return ann, multi


def annotation(p):
    td = getattr(p, "type_descriptor", None)
    return _strip(td.annotation)[0] if td is not None else None


def param_info(p):
    td = getattr(p, "type_descriptor", None)
    return td.parameter_info if td is not None else None


def kind(p) -> str:
    """'path', 'int', 'float', 'bool', 'choice', 'str' or 'other'."""
    ann = annotation(p)
    if isinstance(ann, type):
        if issubclass(ann, Path):
            return "path"
        if issubclass(ann, bool):
            return "bool"
        if issubclass(ann, enum.Enum):
            return "choice"
        if issubclass(ann, int):
            return "int"
        if issubclass(ann, float):
            return "float"
        if issubclass(ann, str):
            return "str"
    if get_origin(ann) is Literal:
        return "choice"
    return "other"


def choices(p) -> list[str]:
    ann = annotation(p)
    if get_origin(ann) is Literal:
        return [str(a) for a in get_args(ann)]
    if isinstance(ann, type) and issubclass(ann, enum.Enum):
        return [str(m.value) for m in ann]
    return []


def is_argument(p) -> bool:
    return isinstance(p, TyperArgument)


def is_option(p) -> bool:
    return isinstance(p, TyperOption)


# -- the conformance modules --------------------------------------------------------------------------------

def conformance_path(method: str) -> Path:
    return REPO / "tests" / pkg_of(method) / "conformance.py"


@lru_cache(maxsize=None)
def _load(method: str):
    path = conformance_path(method)
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(f"conformance_{pkg_of(method)}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def conformance(method: str):
    """The method's conformance module; the test FAILS (never skips) when it is missing."""
    mod = _load(method)
    if mod is None:
        pytest.fail(f"tests/{pkg_of(method)}/conformance.py is missing (CONTRACT.md §6): the conformance suite "
                    f"cannot check {method}", pytrace=False)
    return mod


def valid_edges(method: str) -> dict[str, set[str]]:
    return {k: set(v) for k, v in (getattr(conformance(method), "VALID_EDGES", {}) or {}).items()}


def stdin_params(method: str) -> set[str]:
    return set(getattr(conformance(method), "STDIN", set()) or set())


# -- files of a folder: snapshots and restore ---------------------------------------------------------------

def snapshot(root: Path) -> dict[str, int]:
    """relative path -> size of every file (and '/'-suffixed empty folder) under root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        for f in filenames:
            p = Path(dirpath) / f
            try:
                out[str(rel / f)] = p.lstat().st_size
            except OSError:
                pass
        if not dirnames and not filenames and Path(dirpath) != root:
            out[str(rel) + "/"] = 0
    return out


def restore(root: Path, pristine: dict[str, int]) -> None:
    """Remove every file and folder under root that is not in `pristine` (a snapshot)."""
    keep_dirs = set()
    for entry in pristine:
        rel = Path(entry.rstrip("/"))
        keep_dirs.update(str(a) for a in rel.parents)
        if entry.endswith("/"):
            keep_dirs.add(str(rel))
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        rel = Path(dirpath).relative_to(root)
        for f in filenames:
            if str(rel / f) not in pristine:
                (Path(dirpath) / f).unlink()
        for d in dirnames:
            p = Path(dirpath) / d
            if str(rel / d) in keep_dirs:
                continue
            if p.is_symlink():
                p.unlink()
            else:
                shutil.rmtree(p, ignore_errors=True)


@dataclass
class Examples:
    """One method's examples, built once per session in `tmp` (inputs that the examples create)."""

    method: str
    tmp: Path
    argv: dict[str, list[str]]
    pristine: dict[str, int]
    clean_outputs: dict[str, dict[str, int]] = field(default_factory=dict)
    tmpdir_left: dict[str, list[str]] = field(default_factory=dict)

    def restore(self) -> None:
        restore(self.tmp, self.pristine)

    def new_files(self) -> dict[str, int]:
        now = snapshot(self.tmp)
        return {k: v for k, v in now.items() if k not in self.pristine}

    def run(self, argv: list[str], *, input: str | None = None, timeout: float = 30.0) -> tuple[int, str, str]:
        """`wise <method> ARGV` (ARGV starts with the verb) in-process with cwd = tmp (restored before the run)."""
        self.restore()
        return run_in(self.tmp, self.method, argv, input=input, timeout=timeout)

    def clean_run(self, verb: str) -> dict[str, int]:
        """Run the verb's example once (cached): the files it writes (relative path -> size); fails the test when
        the example does not exit 0 or writes outside tmp/out."""
        if verb not in self.clean_outputs:
            import tempfile

            tdir = self.tmp.parent / f"{self.tmp.name}-tmpdir-{verb}"
            tdir.mkdir(exist_ok=True)
            old_env, old_tempdir = os.environ.get("TMPDIR"), tempfile.tempdir
            os.environ["TMPDIR"], tempfile.tempdir = str(tdir), str(tdir)
            try:
                code, out, err = self.run([verb, *self.example(verb)], timeout=120)
            finally:
                tempfile.tempdir = old_tempdir
                if old_env is None:
                    os.environ.pop("TMPDIR", None)
                else:
                    os.environ["TMPDIR"] = old_env
            written = self.new_files()
            self.restore()
            # torch keeps one cache folder per user (torchinductor_<user>) the first time an optimizer steps in a
            # process: reused by every later run, not a leftover of ours
            left = sorted(p.name for p in tdir.iterdir() if not p.name.startswith("torchinductor_"))
            shutil.rmtree(tdir, ignore_errors=True)
            assert code == 0, (f"the example of '{self.method} {verb}' ({' '.join(self.example(verb))}) exits {code}: "
                               f"{stderr_summary(err)}")
            outside = sorted(k for k in written if not (k == "out" or k.startswith(("out/", "out."))))
            assert not outside, f"the example of '{self.method} {verb}' writes outside tmp/out: {outside[:5]}"
            self.tmpdir_left[verb] = left
            self.clean_outputs[verb] = written
        return self.clean_outputs[verb]

    def example(self, verb: str) -> list[str]:
        if verb not in self.argv:
            pytest.fail(f"tests/{pkg_of(self.method)}/conformance.py: examples() has no argv for verb '{verb}' "
                        f"(it must give one for every verb)", pytrace=False)
        return [str(a) for a in self.argv[verb]]


class RunTimeout(BaseException):
    """Raised by the suite's alarm in a run that went on too long (BaseException: no `except Exception` eats it)."""


TIMEOUT_CODE = -1


def run_in(cwd: Path, method: str, argv: list[str], *, input: str | None = None,
           timeout: float = 30.0) -> tuple[int, str, str]:
    """`wise METHOD ARGV` in-process with cwd = `cwd`; a run still going after `timeout` seconds is stopped and
    gives exit TIMEOUT_CODE (a value the suite never accepts where it expects a failure before work)."""
    import signal

    state = {"armed": True, "fired": False}

    def _alarm(signum, frame):
        state["fired"] = True
        if state["armed"]:
            raise RunTimeout()

    def _disarm():
        state["armed"] = False
        signal.setitimer(signal.ITIMER_REAL, 0)

    stopped = (TIMEOUT_CODE, "", f"(the suite stopped the run after {timeout:g} s)")
    old_dir = os.getcwd()
    old_handler = signal.signal(signal.SIGALRM, _alarm)
    os.chdir(cwd)
    # repeating: an alarm raised inside a callback that swallows exceptions (a gc callback) fires again; so the
    # cleanup disarms first, and a run that swallowed a timeout still reports one
    signal.setitimer(signal.ITIMER_REAL, timeout, 0.25)
    try:
        try:
            result = run_wise(method, *map(str, argv), input=input)
        finally:
            _disarm()
        return stopped if state["fired"] else result
    except RunTimeout:
        return stopped
    except Exception as exc:  # main() let it through: the installed script would print a traceback, exit 1
        import traceback

        if state["fired"]:
            return stopped
        tb = traceback.format_exception(exc)
        return 1, "", "".join(tb[:1] + tb[-3:])
    finally:
        _disarm()
        signal.signal(signal.SIGALRM, old_handler)
        os.chdir(old_dir)


_EXAMPLES: dict[str, Examples] = {}


def examples_of(method: str, tmp_factory) -> Examples:
    """The session's shared example folder of `method` (built on first use)."""
    if method not in _EXAMPLES:
        mod = conformance(method)
        tmp = tmp_factory.mktemp(f"ex-{pkg_of(method)}")
        argv = mod.examples(tmp)
        _EXAMPLES[method] = Examples(method, tmp, {k: [str(a) for a in v] for k, v in argv.items()}, snapshot(tmp))
    ex = _EXAMPLES[method]
    ex.restore()
    return ex


# -- the one-line error rules -------------------------------------------------------------------------------

def error_problems(code: int, out: str, err: str, *, expect: int, name: str | None = None,
                   stdout_empty: bool = True) -> list[str]:
    """What is wrong with a run that should fail with `expect` and one `Error:` line (+ `Hint:`)."""
    problems = []
    if code != expect:
        problems.append(f"exit {code}, expected {expect}")
    if "Traceback" in err:
        problems.append("traceback on stderr")
    if stdout_empty and out.strip():
        problems.append(f"stdout not empty: {out.strip()[:120]!r}")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("Error: ") or len(lines) > 2 or \
            (len(lines) == 2 and not lines[1].startswith("Hint: ")):
        problems.append(f"stderr is not one 'Error:' line (+ one 'Hint:'): {lines[:4]!r}")
    elif name is not None and name not in lines[0]:
        problems.append(f"the Error line does not name {name!r}: {lines[0][:200]!r}")
    return problems


def stderr_summary(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if "Traceback" in err:
        return " | ".join(lines[-2:])[:300]
    return " | ".join(lines[:2])[:300]


# -- argv and click params ----------------------------------------------------------------------------------

def long_name(param) -> str:
    opts = list(getattr(param, "opts", [])) + list(getattr(param, "secondary_opts", []))
    longs = [o for o in opts if o.startswith("--")]
    return longs[0] if longs else (opts[0] if opts else param.name)


def is_output(param) -> bool:
    opts = set(getattr(param, "opts", [])) | set(getattr(param, "secondary_opts", []))
    if opts & OUTPUT_OPTS or any(o.startswith("--export-") for o in opts):
        return True
    return kind(param) == "path" and bool(getattr(param_info(param), "writable", False))


def is_shared(param) -> bool:
    return param.name in SHARED_NAMES or getattr(param, "rich_help_panel", None) == "Shared options"


def file_params(method: str, verb: str, cmd) -> list:
    """Params that read files: Path-typed and not outputs (not --config), plus those listed in STDIN."""
    stdin = stdin_params(method)
    out = []
    for p in cmd.params:
        if p.name in ("config",) or is_output(p):
            continue
        human = p.name if is_argument(p) else long_name(p)
        listed = f"{verb} {p.name}" in stdin or f"{verb} {human}" in stdin or f"{verb} {human.upper()}" in stdin
        if kind(p) == "path" or listed:
            out.append(p)
    return out


def _multi(p) -> bool:
    return p.nargs == -1 or p.nargs > 1 or getattr(p, "multiple", False)


def locate(cmd, argv: list[str]) -> dict[str, list[int]]:
    """param name -> indices in argv of the tokens that are its values (options: the value after the name)."""
    by_opt = {}
    for p in cmd.params:
        if is_option(p):
            for o in list(p.opts) + list(p.secondary_opts):
                by_opt[o] = p
    where: dict[str, list[int]] = {}
    positional = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            positional.extend(range(i + 1, len(argv)))
            break
        name = tok.split("=", 1)[0] if tok.startswith("--") else tok
        p = by_opt.get(name)
        if p is not None:
            if p.is_flag or p.count:
                i += 1
                continue
            if "=" in tok:
                where.setdefault(p.name, []).append(i)  # --opt=value: handled as one token
                i += 1
                continue
            for k in range(max(p.nargs, 1)):
                where.setdefault(p.name, []).append(i + 1 + k)
            i += 1 + max(p.nargs, 1)
            continue
        positional.append(i)
        i += 1
    args = [p for p in cmd.params if is_argument(p)]
    fixed = sum(max(p.nargs, 0) for p in args)
    rest = len(positional) - fixed
    k = 0
    for p in args:
        n = p.nargs if p.nargs >= 0 else max(rest, 0)
        where[p.name] = positional[k:k + n]
        k += n
    return where


def token_value(argv: list[str], i: int) -> str:
    tok = argv[i]
    return tok.split("=", 1)[1] if tok.startswith("--") and "=" in tok else tok


def set_token(argv: list[str], i: int, value: str) -> list[str]:
    new = list(argv)
    new[i] = f"{argv[i].split('=', 1)[0]}={value}" if argv[i].startswith("--") and "=" in argv[i] else value
    return new


def only_token(argv: list[str], cmd, param, keep: int, value: str) -> list[str]:
    """argv with `param`'s value at index `keep` set to `value` and the param's other values removed (a defect
    of the only input is exit 2; in a batch it would be an item error)."""
    where = locate(cmd, argv)[param.name]
    drop = set()
    for i in where:
        if i == keep:
            continue
        drop.add(i)
        if is_option(param) and not argv[i].startswith("--"):
            drop.add(i - 1)  # the option name before a value
    new = set_token(argv, keep, value)
    return [t for j, t in enumerate(new) if j not in drop]


def resolve_path(tmp: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else tmp / p


def out_location(tmp: Path, argv: list[str]) -> list[int]:
    """Indices of argv tokens naming tmp/out (a folder) or tmp/out.ext (a file)."""
    found = []
    for i in range(len(argv)):
        v = token_value(argv, i)
        if not v or v.startswith("-"):
            continue
        p = resolve_path(tmp, v)
        if p.parent == tmp and (p.name == "out" or p.name.startswith("out.")):
            found.append(i)
    return found


# -- bad files ----------------------------------------------------------------------------------------------

def suffixes(name: str) -> str:
    base = name.lstrip(".")
    return "." + base.split(".", 1)[1] if "." in base else ""


def random_bytes(n: int = 512, seed: int = 0) -> bytes:
    rnd = random.Random(seed)
    return b"\xff\xfe\x00\x9c" + bytes(rnd.getrandbits(8) for _ in range(n))


def truncatable(name: str) -> bool:
    return any(name.lower().endswith(s) for s in TRUNCATABLE)


def foreign_checkpoint(path: Path, method: str) -> Path:
    from wisecli.runtime.checkpoints import save_checkpoint

    return save_checkpoint(path, method=f"not-{method}", arch="x", config={}, state_dict={})


def json_records(doc) -> list[dict]:
    """The first list of dicts with a 'status' key found in a JSON document (depth first)."""
    if isinstance(doc, list) and doc and all(isinstance(r, dict) for r in doc) and any("status" in r for r in doc):
        return doc
    children = doc.values() if isinstance(doc, dict) else doc if isinstance(doc, list) else []
    for c in children:
        found = json_records(c)
        if found:
            return found
    return []


def one_json(out: str):
    try:
        return json.loads(out)
    except ValueError as exc:
        raise AssertionError(f"stdout is not one JSON document ({exc}): {out[:300]!r}") from None


TMP_NAME = re.compile(r"^\..*\.tmp-\d+")
